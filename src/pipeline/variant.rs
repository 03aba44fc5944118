//! One rung of the ladder on its own thread: scale, encode, interleave with the shared
//! audio, and write segments and the media playlist.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::hls::{h264_codec_string, OutputError, SegmentDone, SegmentWriter};
use super::{Control, LadderState};
use crate::error::Error;
use crate::ffi::{CodecContext, Frame, Packet, Rational, Scaler, Step, PIX_FMT_YUV420P};
use crate::stats::{StatsCell, VariantCounters};

/// What the decode thread sends each variant.
pub(crate) enum VariantMsg {
    /// A decoded picture (a shared reference) with its pts in the encoder time base, and
    /// whether it starts a segment (a keyframe every variant places at the same pts).
    Video { frame: Frame, force_key: bool },
    /// An encoded AAC packet, in the audio encoder's time base.
    Audio(Packet),
    /// The source restarted: the next segment is marked `#EXT-X-DISCONTINUITY`.
    Discontinuity,
    /// The source is done: drain, finish the last segment, write ENDLIST.
    End,
}

/// Audio may run this far ahead of the video before it is written anyway (live sources
/// whose video paused), seconds.
const MAX_AUDIO_LEAD: f64 = 3.0;

pub(crate) struct VariantWorker {
    pub index: usize,
    pub name: String,
    pub width: i32,
    pub height: i32,
    pub encoder: CodecContext,
    pub writer: SegmentWriter,
    pub counters: Arc<VariantCounters>,
    pub max_frame_rate: Option<f64>,
    /// Test-only fault injection: panic after this many frames (see the config).
    pub panic_after_frames: Option<u64>,
    pub audio_tb: Rational,
    /// One output frame interval in the video time base, for packets the encoder left
    /// without a duration.
    frame_ticks: i64,
    scaler: Option<Scaler>,
    scaled: Option<Frame>,
    video_tb: Rational,
    last_kept_pts: Option<i64>,
    last_sent_pts: Option<i64>,
    /// pts of frames sent with a forced keyframe, waiting for their packet (the cut).
    forced: VecDeque<(i64, bool)>,
    /// The source restarted: the next forced keyframe starts a discontinuity.
    restart_pending: bool,
    audio_queue: VecDeque<(f64, Packet)>,
    codecs: Option<String>,
    first_pts: Option<f64>,
    packet: Packet,
}

