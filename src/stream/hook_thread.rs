//! A stream's hook thread (`sv-<id>-hooks`): delivers state events in order and stats at
//! their interval, off the media threads, until the stream has ended.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

pub(crate) use crate::hooks::HookMsg;
use crate::hooks::{Hooks, StatsEvent};
use crate::state::StreamState;
use crate::stats::StreamStats;

/// Capacity of the queue of events waiting for the hook thread: state changes, and output
/// events (segments, playlists), which leave its last places to state changes. If a hook
/// stalls long enough to fill it, further events are dropped (and logged) rather than
/// stalling the stream.
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
    rx: &Receiver<HookMsg>,
    stream: &str,
    snapshot: &dyn Fn() -> (StreamState, StreamStats),
    finished: &dyn Fn() -> bool,
) {
    ON_HOOK_THREAD.with(|f| f.set(true));
    let interval = hooks.stats_interval();
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
            Some(HookMsg::Output(ev)) => hooks.call_output(stream, &ev),
            Some(HookMsg::State(ev)) => {
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
