//! One rendition's HLS output: segments (MPEG-TS, or fMP4 after an init segment) cut at the
//! aligned keyframes (or, for an audio-only rendition, on the segment grid), and its media
//! playlist.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::deleter::DeleteQueue;
use super::muxer_file::MuxerFile;
use super::naming::{in_rendition, init_name, segment_name, MEDIA_PLAYLIST};
mod marks;
mod parts;

use super::playlist::{ListedSegment, MediaPlaylist};
use super::resume::OutputStart;
use super::OutputError;
use crate::config::{Container, VideoCodec};
use crate::ffi::{AvError, CodecContext, Interrupt, OutputContext, Packet, Rational, AVERROR_EXIT};
use crate::sink::SegmentSink;
use parts::PartCutter;

/// Where the output timeline's zero lies in fMP4 media time (`tfdt`): far enough that no
/// decode time of a B-frame or primed AAC frame is negative. DASH manifests subtract it
/// (`presentationTimeOffset`).
pub(crate) const FMP4_TIME_OFFSET: std::time::Duration = std::time::Duration::from_secs(10);

/// One rendition's segmenter: a single muxer whose file is swapped at each cut (so
/// timestamps and continuity stay one stream), listing each segment in its media playlist.
pub struct Segmenter {
    /// Where its files go, and its directory there (the rendition's name).
    sink: Arc<dyn SegmentSink>,
    name: String,
    /// The segment (or init segment) the muxer is writing.
    open: Option<MuxerFile>,
    /// Trips on abort (see [`MediaOutput::interrupt`]).
    interrupt: Arc<Interrupt>,
    container: Container,
    muxer: OutputContext,
    /// `None` for an audio-only rendition, which cuts on the segment grid by itself.
    video_index: Option<i32>,
    audio_index: Option<i32>,
    video_tb: Rational,
    audio_tb: Rational,
    target_duration: f64,
    playlist: MediaPlaylist,
    /// Media sequence number of the open segment.
    next_sequence: u64,
    /// File number of the open segment.
    next_file: u64,
    /// pts (seconds) where the open segment began, set by its first video packet.
    open_start: Option<f64>,
    /// Latest end time (pts + duration, seconds) of any video packet in the open segment.
    open_end: f64,
    /// Files of segments no longer listed (file number, the media time they left the
    /// playlist, their init segment), waiting to be deleted.
    unlisted: VecDeque<(u64, f64, Option<u64>)>,
    /// Where expired files are deleted, off this thread.
    deletes: DeleteQueue,
    /// Wall-clock marks, oldest first: (pts seconds of a frame, when its packet was read).
    clock_marks: VecDeque<(f64, SystemTime)>,
    /// The next segment to start follows a source restart.
    pending_discontinuity: bool,
    /// The open segment follows a source restart.
    open_discontinuity: bool,
    /// The final playlist gets `#EXT-X-ENDLIST` (not when the stream failed: a restart may
    /// continue it).
    final_endlist: bool,
    /// File number of this run's init segment (fMP4).
    init: Option<u64>,
    /// Audio-only: where the open segment ends on the grid, seconds.
    audio_boundary: Option<f64>,
    /// Audio-only: the encoder's priming, seconds: the grid starts where the media does,
    /// after it, on the same boundaries as the video.
    audio_priming: f64,
    /// Low-Latency HLS parts, when the output has them.
    parts: Option<PartCutter>,
}

/// How a variant's output is written.
pub(crate) struct MediaOutput {
    /// The configured segment duration, seconds.
    pub target_duration: f64,
    /// `Some(n)` for a sliding-window live playlist of `n` segments.
    pub live_window: Option<usize>,
    /// Where numbering starts and what an earlier live run left listed.
    pub start: OutputStart,
    /// Trips on abort: no new file, upload, playlist or deletion is started after it.
    pub interrupt: Arc<Interrupt>,
    /// Where the files go.
    pub sink: Arc<dyn SegmentSink>,
    /// How segments are packaged.
    pub container: Container,
    /// The video's codec (`None`: an audio-only rendition).
    pub video_codec: Option<VideoCodec>,
    /// The stream's queue of expired files to delete.
    pub deletes: DeleteQueue,
    /// Low-Latency HLS parts of about this many seconds (a live fMP4 output only).
    pub part_duration: Option<f64>,
}

