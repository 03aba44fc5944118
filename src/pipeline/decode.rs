//! The decode thread: read the source, decode video once, place each frame on the stream's
//! one timeline ([`Timeline`]), and fan it out to every variant; decode and encode audio
//! once. A reopened source continues the same timeline (after a discontinuity, or resuming
//! a file right after the last frame sent).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::audio::AudioChain;
use super::control::{Ending, PipelineEvent, Signals, Supervisor};
use super::errors::{hardware_error, invalid_input, stalled, stalled_read};
use super::feed::Feed;
use super::inputs::Inputs;
use super::session::{check_picture, refused_picture, Session};
use super::timeline::Timeline;
use super::upright::{Orientation, Upright};
use crate::config::StreamConfig;
use crate::error::{Error, ErrorKind};
use crate::ffi::{AvError, CodecContext, Frame, Packet, Rational, Step, AVERROR_EOF, NO_PTS};
use crate::stats::InputCounters;
use crate::stats::StatsCell;

/// Where a reopened file source continues: the last video/audio timestamps already sent.
#[derive(Debug, Clone, Copy)]
struct ResumePoint {
    video: Option<i64>,
    audio: Option<i64>,
}

/// The decode thread's state: the output timeline and the routes to the variants.
pub(crate) struct DecodeLoop<'a> {
    config: &'a StreamConfig,
    signals: &'a Signals,
    stats: &'a StatsCell,
    /// Where decoded pictures and audio go: the renditions, or a live output's clock.
    feed: &'a Feed,
    timeline: Timeline,
    /// The end of a live source is an outage (the recovery reconnects) rather than the end.
    live_end_is_outage: bool,
    /// The last video frame's and audio packet's timestamps in the source's time bases,
    /// where a reopened file source resumes.
    last_src_video: Option<i64>,
    last_src_audio: Option<i64>,
    /// Set after reopening a file source: media up to here was already sent.
    resume: Option<ResumePoint>,
    /// Test-only fault injection: a hardware failure after this many frames.
    #[cfg(feature = "fault-injection")]
    hardware_fault_in: Option<u64>,
    frame: Frame,
    /// Turns this session's pictures upright (its display matrix), before the fan-out.
    upright: Upright,
    /// Fits pictures of another shape than the first (a backup's) into its size.
    fit: super::slate::Fit,
    /// The last decoded picture size, checked against the limit whenever it changes.
    picture_size: (i32, i32),
    /// No video frame decoded yet on this connection: the next one means media flows
    /// (reported as `Running`).
    awaiting_media: bool,
    /// A frame was decoded on a new connection; `Running` is reported by the read loop.
    media_flowing: bool,
    /// When each recent video packet was read (its pts in the source's time base): a
    /// segment's `#EXT-X-PROGRAM-DATE-TIME` is when its first frame's packet was read
    /// (sources carry no capture time).
    read_at: ReadTimes,
    /// A taken-over input's catch-up: frames before this source pts, and audio before this
    /// many seconds, were read while another input played (decoded, not sent).
    catch_up: Option<(i64, f64)>,
    /// The active input's frame count (with backups).
    input_frames: Option<std::sync::Arc<InputCounters>>,
}

impl<'a> DecodeLoop<'a> {
    /// A decode loop feeding the renditions through `fan`.
    pub fn new(
        config: &'a StreamConfig,
        signals: &'a Signals,
        stats: &'a StatsCell,
        feed: &'a Feed,
        timeline: Timeline,
        live_end_is_outage: bool,
    ) -> Self {
        Self {
            config,
            signals,
            stats,
            feed,
            timeline,
            live_end_is_outage,
            last_src_video: None,
            read_at: ReadTimes::default(),
            last_src_audio: None,
            resume: None,
            #[cfg(feature = "fault-injection")]
            hardware_fault_in: config.faults().hardware_loss_after_frames,
            frame: Frame::new(),
            upright: Upright::new(Orientation::default(), Rational::new(1, 90_000)),
            fit: super::slate::Fit::default(),
            picture_size: (0, 0),
            awaiting_media: true,
            media_flowing: false,
            catch_up: None,
            input_frames: None,
        }
    }

    /// The stream's signals.
    pub fn signals(&self) -> &Signals {
        self.signals
    }

    /// The stream's id.
    pub fn id(&self) -> &str {
        self.config.id()
    }

    /// The longest a stream may be without any input (the recovery policy's).
    pub fn max_outage(&self) -> Duration {
        self.config.recovery().max_outage
    }

