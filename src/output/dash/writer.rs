//! The DASH manifest (`manifest.mpd`) over the fMP4 segments the HLS playlists list: live
//! (dynamic, a sliding window, rewritten at every segment once every rendition has one)
//! or on demand (static, written once at the end with the full duration). A live stream
//! that ends gracefully gets a static manifest too, so players stop waiting for more.
//!
//! The period starts at the earliest segment's presentation time (the output timeline need
//! not start at zero: an MPEG-TS source's first timestamp carries over), which every
//! representation's `presentationTimeOffset` names in its own timescale.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::model::{self, AdaptationSet, Content, Kind, Manifest, Media, Representation};
use crate::output::latest::LatestWriter;
use crate::output::naming::DASH_MANIFEST;
use crate::output::{MeasuredBitrate, SegmentDone, FMP4_TIME_OFFSET};
use crate::sink::SegmentSink;
use crate::stats::StatsCell;

/// The manifest of one stream's output, shared by its rendition threads.
pub(crate) struct DashWriter {
    sink: Arc<dyn SegmentSink>,
    writer: LatestWriter,
    /// `Some(segments)` for a live sliding window.
    live_window: Option<usize>,
    segment_secs: f64,
    state: Mutex<DashState>,
}

struct DashState {
    reps: Vec<Representation>,
    /// Each representation's first segment's start on the output timeline, seconds.
    first_start: Vec<Option<f64>>,
    /// Wall-clock time of the period's start (live), fixed at the first render.
    availability_start: Option<SystemTime>,
    /// End of the latest segment on the output timeline, seconds.
    end: f64,
}

impl DashWriter {
    /// A manifest over these representations (segments empty; codecs filled in as they
    /// become known), written through `sink`.
    pub fn new(
        sink: Arc<dyn SegmentSink>,
        reps: Vec<Representation>,
        live_window: Option<usize>,
        segment_secs: f64,
    ) -> Self {
        Self {
            sink,
            writer: LatestWriter::new(DASH_MANIFEST),
            live_window,
            segment_secs,
            state: Mutex::new(DashState {
                first_start: vec![None; reps.len()],
                reps,
                availability_start: None,
                end: 0.0,
            }),
        }
    }

    /// A representation's entry before any segment: its media and configured bandwidth.
    pub fn representation(name: &str, media: Media, bandwidth: u64) -> Representation {
        Representation {
            id: name.to_owned(),
            dir: name.to_owned(),
            codecs: String::new(),
            bandwidth,
            media,
            timescale: 1,
            presentation_time_offset: 0,
            segments: Vec::new(),
        }
    }

    /// Adds a segment; live, rewrites the manifest once every representation has one.
    /// Returns whether it was written.
    pub fn segment_done(
        &self,
        index: usize,
        codecs: &str,
        done: &SegmentDone,
        timescale: u32,
        stats: &StatsCell,
    ) -> bool {
        let ts = f64::from(timescale.max(1));
        let offset = FMP4_TIME_OFFSET.as_secs_f64();
        let start = ((done.start + offset) * ts).round() as u64;
        let end = ((done.start + done.duration + offset) * ts).round() as u64;
        let text = {
            let mut g = self.state.lock();
            g.first_start[index].get_or_insert(done.start);
            let rep = &mut g.reps[index];
            codecs.clone_into(&mut rep.codecs);
            rep.timescale = timescale.max(1);
            rep.segments.push(model::Segment {
                number: done.file,
                start,
                duration: end.saturating_sub(start),
                init: done.init,
            });
            if let Some(window) = self.live_window {
                let extra = rep.segments.len().saturating_sub(window);
                rep.segments.drain(..extra);
            }
            g.end = g.end.max(done.start + done.duration);
            if self.live_window.is_none() {
                return false;
            }
            let Some(origin) = origin(&g) else {
                return false;
            };
            let since = Duration::from_secs_f64((g.end - origin).max(0.0));
            let ast = *g
                .availability_start
                .get_or_insert_with(|| SystemTime::now() - since);
            model::render(&self.manifest(&mut g, origin, Some(ast)))
        };
        matches!(self.writer.write(&*self.sink, text, stats), Some(Ok(())))
    }

    /// The stream is over: the final manifest, static with the whole duration (on demand,
    /// and a live stream that ended: its window, with no more updates to wait for).
    /// Returns the write's result, `None` when no segment was made.
    pub fn finish(
        &self,
        measured: &[MeasuredBitrate],
        stats: &StatsCell,
    ) -> Option<io::Result<()>> {
        let text = {
            let mut g = self.state.lock();
            let origin = origin(&g)?;
            for (rep, m) in g.reps.iter_mut().zip(measured) {
                if m.peak > 0 {
                    rep.bandwidth = m.peak.max(m.average);
                }
            }
            model::render(&self.manifest(&mut g, origin, None))
        };
        Some(self.writer.write_final(&*self.sink, text, stats))
    }

    /// The manifest now: dynamic from `live_start`, else static; the period starts at
    /// `origin` (seconds on the output timeline).
    fn manifest(&self, g: &mut DashState, origin: f64, live_start: Option<SystemTime>) -> Manifest {
        let seg = self.segment_secs;
        let offset = FMP4_TIME_OFFSET.as_secs_f64();
        for rep in &mut g.reps {
            let ts = f64::from(rep.timescale);
            rep.presentation_time_offset = ((origin + offset) * ts).round() as u64;
        }
        let kind = match (live_start, self.live_window) {
            (Some(availability_start), Some(window)) => Kind::Dynamic {
                availability_start,
                publish_time: SystemTime::now(),
                time_shift_buffer: window as f64 * seg,
                minimum_update_period: seg,
                suggested_presentation_delay: 3.0 * seg,
            },
            _ => Kind::Static {
                duration: (g.end - origin).max(0.0),
            },
        };
        let (audio, video): (Vec<_>, Vec<_>) = g
            .reps
            .iter()
            .cloned()
            .partition(|r| matches!(r.media, Media::Audio { .. }));
        let mut sets = AdaptationSet::video_by_codec(video);
        if !audio.is_empty() {
            sets.push(AdaptationSet {
                content: Content::Audio,
                lang: None,
                representations: audio,
            });
        }
        Manifest {
            kind,
            adaptation_sets: sets,
            min_buffer_time: 2.0 * seg,
        }
    }
}

/// Where the period starts once every representation has a segment: the earliest first
/// segment (seconds on the output timeline); `None` before.
fn origin(g: &DashState) -> Option<f64> {
    g.first_start
        .iter()
        .try_fold(f64::MAX, |m, s| s.map(|s| m.min(s)))
}
