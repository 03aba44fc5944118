//! The contract between the media pipeline and the lifecycle above it: the [`Signals`] the
//! lifecycle raises (stop, abort, stall), the [`PipelineEvent`]s the pipeline reports, and
//! the [`Supervisor`] that decides how to (re)connect the source. The pipeline knows
//! nothing else about states, hooks or policies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::session::{Session, SourceOpener};
use crate::error::Error;
use crate::ffi::Interrupt;
use crate::stats::PlannedLadder;

/// Stop, abort and stall requests, shared by a stream's handle and its threads. Each one
/// also cuts the blocking FFmpeg call under way through the input's interrupt callback.
#[derive(Debug)]
pub(crate) struct Signals {
    interrupt: Arc<Interrupt>,
    /// Installed on the outputs: trips on abort only (a graceful stop finishes them).
    output_interrupt: Arc<Interrupt>,
    stop: AtomicBool,
    abort: AtomicBool,
    stall: AtomicBool,
    /// Threads the pipeline started outside the stream's own, running application code
    /// (an application's reader): the report names those still running when it is made.
    helpers: Mutex<Vec<Helper>>,
    /// The interrupts of the stream's other inputs (backups kept warm): a stop or an abort
    /// trips them too, a stall report expires them.
    linked: Mutex<Vec<std::sync::Weak<Interrupt>>>,
}

/// A helper thread, running while its flag is up.
#[derive(Debug)]
struct Helper {
    name: String,
    running: Arc<AtomicBool>,
}

/// Held by a helper thread for its whole body: lowers its flag when dropped.
#[derive(Debug)]
pub(crate) struct HelperRunning(Arc<AtomicBool>);

impl Drop for HelperRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Signals {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            interrupt: Interrupt::new(),
            output_interrupt: Interrupt::new(),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            stall: AtomicBool::new(false),
            helpers: Mutex::new(Vec::new()),
            linked: Mutex::new(Vec::new()),
        })
    }

    /// Signals for one more input of the stream (a backup kept warm on its own thread):
    /// its own interrupt, tripped by this stream's stop and abort as well.
    pub fn linked_input(&self) -> Arc<Self> {
        let child = Self::new();
        // Short: prunes the dropped ones, one push.
        let mut linked = self.linked.lock();
        linked.retain(|w| w.strong_count() > 0);
        linked.push(Arc::downgrade(&child.interrupt));
        child
    }

    /// Runs `f` on the linked inputs' interrupts still alive.
    fn each_linked(&self, f: impl Fn(&Interrupt)) {
        // Short: clones the handles out; the interrupts are tripped outside the lock.
        let alive: Vec<Arc<Interrupt>> = self
            .linked
            .lock()
            .iter()
            .filter_map(|w| w.upgrade())
            .collect();
        for i in &alive {
            f(i);
        }
    }

    /// Registers a helper thread by name, before it is spawned; it holds the returned guard
    /// for its whole body.
    pub fn track_helper(&self, name: String) -> HelperRunning {
        let running = Arc::new(AtomicBool::new(true));
        // Short: drops the entries of helpers that ended, one push.
        let mut helpers = self.helpers.lock();
        helpers.retain(|h| h.running.load(Ordering::SeqCst));
        helpers.push(Helper {
            name,
            running: running.clone(),
        });
        HelperRunning(running)
    }

    /// The names of the helper threads still running.
    pub fn helpers_running(&self) -> Vec<String> {
        // Short: one pass over a short list.
        let helpers = self.helpers.lock();
        let running = helpers.iter().filter(|h| h.running.load(Ordering::SeqCst));
        running.map(|h| h.name.clone()).collect()
    }

    /// The interrupt installed on the stream's inputs (checks these signals and the I/O
    /// deadline).
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The interrupt installed on the stream's outputs (trips on abort only).
    pub fn output_interrupt(&self) -> &Arc<Interrupt> {
        &self.output_interrupt
    }

    /// Graceful: stop reading (a blocked read returns at once), drain, finish the outputs.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
        self.each_linked(Interrupt::interrupt);
    }

    /// Immediate: interrupt I/O and drop partial work.
    pub fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
        self.output_interrupt.interrupt();
        self.each_linked(Interrupt::interrupt);
    }

    /// A watchdog saw no progress: the current read is cut and the stream goes through its
    /// recovery policy as for a stalled source.
    pub fn report_stall(&self) {
        self.stall.store(true, Ordering::SeqCst);
        self.interrupt.expire();
        self.each_linked(Interrupt::expire);
    }

    /// Takes a pending stall report.
    pub fn take_stall(&self) -> bool {
        self.stall.swap(false, Ordering::SeqCst)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` unless a stop or abort comes first; true when one did.
    pub fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stop_requested() || self.abort_requested() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// How a pipeline run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The source ended (end of file).
    SourceEnded,
    /// A stop was requested and the outputs were finished.
    Stopped,
    /// The decode loop leaves its input for another (the primary is back): inside the
    /// pipeline only, never a run's end.
    Switch,
}

/// Media progress the pipeline reports to the lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PipelineEvent {
    /// The source is open and the ladder planned: what will actually run (reported once,
    /// before the first `Running`).
    Planned(PlannedLadder),
    /// Media flows: the first video frame decoded on each connection (the first one, and
    /// again after each outage, whichever way the source came back).
    Running,
    /// Reading stopped (end of source or stop request): flushing everything.
    Draining,
}

/// How a new connection continues the output timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reopened {
    /// The first connection.
    First,
    /// The source was reached again after an outage: the timeline continues right after
    /// the last frame sent.
    Reconnected,
    /// The same source was opened again without its hardware device: a file resumes right
    /// after the last frame sent (seek and skip), a live source continues like a reconnect.
    OnCpu,
}

/// What the live output's clock tells the lifecycle from its own thread (the worker may be
/// blocked reading or reconnecting meanwhile): the input-loss filler started (the stream is
/// in `Error` while it plays) and media flows again (`Running`).
pub(crate) trait InputWatch: Sync {
    /// No media for the filler's delay: the filler plays; `why` is the stream's error.
    fn input_lost(&self, why: Error);
    /// Media flows again after the filler.
    fn media_back(&self);
}

/// The lifecycle's side of the pipeline: it hears [`PipelineEvent`]s and owns the recovery
/// policy (when to reconnect, how long to back off, whether to leave a hardware device).
pub(crate) trait Supervisor {
    /// Media progress.
    fn report(&mut self, event: PipelineEvent);

    /// True when the end of a live source is an outage to reconnect from rather than the
    /// end of the stream.
    fn reconnects_live_end(&self) -> bool;

    /// A live stream's every input is gone (with backups: none healthy to take over): the
    /// stream is in `Error` until media flows again.
    fn input_lost(&mut self, error: Error);

    /// Connects the source: the first time (`failure` is `None`, the hardware device is
    /// opened first) or after `failure`. `Ok(None)` when a stop came first; the error when
    /// the policy gives up (or does not apply).
    fn connect(
        &mut self,
        opener: &mut SourceOpener<'_>,
        failure: Option<Error>,
    ) -> Result<Option<(Session, Reopened)>, Error>;
}
