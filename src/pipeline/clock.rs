//! The live output's clock (`sv-<id>-clock`): between the decode loop and the renditions of
//! a live stream with an input-loss filler. It owns the output's timestamps and segment
//! boundaries, so that the output keeps going on the wall clock whatever the source does:
//!
//! - **Filler.** When no frame has come for the filler's delay (the worker is blocked
//!   reading or reconnecting meanwhile), it sends filler in real time: the last frame
//!   repeated, then black or the slate, with a frame of silence per AAC frame on every
//!   audio encoder. The segment grid goes on, so segments are cut as before and nothing is
//!   marked discontinuous. The next real frame follows at the next frame slot.
//! - **Wall clock.** The output's media time tracks the wall clock from the run's first
//!   frame: a frame that comes early (a source delivering in bursts, or running fast) waits
//!   for its time; when frames have come late by more than a threshold for a whole window
//!   (a source slower than real time), one frame is repeated, one per second at most; the
//!   audio follows by silence inserted into holes and packets trimmed where they overlap.
//!   A segment's program date-time is the wall-clock time of its first frame on that
//!   timeline: the run's first frame's read time plus the media time since, continuous
//!   through the filler.
//!
//! Every timestamp it sends is `worker timestamp + offset`; the offset moves only when the
//! filler ends, when a frame is repeated, and at a jump in the source's timestamps.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::control::{InputWatch, Signals};
use super::fanout::FanOut;
use super::feed::ClockMsg;
use super::slate::fill_picture;
use super::timeline::SegmentGrid;
use super::wall::WallClock;
use crate::config::Filler;
use crate::error::Error;
use crate::ffi::{rescale, Frame, Packet, Rational};
use crate::stats::StatsCell;

/// The timing the clock works in: the output timeline's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockTiming {
    pub time_base: Rational,
    pub frame_ticks: i64,
    pub segment_ticks: i64,
}

/// One audio encoder as the clock sees it: its rate, its frame of silence, and where what
/// was sent of it ends.
pub(crate) struct AudioLane {
    rate: i32,
    frame: i64,
    silence: Packet,
    end: Option<i64>,
}

impl AudioLane {
    /// An encoder at `rate` Hz whose frames are `frame` samples, with its coded `silence`.
    pub fn new(rate: i32, frame: i64, silence: Packet) -> Self {
        Self {
            rate: rate.max(1),
            frame: frame.max(1),
            silence,
            end: None,
        }
    }

    /// Its packets' time base: one sample.
    fn time_base(&self) -> Rational {
        Rational::new(1, self.rate)
    }
}

/// The last real frame: the picture, when it came, where it went out.
struct LastReal {
    frame: Frame,
    came: Instant,
    out: i64,
}

/// What the previous picture sent was (a rung scales a repeated picture once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Nothing,
    Real,
    Fill,
}

/// The filler while it plays.
struct Filling {
    since: Instant,
    /// Black or the slate in the last frame's geometry, made when first shown.
    picture: Option<Frame>,
    /// Real audio that came while the filler played: its offset is known only with the
    /// first real frame after it.
    held_audio: VecDeque<(usize, Packet)>,
    /// Real frames skipped as stale since media returned.
    stale: u32,
}

/// Frames read this much before their slot's time when media returns are stale (a reconnect's
/// probe read them ahead; the filler covered their time).
const STALE_BY: Duration = Duration::from_millis(300);
/// Stale frames (after the filler, or read ahead before the output began) are skipped for
/// this much media at most.
const MAX_STALE: Duration = Duration::from_secs(3);
/// Audio this far behind the video (an input without audio) gets silence.
const AUDIO_LAG: Duration = Duration::from_millis(500);
/// A gap in delivery longer than this (or half the filler's delay) is held over with the
/// last picture when the next frame comes.
const MAX_GAP: Duration = Duration::from_millis(500);
/// A frame due later than this is a jump in the source's timestamps, not early delivery.
const MAX_EARLY: Duration = Duration::from_secs(2);

/// Audio packets held while the filler plays (about 20 s of AAC at 48 kHz); older ones go.
const HELD_AUDIO: usize = 1024;

