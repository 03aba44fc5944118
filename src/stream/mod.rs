//! One supervised stream: [`Stream<New>`](Stream) is configured and started (a failed
//! start is a [`StartError`] that hands the stream back); [`Stream<Running>`](Stream) is
//! observed, stopped, aborted or waited on, and ends with a [`StreamReport`]. [`Stage`] is
//! the sealed trait of the two compile-time states, [`New`] and [`Running`]. Every call
//! that ends a stream keeps a written bound, at most [`GRACE`] past its deadline.
//!
//! [`Stream`], [`New`], [`Running`] and [`StreamReport`] are also at the crate root.

// Inside: the worker thread owns every FFmpeg handle; `lifecycle` holds the state machine,
// `recovery` the policy that reconnects and falls back, `hook_thread` the delivery of
// events to user hooks, `threads` the joins within a bound.

mod hook_thread;
mod lifecycle;
mod recovery;
mod threads;

pub(crate) use hook_thread::{act_for_hook_thread, on_hook_thread};
pub use threads::GRACE;
pub(crate) use threads::{ThreadExit, TrackedThread};

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::config::StreamConfig;
use crate::error::Error;
use crate::events::{StreamEvent, DEFAULT_EVENT_CAPACITY, DEFAULT_STATS_EVERY};
use crate::hooks::Hooks;
use crate::state::{StateSet, StreamState};
use crate::stats::{PlannedLadder, StreamStats};
use lifecycle::{Lifecycle, TerminalSend};
use threads::StreamThreads;

mod sealed {
    pub trait Sealed {}
}

/// A compile-time stream state: [`New`] or [`Running`]. Sealed.
pub trait Stage: sealed::Sealed {}

/// A configured stream that has not been started: it holds the hooks to attach.
#[derive(Debug)]
pub struct New {
    hooks: Hooks,
}

/// A launched stream (whatever its runtime [`StreamState`]): it holds the stream's threads.
#[derive(Debug)]
pub struct Running {
    threads: StreamThreads,
}

impl sealed::Sealed for New {}
impl sealed::Sealed for Running {}
impl Stage for New {}
impl Stage for Running {}

/// How a stream ended: final state, error, figures and timings.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
#[must_use = "the report says how the stream ended (state, error, figures)"]
#[non_exhaustive]
pub struct StreamReport {
    /// Stream id.
    pub id: String,
    /// `Stopped` or `Failed`.
    pub state: StreamState,
    /// The error that failed the stream (or the last one it recovered from); the stream
    /// it belongs to is `id` (an error does not repeat it).
    pub error: Option<Error>,
    /// Final statistics (time in each state included).
    pub stats: StreamStats,
    /// True when the stream was aborted (by `abort`, drop, or a stop past its deadline).
    pub aborted: bool,
    /// True when a graceful stop missed its deadline and the stream was aborted instead.
    pub stop_deadline_exceeded: bool,
    /// Threads of the stream that had not ended by the call's bound and were left running
    /// (detached), by name: a thread stuck in a user hook (`sv-<id>-hooks`), in an
    /// application's reader (`sv-<id>-reader`, see [`Source`](crate::Source)) or in a call
    /// nothing can interrupt (`sv-<id>`). Each frees its resources when it returns.
    pub threads_left_behind: Vec<String>,
}

/// A transcoding stream in compile-time state `S`.
///
/// Operations that make no sense in a state do not exist on that type:
///
/// ```compile_fail
/// # use streamvisor::{Stream, StreamConfig};
/// let config = StreamConfig::builder("a", "in.mp4", "/tmp/out").build().unwrap();
/// let stream = Stream::new(config);
/// stream.stop(std::time::Duration::from_secs(1)); // no `stop` on Stream<New>
/// ```
///
/// ```compile_fail
/// # use streamvisor::{Stream, StreamConfig};
/// let config = StreamConfig::builder("a", "in.mp4", "/tmp/out").build().unwrap();
/// let running = Stream::new(config).start().unwrap();
/// running.start(); // no `start` on Stream<Running>
/// ```
#[derive(Debug)]
#[must_use = "a stream does nothing until started, and a running stream is aborted when dropped"]
pub struct Stream<S: Stage> {
    lifecycle: Arc<Lifecycle>,
    stage: S,
}

