//! Many streams on one machine: the [`Manager`] (built with a [`ManagerBuilder`]) admits
//! each stream against `max_concurrent` and a [`ResourcePool`],
//! queues, degrades or refuses what does not fit ([`OverCapacity`]), reports each decision
//! ([`AdmissionEvent`], with the [`Refusal`] saying what ran short and the [`Degradation`]
//! of a stream admitted with less), lists what it runs ([`StreamSummary`]), reaps and
//! optionally restarts streams, and shuts them all down in parallel.
//!
//! [`Manager`], [`ManagerBuilder`] and [`Admitted`] are also at the crate root.

// Inside: admission control (`admission`), reaping and the stall watchdog (`monitor`),
// queued starts and restarts (`admitter`), metrics (`metrics`). One short lock guards the
// registry of streams; it is never held while starting, stopping or waiting on a stream,
// calling a hook, or doing I/O, so hooks may call back into the manager. Reservations (ids
// and output directories) carry the generation of the stream that holds them, so an old
// stream's retirement never frees a newer one's.

mod admission;
mod admitter;
mod builder;
mod degrade;
mod exposition;
mod metrics;
mod monitor;
mod registry;
#[cfg(feature = "serde")]
mod spec;

pub use crate::error::refusal::Refusal;
pub use admission::{AdmissionEvent, Admitted, OverCapacity};
pub use builder::ManagerBuilder;
pub use degrade::Degradation;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use crate::config::{RestartPolicy, StreamConfig};
use crate::error::Error;
use crate::hooks::Hooks;
use crate::panic::guarded;
use crate::pool::{price, PoolUsage, ResourcePool};
use crate::state::{StateSet, StreamState};
use crate::stats::StreamStats;
use crate::stream::{on_hook_thread, Running, Stream, StreamReport, TrackedThread, GRACE};
use builder::{AdmissionHook, FinishedHook};
use monitor::MonitorMsg;
use registry::{ManagedStream, Registry};

/// A managed stream at a glance.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamSummary {
    /// Stream id.
    pub id: String,
    /// Its state (`New` while it waits in the queue).
    pub state: StreamState,
    /// Its place in the admission queue (0 = next), while it waits there.
    pub queue_position: Option<usize>,
}

/// What the manager's handle, its monitor, admission and reaper threads share.
struct ManagerCore {
    max_concurrent: usize,
    /// What happens to file and generated sources that do not fit now.
    files_over_capacity: OverCapacity,
    /// What happens to network (live) sources that do not fit now.
    live_over_capacity: OverCapacity,
    /// Longest admission queue.
    max_queue: usize,
    /// Wall time over which a live stream's speed is measured.
    realtime_window: Duration,
    pool: Arc<ResourcePool>,
    stall_timeout: Option<Duration>,
    restart: RestartPolicy,
    hooks: Hooks,
    on_admission: Vec<AdmissionHook>,
    on_finished: Vec<FinishedHook>,
    registry: Mutex<Registry>,
    /// Notified whenever a started stream enters the map or one leaves it, a reservation is
    /// released, or a retirement ends.
    changed: Condvar,
    /// To the monitor: streams that ended or opened their source.
    monitor_tx: Sender<MonitorMsg>,
    /// To the admission thread: restarts to admit when due.
    admit_tx: Sender<admitter::AdmitMsg>,
    /// Admission decisions counted for the metrics.
    admissions: metrics::AdmissionCounts,
}

impl ManagerCore {
    /// One retirement is over (its finished hooks have run).
    fn retired_one(&self) {
        // Short: a counter.
        let mut g = self.registry.lock();
        g.retiring = g.retiring.saturating_sub(1);
        drop(g);
        self.changed.notify_all();
    }
}

