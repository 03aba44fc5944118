//! The stream's one output timeline: source timestamps in, monotonic output timestamps and
//! segment-boundary keyframes out. One decision per frame, made once, here, so every
//! variant places its keyframes on the same timestamps.
//!
//! Policy:
//! - The output time base is the first source's video time base.
//! - A frame whose timestamp does not move past the last one (the source went backwards,
//!   or restarted) continues right after the last frame; the difference becomes an offset
//!   applied to every later frame and to the audio.
//! - A frame whose timestamp jumps forward by more than the threshold (10 s by default,
//!   `AbrProfile::timestamp_jump`; a splice, an
//!   encoder restart, concatenated files, or a backward jump the demuxer took for a 33-bit
//!   wrap) also continues right after the last frame: the jump is absorbed into the offset,
//!   which the audio follows, so A/V stay in sync. A smaller gap stays a gap (a live
//!   source that lost a few seconds keeps real time).
//! - A frame without a timestamp gets the last one plus one frame interval.
//! - After [`Timeline::restart`] (a reconnect), the next frame continues right after the
//!   last one whatever its timestamp. The output stays one continuous timeline (the
//!   encoders never stop), so a reconnect needs no discontinuity and cuts no segment.
//! - Boundaries sit every segment duration from the first frame; the first frame at or
//!   past one is a keyframe.

use std::time::Duration;

use crate::ffi::{rescale, Rational, NO_PTS};

/// Where one frame lands on the output timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Output pts, in the timeline's time base.
    pub pts: i64,
    /// The frame starts a segment: a keyframe in every variant.
    pub starts_segment: bool,
    /// The frame timestamp went backwards, or jumped forward past the threshold, and was
    /// put right after the last frame.
    pub repaired: bool,
    /// Media time covered up to the end of this frame, microseconds.
    pub media_us: u64,
}

/// Segment boundaries every segment duration from the first frame: the first frame at or
/// past one starts a segment (a keyframe in every rung).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentGrid {
    segment_ticks: i64,
    next_boundary: Option<i64>,
}

impl SegmentGrid {
    /// A grid of `segment_ticks` (at least one tick).
    pub fn new(segment_ticks: i64) -> Self {
        Self {
            segment_ticks: segment_ticks.max(1),
            next_boundary: None,
        }
    }

