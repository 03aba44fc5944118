//! What a stream has done: [`StreamStats`] (a snapshot from
//! [`Stream::stats`](crate::Stream::stats), a [`StatsEvent`](crate::StatsEvent) or the final
//! [`StreamReport`](crate::StreamReport)), with each rung's [`VariantStats`], each source
//! [`Outage`] and a live output's clock ([`LiveClockStats`]); and the [`PlannedLadder`] of [`PlannedRung`]s that runs on the source once it
//! is opened. [`StreamStats`] is also at the crate root.

// Inside: the counters the media threads bump (atomics, no locks on the frame path) and
// the snapshots built from them. Rates are derived in the snapshot and never divide by
// zero.

mod clock;

pub(crate) use clock::{ClockCounters, InputCounters};
pub use clock::{InputStats, LiveClockStats};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

/// Counters of one variant, written by its thread.
#[derive(Debug, Default)]
pub(crate) struct VariantCounters {
    pub frames_out: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub bytes_out: AtomicU64,
    pub segments: AtomicU64,
    pub media_us: AtomicU64,
}

/// Counters of one stream, shared by its threads and its handle.
#[derive(Debug)]
pub(crate) struct StatsCell {
    pub frames_in: AtomicU64,
    pub audio_frames_in: AtomicU64,
    pub packets_in: AtomicU64,
    pub corrupt_packets: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Playlists (master and variant) written, bytes.
    pub playlist_bytes: AtomicU64,
    pub media_us: AtomicU64,
    /// The source's duration (a file's), microseconds; 0 when unknown or live.
    pub source_duration_us: AtomicU64,
    pub errors: AtomicU64,
    pub recoveries: AtomicU64,
    pub hardware_fallbacks: AtomicU64,
    /// Deletes of expired files the store refused (each try).
    pub deletes_refused: AtomicU64,
    /// Expired files left in the store for good.
    pub deletes_given_up: AtomicU64,
    /// The live output's clock (input-loss filler, wall-clock tracking).
    pub clock: ClockCounters,
    /// With backup sources: each input's counters, the primary's first.
    inputs: Mutex<Vec<std::sync::Arc<InputCounters>>>,
    variants: Mutex<Vec<(String, std::sync::Arc<VariantCounters>)>>,
    /// The audio-only renditions (fMP4); `frames_out` counts AAC frames.
    audio_renditions: Mutex<Vec<(String, std::sync::Arc<VariantCounters>)>>,
    bitrate_window: Mutex<RateWindow>,
    /// CPU time of the stream's threads: those running (their `/proc` stat files), and
    /// what the ended ones used.
    cpu: Mutex<ThreadCpu>,
}

/// The CPU time of a set of threads, read from `/proc/self/task/<tid>/stat` (Linux).
#[derive(Debug, Default)]
struct ThreadCpu {
    running: Vec<std::path::PathBuf>,
    ended: Duration,
}

/// Clock ticks per second in `/proc` stat files (`USER_HZ`: 100 on every Linux ABI this
/// crate builds for).
const USER_HZ: u64 = 100;

/// utime + stime of one thread from its `/proc` stat file.
fn thread_cpu(stat: &std::path::Path) -> Option<Duration> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The name (field 2) may hold spaces and parentheses: count from the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Counts the calling thread's CPU time into a stream's until dropped (at the thread's end,
/// when its final figure is kept).
#[must_use = "the thread is counted while the guard lives"]
pub(crate) struct CpuTracked<'a> {
    cell: &'a StatsCell,
    stat: Option<std::path::PathBuf>,
}

impl Drop for CpuTracked<'_> {
    fn drop(&mut self) {
        let Some(stat) = self.stat.take() else { return };
        let used = thread_cpu(&stat).unwrap_or_default();
        let mut cpu = self.cell.cpu.lock();
        cpu.running.retain(|p| *p != stat);
        cpu.ended += used;
    }
}

