//! What the renditions' threads tell the rest of the world when a segment is done: the
//! master playlist, the DASH manifest over the same segments (fMP4), and the output events
//! for the application's hooks. Shared by every rendition thread.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Sender, TrySendError};
use parking_lot::Mutex;

use super::dash::{self, AdaptationSet, Content, Kind, Manifest, Media, Representation};
use super::hls::{MasterPlaylist, MeasuredBitrate, SegmentDone, FMP4_TIME_OFFSET, MEDIA_PLAYLIST};
use crate::hooks::{HookMsg, OutputEvent, SegmentEvent};
use crate::sink::SegmentSink;
use crate::stats::StatsCell;

/// Name of the DASH manifest in the output directory.
pub(crate) const DASH_MANIFEST: &str = "manifest.mpd";

/// The master, the DASH manifest and the output events of one stream's output.
pub(crate) struct Publisher {
    stream: String,
    sink: Arc<dyn SegmentSink>,
    master: MasterPlaylist,
    dash: Option<DashOutput>,
    events: Option<Sender<HookMsg>>,
}

impl Publisher {
    pub fn new(
        stream: &str,
        sink: Arc<dyn SegmentSink>,
        master: MasterPlaylist,
        dash: Option<DashOutput>,
    ) -> Self {
        Self {
            stream: stream.to_owned(),
            sink,
            master,
            dash,
            events: None,
        }
    }

    /// Sends output events to the hook thread too.
    pub fn with_events(mut self, events: Option<Sender<HookMsg>>) -> Self {
        self.events = events;
        self
    }

    /// Rendition `index` (named `name`, `codecs` known) finished a segment and rewrote its
    /// playlist; `timescale` is its track's media time scale.
    pub fn segment_done(
        &self,
        index: usize,
        name: &str,
        codecs: &str,
        done: &SegmentDone,
        timescale: u32,
        stats: &StatsCell,
    ) {
        let at = |file: &str| self.location(&format!("{name}/{file}"));
        if self.master.segment_done(index, codecs, stats) {
            self.emit_playlist(self.location(super::hls::MASTER_PLAYLIST));
        }
        if done.bytes > 0 || done.duration > 0.0 {
            self.emit(OutputEvent::Segment(SegmentEvent {
                stream: self.stream.clone(),
                variant: name.to_owned(),
                path: at(&done.name),
                init: done.init.map(|n| at(&super::hls::init_name(n))),
                sequence: done.sequence,
                duration: done.duration,
                bytes: done.bytes,
                discontinuity: done.discontinuity,
            }));
            if let Some(d) = &self.dash {
                if d.segment_done(index, codecs, done, timescale, stats) {
                    self.emit_playlist(self.location(DASH_MANIFEST));
                }
            }
        }
        if done.playlist_bytes > 0 {
            self.emit_playlist(at(MEDIA_PLAYLIST));
        }
        for gone in &done.deleted {
            self.emit(OutputEvent::SegmentDeleted {
                stream: self.stream.clone(),
                variant: name.to_owned(),
                path: at(gone),
            });
        }
    }

    /// Every rendition finished: the master gets the measured bandwidth, the DASH manifest
    /// its final form.
    pub fn finish(&self, measured: &[MeasuredBitrate], stats: &StatsCell) {
        if self.master.write_measured(measured, stats) {
            self.emit_playlist(self.location(super::hls::MASTER_PLAYLIST));
        }
        if let Some(d) = &self.dash {
            if d.finish(measured, stats) {
                self.emit_playlist(self.location(DASH_MANIFEST));
            }
        }
    }

    /// Where a file of the output is: a path, or a URL with its secrets redacted.
    fn location(&self, rel: &str) -> PathBuf {
        PathBuf::from(self.sink.location(rel))
    }

    fn emit_playlist(&self, path: PathBuf) {
        self.emit(OutputEvent::PlaylistWritten {
            stream: self.stream.clone(),
            path,
        });
    }

