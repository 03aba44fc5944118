//! The decode thread: read the source, decode video once, stamp each frame onto the
//! stream's one continuous timeline (across reconnects), and fan it out to every variant;
//! decode and encode audio once. Also the recovery loop that reopens a lost source.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};

use super::audio::{self, AudioChain};
use super::source::{self, Source};
use super::variant::VariantMsg;
use super::{Control, Ending, PipelineEvent};
use crate::config::{BackoffTimer, Reconnect, StreamConfig};
use crate::error::Error;
use crate::ffi::{
    rescale, CodecContext, Dictionary, Frame, HwDeviceContext, Packet, Rational, Step, NO_PTS,
};
use crate::stats::StatsCell;

/// One connection to the source: its demuxer and video decoder.
pub(crate) struct Session {
    pub src: Source,
    video_dec: CodecContext,
    /// Decoding on a hardware device: decoder failures are hardware failures.
    on_hardware: bool,
}

impl Session {
    /// Opens the source and its decoders (audio goes to the persistent `audio` chain).
    pub fn open(
        config: &StreamConfig,
        control: &Control,
        hw: Option<&HwDeviceContext>,
        audio: Option<&mut AudioChain>,
    ) -> Result<Session, Error> {
        let mut src = source::open(config, &control.interrupt)?;
        let v = src.video.clone();
        let mut opts = Dictionary::new();
        opts.set("max_pixels", &source::MAX_PIXELS.to_string())
            .map_err(|e| Error::codec(config.id(), "video decoder options", e))?;
        let video_dec = src
            .input
            .open_decoder(v.index, opts, hw)
            .map_err(|e| audio::decoder_error(config.id(), &v, e))?;
        if let Some(chain) = audio {
            chain.attach(src.audio.as_ref().map(|a| (&src.input, a)))?;
        }
        let keep: Vec<usize> = std::iter::once(v.index)
            .chain(src.audio.as_ref().map(|a| a.index))
            .collect();
        src.input.keep_only(&keep);
        Ok(Session {
            src,
            video_dec,
            on_hardware: hw.is_some(),
        })
    }
}

/// True when the policy reconnects this stream's source at all.
fn reconnect_wanted(config: &StreamConfig) -> bool {
    let policy = config.recovery();
    policy.max_attempts > 0
        && match policy.reconnect {
            Reconnect::Always => true,
            Reconnect::Never => false,
            _ => config.is_network_source(),
        }
}

/// True when the policy reconnects after this error.
pub(crate) fn should_reconnect(config: &StreamConfig, error: &Error) -> bool {
    reconnect_wanted(config) && error.kind() == crate::error::ErrorKind::SourceIo
}

