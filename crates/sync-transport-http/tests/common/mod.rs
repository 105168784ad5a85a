//! Helpers shared by the integration tests: a raw HTTP/1.1 client on a
//! plain TCP socket, a server fixture with tokens, event factories, and a
//! tapping TCP proxy that records what a client sends.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sync_core::raw::Replica;
use sync_core::{Cursor, Event, EventStore, Filter, Hlc, NewEvent, NodeId, Transport};
use sync_server::{Principal, ServerLimits, StaticTokens, SyncService};
use sync_store_memory::MemoryStore;
use sync_transport_http::{HttpServer, HttpTransport, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const OPS: &str = "token-ops";
pub const ALICE: &str = "token-alice";

/// A response read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error answer: the status, a JSON content type, and a
    /// `{code, message}` body with this code and a non-empty message.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/json"));
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
        assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    }
}

/// Writes `request` as is on a fresh connection and reads one response
/// (head, then `Content-Length` bytes of body, or to EOF without one).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    read_response(&mut stream).await
}

pub async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read response head");
        assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = buf[head_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body).await.expect("read body");
        }
    }
    Raw { status, headers, body }
}

/// A request with `Connection: close` and, when `body` is set, a
/// `Content-Length`.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    out
}

/// `n` valid events from one fresh node, spread over three aggregates
/// `{agg}0..2`, with metadata `tenant`.
pub fn events(n: usize, agg: &str, tenant: &str) -> Vec<Event> {
    let mut book = Replica::new(NodeId::random());
    (0..n)
        .map(|i| {
            let e = NewEvent::new("todo.renamed", format!("{agg}{}", i % 3), format!("payload {i}"))
                .with_metadata("tenant", tenant);
            book.stamp(e, Hlc::now_ms()).expect("valid")
        })
        .collect()
}

/// A server over a [`MemoryStore`] with two tokens: [`OPS`] (unrestricted)
/// and [`ALICE`] (tenant `acme`, aggregates `todo-*`).
pub struct Fixture {
    pub store: MemoryStore,
    pub server: ServerHandle,
}

impl Fixture {
    pub async fn start(limits: ServerLimits) -> Fixture {
        let store = MemoryStore::new();
        let tokens = StaticTokens::new().with(OPS, Principal::unrestricted("ops")).with(
            ALICE,
            Principal { name: "alice".into(), tenant: Some("acme".into()), aggregate_prefixes: vec!["todo-".into()] },
        );
        let service = SyncService::new(store.clone()).with_authorizer(tokens).with_limits(limits);
        let server = HttpServer::new(Arc::new(service)).bind("127.0.0.1:0").await.expect("bind");
        Fixture { store, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn client(&self) -> HttpTransport {
        HttpTransport::new(self.server.base_url()).unwrap().bearer_token(OPS)
    }

    /// The store's head and every event in it.
    pub async fn snapshot(&self) -> (Cursor, Vec<Event>) {
        let head = self.store.head().await.unwrap();
        let all = self.store.load(&Cursor::START, 1_000_000, &Filter::default(), None).await.unwrap();
        assert!(!all.has_more);
        (head, all.events)
    }

    /// A normal client still gets a full, correct pull.
    pub async fn assert_serving(&self, expected: &[Event]) {
        let page =
            self.client().pull(&Cursor::START, 10_000, &Filter::default()).await.expect("a normal pull still succeeds");
        assert_eq!(page.events, expected);
    }
}

/// A TCP proxy in front of `upstream` that counts connections and records
/// both directions of every connection, so tests can see the exact bytes
/// a client sends and receives.
pub struct Tap {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    pub sent: Arc<Mutex<Vec<u8>>>,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    pub async fn start(upstream: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap = Tap {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            sent: Arc::default(),
            received: Arc::default(),
        };
        let (connections, sent, received) = (tap.connections.clone(), tap.sent.clone(), tap.received.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let server = TcpStream::connect(upstream).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, sent.clone()));
                tokio::spawn(pipe(sr, cw, received.clone()));
            }
        });
        tap
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Everything clients sent so far, lossily as text.
    pub fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    pub fn sent_bytes(&self) -> Vec<u8> {
        self.sent.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.sent.lock().unwrap().clear();
        self.received.lock().unwrap().clear();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        record.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
