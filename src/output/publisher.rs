//! What the renditions' threads tell the rest of the world when a segment is done: the
//! master playlist, the DASH manifest over the same segments (fMP4), and the output events
//! for the application's hooks. Shared by every rendition thread.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::dash::{DashWriter, OpenedSegment};
use super::naming::{in_rendition, init_name, DASH_MANIFEST, MASTER_PLAYLIST, MEDIA_PLAYLIST};
use super::{MasterPlaylist, MeasuredBitrate, SegmentDone};
use crate::error::Error;
use crate::hooks::{HookMsg, OutputEvent, SegmentEvent};
use crate::sink::SegmentSink;
use crate::stats::StatsCell;

/// Places of a hook queue that output events leave to state changes.
const STATE_RESERVE: usize = 64;

/// The master, the DASH manifest and the output events of one stream's output.
pub(crate) struct Publisher {
    stream: String,
    sink: Arc<dyn SegmentSink>,
    master: MasterPlaylist,
    dash: Option<DashWriter>,
    events: Option<Sender<HookMsg>>,
    /// The latest wall-clock mark of the video (pts seconds, when read), for the audio
    /// renditions' program date-times.
    clock: parking_lot::Mutex<Option<(f64, std::time::SystemTime)>>,
}

impl Publisher {
    pub fn new(
        stream: &str,
        sink: Arc<dyn SegmentSink>,
        master: MasterPlaylist,
        dash: Option<DashWriter>,
    ) -> Self {
        Self {
            stream: stream.to_owned(),
            sink,
            master,
            dash,
            events: None,
            clock: parking_lot::Mutex::new(None),
        }
    }

    /// The frame at `pts` seconds of the output timeline was read at `wall`.
    pub fn mark_capture(&self, pts: f64, wall: std::time::SystemTime) {
        *self.clock.lock() = Some((pts, wall));
    }

    /// The latest mark of [`mark_capture`](Self::mark_capture), if any.
    pub fn clock(&self) -> Option<(f64, std::time::SystemTime)> {
        *self.clock.lock()
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
        let at = |file: &str| self.location_of(name, file);
        if self.master.segment_done(index, codecs, stats) {
            self.emit_playlist(|| self.location(MASTER_PLAYLIST));
        }
        if done.bytes > 0 || done.duration > 0.0 {
            self.emit(|| {
                OutputEvent::Segment(SegmentEvent {
                    stream: self.stream.clone(),
                    variant: name.to_owned(),
                    path: at(&done.name),
                    init: done.init.map(|n| at(&init_name(n))),
                    sequence: done.sequence,
                    duration: done.duration,
                    bytes: done.bytes,
                    discontinuity: done.discontinuity,
                    program_date_time: done.program_date_time,
                })
            });
            if let Some(d) = &self.dash {
                if d.segment_done(index, codecs, done, timescale, stats) {
                    self.emit_playlist(|| self.location(DASH_MANIFEST));
                }
            }
        }
        if done.playlist_bytes > 0 {
            self.emit_playlist(|| at(MEDIA_PLAYLIST));
        }
        for file in &done.left_in_store {
            stats.deletes_given_up.fetch_add(1, Relaxed);
            log::warn!(
                "{}: too many deletes pending; left in the store",
                at(file).display()
            );
            self.delete_failed(name, file, "too many deletes pending", 0, true);
        }
    }

    /// Rendition `index` began segment `opened` (live with parts): the low-latency DASH
    /// manifest lists it while it is written.
    pub fn segment_opened(
        &self,
        index: usize,
        opened: &OpenedSegment,
        timescale: u32,
        stats: &StatsCell,
    ) {
        if let Some(d) = &self.dash {
            d.segment_opened(index, opened, timescale, stats);
        }
    }

    /// `file` of rendition `rendition` was deleted (it had left the live window).
    pub fn segment_deleted(&self, rendition: &str, file: &str) {
        self.emit(|| OutputEvent::SegmentDeleted {
            stream: self.stream.clone(),
            variant: rendition.to_owned(),
            path: self.location_of(rendition, file),
        });
    }

    /// The delete of `file` of rendition `rendition` failed (`error`) at try `attempt`;
    /// `given_up`: it stays in the store.
    pub fn delete_failed(
        &self,
        rendition: &str,
        file: &str,
        error: &str,
        attempt: u32,
        given_up: bool,
    ) {
        self.emit(|| OutputEvent::DeleteFailed {
            stream: self.stream.clone(),
            variant: rendition.to_owned(),
            path: self.location_of(rendition, file),
            error: error.to_owned(),
            attempt,
            given_up,
        });
    }

    /// A stream with backups switched from input `from` to input `to` (named by their
    /// redacted URLs), for `reason`.
    pub fn input_switched(&self, names: (&str, &str), from: usize, to: usize, reason: &str) {
        self.emit(|| OutputEvent::InputSwitched {
            stream: self.stream.clone(),
            from_index: from,
            from: names.0.to_owned(),
            to_index: to,
            to: names.1.to_owned(),
            reason: reason.to_owned(),
            at: std::time::SystemTime::now(),
        });
    }

    /// Where `file` of rendition `rendition` is: a path, or a URL with its secrets
    /// redacted.
    pub fn location_of(&self, rendition: &str, file: &str) -> PathBuf {
        self.location(&in_rendition(rendition, file))
    }

    /// Every rendition finished: the master gets the measured bandwidth, the DASH manifest
    /// its final form. A final file that cannot be written is the stream's output error
    /// (never a silent success): the first such failure, after trying both.
    pub fn finish(&self, measured: &[MeasuredBitrate], stats: &StatsCell) -> Result<(), Error> {
        let mut first_failure = None;
        let mut told = |rel: &str, result: Option<std::io::Result<()>>| match result {
            Some(Ok(())) => self.emit_playlist(|| self.location(rel)),
            Some(Err(e)) => {
                first_failure.get_or_insert_with(|| Error::output(self.location(rel), e));
            }
            None => {}
        };
        told(MASTER_PLAYLIST, self.master.write_measured(measured, stats));
        if let Some(d) = &self.dash {
            told(DASH_MANIFEST, d.finish(measured, stats));
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Where a file of the output is: a path, or a URL with its secrets redacted.
    fn location(&self, rel: &str) -> PathBuf {
        PathBuf::from(self.sink.location(rel))
    }

    fn emit_playlist(&self, path: impl FnOnce() -> PathBuf) {
        self.emit(|| OutputEvent::PlaylistWritten {
            stream: self.stream.clone(),
            path: path(),
        });
    }

    /// Queues an event for the hook thread; never waits. The last [`STATE_RESERVE`] places
    /// of the queue are kept for state changes: output events that would take them are
    /// dropped (and logged), so a slow upload hook never crowds out a state event.
    /// The event is only made when a hook listens.
    fn emit(&self, make: impl FnOnce() -> OutputEvent) {
        let Some(tx) = &self.events else { return };
        let ev = make();
        let room = tx
            .capacity()
            .map_or(usize::MAX, |c| c.saturating_sub(tx.len()));
        let sent = if room > STATE_RESERVE {
            tx.try_send(HookMsg::Output(ev))
        } else {
            Err(TrySendError::Full(HookMsg::Output(ev)))
        };
        if let Err(TrySendError::Full(_)) = sent {
            log::warn!(
                "stream {}: hooks are not keeping up; dropped an output event",
                self.stream
            );
        }
    }
}
