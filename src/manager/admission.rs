//! Admission: may a stream run now (limits, ids, output directories, the pool), what
//! happens when it may not ([`OverCapacity`]: refuse, or queue), and the one path by which
//! new streams, queued streams and restarts are started. The registry lock is held only to
//! check and to reserve; the stream is started with no lock held.

use std::sync::Arc;

use super::degrade::{degraded, Degradation};
use super::monitor::MonitorMsg;
use super::{lanes, ManagedStream, ManagerCore, Registry};
use crate::config::StreamConfig;
use crate::error::{Error, Refusal};
use crate::hooks::Hooks;
use crate::panic::guarded;
use crate::pool::{price, price_floor, Allocation};
use crate::state::StreamState;
use crate::stream::Stream;

/// What the manager does with a stream that does not fit now (the limit of concurrent
/// streams, or the pool).
///
/// With the `serde` feature it is written `"refuse"`, `"queue"` or
/// `{"degrade": {"min_rungs": 1, "min_frame_rate": 15.0}}`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum OverCapacity {
    /// Refuse it ([`Error::Refused`]).
    Refuse,
    /// Keep it in a FIFO queue (reserving its id and output directory) and start it as soon
    /// as capacity frees; past the queue's length it is refused. First come, first served:
    /// while the queue is not empty a new stream queues behind it even if it would fit now
    /// ([`Refusal::BehindQueue`]).
    Queue,
    /// Run less of it when the pool is short: drop the tallest rungs one by one (down to
    /// `min_rungs`), then cap the frame rate (30, 25, 20, 15, 12, 10 fps, down to
    /// `min_frame_rate`); refuse it if even that does not fit. The admission event says
    /// what was dropped. Only the pool is degraded for: `max_concurrent` still refuses.
    Degrade {
        /// Fewest rungs kept (the shortest ones); at least 1.
        min_rungs: usize,
        /// Lowest frame-rate cap, fps.
        min_frame_rate: f64,
    },
}

/// How a stream was taken by [`Manager::create_stream`](super::Manager::create_stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// It was started.
    Started,
    /// It waits in the queue at this position (0 = next to start).
    Queued {
        /// Streams ahead of it.
        position: usize,
    },
}

/// An admission decision, reported to admission hooks.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdmissionEvent {
    /// Stream id.
    pub stream: String,
    /// Admitted and started, or not.
    pub admitted: bool,
    /// Not started yet: it waits in the queue (`reason` says what it waits for).
    pub queued: bool,
    /// Why it was refused, or what a queued stream waits for. `None` with neither
    /// `admitted` nor `queued`: it was admitted but its threads could not be started (the
    /// error is what `create_stream` returned, and is logged).
    pub reason: Option<Refusal>,
    /// Admitted with less than asked for ([`OverCapacity::Degrade`]): what was left out.
    pub degraded: Option<Degradation>,
    /// True when this was an automatic restart of a failed stream.
    pub restart: bool,
    /// When the decision was taken. The hooks of different streams run on their own
    /// threads, so their events may reach the application in another order: this is the
    /// order in which the manager decided.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::epoch_secs")
    )]
    pub at: std::time::SystemTime,
}

/// What an admission event says happened to a stream.
#[derive(Debug, Clone, Copy)]
pub(super) enum Decision<'a> {
    /// Started.
    Started,
    /// Put in the queue, waiting for this.
    Queued(&'a Refusal),
    /// Refused, for this.
    Refused(&'a Refusal),
    /// Admitted, but its threads could not be started.
    NotStarted,
}

impl<'a> Decision<'a> {
    /// What the outcome of a start says.
    fn of_start(started: &'a Result<(), Error>) -> Self {
        match started {
            Ok(()) => Decision::Started,
            Err(Error::Refused { reason, .. }) => Decision::Refused(reason),
            Err(_) => Decision::NotStarted,
        }
    }
}

/// A stream waiting in the queue.
pub(super) struct QueuedStream {
    pub config: StreamConfig,
}

/// Refuses a config that a running, starting, stopping or queued stream already claims (id
/// or output directory), or that `max_concurrent` leaves no room for.
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
    let output = config.output_identity();
    if g.claims_output(output) {
        return Err(Refusal::OutputInUse);
    }
    if g.output_left_behind(output) {
        return Err(Refusal::OutputBusy);
    }
    if config.is_network_source() {
        if let Some((stream, speed)) = &g.lagging_live {
            return Err(Refusal::Overloaded {
                stream: stream.clone(),
                speed: *speed,
            });
        }
    }
    if g.counted() >= core.max_concurrent {
        return Err(Refusal::MaxConcurrent {
            limit: core.max_concurrent,
        });
    }
    Ok(())
}

