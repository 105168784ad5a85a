//! synckit over HTTP/1.1, the reference binding of the sync protocol
//! (written down exactly in `docs/protocol.md`):
//!
//! - [`HttpServer`] serves a [`sync_server::SyncService`]: `POST /v1/push`,
//!   `GET /v1/pull`, `GET /healthz`, `GET /metrics`. Bodies are postcard or
//!   JSON, optionally gzip/zstd compressed, with size limits that hold
//!   before and after decompression, a whole-request timeout, bearer-token
//!   auth, and `{code, message}` JSON errors.
//! - [`HttpTransport`] is the client: a [`sync_core::Transport`] with a
//!   keep-alive connection pool.
//! - The shared plumbing ([`PushRequest`], [`PullParams`], [`Compression`],
//!   [`status_for`]) is public so other HTTP-based transports (SSE) and
//!   tests agree with it byte for byte.
//!
//! Plain HTTP only: terminate TLS at a reverse proxy.
//!
//! Features (both on by default): `client` ([`HttpTransport`]) and `server`
//! ([`HttpServer`], which brings in hyper's server and `sync-server`). An
//! application that only syncs with a server takes
//! `default-features = false, features = ["client"]`.
//!
//! ```
//! use std::sync::Arc;
//! use sync_core::{Cursor, Filter, Transport};
//! use sync_server::SyncService;
//! use sync_store_memory::MemoryStore;
//! use sync_transport_http::{HttpServer, HttpTransport};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let server = HttpServer::new(Arc::new(SyncService::new(MemoryStore::new())))
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let client = HttpTransport::new(server.base_url())?;
//! assert_eq!(client.peer(), server.base_url());
//! let page = client.pull(&Cursor::START, 10, &Filter::default()).await?;
//! assert!(!page.has_more);
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

#[cfg(feature = "client")]
mod client;
mod compression;
mod error;
#[cfg(feature = "server")]
mod server;
mod status;
mod wire;

#[cfg(feature = "client")]
pub use client::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpTransport};
pub use compression::{Compression, MIN_COMPRESSED_BODY};
pub use error::DecompressError;
#[cfg(feature = "server")]
pub use server::{HttpServer, ServerHandle, ServerStats};
pub use status::{ErrorBody, code_for_status, status_for};
pub use wire::{HEALTHZ_PATH, METRICS_PATH, PULL_PATH, PUSH_PATH, PullParams, PushRequest};