/// A failed [`Stream::start`]: the error and the stream, handed back unstarted.
///
/// It converts into its [`Error`] (`From`), so `start()?` works in a function returning
/// `Result<_, streamvisor::Error>` when the stream is not to be retried (the error then no
/// longer says which stream: the caller knows). Its `Display` names the stream and gives
/// the error's message (`stream cam1: internal error: ...`); its `source` is the error's
/// own, so nothing is printed twice.
#[derive(Debug)]
#[must_use = "the stream is handed back inside the error"]
#[non_exhaustive]
pub struct StartError {
    /// Why it did not start.
    pub error: Error,
    /// The stream, still `New`, to retry or drop.
    pub stream: Box<Stream<New>>,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream {}: {}", self.stream.id(), self.error)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// Keeps the error, drops the stream (it was never started: nothing to release).
impl From<StartError> for Error {
    fn from(e: StartError) -> Self {
        e.error
    }
}

/// Reads a stream's statistics without holding the stream: taken under a caller's lock,
/// read after it (a snapshot reads `/proc`).
#[derive(Debug, Clone)]
pub(crate) struct StatsReader(Arc<Lifecycle>);

impl StatsReader {
    /// Statistics now, as [`Stream::stats`].
    pub(crate) fn stats(&self) -> StreamStats {
        self.0.snapshot()
    }

    /// Waits for one of `states` until `deadline`, as [`Stream::wait_for`].
    pub(crate) fn wait_for(&self, states: StateSet, deadline: Instant) -> StreamState {
        self.0.wait_for(states, deadline)
    }
}

impl<S: Stage> Stream<S> {
    /// The stream id.
    pub fn id(&self) -> &str {
        self.lifecycle.config.id()
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.lifecycle.config
    }

    /// The runtime state now.
    pub fn state(&self) -> StreamState {
        self.lifecycle.state()
    }

    /// Statistics now (cheap; safe to call at any rate).
    pub fn stats(&self) -> StreamStats {
        self.lifecycle.snapshot()
    }

    /// A handle to read this stream's statistics later, without the stream.
    pub(crate) fn stats_reader(&self) -> StatsReader {
        StatsReader(self.lifecycle.clone())
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<Error> {
        self.lifecycle.record.lock().error.clone()
    }

    /// The ladder as it runs on this source (rungs taller than the source left out, real
    /// sizes and frame rates), once the source has been opened; `None` before.
    pub fn planned_ladder(&self) -> Option<PlannedLadder> {
        self.lifecycle.planned.lock().clone()
    }
}

impl Stream<New> {
    /// A stream for a validated configuration.
    pub fn new(config: StreamConfig) -> Self {
        Self {
            lifecycle: Arc::new(Lifecycle::new(config)),
            stage: New {
                hooks: Hooks::new(),
            },
        }
    }

    /// Attaches hooks (state changes, periodic stats); adds to any attached before.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.stage.hooks = std::mem::take(&mut self.stage.hooks).merge(&hooks);
        self
    }

    /// The stream's events as a channel (state changes, and statistics every second),
    /// beside any hooks: bounded to [`DEFAULT_EVENT_CAPACITY`]
    /// events, the oldest dropped when the receiver falls behind (see [`StreamEvent`]). The
    /// channel disconnects after the stream's last events, so iterating it ends with the
    /// stream. Call it more than once for more receivers, each with every event.
    ///
    /// ```no_run
    /// # use streamvisor::{Stream, StreamConfig, StreamEvent};
    /// # fn main() -> Result<(), streamvisor::Error> {
    /// let config = StreamConfig::builder("cam1", "rtmp://127.0.0.1/live/cam1", "/tmp/hls").build()?;
    /// let mut stream = Stream::new(config);
    /// let events = stream.events();
    /// let running = stream.start()?;
    /// for event in events {
    ///     if let StreamEvent::State(change) = event {
    ///         println!("{} -> {}", change.from, change.to);
    ///     }
    /// }
    /// let report = running.wait();
    /// # let _ = report;
    /// # Ok(())
    /// # }
    /// ```
    pub fn events(&mut self) -> Receiver<StreamEvent> {
        self.events_with(DEFAULT_EVENT_CAPACITY, DEFAULT_STATS_EVERY)
    }

    /// [`events`](Self::events) with a channel of `capacity` events and statistics every
    /// `stats_every` (at least 10 ms).
    pub fn events_with(&mut self, capacity: usize, stats_every: Duration) -> Receiver<StreamEvent> {
        let (hooks, rx) = crate::events::event_channel(capacity, stats_every);
        self.stage.hooks = std::mem::take(&mut self.stage.hooks).merge(&hooks);
        rx
    }

