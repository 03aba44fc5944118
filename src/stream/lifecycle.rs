//! The state machine a stream's handle and threads share: the state and its history, state
//! events queued for the hook thread in order, statistics snapshots, waiting for a state,
//! and the worker thread that runs the pipeline under the panic net.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

use super::hook_thread::HookMsg;
use super::recovery::Recovery;
use crate::config::StreamConfig;
use crate::error::Error;
use crate::hooks::StateEvent;
use crate::pipeline::{self, Ending, InputWatch, Signals};
use crate::state::{StateSet, StreamState};
use crate::stats::{OutageLog, PlannedLadder, StatsCell, StreamStats};

/// The state and its history, guarded by one short lock (never held across FFI, a wait,
/// or a hook).
#[derive(Debug)]
pub(super) struct StateRecord {
    pub state: StreamState,
    since: Instant,
    time_in: [Duration; 7],
    pub started: Option<Instant>,
    ended: Option<Instant>,
    pub error: Option<Error>,
    /// The run ended by an abort (`abort`, drop, or a stop past its deadline).
    pub aborted: bool,
    /// Source outages: each from a move to `Error` to media flowing again.
    outages: OutageLog,
}

/// What a stream's handle and its threads share: the config, the signals to the pipeline,
/// the counters, the state record, and the queue to the hook thread.
#[derive(Debug)]
pub(super) struct Lifecycle {
    pub config: StreamConfig,
    pub signals: Arc<Signals>,
    pub stats: StatsCell,
    pub record: Mutex<StateRecord>,
    changed: Condvar,
    /// Where state events go when the stream has hooks (set at start).
    pub hook_tx: Mutex<Option<Sender<HookMsg>>>,
    /// The ladder as it runs, once the source is open.
    pub planned: Mutex<Option<PlannedLadder>>,
    /// A hook wants output events (set at start).
    pub wants_output_events: std::sync::atomic::AtomicBool,
    /// The bound of the call ending the stream (`stop`, `abort`, `wait`), once one is under
    /// way: the terminal state event waits for room in the hook queue no later than this.
    pub end_by: Mutex<Option<Instant>>,
}

/// How long the terminal state event may wait for room in a full hook queue, at most.
const TERMINAL_WAIT: Duration = Duration::from_secs(1);
/// The worker gives up on the terminal event this long before the bound of the call ending
/// the stream, so that it still ends (and is joined) by that bound.
const TERMINAL_MARGIN: Duration = Duration::from_millis(200);
/// Slices of that wait: a bound set while the worker waits is seen within one.
const TERMINAL_SLICE: Duration = Duration::from_millis(20);

/// Whether a terminal state event may wait for room in the hook queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TerminalSend {
    /// Up to [`TERMINAL_WAIT`], never past the bound of the call ending the stream (the
    /// worker's own end).
    Wait,
    /// Not at all: the caller is at its bound (a worker left behind).
    NoWait,
}

impl Lifecycle {
    pub fn new(config: StreamConfig) -> Self {
        Self {
            config,
            signals: Signals::new(),
            stats: StatsCell::default(),
            record: Mutex::new(StateRecord {
                state: StreamState::New,
                since: Instant::now(),
                time_in: [Duration::ZERO; 7],
                started: None,
                ended: None,
                error: None,
                aborted: false,
                outages: OutageLog::default(),
            }),
            changed: Condvar::new(),
            hook_tx: Mutex::new(None),
            planned: Mutex::new(None),
            wants_output_events: std::sync::atomic::AtomicBool::new(false),
            end_by: Mutex::new(None),
        }
    }

    /// Moves to `to` unless the stream is already terminal (or already there). Once
    /// `Stopping`, only a terminal state may follow. A terminal event waits for room in a
    /// full hook queue as [`TerminalSend::Wait`] says.
    /// True when the state moved.
    pub fn transition(&self, to: StreamState, error: Option<Error>) -> bool {
        self.transition_with(to, error, TerminalSend::Wait)
    }