/// A finished or cut segment: what it adds to the counters, and where it lies.
#[derive(Debug, Clone, Default)]
pub struct SegmentDone {
    /// Bytes of the segment file.
    pub bytes: u64,
    /// Bytes of the playlist rewritten for it.
    pub playlist_bytes: u64,
    /// Duration of the segment, seconds.
    pub duration: f64,
    /// Its start on the output timeline, seconds.
    pub start: f64,
    /// Its media sequence number.
    pub sequence: u64,
    /// The number in its file name.
    pub file: u64,
    /// Its file, relative to the output directory's rendition directory.
    pub name: String,
    /// Preceded by a discontinuity.
    pub discontinuity: bool,
    /// File number of its init segment (fMP4).
    pub init: Option<u64>,
    /// Expired files (left the live window) the delete queue could not take: they stay in
    /// the store.
    pub left_in_store: Vec<String>,
    /// The wall-clock time its first frame's packet was read (`#EXT-X-PROGRAM-DATE-TIME`).
    pub program_date_time: Option<SystemTime>,
}

impl Segmenter {
    /// Creates the muxer for a video encoder and an optional audio encoder (or, without
    /// video, an audio-only rendition), writes the init segment (fMP4), and opens the first
    /// segment.
    pub fn create(
        name: &str,
        video: Option<&CodecContext>,
        audio: Option<&CodecContext>,
        output: MediaOutput,
    ) -> Result<Self, OutputError> {
        let MediaOutput {
            target_duration,
            live_window,
            start,
            interrupt,
            sink,
            container,
            video_codec,
            deletes,
            part_duration,
        } = output;
        let here = PathBuf::from(sink.location(name));
        let mux_err = |e| OutputError::Mux(here.clone(), e);
        let format = match container {
            Container::Fmp4 => "mp4",
            _ => "mpegts",
        };
        let mut muxer = OutputContext::new(format, interrupt.clone()).map_err(mux_err)?;
        let video_index = video
            .map(|v| muxer.add_stream(v))
            .transpose()
            .map_err(mux_err)?;
        let audio_index = audio
            .map(|a| muxer.add_stream(a))
            .transpose()
            .map_err(mux_err)?;
        if container == Container::Fmp4 {
            let tagged = video_index.zip(video_codec);
            configure_fmp4(&mut muxer, tagged).map_err(mux_err)?;
        }
        let parts = part_duration
            .filter(|_| live_window.is_some() && container == Container::Fmp4)
            .map(PartCutter::new);
        let mut playlist = MediaPlaylist::new(container, target_duration, live_window);
        if let Some(p) = &parts {
            playlist = playlist.with_parts(p.target());
        }
        // The first segment after an earlier run's starts a new timeline.
        let pending_discontinuity = start.carried.is_some();
        if let Some(earlier) = start.carried {
            playlist.carry_on(earlier);
        }
        let mut w = Self {
            sink,
            name: name.to_owned(),
            open: None,
            interrupt,
            container,
            muxer,
            video_index,
            audio_index,
            video_tb: video.map_or(Rational::new(1, 1), CodecContext::time_base),
            audio_tb: audio.map_or(Rational::new(1, 1), CodecContext::time_base),
            target_duration,
            playlist,
            pending_discontinuity,
            next_sequence: start.next_sequence,
            next_file: start.next_file,
            open_start: None,
            open_end: 0.0,
            unlisted: VecDeque::new(),
            deletes,
            clock_marks: VecDeque::new(),
            open_discontinuity: false,
            final_endlist: true,
            init: None,
            audio_boundary: None,
            audio_priming: audio.map_or(0.0, |a| {
                f64::from(a.initial_padding().max(0)) / f64::from(a.sample_rate().max(1))
            }),
            parts,
        };
        w.write_header()?;
        Ok(w)
    }

    /// Writes the container header: into the init segment (fMP4), or at the start of the
    /// first segment (MPEG-TS); then opens the first segment.
    fn write_header(&mut self) -> Result<(), OutputError> {
        if self.container == Container::Fmp4 {
            let rel = self.rel(&init_name(self.next_file));
            let init = MuxerFile::open(&*self.sink, &mut self.muxer, rel)?;
            if let Err(e) = self.muxer.write_header() {
                let at = init.location.clone();
                init.discard(&mut self.muxer);
                return Err(OutputError::Mux(at, e));
            }
            init.finish(&mut self.muxer)?;
            self.init = Some(self.next_file);
        }
        self.open_segment()?;
        if self.container != Container::Fmp4 {
            let at = self.open_location();
            self.muxer
                .write_header()
                .map_err(|e| OutputError::Mux(at, e))?;
        }
        Ok(())
    }

    /// `name` in this rendition's directory, as the sink names it.
    fn rel(&self, name: &str) -> String {
        in_rendition(&self.name, name)
    }

