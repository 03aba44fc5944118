//! Manager costs: admission decisions per second (the pool check a server makes per
//! request), and create → terminate of a small stream.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamvisor::{AbrProfile, Manager, ResourceCapacity, StreamConfig};

fn config(id: &str, out: &std::path::Path) -> StreamConfig {
    StreamConfig::builder(
        id,
        "lavfi:testsrc2=size=320x180:rate=15,realtime",
        out.join(id),
    )
    .allow_generated_sources(true)
    .profile(
        AbrProfile::from_rungs(&["240p"])
            .unwrap()
            .with_preset("ultrafast")
            .with_keep_taller_rungs(true),
    )
    .build()
    .unwrap()
}

fn manager(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("manager");

    // Admission against a manager already running a few streams.
    let m = Manager::builder()
        .capacity(ResourceCapacity::new(10_000.0, 64 << 30))
        .build()
        .unwrap();
    for i in 0..4 {
        m.create_stream(config(&format!("busy{i}"), dir.path()))
            .unwrap();
    }
    let candidate = config("candidate", dir.path());
    group.throughput(Throughput::Elements(1));
    group.bench_function("admission_decision", |b| b.iter(|| m.can_admit(&candidate)));
    m.shutdown(Duration::from_secs(5));

    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let m = Manager::builder()
        .capacity(ResourceCapacity::new(10_000.0, 64 << 30))
        .build()
        .unwrap();
    group.bench_function("create_then_terminate", |b| {
        b.iter(|| {
            m.create_stream(config("cycle", dir.path())).unwrap();
            m.terminate_stream("cycle", Duration::from_secs(5)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, manager);
criterion_main!(benches);
