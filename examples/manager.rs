//! Run one stream per source under a `Manager`.
//!
//! ```text
//! cargo run --release --example manager -- --help
//! cargo run --release --example manager -- --max-concurrent 2 --policy queue --ladder 360p,240p SOURCE...
//! ```
//! Every flag is described by `--help` (the `Args` below). Streams are named `s0`, `s1`, …
//! and write to `DIR/<id>/`. With `--json`, one JSON object per line on stdout, each the
//! crate's serialization (feature `serde`) of an event with an `"event"` key first:
//! `{"event":"admission","stream":ID,"admitted":BOOL,"queued":BOOL,"reason":{"kind":...,
//! "message":...}|null,"degraded":...,"restart":BOOL}`, the `transcode` example's state and
//! stats events, and a final `{"event":"summary",...}` per stream (its `StreamReport`).
//! `--metrics ADDR` serves the manager's metrics at `http://ADDR/metrics` while it runs (the
//! address is printed on stderr as `metrics: http://ADDR/metrics`). Exit 0 only when every
//! stream ran and ended `Stopped`; a refused stream (at once, or dropped from the queue by a
//! shutdown) makes it exit 1. SIGINT/SIGTERM shut the manager down gracefully.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[path = "common/json.rs"]
mod json;
#[path = "common/local_files.rs"]
mod local_files;
#[path = "common/metrics_http.rs"]
mod metrics_http;

use streamvisor::manager::OverCapacity;
use streamvisor::{AbrProfile, Error, Hooks, Manager, StreamConfig, StreamReport, StreamState};

/// Shown after the flags by `--help`.
const AFTER_HELP: &str = "\
Exit status: 0 when every stream ran and ended Stopped; 1 when one failed or was refused
(at once, or dropped from the queue by a shutdown); 2 for a usage error. SIGINT or SIGTERM
shuts the manager down gracefully.

Example:
  manager --max-concurrent 2 --policy queue --ladder 360p,240p --json --allow-lavfi \\
      'lavfi:testsrc2=size=640x360:rate=30:duration=5;sine=duration=5' input.mp4";

/// Run one stream per SOURCE under a Manager: admission control (a concurrency limit and a
/// resource pool priced per stream), then every stream supervised to its end.
///
/// Streams are named s0, s1, ... in the order given and write to DIR/<id>/.
#[derive(Debug, Parser)]
// A flag given twice keeps its last value, as the hand-written parser did.
#[command(name = "manager", args_override_self = true, after_help = AFTER_HELP)]
struct Args {
    /// Sources, one stream each: files, URLs, or `lavfi:` graphs (with --allow-lavfi)
    #[arg(value_name = "SOURCE", required = true)]
    sources: Vec<String>,

    /// Most streams running at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_concurrent: usize,

    /// What happens to a stream that does not fit now, for every source (a stream that could
    /// not fit even on an empty machine is refused either way)
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = Policy::Refuse, overrides_with = "retry")]
    policy: Policy,

    /// The same as --policy queue
    #[arg(long, overrides_with = "policy")]
    retry: bool,

    /// Compute units of the pool, instead of the machine's (60 a core, within a container's
    /// CPU quota)
    #[arg(long, value_name = "UNITS", allow_negative_numbers = true)]
    compute: Option<f64>,

    /// Output root: each stream writes to DIR/<id>/
    #[arg(long, value_name = "DIR", default_value = "out/manager")]
    out: String,

    /// Print one JSON object per line on stdout: admissions, state changes, stats snapshots
    /// and each stream's final summary
    #[arg(long)]
    json: bool,

    /// Rungs to encode, comma-separated standard names (1080p, 720p, 480p, 360p, 240p)
    /// [default: all five; rungs taller than the source are left out]
    #[arg(long, value_name = "RUNG,...", value_delimiter = ',')]
    ladder: Vec<String>,

    /// Read local files (a local INPUT and what it opens) from this directory only
    /// [default: the directory of each local source named here]
    #[arg(long, value_name = "DIR")]
    local_files_under: Option<std::path::PathBuf>,

    /// Accept `lavfi:` sources: generated sources are trusted input, refused without this
    #[arg(long)]
    allow_lavfi: bool,

    /// Serve the manager's metrics at http://ADDR/metrics while it runs (port 0: any free
    /// port; the address is printed on stderr)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// `--policy`: what the manager does with a stream that does not fit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Policy {
    /// Turn it away
    Refuse,
    /// Wait in the manager's queue; it starts as capacity frees
    Queue,
    /// Run it with less: the tallest rungs dropped, then the frame rate capped down to 15 fps
    /// (the admission event lists what was dropped)
    Degrade,
}

impl Args {
    /// The manager's over-capacity policy, `--retry` included.
    fn over_capacity(&self) -> OverCapacity {
        match (self.retry, self.policy) {
            (true, _) | (false, Policy::Queue) => OverCapacity::Queue,
            (false, Policy::Refuse) => OverCapacity::Refuse,
            (false, Policy::Degrade) => OverCapacity::Degrade {
                min_rungs: 1,
                min_frame_rate: 15.0,
            },
        }
    }
}

