//! The manager's admission thread (`sv-admit`): starts queued streams as capacity frees
//! (an allocation may shrink at any time, once its stream's source is open, so it looks at
//! every tick) and admits the restarts of failed streams when they are due. The admission
//! hooks for those run here: the monitor never runs a user hook, so a hook that blocks
//! delays queued starts and restarts only, never reaping or the stall watchdog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};

use super::admission::{self, admit};
use super::ManagerCore;
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

/// The admission loop, until `quit` is dropped.
pub(super) fn run(
    core: &Arc<ManagerCore>,
    inbox: &Receiver<AdmitMsg>,
    quit: &Receiver<()>,
    interval: Duration,
) {
    let ticker = tick(interval);
    let mut pending: Vec<PendingRestart> = Vec::new();
    loop {
        select! {
            recv(inbox) -> msg => match msg {
                Ok(AdmitMsg::Restart(p)) => pending.push(*p),
                Err(_) => return,
            },
            recv(ticker) -> _ => {
                restart_due(core, &mut pending);
                admission::start_queued(core);
            }
            recv(quit) -> _ => return,
        }
    }
}

/// Queues a restart of a failed stream when the policy asks for one.
pub(super) fn schedule_restart(core: &ManagerCore, config: StreamConfig, restarts: u32) {
    let policy = &core.restart;
    if !policy.enabled || restarts >= policy.max_restarts {
        return;
    }
    if !config.input().can_reopen() {
        log::warn!(
            "stream {}: failed; not restarted: its source is a one-shot reader, already read",
            config.id()
        );
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
    if core.admit_tx.try_send(msg).is_err() {
        log::warn!("manager admission queue full or closed; a restart was dropped");
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
            Err(e) => log::warn!("restart of {} abandoned: {e}", p.config.id()),
        }
    }
    *pending = later;
}