    /// [`transition`](Self::transition), saying whether a terminal event may wait for room.
    pub fn transition_with(
        &self,
        to: StreamState,
        error: Option<Error>,
        send: TerminalSend,
    ) -> bool {
        let now = Instant::now();
        let (from, terminal_event) = {
            let mut s = self.record.lock();
            let from = s.state;
            if from.is_terminal()
                || from == to
                || (from == StreamState::Stopping && !to.is_terminal())
            {
                return false;
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
            // An outage runs from `Error` to media flowing again (`Running`); leaving
            // `Error` any other way ends it unrecovered.
            if to == StreamState::Error {
                let cause = error.as_ref().map_or_else(String::new, ToString::to_string);
                s.outages.begin(now, cause);
            } else if from == StreamState::Error {
                s.outages.end(now, to == StreamState::Running);
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
            // states changed, and the terminal one before the hook thread can see the end
            // with its queue empty (it would exit without it). Only the terminal one may
            // wait for room, outside the lock, when the queue is full.
            let terminal_event = match ev {
                Some((tx, ev)) if to.is_terminal() => match tx.try_send(HookMsg::State(ev)) {
                    Err(TrySendError::Full(HookMsg::State(ev))) => Some((tx, ev)),
                    _ => None,
                },
                Some((tx, ev)) => {
                    if let Err(TrySendError::Full(HookMsg::State(ev))) =
                        tx.try_send(HookMsg::State(ev))
                    {
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
            self.send_terminal(&tx, ev, send);
        }
        true
    }

    /// Queues the terminal event for the hook thread (which exits after it) when the queue
    /// was full. A busy hook gets a moment to make room (never past the bound of the call
    /// ending the stream); past that the event is dropped, and the hook thread still exits
    /// once it sees the end.
    fn send_terminal(&self, tx: &Sender<HookMsg>, ev: StateEvent, send: TerminalSend) {
        let give_up = Instant::now() + TERMINAL_WAIT;
        let mut msg = HookMsg::State(ev);
        loop {
            let limit = match (send, *self.end_by.lock()) {
                (TerminalSend::NoWait, _) => Instant::now(),
                (TerminalSend::Wait, Some(end)) => {
                    give_up.min(end.checked_sub(TERMINAL_MARGIN).unwrap_or(end))
                }
                (TerminalSend::Wait, None) => give_up,
            };
            // A deadline already past still tries once.
            let slice = (Instant::now() + TERMINAL_SLICE).min(limit);
            match tx.send_deadline(msg, slice) {
                Ok(()) => return,
                Err(SendTimeoutError::Timeout(m)) if Instant::now() < limit => msg = m,
                Err(SendTimeoutError::Timeout(_)) => {
                    log::warn!(
                        "stream {}: hooks are not keeping up; dropped the terminal state event",
                        self.config.id()
                    );
                    return;
                }
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }

    /// True once the stream is terminal: the hook thread may exit when its queue is empty.
    pub fn is_finished(&self) -> bool {
        self.record.lock().state.is_terminal()
    }

    pub fn state(&self) -> StreamState {
        self.record.lock().state
    }

    /// Statistics now, with uptime and time in each state from the lifecycle (frozen once
    /// the stream has ended).
    pub fn snapshot(&self) -> StreamStats {
        let (uptime, time_in_state, outages) = {
            let s = self.record.lock();
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
            (uptime, per_state, s.outages.read(now))
        };
        let mut stats = self.stats.snapshot(uptime);
        stats.time_in_state = time_in_state;
        stats.memory_estimate = self
            .planned
            .lock()
            .as_ref()
            .map_or(0, |p| p.memory_estimate);
        (stats.outages, stats.outage_count, stats.outage_time) = outages;
        stats
    }

    pub fn wait_for(&self, set: StateSet, deadline: Instant) -> StreamState {
        let mut s = self.record.lock();
        while !set.has(s.state) {
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.state
    }
}

/// The live output's clock reports the input-loss filler here: `Error` while it plays (an
/// outage, counted like any), `Running` when media is back (a recovery, counted once: a
/// reconnect that brought it back may report it first).
impl InputWatch for Lifecycle {
    fn input_lost(&self, why: Error) {
        self.stats.errors.fetch_add(1, Relaxed);
        self.transition(StreamState::Error, Some(why));
    }

    fn media_back(&self) {
        if self.transition(StreamState::Running, None) {
            self.stats.recoveries.fetch_add(1, Relaxed);
        }
    }
}

/// The stream's main thread: runs the pipeline under `catch_unwind` and records the end.
pub(super) fn run_worker(lifecycle: &Lifecycle) {
    let _cpu = lifecycle.stats.track_this_thread();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut recovery = Recovery::new(lifecycle);
        let output_events = lifecycle
            .hook_tx
            .lock()
            .clone()
            .filter(|_| lifecycle.wants_output_events.load(Relaxed));
        pipeline::run(
            &lifecycle.config,
            &lifecycle.signals,
            &lifecycle.stats,
            &mut recovery,
            lifecycle,
            output_events,
        )
    }));
    let id = lifecycle.config.id();
    let (state, error) = match result {
        Ok(Ok(Ending::SourceEnded | Ending::Stopped | Ending::Switch)) => {
            (StreamState::Stopped, None)
        }
        Ok(Err(Error::Aborted { .. })) => {
            lifecycle.record.lock().aborted = true;
            (StreamState::Stopped, None)
        }
        Ok(Err(e)) => (StreamState::Failed, Some(e)),
        Err(panic) => (
            StreamState::Failed,
            Some(Error::Panicked {
                message: crate::panic::panic_message(&*panic),
            }),
        ),
    };
    if let Some(e) = &error {
        lifecycle.stats.errors.fetch_add(1, Relaxed);
        log::warn!("stream {id}: {e}");
    }
    lifecycle.transition(state, error);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lifecycle whose hook queue (one place) is full: a hook that never drains it.
    fn with_full_hook_queue() -> (Lifecycle, crossbeam_channel::Receiver<HookMsg>) {
        let config = StreamConfig::builder("full", "in.mp4", "out")
            .local_files_under("/")
            .build()
            .unwrap();
        let lifecycle = Lifecycle::new(config);
        let (tx, rx) = crossbeam_channel::bounded(1);
        tx.try_send(HookMsg::State(StateEvent {
            stream: "full".into(),
            from: StreamState::New,
            to: StreamState::Starting,
            error: None,
            at: std::time::SystemTime::now(),
        }))
        .unwrap();
        *lifecycle.hook_tx.lock() = Some(tx);
        lifecycle.transition(StreamState::Starting, None);
        (lifecycle, rx)
    }

    #[test]
    fn the_terminal_event_never_waits_past_the_bound_of_the_call_ending_the_stream() {
        // At the bound (a worker left behind): no wait at all.
        let (lifecycle, _rx) = with_full_hook_queue();
        let t = Instant::now();
        lifecycle.transition_with(StreamState::Stopped, None, TerminalSend::NoWait);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(lifecycle.state(), StreamState::Stopped);

        // The worker's own end: until the call's bound (less a margin), not a full second.
        let (lifecycle, _rx) = with_full_hook_queue();
        *lifecycle.end_by.lock() = Some(Instant::now() + Duration::from_millis(400));
        let t = Instant::now();
        lifecycle.transition(StreamState::Stopped, None);
        let took = t.elapsed();
        assert!(took < Duration::from_millis(400), "{took:?}");

        // No call under way: up to a second, and delivered as soon as there is room.
        let (lifecycle, rx) = with_full_hook_queue();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let first = rx.recv().unwrap();
            let last = rx.recv_timeout(Duration::from_secs(2));
            (first, last)
        });
        lifecycle.transition(StreamState::Stopped, None);
        let (_, last) = drain.join().unwrap();
        assert!(matches!(last, Ok(HookMsg::State(ev)) if ev.to == StreamState::Stopped));
    }
}