    /// Queues an event for the hook thread; never waits (a full queue drops it, logged).
    fn emit(&self, ev: OutputEvent) {
        let Some(tx) = &self.events else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(HookMsg::Output(ev)) {
            log::warn!(
                "stream {}: hooks are not keeping up; dropped an output event",
                self.stream
            );
        }
    }
}

/// The DASH manifest (`manifest.mpd`) over the fMP4 segments the HLS playlists list: live
/// (dynamic, a sliding window, rewritten at every segment once every rendition has one) or
/// on demand (static, written once at the end with the full duration).
pub(crate) struct DashOutput {
    sink: Arc<dyn SegmentSink>,
    /// `Some(segments)` for a live sliding window.
    live_window: Option<usize>,
    segment_secs: f64,
    state: Mutex<DashState>,
}

struct DashState {
    reps: Vec<Representation>,
    ready: Vec<bool>,
    /// Wall-clock time of the output timeline's zero (live), fixed at the first segment.
    availability_start: Option<SystemTime>,
    /// End of the latest segment on the output timeline, seconds.
    end: f64,
}

impl DashOutput {
    /// A manifest over these representations (segments empty; codecs filled in as they
    /// become known), in `dir`.
    pub fn new(
        sink: Arc<dyn SegmentSink>,
        reps: Vec<Representation>,
        live_window: Option<usize>,
        segment_secs: f64,
    ) -> Self {
        Self {
            sink,
            live_window,
            segment_secs,
            state: Mutex::new(DashState {
                ready: vec![false; reps.len()],
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
    fn segment_done(
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
            let rep = &mut g.reps[index];
            codecs.clone_into(&mut rep.codecs);
            rep.timescale = timescale.max(1);
            rep.presentation_time_offset = (offset * ts).round() as u64;
            rep.segments.push(dash::Segment {
                number: done.file,
                start,
                duration: end.saturating_sub(start),
                init: done.init,
            });
            if let Some(window) = self.live_window {
                let extra = rep.segments.len().saturating_sub(window);
                rep.segments.drain(..extra);
            }
            g.ready[index] = true;
            g.end = g.end.max(done.start + done.duration);
            if self.live_window.is_none() || g.ready.iter().any(|r| !r) {
                return false;
            }
            let end = g.end;
            let ast = *g
                .availability_start
                .get_or_insert_with(|| SystemTime::now() - Duration::from_secs_f64(end.max(0.0)));
            dash::render(&self.manifest(&g, Some(ast)))
        };
        self.write(&text, stats)
    }

    /// The stream is over: the final manifest (static with the full duration on demand).
    fn finish(&self, measured: &[MeasuredBitrate], stats: &StatsCell) -> bool {
        let text = {
            let mut g = self.state.lock();
            if g.ready.iter().any(|r| !r) {
                return false;
            }
            for (rep, m) in g.reps.iter_mut().zip(measured) {
                if m.peak > 0 {
                    rep.bandwidth = m.peak.max(m.average);
                }
            }
            let ast = g.availability_start;
            dash::render(&self.manifest(&g, ast.filter(|_| self.live_window.is_some())))
        };
        self.write(&text, stats)
    }

    fn manifest(&self, g: &DashState, live_start: Option<SystemTime>) -> Manifest {
        let seg = self.segment_secs;
        let kind = match (live_start, self.live_window) {
            (Some(availability_start), Some(window)) => Kind::Dynamic {
                availability_start,
                publish_time: SystemTime::now(),
                time_shift_buffer: window as f64 * seg,
                minimum_update_period: seg,
                suggested_presentation_delay: 3.0 * seg,
            },
            _ => Kind::Static { duration: g.end },
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

    fn write(&self, text: &str, stats: &StatsCell) -> bool {
        match self.sink.replace(DASH_MANIFEST, text.as_bytes()) {
            Ok(()) => {
                stats.playlist_bytes.fetch_add(text.len() as u64, Relaxed);
                true
            }
            Err(e) => {
                stats.errors.fetch_add(1, Relaxed);
                log::error!("writing {}: {e}", self.sink.location(DASH_MANIFEST));
                false
            }
        }
    }
}
