//! Admission: may a stream run now (limits, ids, output directories, the pool), and the one
//! path by which new streams and restarts are started. The registry lock is held only to
//! check and to reserve; the stream is started with no lock held.

use std::sync::Arc;

use super::monitor::MonitorMsg;
use super::{ManagedStream, ManagerCore, Registry};
use crate::config::StreamConfig;
use crate::error::{Error, Refusal};
use crate::hooks::Hooks;
use crate::manager::pool::price;
use crate::panic::guarded;
use crate::state::StreamState;
use crate::stream::Stream;

/// An admission decision, reported to admission hooks.
#[derive(Debug, Clone)]
pub struct AdmissionEvent {
    /// Stream id.
    pub stream: String,
    /// Admitted or refused.
    pub admitted: bool,
    /// Why it was refused.
    pub reason: Option<Refusal>,
    /// True when this was an automatic restart of a failed stream.
    pub restart: bool,
}

/// Refuses a config that a running, starting or stopping stream already claims (id or
/// output directory), or that `max_concurrent` leaves no room for.
pub(super) fn check_admission(
    core: &ManagerCore,
    g: &Registry,
    config: &StreamConfig,
) -> Result<(), Refusal> {
    if g.shutting_down {
        return Err(Refusal::ShuttingDown);
    }
    if g.claims_id(config.id()) {
        return Err(Refusal::DuplicateId);
    }
    if g.claims_dir(config.output_dir()) {
        return Err(Refusal::OutputInUse);
    }
    if g.counted() >= core.max_concurrent {
        return Err(Refusal::MaxConcurrent {
            limit: core.max_concurrent,
        });
    }
    Ok(())
}

/// The admission path, for new streams and restarts alike: check and reserve under the
/// lock, start without it, then enter the stream in the registry (or drop the reservation).
pub(super) fn admit(
    core: &Arc<ManagerCore>,
    config: StreamConfig,
    restarts: u32,
) -> Result<(), Error> {
    let id = config.id().to_owned();
    let reserved = {
        // Short: checks, a pool allocation (arithmetic), a map insert.
        let mut g = core.registry.lock();
        check_admission(core, &g, &config)
            .and_then(|()| {
                core.pool
                    .try_allocate(price(&config))
                    .map_err(Refusal::Capacity)
            })
            .map(|allocation| (g.reserve(&config), allocation))
    };
    let decision = match reserved {
        Err(reason) => Err(Error::Refused {
            stream: id.clone(),
            reason,
        }),
        Ok((gen, allocation)) => {
            let started = Stream::new(config.clone())
                .with_hooks(core.hooks.clone())
                .with_hooks(reaper_hook(core, &id, gen))
                .start();
            // Short: moves the reservation into the map, or drops it.
            let mut g = core.registry.lock();
            g.starting.remove(&id);
            match started {
                Ok(stream) => {
                    let entry = ManagedStream {
                        gen,
                        stream,
                        allocation,
                        config,
                        restarts,
                        repriced: false,
                    };
                    g.map.insert(id.clone(), entry);
                    Ok(())
                }
                Err(e) => {
                    drop(g);
                    core.changed.notify_all();
                    Err(e.error)
                }
            }
        }
    };
    let event = AdmissionEvent {
        stream: id,
        admitted: decision.is_ok(),
        reason: match &decision {
            Err(Error::Refused { reason, .. }) => Some(reason.clone()),
            _ => None,
        },
        restart: restarts > 0,
    };
    for h in &core.on_admission {
        guarded(
            format_args!("stream {}", event.stream),
            "admission hook",
            || {
                h(&event);
            },
        );
    }
    decision
}

/// A hook that tells the monitor when the stream's ladder is planned and when it ends.
fn reaper_hook(core: &ManagerCore, id: &str, gen: u64) -> Hooks {
    let monitor_tx = core.monitor_tx.clone();
    let id = id.to_owned();
    Hooks::new().on_state_change(move |ev| {
        // If the queue is full the monitor's periodic scan does the same.
        let id = id.clone();
        if ev.to.is_terminal() {
            let _ = monitor_tx.try_send(MonitorMsg::Ended { id, gen });
        } else if ev.to == StreamState::Running {
            // The source is open and the ladder planned: re-price what will really run.
            let _ = monitor_tx.try_send(MonitorMsg::Planned { id, gen });
        }
    })
}