thread_local! {
    /// The managers (by address) whose retirements run their finished hooks on this thread
    /// now: a hook that waits for its manager to be idle does not wait for its own
    /// retirement.
    static RETIRING_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Retirements of `core`'s whose finished hooks run on this thread now.
fn retiring_here(core: &ManagerCore) -> usize {
    let me = std::ptr::from_ref(core) as usize;
    RETIRING_HERE.with(|r| r.borrow().iter().filter(|&&c| c == me).count())
}

/// Runs the finished hooks for `report`, as on a hook thread and as `core`'s retirement.
fn run_finished_hooks(core: &ManagerCore, report: &StreamReport) {
    let me = std::ptr::from_ref(core) as usize;
    let was = on_hook_thread();
    crate::stream::act_for_hook_thread(true);
    RETIRING_HERE.with(|r| r.borrow_mut().push(me));
    for h in &core.on_finished {
        guarded(
            format_args!("stream {}", report.id),
            "finished hook",
            || {
                h(report);
            },
        );
    }
    RETIRING_HERE.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(i) = r.iter().rposition(|&c| c == me) {
            r.remove(i);
        }
    });
    crate::stream::act_for_hook_thread(was);
}

/// Ends a stream that has left the map: `end` stops it (or waits for it, bounded), then its
/// allocation drops (the one place resources return), its reservation is released, and the
/// finished hooks run.
fn retire(
    core: &Arc<ManagerCore>,
    entry: ManagedStream,
    end: impl FnOnce(Stream<Running>) -> StreamReport,
) -> StreamReport {
    let ManagedStream {
        gen,
        stream,
        allocation,
        config,
        ..
    } = entry;
    let worker = stream.worker_exit();
    let report = end(stream);
    drop(allocation);
    {
        // Short: map edits. A worker left behind may still write to the output directory
        // (a variant returning from a stuck write): the directory stays refused until it
        // ends, though the id is free.
        let mut g = core.registry.lock();
        g.release(&report.id, gen);
        if let Some(worker) = worker.filter(|w| !w.ended()) {
            g.keep_output_until(config.sink().identity(), worker);
        }
    }
    core.changed.notify_all();
    // A finished hook may stop streams or shut the manager down: while it runs this thread
    // acts for a hook thread (it joins no hook thread and waits for no retirement). Only
    // while it runs: the stream's own hook thread was joined above, so its last events
    // have been delivered when the retirement ends.
    run_finished_hooks(core, &report);
    // Counted done before the queue moves on: an admission hook run below may wait for
    // idleness. The registry is not idle meanwhile (the queue counts).
    core.retired_one();
    // Capacity came back: the queue goes first.
    admission::start_queued(core);
    report
}

/// Runs many streams under admission control. `Send + Sync`: share it (e.g. in an `Arc`)
/// across threads. Dropping it shuts it down (every stream stopped, 5 s deadline).
///
/// ```no_run
/// use std::time::Duration;
/// use streamvisor::{Manager, StreamConfig};
///
/// let manager = Manager::builder().max_concurrent(8).build()?;
/// let config = StreamConfig::builder("cam1", "rtmp://127.0.0.1/live/cam1", "/srv/hls/cam1").build()?;
/// manager.create_stream(config)?; // refused with Error::Refused if it does not fit
/// println!("{:?}", manager.list());
/// manager.terminate_stream("cam1", Duration::from_secs(5))?;
/// # Ok::<(), streamvisor::Error>(())
/// ```
pub struct Manager {
    core: Arc<ManagerCore>,
    threads: Mutex<Option<ManagerThreads>>,
}

/// The manager's own threads, and the sender whose drop tells them to quit.
struct ManagerThreads {
    monitor: TrackedThread,
    admitter: TrackedThread,
    quit: Sender<()>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("streams", &self.list())
            .finish()
    }
}

impl Manager {
    /// A builder with the defaults.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Admits and starts a stream; or, when it does not fit now (`max_concurrent`, pool
    /// capacity), queues it or refuses it as the [`OverCapacity`] policy for its kind of
    /// source says (default: files and generated sources queue, network sources are
    /// refused); or refuses it with [`Error::Refused`] saying why (id or output directory in
    /// use, hardware sessions, queue full, shutting down). Never blocks on I/O.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use streamvisor::{Admitted, Manager, StreamConfig};
    /// # fn main() -> Result<(), streamvisor::Error> {
    /// let manager = Manager::builder().max_concurrent(8).build()?;
    /// let config = StreamConfig::builder("cam1", "srt://0.0.0.0:9000?mode=listener", "/srv/hls/cam1")
    ///     .build()?;
    /// if let Admitted::Queued { position } = manager.create_stream(config)? {
    ///     println!("waiting, {position} ahead");
    /// }
    /// // Later: finish its playlists within 5 s (then abort), its resources and id free.
    /// let report = manager.terminate_stream("cam1", Duration::from_secs(5))?;
    /// println!("{} frames", report.stats.frames_in);
    /// manager.shutdown(Duration::from_secs(10));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Refused`] with the [`Refusal`] (what ran short, or why it cannot queue);
    /// [`Error::Internal`] when the stream's threads could not be started.
    pub fn create_stream(&self, config: StreamConfig) -> Result<Admitted, Error> {
        admission::admit(&self.core, config, 0)
    }

