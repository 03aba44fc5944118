//! An audio-only rendition on its own thread (fMP4/CMAF: one track per file): the shared
//! AAC packets of one encoder, segmented on the segment grid, with their own media
//! playlist, listed in the master as an `#EXT-X-MEDIA` group every video rung refers to.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::control::Signals;
use super::fanout::{next, AudioMsg};
use super::rung::{count_segment, measured};
use crate::error::Error;
use crate::output::{MeasuredBitrate, Publisher, SegmentDone, Segmenter, AAC_LC};
use crate::stats::{StatsCell, VariantCounters};

/// One audio rendition: its place in the master, directory name and segmenter.
pub(crate) struct AudioRendition {
    /// Its place among the master's renditions (after the video rungs).
    pub index: usize,
    pub name: String,
    /// The audio encoder whose packets it carries.
    pub encoder: usize,
    pub segmenter: Segmenter,
    pub counters: Arc<VariantCounters>,
    /// Time of the first packet, seconds.
    pub first: Option<f64>,
}

impl AudioRendition {
    /// Writes packets until `End` (graceful) or an abort / hang-up (partial work dropped).
    pub fn run(
        mut self,
        rx: Receiver<AudioMsg>,
        signals: &Signals,
        stats: &StatsCell,
        publisher: &Publisher,
    ) -> Result<MeasuredBitrate, Error> {
        let _cpu = stats.track_this_thread();
        // The video's wall-clock marks, for this rendition's program date-times.
        let mut last_mark = None;
        let endlist = loop {
            match next(&rx, signals)? {
                AudioMsg::Packet(pkt) => {
                    if let Some((pts, wall)) = publisher.clock().filter(|m| Some(*m) != last_mark) {
                        self.segmenter.mark_capture(pts, wall);
                        last_mark = Some((pts, wall));
                    }
                    self.counters.frames_out.fetch_add(1, Relaxed);
                    let end = pkt.pts() + pkt.duration().max(0);
                    let done = self.segmenter.write_audio(pkt).map_err(Error::from)?;
                    self.media_until(end);
                    if let Some(done) = done {
                        self.segment_done(done, stats, publisher);
                    }
                    if let Some(opened) = self.segmenter.take_opened() {
                        let timescale = self.segmenter.timescale();
                        publisher.segment_opened(self.index, &opened, timescale, stats);
                    }
                }
                AudioMsg::End { endlist } => break endlist,
            }
        };
        if let Some(done) = self.segmenter.end_stream(endlist).map_err(Error::from)? {
            self.segment_done(done, stats, publisher);
        }
        Ok(measured(&self.counters, &self.segmenter))
    }

    /// Media time written so far, from the end of the last packet (audio time base ticks).
    fn media_until(&mut self, end_ticks: i64) {
        let secs = end_ticks as f64 * self.segmenter.audio_time_base().as_f64();
        let first = *self.first.get_or_insert(secs);
        let us = ((secs - first).max(0.0) * 1e6) as u64;
        self.counters.media_us.fetch_max(us, Relaxed);
    }

    fn segment_done(&self, done: SegmentDone, stats: &StatsCell, publisher: &Publisher) {
        let timescale = self.segmenter.timescale();
        publisher.segment_done(self.index, &self.name, AAC_LC, &done, timescale, stats);
        count_segment(&self.counters, stats, done);
    }
}