    /// A new connection to the source (after an outage): its first frame continues the
    /// timeline right after the last one sent, whatever its timestamp, and the audio
    /// follows. The encoders and outputs never stopped, so the output stays one continuous
    /// stream: no discontinuity is needed (or written) for a reconnect.
    pub fn continue_after_outage(&mut self, audio: Option<&mut AudioChain>) {
        self.timeline.restart();
        if let (Some(a), Some(next)) = (audio, self.timeline.next_frame_time()) {
            a.resync(next);
        }
        self.awaiting_media = true;
    }

    /// The same file source was reopened (after a hardware failure): seek back to the last
    /// frame sent and drop what comes before it again, so nothing is lost or sent twice.
    pub fn resume(&mut self, session: &mut Session) -> Result<(), Error> {
        let point = ResumePoint {
            video: self.last_src_video,
            audio: self.last_src_audio,
        };
        if let Some(v) = point.video {
            let index = session.video.index;
            session
                .input
                .seek_before(index, v)
                .map_err(|e| Error::source_io(self.config.source(), "seeking", &e))?;
        }
        self.resume = Some(point);
        self.awaiting_media = true;
        Ok(())
    }

    /// Reads and decodes until the source ends, a stop, or an error. Frames already decoded
    /// are always flushed to the variants before returning (except on abort).
    pub fn run_session(
        &mut self,
        session: &mut Session,
        mut audio: Option<&mut AudioChain>,
        supervisor: &mut dyn Supervisor,
        inputs: Option<&mut Inputs>,
    ) -> Result<Ending, Error> {
        self.upright = Upright::new(session.orientation, session.video.time_base);
        self.read_at
            .start(session.reading_since, session.video.time_base);
        self.catch_up = session
            .catch_up_until
            .take()
            .map(|pts| (pts, pts as f64 * session.video.time_base.as_f64()));
        self.input_frames = inputs.as_deref().map(|i| i.counters[i.active()].clone());
        let result = self.read_loop(session, audio.as_deref_mut(), supervisor, inputs);
        match &result {
            Err(Error::Aborted { .. }) => return result,
            Err(e) if e.kind() != ErrorKind::SourceIo => return result,
            Ok(Ending::Switch) | Err(_) => {}
            Ok(_) => supervisor.report(PipelineEvent::Draining),
        }
        // Drain: every frame decoded so far reaches every variant.
        let tb = session.video.time_base;
        self.decode_video(&mut session.video_decoder, None, tb, session.on_hardware)?;
        if let Some(a) = audio {
            self.decode_audio(a, None)?;
        }
        result
    }

    /// A stop, an abort or a stall report ends the read loop.
    fn signalled(&self) -> Option<Result<Ending, Error>> {
        if self.signals.abort_requested() {
            Some(Err(Error::aborted()))
        } else if self.signals.stop_requested() {
            Some(Ok(Ending::Stopped))
        } else if self.signals.take_stall() {
            Some(Err(stalled(self.config)))
        } else {
            None
        }
    }

    fn read_loop(
        &mut self,
        session: &mut Session,
        mut audio: Option<&mut AudioChain>,
        supervisor: &mut dyn Supervisor,
        mut inputs: Option<&mut Inputs>,
    ) -> Result<Ending, Error> {
        let mut pkt = Packet::new();
        let interrupt = session.interrupt.clone();
        // With backups, an input that sends nothing for the loss delay is lost.
        let read_timeout = session.read_timeout(self.config);
        let read_timeout = inputs
            .as_deref()
            .map_or(read_timeout, |i| i.read_timeout(read_timeout));
        let mut last_good = Instant::now();
        loop {
            if let Some(end) = self.signalled() {
                return end;
            }
            if inputs
                .as_deref_mut()
                .is_some_and(Inputs::take_primary_when_due)
            {
                return Ok(Ending::Switch);
            }
            let r = match session.pending.pop_front() {
                // What a taken-over input kept comes first.
                Some(kept) => {
                    pkt = kept;
                    Ok(Step::Ready(()))
                }
                None => {
                    // The deadline runs from the last good packet, so a source that only
                    // sends damage stalls like one that sends nothing.
                    interrupt.arm(read_timeout.saturating_sub(last_good.elapsed()));
                    let r = session.input.read(&mut pkt);
                    interrupt.disarm();
                    r
                }
            };
            // A URL the source named was refused (a demuxer may have skipped it and gone
            // on): that is the stream's end, whatever the read said.
            if let Some(refused) = session.input.refusal() {
                return Err(super::guard::forbidden(refused));
            }
            match r {
                Ok(Step::Ready(())) => last_good = Instant::now(),
                Ok(Step::Again) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                r => {
                    let stall = interrupt
                        .timed_out()
                        .then(|| stalled_read(self.config, inputs.as_deref(), read_timeout));
                    let end = match r {
                        Err(e) => self.read_failure(session, e, stall),
                        _ => Some(self.end_of_source(session, stall)),
                    };
                    match end {
                        Some(end) => return end,
                        None => continue,
                    }
                }
            }
            self.stats.packets_in.fetch_add(1, Relaxed);
            self.stats.bytes_in.fetch_add(pkt.size() as u64, Relaxed);
            if pkt.is_corrupt() {
                self.stats.corrupt_packets.fetch_add(1, Relaxed);
            }
            self.route_packet(session, &pkt, audio.as_deref_mut())?;
            if std::mem::take(&mut self.media_flowing) {
                // The state follows the source: `Running` once frames come, whichever
                // way the source came back.
                supervisor.report(PipelineEvent::Running);
            }
        }
    }