    /// [`create_stream`](Self::create_stream) with this stream's own hooks, beside the
    /// manager's: attached to every run of it (a restart too). For a channel instead of
    /// callbacks, pass the hooks of an [`event_channel`](crate::event_channel).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use streamvisor::{event_channel, Manager, StreamConfig, StreamEvent};
    /// # fn main() -> Result<(), streamvisor::Error> {
    /// let manager = Manager::builder().build()?;
    /// let config = StreamConfig::builder("vod1", "/media/in.mp4", "/srv/hls/vod1")
    ///     .local_files_under("/media")
    ///     .build()?;
    /// let (hooks, events) = event_channel(256, Duration::from_secs(1));
    /// manager.create_stream_with(config, hooks)?;
    /// for event in events {
    ///     if let StreamEvent::Stats(s) = event {
    ///         println!("{:?} done", s.stats.progress);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`create_stream`](Self::create_stream).
    pub fn create_stream_with(
        &self,
        config: StreamConfig,
        hooks: Hooks,
    ) -> Result<Admitted, Error> {
        admission::admit(&self.core, config.with_attached_hooks(&hooks), 0)
    }

    /// Waits until the stream `id` is in one of `states`, or `timeout` passes; returns the
    /// state it is in then. A queued stream is waited for until it starts (and then in its
    /// states). `None` when no stream with this id is running or queued (never created,
    /// refused, cancelled, or already retired). For the end of a stream, wait for
    /// [`StateSet::TERMINAL`](crate::StateSet::TERMINAL): a stream that ends leaves the
    /// manager soon after.
    pub fn wait_for(&self, id: &str, states: StateSet, timeout: Duration) -> Option<StreamState> {
        let deadline = Instant::now() + timeout;
        let watch = {
            let mut g = self.core.registry.lock();
            loop {
                if let Some(e) = g.map.get(id) {
                    break e.stream.stats_reader();
                }
                let waiting =
                    g.queued.iter().any(|q| q.config.id() == id) || g.starting.contains_key(id);
                if !waiting {
                    return None;
                }
                // The condvar releases the lock while it waits.
                if self.core.changed.wait_until(&mut g, deadline).timed_out() {
                    return None;
                }
            }
        };
        // No lock held while waiting on the stream itself.
        Some(watch.wait_for(states, deadline))
    }

    /// What a config's source is (picture size, frame rate), read by opening it on the
    /// calling thread, bounded by the config's I/O timeout. Feed it back with
    /// [`StreamConfigBuilder::source_hint`](crate::StreamConfigBuilder::source_hint) so that
    /// admission prices the stream exactly.
    ///
    /// # Errors
    /// The error opening the source would give the stream (unreachable, not media, ...).
    pub fn probe(&self, config: &StreamConfig) -> Result<crate::config::SourceHint, Error> {
        crate::pipeline::probe(config)
    }

    /// Removes a stream from the admission queue before it starts; false when no queued
    /// stream has this id.
    pub fn cancel_queued(&self, id: &str) -> bool {
        let removed = {
            // Short: a queue edit.
            let mut g = self.core.registry.lock();
            let before = g.queued.len();
            g.queued.retain(|q| q.config.id() != id);
            g.queued.len() != before
        };
        self.core.changed.notify_all();
        removed
    }