fn config(id: &str, source: &str, args: &Args) -> Result<StreamConfig, Error> {
    let profile = if args.ladder.is_empty() {
        AbrProfile::standard()
    } else {
        AbrProfile::from_rungs(&args.ladder)?
    };
    let mut builder = StreamConfig::builder(id, source, format!("{}/{id}", args.out))
        .allow_generated_sources(args.allow_lavfi)
        .profile(profile);
    if let Some(dir) = local_files::local_root(source, args.local_files_under.as_deref()) {
        builder = builder.local_files_under(dir);
    }
    builder.build()
}

fn is_local_file(c: &StreamConfig) -> bool {
    !c.is_network_source() && !c.source().starts_with("lavfi:")
}

fn run(args: Args) -> Result<bool, String> {
    let json = args.json;
    let reports: Arc<Mutex<Vec<StreamReport>>> = Arc::default();
    let sink = reports.clone();
    // Streams refused, at admission or later (dropped from the queue by a shutdown): they
    // never run.
    let never_ran: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    let never = never_ran.clone();
    let mut builder = Manager::builder()
        .max_concurrent(args.max_concurrent)
        .capacity(match args.compute {
            Some(units) => streamvisor::ResourceCapacity::from_machine().with_compute(units),
            None => streamvisor::ResourceCapacity::from_machine(),
        })
        .over_capacity(args.over_capacity(), args.over_capacity())
        .on_admission(move |ev| {
            let outcome = match (ev.admitted, ev.queued) {
                (true, _) => "admitted",
                (false, true) => "queued",
                (false, false) => "refused",
            };
            if outcome == "refused" && !ev.restart {
                never.lock().unwrap().insert(ev.stream.clone());
            }
            if json {
                println!("{}", json::admission(ev));
            } else if let Some(r) = &ev.reason {
                eprintln!("{}: {outcome}: {r}", ev.stream);
            }
        })
        .on_finished(move |r| {
            if json {
                println!("{}", json::summary(r));
            }
            sink.lock().unwrap().push(r.clone());
        });
    builder = if json {
        builder.hooks(json::hooks())
    } else {
        builder.hooks(Hooks::new().on_state_change(|ev| {
            let err = ev
                .error
                .as_ref()
                .map(|e| format!(" ({})", e.full_message()))
                .unwrap_or_default();
            eprintln!("{}: {} -> {}{err}", ev.stream, ev.from, ev.to);
        }))
    };
    let manager = Arc::new(builder.build().map_err(|e| e.to_string())?);
    if let Some(addr) = &args.metrics {
        let local = metrics_http::serve(addr, Arc::downgrade(&manager))
            .map_err(|e| format!("--metrics {addr}: {e}"))?;
        eprintln!("metrics: http://{local}/metrics");
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }

    let configs: Vec<StreamConfig> = args
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| config(&format!("s{i}"), s, &args))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    // Local files are probed (quick: a header) so that admission prices each for the
    // rungs that will really run on it; network sources are priced when they open.
    let configs: Vec<StreamConfig> = configs
        .into_iter()
        .map(
            |c| match is_local_file(&c).then(|| manager.probe(&c).ok()).flatten() {
                Some(h) => c
                    .to_builder()
                    .source_hint(h.width, h.height, h.frame_rate)
                    .build()
                    .unwrap_or(c),
                None => c,
            },
        )
        .collect();
    let asked = configs.len();
    // Refused and never run: a job that silently did nothing must not look green.
    let mut refused = 0usize;
    for cfg in configs {
        if manager.create_stream(cfg).is_err() {
            refused += 1;
        }
    }
    // The manager starts queued streams itself as capacity frees; idle means the queue is
    // empty too.
    while !stop.load(Ordering::SeqCst) && !manager.wait_idle(Duration::from_millis(200)) {}
    if stop.load(Ordering::SeqCst) {
        eprintln!("shutting down");
    }
    manager.shutdown(Duration::from_secs(10));
    let reports = reports.lock().unwrap();
    if !json {
        for r in reports.iter() {
            let err = r
                .error
                .as_ref()
                .map(|e| format!(": {}", e.full_message()))
                .unwrap_or_default();
            eprintln!(
                "{}: {} {} frames, {:.1} MB{err}",
                r.id,
                r.state,
                r.stats.frames_in,
                r.stats.bytes_out as f64 / 1e6
            );
        }
    }
    let never_ran = never_ran.lock().unwrap();
    if !never_ran.is_empty() && !json {
        let ids: Vec<&str> = never_ran.iter().map(String::as_str).collect();
        eprintln!("never ran (refused): {}", ids.join(", "));
    }
    let all_stopped = reports.iter().all(|r| r.state == StreamState::Stopped);
    Ok(refused == 0 && never_ran.is_empty() && reports.len() == asked && all_stopped)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
