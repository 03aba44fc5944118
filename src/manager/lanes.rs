//! Hook lanes: the application's code that the manager runs (admission and finished hooks)
//! and the application's values it lets go of (a config's reader, sink and hooks, whose
//! `Drop` is the application's code too) never run on the thread of a manager call nor
//! under the manager's lock. They are jobs in a lane, one lane per stream id, run in order
//! (first in, first out: a stream's admission event before its finished event, whatever
//! threads produced them) on a short-lived thread of the lane's own, `sv-<id>-mgr`, started
//! when work arrives and ended once the lane is empty. A hook that blocks delays only the
//! later jobs of its own stream id.
//!
//! A lane lives in the registry (under its one short lock) while its thread runs, its last
//! job included, so that `wait_idle` and `shutdown` can wait for it and name it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{ManagerCore, Registry};
use crate::panic::guarded;
use crate::stream::{act_for_hook_thread, on_hook_thread};

/// A job in a lane: hooks to call, values to drop.
pub(super) type Job = Box<dyn FnOnce(&ManagerCore) + Send>;

/// The jobs of one lane not started yet.
pub(super) type Lane = VecDeque<Job>;

thread_local! {
    /// The lanes (manager address, stream id) whose jobs run on this thread now.
    static LANE_HERE: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
}

fn address(core: &ManagerCore) -> usize {
    std::ptr::from_ref(core) as usize
}

/// The name of the thread of lane `id`.
pub(super) fn thread_name(id: &str) -> String {
    format!("sv-{id}-mgr")
}

/// The lane of `core`'s whose job runs on this thread now, if any: a hook waiting for
/// `core` (to be idle, to shut down) must not wait for its own lane, whose later jobs only
/// run once it returns.
pub(super) fn own_lane(core: &ManagerCore) -> Option<String> {
    let me = address(core);
    LANE_HERE.with(|l| {
        let l = l.borrow();
        l.iter()
            .rev()
            .find(|(c, _)| *c == me)
            .map(|(_, id)| id.clone())
    })
}

/// Runs `job` in the lane of stream `id`, after the jobs already there. Never waits: the
/// lane's thread is started if it is not running.
pub(super) fn submit(core: &Arc<ManagerCore>, id: &str, job: Job) {
    // Short: a map edit.
    let start = push(&mut core.registry.lock(), id, job);
    if start {
        run(core, id);
    }
}

/// Puts `job` in the lane of stream `id` under the registry lock (the caller holds it), in
/// the same step as what it reports; true when the lane is new: the caller then starts its
/// thread with [`run`], once the lock is released.
pub(super) fn push(g: &mut Registry, id: &str, job: Job) -> bool {
    if let Some(lane) = g.lanes.get_mut(id) {
        lane.push_back(job);
        false
    } else {
        g.lanes.insert(id.to_owned(), VecDeque::from([job]));
        true
    }
}

/// Starts the thread of the new lane `id` (see [`push`]).
pub(super) fn run(core: &Arc<ManagerCore>, id: &str) {
    let (c, lane) = (core.clone(), id.to_owned());
    let spawned = std::thread::Builder::new()
        .name(thread_name(id))
        .spawn(move || drain(&c, &lane));
    if let Err(e) = spawned {
        // No thread to be had: the caller runs the lane, a last resort that keeps every
        // job run and the manager able to become idle.
        log::error!("stream {id}: spawning a hook thread: {e}; hooks run on the caller");
        drain(core, id);
    }
}

/// A place kept in a lane for a job not known yet (an admission event whose outcome is
/// decided a moment later), so that it keeps its order: taken before the stream can be
/// seen (and so ended) by anyone else, filled once the outcome is known (a slot dropped
/// unfilled is skipped). The lane waits for it there; a new lane's thread is started only
/// once it is filled or dropped, so that nothing ever waits for it on its holder's thread.
pub(super) struct Slot {
    tx: Option<Sender<Job>>,
    /// The lane is new: its thread is to be started once the slot is filled or dropped.
    start: Option<(Arc<ManagerCore>, String)>,
}

impl Slot {
    /// Keeps a place in the lane of stream `id`, under the registry lock (the caller holds
    /// it): in the same step as what the job will report.
    pub(super) fn keep_locked(core: &Arc<ManagerCore>, g: &mut Registry, id: &str) -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(1);
        let wait: Job = Box::new(move |core| {
            if let Ok(job) = rx.recv() {
                job(core);
            }
        });
        let new = push(g, id, wait);
        Self {
            tx: Some(tx),
            start: new.then(|| (core.clone(), id.to_owned())),
        }
    }

    /// [`keep_locked`](Self::keep_locked), taking the lock.
    pub(super) fn keep(core: &Arc<ManagerCore>, id: &str) -> Self {
        // Short: a map edit.
        Self::keep_locked(core, &mut core.registry.lock(), id)
    }

    /// Puts `job` in the place kept for it. Not under the registry lock.
    pub(super) fn fill(mut self, job: Job) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some((core, id)) = self.start.take() {
            run(&core, &id);
        }
    }
}

/// Lets go of `value` (a config, with the application's reader, sink and hooks) in the lane
/// of stream `id`: its `Drop` may take its time or call back into the manager.
pub(super) fn drop_later<T: Send + 'static>(core: &Arc<ManagerCore>, id: &str, value: T) {
    submit(core, id, Box::new(move |_| drop(value)));
}

/// Runs the jobs of lane `id` until it is empty, then removes it; each job inside the
/// panic net, with no lock held, as on a hook thread (a hook may stop streams or shut the
/// manager down: it joins no hook thread from here).
fn drain(core: &ManagerCore, id: &str) {
    LANE_HERE.with(|l| l.borrow_mut().push((address(core), id.to_owned())));
    let was = on_hook_thread();
    act_for_hook_thread(true);
    loop {
        let job = {
            // Short: a pop, or the lane's removal once it is empty.
            let mut g = core.registry.lock();
            let job = g.lanes.get_mut(id).and_then(VecDeque::pop_front);
            if job.is_none() {
                g.lanes.remove(id);
            }
            job
        };
        let Some(job) = job else { break };
        guarded(format_args!("stream {id}"), "manager hook", || job(core));
        core.changed.notify_all();
    }
    core.changed.notify_all();
    act_for_hook_thread(was);
    LANE_HERE.with(|l| {
        l.borrow_mut().pop();
    });
}
