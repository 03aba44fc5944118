//! Each live segment's program date-time, from the wall-clock marks its rendition thread
//! is given (when a frame's packet was read, or the live clock's time of a frame).

use std::time::SystemTime;

use super::Segmenter;

impl Segmenter {
    /// Notes that the frame at `pts` seconds (on this rendition's timeline) was read from
    /// the source at `wall`: the clock a segment's `#EXT-X-PROGRAM-DATE-TIME` is read from
    /// (the latest mark at or before its start, plus the media time between).
    pub fn mark_capture(&mut self, pts: f64, wall: SystemTime) {
        if self.clock_marks.len() >= 64 {
            self.clock_marks.pop_front();
        }
        self.clock_marks.push_back((pts, wall));
    }

    /// The wall-clock time of the media at `start` seconds, from the marks; marks before the
    /// one used are done with.
    pub(super) fn program_date_time(&mut self, start: f64) -> Option<SystemTime> {
        let at = self
            .clock_marks
            .iter()
            .rposition(|&(p, _)| p <= start + 5e-4);
        let (pts, wall) = match at {
            Some(i) => {
                self.clock_marks.drain(..i);
                *self.clock_marks.front()?
            }
            None => *self.clock_marks.front()?,
        };
        let offset = std::time::Duration::from_secs_f64((start - pts).abs());
        if start >= pts {
            wall.checked_add(offset)
        } else {
            wall.checked_sub(offset)
        }
    }
}