    /// Launches the worker and returns at once, in `Starting`; the source is opened on the
    /// worker thread, never on the caller's. A failure hands the stream back, `New` again
    /// (hooks saw `New → Starting`, then `Starting → New` with the error).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamvisor::{AbrProfile, StateSet, Stream, StreamConfig, StreamState};
    ///
    /// # fn main() -> Result<(), streamvisor::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let out = dir.path().join("doc");
    /// let source = "lavfi:testsrc2=size=320x180:duration=1;sine=duration=1";
    /// let config = StreamConfig::builder("doc", source, out)
    ///     .allow_generated_sources(true)
    ///     .profile(AbrProfile::from_rungs(&["240p"])?)
    ///     .build()?;
    /// let running = Stream::new(config).start()?; // a StartError converts into its Error
    /// running.wait_for(StateSet::TERMINAL, Duration::from_secs(30));
    /// let report = running.stop(Duration::from_secs(5)); // bounded, ended or not
    /// assert_eq!(report.state, StreamState::Stopped);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A [`StartError`] holding the stream and [`Error::Internal`] when a thread could not
    /// be spawned. Everything else (an unreachable source, bad media) is reported by the
    /// running stream: its state goes to `Error` or `Failed`, see [`Stream::last_error`].
    pub fn start(self) -> Result<Stream<Running>, StartError> {
        let hook_thread = match self.spawn_hook_thread() {
            Ok(h) => h,
            Err(error) => {
                return Err(StartError {
                    error,
                    stream: Box::new(self),
                })
            }
        };
        self.lifecycle.record.lock().started = Some(Instant::now());
        self.lifecycle.transition(StreamState::Starting, None);
        let lifecycle = self.lifecycle.clone();
        let spawned = TrackedThread::spawn(format!("sv-{}", self.id()), move || {
            lifecycle::run_worker(&lifecycle);
        });
        match spawned {
            Ok(worker) => Ok(Stream {
                stage: Running {
                    threads: StreamThreads::new(
                        self.lifecycle.signals.clone(),
                        worker,
                        hook_thread,
                    ),
                },
                lifecycle: self.lifecycle,
            }),
            Err(e) => {
                let error = Error::Internal {
                    message: format!("spawning the stream thread: {e}"),
                };
                // Back to New, told to the hooks; the hook thread is not joined (it may be
                // in a user hook): dropping its sender lets it exit once its queue is empty.
                self.lifecycle
                    .transition(StreamState::New, Some(error.clone()));
                drop(self.lifecycle.hook_tx.lock().take());
                drop(hook_thread);
                self.lifecycle.record.lock().started = None;
                Err(StartError {
                    error,
                    stream: Box::new(self),
                })
            }
        }
    }

    fn spawn_hook_thread(&self) -> Result<Option<TrackedThread>, Error> {
        let hooks = &self.stage.hooks;
        if hooks.is_empty() {
            return Ok(None);
        }
        let (tx, rx) = crossbeam_channel::bounded(hook_thread::HOOK_QUEUE);
        let lifecycle = self.lifecycle.clone();
        let hooks = hooks.clone();
        let handle = TrackedThread::spawn(format!("sv-{}-hooks", self.id()), move || {
            let snapshot = || (lifecycle.state(), lifecycle.snapshot());
            let finished = || lifecycle.is_finished();
            let id = lifecycle.config.id();
            hook_thread::run_hook_thread(&hooks, &rx, id, &snapshot, &finished);
        })
        .map_err(|e| Error::Internal {
            message: format!("spawning the hook thread: {e}"),
        })?;
        *self.lifecycle.hook_tx.lock() = Some(tx);
        self.lifecycle.wants_output_events.store(
            self.stage.hooks.wants_output(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Some(handle))
    }
}

impl Stream<Running> {
    /// Waits until the state is in `set` or `timeout` passes; returns the state then.
    pub fn wait_for(&self, set: StateSet, timeout: Duration) -> StreamState {
        self.lifecycle.wait_for(set, Instant::now() + timeout)
    }

    /// Video frames decoded so far (cheap: one atomic load).
    pub(crate) fn frames_in(&self) -> u64 {
        self.lifecycle.stats.frames_in.load(Relaxed)
    }

    /// Media time decoded so far, microseconds (cheap: one atomic load).
    pub(crate) fn media_us(&self) -> u64 {
        self.lifecycle.stats.media_us.load(Relaxed)
    }

