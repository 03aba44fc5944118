//! A supervised stream: `Stream<New>` is configured and started; `Stream<Running>` is
//! observed, stopped, aborted or waited on. The worker thread owns every FFmpeg handle.

mod hook_thread;

pub(crate) use hook_thread::{act_for_hook_thread, on_hook_thread};

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

use crate::config::StreamConfig;
use crate::error::Error;
use crate::hooks::{Hooks, StateEvent};
use crate::pipeline::{self, Control, Ending, PipelineEvent};
use crate::state::{StateSet, StreamState};
use crate::stats::{StatsCell, StreamStats};

mod sealed {
    pub trait Sealed {}
}

/// A compile-time stream state: [`New`] or [`Running`]. Sealed.
pub trait Stage: sealed::Sealed {}

/// A configured stream that has not been started.
#[derive(Debug)]
pub struct New {
    _private: (),
}

/// A launched stream (whatever its runtime [`StreamState`]).
#[derive(Debug)]
pub struct Running {
    _private: (),
}

impl sealed::Sealed for New {}
impl sealed::Sealed for Running {}
impl Stage for New {}
impl Stage for Running {}

/// Lifecycle bookkeeping, guarded by one short lock (never held across FFI or waits).
#[derive(Debug)]
struct Status {
    state: StreamState,
    since: Instant,
    time_in: [Duration; 7],
    started: Option<Instant>,
    ended: Option<Instant>,
    error: Option<Error>,
    aborted: bool,
}

#[derive(Debug)]
struct Shared {
    config: StreamConfig,
    control: Arc<Control>,
    stats: StatsCell,
    status: Mutex<Status>,
    changed: Condvar,
    /// Where state events go when the stream has hooks (set at start).
    hook_tx: Mutex<Option<Sender<StateEvent>>>,
}

impl Shared {
    /// Moves to `to` unless the stream is already terminal (or already there). Once
    /// `Stopping`, only a terminal state may follow.
    fn transition(&self, to: StreamState, error: Option<Error>) {
        let now = Instant::now();
        let (from, terminal_event) = {
            let mut s = self.status.lock();
            let from = s.state;
            if from.is_terminal()
                || from == to
                || (from == StreamState::Stopping && !to.is_terminal())
            {
                return;
            }
            let spent = now - s.since;
            s.time_in[from.index()] += spent;
            s.state = to;
            s.since = now;
            if to.is_terminal() {
                s.ended = Some(now);
            }
            if let Some(e) = &error {
                s.error = Some(e.clone());
            }
            let tx = self.hook_tx.lock().clone();
            let ev = tx.map(|tx| {
                let ev = StateEvent {
                    stream: self.config.id().to_owned(),
                    from,
                    to,
                    error,
                    at: std::time::SystemTime::now(),
                };
                (tx, ev)
            });
            // Events are queued under the status lock so they reach hooks in the order the
            // states changed. Only the terminal one may wait for room (outside the lock).
            let terminal_event = match ev {
                Some((tx, ev)) if to.is_terminal() => Some((tx, ev)),
                Some((tx, ev)) => {
                    if let Err(TrySendError::Full(ev)) = tx.try_send(ev) {
                        log::warn!(
                            "stream {}: hooks are not keeping up; dropped {} -> {}",
                            ev.stream,
                            ev.from,
                            ev.to
                        );
                    }
                    None
                }
                None => None,
            };
            (from, terminal_event)
        };
        self.changed.notify_all();
        log::debug!("stream {}: {from} -> {to}", self.config.id());
        if let Some((tx, ev)) = terminal_event {
            // The hook thread exits after this event; give a busy hook a moment to make
            // room, and past that the hook thread still exits once it sees the end.
            let _ = tx.send_timeout(ev, Duration::from_secs(1));
        }
    }

    /// True once the stream is terminal: the hook thread may exit when its queue is empty.
    fn is_finished(&self) -> bool {
        self.status.lock().state.is_terminal()
    }

