//! What [`Manager::render_metrics`](super::Manager::render_metrics) exposes, in the
//! OpenMetrics text format ([`exposition`](super::exposition)): every managed stream's state
//! and figures, every rung's, the pool's capacity and use, and the admission decisions the
//! manager has counted. The registry lock is held only to copy what is needed (ids, states,
//! allocations, the handles to read statistics from); statistics are read after it is
//! released, as [`Manager::stats`](super::Manager::stats) reads them.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::exposition::{Exposition, Kind, Value};
use super::{AdmissionEvent, ManagerCore};
use crate::error::{Refusal, Shortage};
use crate::pool::{PoolUsage, ResourceCost};
use crate::state::StreamState;
use crate::stats::{InputStats, StreamStats, VariantStats};
use crate::stream::StatsReader;

/// Admission decisions by outcome and reason, since the manager was built.
#[derive(Debug)]
pub(super) struct AdmissionCounts {
    /// (outcome, reason or ""): count. Every combination that can happen is there from the
    /// start, at zero, so that a rate over it exists before the first event.
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Automatic restarts admitted.
    restarts: Mutex<u64>,
}

/// Every refusal reason, as labelled.
const REFUSALS: [&str; 12] = [
    "duplicate_id",
    "output_in_use",
    "output_busy",
    "max_concurrent",
    "capacity_compute",
    "capacity_memory",
    "capacity_hw_sessions",
    "behind_queue",
    "queue_full",
    "overloaded",
    "shutting_down",
    "local_files_outside",
];

/// What a queued stream may wait for.
const WAITS: [&str; 5] = [
    "max_concurrent",
    "capacity_compute",
    "capacity_memory",
    "capacity_hw_sessions",
    "behind_queue",
];

/// A refusal's label.
fn reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::DuplicateId => "duplicate_id",
        Refusal::OutputInUse => "output_in_use",
        Refusal::OutputBusy => "output_busy",
        Refusal::MaxConcurrent { .. } => "max_concurrent",
        Refusal::Capacity(Shortage::Compute { .. }) => "capacity_compute",
        Refusal::Capacity(Shortage::Memory { .. }) => "capacity_memory",
        Refusal::Capacity(Shortage::HwSessions { .. }) => "capacity_hw_sessions",
        Refusal::BehindQueue { .. } => "behind_queue",
        Refusal::QueueFull { .. } => "queue_full",
        Refusal::Overloaded { .. } => "overloaded",
        Refusal::ShuttingDown => "shutting_down",
        Refusal::LocalFilesOutside { .. } => "local_files_outside",
    }
}

impl Default for AdmissionCounts {
    fn default() -> Self {
        let mut counts = BTreeMap::new();
        for outcome in ["started", "degraded", "not_started"] {
            counts.insert((outcome, ""), 0);
        }
        for r in REFUSALS {
            counts.insert(("refused", r), 0);
        }
        for r in WAITS {
            counts.insert(("queued", r), 0);
        }
        Self {
            counts: Mutex::new(counts),
            restarts: Mutex::new(0),
        }
    }
}

impl AdmissionCounts {
    /// Counts one admission event (every event the admission hooks get).
    pub(super) fn count(&self, ev: &AdmissionEvent) {
        let key = match (ev.admitted, ev.queued, &ev.reason) {
            (true, _, _) if ev.degraded.is_some() => ("degraded", ""),
            (true, _, _) => ("started", ""),
            (false, true, Some(r)) => ("queued", reason(r)),
            (false, false, Some(r)) => ("refused", reason(r)),
            (false, _, None) => ("not_started", ""),
        };
        // Short: a counter.
        *self.counts.lock().entry(key).or_insert(0) += 1;
        if ev.admitted && ev.restart {
            *self.restarts.lock() += 1;
        }
    }
}

/// One managed stream as copied under the registry lock.
struct Managed {
    id: String,
    state: StreamState,
    restarts: u32,
    cost: ResourceCost,
    reader: StatsReader,
}

/// Everything rendered, copied under the locks it lives behind.
struct Snapshot {
    managed: Vec<Managed>,
    queued: Vec<String>,
    starting: usize,
    stopping: usize,
    max_concurrent: usize,
    max_queue: usize,
    pool: PoolUsage,
    admissions: BTreeMap<(&'static str, &'static str), u64>,
    restarts: u64,
}