    /// Refuses to start anything in the sink once the stream is aborting (an upload would
    /// outlive the abort's bound, and could land after a new run's files).
    fn refuse_after_abort(&self, rel: &str) -> Result<(), OutputError> {
        if self.interrupt.is_interrupted() {
            let at = PathBuf::from(self.sink.location(rel));
            return Err(OutputError::Mux(at, AvError::new(AVERROR_EXIT, "aborted")));
        }
        Ok(())
    }

    /// Opens the segment file numbered `next_file` as the muxer's output.
    fn open_segment(&mut self) -> Result<(), OutputError> {
        let rel = self.rel(&segment_name(self.next_file, self.container));
        self.refuse_after_abort(&rel)?;
        self.open = Some(MuxerFile::open(&*self.sink, &mut self.muxer, rel)?);
        if let Some(p) = &mut self.parts {
            p.new_segment();
        }
        Ok(())
    }

    /// A muxer call on the open segment failed: the sink's own error when it was the
    /// sink's (its message, a panic's included), else FFmpeg's.
    fn mux_failed(&self, e: AvError) -> OutputError {
        match self.open.as_ref().and_then(MuxerFile::take_error) {
            Some(sink_error) => OutputError::Io(self.open_location(), sink_error),
            None => OutputError::Mux(self.open_location(), e),
        }
    }

    /// Where the open segment is, for messages.
    fn open_location(&self) -> PathBuf {
        self.open.as_ref().map_or_else(
            || PathBuf::from(self.sink.location(&self.name)),
            |f| f.location.clone(),
        )
    }

    /// Writes an encoded video packet (in the video encoder's time base). When `cut` is set
    /// the packet is the aligned keyframe that starts a new segment: the open one is closed
    /// and listed first.
    pub fn write_video(
        &mut self,
        mut pkt: Packet,
        cut: bool,
    ) -> Result<Option<SegmentDone>, OutputError> {
        let tb = self.video_tb;
        let pts = pkt.pts() as f64 * tb.as_f64();
        let done = if cut && self.open_start.is_some() {
            Some(self.cut(pts)?)
        } else {
            None
        };
        if self.open_start.is_none() {
            self.open_start = Some(pts);
            self.open_discontinuity = std::mem::take(&mut self.pending_discontinuity);
            self.segment_started(pts, pkt.is_key())?;
        } else {
            self.part_boundary(pts, pkt.is_key())?;
        }
        let end = pts + pkt.duration().max(0) as f64 * tb.as_f64();
        self.open_end = self.open_end.max(end);
        pkt.set_stream_index(self.video_index.unwrap_or(0));
        self.write(pkt, tb)?;
        Ok(done)
    }

    /// Writes an encoded audio packet (in the audio encoder's time base). An audio-only
    /// rendition cuts its segments here, on a grid of the segment duration from its first
    /// packet, and returns the segment it closed.
    pub fn write_audio(&mut self, mut pkt: Packet) -> Result<Option<SegmentDone>, OutputError> {
        let Some(index) = self.audio_index else {
            return Ok(None);
        };
        let mut done = None;
        if self.video_index.is_none() {
            let tb = self.audio_tb.as_f64();
            let pts = pkt.pts() as f64 * tb;
            // Half a millisecond of slack: AAC frames do not divide most durations exactly.
            if self.audio_boundary.is_some_and(|b| pts >= b - 5e-4) && self.open_start.is_some() {
                done = Some(self.cut(pts)?);
            }
            if self.open_start.is_none() {
                self.open_start = Some(pts);
                self.open_discontinuity = std::mem::take(&mut self.pending_discontinuity);
                // The next boundary on the grid past this packet (after a gap, the grid
                // catches up rather than cutting a run of tiny segments).
                let first = || pts + self.audio_priming;
                let mut next = self.audio_boundary.unwrap_or_else(first) + self.target_duration;
                while next <= pts + 5e-4 {
                    next += self.target_duration;
                }
                self.audio_boundary = Some(next);
                self.segment_started(pts, true)?;
            } else {
                self.part_boundary(pts, true)?;
            }
            let end = pts + pkt.duration().max(0) as f64 * tb;
            self.open_end = self.open_end.max(end);
        }
        pkt.set_stream_index(index);
        self.write(pkt, self.audio_tb)?;
        Ok(done)
    }

    fn write(&mut self, mut pkt: Packet, from: Rational) -> Result<(), OutputError> {
        let to = self.muxer.stream_time_base(pkt.stream_index());
        pkt.rescale_ts(from, to);
        self.muxer
            .write_packet(&mut pkt)
            .map_err(|e| self.mux_failed(e))
    }

