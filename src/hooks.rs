//! User callbacks for state changes and statistics. They run on a stream's own hook thread
//! (`sv-<id>-hooks`), never on a media thread, in order, each inside `catch_unwind`: a hook
//! that panics is logged and the stream carries on; a hook that blocks delays only later
//! hook calls, never decoding or encoding.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::error::Error;
use crate::stats::StreamStats;
use crate::stream::StreamState;

/// A state change of one stream.
#[derive(Debug, Clone)]
pub struct StateEvent {
    /// Stream id.
    pub stream: String,
    /// The state left.
    pub from: StreamState,
    /// The state entered.
    pub to: StreamState,
    /// The error behind a move to `Error` or `Failed`.
    pub error: Option<Error>,
    /// When it happened.
    pub at: SystemTime,
}

/// A periodic statistics snapshot of one stream.
#[derive(Debug, Clone)]
pub struct StatsEvent {
    /// Stream id.
    pub stream: String,
    /// The state at the snapshot.
    pub state: StreamState,
    /// The figures.
    pub stats: StreamStats,
}

type StateHook = Arc<dyn Fn(&StateEvent) + Send + Sync>;
type StatsHook = Arc<dyn Fn(&StatsEvent) + Send + Sync>;

/// The callbacks attached to a stream. Cheap to clone (shared closures).
#[derive(Clone, Default)]
pub struct Hooks {
    on_state: Vec<StateHook>,
    on_stats: Vec<StatsHook>,
    stats_interval: Option<Duration>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_state", &self.on_state.len())
            .field("on_stats", &self.on_stats.len())
            .field("stats_interval", &self.stats_interval)
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `f` on every state change.
    pub fn on_state_change(mut self, f: impl Fn(&StateEvent) + Send + Sync + 'static) -> Self {
        self.on_state.push(Arc::new(f));
        self
    }

    /// Calls `f` with a statistics snapshot every `interval` (at least 10 ms) while the
    /// stream lives, and once more after it ends.
    pub fn on_stats(
        mut self,
        interval: Duration,
        f: impl Fn(&StatsEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_stats.push(Arc::new(f));
        let interval = interval.max(Duration::from_millis(10));
        self.stats_interval = Some(self.stats_interval.map_or(interval, |i| i.min(interval)));
        self
    }

    /// Adds every hook of `other`.
    pub fn merge(mut self, other: &Hooks) -> Self {
        self.on_state.extend(other.on_state.iter().cloned());
        self.on_stats.extend(other.on_stats.iter().cloned());
        if let Some(i) = other.stats_interval {
            self.stats_interval = Some(self.stats_interval.map_or(i, |j| j.min(i)));
        }
        self
    }

    /// True when no hook is set.
    pub fn is_empty(&self) -> bool {
        self.on_state.is_empty() && self.on_stats.is_empty()
    }

    fn call_state(&self, ev: &StateEvent) {
        for h in &self.on_state {
            guarded(&ev.stream, "state hook", || h(ev));
        }
    }

    fn call_stats(&self, ev: &StatsEvent) {
        for h in &self.on_stats {
            guarded(&ev.stream, "stats hook", || h(ev));
        }
    }
}

fn guarded(stream: &str, what: &str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        log::error!(
            "stream {stream}: {what} panicked: {}",
            crate::pipeline::panic_message(&*p)
        );
    }
}

/// Capacity of the queue of state events waiting for the hook thread. State changes are
/// few; if a hook stalls long enough to fill it, further events are dropped (and logged)
/// rather than stalling the stream.
pub(crate) const HOOK_QUEUE: usize = 256;

thread_local! {
    static ON_HOOK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as working on behalf of a hook thread (see [`on_hook_thread`]).
pub(crate) fn act_for_hook_thread(yes: bool) {
    ON_HOOK_THREAD.with(|f| f.set(yes));
}

/// True on a stream's hook thread (a hook is running, or may run, on this thread), or on a
/// thread working on its behalf.
pub(crate) fn on_hook_thread() -> bool {
    ON_HOOK_THREAD.with(std::cell::Cell::get)
}

/// How often the hook thread looks whether the stream ended, when no event comes.
const HOOK_POLL: Duration = Duration::from_millis(100);

/// The hook thread's loop: deliver state events in order, and stats at the interval,
/// until the terminal state has been delivered (or the stream is over and nothing is left
/// to deliver, should the terminal event not have fitted); then one last stats snapshot.
pub(crate) fn run_hook_thread(
    hooks: &Hooks,
    rx: &Receiver<StateEvent>,
    stream: &str,
    snapshot: &dyn Fn() -> (StreamState, StreamStats),
    finished: &dyn Fn() -> bool,
) {
    ON_HOOK_THREAD.with(|f| f.set(true));
    let interval = hooks.stats_interval.filter(|_| !hooks.on_stats.is_empty());
    let mut next_stats = interval.map(|i| Instant::now() + i);
    let stats_event = || {
        let (state, stats) = snapshot();
        StatsEvent {
            stream: stream.to_owned(),
            state,
            stats,
        }
    };
    loop {
        let poll = Instant::now() + HOOK_POLL;
        let wake = next_stats.map_or(poll, |at| at.min(poll));
        let ev = match rx.recv_deadline(wake) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match ev {
            Some(ev) => {
                hooks.call_state(&ev);
                if ev.to.is_terminal() {
                    break;
                }
            }
            None if finished() && rx.is_empty() => break,
            None if next_stats.is_none_or(|at| Instant::now() < at) => {}
            None => {
                hooks.call_stats(&stats_event());
                // Skip ticks a slow hook missed rather than firing them back to back.
                let i = interval.expect("stats tick implies an interval");
                let now = Instant::now();
                let mut at = next_stats.expect("set with interval") + i;
                while at <= now {
                    at += i;
                }
                next_stats = Some(at);
            }
        }
    }
    if interval.is_some() {
        hooks.call_stats(&stats_event());
    }
}