fn snapshot(core: &ManagerCore) -> Snapshot {
    let (mut managed, queued, starting, stopping) = {
        // Short: one pass over the map, copying ids, states, costs and stats handles.
        let g = core.registry.lock();
        let managed: Vec<Managed> = g
            .map
            .iter()
            .map(|(id, e)| Managed {
                id: id.clone(),
                state: e.stream.state(),
                restarts: e.restarts,
                cost: e.allocation.cost().clone(),
                reader: e.stream.stats_reader(),
            })
            .collect();
        let queued = g.queued.iter().map(|q| q.config.id().to_owned()).collect();
        (managed, queued, g.starting.len(), g.stopping.len())
    };
    managed.sort_by(|a, b| a.id.cmp(&b.id));
    Snapshot {
        managed,
        queued,
        starting,
        stopping,
        max_concurrent: core.max_concurrent,
        max_queue: core.max_queue,
        pool: core.pool.usage(),
        admissions: core.admissions.counts.lock().clone(),
        restarts: *core.admissions.restarts.lock(),
    }
}

/// A family read from a `T`: name, type, help, and how to read it.
type Figure<T> = (&'static str, Kind, &'static str, fn(&T) -> Value);

/// The figures of every managed stream, from its [`StreamStats`] (label `stream`).
const STREAM_FIGURES: [Figure<StreamStats>; 22] = [
    (
        "streamvisor_stream_uptime_seconds",
        Kind::Gauge,
        "Time since the stream was started.",
        |s| s.uptime.into(),
    ),
    (
        "streamvisor_stream_frames_in_total",
        Kind::Counter,
        "Video frames decoded from the source.",
        |s| s.frames_in.into(),
    ),
    (
        "streamvisor_stream_audio_frames_in_total",
        Kind::Counter,
        "Audio frames decoded from the source.",
        |s| s.audio_frames_in.into(),
    ),
    (
        "streamvisor_stream_packets_in_total",
        Kind::Counter,
        "Packets read from the source.",
        |s| s.packets_in.into(),
    ),
    (
        "streamvisor_stream_corrupt_packets_total",
        Kind::Counter,
        "Packets found corrupt and skipped.",
        |s| s.corrupt_packets.into(),
    ),
    (
        "streamvisor_stream_frames_out_total",
        Kind::Counter,
        "Video frames encoded and written, all rungs together.",
        |s| s.variants.iter().map(|v| v.frames_out).sum::<u64>().into(),
    ),
    (
        "streamvisor_stream_bytes_in_total",
        Kind::Counter,
        "Bytes read from the source (packet payloads).",
        |s| s.bytes_in.into(),
    ),
    (
        "streamvisor_stream_bytes_out_total",
        Kind::Counter,
        "Bytes written: every segment and playlist.",
        |s| s.bytes_out.into(),
    ),
    (
        "streamvisor_stream_media_seconds_total",
        Kind::Counter,
        "Media time decoded.",
        |s| s.media_time.into(),
    ),
    (
        "streamvisor_stream_speed_ratio",
        Kind::Gauge,
        "Media time per wall-clock time since the start (1 = real time).",
        |s| s.speed.into(),
    ),
    (
        "streamvisor_stream_bitrate_bits_per_second",
        Kind::Gauge,
        "Output bits per second of media over roughly the last five seconds of media.",
        |s| s.recent_bitrate.into(),
    ),
    (
        "streamvisor_stream_errors_total",
        Kind::Counter,
        "Errors seen, recovered or not.",
        |s| s.errors.into(),
    ),
    (
        "streamvisor_stream_recoveries_total",
        Kind::Counter,
        "Successful recoveries (reconnects, fallbacks to the CPU).",
        |s| s.recoveries.into(),
    ),
    (
        "streamvisor_stream_hardware_fallbacks_total",
        Kind::Counter,
        "Times a hardware device failed and the stream went on on the CPU.",
        |s| s.hardware_fallbacks.into(),
    ),
    (
        "streamvisor_stream_deletes_refused_total",
        Kind::Counter,
        "Deletes of files that left the live window which the store refused (each try).",
        |s| s.deletes_refused.into(),
    ),
    (
        "streamvisor_stream_deletes_given_up_total",
        Kind::Counter,
        "Files that left the live window and were left in the store for good.",
        |s| s.deletes_given_up.into(),
    ),
    (
        "streamvisor_stream_outages_total",
        Kind::Counter,
        "Source outages: from the error that began one to media flowing again.",
        |s| s.outage_count.into(),
    ),
    (
        "streamvisor_stream_outage_seconds_total",
        Kind::Counter,
        "Time spent in source outages, the current one so far included.",
        |s| s.outage_time.into(),
    ),
    (
        "streamvisor_stream_filling",
        Kind::Gauge,
        "1 while a live stream's input-loss filler plays (its source sends nothing).",
        |s| u64::from(s.live_clock.filling).into(),
    ),
    (
        "streamvisor_stream_filler_frames_total",
        Kind::Counter,
        "Frames the live clock sent in place of source frames (last frame held, black, slate).",
        |s| s.live_clock.filler_frames.into(),
    ),
    (
        "streamvisor_stream_clock_repeats_total",
        Kind::Counter,
        "Frames repeated to keep a live output's media time on the wall clock.",
        |s| s.live_clock.frames_repeated.into(),
    ),
    (
        "streamvisor_stream_cpu_seconds_total",
        Kind::Counter,
        "CPU time (user + system) used by the stream's threads.",
        |s| s.cpu_time.into(),
    ),
];