/// Checks, allocates and reserves, under the registry lock (the caller holds it).
fn reserve(
    core: &ManagerCore,
    g: &mut Registry,
    config: &StreamConfig,
    lone_at_floor: bool,
) -> Result<(u64, Allocation), Refusal> {
    check_admission(core, g, config)?;
    let allocation = match core.pool.try_allocate(price(config)) {
        Ok(a) => a,
        // Alone, a stream whose upper bound is over the capacity still gets to run if its
        // least cost fits: once its source is open it is re-priced to what really runs.
        // (Not under `Degrade`, which decides itself what to leave out.)
        Err(_) if lone_at_floor && core.pool.usage().allocations == 0 => core
            .pool
            .try_allocate(price_floor(config))
            .map_err(Refusal::Capacity)?,
        Err(short) => return Err(Refusal::Capacity(short)),
    };
    Ok((g.reserve(config), allocation))
}

/// True for what a queued stream may wait for: capacity, or the streams queued before it.
fn waits(r: &Refusal) -> bool {
    is_capacity(r) || matches!(r, Refusal::BehindQueue { .. })
}

/// True for refusals that capacity freeing up would lift.
fn is_capacity(r: &Refusal) -> bool {
    matches!(r, Refusal::Capacity(_) | Refusal::MaxConcurrent { .. })
}

/// First come, first served: while streams wait in the queue, a new one that would queue
/// too (its policy queues; not a restart) waits behind them even if it would fit now, so
/// that small newcomers never starve a large stream at the queue's head.
pub(super) fn behind_queue(
    g: &Registry,
    config: &StreamConfig,
    policy: OverCapacity,
    restarts: u32,
) -> Option<Refusal> {
    let queues = policy == OverCapacity::Queue && restarts == 0;
    let ahead = queue_place(g, config.priority());
    (queues && ahead > 0).then_some(Refusal::BehindQueue { ahead })
}

/// Where a stream of `priority` joins the queue: after every waiting stream of the same or
/// a higher priority.
fn queue_place(g: &Registry, priority: i32) -> usize {
    g.queued
        .iter()
        .position(|q| q.config.priority() < priority)
        .unwrap_or(g.queued.len())
}

/// The over-capacity policy for a config's kind of source.
pub(super) fn policy_for(core: &ManagerCore, config: &StreamConfig) -> OverCapacity {
    if config.is_network_source() {
        core.live_over_capacity
    } else {
        core.files_over_capacity
    }
}

/// Puts a stream in the queue (behind those of its priority or higher) and returns its
/// position; refuses it when it
/// could never run here (even alone) or the queue is full.
fn enqueue(core: &ManagerCore, g: &mut Registry, config: &StreamConfig) -> Result<usize, Refusal> {
    if let Err(short) = core.pool.fits_when_empty(&price_floor(config)) {
        // It would wait for ever: refuse it now.
        return Err(Refusal::Capacity(short));
    }
    if g.queued.len() >= core.max_queue {
        return Err(Refusal::QueueFull {
            limit: core.max_queue,
        });
    }
    let place = queue_place(g, config.priority());
    g.queued.insert(
        place,
        QueuedStream {
            config: config.clone(),
        },
    );
    Ok(place)
}

