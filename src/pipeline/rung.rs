//! One rung of the ladder on its own thread: scale, encode, interleave with the shared
//! audio, and write segments and the media playlist.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::control::Signals;
use super::errors::encoder_error;
use super::fanout::{next, RungMsg};
use crate::config::VideoCodec;
use crate::error::Error;
use crate::ffi::{CodecContext, Frame, Packet, Rational, Scaler, Step, PIX_FMT_YUV420P};
use crate::output::{video_codec_string, MeasuredBitrate, Publisher, SegmentDone, Segmenter};
use crate::stats::{StatsCell, VariantCounters};

/// Audio may run this far ahead of the video before it is written anyway (live sources
/// whose video paused), seconds.
const MAX_AUDIO_LEAD: f64 = 3.0;

/// What a variant thread is given: its rung, its opened encoder and segmenter.
pub(crate) struct Rung {
    /// Position in the ladder (and in the master playlist).
    pub index: usize,
    pub name: String,
    /// The rung's video codec (its encoder's FFmpeg name names it in errors).
    pub codec: VideoCodec,
    pub width: i32,
    pub height: i32,
    pub max_frame_rate: Option<f64>,
    pub frame_rate: f64,
    pub encoder: CodecContext,
    pub segmenter: Segmenter,
    /// The audio encoder whose packets it muxes (MPEG-TS), if any.
    pub audio_encoder: Option<usize>,
    /// The audio encoder's time base; `0/1` without audio.
    pub audio_tb: Rational,
    /// The video's RFC 6381 codec string when the encoder's global header told it (fMP4);
    /// otherwise read from the first keyframe's parameter sets.
    pub codecs: Option<String>,
    pub counters: Arc<VariantCounters>,
    /// Test-only fault injection: panic after this many frames (see the config).
    #[cfg(feature = "fault-injection")]
    pub panic_after_frames: Option<u64>,
}

pub(crate) struct RungWorker {
    rung: Rung,
    /// One output frame interval in the video time base, for packets the encoder left
    /// without a duration.
    frame_ticks: i64,
    scaler: Option<Scaler>,
    scaled: Option<Frame>,
    /// `scaled` holds the last picture received, scaled (a repeat of it is not scaled
    /// again).
    scaled_is_last: bool,
    video_tb: Rational,
    last_kept_pts: Option<i64>,
    last_sent_pts: Option<i64>,
    /// pts of frames sent with a forced keyframe, waiting for their packet (the cut).
    forced: VecDeque<i64>,
    audio_queue: VecDeque<(f64, Packet)>,
    codecs: Option<String>,
    first_pts: Option<f64>,
    packet: Packet,
}

impl RungWorker {
    pub fn new(mut rung: Rung) -> Self {
        let codecs = rung.codecs.take();
        let video_tb = rung.encoder.time_base();
        let frame_ticks = ((1.0 / rung.frame_rate.max(1.0))
            / video_tb.as_f64().max(f64::MIN_POSITIVE))
        .round()
        .max(1.0) as i64;
        Self {
            rung,
            frame_ticks,
            scaler: None,
            scaled: None,
            scaled_is_last: false,
            video_tb,
            last_kept_pts: None,
            last_sent_pts: None,
            forced: VecDeque::new(),
            audio_queue: VecDeque::new(),
            codecs,
            first_pts: None,
            packet: Packet::new(),
        }
    }

    /// The variant's name (its directory).
    pub fn name(&self) -> &str {
        &self.rung.name
    }

    /// Runs until `End` (graceful: everything is flushed and listed) or until the sender
    /// goes away or an abort is requested (partial work dropped).
    /// Returns the bitrates measured from the segments.
    pub fn run(
        mut self,
        rx: Receiver<RungMsg>,
        signals: &Signals,
        stats: &StatsCell,
        publisher: &Publisher,
    ) -> Result<MeasuredBitrate, Error> {
        let _cpu = stats.track_this_thread();
        let endlist = loop {
            match next(&rx, signals)? {
                RungMsg::Picture {
                    frame,
                    force_key,
                    read_at,
                    same_picture,
                } => {
                    if let Some(wall) = read_at {
                        let pts = frame.pts() as f64 * self.video_tb.as_f64();
                        self.rung.segmenter.mark_capture(pts, wall);
                        publisher.mark_capture(pts, wall);
                    }
                    self.video(frame, force_key, same_picture, stats, publisher)?
                }
                RungMsg::Audio(pkt) => self.queue_audio(pkt)?,
                RungMsg::End { endlist } => break endlist,
            }
        };
        self.drain_and_end(endlist, signals, stats, publisher)
    }

