//! Hostile and broken requests, sent on raw sockets: each gets the right
//! 4xx and a `{code, message}` JSON body, leaves the store exactly as it
//! was, and does not stop the server from serving a normal client at the
//! same time and afterwards.

mod common;

use std::io::Write;

use common::{ALICE, Fixture, OPS, Raw, events, raw, request};
use sync_core::{Codec, Cursor, NodeId, PushAck, PushStatus, Transport};
use sync_server::ServerLimits;
use sync_transport_http::PushRequest;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BODY_LIMIT: usize = 512 * 1024;
const DECOMPRESSED_LIMIT: usize = 8 << 20;
/// What the bombs expand to.
const BOMB_BYTES: usize = 100 << 20;

/// A server holding a few events already.
async fn fixture() -> (Fixture, Vec<sync_core::Event>) {
    let fixture = Fixture::start(ServerLimits {
        max_body_bytes: BODY_LIMIT,
        max_decompressed_bytes: DECOMPRESSED_LIMIT,
        ..ServerLimits::default()
    })
    .await;
    let seed = events(4, "todo-", "acme");
    fixture.client().push(seed.clone()).await.unwrap();
    (fixture, seed)
}

/// Sends `bytes` on a raw socket while a normal client pulls, then checks
/// that the store is unchanged and a normal client is still served.
async fn hostile(fixture: &Fixture, bytes: Vec<u8>) -> Raw {
    let before = fixture.snapshot().await;
    let (answer, ()) = tokio::join!(raw(fixture.addr(), &bytes), fixture.assert_serving(&before.1));
    assert_eq!(fixture.snapshot().await, before, "the store changed");
    fixture.assert_serving(&before.1).await;
    answer
}

fn auth() -> String {
    format!("Bearer {OPS}")
}

fn push(content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let auth = auth();
    let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", content_type)];
    headers.extend_from_slice(extra);
    request("POST", "/v1/push", &headers, Some(body))
}

fn pull(query: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request("GET", &format!("/v1/pull?{query}"), &headers, None)
}

