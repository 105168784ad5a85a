//! `sync`: replication between `SqliteStore` files over real HTTP
//! (127.0.0.1, port 0): client A → server → client B, each with its own
//! store file, driven by `SyncManager` with batches of 5,000.
//!
//! 1. Full sync: A holds 1,000,000 events, appended as the `append`
//!    benchmark does (batches of 1,000, 100 B data, 1,000 aggregates,
//!    UUIDv7 ids). Timed: `A.push()`, then `B.pull()`, into a fresh server
//!    and a fresh B per codec (postcard, JSON).
//! 2. Incremental sync: with A, server and B level at 10,000 and at
//!    1,000,000 events (the postcard stores of part 1), A appends 10 events;
//!    timed: `A.sync()` then `B.sync()`. Repeated with new events each time,
//!    the two sizes taking turns; the median is the figure. Before the
//!    rounds, the first sync of each side right after the bulk sync of
//!    part 1 is timed on its own: `A.sync()` after pushing 1,000,000 events,
//!    `B.sync()` after pulling them into its empty store. Each must find
//!    nothing to do without walking what it just moved.
//! 3. Wire size: the push body (`PushRequest`) of 1,000 events loaded from
//!    A's store, in postcard and JSON, raw and zstd-compressed.
//! 4. The store's floor, for reading part 1 on this machine: A's whole feed
//!    read with `load` in pages of 5,000, and the same pages given to
//!    `apply` on a fresh `SqliteStore` directly, with no network, manager or
//!    server. A full sync writes every event twice (server, then B), so it
//!    cannot beat half the `apply` rate.
//!
//! Only the calls named above are timed: filling the stores is not.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sync_core::{Codec, Cursor, EventStore, Filter};
use sync_manager::SyncManager;
use sync_server::SyncService;
use sync_store_sqlite::{SqliteConfig, SqliteStore};
use sync_transport_http::{Compression, HttpServer, HttpTransport, PushRequest, ServerHandle};

use crate::BoxResult;
use crate::append::{BATCH, Events};
use crate::report::{self, Table};

const EVENTS: usize = 1_000_000;
const SMALL_EVENTS: usize = 10_000;
/// Events per push request and per pull page.
const SYNC_BATCH: usize = 5_000;
const NEW_EVENTS: usize = 10;
/// Odd, so that the median is one round's time.
const ROUNDS: usize = 51;
const WIRE_EVENTS: usize = 1_000;

/// Full sync target, events per second end to end with postcard.
const FULL_TARGET: f64 = 200_000.0;
/// Incremental sync target at 1M events, in ms, and the most it may be
/// over the 10k figure. The first sync after the bulk sync has the same
/// target.
const INCREMENTAL_TARGET_MS: f64 = 5.0;
const INCREMENTAL_GROWTH: f64 = 1.5;
/// Wire size target: postcard bytes over JSON bytes.
const WIRE_TARGET: f64 = 0.5;

type Client = SyncManager<SqliteStore, HttpTransport>;

/// A server on its own store, and the clients A and B syncing through it.
struct Trio {
    codec: Codec,
    a: Client,
    b: Client,
    /// Keeps the server running.
    _server: ServerHandle,
}

impl Trio {
    /// A fresh server and a fresh B in `dir` (files named after `name`),
    /// and A over the existing store `a`, all speaking `codec`.
    async fn new(dir: &Path, name: &str, a: &SqliteStore, codec: Codec) -> BoxResult<Trio> {
        let store = open(dir, &format!("{name}-server")).await?;
        let server = HttpServer::new(Arc::new(SyncService::new(store))).bind("127.0.0.1:0").await?;
        let client = |store: SqliteStore| -> BoxResult<Client> {
            let transport = HttpTransport::new(server.base_url())?.codec(codec);
            Ok(SyncManager::builder(store).transport(transport).batch_size(SYNC_BATCH).build()?)
        };
        let a = client(a.clone())?;
        let b = client(open(dir, &format!("{name}-b")).await?)?;
        Ok(Trio { codec, a, b, _server: server })
    }
}

/// The timed phases of one full sync.
struct FullSync {
    codec: Codec,
    push: Duration,
    pull: Duration,
}

impl FullSync {
    fn events_per_sec(&self) -> f64 {
        EVENTS as f64 / (self.push + self.pull).as_secs_f64()
    }
}