    /// Whether the frame at `pts` (frames in increasing order) starts a segment.
    pub fn starts(&mut self, pts: i64) -> bool {
        let seg = self.segment_ticks;
        match self.next_boundary {
            None => {
                self.next_boundary = Some(pts + seg);
                true
            }
            Some(boundary) if pts >= boundary => {
                let base = boundary - seg;
                self.next_boundary = Some(base + ((pts - base) / seg + 1) * seg);
                true
            }
            Some(_) => false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Timeline {
    time_base: Rational,
    grid: SegmentGrid,
    frame_ticks: i64,
    jump_ticks: i64,
    /// Added to the current source's (rescaled) timestamps to continue the timeline.
    offset: i64,
    /// The next frame starts a new piece of timeline (after a restart).
    restart_pending: bool,
    first_pts: Option<i64>,
    last_pts: Option<i64>,
}

impl Timeline {
    /// A timeline in `time_base`, cut every `segment`, for frames about `1/frame_rate` apart;
    /// forward jumps beyond `jump` are absorbed.
    pub fn new(time_base: Rational, segment: Duration, frame_rate: f64, jump: Duration) -> Self {
        let us = Rational::new(1, 1_000_000);
        let frame_us = (1e6 / frame_rate.max(1.0)).round() as i64;
        Self {
            time_base,
            grid: SegmentGrid::new(rescale(segment.as_micros() as i64, us, time_base)),
            frame_ticks: rescale(frame_us, us, time_base).max(1),
            jump_ticks: rescale(jump.as_micros() as i64, us, time_base).max(1),
            offset: 0,
            restart_pending: false,
            first_pts: None,
            last_pts: None,
        }
    }

    /// The timing a live clock works in: this timeline's time base, frame interval and
    /// segment length.
    pub fn clock_timing(&self) -> super::clock::ClockTiming {
        super::clock::ClockTiming {
            time_base: self.time_base,
            frame_ticks: self.frame_ticks,
            segment_ticks: self.grid.segment_ticks,
        }
    }

    /// The source restarted: the next frame continues right after the last one.
    pub fn restart(&mut self) {
        self.restart_pending = true;
    }

    /// Seconds to add to the current source's audio timestamps to place them on this
    /// timeline; `None` right after a restart, until the next video frame sets the offset.
    pub fn audio_offset(&self) -> Option<f64> {
        (!self.restart_pending).then(|| self.offset as f64 * self.time_base.as_f64())
    }

    /// Where the next frame would start, seconds (after the last frame); `None` before the
    /// first frame.
    pub fn next_frame_time(&self) -> Option<f64> {
        self.last_pts
            .map(|last| (last + self.frame_ticks) as f64 * self.time_base.as_f64())
    }

    /// Places a frame whose source timestamp is `raw` (in `source_tb`, or [`NO_PTS`]).
    pub fn stamp(&mut self, raw: i64, source_tb: Rational) -> Stamp {
        let mut pts = if raw == NO_PTS {
            self.last_pts.map_or(0, |p| p + self.frame_ticks)
        } else {
            rescale(raw, source_tb, self.time_base) + self.offset
        };
        let mut repaired = false;
        if let Some(last) = self.last_pts {
            let jumped = pts.saturating_sub(last) > self.jump_ticks;
            if self.restart_pending || pts <= last || jumped {
                let next = last + self.frame_ticks;
                self.offset += next - pts;
                pts = next;
                repaired = !self.restart_pending;
            }
        }
        self.restart_pending = false;
        self.last_pts = Some(pts);
        let first = *self.first_pts.get_or_insert(pts);
        let starts_segment = self.grid.starts(pts);
        let media = rescale(
            pts - first + self.frame_ticks,
            self.time_base,
            Rational::new(1, 1_000_000),
        );
        Stamp {
            pts,
            starts_segment,
            repaired,
            media_us: media.max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: Rational = Rational::new(1, 90_000);

    fn timeline() -> Timeline {
        // 30 fps (3000 ticks), 2 s segments (180 000 ticks).
        Timeline::new(TB, Duration::from_secs(2), 30.0, Duration::from_secs(10))
    }

    #[test]
    fn boundaries_fall_every_segment_from_the_first_frame() {
        let mut t = timeline();
        let keys: Vec<i64> = (0..200)
            .map(|i| t.stamp(1000 + i * 3000, TB))
            .filter(|s| s.starts_segment)
            .map(|s| s.pts)
            .collect();
        assert_eq!(keys, [1000, 181_000, 361_000, 541_000]);
        assert_eq!(
            t.stamp(1000 + 200 * 3000, TB).media_us,
            201 * 1_000_000 / 30
        );
    }

    #[test]
    fn timestamps_that_go_backwards_continue_after_the_last_frame() {
        let mut t = timeline();
        let a = t.stamp(900_000, TB);
        let b = t.stamp(0, TB);
        assert_eq!(b.pts, a.pts + 3000);
        assert!(b.repaired);
        // The offset sticks: later frames keep their spacing.
        assert_eq!(t.stamp(3000, TB).pts, a.pts + 6000);
        assert_eq!(t.audio_offset(), Some(903_000.0 / 90_000.0));
    }

    #[test]
    fn a_restart_continues_the_timeline_on_the_same_segment_grid() {
        let mut t = timeline();
        t.stamp(0, TB);
        t.stamp(3000, TB);
        t.restart();
        assert_eq!(t.audio_offset(), None, "unknown until the next video frame");
        assert_eq!(t.next_frame_time(), Some(6000.0 / 90_000.0));
        // Whatever the new connection's timestamps (ahead, behind, close), the next frame
        // follows the last one and cuts no segment.
        let s = t.stamp(5_000_000, TB);
        assert_eq!((s.pts, s.starts_segment, s.repaired), (6000, false, false));
        assert_eq!(t.stamp(5_003_000, TB).pts, 9000);
        t.restart();
        assert_eq!(t.stamp(6000, TB).pts, 12_000);
        // The grid goes on: the next boundary is 2 s after the first frame.
        let keys: Vec<i64> = (1..=60)
            .map(|i| t.stamp(6000 + i * 3000, TB))
            .filter(|s| s.starts_segment)
            .map(|s| s.pts)
            .collect();
        assert_eq!(keys, [180_000]);
    }

    #[test]
    fn forward_jumps_past_the_threshold_are_absorbed_and_gaps_below_it_stay() {
        let mut t = timeline();
        t.stamp(0, TB);
        // 100 s ahead (a splice), then the wrap-sized jump a demuxer makes of a backward one.
        for jump in [100 * 90_000, (1i64 << 33) - 100 * 90_000] {
            let last = t.stamp(NO_PTS, TB).pts;
            let s = t.stamp(last + jump, TB);
            assert_eq!((s.pts, s.repaired), (last + 3000, true), "jump {jump}");
            // The new piece keeps its own spacing after the jump.
            assert_eq!(t.stamp(last + jump + 3000, TB).pts, last + 6000);
        }
        // A 5 s gap (below the threshold) stays a gap.
        let last = t.stamp(NO_PTS, TB).pts;
        let s = t.stamp(last + 5 * 90_000 - t.offset, TB);
        assert_eq!((s.pts, s.repaired), (last + 5 * 90_000, false));
    }

    #[test]
    fn missing_timestamps_get_one_frame_more_than_the_last() {
        let mut t = timeline();
        assert_eq!(t.stamp(NO_PTS, TB).pts, 0);
        assert_eq!(t.stamp(NO_PTS, TB).pts, 3000);
        assert_eq!(t.stamp(9000, TB).pts, 9000);
    }

    #[test]
    fn other_source_time_bases_are_rescaled() {
        let mut t = timeline();
        let ms = Rational::new(1, 1000);
        assert_eq!(t.stamp(1000, ms).pts, 90_000);
    }
}