    fn state(&self) -> StreamState {
        self.status.lock().state
    }

    /// Statistics now, with uptime and time in each state from the lifecycle (frozen once
    /// the stream has ended).
    fn snapshot(&self) -> StreamStats {
        let (uptime, time_in_state) = {
            let s = self.status.lock();
            let now = s.ended.unwrap_or_else(Instant::now);
            let uptime = s.started.map_or(Duration::ZERO, |a| now - a);
            let mut time_in = s.time_in;
            if !s.state.is_terminal() {
                time_in[s.state.index()] += now - s.since;
            }
            let per_state = StreamState::ALL
                .iter()
                .map(|&st| (st, time_in[st.index()]))
                .collect();
            (uptime, per_state)
        };
        let mut stats = self.stats.snapshot(uptime);
        stats.time_in_state = time_in_state;
        stats
    }

    fn wait_for(&self, set: StateSet, deadline: Instant) -> StreamState {
        let mut s = self.status.lock();
        while !set.has(s.state) {
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.state
    }
}

/// How a stream ended: final state, error, figures and timings.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Stream id.
    pub id: String,
    /// `Stopped` or `Failed`.
    pub state: StreamState,
    /// The error that failed the stream (or the last one it recovered from).
    pub error: Option<Error>,
    /// Final statistics (time in each state included).
    pub stats: StreamStats,
    /// True when the stream was aborted (by `abort`, drop, or a stop past its deadline).
    pub aborted: bool,
    /// True when a graceful stop missed its deadline and the stream was aborted instead.
    pub stop_deadline_exceeded: bool,
}

/// A transcoding stream in compile-time state `S`.
///
/// Operations that make no sense in a state do not exist on that type:
///
/// ```compile_fail
/// # use streamvisor::{Stream, StreamConfig};
/// let config = StreamConfig::builder("a", "lavfi:testsrc2", "/tmp/out").build().unwrap();
/// let stream = Stream::new(config);
/// stream.stop(std::time::Duration::from_secs(1)); // no `stop` on Stream<New>
/// ```
///
/// ```compile_fail
/// # use streamvisor::{Stream, StreamConfig};
/// let config = StreamConfig::builder("a", "lavfi:testsrc2", "/tmp/out").build().unwrap();
/// let running = Stream::new(config).start().unwrap();
/// running.start(); // no `start` on Stream<Running>
/// ```
#[derive(Debug)]
pub struct Stream<S: Stage> {
    shared: Arc<Shared>,
    /// The worker thread; `Some` only while a started stream has not been joined.
    worker: Option<JoinHandle<()>>,
    /// The hook thread, when the stream has hooks.
    hook_thread: Option<JoinHandle<()>>,
    hooks: Hooks,
    _stage: PhantomData<S>,
}

