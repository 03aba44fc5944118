//! Run one stream per source under a `Manager`.
//!
//! ```text
//! cargo run --release --example manager -- [--max-concurrent N] [--policy refuse|queue|degrade]
//!     [--retry] [--out DIR] [--json] [--ladder 720p,360p,...] [--allow-lavfi]
//!     [--metrics ADDR] SOURCE...
//! ```
//! `--metrics 127.0.0.1:9464` serves the manager's Prometheus metrics at
//! `http://127.0.0.1:9464/metrics` while it runs (port 0: any free port; the address is
//! printed on stderr as `metrics: http://ADDR/metrics`).
//! `lavfi:` sources are refused unless `--allow-lavfi` is given (generated sources are
//! trusted input).
//! Streams are named `s0`, `s1`, … and write to `DIR/<id>/` (default `out/manager`). With
//! `--json`, one JSON object per line on stdout, each the crate's serialization (feature
//! `serde`) of an event with an `"event"` key first: `{"event":"admission","stream":ID,
//! "admitted":BOOL,"queued":BOOL,"reason":{"kind":...,"message":...}|null,"degraded":...,
//! "restart":BOOL}`, the `transcode` example's state and stats events, and a final
//! `{"event":"summary",...}` per stream (its `StreamReport`). `--policy`
//! says what happens to a stream that does not fit now, for every source: `refuse` (the
//! default), `queue` (the manager's queue starts it as capacity frees; `--retry` is the
//! same), or `degrade` (tallest rungs dropped, then the frame rate capped down to 15 fps; the
//! admission event lists what was dropped). A stream that could not fit even on an empty machine is refused either way. Exit
//! 0 only when every stream ran and ended `Stopped`; a refused stream (at once, or dropped
//! from the queue by a shutdown) makes it exit 1.
//! SIGINT/SIGTERM shut the manager down gracefully.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "common/json.rs"]
mod json;
#[path = "common/metrics_http.rs"]
mod metrics_http;

use streamvisor::manager::OverCapacity;
use streamvisor::{AbrProfile, Error, Hooks, Manager, StreamConfig, StreamReport, StreamState};

struct Args {
    max_concurrent: usize,
    /// Compute units of the pool, instead of the machine's.
    compute: Option<f64>,
    policy: OverCapacity,
    out: String,
    json: bool,
    ladder: Option<Vec<String>>,
    allow_lavfi: bool,
    /// Where to serve `/metrics`.
    metrics: Option<String>,
    sources: Vec<String>,
}

fn usage() -> &'static str {
    "usage: manager [--max-concurrent N] [--policy refuse|queue|degrade] [--retry] [--compute UNITS] [--out DIR] [--json] [--ladder 720p,360p,...] [--allow-lavfi] [--metrics ADDR] SOURCE..."
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        max_concurrent: 4,
        compute: None,
        policy: OverCapacity::Refuse,
        out: "out/manager".into(),
        json: false,
        ladder: None,
        allow_lavfi: false,
        metrics: None,
        sources: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--max-concurrent" => {
                let v = it.next().ok_or("--max-concurrent needs a value")?;
                args.max_concurrent = v
                    .parse()
                    .map_err(|_| format!("--max-concurrent: {v:?} is not a count"))?;
            }
            "--retry" => args.policy = OverCapacity::Queue,
            "--compute" => {
                let v = it.next().ok_or("--compute needs a value")?;
                args.compute = Some(
                    v.parse()
                        .map_err(|_| format!("--compute: {v:?} is not a number of units"))?,
                );
            }
            "--policy" => {
                args.policy = match it.next().as_deref() {
                    Some("refuse") => OverCapacity::Refuse,
                    Some("queue") => OverCapacity::Queue,
                    Some("degrade") => OverCapacity::Degrade {
                        min_rungs: 1,
                        min_frame_rate: 15.0,
                    },
                    other => return Err(format!("--policy: {other:?}: refuse, queue or degrade")),
                }
            }
            "--out" => args.out = it.next().ok_or("--out needs a value")?,
            "--json" => args.json = true,
            "--ladder" => {
                let v = it.next().ok_or("--ladder needs a value")?;
                args.ladder = Some(v.split(',').map(str::to_owned).collect());
            }
            "--allow-lavfi" => args.allow_lavfi = true,
            "--metrics" => args.metrics = Some(it.next().ok_or("--metrics needs an address")?),
            "-h" | "--help" => return Err(usage().into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            s => args.sources.push(s.to_owned()),
        }
    }
    if args.sources.is_empty() {
        return Err(format!("no SOURCE given\n{}", usage()));
    }
    Ok(args)
}

fn config(id: &str, source: &str, args: &Args) -> Result<StreamConfig, Error> {
    let profile = match &args.ladder {
        Some(rungs) => AbrProfile::from_rungs(rungs)?,
        None => AbrProfile::standard(),
    };
    StreamConfig::builder(id, source, format!("{}/{id}", args.out))
        .allow_generated_sources(args.allow_lavfi)
        .profile(profile)
        .build()
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
        .over_capacity(args.policy, args.policy)
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