/// The figures of every rung (labels `stream`, `variant`).
const VARIANT_FIGURES: [Figure<VariantStats>; 6] = [
    (
        "streamvisor_variant_frames_out_total",
        Kind::Counter,
        "Video frames encoded and written by the rung.",
        |v| v.frames_out.into(),
    ),
    (
        "streamvisor_variant_frames_dropped_total",
        Kind::Counter,
        "Frames the rung did not encode (frame-rate cap, timestamps that did not advance).",
        |v| v.frames_dropped.into(),
    ),
    (
        "streamvisor_variant_bytes_out_total",
        Kind::Counter,
        "Bytes of segments the rung wrote.",
        |v| v.bytes_out.into(),
    ),
    (
        "streamvisor_variant_segments_total",
        Kind::Counter,
        "Segments the rung completed.",
        |v| v.segments.into(),
    ),
    (
        "streamvisor_variant_media_seconds_total",
        Kind::Counter,
        "Media time the rung encoded.",
        |v| v.media_time.into(),
    ),
    (
        "streamvisor_variant_bitrate_bits_per_second",
        Kind::Gauge,
        "The rung's average output bits per second of media.",
        |v| v.average_bitrate.into(),
    ),
];

/// The figures of each input of a stream with backups (labels `stream`, `input`: 0 for the
/// primary, then each backup).
const INPUT_FIGURES: [Figure<InputStats>; 4] = [
    (
        "streamvisor_input_active",
        Kind::Gauge,
        "1 for the input the output shows now.",
        |i| u64::from(i.active).into(),
    ),
    (
        "streamvisor_input_activations_total",
        Kind::Counter,
        "Times the input became the active one (switches to it, the primary's start included).",
        |i| i.activations.into(),
    ),
    (
        "streamvisor_input_losses_total",
        Kind::Counter,
        "Times the input was lost while active.",
        |i| i.losses.into(),
    ),
    (
        "streamvisor_input_frames_total",
        Kind::Counter,
        "Video frames decoded from the input.",
        |i| i.frames.into(),
    ),
];

/// The page: see the module's doc and the README's list.
pub(super) fn render(core: &ManagerCore) -> String {
    let snap = snapshot(core);
    // Read outside every manager lock (a snapshot reads /proc for the CPU time).
    let stats: Vec<StreamStats> = snap.managed.iter().map(|m| m.reader.stats()).collect();
    let mut e = Exposition::default();
    render_manager(&mut e, &snap);
    render_states(&mut e, &snap);
    render_streams(&mut e, &snap.managed, &stats);
    render_pool(&mut e, &snap.pool);
    e.finish()
}

