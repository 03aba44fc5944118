//! Low-Latency HLS parts of one rendition, as its segmenter cuts them: where the open part
//! began, when the next is due, and the part files that left the playlist, deleted once no
//! player can still be fetching them.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::Segmenter;
use crate::output::dash::OpenedSegment;
use crate::output::naming::{part_name, MEDIA_PLAYLIST};
use crate::output::playlist::ListedPart;
use crate::output::OutputError;

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
    /// A segment began and the DASH manifest has not been told yet.
    opened: Option<OpenedSegment>,
}

impl PartCutter {
    /// Parts of about `target` seconds.
    pub fn new(target: f64) -> Self {
        Self {
            target,
            next: 0,
            open: None,
            unlisted: VecDeque::new(),
            opened: None,
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

/// The segmenter's side of the parts: where they start and end, as packets come.
impl Segmenter {
    /// The open segment's first packet (at `pts`) came: with parts, the playlist lists the
    /// segment being written, and its first part opens.
    pub(super) fn segment_started(
        &mut self,
        pts: f64,
        independent: bool,
    ) -> Result<(), OutputError> {
        if self.parts.is_none() {
            return Ok(());
        }
        let (file, init, discontinuity) = (self.next_file, self.init, self.open_discontinuity);
        self.playlist.open_segment(file, init, discontinuity);
        if let Some(p) = self.parts.as_mut() {
            p.opened = Some(OpenedSegment {
                file,
                start: pts,
                init,
            });
        }
        self.start_part(pts, independent)
    }

    /// The segment begun since the last call, if any (with parts: a low-latency DASH
    /// manifest lists it while it is written).
    pub fn take_opened(&mut self) -> Option<OpenedSegment> {
        self.parts.as_mut().and_then(|p| p.opened.take())
    }

    /// A packet at `pts` (a keyframe: `independent`) is about to be written into the open
    /// segment: the open part ends first when it is due, and a part opens when none is.
    pub(super) fn part_boundary(&mut self, pts: f64, independent: bool) -> Result<(), OutputError> {
        let Some(p) = &self.parts else {
            return Ok(());
        };
        if p.due(pts) {
            self.end_part(pts, true)?;
        }
        if self.parts.as_ref().is_some_and(|p| !p.is_open()) {
            self.start_part(pts, independent)?;
        }
        Ok(())
    }

    /// Opens part file of the open segment at `pts`: the muxer's bytes are copied into it.
    fn start_part(&mut self, pts: f64, independent: bool) -> Result<(), OutputError> {
        let Some(n) = self.parts.as_mut().map(|p| p.start(pts, independent)) else {
            return Ok(());
        };
        let rel = self.rel(&part_name(self.next_file, n));
        self.refuse_after_abort(&rel)?;
        match &self.open {
            Some(open) => open.start_part(&*self.sink, &rel),
            None => Ok(()),
        }
    }

    /// Ends the open part at `end` seconds: its chunk flushed (the muxer's fragment, unless
    /// the trailer already did: `flush_muxer` false), its file finished, and the playlist
    /// rewritten to list it.
    pub(super) fn end_part(&mut self, end: f64, flush_muxer: bool) -> Result<(), OutputError> {
        if !self.parts.as_ref().is_some_and(PartCutter::is_open) {
            return Ok(());
        }
        if flush_muxer {
            self.muxer.flush().map_err(|e| self.mux_failed(e))?;
        }
        self.muxer.flush_writer().map_err(|e| self.mux_failed(e))?;
        let part = self.parts.as_mut().and_then(|p| p.end(end));
        let Some(part) = part else {
            return Ok(());
        };
        let at = PathBuf::from(
            self.sink
                .location(&self.rel(&part_name(self.next_file, part.index))),
        );
        if let Some(open) = &self.open {
            open.finish_part(at)?;
        }
        self.playlist.push_part(part);
        self.write_part_playlist()
    }

    /// The playlist rewritten for a part, through [`SegmentSink::replace_often`] (atomic,
    /// not made durable each time: `FsSink` skips the fsyncs).
    ///
    /// [`SegmentSink::replace_often`]: crate::sink::SegmentSink::replace_often
    fn write_part_playlist(&mut self) -> Result<(), OutputError> {
        let text = self.playlist.render();
        let rel = self.rel(MEDIA_PLAYLIST);
        self.refuse_after_abort(&rel)?;
        self.sink
            .replace_often(&rel, text.as_bytes())
            .map_err(|e| OutputError::Io(self.sink.location(&rel).into(), e))
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
