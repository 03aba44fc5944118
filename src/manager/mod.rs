//! Many streams on one machine: the [`Manager`] (built with a [`ManagerBuilder`]) admits
//! each stream against `max_concurrent` and a [`ResourcePool`],
//! queues, degrades or refuses what does not fit ([`OverCapacity`]), reports each decision
//! ([`AdmissionEvent`], with the [`Refusal`] saying what ran short and the [`Degradation`]
//! of a stream admitted with less), lists what it runs ([`StreamSummary`]), reaps and
//! optionally restarts streams, and shuts them all down in parallel.
//!
//! [`Manager`], [`ManagerBuilder`], [`Admitted`] and [`ShutdownReport`] are also at the
//! crate root.

// Inside: admission control (`admission`), reaping and the stall watchdog (`monitor`),
// queued starts and restarts (`admitter`), retiring a stream (`retire`), the hook lanes that
// run the application's code off every caller's thread (`lanes`), shutdown (`shutdown`),
// metrics (`metrics`). One short lock guards the registry of streams; it is never held
// while starting, stopping or waiting on a stream, calling a hook, dropping the
// application's values, or doing I/O, so hooks may call back into the manager. Reservations
// (ids and output directories) carry the generation of the stream that holds them, so an
// old stream's retirement never frees a newer one's.

mod admission;
mod admitter;
mod builder;
mod degrade;
mod exposition;
mod lanes;
mod metrics;
mod monitor;
mod registry;
mod retire;
mod shutdown;
#[cfg(feature = "serde")]
mod spec;

pub use crate::error::refusal::Refusal;
pub use admission::{AdmissionEvent, Admitted, OverCapacity};
pub use builder::ManagerBuilder;
pub use degrade::Degradation;
pub use shutdown::ShutdownReport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

use crate::config::{RestartPolicy, StreamConfig};
use crate::error::Error;
use crate::hooks::Hooks;
use crate::pool::{price, PoolUsage, ResourcePool};
use crate::state::{StateSet, StreamState};
use crate::stats::StreamStats;
use crate::stream::{Stream, StreamReport, TrackedThread};
use builder::{AdmissionHook, FinishedHook};
use monitor::MonitorMsg;
use registry::{ManagedStream, Registry};
use retire::retire;

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
    /// Every admitted stream's local files inside this directory (canonical).
    local_root: Option<std::path::PathBuf>,
    /// Every admitted stream with the network policy on.
    deny_private: bool,
    registry: Mutex<Registry>,
    /// Notified whenever a started stream enters the map or one leaves it, a reservation is
    /// released, or a retirement ends.
    changed: Condvar,
    /// To the monitor: streams that ended or opened their source.
    monitor_tx: Sender<MonitorMsg>,
    /// To the admission thread: restarts to admit when due.
    admit_tx: Sender<admitter::AdmitMsg>,
    /// To the admission thread: start what the queue holds now (one place: a wake pending
    /// serves for the next).
    wake_tx: Sender<()>,
    /// Admission decisions counted for the metrics.
    admissions: metrics::AdmissionCounts,
}

impl ManagerCore {
    /// One retirement is over (the stream stopped, its finished hooks in its lane).
    fn retired_one(&self) {
        // Short: a counter.
        let mut g = self.registry.lock();
        g.retiring = g.retiring.saturating_sub(1);
        drop(g);
        self.changed.notify_all();
    }
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
    /// stream has this id. Its config (with the application's reader, sink and hooks) is let
    /// go of on a manager thread, after this returns: its `Drop` may call back into the
    /// manager.
    pub fn cancel_queued(&self, id: &str) -> bool {
        let removed = {
            // Short: a queue edit. What it takes out is dropped after the unlock.
            let mut g = self.core.registry.lock();
            let place = g.queued.iter().position(|q| q.config.id() == id);
            place.and_then(|i| g.queued.remove(i))
        };
        self.core.changed.notify_all();
        let Some(removed) = removed else {
            return false;
        };
        lanes::drop_later(&self.core, id, removed);
        true
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

    /// Graceful stop of one stream (then abort at the deadline); returns within
    /// `deadline` + [`GRACE`](crate::stream::GRACE), with its resources and id free,
    /// whatever the hooks do: the finished hooks get the same report on a manager thread,
    /// after this returns (see [`ManagerBuilder::on_finished`]).
    ///
    /// # Errors
    /// [`Error::UnknownStream`] when no running stream has this id.
    pub fn terminate_stream(&self, id: &str, deadline: Duration) -> Result<StreamReport, Error> {
        let entry = self.take(id)?;
        Ok(retire(&self.core, entry, |s| s.stop(deadline)))
    }

    /// Immediate stop of one stream; returns within [`GRACE`](crate::stream::GRACE), with
    /// its resources and id free, whatever the hooks do (the finished hooks run after, as
    /// for [`terminate_stream`](Self::terminate_stream)).
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
    /// stream run, every allocation released, every admission and finished hook run and
    /// every config the manager let go of dropped — or `timeout` passes; true when idle.
    ///
    /// From an admission or finished hook, that hook does not count, nor do the hooks of
    /// the same stream waiting behind it (they run once it returns): a finished hook may
    /// wait for idleness.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let own = lanes::own_lane(&self.core);
        let own = own.as_deref();
        let mut g = self.core.registry.lock();
        while !g.is_idle(own) {
            // The condvar releases the lock while it waits.
            if self.core.changed.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        g.is_idle(own)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(5));
    }
}