fn render_manager(e: &mut Exposition, snap: &Snapshot) {
    let mut f = e.family(
        "streamvisor_manager_streams",
        Kind::Gauge,
        "Streams the manager holds, by phase: managed (started, in any state), starting, \
         stopping (being retired), queued (waiting for capacity).",
    );
    let phases = [
        ("managed", snap.managed.len()),
        ("starting", snap.starting),
        ("stopping", snap.stopping),
        ("queued", snap.queued.len()),
    ];
    for (phase, n) in phases {
        f.sample(&[("phase", phase)], n as u64);
    }
    let limits = [
        (
            "streamvisor_manager_max_concurrent",
            "Most streams running at once.",
            snap.max_concurrent,
        ),
        (
            "streamvisor_manager_max_queue",
            "Longest admission queue.",
            snap.max_queue,
        ),
    ];
    for (name, help, v) in limits {
        e.family(name, Kind::Gauge, help).sample(&[], v as u64);
    }
    let mut f = e.family(
        "streamvisor_admissions_total",
        Kind::Counter,
        "Admission decisions: started, degraded (started with less), queued (reason: what it \
         waits for), refused (reason: why), not_started (admitted, its threads could not start).",
    );
    for ((outcome, reason), n) in &snap.admissions {
        if reason.is_empty() {
            f.sample(&[("outcome", outcome)], *n);
        } else {
            f.sample(&[("outcome", outcome), ("reason", reason)], *n);
        }
    }
    e.family(
        "streamvisor_restarts_total",
        Kind::Counter,
        "Automatic restarts of failed streams admitted.",
    )
    .sample(&[], snap.restarts);
}

fn render_states(e: &mut Exposition, snap: &Snapshot) {
    let mut f = e.family(
        "streamvisor_stream_state",
        Kind::Gauge,
        "1 for the state each stream is in, 0 for the others (a queued stream is New).",
    );
    let states = snap.managed.iter().map(|m| (m.id.as_str(), m.state));
    let queued = snap.queued.iter().map(|id| (id.as_str(), StreamState::New));
    for (id, now) in states.chain(queued) {
        for s in StreamState::ALL {
            f.sample(&[("stream", id), ("state", s.name())], u64::from(s == now));
        }
    }
}

fn render_streams(e: &mut Exposition, managed: &[Managed], stats: &[StreamStats]) {
    let mut f = e.family(
        "streamvisor_stream_restarts_total",
        Kind::Counter,
        "Times the manager restarted the stream after it failed.",
    );
    for m in managed {
        f.sample(&[("stream", &m.id)], u64::from(m.restarts));
    }
    let allocated: [Figure<ResourceCost>; 2] = [
        (
            "streamvisor_stream_allocated_compute_units",
            Kind::Gauge,
            "Compute units the stream holds in the pool.",
            |c| c.compute.into(),
        ),
        (
            "streamvisor_stream_allocated_memory_bytes",
            Kind::Gauge,
            "Bytes of memory the stream holds in the pool.",
            |c| c.memory.into(),
        ),
    ];
    for (name, kind, help, get) in allocated {
        let mut f = e.family(name, kind, help);
        for m in managed {
            f.sample(&[("stream", &m.id)], get(&m.cost));
        }
    }
    for (name, kind, help, get) in STREAM_FIGURES {
        let mut f = e.family(name, kind, help);
        for (m, s) in managed.iter().zip(stats) {
            f.sample(&[("stream", &m.id)], get(s));
        }
    }
    for (name, kind, help, get) in VARIANT_FIGURES {
        let mut f = e.family(name, kind, help);
        for (m, s) in managed.iter().zip(stats) {
            for v in &s.variants {
                f.sample(&[("stream", &m.id), ("variant", &v.name)], get(v));
            }
        }
    }
    for (name, kind, help, get) in INPUT_FIGURES {
        let mut f = e.family(name, kind, help);
        for (m, s) in managed.iter().zip(stats) {
            for (i, input) in s.inputs.iter().enumerate() {
                f.sample(&[("stream", &m.id), ("input", &i.to_string())], get(input));
            }
        }
    }
}

