//! The manager's monitor thread (`sv-manager`): reaps streams that ended by themselves,
//! reports stalls to streams that make no progress, and measures live streams' speed. It
//! never waits on a stream and never runs a user hook: each reaped stream is retired (its
//! threads joined, its allocation released) on its own short-lived thread (`sv-reap-<id>`),
//! its finished hooks then run in its lane (`lanes`); restarts and queued starts are the
//! admission thread's (`admitter`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver};

use super::{admitter, retire::retire, ManagerCore};
use crate::state::StreamState;
use crate::stream::{Stream, TrackedThread};

/// What the monitor is told: a stream reached a terminal state, or its source is open and
/// its ladder planned.
pub(super) enum MonitorMsg {
    Ended { id: String, gen: u64 },
    Planned { id: String, gen: u64 },
}

/// The monitor loop, until `quit` is dropped.
pub(super) fn run(
    core: &Arc<ManagerCore>,
    inbox: &Receiver<MonitorMsg>,
    quit: &Receiver<()>,
    interval: Duration,
) {
    let ticker = tick(interval);
    let mut progress: HashMap<(String, u64), (u64, Instant)> = HashMap::new();
    let mut speeds = SpeedWindows::default();
    loop {
        select! {
            recv(inbox) -> msg => match msg {
                Ok(MonitorMsg::Ended { id, gen }) => reap(core, &id, gen),
                Ok(MonitorMsg::Planned { id, gen }) => {
                    // Short: a lookup and pool arithmetic (registry, then pool: the one order).
                    let mut g = core.registry.lock();
                    if let Some(e) = g.map.get_mut(&id).filter(|e| e.gen == gen) {
                        e.reprice_from_plan();
                    }
                }
                Err(_) => return,
            },
            recv(ticker) -> _ => scan(core, &mut progress, &mut speeds),
            recv(quit) -> _ => return,
        }
    }
}

/// Takes a stream that ended by itself out of the registry (if it is still the same
/// generation) and retires it on a thread of its own.
fn reap(core: &Arc<ManagerCore>, id: &str, gen: u64) {
    let entry = {
        // Short: a lookup, a state read (its own short lock), a move to `stopping`.
        let mut g = core.registry.lock();
        let ended = g
            .map
            .get(id)
            .is_some_and(|e| e.gen == gen && e.stream.state().is_terminal());
        if ended {
            g.take(id)
        } else {
            None
        }
    };
    let Some(entry) = entry else { return };
    core.changed.notify_all();
    let (config, restarts) = (entry.config.clone(), entry.restarts);
    let core2 = core.clone();
    let spawned = TrackedThread::spawn(format!("sv-reap-{id}"), move || {
        // The stream's hook thread is joined (bounded) like its worker.
        let report = retire(&core2, entry, Stream::wait);
        if report.state == StreamState::Failed {
            admitter::schedule_restart(&core2, config, restarts);
        } else {
            super::lanes::drop_later(&core2, &report.id, config);
        }
    });
    match spawned {
        // Short: one push (a shutdown names a reaper still busy at its bound).
        Ok(t) => core
            .registry
            .lock()
            .watch_reaper(t.name().to_owned(), t.exit()),
        Err(e) => {
            // The entry moved into the closure and was dropped with it: its stream was
            // aborted and its allocation released; only the bookkeeping is left to undo.
            log::error!("stream {id}: spawning a reaper thread: {e}");
            core.registry.lock().release(id, gen);
            core.retired_one();
        }
    }
}

