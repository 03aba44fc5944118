//! Low-Latency HLS parts of one rendition, as its segmenter cuts them: where the open part
//! began, when the next is due, and the part files that left the playlist, deleted once no
//! player can still be fetching them.

use std::collections::VecDeque;

use super::playlist::ListedPart;

/// One rendition's part state.
#[derive(Debug)]
pub(crate) struct PartCutter {
    /// `PART-TARGET`, seconds.
    target: f64,
    /// The number of the next part in the open segment.
    next: u32,
    /// The open part: its number, where it began (pts seconds), whether it starts with a
    /// keyframe.
    open: Option<(u32, f64, bool)>,
    /// Part files no longer listed: (when, media seconds; their names).
    unlisted: VecDeque<(f64, Vec<String>)>,
}

impl PartCutter {
    /// Parts of about `target` seconds.
    pub fn new(target: f64) -> Self {
        Self {
            target,
            next: 0,
            open: None,
            unlisted: VecDeque::new(),
        }
    }

    /// The part target, seconds.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// A part is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// A packet at `pts` seconds ends the open part first: it has its target duration (a
    /// millisecond of slack for timestamps that do not divide it).
    pub fn due(&self, pts: f64) -> bool {
        self.open
            .is_some_and(|(_, start, _)| pts - start >= self.target - 1e-3)
    }

    /// A part opens at `pts` (`independent`: on a keyframe); returns its number.
    pub fn start(&mut self, pts: f64, independent: bool) -> u32 {
        let n = self.next;
        self.next += 1;
        self.open = Some((n, pts, independent));
        n
    }

    /// The open part ends at `end` seconds: what the playlist lists of it.
    pub fn end(&mut self, end: f64) -> Option<ListedPart> {
        let (index, start, independent) = self.open.take()?;
        Some(ListedPart {
            index,
            duration: (end - start).max(0.0),
            independent,
        })
    }

    /// A new segment opens: its parts count from 0.
    pub fn new_segment(&mut self) {
        self.next = 0;
        self.open = None;
    }

    /// `names` left the playlist at media time `at`.
    pub fn unlisted(&mut self, at: f64, names: Vec<String>) {
        if !names.is_empty() {
            self.unlisted.push_back((at, names));
        }
    }

    /// The part files that left the playlist more than `keep` seconds before `now`.
    pub fn expired(&mut self, now: f64, keep: f64) -> Vec<String> {
        let mut gone = Vec::new();
        while self
            .unlisted
            .front()
            .is_some_and(|(at, _)| now - at >= keep)
        {
            gone.extend(
                self.unlisted
                    .pop_front()
                    .map(|(_, n)| n)
                    .unwrap_or_default(),
            );
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_cut_at_their_target_and_counted_per_segment() {
        let mut p = PartCutter::new(0.333);
        assert!(!p.due(5.0), "nothing open");
        assert_eq!(p.start(1.0, true), 0);
        assert!(!p.due(1.3) && p.due(1.333));
        let part = p.end(1.3333).unwrap();
        assert_eq!((part.index, part.independent), (0, true));
        assert!((part.duration - 0.3333).abs() < 1e-9);
        assert_eq!(p.start(1.3333, false), 1);
        p.new_segment();
        assert!(!p.is_open());
        assert_eq!(p.start(2.0, true), 0);
        p.unlisted(2.0, vec!["seg_00001.0.m4s".into()]);
        assert!(p.expired(2.5, 1.0).is_empty());
        assert_eq!(p.expired(3.0, 1.0), ["seg_00001.0.m4s"]);
    }
}
