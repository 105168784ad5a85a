//! The server half: [`HttpServer`] adapts HTTP/1.1 requests to a
//! [`SyncService`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use sync_core::{Codec, Error, ErrorCode, EventStore};
use sync_server::{Principal, SyncService};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, warn};

use crate::compression::{Compression, MIN_COMPRESSED_BODY};
use crate::error::DecompressError;
use crate::status::{ErrorBody, status_for};
use crate::wire::{HEALTHZ_PATH, METRICS_PATH, PULL_PATH, PUSH_PATH, PullParams, PushRequest, negotiate_codec};

/// Bodies above this size are decompressed, decoded and encoded on the
/// blocking pool rather than on a runtime worker.
const OFF_THREAD_BYTES: usize = 64 * 1024;

/// Upper bound for the header read (and idle keep-alive) timeout, which
/// otherwise follows `ServerLimits::request_timeout`.
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Pause after a failed `accept` (for example, out of file descriptors) so
/// the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves a [`SyncService`] over HTTP/1.1: `POST /v1/push`, `GET /v1/pull`,
/// `GET /healthz` and `GET /metrics` (see `docs/protocol.md`). Plain HTTP
/// only: terminate TLS at a reverse proxy in front of it.
///
/// ```
/// use std::sync::Arc;
/// use sync_core::{Cursor, Filter, Transport};
/// use sync_server::SyncService;
/// use sync_store_memory::MemoryStore;
/// use sync_transport_http::{HttpServer, HttpTransport};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let service = Arc::new(SyncService::new(MemoryStore::new()));
/// let server = HttpServer::new(service).bind("127.0.0.1:0").await?;
/// let client = HttpTransport::new(server.base_url())?;
/// let page = client.pull(&Cursor::START, 100, &Filter::default()).await?;
/// assert!(page.events.is_empty());
/// server.shutdown().await;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct HttpServer<S> {
    service: Arc<SyncService<S>>,
    metrics: Option<MetricsText>,
    stats: ServerStats,
}

/// Renders the metrics text of `GET /metrics`; see [`HttpServer::metrics`].
type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

impl<S> std::fmt::Debug for HttpServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("metrics", &self.metrics.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Counters of a running server, shared with every clone.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    accepted: Arc<AtomicU64>,
}

impl ServerStats {
    /// TCP connections accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl<S: EventStore> HttpServer<S> {
    /// A server for `service`; its [`SyncService::limits`] bound every request.
    pub fn new(service: Arc<SyncService<S>>) -> Self {
        HttpServer { service, metrics: None, stats: ServerStats::default() }
    }

    /// Serves `GET /metrics` with the Prometheus text `render` returns
    /// (without it, `/metrics` is 404). The server records its metrics
    /// through the `metrics` facade, so any exporter works; with
    /// `metrics-exporter-prometheus`, install its recorder and pass
    /// `move || handle.render()`.
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// The counters of this server, readable while it runs.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Accepts connections on `listener` until `shutdown` completes, then
    /// stops accepting, lets in-flight requests finish (idle keep-alive
    /// connections close at once) and returns.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        // hyper adds this to `Instant::now()`, so keep it far from overflowing.
        let header_timeout = self.service.limits().request_timeout.min(MAX_HEADER_READ_TIMEOUT);
        let shared = Arc::new(Shared {
            node: self.service.store().node_id().to_string(),
            service: self.service,
            metrics: self.metrics,
        });
        let graceful = GracefulShutdown::new();
        let mut shutdown = pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            if let Err(error) = stream.set_nodelay(true) {
                debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("synckit_http_connections_total").increment(1);
            let shared = shared.clone();
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                // Also closes idle keep-alive connections after this long.
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background
    /// task until the returned handle is shut down or dropped.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<ServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stats = self.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async move {
            // A send or a dropped sender both mean "stop".
            let _ = stopped.await;
        }));
        Ok(ServerHandle { local_addr, stats, stop: Some(stop), task: Some(task) })
    }
}

/// A server started by [`HttpServer::bind`]. Dropping it stops accepting
/// connections; [`ServerHandle::shutdown`] also waits for in-flight requests.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stats: ServerStats,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local address>`, for [`crate::HttpTransport::new`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Stops accepting and waits until every open request has been answered.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            warn!(%error, "server task failed");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Shared<S> {
    service: Arc<SyncService<S>>,
    metrics: Option<MetricsText>,
    node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Push,
    Pull,
    Healthz,
    Metrics,
    Unknown,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            PUSH_PATH => Route::Push,
            PULL_PATH => Route::Pull,
            HEALTHZ_PATH => Route::Healthz,
            METRICS_PATH => Route::Metrics,
            _ => Route::Unknown,
        }
    }

    /// The metric label: a fixed set, whatever paths clients try.
    fn label(self) -> &'static str {
        match self {
            Route::Push => "push",
            Route::Pull => "pull",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Unknown => "unknown",
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Push => Method::POST,
            _ => Method::GET,
        }
    }
}

