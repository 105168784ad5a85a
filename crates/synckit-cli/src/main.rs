//! `synckit`: run a sync server, append events, sync, inspect a store, or
//! watch two offline replicas converge (`synckit demo`).

mod demo;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use snafu::{ResultExt, Whatever, whatever};
use sync_core::{
    AdditiveMerge, Codec, ConflictResolver, Cursor, Event, EventStore, Filter, FirstWriteWins, LastWriteWins, NewEvent,
    PushStatus, ViewEntry,
};
use sync_manager::{Phase, SyncManager, SyncResult};
use sync_server::{StaticTokens, SyncService};
use sync_transport_http::{Compression, HttpServer, HttpTransport};
use tracing::{info, warn};

use crate::store::{AnyStore, StoreSpec};

#[derive(Parser)]
#[command(name = "synckit", version, about = "Offline-first event sync: server, client and demo")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a store over HTTP (push, pull, healthz, metrics).
    Serve {
        /// The server's store: sqlite:PATH, redb:PATH or memory:.
        #[arg(long, default_value = "memory:")]
        store: StoreSpec,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// JSON file of bearer tokens: {"TOKEN": {"name": .., "tenant": .., "aggregate_prefixes": [..]}}.
        /// Without it, every request is let in.
        #[arg(long)]
        tokens: Option<PathBuf>,
    },
    /// Append one event (or --count copies) to a local store.
    Append {
        #[command(flatten)]
        store: LocalStore,
        /// Event kind, e.g. todo.renamed.
        #[arg(long)]
        kind: String,
        /// Aggregate id, e.g. todo-1.
        #[arg(long)]
        aggregate: String,
        /// Payload text (stored as UTF-8 bytes).
        #[arg(long, default_value = "")]
        data: String,
        /// Metadata entries KEY=VALUE (repeatable).
        #[arg(long = "meta", value_parser = parse_pair)]
        metadata: Vec<(String, String)>,
        /// Append this many events (payload gets " #N" appended), in batches of 1,000.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Push local events to a server and pull its new events.
    Sync(SyncArgs),
    /// Print the events of a local store.
    Log {
        #[command(flatten)]
        store: LocalStore,
        /// Only this aggregate, shown as its resolved view.
        #[arg(long)]
        aggregate: Option<String>,
        /// Resolver for the view.
        #[arg(long, value_enum, default_value_t = ResolverArg::Lww)]
        resolver: ResolverArg,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Node id, head, checkpoints and events waiting to push.
    Status {
        #[command(flatten)]
        store: LocalStore,
        /// The server whose checkpoint to show.
        #[arg(long)]
        server: Option<String>,
    },
    /// Two offline clients edit the same document, sync through an embedded
    /// server, and converge. The default command.
    Demo,
}

#[derive(Args)]
struct LocalStore {
    /// The local store: sqlite:PATH or redb:PATH.
    #[arg(long)]
    store: StoreSpec,
}

#[derive(Args)]
struct SyncArgs {
    #[command(flatten)]
    store: LocalStore,
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// Bearer token.
    #[arg(long, env = "SYNCKIT_TOKEN")]
    token: Option<String>,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = CodecArg::Postcard)]
    codec: CodecArg,
    /// Request body compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// Timeout of each push or pull request, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
    /// Only push.
    #[arg(long, conflicts_with = "pull_only")]
    push_only: bool,
    /// Only pull.
    #[arg(long)]
    pull_only: bool,
    /// Resolver used to report conflicts.
    #[arg(long, value_enum, default_value_t = ResolverArg::Lww)]
    resolver: ResolverArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    Postcard,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResolverArg {
    /// Last write wins.
    Lww,
    /// First write wins.
    Fww,
    /// Keep every concurrent event.
    Additive,
}

