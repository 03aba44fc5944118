//! The live output's clock in figures: the input-loss filler and the frames repeated to
//! keep the output's media time on the wall clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What the live clock's thread bumps.
#[derive(Debug, Default)]
pub(crate) struct ClockCounters {
    pub filler_frames: AtomicU64,
    pub filled_us: AtomicU64,
    pub filling: AtomicBool,
    pub fills: AtomicU64,
    pub repeated: AtomicU64,
    pub silence_packets: AtomicU64,
    pub audio_trimmed: AtomicU64,
    pub stale: AtomicU64,
    pub held: AtomicU64,
}

impl ClockCounters {
    pub(crate) fn snapshot(&self) -> LiveClockStats {
        LiveClockStats {
            filling: self.filling.load(Relaxed),
            fills: self.fills.load(Relaxed),
            filler_frames: self.filler_frames.load(Relaxed),
            filled: Duration::from_micros(self.filled_us.load(Relaxed)),
            frames_repeated: self.repeated.load(Relaxed),
            silence_packets: self.silence_packets.load(Relaxed),
            audio_packets_trimmed: self.audio_trimmed.load(Relaxed),
            stale_frames: self.stale.load(Relaxed),
            frames_held: self.held.load(Relaxed),
        }
    }
}

/// A live output's clock: the input-loss filler
/// ([`input_loss`](crate::StreamConfigBuilder::input_loss))
/// and the frames repeated so that its media time tracks the wall clock. All
/// zero for on-demand sources and when the output pauses with its source (`InputLoss::Stop`).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LiveClockStats {
    /// The filler is playing now (the stream is in `Error` meanwhile).
    pub filling: bool,
    /// Times the filler started.
    pub fills: u64,
    /// Video frames the filler sent (repeated last frames, black or slate).
    pub filler_frames: u64,
    /// Media time the filler covered (the current fill so far included).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub filled: Duration,
    /// Frames repeated because the source fell behind the wall clock (one per second at
    /// most). A source that runs ahead is paced instead: its frames wait for their time,
    /// and its delivery (the socket, the demuxer) holds the rest.
    pub frames_repeated: u64,
    /// AAC frames of silence sent: while the filler plays, and into holes of the audio.
    pub silence_packets: u64,
    /// AAC frames dropped because they overlapped audio already sent (after the filler).
    pub audio_packets_trimmed: u64,
    /// Source frames a probe read ahead and handed over at once, dropped so that the output
    /// begins (or, after the filler, resumes) at the live edge on the wall clock.
    pub stale_frames: u64,
    /// Frames of the last picture held over a gap in delivery shorter than the filler's
    /// delay (a switch to a backup, a source that paused), so the output stays on the
    /// wall clock; also counted in `filler_frames`.
    pub frames_held: u64,
}

/// One input's counters (a stream with backups), bumped by the decode loop.
#[derive(Debug)]
pub(crate) struct InputCounters {
    /// The input's URL, redacted.
    pub name: String,
    pub frames: AtomicU64,
    pub activations: AtomicU64,
    pub losses: AtomicU64,
    /// Kept warm and ready to take over: connected, a keyframe kept.
    pub ready: std::sync::atomic::AtomicBool,
    active_us: AtomicU64,
    /// Since when it is active, if it is.
    active_since: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl InputCounters {
    pub(crate) fn new(name: String) -> Self {
        Self {
            name,
            frames: AtomicU64::new(0),
            activations: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
            active_us: AtomicU64::new(0),
            active_since: parking_lot::Mutex::new(None),
        }
    }

    /// The input becomes the active one.
    pub(crate) fn activate(&self) {
        self.activations.fetch_add(1, Relaxed);
        // Short: one store.
        *self.active_since.lock() = Some(std::time::Instant::now());
    }

    /// The input stops being the active one (`lost`: it failed).
    pub(crate) fn deactivate(&self, lost: bool) {
        if lost {
            self.losses.fetch_add(1, Relaxed);
        }
        // Short: one take.
        if let Some(since) = self.active_since.lock().take() {
            let us = since.elapsed().as_micros() as u64;
            self.active_us.fetch_add(us, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> InputStats {
        // Short: one read.
        let since = *self.active_since.lock();
        let current = since.map_or(Duration::ZERO, |s| s.elapsed());
        InputStats {
            source: self.name.clone(),
            active: since.is_some(),
            ready: self.ready.load(Relaxed),
            frames: self.frames.load(Relaxed),
            activations: self.activations.load(Relaxed),
            losses: self.losses.load(Relaxed),
            time_active: Duration::from_micros(self.active_us.load(Relaxed)) + current,
        }
    }
}

/// One input of a stream with backup sources ([`Source::backup`](crate::Source::backup)):
/// the primary first, then each backup in order.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct InputStats {
    /// Its URL, secrets masked.
    pub source: String,
    /// It is the input the output shows now.
    pub active: bool,
    /// Not active, and ready to take over: connected on its own thread, its packets since
    /// the last keyframe kept.
    pub ready: bool,
    /// Video frames decoded from it.
    pub frames: u64,
    /// Times it became the active input (the primary's first start included).
    pub activations: u64,
    /// Times it was lost while active.
    pub losses: u64,
    /// Time it was the active input.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub time_active: Duration,
}