    /// Closes the open segment at `at` seconds, lists it, and opens the next one.
    fn cut(&mut self, at: f64) -> Result<SegmentDone, OutputError> {
        self.end_part(at, true)?;
        let done = self.close_open_segment(at, false)?;
        self.open_segment()?;
        let next = self.open_location();
        if self.container == Container::Fmp4 {
            // The next fragment's decode time (tfdt) is its first packet's own, never one
            // derived from the fragment before: a gap in the source that falls on the cut
            // stays in every rendition alike (tests/it/cmaf.rs checks that it does).
            self.muxer
                .set_muxer_option("movflags", "+frag_discont")
                .map_err(|e| OutputError::Mux(next.clone(), e))?;
        } else {
            // The next file must start with PAT/PMT so it decodes on its own.
            self.muxer
                .set_muxer_option("mpegts_flags", "+resend_headers")
                .map_err(|e| OutputError::Mux(next, e))?;
        }
        Ok(done)
    }

    /// Closes the open segment ending at `end` seconds and lists it. `last`: the stream is
    /// over (the trailer already flushed the muxer) and the playlist is final.
    fn close_open_segment(&mut self, end: f64, last: bool) -> Result<SegmentDone, OutputError> {
        let (sequence, file) = (self.next_sequence, self.next_file);
        if !last {
            self.muxer.flush().map_err(|e| self.mux_failed(e))?;
        }
        let open = self.open.take().expect("a segment is open until the end");
        if let Err(e) = self.refuse_after_abort(&self.name) {
            open.discard(&mut self.muxer);
            return Err(e);
        }
        let bytes = open.finish(&mut self.muxer)?;
        let start = self.open_start.unwrap_or(end);
        let mut duration = (end - start).max(0.0);
        if (duration.round() as u64) > self.playlist.target() {
            // A gap in the source (shorter than the timeline's jump threshold) lies between
            // this segment's last frame and the next cut: the segment lists what it holds,
            // and the next one, after the gap, starts a discontinuity.
            duration = (self.open_end - start).max(0.0);
            self.pending_discontinuity = true;
        }
        let discontinuity = std::mem::take(&mut self.open_discontinuity);
        // A live playlist only: an on-demand one is not on the wall clock.
        let program_date_time = self
            .playlist
            .window()
            .and_then(|_| self.program_date_time(start));
        let parts_gone = self.playlist.push(ListedSegment {
            sequence,
            file,
            duration,
            bytes,
            discontinuity,
            init: self.init,
            program_date_time,
            parts: Vec::new(),
        });
        if let Some(p) = &mut self.parts {
            p.unlisted(end, parts_gone);
        }
        self.next_sequence += 1;
        self.next_file += 1;
        self.open_start = None;
        self.open_end = 0.0;
        // The newest segment is listed first; deleting what left the window comes after,
        // and a store that refuses a delete never costs the listing.
        for old in self.playlist.expire() {
            self.unlisted.push_back((old.file, end, old.init));
        }
        let playlist_bytes = self.write_playlist(last && self.final_endlist)?;
        let left_in_store = self.delete_expired(end);
        Ok(SegmentDone {
            bytes,
            playlist_bytes,
            duration,
            start,
            sequence,
            file,
            name: segment_name(file, self.container),
            discontinuity,
            init: self.init,
            left_in_store,
            program_date_time,
        })
    }

    /// Queues for deletion the files of segments that left the live window once a client
    /// can no longer be fetching them: one playlist duration plus a target duration after
    /// they left it (RFC 8216 §6.2.2); an earlier run's init segment goes with the last
    /// segment that needed it. The deletes run off this thread (see `deleter`): a store
    /// that is slow or refuses never holds up a segment. Returns the files the queue could
    /// not take (left in the store).
    fn delete_expired(&mut self, now: f64) -> Vec<String> {
        let mut left = Vec::new();
        let Some(window) = self.playlist.window() else {
            return left;
        };
        let keep = window as f64 * self.target_duration + self.playlist.target() as f64;
        // Parts leave the playlist three segments after theirs; a player may still fetch
        // them for two target durations (what it buffers of a playlist it has).
        let parts_keep = 2.0 * self.playlist.target() as f64;
        let parts_gone = self.parts.as_mut().map(|p| p.expired(now, parts_keep));
        for name in parts_gone.into_iter().flatten() {
            if !self.deletes.delete(&self.name, name.clone()) {
                left.push(name);
            }
        }
        while let Some(&(file, unlisted_at, init)) = self.unlisted.front() {
            if now - unlisted_at < keep {
                break;
            }
            self.unlisted.pop_front();
            let mut queue = |name: String| {
                if !self.deletes.delete(&self.name, name.clone()) {
                    left.push(name);
                }
            };
            queue(segment_name(file, self.container));
            let needed = |n: u64| {
                Some(n) == self.init
                    || self.playlist.uses_init(n)
                    || self.unlisted.iter().any(|u| u.2 == Some(n))
            };
            if let Some(n) = init.filter(|&n| !needed(n)) {
                queue(init_name(n));
            }
        }
        left
    }