/// The incremental rounds at one store size: times of `A.sync()` and `B.sync()`.
struct Incremental {
    store_events: usize,
    /// The first `A.sync()` and `B.sync()` that levelled the trio.
    first: (Duration, Duration),
    a: Vec<Duration>,
    b: Vec<Duration>,
}

impl Incremental {
    fn total(&self) -> Vec<Duration> {
        self.a.iter().zip(&self.b).map(|(a, b)| *a + *b).collect()
    }

    /// The median time of `A.sync()` + `B.sync()`.
    fn median_ms(&self) -> f64 {
        quantile_ms(&self.total(), 0.5)
    }
}

/// The store calls of a full sync alone: the feed read, then applied.
struct Floor {
    load: Duration,
    apply: Duration,
}

/// The push body of WIRE_EVENTS events in one codec.
struct WireSize {
    codec: Codec,
    bytes: usize,
    zstd_bytes: usize,
}

impl WireSize {
    fn per_event(&self) -> (f64, f64) {
        (self.bytes as f64 / WIRE_EVENTS as f64, self.zstd_bytes as f64 / WIRE_EVENTS as f64)
    }
}

pub(crate) fn run() -> BoxResult {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    println!(
        "A -> server -> B over HTTP on 127.0.0.1, SqliteStore files in {}; batches of {SYNC_BATCH}",
        dir.path().display()
    );
    let Measured { full, incremental, wire, floor } = runtime.block_on(measure(dir.path()))?;
    let full_rows = full_table(&full);
    let floor_rows = floor_table(&floor, &full);
    let incremental_rows = incremental_table(&incremental);
    let first_rows = first_table(&incremental[1]);
    let wire_rows = wire_table(&wire);

    let find = |codec| full.iter().find(|f| f.codec == codec);
    let postcard = find(Codec::Postcard).ok_or("no postcard full sync")?;
    let (small, large) = (incremental[0].median_ms(), incremental[1].median_ms());
    let first_ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (first_a, first_b) = (first_ms(incremental[1].first.0), first_ms(incremental[1].first.1));
    let size = |codec| wire.iter().find(|w| w.codec == codec).map(|w| w.per_event().0);
    let wire_ratio = size(Codec::Postcard).zip(size(Codec::Json)).map(|(p, j)| p / j).ok_or("no wire sizes")?;
    let targets = [
        ("full sync with postcard >= 200k events/s", postcard.events_per_sec() >= FULL_TARGET),
        ("incremental at 1M < 5 ms", large < INCREMENTAL_TARGET_MS),
        ("incremental at 1M <= 1.5x 10k", large <= INCREMENTAL_GROWTH * small),
        ("first sync after pushing 1M < 5 ms", first_a < INCREMENTAL_TARGET_MS),
        ("first sync after pulling 1M into an empty store < 5 ms", first_b < INCREMENTAL_TARGET_MS),
        ("postcard body <= 50% of JSON", wire_ratio <= WIRE_TARGET),
    ];
    println!();
    for (target, met) in &targets {
        println!("target {target}: {}", if *met { "met" } else { "MISSED" });
    }
    let machine = report::machine();
    println!("\nmachine: {} cores, {}", machine["nproc"], machine["cpu_model"].as_str().unwrap_or("unknown"));
    let report = json!({
        "bench": "sync",
        "unix_time": report::unix_time(),
        "machine": machine,
        "config": {
            "events": EVENTS,
            "small_events": SMALL_EVENTS,
            "append_batch": BATCH,
            "sync_batch": SYNC_BATCH,
            "new_events": NEW_EVENTS,
            "rounds": ROUNDS,
            "wire_events": WIRE_EVENTS,
        },
        "full_sync": full_rows,
        "incremental": incremental_rows,
        "first_sync_after_bulk": first_rows,
        "wire": wire_rows,
        "store_floor": floor_rows,
        "targets": targets.iter().map(|(t, met)| json!({ "target": t, "met": met })).collect::<Vec<_>>(),
    });
    let path = report::write_json("sync", &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Prints the full sync table; returns its JSON rows.
fn full_table(full: &[FullSync]) -> Value {
    let mut table =
        Table::new(&["full sync", "events", "push s", "pull s", "total s", "events/s", "push ev/s", "pull ev/s"]);
    let mut rows = Vec::new();
    for f in full {
        let per_sec = |d: Duration| EVENTS as f64 / d.as_secs_f64();
        table.row(vec![
            f.codec.name().to_owned(),
            EVENTS.to_string(),
            format!("{:.2}", f.push.as_secs_f64()),
            format!("{:.2}", f.pull.as_secs_f64()),
            format!("{:.2}", (f.push + f.pull).as_secs_f64()),
            format!("{:.0}", f.events_per_sec()),
            format!("{:.0}", per_sec(f.push)),
            format!("{:.0}", per_sec(f.pull)),
        ]);
        rows.push(json!({
            "codec": f.codec.name(),
            "events": EVENTS,
            "push_secs": f.push.as_secs_f64(),
            "pull_secs": f.pull.as_secs_f64(),
            "events_per_sec": f.events_per_sec(),
            "push_events_per_sec": per_sec(f.push),
            "pull_events_per_sec": per_sec(f.pull),
        }));
    }
    println!();
    table.print();
    Value::Array(rows)
}

/// Prints the incremental sync table (the first entry is the 10k
/// reference); returns its JSON rows.
fn incremental_table(incremental: &[Incremental]) -> Value {
    let mut table = Table::new(&[
        "incremental",
        "new events",
        "rounds",
        "median ms",
        "min ms",
        "p90 ms",
        "max ms",
        "A.sync ms",
        "B.sync ms",
        "vs 10k",
    ]);
    let mut rows = Vec::new();
    for inc in incremental {
        let total = inc.total();
        let growth = inc.median_ms() / incremental[0].median_ms();
        table.row(vec![
            format!("{} events", inc.store_events),
            NEW_EVENTS.to_string(),
            ROUNDS.to_string(),
            format!("{:.2}", inc.median_ms()),
            format!("{:.2}", quantile_ms(&total, 0.0)),
            format!("{:.2}", quantile_ms(&total, 0.9)),
            format!("{:.2}", quantile_ms(&total, 1.0)),
            format!("{:.2}", quantile_ms(&inc.a, 0.5)),
            format!("{:.2}", quantile_ms(&inc.b, 0.5)),
            format!("{growth:.2}"),
        ]);
        let ms = |times: &[Duration]| times.iter().map(|t| t.as_secs_f64() * 1e3).collect::<Vec<_>>();
        rows.push(json!({
            "store_events": inc.store_events,
            "new_events": NEW_EVENTS,
            "median_ms": inc.median_ms(),
            "min_ms": quantile_ms(&total, 0.0),
            "p90_ms": quantile_ms(&total, 0.9),
            "max_ms": quantile_ms(&total, 1.0),
            "a_sync_median_ms": quantile_ms(&inc.a, 0.5),
            "b_sync_median_ms": quantile_ms(&inc.b, 0.5),
            "ratio_to_small": growth,
            "a_sync_ms": ms(&inc.a),
            "b_sync_ms": ms(&inc.b),
        }));
    }
    println!();
    table.print();
    Value::Array(rows)
}

/// Prints the first syncs after the bulk sync; returns their JSON.
fn first_table(inc: &Incremental) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut table = Table::new(&["first sync after the bulk sync", "store events", "ms"]);
    table.row(vec![
        "A.sync(), after pushing them".to_owned(),
        inc.store_events.to_string(),
        format!("{:.2}", ms(inc.first.0)),
    ]);
    table.row(vec![
        "B.sync(), after pulling them into an empty store".to_owned(),
        inc.store_events.to_string(),
        format!("{:.2}", ms(inc.first.1)),
    ]);
    println!();
    table.print();
    json!({
        "store_events": inc.store_events,
        "a_after_push_ms": ms(inc.first.0),
        "b_after_pull_ms": ms(inc.first.1),
    })
}

/// Prints the store floor table, with the full syncs as a share of the
/// ceiling it sets; returns its JSON.
fn floor_table(floor: &Floor, full: &[FullSync]) -> Value {
    let per_sec = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    // Two applies per event, one after the other.
    let ceiling = per_sec(floor.apply) / 2.0;
    let mut table = Table::new(&["store floor (no network)", "s", "events/s"]);
    table.row(vec![
        "A load, pages of 5000".to_owned(),
        format!("{:.2}", floor.load.as_secs_f64()),
        format!("{:.0}", per_sec(floor.load)),
    ]);
    table.row(vec![
        "apply the pages to a new store".to_owned(),
        format!("{:.2}", floor.apply.as_secs_f64()),
        format!("{:.0}", per_sec(floor.apply)),
    ]);
    table.row(vec!["full sync ceiling (apply rate / 2)".to_owned(), String::new(), format!("{ceiling:.0}")]);
    for f in full {
        table.row(vec![
            format!("full sync {}: share of the ceiling", f.codec.name()),
            String::new(),
            format!("{:.0} %", 100.0 * f.events_per_sec() / ceiling),
        ]);
    }
    println!();
    table.print();
    json!({
        "load_secs": floor.load.as_secs_f64(),
        "load_events_per_sec": per_sec(floor.load),
        "apply_secs": floor.apply.as_secs_f64(),
        "apply_events_per_sec": per_sec(floor.apply),
        "full_sync_ceiling_events_per_sec": ceiling,
    })
}

/// Prints the wire size table; returns its JSON rows.
fn wire_table(wire: &[WireSize]) -> Value {
    let mut table =
        Table::new(&["wire (push body)", "bytes/event", "% of JSON", "zstd bytes/event", "zstd % of JSON zstd"]);
    let mut rows = Vec::new();
    let (json_raw, json_zstd) =
        wire.iter().find(|w| w.codec == Codec::Json).map_or((f64::NAN, f64::NAN), |w| w.per_event());
    for w in wire {
        let (raw, zstd) = w.per_event();
        table.row(vec![
            w.codec.name().to_owned(),
            format!("{raw:.1}"),
            format!("{:.1}", 100.0 * raw / json_raw),
            format!("{zstd:.1}"),
            format!("{:.1}", 100.0 * zstd / json_zstd),
        ]);
        rows.push(json!({
            "codec": w.codec.name(),
            "events": WIRE_EVENTS,
            "body_bytes": w.bytes,
            "zstd_body_bytes": w.zstd_bytes,
            "bytes_per_event": raw,
            "zstd_bytes_per_event": zstd,
            "ratio_to_json": raw / json_raw,
            "zstd_ratio_to_json_zstd": zstd / json_zstd,
        }));
    }
    println!();
    table.print();
    Value::Array(rows)
}

/// Everything measured, in the order of the tables.
struct Measured {
    full: Vec<FullSync>,
    /// At SMALL_EVENTS, then at EVENTS.
    incremental: Vec<Incremental>,
    wire: Vec<WireSize>,
    floor: Floor,
}

async fn measure(dir: &Path) -> BoxResult<Measured> {
    let a = open(dir, "a").await?;
    fill(&a, "A", EVENTS).await?;
    let postcard = Trio::new(dir, "postcard", &a, Codec::Postcard).await?;
    let json = Trio::new(dir, "json", &a, Codec::Json).await?;
    let full = vec![full_sync(&postcard).await?, full_sync(&json).await?];
    drop(json);
    let floor = store_floor(dir, &a).await?;

    let small_a = open(dir, "small-a").await?;
    fill(&small_a, "small A", SMALL_EVENTS).await?;
    let small = Trio::new(dir, "small", &small_a, Codec::Postcard).await?;
    let incremental = incremental(&[(&small, SMALL_EVENTS), (&postcard, EVENTS)]).await?;

    let wire = wire_sizes(&a).await?;
    Ok(Measured { full, incremental, wire, floor })
}

/// Times reading A's feed in pages and applying the pages to a new store.
async fn store_floor(dir: &Path, a: &SqliteStore) -> BoxResult<Floor> {
    eprintln!("  store floor: reading A's feed, then applying it to a new store");
    let started = Instant::now();
    let (mut pages, mut after) = (Vec::new(), Cursor::START);
    loop {
        let page = a.load(&after, SYNC_BATCH, &Filter::default(), None).await?;
        after = page.next;
        let has_more = page.has_more;
        pages.push(page.events);
        if !has_more {
            break;
        }
    }
    let load = started.elapsed();
    let store = open(dir, "floor").await?;
    let started = Instant::now();
    let mut applied = 0;
    for page in pages {
        applied += store.apply(page, "a").await?.inserted.len();
    }
    let apply = started.elapsed();
    check("floor store applied", applied, EVENTS)?;
    Ok(Floor { load, apply })
}

async fn open(dir: &Path, name: &str) -> BoxResult<SqliteStore> {
    Ok(SqliteStore::open(SqliteConfig::new(dir.join(format!("{name}.db")))).await?)
}

/// Appends `n` events to `store` in batches of BATCH, saying how far it got
/// every 100,000 events.
async fn fill(store: &SqliteStore, name: &str, n: usize) -> BoxResult {
    let started = Instant::now();
    let mut events = Events::new();
    for done in (BATCH..=n).step_by(BATCH) {
        store.append(events.next_batch(BATCH)).await?;
        if done % 100_000 == 0 || done == n {
            eprintln!("  {name}: {done} / {n} events appended ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

async fn full_sync(trio: &Trio) -> BoxResult<FullSync> {
    let codec = trio.codec.name();
    eprintln!("  full sync ({codec}): A pushing {EVENTS} events");
    let started = Instant::now();
    let pushed = trio.a.push().await?;
    let push = started.elapsed();
    eprintln!("  full sync ({codec}): pushed in {:.1} s, B pulling", push.as_secs_f64());
    let started = Instant::now();
    let pulled = trio.b.pull().await?;
    let pull = started.elapsed();
    check("A pushed", pushed.pushed, EVENTS)?;
    check("B pulled", pulled.pulled, EVENTS)?;
    Ok(FullSync { codec: trio.codec, push, pull })
}

/// Levels each trio, then times ROUNDS rounds of NEW_EVENTS appended to
/// A and synced through to B. The trios take turns, round by round, so that
/// whatever else the machine does weighs on both sizes alike.
async fn incremental(trios: &[(&Trio, usize)]) -> BoxResult<Vec<Incremental>> {
    let mut results = Vec::new();
    for &(trio, store_events) in trios {
        // Pushes and pulls what is not synced yet: for the small trio
        // everything, for the trio of the full sync nothing (A pushed all,
        // B pulled all).
        let started = Instant::now();
        trio.a.sync().await?;
        let a = started.elapsed();
        check("B pushed while levelling", trio.b.sync().await?.pushed, 0)?;
        let b = started.elapsed() - a;
        eprintln!(
            "  incremental: stores of {store_events} events levelled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        results.push(Incremental { store_events, first: (a, b), a: Vec::new(), b: Vec::new() });
    }
    eprintln!("  incremental: {ROUNDS} rounds of {NEW_EVENTS} new events");
    let mut events = Events::new();
    for _ in 0..ROUNDS {
        for (&(trio, _), result) in trios.iter().zip(&mut results) {
            trio.a.append(events.next_batch(NEW_EVENTS)).await?;
            let started = Instant::now();
            let a = trio.a.sync().await?;
            let a_time = started.elapsed();
            let b = trio.b.sync().await?;
            result.b.push(started.elapsed() - a_time);
            result.a.push(a_time);
            check("A pushed", a.pushed, NEW_EVENTS)?;
            check("A pulled", a.pulled, 0)?;
            check("B pulled", b.pulled, NEW_EVENTS)?;
            check("B pushed", b.pushed, 0)?;
        }
    }
    Ok(results)
}

/// The push body of the first WIRE_EVENTS events of `store`, per codec.
async fn wire_sizes(store: &SqliteStore) -> BoxResult<Vec<WireSize>> {
    let events = store.load(&Cursor::START, WIRE_EVENTS, &Filter::default(), None).await?.events;
    check("loaded for the wire sample", events.len(), WIRE_EVENTS)?;
    let body = PushRequest { events };
    [Codec::Postcard, Codec::Json]
        .into_iter()
        .map(|codec| {
            let raw = codec.encode(&body)?;
            let zstd_bytes = Compression::Zstd.compress(&raw)?.len();
            Ok(WireSize { codec, bytes: raw.len(), zstd_bytes })
        })
        .collect()
}

fn check(what: &str, got: usize, expected: usize) -> BoxResult {
    if got == expected { Ok(()) } else { Err(format!("{what}: {got} events, expected {expected}").into()) }
}

/// The `q` quantile (0..=1) of `times`, in milliseconds.
fn quantile_ms(times: &[Duration], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
}
