//! A live stream's inputs when its source has backups: the active one is the decode
//! loop's session; every other one (each backup, and the primary while a backup plays) is
//! kept warm on a thread of its own (`sv-<id>-in-<n>`): connected, reconnected with the
//! recovery policy's backoff, its packets since the last video keyframe kept, nothing
//! decoded. The decode loop takes a warm input over when its active one is lost (the first
//! healthy one, in order of preference) or when the primary has been healthy again for
//! `switch_back_after`; the input it leaves goes warm in turn.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::control::{Signals, Supervisor};
use super::decode::DecodeLoop;
use super::session::{Session, SourceOpener};
use crate::config::{BackoffTimer, StreamConfig};
use crate::error::Error;
use crate::ffi::{Packet, Step};
use crate::output::Publisher;
use crate::redact::redact_url;
use crate::stats::InputCounters;
use std::sync::atomic::Ordering::Relaxed;

/// Packets a warm input keeps at most (a keyframe interval of a few seconds with audio).
const KEPT_PACKETS: usize = 2048;
/// How long a take-over after a loss waits for a warm input's thread to hand its session
/// over before it looks at the next input (the request stays: a late answer is kept).
const HANDOVER: Duration = Duration::from_millis(500);

/// What a warm input knows of itself, read by the decode loop.
#[derive(Debug, Default)]
struct Health {
    /// When the current connection's first keyframe was read (healthy since then, while
    /// packets keep coming).
    since: Option<Instant>,
    /// When its last packet was read.
    last: Option<Instant>,
}

/// A session handed over by a warm input's thread.
struct Handover {
    session: Session,
    packets: VecDeque<Packet>,
}

/// A warm input: its thread's health and the way to ask for its session.
struct Warm {
    health: Arc<Mutex<Health>>,
    take: Sender<Sender<Handover>>,
    /// Where its session comes once it was asked for it (it answers at its next packet
    /// that follows a kept keyframe; an answer after the asker gave up waiting is kept).
    asked: Option<Receiver<Handover>>,
    /// The thread's own signals, aborted when the input is dropped; `None` once its
    /// session was handed over (its interrupt is the session's from then on).
    signals: Option<Arc<Signals>>,
}

impl Drop for Warm {
    fn drop(&mut self) {
        if let Some(s) = &self.signals {
            s.request_abort();
        }
    }
}

/// Every input of a stream with backups.
pub(crate) struct Inputs<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    /// The configs that open each input (the primary's first).
    configs: Vec<StreamConfig>,
    signals: &'env Signals,
    /// No media for this long is the active input lost (when another is healthy).
    loss_after: Duration,
    switch_back_after: Duration,
    active: usize,
    warm: Vec<Option<Warm>>,
    /// A switch back the decode loop is making: the input it leaves and the primary's
    /// session, taken over while the input it leaves still played.
    switching_back: Option<(usize, Session)>,
    pub counters: Vec<Arc<InputCounters>>,
}

impl<'scope, 'env> Inputs<'scope, 'env> {
    /// The inputs of `config` (input `active` is open as the decode loop's session: the
    /// primary, or a backup when the primary was down at the start), every other one
    /// warmed up at once. `None` when the source has no backups.
    pub fn start(
        scope: &'scope Scope<'scope, 'env>,
        config: &StreamConfig,
        signals: &'env Signals,
        loss_after: Duration,
        active: usize,
    ) -> Result<Option<Self>, Error> {
        let backups = config.input().backups().len();
        if backups == 0 {
            return Ok(None);
        }
        let mut configs = vec![config.clone()];
        for i in 0..backups {
            configs.push(config.backup_config(i)?);
        }
        let counters = configs
            .iter()
            .map(|c| Arc::new(InputCounters::new(redact_url(c.source()).into_owned())))
            .collect();
        let mut inputs = Self {
            scope,
            configs,
            signals,
            loss_after,
            switch_back_after: config.switch_back_after(),
            active,
            warm: (0..=backups).map(|_| None).collect(),
            switching_back: None,
            counters,
        };
        inputs.counters[active].activate();
        for i in (0..=backups).filter(|&i| i != active) {
            inputs.warm_up(i)?;
        }
        Ok(Some(inputs))
    }

    /// The active input's index (0: the primary).
    pub fn active(&self) -> usize {
        self.active
    }

    /// The name of input `i` (its URL, redacted).
    pub fn name(&self, i: usize) -> &str {
        &self.counters[i].name
    }

    /// How long the active input may deliver nothing before it is lost: the loss delay
    /// (or `otherwise`, the read timeout, when shorter). The input goes warm then, and
    /// comes back when it is healthy again, if no other input took over meanwhile.
    pub fn read_timeout(&self, otherwise: Duration) -> Duration {
        self.loss_after.min(otherwise)
    }

