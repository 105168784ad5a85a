//! The client half: [`HttpTransport`], a [`Transport`] over HTTP/1.1.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sync_core::{Codec, Cursor, Error, ErrorCode, Event, Filter, NodeId, Page, PushAck, Result, Transport};
use tokio::net::TcpStream;
use tracing::debug;

use crate::compression::Compression;
use crate::error::DecompressError;
use crate::status::code_for_status;
use crate::wire::{HEALTHZ_PATH, PULL_PATH, PUSH_PATH, PullParams, PushRequest};

/// Default for [`HttpTransport::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`HttpTransport::max_response_bytes`]: 256 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Pooled connections idle longer than this are not reused. It is below
/// the server's default request timeout (30 s), which is also how long the
/// server keeps an idle connection, so the client normally lets go first
/// and rarely picks a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Most idle connections kept per transport (more are opened while
/// requests run concurrently; the surplus is closed when they finish).
const POOL_MAX_IDLE: usize = 8;

/// A [`Transport`] that talks to an [`crate::HttpServer`] (or any server
/// that follows `docs/protocol.md`) over plain HTTP/1.1, reusing keep-alive
/// connections from one pool per transport (shared by its clones). A
/// request returns only after its connection is back in the pool, so
/// sequential requests use one TCP connection. A request that fails on a
/// reused connection before any answer arrives (the server closed the idle
/// connection meanwhile) is retried once on a new connection; both
/// endpoints are idempotent, so this is safe.
///
/// Only `http://` URLs are accepted: put TLS in a reverse proxy for now.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sync_core::{Codec, Cursor, EventStore, Filter, NewEvent, Transport};
/// use sync_server::SyncService;
/// use sync_store_memory::MemoryStore;
/// use sync_transport_http::{Compression, HttpServer, HttpTransport};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let server = HttpServer::new(Arc::new(SyncService::new(MemoryStore::new())))
///     .bind("127.0.0.1:0")
///     .await?;
///
/// let client = HttpTransport::new(server.base_url())?
///     .codec(Codec::Json)
///     .compression(Compression::Zstd)
///     .bearer_token("secret")
///     .timeout(Duration::from_secs(5));
///
/// // Events made by a local store, pushed to the server and pulled back.
/// let local = MemoryStore::new();
/// local.append(vec![NewEvent::new("note.added", "note-1", "hi")]).await?;
/// let events = local.load(&Cursor::START, 10, &Filter::default(), None).await?.events;
/// let ack = client.push(events.clone()).await?;
/// assert_eq!(ack.results.len(), 1);
/// let page = client.pull(&Cursor::START, 10, &Filter::default()).await?;
/// assert_eq!(page.events, events);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    base: String,
    /// `host[:port]` as written in the base URL, for the `Host` header.
    authority: String,
    /// The base URL's path prefix (no trailing `/`), empty for none.
    prefix: String,
    pool: Arc<Pool>,
    codec: Codec,
    compression: Compression,
    token: Option<String>,
    timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base", &self.base)
            .field("codec", &self.codec)
            .field("compression", &self.compression)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl HttpTransport {
    /// A client of the server at `base_url` (`http://host:port`, optionally
    /// with a path prefix such as `http://host/sync`). Defaults: postcard,
    /// no compression, no token, 30 s timeout.
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        let base = base_url.into().trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|e| Error::invalid(format!("base URL {base:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(Error::invalid(format!(
                "base URL {base:?} must start with http:// (terminate TLS at a proxy)"
            )));
        }
        if uri.authority().is_none() || uri.query().is_some() {
            return Err(Error::invalid(format!(
                "base URL {base:?} must be http://host[:port][/prefix] without a query"
            )));
        }
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let host = uri.host().unwrap_or_default();
        let connect_to = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(HttpTransport {
            base,
            authority,
            prefix,
            pool: Arc::new(Pool { connect_to, idle: Mutex::new(Vec::new()) }),
            codec: Codec::Postcard,
            compression: Compression::None,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// The body encoding of requests, and the one asked for in `Accept`
    /// (default postcard).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Compresses push bodies with `compression` and asks the server, in
    /// `Accept-Encoding`, to compress answers the same way (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The longest a whole request (connect, send, read the answer) may
    /// take before it fails with [`Error::Timeout`] (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest answer accepted, before and after decompression
    /// (default 256 MiB); a larger one fails with code `too_large`.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    fn request(&self, method: Method, path_and_query: &str, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let uri = format!("{}{path_and_query}", self.prefix);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, self.codec.media_type())
            .header(header::USER_AGENT, concat!("synckit-http/", env!("CARGO_PKG_VERSION")));
        if method == Method::POST {
            builder = builder.header(header::CONTENT_TYPE, self.codec.media_type());
            if let Some(token) = self.compression.content_encoding() {
                builder = builder.header(header::CONTENT_ENCODING, token);
            }
        }
        if let Some(token) = self.compression.content_encoding() {
            builder = builder.header(header::ACCEPT_ENCODING, token);
        }
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::invalid("bearer token has characters not allowed in a header"))?;
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(Full::new(body)).map_err(|e| Error::invalid(format!("cannot build a request for {uri:?}: {e}")))
    }

    /// Sends a request (made by `make`, twice if the first try hit a
    /// connection the server had closed) and returns the decoded answer,
    /// all within the timeout.
    async fn exchange<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        make: impl Fn() -> Result<Request<Full<Bytes>>>,
    ) -> Result<T> {
        let work = async {
            let unavailable = |e: &dyn std::error::Error| Error::Unavailable {
                message: format!("{action} {}: {}", self.base, chain(e)),
            };
            let request = make()?;
            let (response, mut sender) = self.send(request, &make).await.map_err(|e| unavailable(&*e))?;
            let (parts, body) = response.into_parts();
            let limit = self.max_response_bytes;
            let too_large = |size: Option<u64>| Error::TooLarge {
                what: format!("answer to {action}"),
                size: size.map_or(limit.saturating_add(1), |s| s.try_into().unwrap_or(usize::MAX)),
                limit,
            };
            let raw = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() => {
                    let length = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
                    return Err(too_large(length));
                }
                Err(e) => {
                    return Err(Error::Unavailable {
                        message: format!("{action} {}: reading the answer: {e}", self.base),
                    });
                }
            };
            // Back into the pool before returning, so that the next
            // request finds it idle (a `Connection: close` answer, or a
            // broken connection, fails `ready` and is dropped).
            if sender.ready().await.is_ok() {
                self.pool.checkin(sender);
            }
            let encoding = match parts.headers.get(header::CONTENT_ENCODING) {
                None => Compression::None,
                Some(value) => {
                    value.to_str().ok().and_then(Compression::from_content_encoding).ok_or_else(|| Error::Decode {
                        format: "http",
                        message: format!("answer has an unknown Content-Encoding {value:?}"),
                    })?
                }
            };
            let body = encoding.decompress(&raw, limit).map_err(|e| match e {
                DecompressError::TooLarge { .. } => too_large(None),
                DecompressError::Corrupt { source: e } => {
                    Error::Decode { format: "http", message: format!("answer does not decompress: {e}") }
                }
            })?;
            if !parts.status.is_success() {
                return Err(remote_error(parts.status, &body));
            }
            let codec = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(Codec::from_media_type)
                .unwrap_or(self.codec);
            codec.decode(&body)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                action: format!("{action} {}", self.base),
                millis: self.timeout.as_millis().try_into().unwrap_or(u64::MAX),
            }),
        }
    }

    /// Sends `request` on an idle pooled connection, or on a new one if
    /// there is none or the pooled one fails before answering (then with a
    /// second request from `make`).
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        make: &impl Fn() -> Result<Request<Full<Bytes>>>,
    ) -> Result<(Response<Incoming>, SendRequest<Full<Bytes>>), BoxError> {
        let request = match self.pool.checkout() {
            None => request,
            Some(mut sender) => match sender.send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(error) => {
                    debug!(%error, "pooled connection failed before answering; retrying on a new one");
                    make()?
                }
            },
        };
        let mut sender = self.pool.connect().await?;
        let response = sender.send_request(request).await?;
        Ok((response, sender))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle keep-alive connections to one server.
