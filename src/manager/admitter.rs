//! The manager's admission thread (`sv-admit`): starts queued streams as capacity frees
//! (an allocation may shrink at any time, once its stream's source is open, so it looks at
//! every tick, and at once when a retirement wakes it) and admits the restarts of failed
//! streams when they are due. It runs no user hook: the admission events go to each
//! stream's lane (`lanes`), so a hook that blocks delays neither queued starts, restarts,
//! reaping nor the stall watchdog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};

use super::admission::{self, admit};
use super::{lanes, ManagerCore};
use crate::config::{BackoffTimer, StreamConfig};
use crate::error::{Error, Refusal};

/// A failed stream waiting to be admitted again.
pub(super) struct PendingRestart {
    config: StreamConfig,
    restarts: u32,
    due: Instant,
}

/// What the admission thread is told: a retired stream is due for a restart.
pub(super) enum AdmitMsg {
    Restart(Box<PendingRestart>),
}

/// What the admission thread listens to.
pub(super) struct Inbox {
    /// Restarts.
    pub msgs: Receiver<AdmitMsg>,
    /// Wakes: capacity came back, start what the queue holds now.
    pub wake: Receiver<()>,
    /// Dropped (never sent on) to tell the thread to quit.
    pub quit: Receiver<()>,
}

/// The admission loop, until `quit` is dropped.
pub(super) fn run(core: &Arc<ManagerCore>, inbox: &Inbox, interval: Duration) {
    let ticker = tick(interval);
    let mut pending: Vec<PendingRestart> = Vec::new();
    loop {
        select! {
            recv(inbox.msgs) -> msg => match msg {
                Ok(AdmitMsg::Restart(p)) => pending.push(*p),
                Err(_) => break,
            },
            recv(inbox.wake) -> _ => admission::start_queued(core),
            recv(ticker) -> _ => {
                restart_due(core, &mut pending);
                admission::start_queued(core);
            }
            recv(inbox.quit) -> _ => break,
        }
    }
    // Restarts that will not happen: their configs (the application's reader, sink and
    // hooks) are let go of in their lanes.
    for p in pending {
        let id = p.config.id().to_owned();
        lanes::drop_later(core, &id, p);
    }
}

/// Wakes the admission thread to start what the queue holds now (capacity came back).
/// Never waits: a wake already pending serves for this one too.
pub(super) fn wake(core: &ManagerCore) {
    let _ = core.wake_tx.try_send(());
}

/// Queues a restart of a failed stream when the policy asks for one; otherwise lets go of
/// its config in its lane.
pub(super) fn schedule_restart(core: &Arc<ManagerCore>, config: StreamConfig, restarts: u32) {
    let policy = &core.restart;
    let id = config.id().to_owned();
    if !policy.enabled || restarts >= policy.max_restarts {
        lanes::drop_later(core, &id, config);
        return;
    }
    if !config.input().can_reopen() {
        log::warn!(
            "stream {id}: failed; not restarted: its source is a one-shot reader, already read"
        );
        lanes::drop_later(core, &id, config);
        return;
    }
    let next = restarts + 1;
    let wait = BackoffTimer::new(policy.backoff, config.id()).wait(next);
    log::info!(
        "stream {}: failed; restart {next}/{} in {wait:?}",
        config.id(),
        policy.max_restarts
    );
    let msg = AdmitMsg::Restart(Box::new(PendingRestart {
        config,
        restarts: next,
        due: Instant::now() + wait,
    }));
    if let Err(e) = core.admit_tx.try_send(msg) {
        log::warn!("manager admission queue full or closed; a restart was dropped");
        lanes::drop_later(core, &id, e.into_inner());
    }
}

/// Admits the restarts that are due; those that do not fit yet wait for a later tick.
fn restart_due(core: &Arc<ManagerCore>, pending: &mut Vec<PendingRestart>) {
    let now = Instant::now();
    let mut later = Vec::new();
    for p in pending.drain(..) {
        if p.due > now {
            later.push(p);
            continue;
        }
        match admit(core, p.config.clone(), p.restarts) {
            Ok(_) => {}
            // No room yet, or the last run's worker still writes its output: try again on
            // a later tick.
            Err(Error::Refused {
                reason: Refusal::Capacity(_) | Refusal::MaxConcurrent { .. } | Refusal::OutputBusy,
                ..
            }) => later.push(PendingRestart {
                due: now + Duration::from_millis(500),
                ..p
            }),
            Err(e) => {
                let id = p.config.id().to_owned();
                log::warn!("restart of {id} abandoned: {e}");
                lanes::drop_later(core, &id, p);
            }
        }
    }
    *pending = later;
}
