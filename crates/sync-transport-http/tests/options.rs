//! Every client and server option has an observable effect; keep-alive,
//! content negotiation, response compression, health, graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ALICE, Fixture, OPS, Tap, events, raw, request};
use sync_core::raw::Replica;
use sync_core::{Codec, Cursor, ErrorCode, Event, EventStore, Filter, Hlc, NewEvent, NodeId, Page, PushAck, Transport};
use sync_server::{ServerLimits, SyncService};
use sync_store_memory::MemoryStore;
use sync_transport_http::{Compression, HttpServer, HttpTransport};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `n` events with 1 KiB of poorly compressible data each.
fn big_events(n: usize) -> Vec<Event> {
    let mut book = Replica::new(NodeId::random());
    (0..n)
        .map(|i| {
            let data: Vec<u8> =
                (0..1024u32).map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i as u32 * 97) >> 13) as u8).collect();
            let e = NewEvent::new("blob.put", format!("todo-{i}"), data).with_metadata("tenant", "acme");
            book.stamp(e, Hlc::now_ms()).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_connection() {
    let f = Fixture::start(ServerLimits::default()).await;
    let client = f.client();
    let sent = events(30, "todo-", "acme");
    for chunk in sent.chunks(3) {
        client.push(chunk.to_vec()).await.unwrap();
        client.pull(&Cursor::START, 5, &Filter::default()).await.unwrap();
    }
    // 20 requests, one connection; clones share the pool.
    assert_eq!(f.server.stats().accepted_connections(), 1);
    let clone = client.clone();
    clone.pull(&Cursor::START, 5, &Filter::default()).await.unwrap();
    assert_eq!(f.server.stats().accepted_connections(), 1);

    // Concurrent requests need more connections; afterwards they are all
    // pooled, and sequential requests open no more.
    let everything = Filter::default();
    let pulls = (0..4).map(|_| client.pull(&Cursor::START, 5, &everything));
    for page in futures_join_all(pulls).await {
        page.unwrap();
    }
    let after_burst = f.server.stats().accepted_connections();
    assert!((1..=4).contains(&after_burst), "{after_burst}");
    for _ in 0..20 {
        client.pull(&Cursor::START, 5, &Filter::default()).await.unwrap();
    }
    assert_eq!(f.server.stats().accepted_connections(), after_burst);

    // A second transport has its own pool.
    f.client().pull(&Cursor::START, 5, &Filter::default()).await.unwrap();
    assert_eq!(f.server.stats().accepted_connections(), after_burst + 1);
}