fn render_pool(e: &mut Exposition, pool: &PoolUsage) {
    let totals: [(&'static str, &str, Value); 7] = [
        (
            "streamvisor_pool_compute_capacity_units",
            "The pool's compute units.",
            pool.capacity.compute.into(),
        ),
        (
            "streamvisor_pool_compute_used_units",
            "Compute units allocated.",
            pool.used.compute.into(),
        ),
        (
            "streamvisor_pool_compute_free_units",
            "Compute units free.",
            pool.free_compute().into(),
        ),
        (
            "streamvisor_pool_memory_capacity_bytes",
            "The pool's bytes of memory.",
            pool.capacity.memory.into(),
        ),
        (
            "streamvisor_pool_memory_used_bytes",
            "Bytes of memory allocated.",
            pool.used.memory.into(),
        ),
        (
            "streamvisor_pool_memory_free_bytes",
            "Bytes of memory free.",
            pool.free_memory().into(),
        ),
        (
            "streamvisor_pool_allocations",
            "Live allocations (streams holding resources).",
            (pool.allocations as u64).into(),
        ),
    ];
    for (name, help, v) in totals {
        e.family(name, Kind::Gauge, help).sample(&[], v);
    }
    let limit = &pool.capacity.hw_sessions;
    let used = &pool.used.hw_sessions;
    let mut f = e.family(
        "streamvisor_pool_hw_sessions_capacity",
        Kind::Gauge,
        "Session limit of each hardware device that has one.",
    );
    for (device, n) in limit {
        f.sample(&[("device", device)], u64::from(*n));
    }
    let mut f = e.family(
        "streamvisor_pool_hw_sessions_used",
        Kind::Gauge,
        "Sessions allocated on each hardware device (limited or in use).",
    );
    let devices: std::collections::BTreeSet<&String> = limit.keys().chain(used.keys()).collect();
    for device in &devices {
        f.sample(
            &[("device", device)],
            u64::from(used.get(*device).copied().unwrap_or(0)),
        );
    }
    let mut f = e.family(
        "streamvisor_pool_hw_sessions_free",
        Kind::Gauge,
        "Sessions free on each hardware device that has a limit.",
    );
    for (device, n) in limit {
        let in_use = used.get(device).copied().unwrap_or(0);
        f.sample(&[("device", device)], u64::from(n.saturating_sub(in_use)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::Manager;
    use crate::pool::ResourceCapacity;

    fn event(admitted: bool, queued: bool, reason: Option<Refusal>) -> AdmissionEvent {
        AdmissionEvent {
            stream: "s".into(),
            admitted,
            queued,
            reason,
            degraded: None,
            restart: false,
            at: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn admissions_are_counted_by_outcome_and_reason() {
        let c = AdmissionCounts::default();
        c.count(&event(true, false, None));
        let mut restart = event(true, false, None);
        restart.restart = true;
        c.count(&restart);
        let mut degraded = event(true, false, None);
        degraded.degraded = Some(Default::default());
        c.count(&degraded);
        c.count(&event(false, true, Some(Refusal::BehindQueue { ahead: 2 })));
        let short = Shortage::Memory { needed: 2, free: 1 };
        c.count(&event(false, false, Some(Refusal::Capacity(short))));
        c.count(&event(false, false, None));
        let counts = c.counts.lock().clone();
        assert_eq!(counts[&("started", "")], 2);
        assert_eq!(counts[&("degraded", "")], 1);
        assert_eq!(counts[&("queued", "behind_queue")], 1);
        assert_eq!(counts[&("refused", "capacity_memory")], 1);
        assert_eq!(counts[&("not_started", "")], 1);
        assert_eq!(counts[&("refused", "duplicate_id")], 0, "seeded at zero");
        assert_eq!(
            counts.len(),
            3 + REFUSALS.len() + WAITS.len(),
            "no other key"
        );
        assert_eq!(*c.restarts.lock(), 1);
    }

    #[test]
    fn an_idle_manager_renders_its_pool_and_zeroed_counters() {
        let capacity = ResourceCapacity::new(120.0, 1 << 30).with_hw_sessions("cuda:0", 3);
        let m = Manager::builder().capacity(capacity).build().unwrap();
        let page = m.render_metrics();
        for line in [
            "streamvisor_pool_compute_capacity_units 120.0",
            "streamvisor_pool_compute_free_units 120.0",
            "streamvisor_pool_memory_capacity_bytes 1073741824",
            "streamvisor_pool_memory_used_bytes 0",
            "streamvisor_pool_hw_sessions_capacity{device=\"cuda:0\"} 3",
            "streamvisor_pool_hw_sessions_free{device=\"cuda:0\"} 3",
            "streamvisor_admissions_total{outcome=\"refused\",reason=\"queue_full\"} 0",
            "streamvisor_manager_streams{phase=\"queued\"} 0",
            "streamvisor_manager_max_concurrent 16",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
        }
        assert!(!page.contains("stream=\""), "no stream yet");
        // Counters are declared without `_total`; their samples carry it.
        assert!(
            page.contains("\n# TYPE streamvisor_restarts counter\nstreamvisor_restarts_total 0\n")
        );
        assert!(page.ends_with("\n# EOF\n"), "{page}");
        // Every family announced once, with its help first.
        let types = page.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = page.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
        assert_eq!(
            types,
            19 + STREAM_FIGURES.len() + VARIANT_FIGURES.len() + INPUT_FIGURES.len()
        );
    }
}
