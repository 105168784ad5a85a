//! `GET /metrics` with a Prometheus handle. Alone in its binary because it
//! installs the process-wide metrics recorder.

mod common;

use std::sync::Arc;

use common::{OPS, events, raw, request};
use metrics_exporter_prometheus::PrometheusBuilder;
use sync_core::{Cursor, Filter, Transport};
use sync_server::SyncService;
use sync_store_memory::MemoryStore;
use sync_transport_http::{HttpServer, HttpTransport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_handle_serves_prometheus_text_with_request_metrics() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("first recorder of this process");

    let service = SyncService::new(MemoryStore::new());
    let server = HttpServer::new(Arc::new(service)).metrics(move || handle.render()).bind("127.0.0.1:0").await.unwrap();
    let client = HttpTransport::new(server.base_url()).unwrap().bearer_token(OPS);
    client.push(events(3, "todo-", "acme")).await.unwrap();
    client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    client.pull(&Cursor::START, 10, &Filter::default()).await.unwrap();
    let missing = raw(server.local_addr(), &request("GET", "/nope", &[], None)).await;
    assert_eq!(missing.status, 404);

    let answer = raw(server.local_addr(), &request("GET", "/metrics", &[], None)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = String::from_utf8(answer.body).unwrap();
    for line in [
        r#"synckit_http_requests_total{route="push",status="200"} 1"#,
        r#"synckit_http_requests_total{route="pull",status="200"} 2"#,
        r#"synckit_http_requests_total{route="unknown",status="404"} 1"#,
        r#"synckit_server_push_events_total{status="accepted"} 3"#,
        "synckit_http_connections_total 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with(r#"synckit_http_request_duration_seconds_count{route="pull"} 2"#)),
        "{text}"
    );
}