impl Default for StatsCell {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            audio_frames_in: AtomicU64::new(0),
            packets_in: AtomicU64::new(0),
            corrupt_packets: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            playlist_bytes: AtomicU64::new(0),
            media_us: AtomicU64::new(0),
            source_duration_us: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            hardware_fallbacks: AtomicU64::new(0),
            deletes_refused: AtomicU64::new(0),
            deletes_given_up: AtomicU64::new(0),
            clock: ClockCounters::default(),
            inputs: Mutex::new(Vec::new()),
            variants: Mutex::new(Vec::new()),
            audio_renditions: Mutex::new(Vec::new()),
            bitrate_window: Mutex::new(RateWindow::default()),
            cpu: Mutex::new(ThreadCpu::default()),
        }
    }
}

impl StatsCell {
    /// Registers a variant and returns its counters (called once per variant at setup).
    pub fn add_variant(&self, name: &str) -> std::sync::Arc<VariantCounters> {
        let c = std::sync::Arc::new(VariantCounters::default());
        self.variants.lock().push((name.to_owned(), c.clone()));
        c
    }

    /// Registers an audio-only rendition and returns its counters.
    pub fn add_audio_rendition(&self, name: &str) -> std::sync::Arc<VariantCounters> {
        let c = std::sync::Arc::new(VariantCounters::default());
        self.audio_renditions
            .lock()
            .push((name.to_owned(), c.clone()));
        c
    }

    /// Counts the calling thread's CPU time as this stream's until the guard drops.
    pub fn track_this_thread(&self) -> CpuTracked<'_> {
        // `/proc/thread-self` names this thread as `<pid>/task/<tid>`.
        let stat = std::fs::read_link("/proc/thread-self")
            .ok()
            .map(|p| std::path::Path::new("/proc").join(p).join("stat"));
        if let Some(p) = &stat {
            self.cpu.lock().running.push(p.clone());
        }
        CpuTracked { cell: self, stat }
    }

    /// CPU time used by the stream's threads so far.
    fn cpu_time(&self) -> Duration {
        let (running, ended) = {
            let cpu = self.cpu.lock();
            (cpu.running.clone(), cpu.ended)
        };
        // The files are read outside the lock.
        ended
            + running
                .iter()
                .filter_map(|p| thread_cpu(p))
                .sum::<Duration>()
    }

    /// Bytes written so far: every segment and playlist.
    fn bytes_out(&self) -> u64 {
        let sum = |list: &Mutex<Vec<(String, std::sync::Arc<VariantCounters>)>>| -> u64 {
            list.lock()
                .iter()
                .map(|(_, c)| c.bytes_out.load(Relaxed))
                .sum()
        };
        self.playlist_bytes.load(Relaxed) + sum(&self.variants) + sum(&self.audio_renditions)
    }

    /// Records the output so far against the media time, for the recent bitrate. Called by
    /// the variant threads at each segment, so the figure depends on the media alone, not
    /// on who reads the stats or how often.
    pub fn sample_output_rate(&self) {
        let media = Duration::from_micros(self.media_us.load(Relaxed));
        let bytes = self.bytes_out();
        self.bitrate_window.lock().observe(media, bytes);
    }

    /// The inputs of a stream with backups (the primary's first), for its snapshots.
    pub fn set_inputs(&self, inputs: Vec<std::sync::Arc<InputCounters>>) {
        // Short: one store.
        *self.inputs.lock() = inputs;
    }

    /// A consistent-enough view of every counter, with derived rates. Reads only.
    pub fn snapshot(&self, uptime: Duration) -> StreamStats {
        let secs = uptime.as_secs_f64();
        let media = Duration::from_micros(self.media_us.load(Relaxed));
        let variants = variant_stats(&self.variants);
        let audio_renditions = variant_stats(&self.audio_renditions);
        let playlist_bytes = self.playlist_bytes.load(Relaxed);
        let bytes_out = playlist_bytes
            + variants
                .iter()
                .chain(&audio_renditions)
                .map(|v| v.bytes_out)
                .sum::<u64>();
        let recent_bitrate = self.bitrate_window.lock().rate();
        let speed = if secs > 0.0 {
            media.as_secs_f64() / secs
        } else {
            0.0
        };
        let source_duration = match self.source_duration_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        };
        let progress = source_duration
            .map(|d| (media.as_secs_f64() / d.as_secs_f64().max(1e-6)).clamp(0.0, 1.0));
        let eta = source_duration
            .filter(|_| speed > 0.0)
            .map(|d| Duration::from_secs_f64(d.saturating_sub(media).as_secs_f64() / speed));
        StreamStats {
            frames_in: self.frames_in.load(Relaxed),
            audio_frames_in: self.audio_frames_in.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            corrupt_packets: self.corrupt_packets.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out,
            media_time: media,
            speed,
            source_duration,
            progress,
            eta,
            average_bitrate: bits_per_second(bytes_out, media.as_secs_f64()),
            recent_bitrate,
            errors: self.errors.load(Relaxed),
            recoveries: self.recoveries.load(Relaxed),
            hardware_fallbacks: self.hardware_fallbacks.load(Relaxed),
            deletes_refused: self.deletes_refused.load(Relaxed),
            deletes_given_up: self.deletes_given_up.load(Relaxed),
            cpu_time: self.cpu_time(),
            uptime,
            time_in_state: Vec::new(),
            memory_estimate: 0,
            outages: Vec::new(),
            outage_count: 0,
            outage_time: Duration::ZERO,
            live_clock: self.clock.snapshot(),
            // Short: clones the list of handles; each input's figures are read after.
            inputs: {
                let inputs = self.inputs.lock().clone();
                inputs.iter().map(|i| i.snapshot()).collect()
            },
            variants,
            audio_renditions,
        }
    }
}