    /// Would this config be started now? Answers without allocating or starting (a stream
    /// that would be queued gets what it would wait for, e.g. [`Refusal::BehindQueue`]).
    ///
    /// # Errors
    /// The [`Refusal`] `create_stream` would refuse or queue it for now.
    pub fn can_admit(&self, config: &StreamConfig) -> Result<(), Refusal> {
        {
            // Short: checks only.
            let g = self.core.registry.lock();
            admission::check_admission(&self.core, &g, config)?;
            let policy = admission::policy_for(&self.core, config);
            if let Some(wait) = admission::behind_queue(&g, config, policy, 0) {
                return Err(wait);
            }
        }
        self.core
            .pool
            .can_allocate(&price(config))
            .map_err(Refusal::Capacity)
    }

    /// Graceful stop of one stream (then abort at the deadline); returns within `deadline`
    /// + [`GRACE`], with its resources and id free.
    ///
    /// # Errors
    /// [`Error::UnknownStream`] when no running stream has this id.
    pub fn terminate_stream(&self, id: &str, deadline: Duration) -> Result<StreamReport, Error> {
        let entry = self.take(id)?;
        Ok(retire(&self.core, entry, |s| s.stop(deadline)))
    }

    /// Immediate stop of one stream; returns within [`GRACE`].
    ///
    /// # Errors
    /// [`Error::UnknownStream`] when no running stream has this id.
    pub fn abort_stream(&self, id: &str) -> Result<StreamReport, Error> {
        let entry = self.take(id)?;
        Ok(retire(&self.core, entry, Stream::abort))
    }

    fn take(&self, id: &str) -> Result<ManagedStream, Error> {
        let entry = self.core.registry.lock().take(id);
        self.core.changed.notify_all();
        entry.ok_or_else(|| Error::UnknownStream { id: id.to_owned() })
    }

    /// The state of a managed stream.
    pub fn state(&self, id: &str) -> Option<StreamState> {
        // Short: a lookup and a state read.
        let g = self.core.registry.lock();
        g.map.get(id).map(|e| e.stream.state())
    }

    /// The statistics of a managed stream.
    pub fn stats(&self, id: &str) -> Option<StreamStats> {
        // Short: a lookup. The snapshot (which reads /proc) is taken after the unlock.
        let reader = self.core.registry.lock().map.get(id)?.stream.stats_reader();
        Some(reader.stats())
    }

