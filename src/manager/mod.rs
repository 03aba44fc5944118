//! The `Manager`: many streams under admission control, monitored, reaped when they end,
//! optionally restarted, and shut down in parallel.
//!
//! One short lock guards the map of streams; it is never held while waiting on a stream,
//! calling a hook, or doing I/O, so hooks may call back into the manager.

mod pool;

pub use pool::{
    price, Allocation, PoolUsage, ResourceCapacity, ResourceCost, ResourcePool, UNITS_PER_CORE,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::config::{BackoffTimer, RestartPolicy, StreamConfig};
use crate::error::{Error, Refusal};
use crate::hooks::Hooks;
use crate::panic::guarded;
use crate::state::StreamState;
use crate::stats::StreamStats;
use crate::stream::{Running, Stream, StreamReport};

/// An admission decision, reported to admission hooks.
#[derive(Debug, Clone)]
pub struct AdmissionEvent {
    /// Stream id.
    pub stream: String,
    /// Admitted or refused.
    pub admitted: bool,
    /// Why it was refused.
    pub reason: Option<Refusal>,
    /// True when this was an automatic restart of a failed stream.
    pub restart: bool,
}

/// A managed stream at a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// Stream id.
    pub id: String,
    /// Its state.
    pub state: StreamState,
}

type AdmissionHook = Arc<dyn Fn(&AdmissionEvent) + Send + Sync>;
type FinishedHook = Arc<dyn Fn(&StreamReport) + Send + Sync>;

/// Builder for a [`Manager`].
pub struct ManagerBuilder {
    max_concurrent: usize,
    capacity: Option<ResourceCapacity>,
    monitor_interval: Duration,
    stall_timeout: Option<Duration>,
    restart: RestartPolicy,
    hooks: Hooks,
    on_admission: Vec<AdmissionHook>,
    on_finished: Vec<FinishedHook>,
}

impl ManagerBuilder {
    /// Most streams running at once (default 16).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The pool's capacity (default: [`ResourceCapacity::from_machine`]).
    pub fn capacity(mut self, capacity: ResourceCapacity) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// How often the monitor checks streams (default 250 ms).
    pub fn monitor_interval(mut self, d: Duration) -> Self {
        self.monitor_interval = d.max(Duration::from_millis(10));
        self
    }

    /// A running stream that decodes nothing for this long gets a stall error and goes
    /// through its recovery policy (default 30 s; `None` turns the watchdog off).
    pub fn stall_timeout(mut self, d: Option<Duration>) -> Self {
        self.stall_timeout = d;
        self
    }

    /// Restarting failed streams (default: off).
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Hooks attached to every stream (state changes and stats of each).
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = std::mem::take(&mut self.hooks).merge(&hooks);
        self
    }

    /// Called for every admission decision (admitted or refused), outside any lock.
    pub fn on_admission(mut self, f: impl Fn(&AdmissionEvent) + Send + Sync + 'static) -> Self {
        self.on_admission.push(Arc::new(f));
        self
    }

    /// Called with the final report of every stream that ends, however it ended.
    pub fn on_finished(mut self, f: impl Fn(&StreamReport) + Send + Sync + 'static) -> Self {
        self.on_finished.push(Arc::new(f));
        self
    }

    /// Starts the manager (and its monitor thread, `sv-manager`).
    pub fn build(self) -> Result<Manager, Error> {
        let (reap_tx, reap_rx) = bounded(4096);
        let (quit_tx, quit_rx) = bounded(1);
        let inner = Arc::new(Inner {
            max_concurrent: self.max_concurrent,
            pool: ResourcePool::new(self.capacity.unwrap_or_else(ResourceCapacity::from_machine)),
            stall_timeout: self.stall_timeout,
            restart: self.restart,
            hooks: self.hooks,
            on_admission: self.on_admission,
            on_finished: self.on_finished,
            streams: Mutex::new(Streams {
                map: HashMap::new(),
                stopping: HashMap::new(),
                next_gen: 1,
                shutting_down: false,
            }),
            changed: Condvar::new(),
            reap_tx,
        });
        let monitor = {
            let inner = inner.clone();
            let interval = self.monitor_interval;
            std::thread::Builder::new()
                .name("sv-manager".into())
                .spawn(move || monitor(&inner, &reap_rx, &quit_rx, interval))
                .map_err(|e| Error::Internal {
                    stream: String::new(),
                    message: format!("spawning the manager thread: {e}"),
                })?
        };
        Ok(Manager {
            inner,
            monitor: Mutex::new(Some((monitor, quit_tx))),
        })
    }
}