/// The figures of each rendition in `list`, in order.
fn variant_stats(
    list: &Mutex<Vec<(String, std::sync::Arc<VariantCounters>)>>,
) -> Vec<VariantStats> {
    list.lock()
        .iter()
        .map(|(name, c)| {
            let bytes = c.bytes_out.load(Relaxed);
            let media = Duration::from_micros(c.media_us.load(Relaxed));
            VariantStats {
                name: name.clone(),
                frames_out: c.frames_out.load(Relaxed),
                frames_dropped: c.frames_dropped.load(Relaxed),
                bytes_out: bytes,
                segments: c.segments.load(Relaxed),
                media_time: media,
                average_bitrate: bits_per_second(bytes, media.as_secs_f64()),
            }
        })
        .collect()
}

fn bits_per_second(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    }
}

/// Output bitrate over roughly the last few seconds of media, from the snapshots taken.
#[derive(Debug, Default)]
struct RateWindow {
    samples: std::collections::VecDeque<(Duration, u64)>,
}

const RATE_WINDOW: Duration = Duration::from_secs(5);

impl RateWindow {
    /// Adds a sample (media time, bytes written so far) and forgets what left the window.
    fn observe(&mut self, media: Duration, total_bytes: u64) {
        match self.samples.back_mut() {
            // Same media time: the later byte count wins (another variant's segment).
            Some(last) if last.0 == media => last.1 = last.1.max(total_bytes),
            Some(last) if last.0 > media => {}
            _ => self.samples.push_back((media, total_bytes)),
        }
        while self.samples.len() > 2 && media.saturating_sub(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        if self.samples.len() > 256 {
            self.samples.pop_front();
        }
    }

    /// Bits per second of media over the window; with one sample, over the whole run.
    fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(m0, b0)), Some(&(m1, b1))) if self.samples.len() >= 2 => {
                bits_per_second(b1.saturating_sub(b0), m1.saturating_sub(m0).as_secs_f64())
            }
            (Some(&(m, b)), _) => bits_per_second(b, m.as_secs_f64()),
            _ => 0.0,
        }
    }
}