    /// After `End`: drain the encoder, then the audio that is left, then the last segment.
    /// An abort meanwhile drops the rest (the partial segment is removed with the segmenter).
    fn drain_and_end(
        mut self,
        endlist: bool,
        signals: &Signals,
        stats: &StatsCell,
        publisher: &Publisher,
    ) -> Result<MeasuredBitrate, Error> {
        self.rung
            .encoder
            .send_frame(None)
            .map_err(|e| self.encoder_error(e))?;
        self.drain_packets(stats, publisher)?;
        if signals.abort_requested() {
            return Err(Error::aborted());
        }
        while let Some((_, pkt)) = self.audio_queue.pop_front() {
            self.rung.segmenter.write_audio(pkt).map_err(Error::from)?;
        }
        if let Some(done) = self
            .rung
            .segmenter
            .end_stream(endlist)
            .map_err(Error::from)?
        {
            self.publish(&done, stats, publisher);
            count_segment(&self.rung.counters, stats, done);
        }
        log::debug!("variant {} finished", self.rung.name);
        Ok(measured(&self.rung.counters, &self.rung.segmenter))
    }

    fn encoder_error(&self, e: crate::ffi::AvError) -> Error {
        let codec = self.rung.codec.encoder_name();
        encoder_error(codec, &format!("variant {}", self.rung.name), e)
    }

    fn video(
        &mut self,
        frame: Frame,
        force_key: bool,
        same_picture: bool,
        stats: &StatsCell,
        publisher: &Publisher,
    ) -> Result<(), Error> {
        #[cfg(feature = "fault-injection")]
        if let Some(n) = self.rung.panic_after_frames {
            if self.rung.counters.frames_out.load(Relaxed) >= n {
                panic!(
                    "injected fault: variant {} panics after {n} frames",
                    self.rung.name
                );
            }
        }
        let pts = frame.pts();
        if !same_picture {
            // A new picture: the scaled one is no longer it until it is scaled.
            self.scaled_is_last = false;
        }
        if !force_key && !self.keep_for_rate_cap(pts) {
            self.rung.counters.frames_dropped.fetch_add(1, Relaxed);
            return Ok(());
        }
        // Encoders need strictly increasing timestamps; a repeat is dropped and counted.
        if self.last_sent_pts.is_some_and(|last| pts <= last) {
            self.rung.counters.frames_dropped.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.last_kept_pts = Some(pts);
        self.last_sent_pts = Some(pts);
        if force_key {
            self.forced.push_back(pts);
        }
        let passthrough = frame.width() == self.rung.width
            && frame.height() == self.rung.height
            && frame.format() == PIX_FMT_YUV420P;
        let sent = if passthrough {
            self.rung.encoder.send_frame(Some(&frame))
        } else {
            // A repeated picture (the live clock's filler) is scaled once.
            if !self.scaled_is_last {
                self.scale(&frame)
                    .map_err(|e| Error::codec(format!("variant {} scaler", self.rung.name), e))?;
                self.scaled_is_last = true;
            }
            let scaled = self.scaled.as_mut().expect("scale() allocates it");
            scaled.set_pts(pts);
            scaled.set_force_keyframe(force_key);
            self.rung.encoder.send_frame(Some(scaled))
        };
        sent.map_err(|e| self.encoder_error(e))?;
        self.drain_packets(stats, publisher)
    }

    /// The frame-rate cap keeps a frame when at least one output interval has passed.
    fn keep_for_rate_cap(&self, pts: i64) -> bool {
        let (Some(cap), Some(last)) = (self.rung.max_frame_rate, self.last_kept_pts) else {
            return true;
        };
        let elapsed = (pts - last) as f64 * self.video_tb.as_f64();
        elapsed * cap >= 1.0 - 1e-3
    }

    fn scale(&mut self, src: &Frame) -> Result<(), crate::ffi::AvError> {
        if !self.scaler.as_ref().is_some_and(|s| s.accepts(src)) {
            self.scaler = Some(Scaler::new(
                (src.width(), src.height(), src.format()),
                (self.rung.width, self.rung.height, PIX_FMT_YUV420P),
            )?);
        }
        if self.scaled.is_none() {
            self.scaled = Some(Frame::alloc_video(
                self.rung.width,
                self.rung.height,
                PIX_FMT_YUV420P,
            )?);
        }
        let dst = self.scaled.as_mut().expect("allocated above");
        // The encoder may still reference the last picture; copy-on-write if so.
        dst.make_writable()?;
        self.scaler.as_mut().expect("created above").scale(src, dst)
    }

    fn drain_packets(&mut self, stats: &StatsCell, publisher: &Publisher) -> Result<(), Error> {
        loop {
            match self.rung.encoder.receive_packet(&mut self.packet) {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again | Step::Eof) => return Ok(()),
                Err(e) => return Err(self.encoder_error(e)),
            }
            let pkt = std::mem::take(&mut self.packet);
            self.mux_video(pkt, stats, publisher)?;
        }
    }

