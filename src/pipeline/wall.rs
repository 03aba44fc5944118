//! The live output's timeline on the wall clock, for the live clock: when each output pts
//! is due, its program date-time, and when the output has fallen behind.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::clock::secs;

/// The most the first frame's read time anchors the timeline before it goes out (what a
/// probe reads ahead at most; a longer lag is not caught up).
const MAX_LAG: Duration = Duration::from_secs(3);
/// How long the start settles (the probe's backlog caught up, the anchor corrected).
const SETTLE: Duration = Duration::from_secs(3);

/// The output's timeline on the wall clock: the run's first frame went out at `at` (and
/// its packet was read at `read_at`); every later output pts is due the media time after it.
/// Real frames that have been late for a whole window mean the output's media time falls
/// behind the wall clock (a source slower than real time): one frame is repeated, one per
/// second at most. The window filters the jitter of live delivery.
#[derive(Debug)]
pub(crate) struct WallClock {
    threshold: Duration,
    anchor: Option<(i64, Instant, SystemTime)>,
    /// (when, seconds a frame came after its time).
    late: VecDeque<(Instant, f64)>,
    last_fix: Option<Instant>,
    /// While the start settles: when it ends, and the least any frame was late in its
    /// last second (seconds).
    settle: Option<(Instant, f64)>,
}

impl WallClock {
    const WINDOW: Duration = Duration::from_secs(2);
    const MIN_GAP: Duration = Duration::from_secs(1);

    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            anchor: None,
            late: VecDeque::new(),
            last_fix: None,
            settle: None,
        }
    }

    /// The run's first frame, output at `out`, goes out now; its packet was read at
    /// `read_at`. The timeline is anchored on when it was read (by up to [`MAX_LAG`]), not
    /// on now: the packets the probe read ahead before the first frame came out are due
    /// already and go out at once, so the output catches up with the source instead of
    /// keeping the probe's time as latency for good. The read time is an estimate (early
    /// by the source's own start-up): the start settles for [`SETTLE`], then the anchor
    /// moves on by what every frame of its last second was still late.
    pub fn start(&mut self, out: i64, read_at: SystemTime) {
        if self.anchor.is_some() {
            return;
        }
        let now = Instant::now();
        let lag = SystemTime::now()
            .duration_since(read_at)
            .unwrap_or_default()
            .min(MAX_LAG);
        let at = now.checked_sub(lag).unwrap_or(now);
        self.anchor = Some((out, at, read_at));
        self.settle = Some((now + SETTLE, f64::INFINITY));
    }

    /// A real frame for output `out` goes out `now`: true while the start settles (the
    /// output catching up: neither a gap in delivery nor a slow source can be told then).
    pub fn settling(&mut self, out: i64, now: Instant, tb: f64) -> bool {
        let late = now
            .saturating_duration_since(self.due(out, tb))
            .as_secs_f64();
        let Some((ends, least)) = self.settle.as_mut() else {
            return false;
        };
        if now < *ends {
            if now + Duration::from_secs(1) >= *ends {
                *least = least.min(late);
            }
            return true;
        }
        let least = *least;
        self.settle = None;
        if let Some((_, at, _)) = self.anchor.as_mut().filter(|_| least.is_finite()) {
            *at += secs(least);
        }
        false
    }

    /// When output `pts` is due (time base `tb` seconds).
    pub fn due(&self, pts: i64, tb: f64) -> Instant {
        match self.anchor {
            Some((out, at, _)) => at + secs((pts - out) as f64 * tb),
            None => Instant::now(),
        }
    }

    /// The wall-clock time of output `pts`: its program date-time.
    pub fn program_date_time(&self, pts: i64, tb: f64) -> SystemTime {
        match self.anchor {
            Some((out, _, read_at)) => read_at + secs((pts - out) as f64 * tb),
            None => SystemTime::now(),
        }
    }

    /// A real frame for output `out` goes out `now`: true when the output has been behind
    /// the wall clock by more than the threshold for the whole window (repeat one frame).
    pub fn behind(&mut self, out: i64, now: Instant, tb: f64) -> bool {
        let late = now
            .saturating_duration_since(self.due(out, tb))
            .as_secs_f64();
        self.late.push_back((now, late));
        while self
            .late
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Self::WINDOW)
        {
            self.late.pop_front();
        }
        let spans = self
            .late
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Self::WINDOW.mul_f64(0.9));
        let resting = self
            .last_fix
            .is_some_and(|t| now.duration_since(t) < Self::MIN_GAP);
        let threshold = self.threshold.as_secs_f64();
        let behind = spans && !resting && self.late.iter().all(|(_, l)| *l > threshold);
        if behind {
            self.last_fix = Some(now);
        }
        behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_behind_the_wall_clock_for_a_window_gets_one_repeat_per_second() {
        let tb = 1.0 / 90_000.0;
        let mut wall = WallClock::new(Duration::from_millis(100));
        wall.start(0, SystemTime::now());
        let t0 = wall.due(0, tb);
        // A source 10 % slow: 30 frames of media every 1.1 s of wall time.
        let repeats: Vec<i64> = (0..300i64)
            .filter(|n| {
                let now = t0 + Duration::from_secs_f64(*n as f64 * 1.1 / 30.0);
                wall.behind(n * 3000, now, tb)
            })
            .collect();
        assert!(repeats.len() >= 5, "behind by 1 s after 10 s: {repeats:?}");
        let gaps = repeats.windows(2).map(|w| w[1] - w[0]);
        assert!(
            gaps.clone().all(|g| g >= 27),
            "one per second at most: {repeats:?}"
        );
        // On time, with the jitter of live delivery: nothing to fix.
        let mut wall = WallClock::new(Duration::from_millis(100));
        wall.start(0, SystemTime::now());
        let t0 = wall.due(0, tb);
        for n in 0..300i64 {
            let jitter = if n % 7 == 0 { 0.3 } else { 0.01 };
            let now = t0 + Duration::from_secs_f64(n as f64 / 30.0 + jitter);
            assert!(!wall.behind(n * 3000, now, tb), "frame {n}");
        }
        // The program date-time follows the output's media time.
        let pdt = wall.program_date_time(90_000, tb);
        let first = wall.program_date_time(0, tb);
        assert_eq!(pdt.duration_since(first).unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn the_start_catches_up_the_probe_then_settles_on_the_sources_pace() {
        let tb = 1.0 / 90_000.0;
        let mut wall = WallClock::new(Duration::from_millis(100));
        // The first frame was read (by the estimate) 0.8 s ago: the probe's backlog.
        wall.start(0, SystemTime::now() - Duration::from_millis(800));
        let t0 = Instant::now();
        assert!(
            wall.due(0, tb) + Duration::from_millis(700) <= t0,
            "anchored when read"
        );
        // The backlog goes out at once (due already), then frames come at the source's
        // pace, each 0.3 s after its estimated time (the estimate was early).
        let late = Duration::from_millis(300);
        let mut n = 1;
        loop {
            let now = wall.due(n * 3000, tb).max(t0) + late;
            if now >= t0 + SETTLE {
                break;
            }
            assert!(wall.settling(n * 3000, now, tb), "frame {n} settles");
            n += 1;
        }
        // Settled: the anchor moved on by what was still late; frames are on time.
        let next = wall.due(n * 3000, tb) + late;
        assert!(!wall.settling(n * 3000, next, tb));
        let after = next.saturating_duration_since(wall.due(n * 3000, tb));
        assert!(
            after < Duration::from_millis(20),
            "late {after:?} once settled"
        );
        assert!(!wall.behind((n + 1) * 3000, wall.due((n + 1) * 3000, tb), tb));
    }
}