/// Statistics of one variant.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VariantStats {
    /// The variant's name.
    pub name: String,
    /// Video frames encoded and written.
    pub frames_out: u64,
    /// Frames not encoded (frame-rate cap, or timestamps that did not advance).
    pub frames_dropped: u64,
    /// Bytes of segments written to disk.
    pub bytes_out: u64,
    /// Segments completed.
    pub segments: u64,
    /// Media time encoded.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub media_time: Duration,
    /// Average output bitrate over the media time, bits/s.
    pub average_bitrate: f64,
}

/// The ladder as it runs on the source, known once the source is opened: rungs larger than
/// the source (its upright picture's short side) left out, the other side from its display
/// aspect, frame rates from its own. Sizes are of the upright picture (after the source's
/// display matrix is applied: a phone clip stored landscape with a 90° matrix is portrait).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlannedLadder {
    /// The source's picture width, upright.
    pub source_width: u32,
    /// The source's picture height, upright.
    pub source_height: u32,
    /// The source's frame rate (30 when it does not say).
    pub source_fps: f64,
    /// The source has audio (every rung carries AAC).
    pub audio: bool,
    /// The rungs that run, in ladder order.
    pub rungs: Vec<PlannedRung>,
    /// Bytes the stream's frames in flight take (decoder and queues, each rung's x264
    /// lookahead, references and threads): the model a manager's pool prices memory with,
    /// calibrated against measured peak RSS.
    pub memory_estimate: u64,
}

/// One rung as it runs.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlannedRung {
    /// The variant's name (as configured).
    pub name: String,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output frame rate.
    pub frame_rate: f64,
}

/// Statistics of one stream at a moment.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Video frames decoded from the source.
    pub frames_in: u64,
    /// Audio frames decoded from the source.
    pub audio_frames_in: u64,
    /// Packets read from the source.
    pub packets_in: u64,
    /// Packets the demuxer or decoder found corrupt and that were skipped.
    pub corrupt_packets: u64,
    /// Bytes read from the source (packet payloads).
    pub bytes_in: u64,
    /// Bytes written: every segment and playlist.
    pub bytes_out: u64,
    /// Media time decoded.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub media_time: Duration,
    /// Media time per wall-clock time (1.0 = real time).
    pub speed: f64,
    /// The source's duration, when it has one (a file; `None` for live sources).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs_opt")
    )]
    pub source_duration: Option<Duration>,
    /// Share of the source done (media time over its duration, 0.0 to 1.0), when it has a
    /// duration.
    pub progress: Option<f64>,
    /// Time left at the current speed, when the source has a duration and media moves.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs_opt")
    )]
    pub eta: Option<Duration>,
    /// Output bits per second of media.
    pub average_bitrate: f64,
    /// Output bits per second of media over roughly the last five seconds of media.
    pub recent_bitrate: f64,
    /// Errors seen (recovered or not).
    pub errors: u64,
    /// Successful recoveries (reconnects, fallbacks to the CPU).
    pub recoveries: u64,
    /// Times a hardware device failed and the stream went on on the CPU.
    pub hardware_fallbacks: u64,
    /// Deletes of files that left the live window which the store refused, each try
    /// counted (also in `errors`); they are retried with backoff, never the stream's
    /// failure.
    pub deletes_refused: u64,
    /// Files that left the live window and were left in the store for good (their deletes
    /// refused too often, too many pending, or the stream ended first).
    pub deletes_given_up: u64,
    /// Memory the stream's frames in flight take, estimated from the ladder that runs
    /// ([`PlannedLadder::memory_estimate`]); 0 until the source is open.
    pub memory_estimate: u64,
    /// CPU time (user + system) used by the stream's threads: its decoder thread and every
    /// variant thread, those that ended included (Linux `/proc`; zero elsewhere).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub cpu_time: Duration,
    /// Time since the stream was started (frozen when it ends).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub uptime: Duration,
    /// Time spent in each state so far, in [`crate::state::StreamState::ALL`] order.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::time_in_state")
    )]
    pub time_in_state: Vec<(crate::state::StreamState, Duration)>,
    /// The most recent source outages (the last 16), oldest first: each from the error
    /// that began it to media flowing again.
    pub outages: Vec<Outage>,
    /// Outages since the stream started (including those no longer in `outages`).
    pub outage_count: u64,
    /// Time spent in outages since the stream started (the current one so far included).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub outage_time: Duration,
    /// A live output's clock: the input-loss filler and the frames repeated to stay on the
    /// wall clock.
    pub live_clock: LiveClockStats,
    /// With backup sources: each input (the primary first), which one is active, and
    /// what each delivered; empty otherwise.
    pub inputs: Vec<InputStats>,
    /// Per-variant figures, in ladder order.
    pub variants: Vec<VariantStats>,
    /// The audio-only renditions' figures (fMP4: `audio-<kbps>k`), `frames_out` counting
    /// AAC frames; empty with MPEG-TS, whose variants carry their audio.
    pub audio_renditions: Vec<VariantStats>,
}