    /// Asked at every packet while a backup plays: once the primary has been healthy for
    /// `switch_back_after`, asks its thread for its session, and true once it came (the
    /// decode loop ends the backup's session then, and [`switch_back`] goes on with the
    /// primary's). The backup plays on until then: a switch back never leaves the stream
    /// without an input, and the decode loop never waits for the handover.
    pub fn take_primary_when_due(&mut self) -> bool {
        if self.switching_back.is_some() {
            return true;
        }
        // Once asked, its answer is taken whenever it comes (its thread ends with it, so
        // its health stops moving).
        let due = self.asked(0)
            || self
                .healthy_for(0)
                .is_some_and(|d| d >= self.switch_back_after);
        if self.active == 0 || !due {
            return false;
        }
        let from = self.active;
        match self.take(0, Duration::ZERO) {
            Some(session) => {
                self.switching_back = Some((from, session));
                true
            }
            None => false,
        }
    }

    /// How long warm input `i` has been healthy (connected, a keyframe kept, a packet
    /// within the loss delay), if it is.
    fn healthy_for(&self, i: usize) -> Option<Duration> {
        let warm = self.warm.get(i)?.as_ref()?;
        let h = warm.health.lock();
        let fresh = h.last.is_some_and(|t| t.elapsed() <= self.loss_after);
        h.since.filter(|_| fresh).map(|s| s.elapsed())
    }

    /// Input `i`, active until now, was lost (or was left for the primary): it goes warm,
    /// reconnecting on its own thread (its session is closed first).
    pub fn leave(&mut self, i: usize, lost: bool) -> Result<(), Error> {
        self.counters[i].deactivate(lost);
        self.warm_up(i)
    }

    /// Takes over the first healthy warm input, its session with the packets it kept, and
    /// makes it the active one; `None` when none is healthy or none handed over in time.
    fn take_healthy(&mut self) -> Option<(usize, Session)> {
        // An input asked before may have answered since, healthy now or not.
        let candidates: Vec<usize> = (0..self.warm.len())
            .filter(|&i| self.asked(i) || self.healthy_for(i).is_some())
            .collect();
        candidates
            .into_iter()
            .find_map(|i| Some((i, self.take(i, HANDOVER)?)))
    }

    /// Warm input `i` was asked for its session and has not answered (or its answer waits).
    fn asked(&self, i: usize) -> bool {
        self.warm[i].as_ref().is_some_and(|w| w.asked.is_some())
    }

    /// Asks warm input `i` for its session (unless it was asked already) and waits up to
    /// `wait` for it: the input is the active one when it came. One that declined (no
    /// keyframe kept yet) is asked again next time; one whose thread ended is warmed up
    /// afresh.
    fn take(&mut self, i: usize, wait: Duration) -> Option<Session> {
        let warm = self.warm[i].as_mut()?;
        let handed = match &warm.asked {
            Some(handed) => handed.clone(),
            None => {
                let (reply, handed) = bounded(1);
                if warm.take.try_send(reply).is_err() {
                    // Its thread ended (or has yet to read the last request).
                    self.rewarm(i);
                    return None;
                }
                warm.asked = Some(handed.clone());
                handed
            }
        };
        match handed.recv_timeout(wait) {
            Ok(Handover {
                mut session,
                packets,
            }) => {
                let mut warm = self.warm[i].take()?;
                // Its interrupt is the session's now: not to be tripped on drop.
                warm.signals = None;
                session.catch_up_until = last_video_pts(&packets, session.video.index);
                session.pending = packets;
                self.active = i;
                self.counters[i].activate();
                Some(session)
            }
            Err(RecvTimeoutError::Timeout) => None, // asked: it answers at a later packet
            Err(RecvTimeoutError::Disconnected) => {
                warm.asked = None; // declined: asked again next time
                None
            }
        }
    }

    /// Aborts input `i`'s warm thread and starts a new one (one that cannot start leaves
    /// the input out until a later loss retries).
    fn rewarm(&mut self, i: usize) {
        self.warm[i] = None;
        let _ = self.warm_up(i);
    }

    /// True when some warm input is connected and has kept a keyframe, fresh or not (one
    /// that a moment's wait may make healthy).
    fn some_connected(&self) -> bool {
        self.warm
            .iter()
            .flatten()
            .any(|w| w.health.lock().since.is_some())
    }

    /// Starts input `i`'s warm thread.
    fn warm_up(&mut self, i: usize) -> Result<(), Error> {
        let config = self.configs[i].clone();
        let signals = self.signals.linked_input();
        let health = Arc::new(Mutex::new(Health::default()));
        let (take, requests) = bounded(1);
        let parent = self.signals;
        let body = WarmBody {
            config,
            signals: signals.clone(),
            health: health.clone(),
            requests,
            counters: self.counters[i].clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("sv-{}-in-{i}", self.configs[0].id()))
            .spawn_scoped(self.scope, move || body.run(parent));
        if let Err(e) = spawned {
            return Err(Error::Internal {
                message: format!("spawning an input's thread: {e}"),
            });
        }
        self.warm[i] = Some(Warm {
            health,
            take,
            asked: None,
            signals: Some(signals),
        });
        Ok(())
    }
}

impl Drop for Inputs<'_, '_> {
    fn drop(&mut self) {
        // Every warm thread is aborted (its reads cut): the scope joins them.
        self.warm.clear();
    }
}