    /// The stream is over: flushes the muxer, closes the last segment and writes the final
    /// playlist, with `#EXT-X-ENDLIST` when `endlist` (a stream that failed lists what it
    /// made without it). Returns the last segment's figures, if it had any media.
    pub fn end_stream(&mut self, endlist: bool) -> Result<Option<SegmentDone>, OutputError> {
        self.final_endlist = endlist;
        self.muxer.write_trailer().map_err(|e| self.mux_failed(e))?;
        let end = self.open_end;
        self.end_part(end, false)?;
        if self.open_start.is_some() {
            let end = self.open_end;
            Ok(Some(self.close_open_segment(end, true)?))
        } else {
            // Nothing was written into the open file: discard it rather than list it.
            if let Some(open) = self.open.take() {
                open.discard(&mut self.muxer);
            }
            let playlist_bytes = if self.playlist.is_empty() {
                0
            } else {
                self.write_playlist(endlist)?
            };
            Ok(Some(SegmentDone {
                playlist_bytes,
                ..SegmentDone::default()
            })
            .filter(|d| d.playlist_bytes > 0))
        }
    }

    /// Renders and atomically writes the media playlist.
    fn write_playlist(&mut self, ended: bool) -> Result<u64, OutputError> {
        self.playlist.set_ended(ended);
        let text = self.playlist.render();
        let rel = self.rel(MEDIA_PLAYLIST);
        self.refuse_after_abort(&rel)?;
        self.sink
            .replace(&rel, text.as_bytes())
            .map_err(|e| OutputError::Io(self.sink.location(&rel).into(), e))?;
        let n = text.len() as u64;
        Ok(n)
    }

    /// Ticks per second of its track's media time in the file (fMP4: the `mdhd`
    /// timescale).
    pub fn timescale(&self) -> u32 {
        let index = self.video_index.or(self.audio_index).unwrap_or(0);
        u32::try_from(self.muxer.stream_time_base(index).den).unwrap_or(1)
    }

    /// The time base audio packets are given in.
    pub fn audio_time_base(&self) -> Rational {
        self.audio_tb
    }

    /// Peak bitrate of the listed segments, bits/s (0 before the first segment).
    pub fn peak_bitrate(&self) -> u64 {
        self.playlist.peak_bitrate()
    }
}

impl Drop for Segmenter {
    fn drop(&mut self) {
        // Dropped without `end_stream` (abort, failure): the open segment is partial and listed
        // nowhere; remove it rather than leave a torn file beside the playlist.
        if let Some(open) = self.open.take() {
            open.discard(&mut self.muxer);
        }
    }
}

/// The mp4 muxer set up for CMAF-style output: one fragment per segment, flushed at each
/// cut, the header as the init segment, every rendition on one media-time offset; the
/// video's sample entry tagged as its codec requires.
fn configure_fmp4(
    muxer: &mut OutputContext,
    video: Option<(i32, VideoCodec)>,
) -> Result<(), AvError> {
    let flags = "+frag_custom+empty_moov+default_base_moof+skip_sidx+skip_trailer+frag_discont";
    muxer.set_muxer_option("movflags", flags)?;
    // Without an edit list the first fragment starts at its first decode time (with
    // frag_discont: the packet's own, not zero), so presentation times stay ours.
    muxer.set_muxer_option("use_editlist", "0")?;
    // Each rendition is its own file, so the muxer's own shift of negative times
    // (B-frame decode times, AAC priming) would differ per file and put audio and video
    // apart: every rendition is shifted by the same offset instead.
    let offset = format!("{}us", FMP4_TIME_OFFSET.as_micros());
    muxer
        .set_format_option("output_ts_offset", &offset)
        .and_then(|()| muxer.set_format_option("avoid_negative_ts", "disabled"))?;
    if let Some((index, tag)) = video.and_then(|(i, c)| c.traits().mp4_tag.map(|t| (i, t))) {
        muxer.set_codec_tag(index, tag);
    }
    Ok(())
}
