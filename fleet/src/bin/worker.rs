//! `worker`: a node of a streamvisor fleet, and its client.
//!
//! ```text
//! worker serve --redis redis://127.0.0.1:6379 --node a --max-concurrent 4 --out /srv/hls
//! worker submit --redis redis://127.0.0.1:6379 --id film1 --ladder 720p,360p /media/film.mp4
//! worker status --redis redis://127.0.0.1:6379 --id film1
//! worker cancel --redis redis://127.0.0.1:6379 --id film1
//! worker list --redis redis://127.0.0.1:6379
//! worker metrics --redis redis://127.0.0.1:6379
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use streamvisor_fleet::{FleetClient, JobKind, Node, NodeConfig, Output, TrustRules};

/// A node of a streamvisor fleet on Redis Streams, and its client.
#[derive(Debug, Parser)]
#[command(name = "worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: take jobs while there is room, until SIGTERM (then drain).
    Serve(Serve),
    /// Queue a job.
    Submit(Submit),
    /// Print a job's record (one JSON object).
    Status(JobArg),
    /// Cancel a job.
    Cancel(JobArg),
    /// Print every job's record (a JSON array).
    List(RedisArg),
    /// Print the fleet's metrics (OpenMetrics text).
    Metrics(RedisArg),
}

#[derive(Debug, Args)]
struct RedisArg {
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379
    #[arg(long, value_name = "URL")]
    redis: String,
}

#[derive(Debug, Args)]
struct JobArg {
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379
    #[arg(long, value_name = "URL")]
    redis: String,
    /// The job's id
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
struct Serve {
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379
    #[arg(long, value_name = "URL")]
    redis: String,
    /// The node's name, unique in the fleet [default: host name and process id]
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// At most this many jobs at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_concurrent: usize,
    /// The node's compute capacity in units (60 a core) [default: the machine's]
    #[arg(long, value_name = "UNITS")]
    compute: Option<f64>,
    /// Accept local files (a job's source) inside this directory only; without it every
    /// local file is refused (a job cannot opt itself in)
    #[arg(long, value_name = "DIR")]
    local_files_under: Option<PathBuf>,
    /// Accept `lavfi:` sources (trusted test media only)
    #[arg(long)]
    allow_lavfi: bool,
    /// The lease in milliseconds (a job is taken over this long after its node stops
    /// renewing it)
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    lease_ms: u64,
    /// Seconds a draining node lets its on-demand jobs finish before handing them back
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    drain_secs: u64,
    /// Do not fsync outputs before they are listed (--out)
    #[arg(long)]
    no_sync_output: bool,
    /// Write each job under DIR/JOB_ID/ (a directory every node shares)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "put",
        conflicts_with = "put"
    )]
    out: Option<PathBuf>,
    /// Upload each job under URL/JOB_ID/ (PUT and DELETE, e.g. WebDAV)
    #[arg(long, value_name = "URL")]
    put: Option<String>,
}

#[derive(Debug, Args)]
struct Submit {
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379
    #[arg(long, value_name = "URL")]
    redis: String,
    /// The job's id ([A-Za-z0-9_-]{1,64})
    #[arg(long)]
    id: String,
    /// Rungs, comma-separated standard names (1080p, 720p, 480p, 360p, 240p)
    #[arg(long, value_delimiter = ',')]
    ladder: Vec<String>,
    /// Segment duration in seconds [default: 2]
    #[arg(long, value_name = "SECS")]
    segment: Option<f64>,
    /// A live job (whatever the source looks like)
    #[arg(long, conflicts_with = "vod")]
    live: bool,
    /// An on-demand job (whatever the source looks like)
    #[arg(long)]
    vod: bool,
    /// A JSON file with more of the stream config (its serde form); the flags win
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The source: a URL, a path (on the nodes), or a `lavfi:` graph
    source: String,
}