struct Pool {
    /// `host:port` to dial.
    connect_to: String,
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((sender, since)) = idle.pop() {
            if since.elapsed() < POOL_IDLE_TIMEOUT && sender.is_ready() {
                return Some(sender);
            }
            // Dropping the last sender closes the connection.
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < POOL_MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let stream = TcpStream::connect(&self.connect_to).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// `compression(true)` on the sync manager selects zstd; `false` turns
/// compression off. [`HttpTransport::compression`] picks gzip or zstd exactly.
impl sync_core::CompressRequests for HttpTransport {
    fn with_compression(self, enabled: bool) -> Self {
        self.compression(if enabled { Compression::Zstd } else { Compression::None })
    }
}

impl Transport for HttpTransport {
    fn peer(&self) -> &str {
        &self.base
    }

    /// Asks `GET /healthz` for the server store's node id.
    async fn peer_id(&self) -> Result<NodeId> {
        #[derive(Deserialize)]
        struct Health {
            node: NodeId,
        }
        let health: Health =
            self.exchange("health check of", || self.request(Method::GET, HEALTHZ_PATH, Bytes::new())).await?;
        Ok(health.node)
    }

    async fn push(&self, events: Vec<Event>) -> Result<PushAck> {
        let body = self.codec.encode(&PushRequest { events })?;
        let body = match self.compression {
            Compression::None => body,
            compression => {
                compression.compress(&body).map_err(|e| Error::invalid(format!("cannot compress the push: {e}")))?
            }
        };
        let body = Bytes::from(body);
        self.exchange("push to", || self.request(Method::POST, PUSH_PATH, body.clone())).await
    }

    async fn pull(&self, after: &Cursor, limit: usize, filter: &Filter) -> Result<Page> {
        let params = PullParams { after: *after, limit, filter: filter.clone() };
        let path = format!("{PULL_PATH}?{}", params.to_query());
        self.exchange("pull from", || self.request(Method::GET, &path, Bytes::new())).await
    }
}

/// An error answer as [`Error::Remote`]: the code and message of the JSON
/// body when it has them, else a code chosen by the status.
fn remote_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(Deserialize)]
    struct Wire {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    let wire = serde_json::from_slice::<Wire>(body).ok();
    let code = wire
        .as_ref()
        .and_then(|w| w.code.clone())
        .and_then(|c| serde_json::from_value::<ErrorCode>(c).ok())
        .unwrap_or_else(|| code_for_status(status));
    let message = match wire.and_then(|w| w.message) {
        Some(message) => message,
        None => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            format!("HTTP {status}: {}", text.trim())
        }
    };
    Error::Remote { code, message }
}

/// An error and its sources, one line (hyper's top-level messages alone
/// say little, e.g. "client error (Connect)").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(HttpTransport::new("http://127.0.0.1:1").is_ok());
        assert_eq!(HttpTransport::new("http://example.test/sync/").unwrap().peer(), "http://example.test/sync");
        for bad in ["https://example.test", "example.test", "http://", "http://h/?a=b", ""] {
            assert_eq!(HttpTransport::new(bad).unwrap_err().code(), ErrorCode::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn error_bodies_map_to_codes() {
        let code =
            |status: u16, body: &str| remote_error(StatusCode::from_u16(status).unwrap(), body.as_bytes()).code();
        assert_eq!(code(400, r#"{"code":"bad_cursor","message":"x"}"#), ErrorCode::BadCursor);
        assert_eq!(code(400, r#"{"code":"from_the_future","message":"x"}"#), ErrorCode::InvalidInput);
        assert_eq!(code(502, "<html>bad gateway</html>"), ErrorCode::Unavailable);
        assert_eq!(code(504, ""), ErrorCode::Timeout);
        let err = remote_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert!(err.to_string().contains("upstream down"), "{err}");
    }
}