/// Runs futures concurrently on one task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *output = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// The server is replaced (new process, new store) at the same address: the
/// client's pooled connection is dead, the request is retried on a new one,
/// and the old cursor is answered with bad_cursor, the signal to resync
/// from `0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_server_is_reached_again_and_old_cursors_say_resync() {
    let old = Fixture::start(ServerLimits::default()).await;
    let addr = old.addr();
    let client = old.client();
    client.push(events(3, "todo-", "acme")).await.unwrap();
    let page = client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    old.server.shutdown().await;

    let store = MemoryStore::new();
    let service = SyncService::new(store.clone());
    let _new = HttpServer::new(Arc::new(service)).bind(addr).await.unwrap();
    let err = client.pull(&page.next, 10, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadCursor, "{err}");
    let fresh = client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    assert!(fresh.events.is_empty());
    // Pushing everything again is cheap and safe.
    let ack = client.push(page.events.clone()).await.unwrap();
    assert_eq!(ack.count(sync_core::PushStatus::Accepted), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_option_sets_content_type_and_accept() {
    let f = Fixture::start(ServerLimits::default()).await;
    let tap = Tap::start(f.addr()).await;
    let sent = events(2, "todo-", "acme");
    for (codec, media) in [(Codec::Postcard, "application/x-postcard"), (Codec::Json, "application/json")] {
        tap.clear();
        let client = HttpTransport::new(tap.base_url()).unwrap().bearer_token(OPS).codec(codec);
        client.push(sent.clone()).await.unwrap();
        let page = client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
        assert_eq!(page.events, sent);
        let out = tap.sent_text();
        assert!(out.contains(&format!("content-type: {media}\r\n")), "{out}");
        assert!(out.contains(&format!("accept: {media}\r\n")), "{out}");
        let back = tap.received_text();
        assert_eq!(back.matches(&format!("content-type: {media}\r\n")).count(), 2, "{back}");
    }
    // The default is postcard.
    tap.clear();
    let client = HttpTransport::new(tap.base_url()).unwrap().bearer_token(OPS);
    client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    assert!(tap.sent_text().contains("accept: application/x-postcard\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_option_compresses_pushes_and_asks_for_compressed_answers() {
    let f = Fixture::start(ServerLimits::default()).await;
    let tap = Tap::start(f.addr()).await;
    let mut all = Vec::new();
    for (compression, token, magic) in
        [(Compression::Zstd, "zstd", &ZSTD_MAGIC[..]), (Compression::Gzip, "gzip", &GZIP_MAGIC[..])]
    {
        tap.clear();
        let client = HttpTransport::new(tap.base_url()).unwrap().bearer_token(OPS).compression(compression);
        let batch = big_events(4);
        client.push(batch.clone()).await.unwrap();
        all.extend(batch);
        let sent = tap.sent_bytes();
        let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&sent[..head_end]);
        assert!(head.contains(&format!("content-encoding: {token}\r\n")), "{head}");
        assert!(head.contains(&format!("accept-encoding: {token}\r\n")), "{head}");
        assert!(sent[head_end..].starts_with(magic));
        // The ack (4 results, under 1 KiB) comes back plain.
        assert!(!tap.received_text().contains("content-encoding"));

        tap.clear();
        let page = client.pull(&Cursor::START, 100, &Filter::default()).await.unwrap();
        assert_eq!(page.events, all);
        let back = tap.received_text();
        assert!(back.contains(&format!("content-encoding: {token}\r\n")), "{back}");
    }
    // Without the option nothing is compressed either way.
    tap.clear();
    let plain = HttpTransport::new(tap.base_url()).unwrap().bearer_token(OPS);
    plain.push(big_events(4)).await.unwrap();
    plain.pull(&Cursor::START, 100, &Filter::default()).await.unwrap();
    assert!(!tap.sent_text().contains("content-encoding"));
    assert!(!tap.sent_text().contains("accept-encoding"));
    assert!(!tap.received_text().contains("content-encoding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_option_sends_the_token() {
    let f = Fixture::start(ServerLimits::default()).await;
    let tap = Tap::start(f.addr()).await;
    let base = HttpTransport::new(tap.base_url()).unwrap();
    let err = base.pull(&Cursor::START, 1, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert!(!tap.sent_text().contains("authorization"));
    let alice = base.bearer_token(ALICE);
    alice.pull(&Cursor::START, 1, &Filter::default()).await.unwrap();
    assert!(tap.sent_text().contains(&format!("authorization: Bearer {ALICE}\r\n")));
    // Header-breaking tokens are refused locally.
    let bad = HttpTransport::new(tap.base_url()).unwrap().bearer_token("a\r\nb");
    let err = bad.pull(&Cursor::START, 1, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_option_bounds_a_request_to_a_silent_server() {
    // A "server" that accepts and reads but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = held_tx.send(socket);
        }
    });
    let client = HttpTransport::new(format!("http://{addr}")).unwrap().timeout(Duration::from_millis(200));
    let err = client.pull(&Cursor::START, 1, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.to_string().contains("200 ms"), "{err}");
    let err = client.push(events(1, "todo-", "acme")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(held_rx.recv().await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpTransport::new(format!("http://{addr}")).unwrap();
    let err = client.pull(&Cursor::START, 1, &Filter::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_response_bytes_option_caps_answers_before_and_after_decompression() {
    let f = Fixture::start(ServerLimits::default()).await;
    f.client().push(big_events(20)).await.unwrap();
    for compression in [Compression::None, Compression::Zstd] {
        let small = f.client().compression(compression).max_response_bytes(8 * 1024);
        let err = small.pull(&Cursor::START, 100, &Filter::default()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge, "{err}");
        let page = small.pull(&Cursor::START, 2, &Filter::default()).await.unwrap();
        assert_eq!(page.events.len(), 2);
    }
    // A compressed answer under the cap on the wire but over it unpacked.
    let zeros: Vec<Event> = {
        let mut book = Replica::new(NodeId::random());
        vec![book.stamp(NewEvent::new("k", "todo-z", vec![0u8; 64 * 1024]), Hlc::now_ms()).unwrap()]
    };
    f.client().push(zeros).await.unwrap();
    let page = f.client().pull(&Cursor::START, 100, &Filter::default()).await.unwrap();
    let tail = Cursor::new(f.store.node_id(), 20);
    assert_eq!(page.events.len(), 21);
    let err = f
        .client()
        .compression(Compression::Gzip)
        .max_response_bytes(32 * 1024)
        .pull(&tail, 100, &Filter::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_page_events_lowers_large_limits() {
    let f = Fixture::start(ServerLimits { max_page_events: 5, ..ServerLimits::default() }).await;
    f.client().push(events(12, "todo-", "acme")).await.unwrap();
    let page = f.client().pull(&Cursor::START, 1000, &Filter::default()).await.unwrap();
    assert_eq!((page.events.len(), page.has_more), (5, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_accept_and_accept_encoding() {
    let f = Fixture::start(ServerLimits::default()).await;
    let stored = big_events(3);
    f.client().push(stored.clone()).await.unwrap();
    let auth = format!("Bearer {OPS}");
    let one = Codec::Postcard.encode(&sync_transport_http::PushRequest { events: stored[..1].to_vec() }).unwrap();

    // Push: no Accept or */* → the request's codec; otherwise as asked.
    for (accept, expect) in [
        (None, Codec::Postcard),
        (Some("*/*"), Codec::Postcard),
        (Some("application/json"), Codec::Json),
        (Some("text/html, application/x-postcard;q=0.2, application/json;q=0.9"), Codec::Json),
    ] {
        let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/x-postcard")];
        headers.extend(accept.map(|a| ("Accept", a)));
        let answer = raw(f.addr(), &request("POST", "/v1/push", &headers, Some(&one))).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some(expect.media_type()));
        let ack: PushAck = expect.decode(&answer.body).unwrap();
        assert_eq!(ack.results[0].status, sync_core::PushStatus::Duplicate);
    }

    // Pull: JSON without Accept; compressed only when asked and > 1 KiB.
    let pull = |accept: Option<&'static str>, encoding: Option<&'static str>, limit: usize| {
        let auth = auth.clone();
        let addr = f.addr();
        async move {
            let mut headers = vec![("Authorization", auth.as_str())];
            headers.extend(accept.map(|a| ("Accept", a)));
            headers.extend(encoding.map(|e| ("Accept-Encoding", e)));
            raw(addr, &request("GET", &format!("/v1/pull?limit={limit}"), &headers, None)).await
        }
    };
    let answer = pull(None, None, 10).await;
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("content-encoding"), None);
    let page: Page = Codec::Json.decode(&answer.body).unwrap();
    assert_eq!(page.events, stored);

    for (accept_encoding, expect) in [
        ("gzip, zstd", Compression::Zstd),
        ("gzip", Compression::Gzip),
        ("zstd;q=0, gzip", Compression::Gzip),
        ("br", Compression::None),
    ] {
        let answer = pull(Some("application/x-postcard"), Some(accept_encoding), 10).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-encoding"), expect.content_encoding());
        assert_eq!(answer.header("vary"), Some("accept, accept-encoding"));
        let body = expect.decompress(&answer.body, 1 << 20).unwrap();
        let page: Page = Codec::Postcard.decode(&body).unwrap();
        assert_eq!(page.events, stored);
    }
    // An empty page is far below 1 KiB: never compressed.
    let head = f.store.head().await.unwrap();
    let auth2 = auth.clone();
    let answer = raw(
        f.addr(),
        &request(
            "GET",
            &format!("/v1/pull?after={head}"),
            &[("Authorization", auth2.as_str()), ("Accept-Encoding", "zstd")],
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_the_node_and_needs_no_token() {
    let f = Fixture::start(ServerLimits::default()).await;
    let answer = raw(f.addr(), &request("GET", "/healthz", &[], None)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json(), serde_json::json!({"status": "ok", "node": f.store.node_id().to_string()}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_a_handle_is_404() {
    let f = Fixture::start(ServerLimits::default()).await;
    let answer = raw(f.addr(), &request("GET", "/metrics", &[], None)).await;
    answer.assert_error(404, "not_found");
    assert!(answer.json()["message"].as_str().unwrap().contains("no metrics"));
}

/// Shutdown lets a request that is already in flight finish, then stops
/// accepting. `Expect: 100-continue` tells us when the server is reading
/// the body, i.e. the request is in flight; refused connections tell us
/// shutdown has begun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let f = Fixture::start(ServerLimits::default()).await;
    let addr = f.addr();
    // An idle pooled connection does not hold shutdown up.
    f.client().pull(&Cursor::START, 1, &Filter::default()).await.unwrap();

    let body =
        Codec::Postcard.encode(&sync_transport_http::PushRequest { events: events(2, "todo-", "acme") }).unwrap();
    let auth = format!("Bearer {OPS}");
    let length = body.len().to_string();
    let head = request(
        "POST",
        "/v1/push",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-postcard"),
            ("Content-Length", &length),
            ("Expect", "100-continue"),
        ],
        None,
    );
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight.write_all(&head).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut in_flight, &mut byte).await.unwrap();
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100 "), "{:?}", String::from_utf8_lossy(&interim));

    let Fixture { store, server } = f;
    let stopping = tokio::spawn(server.shutdown());
    while TcpStream::connect(addr).await.is_ok() {
        tokio::task::yield_now().await;
    }
    in_flight.write_all(&body).await.unwrap();
    let answer = common::read_response(&mut in_flight).await;
    assert_eq!(answer.status, 200);
    stopping.await.unwrap();
    assert_eq!(store.head().await.unwrap().seq_for(store.node_id()).unwrap(), 2);
}
