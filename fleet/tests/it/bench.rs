//! `make fleet-bench` (ignored by `cargo test`): the takeover time of a live stream after
//! `kill -9` of its node, and the fleet's overhead: the same on-demand jobs through two
//! worker processes and through one in-process `Manager` of the same total concurrency,
//! alternating runs, medians.

use std::time::{Duration, Instant};

use streamvisor::manager::OverCapacity;
use streamvisor::Manager;
use streamvisor_fleet::{build_config, TrustRules};

use crate::common::{config, serial, submit_vod, wait_final, Redis, Worker};
use crate::live::{wait_takeover, LiveFleet};

const RUNS: usize = 3;
/// Overhead runs of each kind (alternating).
const OVERHEAD_RUNS: usize = 5;
const JOBS: usize = 12;
/// A CPU-bound job: 8 s of 640x360 at 30 fps, a 360p + 240p ladder.
const SOURCE: &str = "lavfi:testsrc2=size=640x360:rate=30:duration=8;sine=duration=8";
const RUNGS: &[&str] = &["360p", "240p"];

fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_millis() as i64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: make fleet-bench"]
fn fleet_bench() {
    let _serial = serial();
    let (mut takeovers, mut claims) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let id = format!("bench{run}");
        let mut fleet = LiveFleet::start(&id);
        let owner = fleet.owner(&id);
        std::thread::sleep(Duration::from_secs(2));
        let killed = Instant::now();
        let killed_ms = unix_ms();
        fleet.workers[owner].kill9();
        let t = wait_takeover(&fleet.playlist(&id), killed).as_secs_f64();
        let claimed = (fleet.taken_ms(&id) - killed_ms) as f64 / 1000.0;
        eprintln!("takeover run {run}: claimed after {claimed:.2} s, first segment after {t:.2} s");
        takeovers.push(t);
        claims.push(claimed);
    }
    let (mut fleet_runs, mut manager_runs) = (Vec::new(), Vec::new());
    for run in 0..OVERHEAD_RUNS {
        // Alternating which goes first: the machine's other load drifts.
        if run % 2 == 0 {
            fleet_runs.push(through_fleet(run));
            manager_runs.push(through_manager(run));
        } else {
            manager_runs.push(through_manager(run));
            fleet_runs.push(through_fleet(run));
        }
        eprintln!(
            "overhead run {run}: fleet {:.2} s, manager {:.2} s",
            fleet_runs[run], manager_runs[run]
        );
    }
    let (f, m) = (median(fleet_runs), median(manager_runs));
    println!(
        "fleet-bench: takeover after kill -9 (lease 3 s): claimed after {:.2} s, the new \
         owner's first segment after {:.2} s (medians of {RUNS})",
        median(claims),
        median(takeovers)
    );
    println!(
        "fleet-bench: {JOBS} on-demand jobs: 2 workers (2 each) {f:.2} s, one manager (4) \
         {m:.2} s: throughput {:+.1} %",
        (m / f - 1.0) * 100.0
    );
}

/// Seconds to run the jobs through two worker processes (started before the clock).
fn through_fleet(run: usize) -> f64 {
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let args = [
        "--max-concurrent",
        "2",
        "--allow-lavfi",
        "--out",
        out.to_str().unwrap(),
    ];
    let _workers: Vec<Worker> = ["a", "b"]
        .iter()
        .map(|n| Worker::start(&redis, n, tmp.path(), &args))
        .collect();
    let mut client = redis.client();
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let ids: Vec<String> = (0..JOBS).map(|i| format!("f{run}-{i}")).collect();
    for id in &ids {
        submit_vod(&mut client, id, SOURCE, RUNGS);
    }
    for id in &ids {
        let st = wait_final(&mut client, id, Duration::from_secs(300));
        assert_eq!(st.state, "completed", "{st:?}");
    }
    started.elapsed().as_secs_f64()
}

/// Seconds to run the same jobs through one manager in this process.
fn through_manager(run: usize) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let manager = Manager::builder()
        .max_concurrent(4)
        .over_capacity(OverCapacity::Queue, OverCapacity::Queue)
        .max_queue(JOBS)
        .build()
        .unwrap();
    let rules = TrustRules {
        local_files_under: None,
        allow_generated: true,
    };
    let raw = config(SOURCE, RUNGS).to_string();
    let started = Instant::now();
    for i in 0..JOBS {
        let id = format!("m{run}-{i}");
        let builder = build_config(&id, &raw, tmp.path().join(&id), &rules).unwrap();
        manager
            .create_stream(builder.sync_output(false).build().unwrap())
            .unwrap();
    }
    assert!(manager.wait_idle(Duration::from_secs(300)));
    started.elapsed().as_secs_f64()
}