impl ResolverArg {
    fn build(self) -> Box<dyn ConflictResolver> {
        match self {
            ResolverArg::Lww => Box::new(LastWriteWins),
            ResolverArg::Fww => Box::new(FirstWriteWins),
            ResolverArg::Additive => Box::new(AdditiveMerge),
        }
    }
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Demo);
    let default_level = if matches!(command, Command::Serve { .. }) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn report(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

async fn run(command: Command) -> Result<(), Whatever> {
    match command {
        Command::Serve { store, listen, tokens } => serve(store, listen, tokens).await,
        Command::Append { store, kind, aggregate, data, metadata, count } => {
            store.store.require_durable("append")?;
            append(&store.store.open().await?, kind, aggregate, data, metadata, count).await
        }
        Command::Sync(args) => sync(args).await,
        Command::Log { store, aggregate, resolver, limit, json } => {
            log(&store.store.open().await?, aggregate, resolver, limit, json).await
        }
        Command::Status { store, server } => status(store.store.open().await?, server).await,
        Command::Demo => demo::run().await,
    }
}

async fn serve(spec: StoreSpec, listen: SocketAddr, tokens: Option<PathBuf>) -> Result<(), Whatever> {
    let store = spec.open().await?;
    let node = store.node_id();
    let mut service = SyncService::new(store);
    match tokens {
        Some(path) => {
            let tokens = StaticTokens::from_file(&path).whatever_context("cannot load tokens")?;
            service = service.with_authorizer(tokens);
        }
        None => warn!("no --tokens file: every request is let in"),
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .whatever_context("cannot install the metrics recorder")?;
    let server = HttpServer::new(Arc::new(service))
        .metrics(move || metrics.render())
        .bind(listen)
        .await
        .with_whatever_context(|_| format!("cannot listen on {listen}"))?;
    info!(node = %node, url = %server.base_url(), "serving; Ctrl-C stops");
    println!("synckit server {node} listening on {}", server.base_url());
    tokio::signal::ctrl_c().await.whatever_context("cannot wait for Ctrl-C")?;
    info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn append(
    store: &AnyStore,
    kind: String,
    aggregate: String,
    data: String,
    metadata: Vec<(String, String)>,
    count: usize,
) -> Result<(), Whatever> {
    if count == 0 {
        whatever!("--count must be at least 1");
    }
    let make = |i: usize| {
        let payload = if count == 1 { data.clone() } else { format!("{data} #{i}") };
        let mut e = NewEvent::new(kind.clone(), aggregate.clone(), payload);
        e.metadata.extend(metadata.iter().cloned());
        e
    };
    let bar = progress_bar(count as u64, count > 10_000, "appending");
    let mut inserted = Vec::new();
    for start in (0..count).step_by(1000) {
        let batch: Vec<_> = (start..count.min(start + 1000)).map(make).collect();
        let n = batch.len() as u64;
        let out = store.append(batch).await.whatever_context("append failed")?;
        inserted.extend(out.inserted);
        bar.inc(n);
    }
    bar.finish_and_clear();
    match inserted.as_slice() {
        [one] => println!("appended {one}"),
        many => println!("appended {} events", many.len()),
    }
    store.close().await.whatever_context("cannot close the store")?;
    Ok(())
}

fn progress_bar(len: u64, visible: bool, what: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

async fn sync(args: SyncArgs) -> Result<(), Whatever> {
    args.store.store.require_durable("sync")?;
    let store = args.store.store.open().await?;
    let mut transport = HttpTransport::new(&args.server)
        .whatever_context("bad --server")?
        .codec(match args.codec {
            CodecArg::Postcard => Codec::Postcard,
            CodecArg::Json => Codec::Json,
        })
        .compression(match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        })
        .timeout(Duration::from_secs(args.timeout_secs));
    if let Some(token) = &args.token {
        transport = transport.bearer_token(token);
    }
    let mut builder = SyncManager::builder(store)
        .transport(transport)
        .batch_size(args.batch_size)
        .timeout(Duration::from_secs(args.timeout_secs))
        .resolver(args.resolver.build());
    if args.push_only {
        builder = builder.push_only();
    }
    if args.pull_only {
        builder = builder.pull_only();
    }
    let manager = builder.build().whatever_context("bad sync settings")?;

    // A progress bar once a sync has moved more than one page.
    let mut progress = manager.progress();
    let batch = args.batch_size;
    let bar_task = tokio::spawn(async move {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
        while progress.changed().await.is_ok() {
            let p = *progress.borrow_and_update();
            if p.pushed + p.pulled > batch {
                let what = if p.phase == Phase::Pulling { "pulling" } else { "pushing" };
                bar.set_message(format!("{what}: {} pushed, {} pulled", p.pushed, p.pulled));
                bar.tick();
            }
        }
        bar.finish_and_clear();
    });
    let result = manager.sync().await;
    drop(manager);
    let _ = bar_task.await;
    let result = result.whatever_context("sync failed")?;
    print_result(&result);
    Ok(())
}

fn print_result(r: &SyncResult) {
    println!(
        "pushed {} (already there: {}), pulled {}, conflicts {}, rejected {}, in {:.2?}",
        r.pushed,
        r.push_duplicates,
        r.pulled,
        r.conflicts_resolved,
        r.rejected.len(),
        r.duration
    );
    if r.resynced {
        println!("the server did not know our position (replaced or restored): pulled again from the start");
    }
    for rejected in &r.rejected {
        debug_assert_eq!(rejected.status, PushStatus::Rejected);
        println!(
            "  rejected {}: {} {}",
            rejected.id,
            rejected.code.map(|c| c.as_str()).unwrap_or("?"),
            rejected.reason.as_deref().unwrap_or("")
        );
    }
    for refused in &r.refused {
        println!("  pulled event {} refused by the local store: {}", refused.id, refused.reason);
    }
    for c in &r.conflicts {
        println!(
            "  conflict on {} / {}: {} events -> {:?}",
            c.conflict.aggregate_id,
            c.conflict.kind,
            c.conflict.events.len(),
            c.resolution
        );
    }
}

pub(crate) fn describe(e: &Event) -> String {
    format!(
        "{} {:<16} {:<14} {:<10} {}",
        e.id,
        e.kind,
        e.aggregate_id,
        format!("{}#{}", &e.origin.node.to_string()[..8], e.origin.counter),
        String::from_utf8_lossy(&e.data)
    )
}

async fn log(
    store: &AnyStore,
    aggregate: Option<String>,
    resolver: ResolverArg,
    limit: usize,
    json: bool,
) -> Result<(), Whatever> {
    let print = |e: &Event| {
        if json {
            println!("{}", serde_json::to_string(e).expect("events serialize"));
        } else {
            println!("{}", describe(e));
        }
    };
    if let Some(aggregate) = aggregate {
        let events = store.load_aggregate(&aggregate, &Cursor::START).await.whatever_context("cannot read")?;
        let view = sync_core::resolved_view(&events, resolver.build().as_ref());
        for entry in view.entries.iter().take(limit) {
            match entry {
                ViewEntry::Event(e) => print(e),
                ViewEntry::Merged { kind, data, replaces, .. } => {
                    println!("(merged {kind} of {} events) {}", replaces.len(), String::from_utf8_lossy(data))
                }
            }
        }
        if !json {
            println!("{} events, {} conflicts", events.len(), view.conflicts.len());
        }
        return Ok(());
    }
    let (mut cursor, mut shown) = (Cursor::START, 0);
    while shown < limit {
        let page = store
            .load(&cursor, (limit - shown).min(1000), &Filter::default(), None)
            .await
            .whatever_context("cannot read")?;
        page.events.iter().for_each(print);
        shown += page.events.len();
        cursor = page.next;
        if !page.has_more {
            break;
        }
    }
    Ok(())
}

async fn status(store: AnyStore, server: Option<String>) -> Result<(), Whatever> {
    println!("node      {}", store.node_id());
    println!("head      {}", store.head().await.whatever_context("cannot read head")?);
    let vv = store.version_vector().await.whatever_context("cannot read version vector")?;
    println!("origins   {}", vv.len());
    for (node, counter) in vv.iter() {
        let own = if node == store.node_id() { " (this node)" } else { "" };
        println!("  {node} {counter}{own}");
    }
    if let Some(server) = server {
        // The checkpoint is kept under the server store's id, which the
        // server tells: whichever spelling of its address is given here.
        let transport = HttpTransport::new(&server).whatever_context("bad --server")?;
        let manager = SyncManager::builder(store).transport(transport).build().whatever_context("bad settings")?;
        let asked = manager.peer_status().await;
        let Some(status) = asked.with_whatever_context(|_| format!("cannot ask {server} for its store id"))? else {
            unreachable!("the manager has a transport");
        };
        println!("peer      {server} (store {})", status.checkpoint_key);
        println!("  pushed up to {}", status.checkpoint.pushed);
        println!("  pulled up to {}", status.checkpoint.pulled);
        println!("  waiting to push: {} events", status.waiting_to_push);
    }
    Ok(())
}
