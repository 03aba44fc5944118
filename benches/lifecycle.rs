//! Lifecycle latency on a `lavfi:` source: `start` until the stream is `Running`, and a
//! graceful `stop` until it is `Stopped` with its playlists finished.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use streamvisor::{AbrProfile, StateSet, Stream, StreamConfig, StreamState};

fn config(out: &std::path::Path) -> StreamConfig {
    StreamConfig::builder("bench", "lavfi:testsrc2=size=640x360:rate=30", out)
        .allow_generated_sources(true)
        .profile(
            AbrProfile::from_rungs(&["360p", "240p"])
                .unwrap()
                .with_preset("veryfast"),
        )
        .build()
        .unwrap()
}

fn lifecycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("lifecycle");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));

    group.bench_function("start_to_running", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let running = Stream::new(config(dir.path())).start().unwrap();
                let s = running.wait_for(
                    StateSet::RUNNING | StateSet::TERMINAL,
                    Duration::from_secs(10),
                );
                total += t.elapsed();
                assert_eq!(s, StreamState::Running);
                drop(running.abort());
            }
            total
        })
    });

    group.bench_function("stop_to_stopped", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let running = Stream::new(config(dir.path())).start().unwrap();
                running.wait_for(StateSet::RUNNING, Duration::from_secs(10));
                // Let a few frames into the encoders so the stop has something to drain.
                std::thread::sleep(Duration::from_millis(200));
                let t = Instant::now();
                let report = running.stop(Duration::from_secs(10));
                total += t.elapsed();
                assert_eq!(report.state, StreamState::Stopped);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