    /// Whether the worker thread (and so every thread that writes the output) has ended:
    /// to know when a worker left behind by `stop`/`abort` is gone.
    pub(crate) fn worker_exit(&self) -> Option<ThreadExit> {
        self.stage.threads.worker_exit()
    }

    /// A watchdog saw no progress: cut the current read; the stream recovers as from a stall.
    pub(crate) fn report_stall(&self) {
        self.lifecycle.signals.report_stall();
    }

    /// Asks for a graceful stop without waiting (see [`Stream::stop`]).
    pub fn request_stop(&self) {
        if !self.state().is_terminal() {
            self.lifecycle.signals.request_stop();
            self.lifecycle.transition(StreamState::Stopping, None);
        }
    }

    /// Graceful stop: stop reading, flush the decoder and every encoder, write the final
    /// segments and playlists (`#EXT-X-ENDLIST`), release everything. Works from
    /// `Starting`, `Running` and `Error`. Past `timeout` the stream is aborted and the
    /// report says so.
    ///
    /// Returns by `timeout` + [`GRACE`] whatever FFmpeg or a hook does: a thread still
    /// busy then is left behind and named in [`StreamReport::threads_left_behind`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use streamvisor::{StateSet, Stream, StreamConfig};
    ///
    /// let config = StreamConfig::builder("cam1", "srt://0.0.0.0:9000?mode=listener", "/srv/hls/cam1")
    ///     .build()?;
    /// let running = Stream::new(config).start()?;
    /// running.wait_for(StateSet::RUNNING | StateSet::TERMINAL, Duration::from_secs(10));
    /// // ... later: finish the playlists (#EXT-X-ENDLIST) within 5 s, or abort.
    /// let report = running.stop(Duration::from_secs(5));
    /// println!("{:?} after {:?}, deadline missed: {}", report.state, report.stats.uptime,
    ///          report.stop_deadline_exceeded);
    /// # Ok::<(), streamvisor::Error>(())
    /// ```
    pub fn stop(self, timeout: Duration) -> StreamReport {
        let deadline = Instant::now() + timeout;
        self.request_stop();
        let end = self.lifecycle.wait_for(StateSet::TERMINAL, deadline);
        let exceeded = !end.is_terminal();
        if exceeded {
            log::warn!(
                "stream {}: graceful stop missed its {timeout:?} deadline; aborting",
                self.id()
            );
        }
        self.end_and_report(exceeded, exceeded, deadline.max(Instant::now()) + GRACE)
    }

    /// Immediate stop: interrupt I/O, drop partial work, release everything. Returns
    /// within [`GRACE`] (threads still busy then are left behind and named in the report).
    pub fn abort(self) -> StreamReport {
        self.end_and_report(true, false, Instant::now() + GRACE)
    }

    /// Waits for the stream to end by itself (end of the source, or failure); then waits
    /// up to [`GRACE`] for its hooks to have seen the end.
    pub fn wait(self) -> StreamReport {
        self.lifecycle.wait_for(StateSet::TERMINAL, far_future());
        self.end_and_report(false, false, Instant::now() + GRACE)
    }

    /// Aborts if asked, joins the stream's threads that end by `deadline` (leaving the
    /// others behind), and reports how it ended.
    fn end_and_report(self, abort: bool, exceeded: bool, deadline: Instant) -> StreamReport {
        let Stream {
            lifecycle,
            stage: Running { mut threads },
        } = self;
        // The worker's terminal event waits for room no later than this call's bound.
        *lifecycle.end_by.lock() = Some(deadline);
        if abort {
            lifecycle.signals.request_abort();
        }
        let mut threads_left_behind = threads.join_by(deadline);
        threads_left_behind.extend(lifecycle.signals.helpers_running());
        if threads.worker_left_behind() {
            // The run is over for the caller: it ends aborted, whatever the thread left
            // behind reports when it returns (a terminal state is never left). The bound is
            // reached: its event goes to the hooks only if there is room now.
            lifecycle.record.lock().aborted = true;
            lifecycle.transition_with(StreamState::Stopped, None, TerminalSend::NoWait);
        }
        let (state, error, aborted) = {
            let r = lifecycle.record.lock();
            (r.state, r.error.clone(), r.aborted)
        };
        StreamReport {
            id: lifecycle.config.id().to_owned(),
            state,
            error,
            stats: lifecycle.snapshot(),
            aborted,
            stop_deadline_exceeded: exceeded,
            threads_left_behind,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365)
}
