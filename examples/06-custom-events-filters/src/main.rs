//! # Example 06: domain events, filters and scoped sync
//!
//! Users, products and orders of two tenants (`acme`, `globex`) are typed
//! serde events carrying `tenant` and `priority` metadata. The example:
//!
//! 1. queries a local store with [`Filter`]s: by aggregate prefix, by kinds,
//!    by metadata;
//! 2. syncs a shop device whose manager filter only carries acme's events,
//!    against a server whose [`StaticTokens`] scope each token to one tenant;
//! 3. shows the server refusing an event outside the token's scope, as
//!    reported in [`SyncResult::rejected`];
//! 4. syncs selectively by priority: an on-call pager pulls only
//!    `priority=high` events of its tenant (first, and little); the back
//!    office then pulls everything of acme.
//!
//! Run it with `cargo run -p example-06-custom-events-filters`.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use sync_core::{Cursor, EventStore, Filter, NewEvent};
use sync_manager::{SyncManager, SyncResult};
use sync_server::{StaticTokens, SyncService};
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{HttpServer, HttpTransport};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Serialize)]
struct User<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Product<'a> {
    sku: &'a str,
    price_cents: u64,
}

#[derive(Serialize)]
struct Order<'a> {
    sku: &'a str,
    quantity: u32,
}

/// A domain event with the metadata the filters and the server look at.
fn event(kind: &str, id: &str, data: &impl Serialize, tenant: &str, priority: &str) -> sync_core::Result<NewEvent> {
    Ok(NewEvent::json(kind, id, data)?.with_metadata("tenant", tenant).with_metadata("priority", priority))
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    // Each token is scoped to one tenant; the server enforces it on push and pull.
    let tokens = StaticTokens::from_json(
        r#"{ "shop-secret":  {"name": "acme-shop",  "tenant": "acme"},
             "pager-secret": {"name": "acme-pager", "tenant": "acme"},
             "globex-secret": {"name": "globex-shop", "tenant": "globex"} }"#,
    )?;
    let service = SyncService::new(open(dir.path(), "server").await?).with_authorizer(tokens);
    let server = HttpServer::new(Arc::new(service)).bind("127.0.0.1:0").await?;
    let connect = |token: &str| HttpTransport::new(server.base_url()).map(|t| t.bearer_token(token));

    // A device of a reseller that serves both tenants.
    let shop = SyncManager::builder(open(dir.path(), "shop").await?)
        .transport(connect("shop-secret")?)
        .filter(Filter::default().metadata("tenant", "acme"))
        .build()?;
    shop.append(vec![
        event("user.registered", "user-1", &User { name: "Ada" }, "acme", "normal")?,
        event("product.added", "product-7", &Product { sku: "KB-7", price_cents: 49_00 }, "acme", "normal")?,
        event("order.placed", "order-100", &Order { sku: "KB-7", quantity: 1 }, "acme", "normal")?,
        event("order.placed", "order-101", &Order { sku: "KB-7", quantity: 40 }, "acme", "high")?,
        event("user.registered", "user-2", &User { name: "Grace" }, "globex", "normal")?,
        event("order.placed", "order-200", &Order { sku: "MX-1", quantity: 3 }, "globex", "high")?,
    ])
    .await?;

    println!("-- 1. filters over the shop's local store --");
    let filters = [
        ("aggregate prefix order-", Filter::default().aggregate_prefix("order-")),
        ("kinds user.* and product.*", Filter::default().kind("user.registered").kind("product.added")),
        ("tenant acme", Filter::default().metadata("tenant", "acme")),
        ("tenant acme, priority high", Filter::default().metadata("tenant", "acme").metadata("priority", "high")),
    ];
    for (label, filter) in &filters {
        let page = shop.store().load(&Cursor::START, 100, filter, None).await?;
        let ids: Vec<_> = page.events.iter().map(|e| e.aggregate_id.as_str()).collect();
        println!("{label:<27} -> {}", ids.join(", "));
    }

    println!("\n-- 2. the shop syncs acme's events only --");
    let pushed = report("shop", &shop.sync().await?);
    println!("globex's events stay on the device: its filter keeps them out of the push");

    println!("\n-- 3. a kiosk without a filter pushes outside its scope --");
    let kiosk = SyncManager::builder(open(dir.path(), "kiosk").await?).transport(connect("shop-secret")?).build()?;
    kiosk.append(vec![event("user.registered", "user-3", &User { name: "Linus" }, "acme", "normal")?]).await?;
    kiosk.append(vec![event("user.registered", "user-4", &User { name: "Rob" }, "globex", "normal")?]).await?;
    let kiosk_result = kiosk.sync().await?;
    report("kiosk", &kiosk_result);
    for r in &kiosk_result.rejected {
        println!("  rejected {}: {} ({})", r.id, r.code.map_or("?", |c| c.as_str()), r.reason.as_deref().unwrap_or(""));
    }

    println!("\n-- 4. priority first: the pager pulls only acme's high-priority events --");
    let globex =
        SyncManager::builder(open(dir.path(), "globex").await?).transport(connect("globex-secret")?).build()?;
    globex
        .append(vec![event("order.placed", "order-300", &Order { sku: "MX-1", quantity: 9 }, "globex", "high")?])
        .await?;
    report("globex", &globex.sync().await?);
    let pager = SyncManager::builder(open(dir.path(), "pager").await?)
        .transport(connect("pager-secret")?)
        .filter(Filter::default().metadata("priority", "high"))
        .pull_only()
        .build()?;
    let urgent = report("pager", &pager.sync().await?);
    let office = SyncManager::builder(open(dir.path(), "office").await?).transport(connect("shop-secret")?).build()?;
    let everything = report("office", &office.sync().await?);

    let expected = (4, 1, 1, 5); // acme events: shop pushed 4 + kiosk 1; one is urgent
    if (pushed, kiosk_result.rejected.len(), urgent, everything) != expected {
        return Err(format!("expected (pushed, rejected, urgent, all) = {expected:?}").into());
    }
    server.shutdown().await;
    Ok(())
}

async fn open(dir: &Path, name: &str) -> BoxResult<SqliteStore> {
    Ok(SqliteStore::open(SqliteConfig::new(dir.join(format!("{name}.db")))).await?)
}

/// Prints one sync result and returns how many events moved.
fn report(who: &str, r: &SyncResult) -> usize {
    println!("{who:<6} sync: pushed {}, pulled {}, rejected {}", r.pushed, r.pulled, r.rejected.len());
    r.pushed + r.pulled
}
