//! [`Manager::shutdown`] and its [`ShutdownReport`]: refuse new streams, drop the queue,
//! stop every stream in parallel within one bound, stop the manager's threads, wait (within
//! the same bound) for the hooks under way, and name what was left behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{self, QueuedStream};
use super::registry::ManagedStream;
use super::retire::retire;
use super::{lanes, Manager, ManagerCore};
use crate::error::Refusal;
use crate::stream::{act_for_hook_thread, on_hook_thread, StreamReport, GRACE};

/// What [`Manager::shutdown`] did: the final report of every stream it stopped, the
/// streams it dropped from the admission queue, and the manager's threads it left behind.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The final report of every stream that was running (or starting) when the shutdown
    /// began, by id: the same reports the finished hooks receive. A stream's own threads
    /// left behind are named in its report
    /// ([`StreamReport::threads_left_behind`]).
    pub streams: Vec<StreamReport>,
    /// Ids of the streams that waited in the admission queue and never ran, in queue
    /// order; each is told to the admission hooks as refused
    /// ([`Refusal::ShuttingDown`]).
    pub dropped_from_queue: Vec<String>,
    /// The manager's own threads still busy at the shutdown's bound and left running
    /// (detached), by name, sorted: a thread running a stream's admission or finished
    /// hooks, or dropping what the application gave it (`sv-<id>-mgr`), a thread retiring
    /// a stream that ended by itself (`sv-reap-<id>`), the monitor (`sv-manager`), the
    /// admission thread (`sv-admit`). Each ends by itself once what it waits for returns.
    /// From a hook, the shutdown waits for none of them: those still busy then are named.
    pub left_behind: Vec<String>,
}

impl Manager {
    /// Stops every stream in parallel (graceful, aborted at `deadline`), refuses new ones,
    /// and stops the manager's threads; returns within `deadline` + [`GRACE`], whatever the
    /// hooks do, for any number of streams, with every stream's final report. Streams still
    /// waiting in the queue never run: each is reported to the admission hooks as refused
    /// ([`Refusal::ShuttingDown`]). The hooks under way (admission, finished: they run on
    /// the manager's threads, never on the caller's) are waited for until that bound; a
    /// thread still busy then is left behind and named in
    /// [`ShutdownReport::left_behind`]. From a hook, it waits for no hook and no manager
    /// thread (the hook's own stream's threads included). Idempotent: a second call has
    /// nothing left to stop.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamvisor::Manager;
    ///
    /// let manager = Manager::builder().on_finished(|r| println!("{} ended", r.id)).build()?;
    /// let report = manager.shutdown(Duration::from_secs(10));
    /// assert!(report.streams.is_empty() && report.left_behind.is_empty());
    /// # Ok::<(), streamvisor::Error>(())
    /// ```
    pub fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now() + deadline;
        let bound = until + GRACE;
        let from_hook = on_hook_thread();
        let (entries, dropped) = self.sweep(until);
        // Nothing is left for the monitor and the admission thread to reap, start or
        // restart: dropping the sender tells both to quit. Taken in its own statement: the
        // lock is not held across the joins below.
        let threads = self.threads.lock().take();
        let threads = threads.map(|t| {
            drop(t.quit);
            [t.monitor, t.admitter]
        });
        let dropped_from_queue = drop_queue(&self.core, dropped);
        let mut streams = stop_all(&self.core, entries, until, from_hook);
        streams.sort_by(|a, b| a.id.cmp(&b.id));
        let mut left_behind = Vec::new();
        // Not from a hook: the threads quit by themselves, and the retirements and hooks
        // under way finish by themselves too.
        if !from_hook {
            for t in threads.into_iter().flatten().filter(|t| !t.is_current()) {
                if let Err(name) = t.join_by(bound) {
                    log::warn!("manager thread {name} did not quit in time");
                    left_behind.push(name);
                }
            }
            // Retirements the monitor started (streams that ended by themselves), and every
            // hook under way, within the same bound.
            self.wait_idle(bound.saturating_duration_since(Instant::now()));
        }
        let busy = {
            let own = lanes::own_lane(&self.core);
            // Short: a pass over the lanes and reapers.
            self.core.registry.lock().busy_threads(own.as_deref())
        };
        if !busy.is_empty() && !from_hook {
            log::warn!("shutdown: left behind, busy in a hook: {busy:?}");
        }
        left_behind.extend(busy);
        left_behind.sort();
        ShutdownReport {
            streams,
            dropped_from_queue,
            left_behind,
        }
    }

    /// Refuses new streams, empties the queue and takes every running stream out of the
    /// map, once the streams being started (admitted before) have entered it, waiting for
    /// them until `until` at most.
    fn sweep(&self, until: Instant) -> (Vec<ManagedStream>, Vec<QueuedStream>) {
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

/// Tells the admission hooks (in each stream's lane) that the streams still queued will
/// never run, and lets go of their configs there; returns their ids.
fn drop_queue(core: &Arc<ManagerCore>, dropped: Vec<QueuedStream>) -> Vec<String> {
    let mut ids = Vec::with_capacity(dropped.len());
    for q in dropped {
        let id = q.config.id().to_owned();
        log::warn!("stream {id}: dropped from the queue: shutting down");
        let refused = admission::Decision::Refused(&Refusal::ShuttingDown);
        admission::report(core, &id, refused, false, None);
        lanes::drop_later(core, &id, q);
        ids.push(id);
    }
    ids
}

/// Stops every stream in parallel, each gracefully until `until` then aborted, returning by
/// `until` + [`GRACE`]: the time spent before (waiting for streams still starting, starting
/// these threads) comes out of each stream's deadline.
fn stop_all(
    core: &Arc<ManagerCore>,
    entries: Vec<ManagedStream>,
    until: Instant,
    from_hook: bool,
) -> Vec<StreamReport> {
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .into_iter()
            .map(|e| {
                s.spawn(move || {
                    // A shutdown from a hook must not join hook threads from here either.
                    act_for_hook_thread(from_hook);
                    let stop_for = until.saturating_duration_since(Instant::now());
                    retire(core, e, |st| st.stop(stop_for))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}
