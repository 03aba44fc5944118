//! The DASH manifest (`manifest.mpd`) over the fMP4 segments the HLS playlists list: live
//! (dynamic, a sliding window, rewritten at every segment once every rendition has one)
//! or on demand (static, written once at the end with the full duration). A live stream
//! that ends gracefully gets a static manifest too, so players stop waiting for more.
//!
//! The run's Period starts at the earliest segment's presentation time (the output timeline
//! need not start at zero: an MPEG-TS source's first timestamp carries over), which every
//! representation's `presentationTimeOffset` names in its own timescale.
//!
//! A live run that carries on an earlier run's output (its HLS playlists carried on) carries
//! on its manifest too: the same `availabilityStartTime`, the earlier Periods kept until
//! their segments leave the window (as the HLS playlists drop them), and a new Period for
//! this run that starts where the wall clock is when its first manifest is written (never
//! before the earlier Period's end), so the live edge stays at segments that exist.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::model::{
    self, AdaptationSet, Content, Kind, LowLatency, Manifest, Media, Period, Representation,
};
use super::parse::EarlierRuns;
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
    /// Live with parts: the chunk duration, seconds (a low-latency manifest).
    part_secs: Option<f64>,
    /// The low-latency players' target latency, seconds (default four parts).
    target_latency: Option<f64>,
    state: Mutex<DashState>,
}

/// A segment a rendition has begun to write (live with parts): listed at once in a
/// low-latency manifest, with the nominal duration, until it is done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpenedSegment {
    /// Its file number.
    pub file: u64,
    /// Its first packet's time on the output timeline, seconds.
    pub start: f64,
    /// Its init segment's file number.
    pub init: Option<u64>,
}

struct DashState {
    /// This run's representations.
    reps: Vec<Representation>,
    /// Earlier runs' Periods still listed (live, carried on).
    earlier: Vec<Period>,
    /// This run's `Period@id`.
    period_id: u64,
    /// This run's `Period@start`, seconds after `availability_start`; fixed at the first
    /// render (`None` before).
    period_start: Option<f64>,
    /// Where the current Period begins on the output timeline (seconds) when an outage
    /// within the run closed the one before; a later segment before it belongs there.
    current_origin: Option<f64>,
    /// Each representation's first segment's start on the output timeline, seconds.
    first_start: Vec<Option<f64>>,
    /// Wall-clock time of the period's start (live), fixed at the first render.
    availability_start: Option<SystemTime>,
    /// End of the latest segment on the output timeline, seconds.
    end: f64,
    /// Each representation's segment being written (low latency), in its timescale.
    open: Vec<Option<model::Segment>>,
}