    /// The demuxer reported the end. Some (MPEG-TS) report a read cut by a stop, an abort,
    /// a timeout or the watchdog as an end of file: the cut wins over the "end";
    /// `stall` is the error when the read timed out.
    fn end_of_source(&self, session: &mut Session, stall: Option<Error>) -> Result<Ending, Error> {
        if let Some(end) = self.signalled() {
            return end;
        }
        if let Some(e) = session.reader_error(self.config) {
            return Err(e); // an application's reader failed: that is no end
        }
        if let Some(stall) = stall {
            return Err(stall);
        }
        if session.live && self.live_end_is_outage {
            // A live source does not end; the publisher went away.
            let message = "the live source ended".to_owned();
            let url = self.config.source();
            return Err(Error::source_io_message(
                url,
                "reading",
                AVERROR_EOF,
                message,
            ));
        }
        Ok(Ending::SourceEnded)
    }

    /// A read failed: the run ends (stop, abort, stall, I/O error), or `None` to skip a
    /// damaged packet and go on; `stall` is the error when the read timed out.
    fn read_failure(
        &self,
        session: &mut Session,
        e: AvError,
        stall: Option<Error>,
    ) -> Option<Result<Ending, Error>> {
        if self.signals.abort_requested() {
            return Some(Err(Error::aborted()));
        }
        if self.signals.stop_requested() {
            return Some(Ok(Ending::Stopped));
        }
        if let Some(e) = session.reader_error(self.config) {
            return Some(Err(e));
        }
        if let Some(stall) = stall {
            self.signals.take_stall();
            return Some(Err(stall));
        }
        if e.is_invalid_data() {
            self.stats.corrupt_packets.fetch_add(1, Relaxed);
            return None;
        }
        Some(Err(Error::source_io(self.config.source(), "reading", &e)))
    }

    /// Sends a packet to its decoder (video, or audio when the stream has an audio chain).
    fn route_packet(
        &mut self,
        session: &mut Session,
        pkt: &Packet,
        audio: Option<&mut AudioChain>,
    ) -> Result<(), Error> {
        let index = pkt.stream_index();
        if index == session.video.index as i32 {
            self.read_at.note(pkt.pts());
            let tb = session.video.time_base;
            if pkt.has_new_extradata() {
                // A new encoder on the same connection (a publisher restarted): the
                // decoder first gives up every frame it still holds of the old one, so
                // none is lost, then starts afresh.
                let hw = session.on_hardware;
                self.decode_video(&mut session.video_decoder, None, tb, hw)?;
                session.video_decoder.flush();
            }
            return self.decode_video(
                &mut session.video_decoder,
                Some(pkt),
                tb,
                session.on_hardware,
            );
        }
        if session
            .audio
            .as_ref()
            .is_none_or(|a| a.index as i32 != index)
        {
            return Ok(());
        }
        let already_sent = self
            .resume
            .and_then(|r| r.audio)
            .is_some_and(|a| pkt.pts() != NO_PTS && pkt.pts() <= a);
        if already_sent {
            return Ok(()); // fed before the source was reopened
        }
        if let (Some((_, until)), Some(info)) = (self.catch_up, &session.audio) {
            let at = pkt.pts() as f64 * info.time_base.as_f64();
            if pkt.pts() != NO_PTS && at < until {
                return Ok(()); // read while another input played
            }
        }
        if pkt.pts() != NO_PTS {
            self.last_src_audio = Some(pkt.pts());
        }
        match audio {
            Some(a) => self.decode_audio(a, Some(pkt)),
            None => Ok(()),
        }
    }