fn main() -> ExitCode {
    log::set_logger(&STDERR_LOGGER).ok();
    log::set_max_level(log::LevelFilter::Info);
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve(s) => serve(s),
        Command::Submit(s) => submit(s),
        Command::Status(j) => {
            let status = FleetClient::connect(&j.redis)?.status(&j.id)?;
            println!("{}", serde_json::to_string(&status)?);
            Ok(())
        }
        Command::Cancel(j) => {
            let cancelled = FleetClient::connect(&j.redis)?.cancel(&j.id)?;
            println!(
                "{}",
                serde_json::json!({"id": j.id, "cancelled": cancelled})
            );
            Ok(())
        }
        Command::List(r) => {
            let all = FleetClient::connect(&r.redis)?.list()?;
            println!("{}", serde_json::to_string(&all)?);
            Ok(())
        }
        Command::Metrics(r) => {
            print!("{}", FleetClient::connect(&r.redis)?.render_metrics()?);
            Ok(())
        }
    }
}

fn serve(s: Serve) -> Result<(), Box<dyn std::error::Error>> {
    let output = match (s.out, s.put) {
        (Some(dir), _) => Output::Dir(dir),
        (None, Some(url)) => Output::Put(url),
        (None, None) => return Err("--out or --put is required".into()),
    };
    let name = s.node.unwrap_or_else(default_name);
    let mut cfg = NodeConfig::new(s.redis, name, output);
    cfg.max_concurrent = s.max_concurrent;
    cfg.capacity = s.compute.map(|units| {
        let machine = streamvisor::ResourceCapacity::from_machine();
        streamvisor::ResourceCapacity::new(units, machine.memory)
    });
    cfg.rules = TrustRules {
        local_files_under: s.local_files_under,
        allow_generated: s.allow_lavfi,
    };
    cfg.lease = Duration::from_millis(s.lease_ms.max(300));
    cfg.drain_deadline = Duration::from_secs(s.drain_secs);
    cfg.sync_output = !s.no_sync_output;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let node = Node::start(cfg)?;
    node.serve(&stop)?;
    Ok(())
}

fn submit(s: Submit) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &s.config {
        Some(file) => serde_json::from_slice(&std::fs::read(file)?)?,
        None => serde_json::json!({}),
    };
    let fields = config
        .as_object_mut()
        .ok_or("--config: not a JSON object")?;
    fields.insert("source".into(), s.source.clone().into());
    let kind = match (s.live, s.vod) {
        (true, _) => JobKind::Live,
        (_, true) => JobKind::Vod,
        _ => JobKind::of_source(&s.source),
    };
    let mode = kind.as_str();
    fields.insert("playlist_mode".into(), mode.into());
    // Placeholders: the node sets the id and its own output directory.
    fields.insert("id".into(), s.id.clone().into());
    fields.insert("output_dir".into(), s.id.clone().into());
    let profile = fields
        .entry("profile")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(p) = profile.as_object_mut() {
        if !s.ladder.is_empty() {
            p.insert("variants".into(), s.ladder.clone().into());
        }
        if let Some(secs) = s.segment {
            p.insert(
                "segment_duration".into(),
                format!("{}ms", (secs * 1000.0) as u64).into(),
            );
        }
    }
    FleetClient::connect(&s.redis)?.submit(&s.id, kind, &config)?;
    println!(
        "{}",
        serde_json::json!({"id": s.id, "kind": kind.as_str(), "state": "queued"})
    );
    Ok(())
}

/// The host name and the process id: unique on a machine, readable in `status`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

/// Log lines to stderr with the time since start (the library never installs a logger;
/// this program does).
struct StderrLogger;

static STDERR_LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        // The fleet's own decisions; the media pipeline's warnings only when they are errors.
        let ours = m.target().starts_with("streamvisor_fleet");
        m.level()
            <= if ours {
                log::Level::Info
            } else {
                log::Level::Error
            }
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            eprintln!("{t:.3} {} {}: {}", r.level(), r.target(), r.args());
        }
    }

    fn flush(&self) {}
}