impl VariantWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        name: String,
        width: i32,
        height: i32,
        encoder: CodecContext,
        writer: SegmentWriter,
        counters: Arc<VariantCounters>,
        max_frame_rate: Option<f64>,
        audio_tb: Rational,
        frame_rate: f64,
    ) -> Self {
        let video_tb = encoder.time_base();
        let frame_ticks = ((1.0 / frame_rate.max(1.0)) / video_tb.as_f64().max(f64::MIN_POSITIVE))
            .round()
            .max(1.0) as i64;
        Self {
            index,
            name,
            width,
            height,
            encoder,
            writer,
            counters,
            max_frame_rate,
            audio_tb,
            frame_ticks,
            panic_after_frames: None,
            scaler: None,
            scaled: None,
            video_tb,
            last_kept_pts: None,
            last_sent_pts: None,
            forced: VecDeque::new(),
            restart_pending: false,
            audio_queue: VecDeque::new(),
            codecs: None,
            first_pts: None,
            packet: Packet::new(),
        }
    }

    /// Runs until `End` (graceful: everything is flushed and listed) or until the sender
    /// goes away or an abort is requested (partial work dropped).
    /// Returns the measured (peak segment, average) bitrates, bits/s.
    pub fn run(
        mut self,
        rx: Receiver<VariantMsg>,
        control: &Control,
        stats: &StatsCell,
        ladder: &LadderState,
    ) -> Result<(u64, u64), Error> {
        let stream = control.stream_id();
        loop {
            if control.abort_requested() {
                return Err(Error::Aborted {
                    stream: stream.to_owned(),
                });
            }
            let Ok(msg) = rx.recv() else {
                // The decode thread dropped us without End: it is aborting or failing.
                return Err(Error::Aborted {
                    stream: stream.to_owned(),
                });
            };
            match msg {
                VariantMsg::Video { frame, force_key } => {
                    self.video(frame, force_key, stats, ladder)?
                }
                VariantMsg::Audio(pkt) => self.queue_audio(pkt, stream)?,
                VariantMsg::Discontinuity => self.restart_pending = true,
                VariantMsg::End => break,
            }
        }
        // Drain the encoder, then the audio that is left, then the last segment.
        self.encoder
            .send_frame(None)
            .map_err(|e| Error::codec(stream, format!("variant {} encoder", self.name), e))?;
        self.drain_packets(stats, ladder)?;
        while let Some((_, pkt)) = self.audio_queue.pop_front() {
            self.writer
                .write_audio(pkt)
                .map_err(|e| output_error(stream, e))?;
        }
        let name = self.name.clone();
        let index = self.index;
        let codecs = self.codecs.take();
        let counters = self.counters.clone();
        let last = self.writer.finish().map_err(|e| output_error(stream, e))?;
        if let Some(done) = last {
            account(&counters, stats, done);
        }
        if let Some(codecs) = codecs {
            ladder.segment_done(index, &codecs, stats);
        }
        let peak = self.writer.peak_bitrate();
        let media = counters.media_us.load(Relaxed) as f64 / 1e6;
        let average = if media > 0.0 {
            (counters.bytes_out.load(Relaxed) as f64 * 8.0 / media) as u64
        } else {
            0
        };
        log::debug!("stream {stream}: variant {name} finished");
        Ok((peak, average))
    }

    fn video(
        &mut self,
        frame: Frame,
        force_key: bool,
        stats: &StatsCell,
        ladder: &LadderState,
    ) -> Result<(), Error> {
        let stream = ladder.stream_id();
        if let Some(n) = self.panic_after_frames {
            if self.counters.frames_out.load(Relaxed) >= n {
                panic!(
                    "injected fault: variant {} panics after {n} frames",
                    self.name
                );
            }
        }
        let pts = frame.pts();
        if !force_key && !self.keep_for_rate_cap(pts) {
            self.counters.frames_dropped.fetch_add(1, Relaxed);
            return Ok(());
        }
        // Encoders need strictly increasing timestamps; a repeat is dropped and counted.
        if self.last_sent_pts.is_some_and(|last| pts <= last) {
            self.counters.frames_dropped.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.last_kept_pts = Some(pts);
        self.last_sent_pts = Some(pts);
        if force_key {
            // The first keyframe after a restart starts the segment marked as a
            // discontinuity (not whatever boundary the encoder still holds from before).
            self.forced
                .push_back((pts, std::mem::take(&mut self.restart_pending)));
        }
        let passthrough = frame.width() == self.width
            && frame.height() == self.height
            && frame.format() == PIX_FMT_YUV420P;
        if passthrough {
            self.encoder
                .send_frame(Some(&frame))
                .map_err(|e| encoder_error(stream, &self.name, e))?;
        } else {
            self.scale(&frame)
                .map_err(|e| Error::codec(stream, format!("variant {} scaler", self.name), e))?;
            let scaled = self.scaled.as_mut().expect("scale() allocates it");
            scaled.set_pts(pts);
            scaled.set_force_keyframe(force_key);
            self.encoder
                .send_frame(Some(scaled))
                .map_err(|e| encoder_error(stream, &self.name, e))?;
        }
        self.drain_packets(stats, ladder)
    }

    /// The frame-rate cap keeps a frame when at least one output interval has passed.
    fn keep_for_rate_cap(&self, pts: i64) -> bool {
        let (Some(cap), Some(last)) = (self.max_frame_rate, self.last_kept_pts) else {
            return true;
        };
        let elapsed = (pts - last) as f64 * self.video_tb.as_f64();
        elapsed * cap >= 1.0 - 1e-3
    }

    fn scale(&mut self, src: &Frame) -> Result<(), crate::ffi::AvError> {
        if !self.scaler.as_ref().is_some_and(|s| s.accepts(src)) {
            self.scaler = Some(Scaler::new(
                (src.width(), src.height(), src.format()),
                (self.width, self.height, PIX_FMT_YUV420P),
            )?);
        }
        if self.scaled.is_none() {
            self.scaled = Some(Frame::alloc_video(
                self.width,
                self.height,
                PIX_FMT_YUV420P,
            )?);
        }
        let dst = self.scaled.as_mut().expect("allocated above");
        // The encoder may still reference the last picture; copy-on-write if so.
        dst.make_writable()?;
        self.scaler.as_mut().expect("created above").scale(src, dst)
    }

    fn drain_packets(&mut self, stats: &StatsCell, ladder: &LadderState) -> Result<(), Error> {
        let stream = ladder.stream_id();
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again | Step::Eof) => return Ok(()),
                Err(e) => return Err(encoder_error(stream, &self.name, e)),
            }
            let pkt = std::mem::take(&mut self.packet);
            self.mux_video(pkt, stats, ladder)?;
        }
    }

    fn mux_video(
        &mut self,
        mut pkt: Packet,
        stats: &StatsCell,
        ladder: &LadderState,
    ) -> Result<(), Error> {
        let stream = ladder.stream_id();
        let tb = self.video_tb.as_f64();
        let pts = pkt.pts();
        if pkt.duration() <= 0 {
            pkt.set_duration(self.frame_ticks);
        }
        let cut = pkt.is_key() && self.forced.front().is_some_and(|f| f.0 == pts);
        if cut {
            let (_, restart) = self.forced.pop_front().expect("checked");
            if restart {
                self.writer.mark_discontinuity();
            }
        }
        if self.codecs.is_none() {
            if let Some(avc) = h264_codec_string(pkt.data()) {
                let audio = if self.audio_tb.den > 1 {
                    ",mp4a.40.2"
                } else {
                    ""
                };
                self.codecs = Some(format!("{avc}{audio}"));
            }
        }
        // Audio that belongs before this packet: before the cut point for a segment start,
        // otherwise up to the packet's decode time.
        let limit = if cut {
            pts as f64 * tb
        } else {
            pkt.dts() as f64 * tb
        };
        self.write_audio_until(limit, stream)?;
        let start = *self.first_pts.get_or_insert(pts as f64 * tb);
        let end = (pts + pkt.duration().max(0)) as f64 * tb;
        let done = self
            .writer
            .write_video(pkt, cut)
            .map_err(|e| output_error(stream, e))?;
        self.counters.frames_out.fetch_add(1, Relaxed);
        let media_us = ((end - start).max(0.0) * 1e6) as u64;
        self.counters.media_us.fetch_max(media_us, Relaxed);
        if let Some(done) = done {
            account(&self.counters, stats, done);
            if let Some(codecs) = &self.codecs {
                ladder.segment_done(self.index, codecs, stats);
            }
        }
        Ok(())
    }

    fn queue_audio(&mut self, pkt: Packet, stream: &str) -> Result<(), Error> {
        let t = pkt.pts() as f64 * self.audio_tb.as_f64();
        self.audio_queue.push_back((t, pkt));
        // Without video moving, audio cannot wait forever.
        let lead = self.audio_queue.back().map_or(0.0, |b| b.0)
            - self.audio_queue.front().map_or(0.0, |f| f.0);
        if lead > MAX_AUDIO_LEAD {
            let (_, p) = self.audio_queue.pop_front().expect("non-empty");
            return self
                .writer
                .write_audio(p)
                .map_err(|e| output_error(stream, e));
        }
        Ok(())
    }

    fn write_audio_until(&mut self, limit: f64, stream: &str) -> Result<(), Error> {
        while self.audio_queue.front().is_some_and(|(t, _)| *t < limit) {
            let (_, p) = self.audio_queue.pop_front().expect("checked");
            self.writer
                .write_audio(p)
                .map_err(|e| output_error(stream, e))?;
        }
        Ok(())
    }
}

/// Built only when an error happens, never on the frame path.
fn encoder_error(stream: &str, variant: &str, e: crate::ffi::AvError) -> Error {
    Error::codec(stream, format!("variant {variant} encoder"), e)
}

fn account(counters: &VariantCounters, stats: &StatsCell, done: SegmentDone) {
    if done.bytes > 0 || done.duration > 0.0 {
        counters.segments.fetch_add(1, Relaxed);
    }
    counters.bytes_out.fetch_add(done.bytes, Relaxed);
    stats.playlist_bytes.fetch_add(done.playlist_bytes, Relaxed);
}

pub(crate) fn output_error(stream: &str, e: OutputError) -> Error {
    match e {
        OutputError::Mux(path, e) => Error::output_av(stream, path, &e),
        OutputError::Io(path, e) => Error::output(stream, path, &e),
    }
}