/// A failed [`Stream::start`]: the error and the stream, handed back unstarted.
#[derive(Debug)]
pub struct StartError {
    /// Why it did not start.
    pub error: Error,
    /// The stream, still `New`, to retry or drop.
    pub stream: Box<Stream<New>>,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<S: Stage> Stream<S> {
    /// The stream id.
    pub fn id(&self) -> &str {
        self.shared.config.id()
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.shared.config
    }

    /// The runtime state now.
    pub fn state(&self) -> StreamState {
        self.shared.state()
    }

    /// Statistics now (cheap; safe to call at any rate).
    pub fn stats(&self) -> StreamStats {
        self.shared.snapshot()
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<Error> {
        self.shared.status.lock().error.clone()
    }
}

impl Stream<New> {
    /// A stream for a validated configuration.
    pub fn new(config: StreamConfig) -> Self {
        let control = Control::new(config.id());
        Self {
            shared: Arc::new(Shared {
                config,
                control,
                stats: StatsCell::default(),
                status: Mutex::new(Status {
                    state: StreamState::New,
                    since: Instant::now(),
                    time_in: [Duration::ZERO; 7],
                    started: None,
                    ended: None,
                    error: None,
                    aborted: false,
                }),
                changed: Condvar::new(),
                hook_tx: Mutex::new(None),
            }),
            worker: None,
            hook_thread: None,
            hooks: Hooks::new(),
            _stage: PhantomData,
        }
    }

    /// Attaches hooks (state changes, periodic stats); adds to any attached before.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = std::mem::take(&mut self.hooks).merge(&hooks);
        self
    }

    /// Launches the worker and returns at once, in `Starting`; the source is opened on the
    /// worker thread, never on the caller's. A failure hands the stream back.
    pub fn start(mut self) -> Result<Stream<Running>, StartError> {
        let hook_thread = match self.spawn_hook_thread() {
            Ok(h) => h,
            Err(error) => {
                return Err(StartError {
                    error,
                    stream: Box::new(self),
                })
            }
        };
        self.shared.status.lock().started = Some(Instant::now());
        self.shared.transition(StreamState::Starting, None);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sv-{}", self.id()))
            .spawn(move || worker(&shared));
        match spawned {
            Ok(handle) => Ok(Stream {
                shared: self.shared.clone(),
                worker: Some(handle),
                hook_thread,
                hooks: std::mem::take(&mut self.hooks),
                _stage: PhantomData,
            }),
            Err(e) => {
                let error = Error::Internal {
                    stream: self.id().to_owned(),
                    message: format!("spawning the stream thread: {e}"),
                };
                // Hand the stream back as it was: New, no hook thread (dropping the sender
                // ends it), ready to be started again.
                drop(self.shared.hook_tx.lock().take());
                if let Some(h) = hook_thread {
                    let _ = h.join();
                }
                let mut s = self.shared.status.lock();
                s.state = StreamState::New;
                s.started = None;
                s.time_in = [Duration::ZERO; 7];
                drop(s);
                Err(StartError {
                    error,
                    stream: Box::new(self),
                })
            }
        }
    }

    fn spawn_hook_thread(&self) -> Result<Option<JoinHandle<()>>, Error> {
        if self.hooks.is_empty() {
            return Ok(None);
        }
        let (tx, rx) = crossbeam_channel::bounded(hook_thread::HOOK_QUEUE);
        let shared = self.shared.clone();
        let hooks = self.hooks.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sv-{}-hooks", self.id()))
            .spawn(move || {
                let snapshot = || (shared.state(), shared.snapshot());
                let finished = || shared.is_finished();
                hook_thread::run_hook_thread(&hooks, &rx, shared.config.id(), &snapshot, &finished);
            })
            .map_err(|e| Error::Internal {
                stream: self.id().to_owned(),
                message: format!("spawning the hook thread: {e}"),
            })?;
        *self.shared.hook_tx.lock() = Some(tx);
        Ok(Some(handle))
    }
}

/// The stream's main thread: runs the pipeline under `catch_unwind` and records the end.
fn worker(shared: &Shared) {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pipeline::run(
            &shared.config,
            &shared.control,
            &shared.stats,
            &mut |event| match event {
                PipelineEvent::Running => shared.transition(StreamState::Running, None),
                PipelineEvent::Draining => shared.transition(StreamState::Stopping, None),
                PipelineEvent::Recovering(e) => shared.transition(StreamState::Error, Some(e)),
                PipelineEvent::Recovered => shared.transition(StreamState::Running, None),
            },
        )
    }));
    let (state, error) = match result {
        Ok(Ok(Ending::SourceEnded | Ending::Stopped)) => (StreamState::Stopped, None),
        Ok(Err(Error::Aborted { .. })) => {
            shared.status.lock().aborted = true;
            (StreamState::Stopped, None)
        }
        Ok(Err(e)) => (StreamState::Failed, Some(e)),
        Err(panic) => (
            StreamState::Failed,
            Some(Error::Panicked {
                stream: shared.config.id().to_owned(),
                message: crate::panic::panic_message(&*panic),
            }),
        ),
    };
    if let Some(e) = &error {
        shared
            .stats
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::warn!("{e}");
    }
    shared.transition(state, error);
}