impl DashWriter {
    /// A manifest over these representations (segments empty; codecs filled in as they
    /// become known), written through `sink`; live, after the `earlier` runs it carries on;
    /// `parts`: the chunk duration and the players' target latency, when low latency.
    pub fn new(
        sink: Arc<dyn SegmentSink>,
        reps: Vec<Representation>,
        live_window: Option<usize>,
        segment_secs: f64,
        parts: Option<(f64, Option<f64>)>,
        earlier: Option<EarlierRuns>,
    ) -> Self {
        let earlier = earlier.filter(|_| live_window.is_some());
        let (availability_start, earlier) = earlier.map_or((None, Vec::new()), |e| {
            (Some(e.availability_start), e.periods)
        });
        let period_id = earlier.last().map_or(0, |p| p.id.saturating_add(1));
        Self {
            sink,
            writer: LatestWriter::new(DASH_MANIFEST),
            live_window,
            segment_secs,
            part_secs: parts.map(|p| p.0).filter(|_| live_window.is_some()),
            target_latency: parts.and_then(|p| p.1),
            state: Mutex::new(DashState {
                first_start: vec![None; reps.len()],
                open: vec![None; reps.len()],
                reps,
                earlier,
                period_id,
                period_start: None,
                current_origin: None,
                availability_start,
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
        let text = {
            let mut g = self.state.lock();
            if g.current_origin
                .is_some_and(|o| done.start + done.duration / 2.0 < o)
            {
                // A rendition behind the others: its segment (most of it) ends the Period
                // the outage closed. (An audio segment on its grid may straddle the cut.)
                let id = g.reps[index].id.clone();
                late_segment(&mut g.earlier, &id, done);
                return false;
            }
            if self.live_window.is_some() {
                self.split_at_outage(&mut g, done);
            }
            g.first_start[index].get_or_insert(done.start);
            let rep = &mut g.reps[index];
            codecs.clone_into(&mut rep.codecs);
            rep.timescale = timescale.max(1);
            rep.segments.push(listed(done, rep.timescale));
            if let Some(window) = self.live_window {
                let extra = rep.segments.len().saturating_sub(window);
                rep.segments.drain(..extra);
            }
            g.end = g.end.max(done.start + done.duration);
            if g.open[index].is_some_and(|o| o.number <= done.file) {
                g.open[index] = None;
            }
            // Low latency: the manifest's clock is the capture clock (the program
            // date-times), so players' latency is glass to glass and a segment is asked for
            // when its first chunk is due; the origin holds a request that comes early.
            let captured = done
                .program_date_time
                .filter(|_| self.part_secs.is_some())
                .map(|pdt| pdt + Duration::from_secs_f64(done.duration.max(0.0)));
            match self.live_text(&mut g, captured.unwrap_or_else(SystemTime::now)) {
                Some(text) => text,
                None => return false,
            }
        };
        self.write_live(text, stats)
    }

    /// Rendition `index` began segment `opened` (live with parts): a low-latency manifest
    /// lists it at once. Returns whether the manifest was written.
    pub fn segment_opened(
        &self,
        index: usize,
        opened: &OpenedSegment,
        timescale: u32,
        stats: &StatsCell,
    ) -> bool {
        if self.part_secs.is_none() {
            return false;
        }
        let text = {
            let mut g = self.state.lock();
            let nominal = f64::from(timescale.max(1)) * self.segment_secs;
            g.open[index] = Some(model::Segment {
                number: opened.file,
                start: ticks(opened.start, timescale),
                duration: nominal.round() as u64,
                init: opened.init,
            });
            // Until the first manifest (every rendition with a segment) there is none to update.
            if g.availability_start.is_none() {
                return false;
            }
            match self.live_text(&mut g, SystemTime::now()) {
                Some(text) => text,
                None => return false,
            }
        };
        self.write_live(text, stats)
    }

    /// The live manifest now, once every representation has a segment; `reference` is the
    /// wall-clock time of the end of the media so far (when the first manifest fixes the
    /// availability start and this run's Period).
    fn live_text(&self, g: &mut DashState, reference: SystemTime) -> Option<String> {
        let window = self.live_window?;
        let origin = origin(g)?;
        let since = (g.end - origin).max(0.0);
        let ast = *g
            .availability_start
            .get_or_insert_with(|| reference - Duration::from_secs_f64(since));
        if g.period_start.is_none() {
            // Where the media so far ends, seconds after the availability start.
            let edge = reference
                .duration_since(ast)
                .unwrap_or_default()
                .as_secs_f64();
            let after_earlier = g.earlier.last().map_or(0.0, Period::end);
            g.period_start = Some((edge - since).max(after_earlier));
        }
        // Where the wall clock is, seconds after the availability start: the live edge.
        let edge = SystemTime::now()
            .duration_since(ast)
            .unwrap_or_default()
            .as_secs_f64();
        let window_secs = window as f64 * self.segment_secs;
        let DashState { earlier, reps, .. } = &mut *g;
        expire_earlier(earlier, reps, window, edge - window_secs);
        Some(model::render(&self.manifest(g, origin, Some(ast))))
    }

    /// Writes a live manifest: a low-latency one is rewritten several times a second, so
    /// it is not made durable each time.
    fn write_live(&self, text: String, stats: &StatsCell) -> bool {
        let written = if self.part_secs.is_some() {
            self.writer.write_often(&*self.sink, text, stats)
        } else {
            self.writer.write(&*self.sink, text, stats)
        };
        matches!(written, Some(Ok(())))
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
            g.open.iter_mut().for_each(|o| *o = None);
            for (rep, m) in g.reps.iter_mut().zip(measured) {
                if m.peak > 0 {
                    rep.bandwidth = m.peak.max(m.average);
                }
            }
            model::render(&self.manifest(&mut g, origin, None))
        };
        Some(self.writer.write_final(&*self.sink, text, stats))
    }

    /// A live segment that starts later on the wall clock than the current Period places
    /// it by more than a segment (the source was gone, and the output timeline went on right
    /// after its last frame): the Period ends there and a new one begins at the wall clock,
    /// so a player's live edge (availability start + Period start + media time) stays at
    /// segments that exist.
    fn split_at_outage(&self, g: &mut DashState, done: &SegmentDone) {
        let (Some(pdt), Some(ast), Some(start)) =
            (done.program_date_time, g.availability_start, g.period_start)
        else {
            return;
        };
        let Some(origin) = origin(g).filter(|&o| done.start > o) else {
            return;
        };
        let wall = pdt.duration_since(ast).unwrap_or_default().as_secs_f64();
        let planned = start + (done.start - origin);
        if wall - planned <= self.segment_secs {
            return;
        }
        // Segments already listed that lie (mostly) after the cut, such as an audio segment
        // on its grid that straddles it, open the new Period.
        let offset = FMP4_TIME_OFFSET.as_secs_f64();
        let kept: Vec<Vec<model::Segment>> = g
            .reps
            .iter_mut()
            .map(|r| {
                let cut = ticks(done.start, r.timescale);
                let at = r
                    .segments
                    .partition_point(|s| s.start + s.duration / 2 < cut);
                r.segments.split_off(at)
            })
            .collect();
        let closed = self.current_period(g, origin, false);
        let after = closed.end();
        log::info!(
            "DASH: the media resumed {:.1} s later than its Period places it: Period {} \
             begins at {:.1} s",
            wall - planned,
            g.period_id + 1,
            wall.max(after)
        );
        g.earlier.push(closed);
        let DashState {
            reps, first_start, ..
        } = &mut *g;
        for ((rep, first), segments) in reps.iter_mut().zip(first_start.iter_mut()).zip(kept) {
            let ts = f64::from(rep.timescale.max(1));
            *first = segments.first().map(|s| s.start as f64 / ts - offset);
            rep.segments = segments;
        }
        g.period_id += 1;
        g.period_start = Some(wall.max(after));
        g.current_origin = Some(done.start);
    }

    /// The current Period: its representations with their offsets from `origin` (seconds
    /// on the output timeline), one video set per codec family, then the audio.
    /// With `open`, each representation's segment being written is listed last (when it
    /// follows its last finished one).
    fn current_period(&self, g: &mut DashState, origin: f64, open: bool) -> Period {
        let after_earlier = g.earlier.last().map_or(0.0, Period::end);
        for rep in &mut g.reps {
            rep.presentation_time_offset = ticks(origin, rep.timescale);
        }
        let reps = g.reps.iter().zip(&g.open).map(|(r, o)| {
            let mut r = r.clone();
            let follows = |last: &model::Segment, o: &model::Segment| {
                last.number.checked_add(1) == Some(o.number)
                    && o.start > last.start
                    && last.init == o.init
            };
            match (r.segments.last(), o.filter(|_| open)) {
                (Some(last), Some(o)) if follows(last, &o) => r.segments.push(o),
                _ => {}
            }
            r
        });
        let (audio, video): (Vec<_>, Vec<_>) =
            reps.partition(|r| matches!(r.media, Media::Audio { .. }));
        let mut sets = AdaptationSet::video_by_codec(video);
        if !audio.is_empty() {
            sets.push(AdaptationSet {
                content: Content::Audio,
                lang: None,
                representations: audio,
            });
        }
        Period {
            id: g.period_id,
            start: g.period_start.unwrap_or(after_earlier),
            adaptation_sets: sets,
        }
    }

    /// The manifest now: dynamic from `live_start`, else static; this run's Period starts
    /// at `origin` (seconds on the output timeline), after the earlier runs'.
    fn manifest(&self, g: &mut DashState, origin: f64, live_start: Option<SystemTime>) -> Manifest {
        let seg = self.segment_secs;
        let live = live_start.is_some() && self.live_window.is_some();
        let current = self.current_period(g, origin, live);
        let period_start = current.start;
        // Chunks of the part duration: a segment may be asked for once its first is out,
        // and players aim at about four chunks behind the live edge.
        let low_latency = self.part_secs.filter(|_| live).map(|part| LowLatency {
            availability_time_offset: (seg - part).max(0.0),
            target_latency: self.target_latency.unwrap_or_else(|| (4.0 * part).max(1.0)),
        });
        let mut kind = match (live_start, self.live_window) {
            (Some(availability_start), Some(window)) => Kind::Dynamic {
                availability_start,
                publish_time: SystemTime::now(),
                time_shift_buffer: window as f64 * seg,
                // Low latency: every segment is listed as it begins, so players re-read the
                // manifest every chunk rather than every segment.
                minimum_update_period: self.part_secs.unwrap_or(seg),
                suggested_presentation_delay: low_latency.map_or(3.0 * seg, |l| l.target_latency),
            },
            _ => Kind::Static {
                duration: period_start + (g.end - origin).max(0.0),
            },
        };
        let mut periods = g.earlier.clone();
        periods.push(current);
        if matches!(kind, Kind::Static { .. }) {
            // On demand there is no live edge to keep on the wall clock: the Periods follow
            // one another without the gaps of the outages between them (a player would
            // stall in a gap between Periods), and the duration is their sum.
            for i in 1..periods.len() {
                periods[i].start = periods[i - 1].end();
            }
            let total = periods.last().map_or(0.0, Period::end);
            kind = Kind::Static { duration: total };
        }
        Manifest {
            kind,
            periods,
            // Low latency: a player need not buffer more than a segment to start.
            min_buffer_time: if low_latency.is_some() {
                seg
            } else {
                2.0 * seg
            },
            low_latency,
        }
    }
}

/// A segment of representation `id` that belongs to the last earlier Period (its
/// rendition was behind when an outage closed it): appended there, in that
/// representation's timescale.
fn late_segment(earlier: &mut [Period], id: &str, done: &SegmentDone) {
    let Some(period) = earlier.last_mut() else {
        return;
    };
    let reps = period
        .adaptation_sets
        .iter_mut()
        .flat_map(|s| &mut s.representations);
    let Some(rep) = reps.into_iter().find(|r| r.id == id) else {
        return;
    };
    rep.segments.push(listed(done, rep.timescale));
}

/// `secs` of the output timeline as fMP4 media time in ticks of `timescale` (the output
/// timeline plus [`FMP4_TIME_OFFSET`]).
fn ticks(secs: f64, timescale: u32) -> u64 {
    let ts = f64::from(timescale.max(1));
    ((secs + FMP4_TIME_OFFSET.as_secs_f64()) * ts).round() as u64
}

/// A finished segment as the manifest lists it, in ticks of `timescale` (fMP4 media time:
/// the output timeline plus [`FMP4_TIME_OFFSET`]).
fn listed(done: &SegmentDone, timescale: u32) -> model::Segment {
    let start = ticks(done.start, timescale);
    let end = ticks(done.start + done.duration, timescale);
    model::Segment {
        number: done.file,
        start,
        duration: end.saturating_sub(start),
        init: done.init,
    }
}

/// Drops from the earlier runs' Periods what the HLS playlists no longer list: of each
/// representation, the segments with `window` or more newer ones of the same name (this
/// run's and later Periods'); then every Period left empty, or ending before `since`
/// (seconds after the availability start: the oldest time a player may seek to).
fn expire_earlier(
    earlier: &mut Vec<Period>,
    current: &[Representation],
    window: usize,
    since: f64,
) {
    let mut newer: HashMap<String, usize> = HashMap::new();
    for r in current {
        *newer.entry(r.id.clone()).or_default() += r.segments.len();
    }
    for period in earlier.iter_mut().rev() {
        let reps = period
            .adaptation_sets
            .iter_mut()
            .flat_map(|s| &mut s.representations);
        let mut counted = Vec::new();
        for rep in reps {
            let after = newer.get(&rep.id).copied().unwrap_or(0);
            let keep = window.saturating_sub(after).min(rep.segments.len());
            rep.segments.drain(..rep.segments.len() - keep);
            counted.push((rep.id.clone(), keep));
        }
        for (id, n) in counted {
            *newer.entry(id).or_default() += n;
        }
    }
    earlier.retain(|p| !p.is_empty() && p.end() > since);
}

/// Where the period starts once every representation has a segment: the earliest first
/// segment (seconds on the output timeline); `None` before.
fn origin(g: &DashState) -> Option<f64> {
    g.first_start
        .iter()
        .try_fold(f64::MAX, |m, s| s.map(|s| m.min(s)))
}

/// The earlier runs the live manifest in `sink` lists, for a run that carries on the
/// output; `None` when there is none that can be read, or it is not a live one of ours
/// (then this run's manifest starts afresh, as its Period 0).
pub(crate) fn earlier_runs(sink: &dyn SegmentSink) -> Option<EarlierRuns> {
    let bytes = match sink.read(DASH_MANIFEST) {
        Ok(bytes) => bytes,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound && e.kind() != io::ErrorKind::Unsupported {
                log::warn!("reading the earlier {DASH_MANIFEST}: {e}; it starts afresh");
            }
            return None;
        }
    };
    let earlier = std::str::from_utf8(&bytes)
        .ok()
        .and_then(super::parse::earlier_runs);
    if earlier.is_none() {
        log::info!("the earlier {DASH_MANIFEST} is not a live one of ours; it starts afresh");
    }
    earlier
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 kHz video representation `id` with one-second segments numbered from `first`.
    fn rep(id: &str, first: u64, count: u64) -> Representation {
        let media = Media::Video {
            width: 640,
            height: 360,
            frame_rate: 30.0,
        };
        let mut r = DashWriter::representation(id, media, 1_000_000);
        r.timescale = 1000;
        r.segments = (0..count)
            .map(|i| model::Segment {
                number: first + i,
                start: i * 1000,
                duration: 1000,
                init: Some(first),
            })
            .collect();
        r
    }

    fn period(id: u64, start: f64, reps: Vec<Representation>) -> Period {
        Period {
            id,
            start,
            adaptation_sets: AdaptationSet::video_by_codec(reps),
        }
    }

    fn numbers(p: &Period, id: &str) -> Vec<u64> {
        let mut reps = p.adaptation_sets.iter().flat_map(|s| &s.representations);
        let rep = reps.find(|r| r.id == id);
        rep.map_or(Vec::new(), |r| {
            r.segments.iter().map(|s| s.number).collect()
        })
    }

    #[test]
    fn earlier_periods_lose_what_the_window_no_longer_lists() {
        // Runs of 4 and 3 segments before this one's 2, a window of 5 per rendition.
        let mut earlier = vec![
            period(0, 0.0, vec![rep("360p", 0, 4), rep("gone", 0, 4)]),
            period(1, 10.0, vec![rep("360p", 4, 3)]),
        ];
        let current = [rep("360p", 7, 2)];
        expire_earlier(&mut earlier, &current, 5, -1.0);
        assert_eq!(numbers(&earlier[1], "360p"), [4, 5, 6]);
        assert_eq!(numbers(&earlier[0], "360p"), Vec::<u64>::new());
        // A rendition this run does not have keeps its window of its own.
        assert_eq!(numbers(&earlier[0], "gone"), [0, 1, 2, 3]);
        // Once the oldest seekable time passes a Period's end, the Period goes.
        expire_earlier(&mut earlier, &current, 5, 5.0);
        assert_eq!(earlier.iter().map(|p| p.id).collect::<Vec<_>>(), [1]);
        // Enough segments of this run: no earlier Period left.
        expire_earlier(&mut earlier, &[rep("360p", 7, 5)], 5, -1.0);
        assert!(earlier.is_empty());
    }
}