/// How many outages a stream's statistics keep (the most recent ones).
pub(crate) const OUTAGES_KEPT: usize = 16;

/// One time the source was lost: from the error that began it (a stall, a dropped
/// connection, a publisher that went away) to the first video frame decoded again.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outage {
    /// When it began.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::epoch_secs")
    )]
    pub started_at: SystemTime,
    /// How long it lasted (so far, while it goes on; frozen when the stream ended in it).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::secs")
    )]
    pub duration: Duration,
    /// The error that began it, secrets redacted like every error.
    pub cause: String,
    /// Media flowed again: `false` while the outage goes on, and for one the stream ended in.
    pub recovered: bool,
    /// Still going on.
    pub ongoing: bool,
}

/// The outages of one stream, kept with its state record: opened when the stream enters
/// `Error`, closed when media flows again (or the stream ends in it).
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    closed: VecDeque<Outage>,
    open: Option<(Instant, Outage)>,
    count: u64,
    closed_time: Duration,
}

impl OutageLog {
    /// The source was lost at `now` because of `cause` (ignored while one is open: retries
    /// within one outage are the same outage).
    pub fn begin(&mut self, now: Instant, cause: String) {
        if self.open.is_some() {
            return;
        }
        self.count += 1;
        let outage = Outage {
            started_at: SystemTime::now(),
            duration: Duration::ZERO,
            cause,
            recovered: false,
            ongoing: true,
        };
        self.open = Some((now, outage));
    }

    /// The open outage (if any) ended at `now`; `recovered` when media flows again.
    pub fn end(&mut self, now: Instant, recovered: bool) {
        let Some((since, mut outage)) = self.open.take() else {
            return;
        };
        outage.duration = now.saturating_duration_since(since);
        outage.recovered = recovered;
        outage.ongoing = false;
        self.closed_time += outage.duration;
        if self.closed.len() == OUTAGES_KEPT {
            self.closed.pop_front();
        }
        self.closed.push_back(outage);
    }