    fn mux_video(
        &mut self,
        mut pkt: Packet,
        stats: &StatsCell,
        publisher: &Publisher,
    ) -> Result<(), Error> {
        let tb = self.video_tb.as_f64();
        let pts = pkt.pts();
        if pkt.duration() <= 0 {
            pkt.set_duration(self.frame_ticks);
        }
        let cut = pkt.is_key() && self.is_cut(pts);
        if pkt.is_key() {
            while self.forced.front().is_some_and(|&f| f <= pts) {
                self.forced.pop_front();
            }
        }
        // Without a global header (MPEG-TS) the parameter sets are in the keyframes.
        if self.codecs.is_none() && self.rung.codec.traits().in_band_parameter_sets {
            self.codecs = video_codec_string(self.rung.codec, pkt.data());
        }
        // Audio that belongs before this packet: before the cut point for a segment start,
        // otherwise up to the packet's decode time.
        let limit = if cut {
            pts as f64 * tb
        } else {
            pkt.dts() as f64 * tb
        };
        self.write_audio_until(limit)?;
        let start = *self.first_pts.get_or_insert(pts as f64 * tb);
        let end = (pts + pkt.duration().max(0)) as f64 * tb;
        let done = self
            .rung
            .segmenter
            .write_video(pkt, cut)
            .map_err(Error::from)?;
        let counters = &self.rung.counters;
        counters.frames_out.fetch_add(1, Relaxed);
        let media_us = ((end - start).max(0.0) * 1e6) as u64;
        counters.media_us.fetch_max(media_us, Relaxed);
        if let Some(done) = done {
            self.publish(&done, stats, publisher);
            count_segment(&self.rung.counters, stats, done);
        }
        if let Some(opened) = self.rung.segmenter.take_opened() {
            let timescale = self.rung.segmenter.timescale();
            publisher.segment_opened(self.rung.index, &opened, timescale, stats);
        }
        Ok(())
    }

    /// Whether a keyframe at `pts` starts a segment: at (or past) the next forced boundary;
    /// with SVT-AV1, which places its own keyframes every segment of frames and cannot
    /// force one, every keyframe (its GOP may drift a frame from the time grid at rates
    /// such as 29.97: the segment is then cut where the keyframe is, never left to grow).
    fn is_cut(&self, pts: i64) -> bool {
        !self.rung.codec.traits().forced_keyframes || self.forced.front().is_some_and(|&f| f <= pts)
    }

    /// Tells the master, the DASH manifest and the hooks about a finished segment.
    fn publish(&self, done: &SegmentDone, stats: &StatsCell, publisher: &Publisher) {
        let codecs = self.codecs.as_deref().unwrap_or_default();
        let (index, name) = (self.rung.index, &self.rung.name);
        let timescale = self.rung.segmenter.timescale();
        publisher.segment_done(index, name, codecs, done, timescale, stats);
    }

    fn queue_audio(&mut self, pkt: Packet) -> Result<(), Error> {
        let t = pkt.pts() as f64 * self.rung.audio_tb.as_f64();
        self.audio_queue.push_back((t, pkt));
        // Without video moving, audio cannot wait forever.
        let lead = self.audio_queue.back().map_or(0.0, |b| b.0)
            - self.audio_queue.front().map_or(0.0, |f| f.0);
        if lead > MAX_AUDIO_LEAD {
            let (_, p) = self.audio_queue.pop_front().expect("non-empty");
            self.rung.segmenter.write_audio(p).map_err(Error::from)?;
        }
        Ok(())
    }

    fn write_audio_until(&mut self, limit: f64) -> Result<(), Error> {
        while self.audio_queue.front().is_some_and(|(t, _)| *t < limit) {
            let (_, p) = self.audio_queue.pop_front().expect("checked");
            self.rung.segmenter.write_audio(p).map_err(Error::from)?;
        }
        Ok(())
    }
}

/// The bitrates a finished rendition measured: the peak segment's, and bytes over media
/// time.
pub(crate) fn measured(counters: &VariantCounters, segmenter: &Segmenter) -> MeasuredBitrate {
    let media = counters.media_us.load(Relaxed) as f64 / 1e6;
    let bytes = counters.bytes_out.load(Relaxed) as f64;
    MeasuredBitrate {
        peak: segmenter.peak_bitrate(),
        average: if media > 0.0 {
            (bytes * 8.0 / media) as u64
        } else {
            0
        },
    }
}

/// Adds a finished segment to the counters.
pub(crate) fn count_segment(counters: &VariantCounters, stats: &StatsCell, done: SegmentDone) {
    if done.bytes > 0 || done.duration > 0.0 {
        counters.segments.fetch_add(1, Relaxed);
    }
    counters.bytes_out.fetch_add(done.bytes, Relaxed);
    stats.playlist_bytes.fetch_add(done.playlist_bytes, Relaxed);
    stats.sample_output_rate();
}