struct Entry {
    gen: u64,
    stream: Stream<Running>,
    allocation: Allocation,
    config: StreamConfig,
    restarts: u32,
}

struct Streams {
    map: HashMap<String, Entry>,
    /// Ids taken out of the map and still being stopped: they stay reserved (and counted
    /// against `max_concurrent`) until their stream has ended.
    stopping: HashMap<String, std::path::PathBuf>,
    next_gen: u64,
    shutting_down: bool,
}

struct Inner {
    max_concurrent: usize,
    pool: Arc<ResourcePool>,
    stall_timeout: Option<Duration>,
    restart: RestartPolicy,
    hooks: Hooks,
    on_admission: Vec<AdmissionHook>,
    on_finished: Vec<FinishedHook>,
    streams: Mutex<Streams>,
    /// Notified whenever a stream leaves the map.
    changed: Condvar,
    /// (id, generation) of streams that reached a terminal state.
    reap_tx: Sender<(String, u64)>,
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
    inner: Arc<Inner>,
    monitor: Mutex<Option<(JoinHandle<()>, Sender<()>)>>,
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
        ManagerBuilder {
            max_concurrent: 16,
            capacity: None,
            monitor_interval: Duration::from_millis(250),
            stall_timeout: Some(Duration::from_secs(30)),
            restart: RestartPolicy::default(),
            hooks: Hooks::new(),
            on_admission: Vec::new(),
            on_finished: Vec::new(),
        }
    }

    /// Admits and starts a stream, or refuses it with [`Error::Refused`] saying what ran
    /// short (id in use, `max_concurrent`, pool capacity, hardware sessions). All or
    /// nothing; never blocks on I/O.
    pub fn create_stream(&self, config: StreamConfig) -> Result<(), Error> {
        admit(&self.inner, config, 0)
    }

    /// Would this config be admitted now? Answers without allocating or starting.
    pub fn can_admit(&self, config: &StreamConfig) -> Result<(), Refusal> {
        let g = self.inner.streams.lock();
        check_admission(&self.inner, &g, config)?;
        drop(g);
        self.inner
            .pool
            .can_allocate(&price(config))
            .map_err(Refusal::Capacity)
    }

    /// Graceful stop of one stream (then abort at the deadline); its resources and id are
    /// free when this returns.
    pub fn terminate_stream(&self, id: &str, deadline: Duration) -> Result<StreamReport, Error> {
        let entry = self.take(id)?;
        Ok(finish(&self.inner, entry, |s| s.stop(deadline)))
    }

    /// Immediate stop of one stream.
    pub fn abort_stream(&self, id: &str) -> Result<StreamReport, Error> {
        let entry = self.take(id)?;
        Ok(finish(&self.inner, entry, Stream::abort))
    }

    fn take(&self, id: &str) -> Result<Entry, Error> {
        let mut g = self.inner.streams.lock();
        let entry = g.map.remove(id).ok_or_else(|| Error::UnknownStream {
            stream: id.to_owned(),
        })?;
        g.stopping
            .insert(id.to_owned(), entry.config.output_dir().to_path_buf());
        Ok(entry)
    }

    /// The state of a managed stream.
    pub fn state(&self, id: &str) -> Option<StreamState> {
        self.inner
            .streams
            .lock()
            .map
            .get(id)
            .map(|e| e.stream.state())
    }

    /// The statistics of a managed stream.
    pub fn stats(&self, id: &str) -> Option<StreamStats> {
        self.inner
            .streams
            .lock()
            .map
            .get(id)
            .map(|e| e.stream.stats())
    }

    /// Every managed stream and its state, sorted by id.
    pub fn list(&self) -> Vec<StreamSummary> {
        let mut v: Vec<StreamSummary> = self
            .inner
            .streams
            .lock()
            .map
            .iter()
            .map(|(id, e)| StreamSummary {
                id: id.clone(),
                state: e.stream.state(),
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The pool's usage and free capacity.
    pub fn pool_usage(&self) -> PoolUsage {
        self.inner.pool.usage()
    }

    /// Waits until no stream is managed (they ended or were terminated) or `timeout`
    /// passes; true when none is left.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.inner.streams.lock();
        while !g.map.is_empty() || !g.stopping.is_empty() {
            if self.inner.changed.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        g.map.is_empty() && g.stopping.is_empty()
    }

    /// Stops every stream in parallel (graceful, aborted at `deadline`), refuses new ones,
    /// and stops the monitor. Returns the final reports. Idempotent.
    pub fn shutdown(&self, deadline: Duration) -> Vec<StreamReport> {
        let entries: Vec<Entry> = {
            let mut g = self.inner.streams.lock();
            g.shutting_down = true;
            let entries: Vec<Entry> = g.map.drain().map(|(_, e)| e).collect();
            for e in &entries {
                g.stopping.insert(
                    e.config.id().to_owned(),
                    e.config.output_dir().to_path_buf(),
                );
            }
            entries
        };
        self.inner.changed.notify_all();
        let from_hook = crate::stream::on_hook_thread();
        let reports = std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let inner = &self.inner;
                    s.spawn(move || {
                        // A shutdown from a hook must not join hook threads from here either.
                        crate::stream::act_for_hook_thread(from_hook);
                        finish(inner, e, |st| st.stop(deadline))
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        if let Some((handle, quit)) = self.monitor.lock().take() {
            let _ = quit.send(());
            // Not from the monitor itself, nor from a hook thread the monitor may be joining.
            if handle.thread().id() != std::thread::current().id()
                && !crate::stream::on_hook_thread()
            {
                let _ = handle.join();
            }
        }
        reports
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(5));
    }
}

/// Ends a stream that has left the map: `end` stops it (or waits for it), then its
/// allocation drops (the one place resources return), then the finished hooks run.
fn finish(
    inner: &Inner,
    entry: Entry,
    end: impl FnOnce(Stream<Running>) -> StreamReport,
) -> StreamReport {
    let Entry {
        stream, allocation, ..
    } = entry;
    let report = end(stream);
    drop(allocation);
    inner.streams.lock().stopping.remove(&report.id);
    inner.changed.notify_all();
    for h in &inner.on_finished {
        guarded(
            format_args!("stream {}", report.id),
            "finished hook",
            || h(&report),
        );
    }
    report
}

fn check_admission(inner: &Inner, g: &Streams, config: &StreamConfig) -> Result<(), Refusal> {
    if g.shutting_down {
        return Err(Refusal::ShuttingDown);
    }
    if g.map.contains_key(config.id()) || g.stopping.contains_key(config.id()) {
        return Err(Refusal::DuplicateId);
    }
    let dir = config.output_dir();
    if g.map.values().any(|e| e.config.output_dir() == dir) || g.stopping.values().any(|d| d == dir)
    {
        return Err(Refusal::OutputInUse);
    }
    if g.map.len() + g.stopping.len() >= inner.max_concurrent {
        return Err(Refusal::MaxConcurrent {
            limit: inner.max_concurrent,
        });
    }
    Ok(())
}

/// The admission path, for new streams and restarts alike.
fn admit(inner: &Arc<Inner>, config: StreamConfig, restarts: u32) -> Result<(), Error> {
    let id = config.id().to_owned();
    let decision = {
        let mut g = inner.streams.lock();
        let checked = check_admission(inner, &g, &config).and_then(|()| {
            inner
                .pool
                .try_allocate(price(&config))
                .map_err(Refusal::Capacity)
        });
        match checked {
            Err(r) => Err(Error::Refused {
                stream: id.clone(),
                reason: r,
            }),
            Ok(allocation) => {
                let gen = g.next_gen;
                g.next_gen += 1;
                let reap_tx = inner.reap_tx.clone();
                let reap_id = id.clone();
                let reaper = Hooks::new().on_state_change(move |ev| {
                    if ev.to.is_terminal() {
                        // If the queue is full the monitor's periodic scan reaps it instead.
                        let _ = reap_tx.try_send((reap_id.clone(), gen));
                    }
                });
                // Starting only spawns threads (no I/O), so it may run under the lock; that
                // keeps the id reserved until the entry is in the map.
                match Stream::new(config.clone())
                    .with_hooks(inner.hooks.clone())
                    .with_hooks(reaper)
                    .start()
                {
                    Ok(stream) => {
                        g.map.insert(
                            id.clone(),
                            Entry {
                                gen,
                                stream,
                                allocation,
                                config,
                                restarts,
                            },
                        );
                        Ok(())
                    }
                    Err(e) => Err(e.error),
                }
            }
        }
    };
    let event = AdmissionEvent {
        stream: id,
        admitted: decision.is_ok(),
        reason: match &decision {
            Err(Error::Refused { reason, .. }) => Some(reason.clone()),
            _ => None,
        },
        restart: restarts > 0,
    };
    for h in &inner.on_admission {
        guarded(
            format_args!("stream {}", event.stream),
            "admission hook",
            || h(&event),
        );
    }
    decision
}

/// A failed stream waiting to be admitted again.
struct PendingRestart {
    config: StreamConfig,
    restarts: u32,
    due: Instant,
}

/// The manager thread: reaps streams that ended, watches for stalls, restarts failures.
fn monitor(
    inner: &Arc<Inner>,
    reap_rx: &Receiver<(String, u64)>,
    quit_rx: &Receiver<()>,
    interval: Duration,
) {
    let ticker = tick(interval);
    let mut progress: HashMap<(String, u64), (u64, Instant)> = HashMap::new();
    let mut pending: Vec<PendingRestart> = Vec::new();
    loop {
        select! {
            recv(reap_rx) -> msg => {
                if let Ok((id, gen)) = msg {
                    reap(inner, &id, gen, &mut pending);
                }
            }
            recv(ticker) -> _ => {
                scan(inner, &mut progress, &mut pending);
                restart_due(inner, &mut pending);
            }
            recv(quit_rx) -> _ => return,
        }
    }
}

/// Removes a stream that ended by itself (if it is still the same generation), releases
/// its resources, and queues a restart when the policy asks for one.
fn reap(inner: &Arc<Inner>, id: &str, gen: u64, pending: &mut Vec<PendingRestart>) {
    let entry = {
        let mut g = inner.streams.lock();
        match g.map.get(id) {
            Some(e) if e.gen == gen && e.stream.state().is_terminal() => g.map.remove(id),
            _ => None,
        }
    };
    let Some(entry) = entry else { return };
    inner.changed.notify_all();
    let (config, restarts) = (entry.config.clone(), entry.restarts);
    let report = finish(inner, entry, Stream::wait);
    let policy = &inner.restart;
    if report.state == StreamState::Failed && policy.enabled && restarts < policy.max_restarts {
        let next = restarts + 1;
        let wait = BackoffTimer::new(policy.backoff, id).wait(next);
        log::info!(
            "stream {id}: failed; restart {next}/{} in {wait:?}",
            policy.max_restarts
        );
        pending.push(PendingRestart {
            config,
            restarts: next,
            due: Instant::now() + wait,
        });
    }
}

/// Periodic pass: reap anything the reap queue missed, and report stalls to streams that
/// are `Running` but have decoded nothing for the stall timeout.
fn scan(
    inner: &Arc<Inner>,
    progress: &mut HashMap<(String, u64), (u64, Instant)>,
    pending: &mut Vec<PendingRestart>,
) {
    let now = Instant::now();
    let mut ended = Vec::new();
    {
        let g = inner.streams.lock();
        progress.retain(|(id, gen), _| g.map.get(id).is_some_and(|e| e.gen == *gen));
        for (id, e) in &g.map {
            let state = e.stream.state();
            if state.is_terminal() {
                ended.push((id.clone(), e.gen));
                continue;
            }
            let Some(limit) = inner.stall_timeout else {
                continue;
            };
            let frames = e.stream.frames_in();
            let p = progress.entry((id.clone(), e.gen)).or_insert((frames, now));
            if frames != p.0 || state != StreamState::Running {
                *p = (frames, now);
            } else if now.duration_since(p.1) >= limit {
                log::warn!("stream {id}: no progress for {limit:?}; reporting a stall");
                e.stream.report_stall();
                *p = (frames, now);
            }
        }
    }
    for (id, gen) in ended {
        reap(inner, &id, gen, pending);
    }
}

fn restart_due(inner: &Arc<Inner>, pending: &mut Vec<PendingRestart>) {
    let now = Instant::now();
    let mut later = Vec::new();
    for p in pending.drain(..) {
        if p.due > now {
            later.push(p);
            continue;
        }
        match admit(inner, p.config.clone(), p.restarts) {
            Ok(()) => {}
            // No room yet (or the id was taken meanwhile): try again on a later tick.
            Err(Error::Refused {
                reason: Refusal::Capacity(_) | Refusal::MaxConcurrent { .. },
                ..
            }) => later.push(PendingRestart {
                due: now + Duration::from_millis(500),
                ..p
            }),
            Err(e) => log::warn!("restart of {} abandoned: {e}", p.config.id()),
        }
    }
    *pending = later;
}