    /// The kept outages (an open one last, measured up to `now`), the count and total time.
    pub fn read(&self, now: Instant) -> (Vec<Outage>, u64, Duration) {
        let mut list: Vec<Outage> = self.closed.iter().cloned().collect();
        let mut total = self.closed_time;
        if let Some((since, open)) = &self.open {
            let mut o = open.clone();
            o.duration = now.saturating_duration_since(*since);
            total += o.duration;
            if list.len() == OUTAGES_KEPT {
                list.remove(0);
            }
            list.push(o);
        }
        (list, self.count, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_stream_has_zero_rates_not_nan() {
        let cell = StatsCell::default();
        cell.add_variant("v");
        let s = cell.snapshot(Duration::ZERO);
        assert_eq!(
            (s.speed, s.average_bitrate, s.recent_bitrate),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(s.variants[0].average_bitrate, 0.0);
    }

    #[test]
    fn inputs_and_outputs_are_counted_apart() {
        let cell = StatsCell::default();
        let v = cell.add_variant("v");
        cell.frames_in.store(10, Relaxed);
        v.frames_out.store(7, Relaxed);
        v.bytes_out.store(1000, Relaxed);
        cell.playlist_bytes.store(100, Relaxed);
        cell.media_us.store(2_000_000, Relaxed);
        let s = cell.snapshot(Duration::from_secs(1));
        assert_eq!((s.frames_in, s.variants[0].frames_out), (10, 7));
        assert_eq!(s.bytes_out, 1100, "segments and playlists");
        assert_eq!(s.speed, 2.0);
        assert_eq!((s.source_duration, s.progress, s.eta), (None, None, None));
        cell.source_duration_us.store(8_000_000, Relaxed);
        let s = cell.snapshot(Duration::from_secs(1));
        assert_eq!(s.source_duration, Some(Duration::from_secs(8)));
        assert_eq!(s.progress, Some(0.25));
        assert_eq!(
            s.eta,
            Some(Duration::from_secs(3)),
            "6 s of media left at 2x"
        );
        assert_eq!(s.average_bitrate, 1100.0 * 8.0 / 2.0);
    }

    #[test]
    fn cpu_time_counts_running_and_ended_threads() {
        let cell = StatsCell::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _t = cell.track_this_thread();
                let t0 = std::time::Instant::now();
                let mut x = 0u64;
                while t0.elapsed() < Duration::from_millis(300) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
            });
        });
        let cpu = cell.snapshot(Duration::ZERO).cpu_time;
        assert!(cpu >= Duration::from_millis(100), "{cpu:?}");
        assert!(
            cell.cpu.lock().running.is_empty(),
            "an ended thread is no longer read"
        );
    }

    #[test]
    fn recent_bitrate_follows_the_last_seconds_of_media() {
        let mut w = RateWindow::default();
        // 1 MB per media second for 10 s, then 2 MB per second.
        let mut total = 0;
        for s in 1..=10u64 {
            total += 1_000_000;
            w.observe(Duration::from_secs(s), total);
        }
        for s in 11..=20u64 {
            total += 2_000_000;
            w.observe(Duration::from_secs(s), total);
        }
        w.observe(Duration::from_secs(20), total);
        let r = w.rate();
        assert!((r - 16_000_000.0).abs() < 1.0, "{r}");
        assert_eq!(w.rate(), r, "reading does not change it");
    }

    #[test]
    fn an_outage_runs_from_the_error_to_media_again_and_retries_are_one_outage() {
        let mut log = OutageLog::default();
        let t0 = Instant::now();
        log.begin(t0, "stalled".into());
        log.begin(t0 + Duration::from_secs(1), "reconnect refused".into());
        let (list, count, total) = log.read(t0 + Duration::from_secs(2));
        assert_eq!((list.len(), count, total), (1, 1, Duration::from_secs(2)));
        assert!(list[0].ongoing && !list[0].recovered);
        assert_eq!(list[0].cause, "stalled");
        log.end(t0 + Duration::from_secs(3), true);
        log.end(t0 + Duration::from_secs(9), true); // nothing open: no change
        let (list, count, total) = log.read(t0 + Duration::from_secs(60));
        assert_eq!((count, total), (1, Duration::from_secs(3)));
        assert!(list[0].recovered && !list[0].ongoing);
        for k in 0..OUTAGES_KEPT as u64 + 4 {
            let at = t0 + Duration::from_secs(10 + 2 * k);
            log.begin(at, format!("outage {k}"));
            log.end(at + Duration::from_secs(1), k % 2 == 0);
        }
        let (list, count, total) = log.read(t0 + Duration::from_secs(100));
        assert_eq!(list.len(), OUTAGES_KEPT, "only the most recent are kept");
        assert_eq!(count, OUTAGES_KEPT as u64 + 5);
        assert_eq!(total, Duration::from_secs(3 + OUTAGES_KEPT as u64 + 4));
        assert_eq!(
            list.last().unwrap().cause,
            format!("outage {}", OUTAGES_KEPT + 3)
        );
    }
}