/// The admission path, for new streams and restarts alike: check and reserve under the
/// lock (or queue, when the policy says so), start without it.
pub(super) fn admit(
    core: &Arc<ManagerCore>,
    config: StreamConfig,
    restarts: u32,
) -> Result<Admitted, Error> {
    let id = config.id().to_owned();
    let config = match config.under_rules(core.local_root.as_deref(), core.deny_private) {
        Ok(config) => config,
        Err(why) => {
            let dir = core.local_root.clone().unwrap_or_default();
            log::warn!("stream {id}: refused: {why}");
            let reason = Refusal::LocalFilesOutside { dir };
            report(core, &id, Decision::Refused(&reason), restarts > 0, None);
            return Err(Error::Refused { reason });
        }
    };
    let policy = policy_for(core, &config);
    let reserved = {
        // Short: checks, a pool allocation (arithmetic), a map insert.
        let mut g = core.registry.lock();
        let lone_at_floor = !matches!(policy, OverCapacity::Degrade { .. });
        let attempt = match behind_queue(&g, &config, policy, restarts) {
            Some(wait) => check_admission(core, &g, &config).and(Err(wait)),
            None => reserve(core, &mut g, &config, lone_at_floor),
        };
        match attempt {
            Err(r) if policy == OverCapacity::Queue && restarts == 0 && waits(&r) => {
                match enqueue(core, &mut g, &config) {
                    Ok(position) => {
                        // Its place in its lane is kept in the same step: a start of it
                        // (on the admission thread) is told after this.
                        let slot = hold_locked(core, &mut g, &id);
                        drop(g);
                        report(core, &id, Decision::Queued(&r), false, slot);
                        return Ok(Admitted::Queued { position });
                    }
                    Err(refused) => Err(refused),
                }
            }
            Err(Refusal::Capacity(short)) if restarts == 0 => match policy {
                OverCapacity::Degrade {
                    min_rungs,
                    min_frame_rate,
                } => {
                    let fit = degraded(&config, min_rungs, min_frame_rate)
                        .into_iter()
                        .find_map(|(c, d)| {
                            let a = core.pool.try_allocate(price(&c)).ok()?;
                            Some((c, d, a))
                        });
                    match fit {
                        Some((c, d, allocation)) => {
                            let gen = g.reserve(&c);
                            drop(g);
                            log::info!("stream {id}: admitted degraded: {d:?}");
                            return start_degraded(core, c, d, gen, allocation);
                        }
                        None => Err(Refusal::Capacity(short)),
                    }
                }
                _ => Err(Refusal::Capacity(short)),
            },
            other => other,
        }
    };
    let (decision, slot) = match reserved {
        Err(reason) => (Err(Error::Refused { reason }), None),
        Ok((gen, allocation)) => start_reserved(core, config, gen, allocation, restarts),
    };
    report(core, &id, Decision::of_start(&decision), restarts > 0, slot);
    decision.map(|()| Admitted::Started)
}

/// Starts a degraded stream and reports what it left out.
fn start_degraded(
    core: &Arc<ManagerCore>,
    config: StreamConfig,
    degradation: Degradation,
    gen: u64,
    allocation: Allocation,
) -> Result<Admitted, Error> {
    let id = config.id().to_owned();
    let (started, slot) = start_reserved(core, config, gen, allocation, 0);
    if started.is_ok() {
        let event = AdmissionEvent {
            stream: id,
            admitted: true,
            queued: false,
            reason: None,
            degraded: Some(degradation),
            restart: false,
            at: std::time::SystemTime::now(),
        };
        tell(core, event, slot);
    } else {
        report(core, &id, Decision::of_start(&started), false, slot);
    }
    started.map(|()| Admitted::Started)
}

/// Starts the queued streams that fit now, in order; stops at the first that does not.
pub(super) fn start_queued(core: &Arc<ManagerCore>) {
    loop {
        let next = {
            // Short: checks, a pool allocation, queue and map edits.
            let mut g = core.registry.lock();
            let Some(q) = g.queued.pop_front() else {
                return;
            };
            match reserve(core, &mut g, &q.config, true) {
                Ok((gen, allocation)) => (q.config, gen, allocation),
                Err(r) if is_capacity(&r) => {
                    g.queued.push_front(q);
                    return;
                }
                Err(r) => {
                    drop(g);
                    let id = q.config.id().to_owned();
                    log::warn!("stream {id}: dropped from the queue: {r}");
                    report(core, &id, Decision::Refused(&r), false, None);
                    lanes::drop_later(core, &id, q);
                    continue;
                }
            }
        };
        let (config, gen, allocation) = next;
        let id = config.id().to_owned();
        let (started, slot) = start_reserved(core, config, gen, allocation, 0);
        if let Err(e) = &started {
            log::warn!("stream {id}: a queued stream could not start: {e}");
        }
        report(core, &id, Decision::of_start(&started), false, slot);
    }
}