    /// Every managed stream and its state, sorted by id.
    pub fn list(&self) -> Vec<StreamSummary> {
        let mut v: Vec<StreamSummary> = {
            // Short: one pass over the map.
            let g = self.core.registry.lock();
            let running = g.map.iter().map(|(id, e)| StreamSummary {
                id: id.clone(),
                state: e.stream.state(),
                queue_position: None,
            });
            let queued = g.queued.iter().enumerate().map(|(i, q)| StreamSummary {
                id: q.config.id().to_owned(),
                state: StreamState::New,
                queue_position: Some(i),
            });
            running.chain(queued).collect()
        };
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The pool's usage and free capacity.
    pub fn pool_usage(&self) -> PoolUsage {
        self.core.pool.usage()
    }

    /// The HTTP `Content-Type` of [`render_metrics`](Self::render_metrics)'s page:
    /// OpenMetrics text, version 1.0.0 (`application/openmetrics-text; version=1.0.0;
    /// charset=utf-8`). Serve the page with it: Prometheus picks its parser by this header.
    pub const METRICS_CONTENT_TYPE: &'static str = exposition::CONTENT_TYPE;

    /// The manager's metrics in the OpenMetrics text format (version 1.0.0, written by the
    /// `prometheus-client` crate; serve them as [`Self::METRICS_CONTENT_TYPE`]), for a
    /// `/metrics` endpoint: every managed stream's state (`streamvisor_stream_state`, one
    /// sample per state, 1 for the current one; queued streams are `New`) and figures
    /// (frames, bytes, bitrate, speed, errors, recoveries, outages, CPU time: label
    /// `stream`), every rung's (labels `stream`, `variant`), the pool's capacity, use and
    /// free room per resource, and the admission decisions by outcome and reason since the
    /// manager was built. The README lists every metric. Counter samples end in `_total`
    /// (`streamvisor_admissions_total`); OpenMetrics declares their family without it
    /// (`# TYPE streamvisor_admissions counter`). A stream's counters start again from zero
    /// when it is restarted (Prometheus treats that as a counter reset).
    ///
    /// Takes the registry lock only to copy ids, states and handles; the statistics are
    /// read after it is released.
    ///
    /// ```
    /// let manager = streamvisor::Manager::builder().build()?;
    /// let page = manager.render_metrics();
    /// assert!(page.contains("# TYPE streamvisor_admissions counter"));
    /// assert!(page.contains("streamvisor_admissions_total{outcome=\"started\"} 0"));
    /// assert!(page.ends_with("# EOF\n"));
    /// # Ok::<(), streamvisor::Error>(())
    /// ```
    pub fn render_metrics(&self) -> String {
        metrics::render(&self.core)
    }

    /// Waits until no stream is queued, starting, managed or being retired — every queued
    /// stream run, every allocation released and every finished hook run — or `timeout`
    /// passes; true when idle.
    ///
    /// From a finished hook, the retirement that runs it does not count.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mine = retiring_here(&self.core);
        let mut g = self.core.registry.lock();
        while !g.is_idle(mine) {
            // The condvar releases the lock while it waits.
            if self.core.changed.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        g.is_idle(mine)
    }

    /// Stops every stream in parallel (graceful, aborted at `deadline`), refuses new ones,
    /// and stops the manager's threads; returns within `deadline` + [`GRACE`] with the final
    /// reports (a manager thread still busy then, in an admission hook that never returns,
    /// is left behind and logged). Streams still waiting in the queue never run: each is
    /// reported to the admission hooks as refused ([`Refusal::ShuttingDown`]). Idempotent.
    pub fn shutdown(&self, deadline: Duration) -> Vec<StreamReport> {
        let started = Instant::now();
        let bound = started + deadline + GRACE;
        let from_hook = on_hook_thread();
        let (entries, dropped) = self.sweep(started + deadline);
        // Nothing is left for the monitor and the admission thread to reap, start or
        // restart: dropping the sender tells both to quit. Taken in its own statement: the
        // lock is not held across the joins below.
        let threads = self.threads.lock().take();
        let threads = threads.map(|t| {
            drop(t.quit);
            [t.monitor, t.admitter]
        });
        for q in dropped {
            let id = q.config.id();
            log::warn!("stream {id}: dropped from the queue: shutting down");
            let refused = admission::Decision::Refused(&Refusal::ShuttingDown);
            admission::report(&self.core, id, refused, false);
        }
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let core = &self.core;
                    s.spawn(move || {
                        // A shutdown from a hook must not join hook threads from here either.
                        crate::stream::act_for_hook_thread(from_hook);
                        retire(core, e, |st| st.stop(deadline))
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        // Not from a hook: the threads quit by themselves, and the retirements they
        // started finish by themselves too.
        if !from_hook {
            for t in threads.into_iter().flatten().filter(|t| !t.is_current()) {
                if let Err(name) = t.join_by(bound) {
                    log::warn!("manager thread {name} did not quit in time (busy in a hook?)");
                }
            }
            // Retirements the monitor started (streams that ended by themselves) finish
            // within the same bound.
            self.wait_idle(bound.saturating_duration_since(Instant::now()));
        }
        reports
    }

    /// Refuses new streams, empties the queue and takes every running stream out of the
    /// map, once the streams being started (admitted before) have entered it, waiting for
    /// them until `until` at most.
    fn sweep(&self, until: Instant) -> (Vec<ManagedStream>, Vec<admission::QueuedStream>) {
        let swept = {
            // Short: moves every entry out of the map and the queue (the condvar releases
            // the lock while it waits: a start only spawns threads, then enters the map).
            let mut g = self.core.registry.lock();
            g.shutting_down = true;
            let dropped = g.queued.drain(..).collect();
            while !g.starting.is_empty() {
                if self.core.changed.wait_until(&mut g, until).timed_out() {
                    break;
                }
            }
            // A stream that starts later than that ends by itself (see `Registry::enter`).
            g.swept = true;
            let ids: Vec<String> = g.map.keys().cloned().collect();
            (ids.iter().filter_map(|id| g.take(id)).collect(), dropped)
        };
        self.core.changed.notify_all();
        swept
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(5));
    }
}