/// An error answer: a status, and the `{code, message}` JSON body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut headers = Vec::new();
        if code == ErrorCode::Unauthorized {
            headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        ApiError { status: status_for(code), code, message: message.into(), headers }
    }

    /// 405: the path exists, the method does not. Code `invalid_input`.
    fn method_not_allowed(route: Route, method: &Method) -> Self {
        let allowed = route.method();
        let mut e = ApiError::new(ErrorCode::InvalidInput, format!("{method} is not allowed here; use {allowed}"));
        e.status = StatusCode::METHOD_NOT_ALLOWED;
        let allow = if allowed == Method::POST { "POST" } else { "GET" };
        e.headers.push((header::ALLOW, HeaderValue::from_static(allow)));
        e
    }

    /// 406: `Accept` names no codec we speak. Code `unsupported_media_type`.
    fn not_acceptable() -> Self {
        let mut e = ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Accept must allow application/x-postcard or application/json",
        );
        e.status = StatusCode::NOT_ACCEPTABLE;
        e
    }

    fn too_large_body(size: Option<u64>, limit: usize) -> Self {
        let message = match size {
            Some(size) => format!("request body is {size} bytes, limit is {limit} bytes"),
            None => format!("request body is over the limit of {limit} bytes"),
        };
        ApiError::new(ErrorCode::TooLarge, message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = ErrorBody { code: self.code, message: self.message };
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"code":"internal","message":"cannot encode the error"}"#.to_vec());
        let mut response = Response::new(Full::new(Bytes::from(bytes)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let code = error.code();
        let message = match &error {
            Error::Remote { message, .. } => message.clone(),
            // Backend details stay in the server log.
            Error::Storage { .. } => {
                error!(%error, "store failed");
                "the store failed; see the server log".to_owned()
            }
            _ => error.to_string(),
        };
        ApiError::new(code, message)
    }
}

type Reply = Result<Response<Full<Bytes>>, ApiError>;

async fn handle<S: EventStore>(shared: Arc<Shared<S>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let route = Route::of(request.uri().path());
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path(),
        status = tracing::field::Empty,
    );
    let limit = shared.service.limits().request_timeout;
    let response = async {
        match tokio::time::timeout(limit, dispatch(&shared, route, request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                debug!(code = %error.code, message = %error.message, "request failed");
                error.into_response()
            }
            Err(_) => ApiError::new(
                ErrorCode::Timeout,
                format!("request took longer than the limit of {} ms", limit.as_millis()),
            )
            .into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("status", status);
    metrics::counter!(
        "synckit_http_requests_total",
        "route" => route.label(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!("synckit_http_request_duration_seconds", "route" => route.label())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn dispatch<S: EventStore>(shared: &Shared<S>, route: Route, request: Request<Incoming>) -> Reply {
    match route {
        Route::Unknown => {
            let path: String = request.uri().path().chars().take(200).collect();
            Err(ApiError::new(ErrorCode::NotFound, format!("no endpoint at {path}; see docs/protocol.md")))
        }
        _ if request.method() != route.method() => Err(ApiError::method_not_allowed(route, request.method())),
        Route::Push => push(shared, request).await,
        Route::Pull => pull(shared, request).await,
        Route::Healthz => healthz(shared),
        Route::Metrics => metrics_text(shared),
    }
}

async fn push<S: EventStore>(shared: &Shared<S>, request: Request<Incoming>) -> Reply {
    let service = &shared.service;
    let limits = *service.limits();
    let (parts, body) = request.into_parts();
    let principal = authenticate(service, &parts.headers)?;
    let codec = content_type(&parts.headers)?;
    let encoding = content_encoding(&parts.headers)?;
    let reply_codec = accept(&parts.headers, codec)?;
    let reply_encoding = accept_encoding(&parts.headers);

    if let Some(length) = content_length(&parts.headers)?
        && length > limits.max_body_bytes as u64
    {
        return Err(ApiError::too_large_body(Some(length), limits.max_body_bytes));
    }
    let body = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(ApiError::too_large_body(None, limits.max_body_bytes));
        }
        Err(error) => {
            return Err(ApiError::new(ErrorCode::Malformed, format!("cannot read the request body: {error}")));
        }
    };
    let heavy = body.len() > OFF_THREAD_BYTES || encoding != Compression::None;
    let cap = limits.max_decompressed_bytes;
    let push: PushRequest = off_thread(heavy, move || {
        let plain = match encoding {
            Compression::None => std::borrow::Cow::Borrowed(&body[..]),
            _ => std::borrow::Cow::Owned(encoding.decompress(&body, cap).map_err(|error| match error {
                DecompressError::TooLarge { .. } => ApiError::new(ErrorCode::TooLarge, format!("request {error}")),
                DecompressError::Corrupt { .. } => ApiError::new(ErrorCode::Malformed, format!("request {error}")),
            })?),
        };
        codec.decode::<PushRequest>(&plain).map_err(ApiError::from)
    })
    .await??;
    let ack = service.push(&principal, push.events).await?;
    encode_reply(&ack, reply_codec, reply_encoding).await
}

async fn pull<S: EventStore>(shared: &Shared<S>, request: Request<Incoming>) -> Reply {
    let service = &shared.service;
    let headers = request.headers();
    let principal = authenticate(service, headers)?;
    // A GET has no body, so with no `Accept` the request's Content-Type
    // (if any) decides, and JSON otherwise: readable with curl.
    let default = match headers.get(header::CONTENT_TYPE) {
        Some(value) => value.to_str().ok().and_then(Codec::from_media_type).unwrap_or(Codec::Json),
        None => Codec::Json,
    };
    let reply_codec = accept(headers, default)?;
    let reply_encoding = accept_encoding(headers);
    let params = PullParams::from_query(request.uri().query().unwrap_or(""))?;
    let page = service.pull(&principal, &params.after, params.limit, &params.filter).await?;
    encode_reply(&page, reply_codec, reply_encoding).await
}

fn healthz<S: EventStore>(shared: &Shared<S>) -> Reply {
    let body = serde_json::json!({ "status": "ok", "node": shared.node });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn metrics_text<S: EventStore>(shared: &Shared<S>) -> Reply {
    let Some(render) = &shared.metrics else {
        return Err(ApiError::new(ErrorCode::NotFound, "this server exports no metrics (none were configured)"));
    };
    let mut response = Response::new(Full::new(Bytes::from(render())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

fn authenticate<S: EventStore>(service: &SyncService<S>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    Ok(service.authenticate(bearer_token(headers))?)
}

/// The token of `Authorization: Bearer <token>`; any other scheme counts
/// as no token.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn content_type(headers: &HeaderMap) -> Result<Codec, ApiError> {
    let unsupported = |got: &str| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type must be application/x-postcard or application/json, got {got:?}"),
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported(""));
    };
    let text = value.to_str().map_err(|_| unsupported("<not ASCII>"))?;
    Codec::from_media_type(text).ok_or_else(|| unsupported(&text.chars().take(100).collect::<String>()))
}

fn content_encoding(headers: &HeaderMap) -> Result<Compression, ApiError> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(Compression::None);
    };
    let text = value.to_str().unwrap_or("<not ASCII>");
    let found = if values.next().is_some() { None } else { Compression::from_content_encoding(text) };
    found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Encoding must be one of gzip, zstd or identity, got {:?}",
                text.chars().take(100).collect::<String>()
            ),
        )
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidInput, "bad Content-Length"))
        })
        .transpose()
}