/// The pts of the last video packet among `packets`.
fn last_video_pts(packets: &VecDeque<Packet>, video: usize) -> Option<i64> {
    let video = video as i32;
    let last = packets.iter().rev().find(|p| p.stream_index() == video)?;
    Some(last.pts())
}

/// A warm input's thread.
struct WarmBody {
    config: StreamConfig,
    signals: Arc<Signals>,
    health: Arc<Mutex<Health>>,
    requests: Receiver<Sender<Handover>>,
    counters: Arc<InputCounters>,
}

impl WarmBody {
    fn quit(&self, parent: &Signals) -> bool {
        self.signals.abort_requested() || parent.stop_requested() || parent.abort_requested()
    }

    /// Connects, reads and keeps packets, reconnecting with the policy's backoff, until
    /// the session is taken, the input is dropped, or the stream stops.
    fn run(self, parent: &Signals) {
        let mut timer = BackoffTimer::new(self.config.recovery().backoff, self.config.id());
        let mut attempt = 0;
        while !self.quit(parent) {
            match SourceOpener::new(&self.config, &self.signals).open() {
                Ok(session) => {
                    attempt = 0;
                    if self.keep_warm(session, parent) {
                        return; // handed over
                    }
                }
                Err(e) => {
                    log::debug!(
                        "stream {}: backup input {}: {e}",
                        self.config.id(),
                        redact_url(self.config.source())
                    );
                }
            }
            *self.health.lock() = Health::default();
            self.counters.ready.store(false, Relaxed);
            attempt += 1;
            if self.signals.sleep_unless_stopped(timer.wait(attempt)) {
                return;
            }
        }
    }

    /// Reads `session` keeping the packets since the last video keyframe; true when it
    /// was handed over, false when it failed (or the stream stops).
    fn keep_warm(&self, mut session: Session, parent: &Signals) -> bool {
        let video = session.video.index as i32;
        let read_timeout = session.read_timeout(&self.config);
        let mut kept: VecDeque<Packet> = VecDeque::new();
        let mut pkt = Packet::new();
        loop {
            if self.quit(parent) {
                return false;
            }
            if let Ok(reply) = self.requests.try_recv() {
                if kept
                    .front()
                    .is_some_and(|p| p.stream_index() == video && p.is_key())
                {
                    let packets = std::mem::take(&mut kept);
                    self.counters.ready.store(false, Relaxed);
                    return reply.send(Handover { session, packets }).is_ok();
                }
            }
            session.interrupt.arm(read_timeout);
            let r = session.input.read(&mut pkt);
            session.interrupt.disarm();
            match r {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Ok(Step::Eof) | Err(_) => return false,
            }
            let now = Instant::now();
            let key = pkt.stream_index() == video && pkt.is_key();
            if key {
                kept.clear();
            }
            if kept.len() >= KEPT_PACKETS {
                kept.pop_front();
            }
            kept.push_back(std::mem::take(&mut pkt));
            let mut h = self.health.lock();
            h.last = Some(now);
            if key && h.since.is_none() {
                h.since = Some(now);
                self.counters.ready.store(true, Relaxed);
            }
        }
    }
}

/// Ends a switch back the decode loop made ([`Inputs::take_primary_when_due`]): the
/// primary's session, taken over while the backup played; the backup goes warm.
pub(crate) fn switch_back(inputs: &mut Inputs, publisher: &Publisher) -> Result<Session, Error> {
    let Some((from, next)) = inputs.switching_back.take() else {
        return Err(Error::Internal {
            message: "a switch back without the primary's session".to_owned(),
        });
    };
    inputs.leave(from, false)?;
    let names = (inputs.name(from), inputs.name(0));
    publisher.input_switched(names, from, 0, "the primary is back");
    Ok(next)
}

/// Moves a stream with backups whose active input was `lost` to the first healthy input,
/// waiting for one up to the recovery policy's longest outage (in `Error` once none is
/// connected, or none took over within the loss delay). `None` when a stop came first.
pub(crate) fn failover(
    decode: &DecodeLoop,
    inputs: &mut Inputs,
    supervisor: &mut dyn Supervisor,
    lost: Error,
    publisher: &Publisher,
) -> Result<Option<Session>, Error> {
    let signals = decode.signals();
    let from = inputs.active();
    inputs.leave(from, true)?;
    let why = lost.to_string();
    let started = std::time::Instant::now();
    let deadline = started + decode.max_outage();
    let mut told = false;
    loop {
        if signals.abort_requested() {
            return Err(Error::aborted());
        }
        if signals.stop_requested() {
            return Ok(None);
        }
        if let Some((to, next)) = inputs.take_healthy() {
            log::warn!(
                "stream {}: input {from} lost ({why}); input {to} takes over",
                decode.id()
            );
            publisher.input_switched((inputs.name(from), inputs.name(to)), from, to, &why);
            return Ok(Some(next));
        }
        // A connected input may only be late (a loaded machine, a source's burst): the
        // stream is down once none is connected, or none took over within the loss delay.
        if !told && (!inputs.some_connected() || started.elapsed() >= inputs.loss_after) {
            supervisor.input_lost(lost.clone());
            told = true;
        }
        if std::time::Instant::now() >= deadline {
            return Err(lost); // every input gone past the longest outage
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
