//! # Example 07: structured logging
//!
//! synckit logs through [`tracing`]. This example installs a
//! `tracing-subscriber` that writes one JSON object per line to stdout, with
//! an env filter, and runs a sync over HTTP so you can see what each part emits:
//!
//! - the manager's `sync` span (`peer`, `push`, `pull`) and its `sync done`
//!   event (`pushed`, `pulled`, `conflicts`, `rejected`, `ms`), or `sync failed`;
//! - the server's `http_request` span (`method`, `path`, `status`; closing
//!   it logs the status and timings) and the service's `push` event
//!   (`principal`, `inserted`, `duplicates`, `rejected`);
//! - this program's own `client` span (`user`), which encloses the manager's
//!   `sync` span: the `spans` list of each line shows the nesting.
//!
//! A second client with an unknown token shows the failure path (HTTP 401).
//!
//! Run it with `cargo run -p example-07-structured-logging`, and choose
//! what to see with `RUST_LOG`, e.g.
//! `RUST_LOG=debug cargo run -p example-07-structured-logging | jq .`
//! (the default is `info,sync_server=debug`).

use std::path::Path;
use std::sync::Arc;

use sync_core::NewEvent;
use sync_manager::SyncManager;
use sync_server::{StaticTokens, SyncService};
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};
use tracing::{Instrument, info, info_span, warn};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> BoxResult<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sync_server=debug"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true) // event fields at the top level, next to "message"
        .with_current_span(true) // "span": the innermost span (on close lines: the closing one)
        .with_span_list(true) // "spans": every enclosing span and its fields, outermost first
        .with_span_events(FmtSpan::CLOSE) // one line per closed span, with its timings
        .with_writer(std::io::stdout)
        .init();

    let dir = tempfile::tempdir()?;
    let tokens = StaticTokens::from_json(r#"{"alice-secret": {"name": "alice"}}"#)?;
    let service = SyncService::new(open(dir.path(), "server").await?).with_authorizer(tokens);
    let server = HttpServer::new(Arc::new(service)).bind("127.0.0.1:0").await?;
    info!(url = %server.base_url(), "server started");

    let alice = SyncManager::builder(open(dir.path(), "alice").await?)
        .transport(HttpTransport::new(server.base_url())?.bearer_token("alice-secret"))
        .build()?;
    async {
        let events =
            vec![NewEvent::new("note.added", "note-1", "structured"), NewEvent::new("note.added", "note-2", "logging")];
        let outcome = alice.append(events).await?;
        info!(inserted = outcome.inserted.len(), "appended local events");
        let result = alice.sync().await?;
        info!(pushed = result.pushed, pulled = result.pulled, "alice is in sync");
        Ok::<_, sync_core::Error>(())
    }
    .instrument(info_span!("client", user = "alice"))
    .await?;

    let mallory = SyncManager::builder(open(dir.path(), "mallory").await?)
        .transport(HttpTransport::new(server.base_url())?.bearer_token("guessed"))
        .build()?;
    let refused = mallory.sync().instrument(info_span!("client", user = "mallory")).await;
    match refused {
        Err(e) => warn!(code = %e.code(), "mallory was refused, as expected"),
        Ok(_) => return Err("a client with an unknown token was let in".into()),
    }

    server.shutdown().await;
    info!("server stopped");
    Ok(())
}

async fn open(dir: &Path, name: &str) -> BoxResult<SqliteStore> {
    Ok(SqliteStore::open(SqliteConfig::new(dir.join(format!("{name}.db")))).await?)
}