fn accept(headers: &HeaderMap, default: Codec) -> Result<Codec, ApiError> {
    let joined = joined(headers, header::ACCEPT);
    negotiate_codec(joined.as_deref(), default).map_err(|()| ApiError::not_acceptable())
}

fn accept_encoding(headers: &HeaderMap) -> Compression {
    joined(headers, header::ACCEPT_ENCODING).map(|value| Compression::from_accept_encoding(&value)).unwrap_or_default()
}

/// All values of a list header, joined with `,` (`None` when absent).
fn joined(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then(|| values.join(","))
}

async fn encode_reply<T: Serialize + Send + Sync>(value: &T, codec: Codec, accepted: Compression) -> Reply {
    let body = codec.encode(value)?;
    let compression = if body.len() > MIN_COMPRESSED_BODY { accepted } else { Compression::None };
    let body = match compression {
        Compression::None => body,
        _ => off_thread(body.len() > OFF_THREAD_BYTES, move || compression.compress(&body))
            .await?
            .map_err(|error| ApiError::new(ErrorCode::Internal, format!("cannot compress the reply: {error}")))?,
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec.media_type()));
    headers.insert(header::VARY, HeaderValue::from_static("accept, accept-encoding"));
    if let Some(token) = compression.content_encoding() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
    }
    Ok(response)
}

/// Runs CPU-heavy work on the blocking pool when `heavy`, inline otherwise.
async fn off_thread<T: Send + 'static>(heavy: bool, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    if !heavy {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::new(ErrorCode::Internal, format!("worker failed: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn error_responses_are_json_with_the_mapped_status() {
        let response = ApiError::new(ErrorCode::Unauthorized, "no").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let response = ApiError::method_not_allowed(Route::Push, &Method::GET).into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}