/// Starts a stream whose id, directory and allocation are reserved, and enters it in the
/// registry (or drops the reservation). A stream that started has its admission event's
/// place kept in its lane (returned), taken before it enters the registry: whoever ends it
/// from there (a terminate, its reaping) hands its finished hooks to the lane after it.
fn start_reserved(
    core: &Arc<ManagerCore>,
    config: StreamConfig,
    gen: u64,
    allocation: Allocation,
    restarts: u32,
) -> (Result<(), Error>, Option<lanes::Slot>) {
    let id = config.id().to_owned();
    let share = core_share(core, &allocation);
    let started = Stream::new(config.clone().with_core_share(share))
        .with_hooks(core.hooks.clone())
        .with_hooks(config.attached_hooks().clone())
        .with_hooks(reaper_hook(core, &id, gen))
        .start();
    let stream = match started {
        Ok(stream) => stream,
        Err(e) => {
            // Short: drops the reservation.
            core.registry.lock().starting.remove(&id);
            core.changed.notify_all();
            return (Err(e.error), None);
        }
    };
    let slot = hold(core, &id);
    let entry = ManagedStream {
        gen,
        stream,
        allocation,
        config,
        restarts,
        repriced: false,
    };
    // Short: moves the reservation into the map (a shutdown waits for this).
    let late = core.registry.lock().enter(id.clone(), entry);
    core.changed.notify_all();
    match late {
        None => (Ok(()), slot),
        Some(entry) => {
            // Admitted before a shutdown that has already swept the map: end it here.
            log::warn!("stream {id}: started after the shutdown's sweep; stopped");
            let _ = super::retire(core, entry, Stream::abort);
            let refused = Err(Error::Refused {
                reason: Refusal::ShuttingDown,
            });
            (refused, slot)
        }
    }
}

/// Keeps a place for an admission event in the lane of stream `id` (when there are
/// admission hooks to tell).
fn hold(core: &Arc<ManagerCore>, id: &str) -> Option<lanes::Slot> {
    (!core.on_admission.is_empty()).then(|| lanes::Slot::keep(core, id))
}

/// [`hold`], under the registry lock (the caller holds it): in the same step as what the
/// event reports.
fn hold_locked(core: &Arc<ManagerCore>, g: &mut Registry, id: &str) -> Option<lanes::Slot> {
    (!core.on_admission.is_empty()).then(|| lanes::Slot::keep_locked(core, g, id))
}

/// The cores a new stream's encoders may use: the machine's cores in proportion to the
/// stream's part of what the pool holds now (all of them for a stream alone), at least one.
/// Streams sized their encoder threads as if each had the machine, which oversubscribes it
/// when many run; streams already running keep theirs (encoders are not rebuilt).
fn core_share(core: &ManagerCore, allocation: &Allocation) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mine = allocation.cost().compute;
    let held = core.pool.usage().used.compute.max(mine);
    if held <= 0.0 {
        return cores;
    }
    ((cores as f64 * mine / held).ceil() as usize).clamp(1, cores)
}

/// Tells the admission hooks, in the stream's lane (at the place `slot` kept, if any).
pub(super) fn report(
    core: &Arc<ManagerCore>,
    id: &str,
    decision: Decision<'_>,
    restart: bool,
    slot: Option<lanes::Slot>,
) {
    let (admitted, queued, reason) = match decision {
        Decision::Started => (true, false, None),
        Decision::Queued(r) => (false, true, Some(r.clone())),
        Decision::Refused(r) => (false, false, Some(r.clone())),
        Decision::NotStarted => (false, false, None),
    };
    let event = AdmissionEvent {
        stream: id.to_owned(),
        admitted,
        queued,
        reason,
        degraded: None,
        restart,
        at: std::time::SystemTime::now(),
    };
    tell(core, event, slot);
}

/// Counts the decision for the metrics (at once) and hands the event to the stream's lane
/// (at the place `slot` kept, or last), which calls every admission hook, each inside the
/// panic net: never on the caller's thread, after the stream's earlier events.
fn tell(core: &Arc<ManagerCore>, event: AdmissionEvent, slot: Option<lanes::Slot>) {
    core.admissions.count(&event);
    if core.on_admission.is_empty() {
        return;
    }
    let id = event.stream.clone();
    let job: lanes::Job = Box::new(move |core| {
        for h in &core.on_admission {
            guarded(
                format_args!("stream {}", event.stream),
                "admission hook",
                || {
                    h(&event);
                },
            );
        }
    });
    match slot {
        Some(slot) => slot.fill(job),
        None => lanes::submit(core, &id, job),
    }
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
