//! The shared transport conformance suite, over real sockets, once per
//! wire configuration.

use std::sync::Arc;

use sync_core::Codec;
use sync_server::SyncService;
use sync_store_memory::MemoryStore;
use sync_testkit::TransportFactory;
use sync_transport_http::{Compression, HttpServer, HttpTransport, ServerHandle};

/// Serves on 127.0.0.1:0 and connects clients with one codec and compression.
struct HttpFactory {
    codec: Codec,
    compression: Compression,
}

impl TransportFactory for HttpFactory {
    type Transport = HttpTransport;
    type Server = ServerHandle;

    async fn serve(&self, service: SyncService<MemoryStore>) -> ServerHandle {
        HttpServer::new(Arc::new(service)).bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0")
    }

    async fn connect(&self, server: &ServerHandle, token: Option<&str>) -> HttpTransport {
        let client = HttpTransport::new(server.base_url())
            .expect("valid base URL")
            .codec(self.codec)
            .compression(self.compression);
        match token {
            Some(token) => client.bearer_token(token),
            None => client,
        }
    }
}

mod postcard {
    use super::*;
    sync_testkit::transport_suite!(HttpFactory { codec: Codec::Postcard, compression: Compression::None });
}

mod json_gzip {
    use super::*;
    sync_testkit::transport_suite!(HttpFactory { codec: Codec::Json, compression: Compression::Gzip });
}

mod postcard_zstd {
    use super::*;
    sync_testkit::transport_suite!(HttpFactory { codec: Codec::Postcard, compression: Compression::Zstd });
}