/// Reopens the source after `error` with backoff, within the policy's bounds. `Ok(None)`
/// when a stop was requested meanwhile; the last error when the policy is exhausted.
pub(crate) fn reconnect(
    config: &StreamConfig,
    control: &Control,
    stats: &StatsCell,
    hw: Option<&HwDeviceContext>,
    mut audio: Option<&mut AudioChain>,
    error: Error,
) -> Result<Option<Session>, Error> {
    let policy = config.recovery();
    let outage = Instant::now();
    let mut last = error;
    let mut timer = BackoffTimer::new(policy.backoff, config.id());
    for attempt in 1..=policy.max_attempts {
        let left = policy.max_outage.saturating_sub(outage.elapsed());
        if left.is_zero() {
            break;
        }
        let wait = timer.wait(attempt).min(left);
        log::info!(
            "stream {}: reconnecting in {wait:?} (attempt {attempt}/{}) after: {last}",
            config.id(),
            policy.max_attempts
        );
        if control.sleep_unless_stopped(wait) {
            return if control.abort_requested() {
                Err(Error::Aborted {
                    stream: config.id().to_owned(),
                })
            } else {
                Ok(None)
            };
        }
        match Session::open(config, control, hw, audio.as_deref_mut()) {
            Ok(s) => return Ok(Some(s)),
            Err(Error::Aborted { .. })
                if control.stop_requested() && !control.abort_requested() =>
            {
                return Ok(None)
            }
            Err(e) if should_reconnect(config, &e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The decode thread's state: the output timeline and the routes to the variants.
pub(crate) struct DecodeLoop<'a> {
    pub config: &'a StreamConfig,
    pub control: &'a Control,
    pub stats: &'a StatsCell,
    pub senders: &'a [Sender<VariantMsg>],
    /// Variants fed by each audio encoder, by encoder index.
    audio_targets: Vec<Vec<usize>>,
    /// The encoders' time base: the first source's video time base.
    pub time_base: Rational,
    pub seg_ticks: i64,
    pub frame_ticks: i64,
    /// Added to the current source's (rescaled) timestamps to continue the timeline.
    offset: i64,
    /// Set when the next frame starts a new timeline piece (first frame, reconnect, or a
    /// source whose timestamps went backwards).
    rebase: bool,
    first_pts: Option<i64>,
    next_boundary: i64,
    last_pts: Option<i64>,
    /// The last video frame's and audio packet's timestamps in the source's time bases,
    /// where a reopened file source resumes.
    last_src_video: Option<i64>,
    last_src_audio: Option<i64>,
    /// Set after reopening a file source: media up to here was already sent.
    resume: Option<ResumePoint>,
    /// Test-only fault injection: a hardware failure after this many frames.
    hardware_fault_in: Option<u64>,
    frame: Frame,
}

/// Where a reopened file source continues: the last video/audio timestamps already sent.
#[derive(Debug, Clone, Copy)]
struct ResumePoint {
    video: Option<i64>,
    audio: Option<i64>,
}

impl<'a> DecodeLoop<'a> {
    pub fn new(
        config: &'a StreamConfig,
        control: &'a Control,
        stats: &'a StatsCell,
        senders: &'a [Sender<VariantMsg>],
        audio_route: &'a [Option<usize>],
        time_base: Rational,
        frame_rate: f64,
    ) -> Self {
        let us = Rational::new(1, 1_000_000);
        let seg = config.profile().segment_duration;
        Self {
            config,
            control,
            stats,
            senders,
            audio_targets: {
                let n = audio_route.iter().flatten().max().map_or(0, |m| m + 1);
                (0..n)
                    .map(|enc| {
                        (0..audio_route.len())
                            .filter(|&v| audio_route[v] == Some(enc))
                            .collect()
                    })
                    .collect()
            },
            time_base,
            seg_ticks: rescale(seg.as_micros() as i64, us, time_base).max(1),
            frame_ticks: rescale((1e6 / frame_rate).round() as i64, us, time_base).max(1),
            offset: 0,
            rebase: false,
            first_pts: None,
            next_boundary: 0,
            last_pts: None,
            last_src_video: None,
            last_src_audio: None,
            resume: None,
            hardware_fault_in: config.hardware_loss_after_frames(),
            frame: Frame::new(),
        }
    }

    fn stream(&self) -> &str {
        self.config.id()
    }

    fn aborted(&self) -> Error {
        Error::Aborted {
            stream: self.stream().to_owned(),
        }
    }

    /// The source restarted: the next frame continues the timeline right after the last
    /// one, starts a segment, and every variant marks a discontinuity there.
    pub fn discontinuity(&mut self, audio: Option<&mut AudioChain>) -> Result<(), Error> {
        self.rebase = true;
        if let (Some(a), Some(last)) = (audio, self.last_pts) {
            a.resync((last + self.frame_ticks) as f64 * self.time_base.as_f64());
        }
        for tx in self.senders {
            self.send(tx, VariantMsg::Discontinuity)?;
        }
        Ok(())
    }

    /// The same file source was reopened (after a hardware failure): seek back to the last
    /// frame sent and drop what comes before it again, so nothing is lost or sent twice.
    pub fn resume(&mut self, session: &mut Session) -> Result<(), Error> {
        let point = ResumePoint {
            video: self.last_src_video,
            audio: self.last_src_audio,
        };
        if let Some(v) = point.video {
            let index = session.src.video.index;
            session
                .src
                .input
                .seek_before(index, v)
                .map_err(|e| Error::SourceIo {
                    stream: self.stream().to_owned(),
                    url: self.config.source().to_owned(),
                    op: "seeking",
                    code: e.code,
                    message: e.message(),
                })?;
        }
        self.resume = Some(point);
        Ok(())
    }

    /// Reads and decodes until the source ends, a stop, or an error. Frames already decoded
    /// are always flushed to the variants before returning (except on abort).
    pub fn run_session(
        &mut self,
        session: &mut Session,
        mut audio: Option<&mut AudioChain>,
        events: &mut dyn FnMut(PipelineEvent),
    ) -> Result<Ending, Error> {
        let result = self.read_loop(session, audio.as_deref_mut());
        match &result {
            Err(Error::Aborted { .. }) => return result,
            Err(e) if e.kind() != crate::error::ErrorKind::SourceIo => return result,
            Ok(_) => events(PipelineEvent::Draining),
            Err(_) => {}
        }
        // Drain: every frame decoded so far reaches every variant.
        let tb = session.src.video.time_base;
        self.decode_video(&mut session.video_dec, None, tb, session.on_hardware)?;
        if let Some(a) = audio {
            self.decode_audio(a, None)?;
        }
        result
    }

    fn read_loop(
        &mut self,
        session: &mut Session,
        mut audio: Option<&mut AudioChain>,
    ) -> Result<Ending, Error> {
        let mut pkt = Packet::new();
        let vi = session.src.video.index as i32;
        let ai = session.src.audio.as_ref().map(|a| a.index as i32);
        let interrupt = self.control.interrupt.clone();
        let src_tb = session.src.video.time_base;
        let read_timeout = session.src.read_timeout(self.config);
        let mut last_good = Instant::now();
        loop {
            if self.control.abort_requested() {
                return Err(self.aborted());
            }
            if self.control.stop_requested() {
                return Ok(Ending::Stopped);
            }
            if self.control.take_stall() {
                return Err(self.stalled());
            }
            // The deadline runs from the last good packet, so a source that only sends
            // damage stalls like one that sends nothing.
            interrupt.arm(read_timeout.saturating_sub(last_good.elapsed()));
            let r = session.src.input.read(&mut pkt);
            interrupt.disarm();
            if matches!(r, Ok(Step::Ready(()))) {
                last_good = Instant::now();
            }
            match r {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Ok(Step::Eof) => {
                    // Some demuxers (MPEG-TS) report a read cut by a stop, an abort, a timeout
                    // or the watchdog as an end of file: the cut wins over the "end".
                    if self.control.abort_requested() {
                        return Err(self.aborted());
                    }
                    if self.control.stop_requested() {
                        return Ok(Ending::Stopped);
                    }
                    if interrupt.timed_out() || self.control.take_stall() {
                        return Err(self.stalled());
                    }
                    if session.src.live && reconnect_wanted(self.config) {
                        // A live source does not end; the publisher went away.
                        return Err(self.live_ended());
                    }
                    return Ok(Ending::SourceEnded);
                }
                Err(e) => {
                    if self.control.abort_requested() {
                        return Err(self.aborted());
                    }
                    if self.control.stop_requested() {
                        return Ok(Ending::Stopped);
                    }
                    if interrupt.timed_out() {
                        self.control.take_stall();
                        return Err(self.stalled());
                    }
                    if e.is_invalid_data() {
                        // A damaged packet: skip it, count it, keep going.
                        self.stats.corrupt_packets.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    return Err(Error::SourceIo {
                        stream: self.stream().to_owned(),
                        url: self.config.source().to_owned(),
                        op: "reading",
                        code: e.code,
                        message: e.message(),
                    });
                }
            }
            self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_in
                .fetch_add(pkt.size() as u64, Ordering::Relaxed);
            if pkt.is_corrupt() {
                self.stats.corrupt_packets.fetch_add(1, Ordering::Relaxed);
            }
            if pkt.stream_index() == vi {
                self.decode_video(
                    &mut session.video_dec,
                    Some(&pkt),
                    src_tb,
                    session.on_hardware,
                )?;
            } else if Some(pkt.stream_index()) == ai {
                if self.resume.is_some_and(|r| {
                    r.audio
                        .is_some_and(|a| pkt.pts() != NO_PTS && pkt.pts() <= a)
                }) {
                    continue; // fed before the source was reopened
                }
                if pkt.pts() != NO_PTS {
                    self.last_src_audio = Some(pkt.pts());
                }
                if let Some(a) = audio.as_deref_mut() {
                    self.decode_audio(a, Some(&pkt))?;
                }
            }
        }
    }

    fn stalled(&self) -> Error {
        Error::SourceStalled {
            stream: self.stream().to_owned(),
            url: self.config.source().to_owned(),
            timeout_ms: self.config.io_timeout().as_millis() as u64,
        }
    }

    fn live_ended(&self) -> Error {
        Error::SourceIo {
            stream: self.stream().to_owned(),
            url: self.config.source().to_owned(),
            op: "reading",
            code: crate::ffi::AVERROR_EOF,
            message: "the live source ended".into(),
        }
    }

    fn hardware_error(&self, reason: String, code: Option<i32>) -> Error {
        Error::Hardware {
            stream: self.stream().to_owned(),
            device: self
                .config
                .hw_device()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
            reason,
            code,
        }
    }

    fn video_decoder_error(&self, on_hardware: bool, e: crate::ffi::AvError) -> Error {
        if on_hardware {
            self.hardware_error(format!("decoding: {e}"), Some(e.code))
        } else {
            Error::codec(self.stream(), "video decoder", e)
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
                self.stats.corrupt_packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(self.video_decoder_error(on_hardware, e)),
        }
        loop {
            match dec.receive_frame(&mut self.frame) {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again | Step::Eof) => return Ok(()),
                Err(e) if e.is_invalid_data() => {
                    self.stats.corrupt_packets.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(self.video_decoder_error(on_hardware, e)),
            }
            if self
                .hardware_fault_in
                .is_some_and(|n| self.stats.frames_in.load(Ordering::Relaxed) >= n)
            {
                self.hardware_fault_in = None;
                return Err(self.hardware_error("injected fault: the device was lost".into(), None));
            }
            let mut frame = std::mem::take(&mut self.frame);
            if frame.is_hardware() {
                frame = frame.download().map_err(|e| {
                    self.hardware_error(
                        format!("copying a decoded picture to memory: {e}"),
                        Some(e.code),
                    )
                })?;
            }
            self.fan_out(frame, src_tb)?;
        }
    }

    /// Stamps a decoded frame onto the output timeline (pts, segment-boundary keyframe) and
    /// shares it with every variant.
    fn fan_out(&mut self, mut frame: Frame, src_tb: Rational) -> Result<(), Error> {
        let raw = frame.best_effort_pts();
        if let Some(r) = self.resume {
            if r.video.is_some_and(|v| raw != NO_PTS && raw <= v) {
                return Ok(()); // sent before the source was reopened
            }
            self.resume = None;
        }
        if raw != NO_PTS {
            self.last_src_video = Some(raw);
        }
        let mut pts = if raw == NO_PTS {
            self.last_pts.map_or(0, |p| p + self.frame_ticks)
        } else {
            rescale(raw, src_tb, self.time_base) + self.offset
        };
        if let Some(last) = self.last_pts {
            if self.rebase || pts <= last {
                // A restarted source, or timestamps that went backwards: continue right
                // after the last frame so every variant's timeline stays monotonic.
                let next = last + self.frame_ticks;
                self.offset += next - pts;
                pts = next;
                if !self.rebase {
                    log::warn!(
                        "stream {}: source timestamps went backwards; continuing the timeline",
                        self.stream()
                    );
                }
            }
        }
        let restart = self.rebase || self.last_pts.is_none();
        self.rebase = false;
        self.last_pts = Some(pts);
        let first = *self.first_pts.get_or_insert(pts);
        // Boundaries sit every segment from the start (or from a restart); the first frame at
        // or past one is a keyframe in every variant, because this decision is made once, here.
        let force_key = restart || pts >= self.next_boundary;
        if force_key {
            let base = if restart {
                pts
            } else {
                self.next_boundary - self.seg_ticks
            };
            let k = (pts - base).max(0) / self.seg_ticks + 1;
            self.next_boundary = base + k * self.seg_ticks;
        }
        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let media = rescale(
            pts - first + self.frame_ticks,
            self.time_base,
            Rational::new(1, 1_000_000),
        );
        self.stats
            .media_us
            .fetch_max(media.max(0) as u64, Ordering::Relaxed);
        frame.set_pts(pts);
        frame.set_force_keyframe(force_key);
        for tx in self.senders {
            let shared = frame
                .share()
                .map_err(|e| Error::codec(self.stream(), "frame reference", e))?;
            self.send(
                tx,
                VariantMsg::Video {
                    frame: shared,
                    force_key,
                },
            )?;
        }
        Ok(())
    }

    fn decode_audio(&mut self, audio: &mut AudioChain, pkt: Option<&Packet>) -> Result<(), Error> {
        // Until the first video frame after a restart sets the new offset, audio cannot be
        // placed against it.
        let timeline = (!self.rebase).then(|| self.offset as f64 * self.time_base.as_f64());
        let (frames, corrupt) = audio.push(pkt, timeline, &mut |enc, packet| {
            self.route_audio(enc, packet)
        })?;
        self.stats
            .audio_frames_in
            .fetch_add(frames, Ordering::Relaxed);
        if corrupt {
            self.stats.corrupt_packets.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The stream is done: the audio encoders' tail goes out too.
    pub fn finish_audio(&mut self, audio: &mut AudioChain) -> Result<(), Error> {
        audio.finish(&mut |enc, packet| self.route_audio(enc, packet))
    }

    /// Hands an AAC packet to every variant that uses that encoder (shared references).
    fn route_audio(&self, encoder: usize, packet: Packet) -> Result<(), Error> {
        let targets = &self.audio_targets[encoder];
        let mut packet = Some(packet);
        for (n, &i) in targets.iter().enumerate() {
            let p = if n + 1 == targets.len() {
                packet.take().expect("moved once, last")
            } else {
                packet
                    .as_ref()
                    .expect("present until last")
                    .share()
                    .map_err(|e| Error::codec(self.stream(), "packet reference", e))?
            };
            self.send(&self.senders[i], VariantMsg::Audio(p))?;
        }
        Ok(())
    }

    /// Blocking send with back-pressure, abandoned on abort or when the variant is gone.
    pub fn send(&self, tx: &Sender<VariantMsg>, mut msg: VariantMsg) -> Result<(), Error> {
        loop {
            match tx.send_timeout(msg, Duration::from_millis(50)) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout(m)) => {
                    if self.control.abort_requested() {
                        return Err(self.aborted());
                    }
                    msg = m;
                }
                // The variant failed; its own error explains why (see `combine`).
                Err(SendTimeoutError::Disconnected(_)) => return Err(self.aborted()),
            }
        }
    }
}