/// The clock's thread state.
pub(crate) struct LiveClock<'a> {
    fan: FanOut,
    filler: Filler,
    slate: Option<Frame>,
    timing: ClockTiming,
    grid: SegmentGrid,
    signals: &'a Signals,
    stats: &'a StatsCell,
    watch: &'a dyn InputWatch,
    /// The stream's id, for log lines.
    id: String,
    /// The source's URL (redacted), for the error the filler reports.
    source: String,
    offset: i64,
    first_out: Option<i64>,
    last_out: Option<i64>,
    real: Option<LastReal>,
    filling: Option<Filling>,
    shown: Shown,
    /// Frames skipped before the output began (what the probe read ahead).
    skipped_at_start: u32,
    /// The clock says when the filler starts and ends (`Error`, `Running`); with backups
    /// the decode loop does.
    reports: bool,
    lanes: Vec<AudioLane>,
    wall: WallClock,
}

impl<'a> LiveClock<'a> {
    /// A clock feeding `fan`, filling with `filler` (and its decoded `slate`), in `timing`,
    /// with a lane per audio encoder; stream `id` reading `source` (redacted).
    pub fn new(
        fan: FanOut,
        filler: Filler,
        slate: Option<Frame>,
        timing: ClockTiming,
        lanes: Vec<AudioLane>,
        (signals, stats, watch): (&'a Signals, &'a StatsCell, &'a dyn InputWatch),
        (id, source): (String, String),
    ) -> Self {
        let frame = timing.frame_ticks as f64 * timing.time_base.as_f64();
        Self {
            fan,
            filler,
            slate,
            timing,
            grid: SegmentGrid::new(timing.segment_ticks),
            signals,
            stats,
            watch,
            id,
            source,
            offset: 0,
            first_out: None,
            last_out: None,
            real: None,
            filling: None,
            shown: Shown::Nothing,
            skipped_at_start: 0,
            reports: true,
            lanes,
            wall: WallClock::new(secs((3.0 * frame).max(0.1))),
        }
    }

    /// Whether the clock reports the filler to the lifecycle (`Error`, `Running`).
    pub fn reporting(mut self, reports: bool) -> Self {
        self.reports = reports;
        self
    }

    /// Runs until the decode loop's `End` (told to every rendition) or until it hangs up
    /// without one (it is failing or aborting: `Aborted`, its own error explains).
    pub fn run(mut self, rx: Receiver<ClockMsg>) -> Result<(), Error> {
        let _cpu = self.stats.track_this_thread();
        loop {
            if self.signals.abort_requested() {
                return Err(Error::aborted());
            }
            let wait = self
                .next_deadline()
                .saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait.min(Duration::from_millis(200))) {
                Ok(ClockMsg::Picture { frame, read_at }) => {
                    let backlog = rx.len();
                    self.real_picture(frame, read_at, backlog)?;
                }
                Ok(ClockMsg::Audio { encoder, packet }) => {
                    self.real_audio(encoder, packet)?;
                    // A burst of audio never holds the filler up.
                    if self.filling.is_some() {
                        self.fill_due()?;
                    }
                }
                Ok(ClockMsg::End { endlist }) => {
                    self.end_fill(false);
                    return self.fan.end(endlist, self.signals);
                }
                Err(RecvTimeoutError::Timeout) => self.fill_due()?,
                Err(RecvTimeoutError::Disconnected) => return Err(Error::aborted()),
            }
        }
    }

    fn tb(&self) -> f64 {
        self.timing.time_base.as_f64()
    }

    /// Frames in [`MAX_STALE`] of media.
    fn stale_most(&self) -> u32 {
        (MAX_STALE.as_secs_f64() / (self.timing.frame_ticks as f64 * self.tb())) as u32
    }