fn postcard_push(n: usize) -> Vec<u8> {
    Codec::Postcard.encode(&PushRequest { events: events(n, "todo-", "acme") }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_malformed() {
    let (f, _) = fixture().await;
    for body in [&b"{\"events\": ["[..], b"not json", b"{\"events\": 5}", b""] {
        hostile(&f, push("application/json", &[], body)).await.assert_error(400, "malformed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_postcard_is_400_malformed() {
    let (f, _) = fixture().await;
    // A length of 5 events followed by garbage; a huge declared length;
    // a valid request with trailing bytes.
    let mut trailing = postcard_push(1);
    trailing.push(0);
    for body in
        [vec![5, 0xff, 0xfe, 0x00, 0x13], vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], trailing]
    {
        hostile(&f, push("application/x-postcard", &[], &body)).await.assert_error(400, "malformed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_postcard_is_400_malformed() {
    let (f, _) = fixture().await;
    let body = postcard_push(3);
    for cut in [1, body.len() / 3, body.len() / 2, body.len() - 1] {
        hostile(&f, push("application/x-postcard", &[], &body[..cut])).await.assert_error(400, "malformed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_is_413_without_inflating_it() {
    let (f, _) = fixture().await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB_BYTES / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < BODY_LIMIT, "bomb is {} bytes", bomb.len());
    let answer = hostile(&f, push("application/x-postcard", &[("Content-Encoding", "gzip")], &bomb)).await;
    answer.assert_error(413, "too_large");
    assert!(answer.json()["message"].as_str().unwrap().contains("decompresses"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_bomb_is_413_without_inflating_it() {
    let (f, _) = fixture().await;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB_BYTES / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < BODY_LIMIT, "bomb is {} bytes", bomb.len());
    let answer = hostile(&f, push("application/json", &[("Content-Encoding", "zstd")], &bomb)).await;
    answer.assert_error(413, "too_large");
    assert!(answer.json()["message"].as_str().unwrap().contains("decompresses"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_compressed_bodies_are_400_malformed() {
    let (f, _) = fixture().await;
    let body = postcard_push(2);
    for encoding in ["gzip", "zstd"] {
        hostile(&f, push("application/x-postcard", &[("Content-Encoding", encoding)], &body))
            .await
            .assert_error(400, "malformed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_over_the_limit_is_413_before_reading() {
    let (f, _) = fixture().await;
    // The head announces a body one byte over the limit; none is sent, so
    // only an up-front check can answer.
    let auth = auth();
    let length = (BODY_LIMIT + 1).to_string();
    let head = request(
        "POST",
        "/v1/push",
        &[("Authorization", &auth), ("Content-Type", "application/x-postcard"), ("Content-Length", &length)],
        None,
    );
    let answer = hostile(&f, head).await;
    answer.assert_error(413, "too_large");
    assert!(answer.json()["message"].as_str().unwrap().contains(&length));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413_while_reading() {
    let (f, _) = fixture().await;
    let auth = auth();
    let mut bytes = request(
        "POST",
        "/v1/push",
        &[("Authorization", &auth), ("Content-Type", "application/x-postcard"), ("Transfer-Encoding", "chunked")],
        None,
    );
    // Exactly the limit in 16 KiB chunks, then one more byte. The final
    // byte is the last thing sent (no CRLF, no end chunk), so the server
    // has read everything when it answers and closes.
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..BODY_LIMIT / chunk.len() {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"1\r\nx");
    let answer = hostile(&f, bytes).await;
    answer.assert_error(413, "too_large");
    assert!(answer.json()["message"].as_str().unwrap().contains("over the limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_content_type_is_415() {
    let (f, _) = fixture().await;
    let body = postcard_push(1);
    for content_type in ["text/plain", "application/octet-stream", "application/jsonx"] {
        hostile(&f, push(content_type, &[], &body)).await.assert_error(415, "unsupported_media_type");
    }
    let auth = auth();
    let no_type = request("POST", "/v1/push", &[("Authorization", &auth)], Some(&body));
    hostile(&f, no_type).await.assert_error(415, "unsupported_media_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_content_encoding_is_415() {
    let (f, _) = fixture().await;
    let body = postcard_push(1);
    for encoding in ["br", "deflate", "gzip, zstd", "compress"] {
        hostile(&f, push("application/x-postcard", &[("Content-Encoding", encoding)], &body))
            .await
            .assert_error(415, "unsupported_media_type");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_naming_no_codec_is_406() {
    let (f, _) = fixture().await;
    let body = postcard_push(1);
    let answer = hostile(&f, push("application/x-postcard", &[("Accept", "text/html")], &body)).await;
    answer.assert_error(406, "unsupported_media_type");
    let auth = auth();
    let answer =
        hostile(&f, request("GET", "/v1/pull", &[("Authorization", &auth), ("Accept", "application/xml")], None)).await;
    answer.assert_error(406, "unsupported_media_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_of_another_store_is_400_bad_cursor() {
    let (f, _) = fixture().await;
    let foreign = Cursor::new(NodeId::random(), 2).to_string();
    let answer = hostile(&f, pull(&format!("after={foreign}"), Some(OPS))).await;
    answer.assert_error(400, "bad_cursor");
}

/// A cursor of the server's store past its head (as after a restore of the
/// server from an older copy) is refused, never answered with an empty page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_head_is_400_bad_cursor() {
    let (f, seed) = fixture().await;
    let node = sync_core::EventStore::node_id(&f.store);
    let ahead = Cursor::new(node, seed.len() as u128 + 1_000).to_string();
    let answer = hostile(&f, pull(&format!("after={ahead}"), Some(OPS))).await;
    answer.assert_error(400, "bad_cursor");
    let head = Cursor::new(node, seed.len() as u128).to_string();
    assert_eq!(hostile(&f, pull(&format!("after={head}"), Some(OPS))).await.status, 200, "the head itself is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_cursor_and_limit_are_400() {
    let (f, _) = fixture().await;
    for query in ["after=banana", "after=", "after=0.1", "after=%00"] {
        hostile(&f, pull(query, Some(OPS))).await.assert_error(400, "bad_cursor");
    }
    for query in ["limit=ten", "limit=-1", "limit=0", "colour=red", "after=0&after=0"] {
        hostile(&f, pull(query, Some(OPS))).await.assert_error(400, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_unknown_token_is_401_with_a_challenge() {
    let (f, _) = fixture().await;
    let body = postcard_push(1);
    let cases = [
        pull("", None),
        pull("", Some("guessed")),
        request("POST", "/v1/push", &[("Content-Type", "application/x-postcard")], Some(&body)),
        request(
            "POST",
            "/v1/push",
            &[("Authorization", "Bearer guessed"), ("Content-Type", "application/x-postcard")],
            Some(&body),
        ),
        request("GET", "/v1/pull", &[("Authorization", &format!("Basic {OPS}"))], None),
    ];
    for case in cases {
        let answer = hostile(&f, case).await;
        answer.assert_error(401, "unauthorized");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_another_tenant_is_403() {
    let (f, _) = fixture().await;
    hostile(&f, pull("meta.tenant=globex", Some(ALICE))).await.assert_error(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_into_another_tenants_scope_is_rejected_per_event() {
    let (f, _) = fixture().await;
    let mut outside = events(2, "todo-", "globex");
    outside.extend(events(1, "user-", "acme"));
    let body = Codec::Json.encode(&PushRequest { events: outside.clone() }).unwrap();
    let auth = format!("Bearer {ALICE}");
    let answer = hostile(
        &f,
        request(
            "POST",
            "/v1/push",
            &[("Authorization", &auth), ("Content-Type", "application/json; charset=utf-8")],
            Some(&body),
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let ack: PushAck = Codec::Json.decode(&answer.body).unwrap();
    assert_eq!(ack.results.len(), 3);
    for (result, event) in ack.results.iter().zip(&outside) {
        assert_eq!(result.id, event.id);
        assert_eq!(result.status, PushStatus::Rejected);
        assert_eq!(result.code, Some(sync_core::ErrorCode::Forbidden));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_and_unknown_path_is_404() {
    let (f, _) = fixture().await;
    let auth = auth();
    let cases = [
        ("GET", "/v1/push", "POST"),
        ("PUT", "/v1/push", "POST"),
        ("POST", "/v1/pull", "GET"),
        ("DELETE", "/healthz", "GET"),
        ("POST", "/metrics", "GET"),
    ];
    for (method, path, allow) in cases {
        let answer = hostile(&f, request(method, path, &[("Authorization", &auth)], Some(b""))).await;
        answer.assert_error(405, "invalid_input");
        assert_eq!(answer.header("allow"), Some(allow));
    }
    for path in ["/", "/v1", "/v1/push/", "/v2/pull", "/v1/pull/../push"] {
        hostile(&f, request("GET", path, &[("Authorization", &auth)], None)).await.assert_error(404, "not_found");
    }
}

/// A client that sends a head and then stalls holds one connection only:
/// others are served meanwhile, and the staller gets 504 once the
/// server's request timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_with_504_while_others_are_served() {
    let fixture = Fixture::start(ServerLimits {
        request_timeout: std::time::Duration::from_millis(300),
        ..ServerLimits::default()
    })
    .await;
    let seed = events(3, "todo-", "acme");
    fixture.client().push(seed.clone()).await.unwrap();
    let before = fixture.snapshot().await;

    let auth = auth();
    let mut stalled = TcpStream::connect(fixture.addr()).await.unwrap();
    let head = request(
        "POST",
        "/v1/push",
        &[("Authorization", &auth), ("Content-Type", "application/x-postcard"), ("Content-Length", "1000")],
        None,
    );
    stalled.write_all(&head).await.unwrap();
    stalled.write_all(&postcard_push(1)[..10]).await.unwrap();
    // Served while the stalled request is open.
    fixture.assert_serving(&seed).await;
    let answer = common::read_response(&mut stalled).await;
    answer.assert_error(504, "timeout");
    assert_eq!(fixture.snapshot().await, before);
    fixture.assert_serving(&seed).await;
    // And writes still work.
    let more = events(2, "todo-", "acme");
    fixture.client().push(more.clone()).await.unwrap();
    fixture.assert_serving(&[seed, more].concat()).await;
}