/// Periodic pass: reap anything the reap queue missed, and report stalls to streams that
/// are `Running` but have decoded nothing for the stall timeout.
fn scan(
    core: &Arc<ManagerCore>,
    progress: &mut HashMap<(String, u64), (u64, Instant)>,
    speeds: &mut SpeedWindows,
) {
    let now = Instant::now();
    let mut ended = Vec::new();
    {
        // Short: reads of atomics and state per stream, pool arithmetic; no waits, no hooks.
        let mut g = core.registry.lock();
        progress.retain(|(id, gen), _| g.map.get(id).is_some_and(|e| e.gen == *gen));
        speeds
            .0
            .retain(|(id, gen), _| g.map.get(id).is_some_and(|e| e.gen == *gen));
        let mut lagging: Option<(String, f64)> = None;
        for (id, e) in &mut g.map {
            e.reprice_from_plan();
            let state = e.stream.state();
            if state.is_terminal() {
                ended.push((id.clone(), e.gen));
                continue;
            }
            if e.config.is_network_source() {
                let key = (id.clone(), e.gen);
                let running = state == StreamState::Running;
                let media_us = e.stream.media_us();
                let speed = speeds.observe(key, now, media_us, core.realtime_window, running);
                if let Some(speed) = speed.filter(|&s| s < REAL_TIME) {
                    if lagging.as_ref().is_none_or(|(_, s)| speed < *s) {
                        lagging = Some((id.clone(), speed));
                    }
                }
            }
            let Some(limit) = core.stall_timeout else {
                continue;
            };
            let frames = e.stream.frames_in();
            let p = progress.entry((id.clone(), e.gen)).or_insert((frames, now));
            if frames != p.0 || state != StreamState::Running {
                *p = (frames, now);
            } else if now.duration_since(p.1) >= limit {
                log::warn!("stream {id}: no progress for {limit:?}; reporting a stall");
                e.stream.report_stall();
                *p = (frames, now);
            }
        }
        if lagging != g.lagging_live && lagging.is_some() {
            log::warn!("live streams fall behind real time: {lagging:?}; no new live work");
        }
        g.lagging_live = lagging;
    }
    for (id, gen) in ended {
        reap(core, &id, gen);
    }
}

/// Below this speed a live stream is behind real time (a little slack for the jitter of
/// a live source's delivery).
const REAL_TIME: f64 = 0.95;

/// Recent (wall time, media time) samples of each running live stream.
#[derive(Default)]
struct SpeedWindows(HashMap<(String, u64), std::collections::VecDeque<(Instant, u64)>>);

impl SpeedWindows {
    /// Adds a sample of a stream that is `running`; the speed (media time per wall time)
    /// over the window once the samples span most of it. A stream that is not running (an
    /// outage, a reconnect) is not slow, it is down: its samples are dropped, and it is
    /// measured afresh once it runs again.
    fn observe(
        &mut self,
        key: (String, u64),
        now: Instant,
        media_us: u64,
        window: Duration,
        running: bool,
    ) -> Option<f64> {
        if !running {
            self.0.remove(&key);
            return None;
        }
        let samples = self.0.entry(key).or_default();
        samples.push_back((now, media_us));
        while samples.len() > 2 && now.duration_since(samples[1].0) >= window {
            samples.pop_front();
        }
        let (t0, m0) = *samples.front()?;
        let wall = now.duration_since(t0);
        if wall < window.mul_f64(0.8) {
            return None;
        }
        Some(media_us.saturating_sub(m0) as f64 / 1e6 / wall.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_is_not_taken_for_running_below_real_time() {
        let mut w = SpeedWindows::default();
        let window = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut observe = |ms: u64, media_ms: u64, running: bool| {
            let at = t0 + Duration::from_millis(ms);
            w.observe(("live".into(), 1), at, media_ms * 1000, window, running)
        };
        // 3 s at real time.
        let mut speed = None;
        for ms in (0..=3000).step_by(250) {
            speed = observe(ms, ms, true);
        }
        assert!((speed.unwrap() - 1.0).abs() < 1e-9, "{speed:?}");
        // A 2 s outage: the media stands still, the stream is not running.
        for ms in (3250..5000).step_by(250) {
            assert_eq!(observe(ms, 3000, false), None);
        }
        // Back at real time: measured afresh, never below real time for the outage.
        for ms in (5000..=8000).step_by(250) {
            let speed = observe(ms, 3000 + (ms - 5000), true);
            if ms < 5000 + 1600 {
                assert_eq!(speed, None, "at {ms} ms: not a full window yet");
            } else {
                assert!(
                    speed.is_some_and(|s| s >= REAL_TIME),
                    "at {ms} ms: {speed:?}"
                );
            }
        }
    }
}