    /// When the clock next has something to do on its own: the filler's start, or its next
    /// frame.
    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(1);
        let Some(real) = &self.real else {
            return far;
        };
        match (&self.filling, self.last_out) {
            (Some(_), Some(last)) => self.wall.due(last + self.timing.frame_ticks, self.tb()),
            _ => real.came + self.filler.after,
        }
    }

    /// A real picture: out at the next slot after the filler, else at its own time plus
    /// the offset; held until its time when it comes early (a source that delivers in
    /// bursts or runs fast is paced), sent twice when the output has been behind the wall
    /// clock for a while. `backlog`: messages waiting behind it (the clock is behind
    /// itself: no wall-clock reading then).
    fn real_picture(
        &mut self,
        frame: Frame,
        read_at: SystemTime,
        backlog: usize,
    ) -> Result<(), Error> {
        let ft = self.timing.frame_ticks;
        let tb = self.tb();
        let worker_pts = frame.pts();
        let resuming = self.filling.is_some();
        if resuming && self.stale(read_at) {
            // Captured while the filler played (a reconnect's probe read it ahead): the
            // filler already covered its time.
            self.stats.clock.stale.fetch_add(1, Relaxed);
            return self.fill_due();
        }
        if self.last_out.is_none() && backlog > 2 && self.skipped_at_start < self.stale_most() {
            // The output has not begun and frames are queued behind this one: what the
            // probe read ahead, handed over at once. The output begins with the newest, so
            // it starts at the live edge rather than as late as the probe took.
            self.skipped_at_start += 1;
            self.stats.clock.stale.fetch_add(1, Relaxed);
            return Ok(());
        }
        let mut out = match self.last_out {
            Some(last) if resuming => last + ft,
            // Never behind what was sent (a repeat moved the timeline on).
            Some(last) => (worker_pts + self.offset).max(last + 1),
            None => worker_pts,
        };
        // The run's first frame starts the wall clock's settling.
        let mut settling = true;
        if let Some(last) = self.last_out {
            // A jump ahead in the source's timestamps that its delivery did not make (the
            // timeline keeps gaps below its jump threshold): the next slot instead.
            let now = Instant::now();
            let early = self.wall.due(out, tb).saturating_duration_since(now);
            if early > MAX_EARLY {
                out = last + ft;
            }
            // A gap in delivery (a switch to a backup, a source that paused): the last
            // picture is held over it, on the wall clock, and this frame takes the next slot.
            let late = now.saturating_duration_since(self.wall.due(out, tb));
            settling = self.wall.settling(out, now, tb);
            if !resuming && !settling && late > self.filler.after.mul_f64(0.5).min(MAX_GAP) {
                self.hold_until(now)?;
                out = self.last_out.map_or(out, |l| l + ft);
            }
        }
        self.offset = out - worker_pts;
        let held = if resuming {
            self.end_fill(true)
        } else {
            VecDeque::new()
        };
        if self.last_out.is_none() {
            self.wall.start(out, read_at);
        } else if !self.wait_until(self.wall.due(out, tb)) {
            return Err(Error::aborted());
        }
        let now = Instant::now();
        let repeat = !resuming && backlog <= 2 && !settling && self.wall.behind(out, now, tb);
        self.emit(share(&frame)?, out, false)?;
        self.shown = Shown::Real;
        let lag = (AUDIO_LAG.as_secs_f64() / tb) as i64;
        self.silence_to(out + ft - lag)?;
        if repeat {
            self.stats.clock.repeated.fetch_add(1, Relaxed);
            self.offset += ft;
            out += ft;
            self.emit(share(&frame)?, out, true)?;
        }
        self.real = Some(LastReal {
            frame,
            came: now,
            out,
        });
        for (encoder, packet) in held {
            self.real_audio(encoder, packet)?;
        }
        Ok(())
    }

    /// Every audio encoder that has begun gets frames of silence up to output `pts` (on the
    /// video's timeline): through the filler, and behind the video by more than
    /// [`AUDIO_LAG`] (an input without audio).
    fn silence_to(&mut self, pts: i64) -> Result<(), Error> {
        let tb = self.timing.time_base;
        for (encoder, lane) in self.lanes.iter_mut().enumerate() {
            let until = rescale(pts, tb, lane.time_base());
            silence_until(lane, encoder, until, &self.fan, self.signals, self.stats)?;
        }
        Ok(())
    }

    /// Holds the last picture over the frame slots due by `now` (less one frame).
    fn hold_until(&mut self, now: Instant) -> Result<(), Error> {
        let ft = self.timing.frame_ticks;
        let frame = secs(ft as f64 * self.tb());
        while let Some(last) = self.last_out {
            if self.wall.due(last + ft, self.tb()) + frame > now {
                break;
            }
            self.fill_frame(last + ft)?;
            self.stats.clock.held.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Waits for `due` (a frame that came early), up to [`MAX_EARLY`]; false on abort. Once
    /// a stop is asked for, nothing waits: what is left goes out at once.
    fn wait_until(&self, due: Instant) -> bool {
        let due = due.min(Instant::now() + MAX_EARLY);
        loop {
            if self.signals.abort_requested() {
                return false;
            }
            if self.signals.stop_requested() {
                return true;
            }
            let left = due.saturating_duration_since(Instant::now());
            if left <= Duration::from_millis(1) {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// A frame read before the next slot's time on the wall clock by more than
    /// [`STALE_BY`], while the filler plays: stale, unless the filler has skipped
    /// [`MAX_STALE`] of them already (read times that run early never keep the filler on).
    fn stale(&mut self, read_at: SystemTime) -> bool {
        let tb = self.tb();
        let ft = self.timing.frame_ticks;
        let most = self.stale_most();
        let (Some(last), Some(f)) = (self.last_out, &mut self.filling) else {
            return false;
        };
        let slot_at = self.wall.program_date_time(last + ft, tb);
        let early = slot_at.duration_since(read_at).is_ok_and(|d| d > STALE_BY);
        if early && f.stale < most {
            f.stale += 1;
            return true;
        }
        false
    }

    /// A real AAC packet: held while the filler plays, else moved by the offset; a hole of a
    /// frame or more before it is filled with silence, and a packet that overlaps what was
    /// sent is dropped.
    fn real_audio(&mut self, encoder: usize, mut packet: Packet) -> Result<(), Error> {
        if let Some(f) = &mut self.filling {
            if f.held_audio.len() >= HELD_AUDIO {
                f.held_audio.pop_front();
            }
            f.held_audio.push_back((encoder, packet));
            return Ok(());
        }
        let tb = self.timing.time_base;
        let Some(lane) = self.lanes.get_mut(encoder) else {
            return self.fan.audio(encoder, packet, self.signals);
        };
        let mut pts = packet.pts() + rescale(self.offset, tb, lane.time_base());
        // Audio from before the output's first frame (skipped at the start) goes too.
        let first = self.first_out.map(|f| rescale(f, tb, lane.time_base()));
        if lane.end.is_none() && first.is_none_or(|f| pts + lane.frame <= f) {
            self.stats.clock.audio_trimmed.fetch_add(1, Relaxed);
            return Ok(());
        }
        if let Some(end) = lane.end {
            if pts + lane.frame / 2 < end {
                self.stats.clock.audio_trimmed.fetch_add(1, Relaxed);
                return Ok(());
            }
            silence_until(lane, encoder, pts, &self.fan, self.signals, self.stats)?;
            pts = pts.max(lane.end.unwrap_or(pts));
        }
        packet.set_timestamps(pts, pts);
        let duration = if packet.duration() > 0 {
            packet.duration()
        } else {
            lane.frame
        };
        lane.end = Some(pts + duration);
        self.fan.audio(encoder, packet, self.signals)
    }

    /// Fills every frame slot due by now (starting the filler once the delay has passed
    /// without a frame).
    fn fill_due(&mut self) -> Result<(), Error> {
        let Some(real) = &self.real else {
            return Ok(()); // nothing to fill before the first frame
        };
        let now = Instant::now();
        if self.filling.is_none() {
            if now < real.came + self.filler.after {
                return Ok(());
            }
            self.start_fill(now);
        }
        while let Some(last) = self.last_out {
            let next = last + self.timing.frame_ticks;
            if self.wall.due(next, self.tb()) > now {
                break;
            }
            if self.signals.abort_requested() {
                return Err(Error::aborted());
            }
            self.fill_frame(next)?;
        }
        Ok(())
    }

    fn start_fill(&mut self, now: Instant) {
        self.filling = Some(Filling {
            since: now,
            picture: None,
            held_audio: VecDeque::new(),
            stale: 0,
        });
        let clock = &self.stats.clock;
        clock.filling.store(true, Relaxed);
        clock.fills.fetch_add(1, Relaxed);
        log::warn!(
            "stream {}: no media for {:?}; the input-loss filler plays",
            self.id,
            self.filler.after
        );
        if self.reports {
            self.watch.input_lost(Error::SourceStalled {
                url: self.source.clone(),
                timeout: self.filler.after,
            });
        }
    }

    /// The filler ends (media is back, or the stream ends): the audio it held.
    fn end_fill(&mut self, media_back: bool) -> VecDeque<(usize, Packet)> {
        let Some(f) = self.filling.take() else {
            return VecDeque::new();
        };
        self.stats.clock.filling.store(false, Relaxed);
        log::info!(
            "stream {}: media is back after {:.1} s of filler",
            self.id,
            f.since.elapsed().as_secs_f64()
        );
        if media_back && self.reports {
            self.watch.media_back();
        }
        f.held_audio
    }

    /// One filler frame at output `pts`: the last frame while it is recent enough, then
    /// black or the slate; silence on every audio encoder up to its end.
    fn fill_frame(&mut self, pts: i64) -> Result<(), Error> {
        let Some(real) = &self.real else {
            return Ok(());
        };
        let since_real = (pts - real.out) as f64 * self.tb();
        let (picture, shown) = if since_real < self.filler.repeat_last.as_secs_f64() {
            (share(&real.frame)?, Shown::Real)
        } else {
            (self.fill_picture()?, Shown::Fill)
        };
        self.emit(picture, pts, shown == self.shown)?;
        self.shown = shown;
        let clock = &self.stats.clock;
        clock.filler_frames.fetch_add(1, Relaxed);
        let frame_us = (self.timing.frame_ticks as f64 * self.tb() * 1e6) as u64;
        clock.filled_us.fetch_add(frame_us, Relaxed);
        self.silence_to(pts + self.timing.frame_ticks)
    }

    /// Black or the slate in the last frame's geometry, made once per outage.
    fn fill_picture(&mut self) -> Result<Frame, Error> {
        let (Some(f), Some(real)) = (&mut self.filling, &self.real) else {
            return Err(Error::Internal {
                message: "filler picture asked outside an outage".into(),
            });
        };
        if f.picture.is_none() {
            let made = fill_picture(&self.filler.then, self.slate.as_ref(), &real.frame)?;
            f.picture = Some(made);
        }
        share(f.picture.as_ref().expect("made above"))
    }

    /// Sends `f` (a reference of its own to a picture) at output `pts`: the segment grid
    /// decides whether it is a keyframe (and then the wall clock gives the segment's
    /// program date-time).
    fn emit(&mut self, mut f: Frame, pts: i64, same_picture: bool) -> Result<(), Error> {
        f.set_pts(pts);
        let starts = self.grid.starts(pts);
        f.set_force_keyframe(starts);
        let read_at = starts.then(|| self.wall.program_date_time(pts, self.tb()));
        self.fan
            .picture(&f, starts, read_at, same_picture, self.signals)?;
        self.last_out = Some(pts);
        let first = *self.first_out.get_or_insert(pts);
        let media = (pts - first + self.timing.frame_ticks) as f64 * self.tb();
        self.stats
            .media_us
            .fetch_max((media.max(0.0) * 1e6) as u64, Relaxed);
        Ok(())
    }
}

fn share(frame: &Frame) -> Result<Frame, Error> {
    frame
        .share()
        .map_err(|e| Error::codec("frame reference", e))
}

/// Seconds as a duration (never negative).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Sends frames of silence on `lane` (encoder `encoder`) from where it ends while a whole
/// frame fits before `until` (in the lane's samples). A lane that sent nothing yet waits
/// for its first real packet.
fn silence_until(
    lane: &mut AudioLane,
    encoder: usize,
    until: i64,
    fan: &FanOut,
    signals: &Signals,
    stats: &StatsCell,
) -> Result<(), Error> {
    while let Some(end) = lane.end.filter(|e| e + lane.frame <= until) {
        let mut p = lane
            .silence
            .share()
            .map_err(|e| Error::codec("packet reference", e))?;
        p.set_timestamps(end, end);
        p.set_duration(lane.frame);
        fan.audio(encoder, p, signals)?;
        lane.end = Some(end + lane.frame);
        stats.clock.silence_packets.fetch_add(1, Relaxed);
    }
    Ok(())
}