    fn video_decoder_error(&self, on_hardware: bool, e: AvError) -> Error {
        if let Some(too_large) = refused_picture(self.config) {
            return too_large;
        }
        if on_hardware {
            hardware_error(self.config, format!("decoding: {e}"), Some(e.code))
        } else {
            Error::codec("video decoder", e)
        }
    }

    fn decode_video(
        &mut self,
        dec: &mut CodecContext,
        pkt: Option<&Packet>,
        src_tb: Rational,
        on_hardware: bool,
    ) -> Result<(), Error> {
        match dec.send_packet(pkt) {
            Ok(_) => {}
            Err(e) if e.is_invalid_data() => {
                self.stats.corrupt_packets.fetch_add(1, Relaxed);
            }
            Err(e) => return Err(self.video_decoder_error(on_hardware, e)),
        }
        loop {
            match dec.receive_frame(&mut self.frame) {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again | Step::Eof) => return Ok(()),
                Err(e) if e.is_invalid_data() => {
                    self.stats.corrupt_packets.fetch_add(1, Relaxed);
                    continue;
                }
                Err(e) => return Err(self.video_decoder_error(on_hardware, e)),
            }
            let size = (self.frame.width(), self.frame.height());
            if size != self.picture_size {
                check_picture("decoded", size).map_err(|r| invalid_input(self.config, r, None))?;
                self.picture_size = size;
            }
            #[cfg(feature = "fault-injection")]
            if self
                .hardware_fault_in
                .is_some_and(|n| self.stats.frames_in.load(Relaxed) >= n)
            {
                self.hardware_fault_in = None;
                let reason = "injected fault: the device was lost".to_owned();
                return Err(hardware_error(self.config, reason, None));
            }
            let mut frame = std::mem::take(&mut self.frame);
            if frame.is_hardware() {
                frame = frame.download().map_err(|e| {
                    let reason = format!("copying a decoded picture to memory: {e}");
                    hardware_error(self.config, reason, Some(e.code))
                })?;
            }
            self.fan_out(frame, src_tb)?;
        }
    }

    /// Places a decoded frame on the output timeline (pts, segment-boundary keyframe), turns
    /// it upright, and shares it with every variant.
    fn fan_out(&mut self, frame: Frame, src_tb: Rational) -> Result<(), Error> {
        let raw = frame.best_effort_pts();
        if let Some((until, _)) = self.catch_up {
            if raw != NO_PTS && raw < until {
                return Ok(()); // read while another input played: decoded, not sent
            }
            self.catch_up = None;
        }
        if let Some(r) = self.resume {
            if r.video.is_some_and(|v| raw != NO_PTS && raw <= v) {
                return Ok(()); // sent before the source was reopened
            }
            self.resume = None;
        }
        if raw != NO_PTS {
            self.last_src_video = Some(raw);
        }
        // Once, here, so that no rung has to: every rung scales the upright picture.
        let frame = self
            .upright
            .apply(frame)
            .map_err(|e| Error::codec("video filter (upright picture)", e))?;
        let mut frame = self
            .fit
            .apply(frame)
            .map_err(|e| Error::codec("video filter (fitting another input's picture)", e))?;
        let stamp = self.timeline.stamp(raw, src_tb);
        if stamp.repaired {
            log::warn!(
                "stream {}: source timestamps went backwards; continuing the timeline",
                self.config.id()
            );
        }
        self.stats.frames_in.fetch_add(1, Relaxed);
        if let Some(input) = &self.input_frames {
            input.frames.fetch_add(1, Relaxed);
        }
        self.stats.media_us.fetch_max(stamp.media_us, Relaxed);
        if std::mem::take(&mut self.awaiting_media) {
            self.media_flowing = true;
        }
        frame.set_pts(stamp.pts);
        frame.set_force_keyframe(stamp.starts_segment);
        // Segment starts carry the wall clock of their packet's read (a live clock wants it
        // for every frame).
        let read_at = &self.read_at;
        self.feed.picture(
            frame,
            stamp.starts_segment,
            || read_at.of(raw),
            self.signals,
        )
    }

    fn decode_audio(&mut self, audio: &mut AudioChain, pkt: Option<&Packet>) -> Result<(), Error> {
        let offset = self.timeline.audio_offset();
        let (frames, corrupt) = audio.push(pkt, offset, &mut |enc, packet| {
            self.route_audio(enc, packet)
        })?;
        self.stats.audio_frames_in.fetch_add(frames, Relaxed);
        if corrupt {
            self.stats.corrupt_packets.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// The stream is done: the audio encoders' tail goes out too.
    pub fn flush_audio(&mut self, audio: &mut AudioChain) -> Result<(), Error> {
        audio.flush(&mut |enc, packet| self.route_audio(enc, packet))
    }

    /// Hands an AAC packet to every rendition that carries that encoder's audio.
    fn route_audio(&self, encoder: usize, packet: Packet) -> Result<(), Error> {
        self.feed.audio(encoder, packet, self.signals)
    }

    /// Tells every rendition the stream is over (they drain and write their last segment).
    pub fn end_variants(&self, endlist: bool) -> Result<(), Error> {
        self.feed.end(endlist, self.signals)
    }
}

/// When recent video packets arrived, by pts (a decoder holds a few frames, reordered).
///
/// A demuxer reads ahead while the source is probed and hands those packets over later, in
/// a burst: their arrival is estimated as no later than the session's first byte plus
/// their media time since the first packet (a live source cannot deliver media faster than
/// it plays), and no later than when they are handed over.
#[derive(Default)]
struct ReadTimes {
    packets: std::collections::VecDeque<(i64, std::time::SystemTime)>,
    /// When the session began reading, the first packet's pts and the video time base.
    since: Option<(std::time::SystemTime, Option<i64>, f64)>,
}

impl ReadTimes {
    /// Packets a decoder may still hold, at most (reordering, threads, lookahead).
    const KEPT: usize = 128;
    /// Behind its pace by more than this, a source stalled (a probe reads ahead less).
    const REANCHOR: std::time::Duration = std::time::Duration::from_secs(3);

    /// A new session, reading since `since`, its video in time base `tb`.
    fn start(&mut self, since: std::time::SystemTime, tb: Rational) {
        self.since = Some((since, None, tb.as_f64()));
    }

    /// A video packet with `pts` was handed over now.
    fn note(&mut self, pts: i64) {
        let now = std::time::SystemTime::now();
        let arrived = match &mut self.since {
            Some((since, first, tb)) if pts != NO_PTS => {
                let media = (pts - *first.get_or_insert(pts)) as f64 * *tb;
                let paced = *since + std::time::Duration::from_secs_f64(media.max(0.0));
                let behind = now.duration_since(paced).unwrap_or_default();
                // A jump back, or a source this far behind its pace (it stalled): the
                // estimate is anchored afresh here.
                if media < 0.0 || behind > Self::REANCHOR {
                    (*since, *first) = (now, Some(pts));
                    now
                } else {
                    paced.min(now)
                }
            }
            _ => now,
        };
        if self.packets.len() >= Self::KEPT {
            self.packets.pop_front();
        }
        self.packets.push_back((pts, arrived));
    }

    /// When the packet of the frame at `pts` arrived: its own entry, else the latest
    /// (a frame without a pts, or one whose packet's pts was not kept).
    fn of(&self, pts: i64) -> std::time::SystemTime {
        let own = self
            .packets
            .iter()
            .rev()
            .find(|(p, _)| *p == pts && pts != NO_PTS);
        own.or(self.packets.back())
            .map_or_else(std::time::SystemTime::now, |(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn packets_read_ahead_while_probing_are_placed_on_the_sources_pace() {
        let mut times = ReadTimes::default();
        // Opened 2 s ago; 30 fps packets (ticks of 1/90000) handed over in a burst now.
        let since = SystemTime::now() - Duration::from_secs(2);
        times.start(since, Rational::new(1, 90_000));
        for n in 0..10 {
            times.note(1000 + n * 3000);
        }
        let offset = |pts| times.of(pts).duration_since(since).unwrap().as_secs_f64();
        assert!(
            offset(1000) < 0.01,
            "the first packet arrived when reading began"
        );
        assert!(
            (offset(1000 + 9 * 3000) - 0.3).abs() < 0.01,
            "the tenth 0.3 s later"
        );
        // A jump back in pts: anchored afresh, at the time it was handed over.
        times.note(0);
        let now = SystemTime::now();
        assert!(now.duration_since(times.of(0)).unwrap() < Duration::from_millis(100));
        // Unknown pts: the latest arrival.
        assert_eq!(times.of(NO_PTS), times.of(0));
    }
}