impl Stream<Running> {
    /// Waits until the state is in `set` or `timeout` passes; returns the state then.
    pub fn wait_for(&self, set: StateSet, timeout: Duration) -> StreamState {
        self.shared.wait_for(set, Instant::now() + timeout)
    }

    /// Video frames decoded so far (cheap: one atomic load).
    pub(crate) fn frames_in(&self) -> u64 {
        self.shared
            .stats
            .frames_in
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A watchdog saw no progress: cut the current read; the stream recovers as from a stall.
    pub(crate) fn report_stall(&self) {
        self.shared.control.report_stall();
    }

    /// Asks for a graceful stop without waiting (see [`Stream::stop`]).
    pub fn request_stop(&self) {
        if !self.state().is_terminal() {
            self.shared.control.request_stop();
            self.shared.transition(StreamState::Stopping, None);
        }
    }

    /// Graceful stop: stop reading, flush the decoder and every encoder, write the final
    /// segments and playlists (`#EXT-X-ENDLIST`), release everything. Works from
    /// `Starting`, `Running` and `Error`. Past `timeout` the stream is aborted and the
    /// report says so.
    pub fn stop(self, timeout: Duration) -> StreamReport {
        self.request_stop();
        let end = self
            .shared
            .wait_for(StateSet::TERMINAL, Instant::now() + timeout);
        let exceeded = !end.is_terminal();
        if exceeded {
            log::warn!(
                "stream {}: graceful stop missed its {timeout:?} deadline; aborting",
                self.id()
            );
        }
        self.finish(exceeded, exceeded)
    }

    /// Immediate stop: interrupt I/O, drop partial work, release everything.
    pub fn abort(self) -> StreamReport {
        self.finish(true, false)
    }

    /// Waits for the stream to end by itself (end of the source, or failure).
    pub fn wait(self) -> StreamReport {
        self.shared.wait_for(StateSet::TERMINAL, far_future());
        self.finish(false, false)
    }

    fn finish(mut self, abort: bool, deadline_exceeded: bool) -> StreamReport {
        if abort {
            self.shared.control.request_abort();
        }
        self.join();
        let s = self.shared.status.lock();
        let (state, error, aborted) = (s.state, s.error.clone(), s.aborted);
        drop(s);
        StreamReport {
            id: self.id().to_owned(),
            state,
            error,
            stats: self.stats(),
            aborted,
            stop_deadline_exceeded: deadline_exceeded,
        }
    }

    fn join(&mut self) {
        if let Some(h) = self.worker.take() {
            // The worker catches panics itself; a join error would be a bug in that net.
            let _ = h.join();
        }
        join_hook_thread(&mut self.hook_thread);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365)
}

/// Joins the hook thread, unless this *is* the hook thread (a hook that stops or drops
/// its own stream): it exits by itself right after the terminal event it is delivering.
///
/// Also when called from *any* stream's hook thread: a hook that ends another stream, or
/// shuts a manager down, would otherwise wait on a hook thread that may be waiting on it.
/// The thread is then left to finish by itself (it exits right after its terminal event).
fn join_hook_thread(h: &mut Option<JoinHandle<()>>) {
    if let Some(h) = h.take() {
        if !hook_thread::on_hook_thread() {
            let _ = h.join();
        }
    }
}

impl<S: Stage> Drop for Stream<S> {
    fn drop(&mut self) {
        // Dropping a running stream ends it: abort, then join, so no thread, handle or
        // descriptor outlives the value. (A `New` or already-joined stream has no thread.)
        if let Some(h) = self.worker.take() {
            self.shared.control.request_abort();
            let _ = h.join();
        }
        join_hook_thread(&mut self.hook_thread);
    }
}
