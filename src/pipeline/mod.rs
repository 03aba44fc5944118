//! The media pipeline: one source decoded once, every variant scaled and encoded on its own
//! thread, audio encoded once, HLS out. Safe Rust over `ffi`; knows nothing about the
//! lifecycle beyond the [`Control`] flags it obeys.

mod audio;
mod decode;
pub(crate) mod hls;
mod source;
mod variant;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::bounded;
use parking_lot::Mutex;

use crate::config::{StreamConfig, VariantProfile};
use crate::error::{Error, ErrorKind};
use crate::ffi::{
    CodecContext, HwDeviceContext, Interrupt, Rational, VideoEncoderSettings, PIX_FMT_YUV420P,
};
use crate::stats::StatsCell;
use audio::AudioChain;
use decode::{DecodeLoop, Session};
use hls::{MasterEntry, SegmentWriter};
use variant::{output_error, VariantMsg, VariantWorker};

/// Frames queued per variant before the decoder waits (back-pressure, bounded memory).
const VARIANT_QUEUE: usize = 8;

/// Stop/abort flags shared by a stream's handle and its threads.
#[derive(Debug)]
pub(crate) struct Control {
    stream: String,
    interrupt: Arc<Interrupt>,
    stop: AtomicBool,
    abort: AtomicBool,
    stall: AtomicBool,
}

impl Control {
    pub fn new(stream: &str) -> Arc<Self> {
        Arc::new(Self {
            stream: stream.to_owned(),
            interrupt: Interrupt::new(),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            stall: AtomicBool::new(false),
        })
    }

    pub fn stream_id(&self) -> &str {
        &self.stream
    }

    /// Graceful: stop reading (a blocked read returns at once), drain, finish the outputs.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }

    /// Immediate: interrupt I/O and drop partial work.
    pub fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }

    /// A watchdog saw no progress: the current read is cut and the stream goes through its
    /// recovery policy as for a stalled source.
    pub fn report_stall(&self) {
        self.stall.store(true, Ordering::SeqCst);
        self.interrupt.expire();
    }

    /// Takes a pending stall report.
    pub fn take_stall(&self) -> bool {
        self.stall.swap(false, Ordering::SeqCst)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` unless a stop or abort comes first; true when one did.
    pub fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        loop {
            if self.stop_requested() || self.abort_requested() {
                return true;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// How a pipeline run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The source ended (end of file).
    SourceEnded,
    /// A stop was requested and the outputs were finished.
    Stopped,
}

/// Progress the pipeline reports to the lifecycle layer.
#[derive(Debug, Clone)]
pub(crate) enum PipelineEvent {
    /// Source open, every encoder and output ready: media is flowing.
    Running,
    /// Reading stopped (end of source or stop request): flushing everything.
    Draining,
    /// A recoverable error: recovery (reconnect, CPU fallback) is under way.
    Recovering(Error),
    /// Recovered: media flows again.
    Recovered,
}

/// The master playlist's entries as variants complete their first segment.
pub(crate) struct LadderState {
    stream: String,
    dir: PathBuf,
    inner: Mutex<LadderInner>,
}

struct LadderInner {
    entries: Vec<MasterEntry>,
    ready: Vec<bool>,
    written: bool,
}

impl LadderState {
    pub fn stream_id(&self) -> &str {
        &self.stream
    }

    /// Variant `index` listed a segment; once every variant has, the master is written.
    pub fn segment_done(&self, index: usize, codecs: &str, stats: &StatsCell) {
        let snapshot = {
            let mut g = self.inner.lock();
            if g.ready[index] {
                return;
            }
            g.ready[index] = true;
            g.entries[index].codecs = codecs.to_owned();
            if g.written || g.ready.iter().any(|r| !r) {
                return;
            }
            g.written = true;
            g.entries.clone()
        };
        self.write(&snapshot, stats);
    }

    fn write(&self, entries: &[MasterEntry], stats: &StatsCell) {
        match hls::write_master(&self.dir, entries) {
            Ok(n) => {
                stats.playlist_bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "stream {}: writing {}: {e}",
                    self.stream,
                    self.dir.join(hls::MASTER_PLAYLIST).display()
                );
            }
        }
    }

    /// Rewrites the master with measured bandwidth once the ladder is finished.
    fn finish(&self, measured: &[(u64, u64)], stats: &StatsCell) {
        let entries = {
            let mut g = self.inner.lock();
            if !g.written {
                return;
            }
            for (e, &(peak, avg)) in g.entries.iter_mut().zip(measured) {
                if peak > 0 && avg > 0 {
                    e.bandwidth = peak.max(avg);
                    e.average_bandwidth = avg;
                }
            }
            g.entries.clone()
        };
        self.write(&entries, stats);
    }
}

/// A variant as planned from the source's geometry.
struct Plan<'a> {
    profile: &'a VariantProfile,
    width: i32,
    height: i32,
    frame_rate: f64,
}

/// Width for `height` that keeps the source's display aspect, rounded to even.
fn width_for(height: u32, src_w: i32, src_h: i32, sar: Rational) -> i32 {
    let sar = if sar.is_valid() { sar.as_f64() } else { 1.0 };
    let dar = f64::from(src_w) * sar / f64::from(src_h);
    let w = (f64::from(height) * dar / 2.0).round() as i32 * 2;
    w.max(2)
}

fn plan<'a>(
    config: &'a StreamConfig,
    src_w: i32,
    src_h: i32,
    sar: Rational,
    src_fps: f64,
) -> Vec<Plan<'a>> {
    let profile = config.profile();
    let make = |v: &'a VariantProfile| Plan {
        profile: v,
        width: width_for(v.height, src_w, src_h, sar),
        height: v.height as i32,
        frame_rate: v.max_frame_rate.map_or(src_fps, |cap| cap.min(src_fps)),
    };
    let mut plans: Vec<Plan> = profile
        .variants
        .iter()
        .filter(|v| {
            let keep = profile.keep_taller_rungs || v.height as i32 <= src_h;
            if !keep {
                log::info!(
                    "stream {}: leaving out variant {} ({}p): taller than the {src_h}p source",
                    config.id(),
                    v.name,
                    v.height
                );
            }
            keep
        })
        .map(make)
        .collect();
    if plans.is_empty() {
        // Every rung is taller than the source: keep the shortest so there is an output.
        let shortest = profile
            .variants
            .iter()
            .min_by_key(|v| v.height)
            .expect("validated non-empty");
        log::info!(
            "stream {}: every rung is taller than the source; keeping {}",
            config.id(),
            shortest.name
        );
        plans.push(make(shortest));
    }
    plans
}

/// Creates the output directories and removes what an earlier run left that this run
/// would otherwise be confused with (our playlist and segment names only).
fn prepare_output(config: &StreamConfig, plans: &[Plan]) -> Result<(), Error> {
    let stream = config.id();
    let dir = config.output_dir();
    std::fs::create_dir_all(dir).map_err(|e| Error::output(stream, dir, &e))?;
    for p in plans {
        let vdir = dir.join(&p.profile.name);
        std::fs::create_dir_all(&vdir).map_err(|e| Error::output(stream, &vdir, &e))?;
        let entries = std::fs::read_dir(&vdir).map_err(|e| Error::output(stream, &vdir, &e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = (name.starts_with("seg_") && name.ends_with(".ts"))
                || name.starts_with(hls::MEDIA_PLAYLIST);
            if ours {
                remove_if_exists(stream, &entry.path())?;
            }
        }
    }
    Ok(())
}

fn remove_if_exists(stream: &str, path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Something on the way is a file, not a directory: name the directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            Err(Error::output(stream, path.parent().unwrap_or(path), &e))
        }
        Err(e) => Err(Error::output(stream, path, &e)),
    }
}

/// Opens the configured hardware device. Failing that, falls back to the CPU when the
/// policy allows (reported as a recovery), or fails with a hardware error.
fn open_hardware(
    config: &StreamConfig,
    stats: &StatsCell,
    events: &mut dyn FnMut(PipelineEvent),
) -> Result<Option<HwDeviceContext>, Error> {
    let Some(hw) = config.hw_device() else {
        return Ok(None);
    };
    match HwDeviceContext::open(hw.kind.name(), &hw.device) {
        Ok(device) => Ok(Some(device)),
        Err(e) => {
            let error = Error::Hardware {
                stream: config.id().to_owned(),
                device: hw.to_string(),
                reason: format!("cannot open the device: {}", e.message()),
                code: Some(e.code),
            };
            if !config.recovery().hardware_fallback {
                return Err(error);
            }
            log::warn!("{error}; falling back to the CPU");
            stats.errors.fetch_add(1, Ordering::Relaxed);
            stats.hardware_fallbacks.fetch_add(1, Ordering::Relaxed);
            events(PipelineEvent::Recovering(error));
            Ok(None)
        }
    }
}

/// Runs the whole pipeline on the calling thread (plus one scoped thread per variant).
/// Returns when the source ends, a stop finishes, an abort lands, or something fails;
/// recoverable source errors reconnect in between, per the config's recovery policy.
pub(crate) fn run(
    config: &StreamConfig,
    control: &Control,
    stats: &StatsCell,
    events: &mut dyn FnMut(PipelineEvent),
) -> Result<Ending, Error> {
    let stream = config.id();
    // Whatever happens next, an earlier run's master must not claim this run's ladder.
    remove_if_exists(stream, &config.output_dir().join(hls::MASTER_PLAYLIST))?;
    let mut hw = open_hardware(config, stats, events)?;
    let mut recovering = hw.is_none() && config.hw_device().is_some();
    // The first connection is retried like a reconnect (a publisher may start late).
    let session = match Session::open(config, control, hw.as_ref(), None) {
        Ok(s) => s,
        Err(Error::Aborted { .. }) if control.stop_requested() && !control.abort_requested() => {
            return Ok(Ending::Stopped)
        }
        Err(e) if decode::should_reconnect(config, &e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            events(PipelineEvent::Recovering(e.clone()));
            recovering = true;
            match decode::reconnect(config, control, stats, hw.as_ref(), None, e)? {
                Some(s) => s,
                None => return Ok(Ending::Stopped),
            }
        }
        Err(e) => return Err(e),
    };
    let v = session.src.video.clone();
    let src_fps = if v.frame_rate.is_valid() {
        v.frame_rate.as_f64()
    } else {
        30.0
    };
    let plans = plan(config, v.width, v.height, v.sample_aspect_ratio, src_fps);
    prepare_output(config, &plans)?;

    let mut audio = match &session.src.audio {
        Some(a) => {
            let rates: Vec<u64> = plans.iter().map(|p| p.profile.audio_bitrate).collect();
            let mut chain = AudioChain::new(stream, a, &rates)?;
            chain.attach(Some((&session.src.input, a)))?;
            Some(chain)
        }
        None => None,
    };

    let seg = config.profile().segment_duration;
    let live_window = session.src.live.then_some(config.profile().live_window);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rates: Vec<f64> = plans
        .iter()
        .map(|p| f64::from(p.width * p.height) * p.frame_rate)
        .collect();
    let threads = encoder_threads(&rates, cores);
    let mut workers = Vec::with_capacity(plans.len());
    let mut audio_route = Vec::with_capacity(plans.len());
    let mut entries = Vec::with_capacity(plans.len());
    for (i, p) in plans.iter().enumerate() {
        let vp = p.profile;
        let frames_per_segment = (seg.as_secs_f64() * p.frame_rate).ceil().max(1.0) as i32;
        let settings = VideoEncoderSettings {
            codec: vp.codec.encoder_name().to_owned(),
            width: p.width,
            height: p.height,
            pix_fmt: PIX_FMT_YUV420P,
            time_base: v.time_base,
            frame_rate: rational_fps(p.frame_rate),
            bit_rate: vp.video_bitrate as i64,
            max_rate: vp.max_rate as i64,
            buf_size: vp.buf_size as i64,
            // Keyframes come only from the segment boundaries we force; never from x264's
            // own GOP logic or scene cuts, which would break alignment across variants.
            gop_size: frames_per_segment * 4,
            threads: threads[i],
            options: vec![
                ("preset".into(), vp.preset.clone()),
                ("forced-idr".into(), "1".into()),
                ("x264-params".into(), "scenecut=0:open-gop=0".into()),
            ],
        };
        let encoder = CodecContext::open_video_encoder(&settings)
            .map_err(|e| audio::encoder_error(stream, settings.codec.as_str(), e))?;
        let route = audio.as_ref().map(|a| a.encoder_for(vp.audio_bitrate));
        let audio_enc = audio.as_ref().zip(route).map(|(a, r)| &a.encoders[r].ctx);
        let vdir = config.output_dir().join(&vp.name);
        let writer =
            SegmentWriter::create(&vdir, &encoder, audio_enc, seg.as_secs_f64(), live_window)
                .map_err(|e| output_error(stream, e))?;
        let counters = stats.add_variant(&vp.name);
        let audio_tb = audio_enc.map_or(Rational::new(0, 1), CodecContext::time_base);
        let mut worker = VariantWorker::new(
            i,
            vp.name.clone(),
            p.width,
            p.height,
            encoder,
            writer,
            counters,
            vp.max_frame_rate,
            audio_tb,
            p.frame_rate,
        );
        worker.panic_after_frames = config.panic_after_frames().filter(|_| i == 0);
        workers.push(worker);
        audio_route.push(route);
        let audio_bps = if route.is_some() { vp.audio_bitrate } else { 0 };
        entries.push(MasterEntry {
            uri: format!("{}/{}", vp.name, hls::MEDIA_PLAYLIST),
            bandwidth: vp.max_rate + audio_bps,
            average_bandwidth: vp.video_bitrate + audio_bps,
            width: p.width as u32,
            height: p.height as u32,
            codecs: String::new(),
            frame_rate: p.frame_rate,
        });
    }
    let ladder = LadderState {
        stream: stream.to_owned(),
        dir: config.output_dir().to_path_buf(),
        inner: Mutex::new(LadderInner {
            ready: vec![false; entries.len()],
            entries,
            written: false,
        }),
    };
    if recovering {
        stats.recoveries.fetch_add(1, Ordering::Relaxed);
    }
    events(PipelineEvent::Running);

    let outcome = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers.len());
        let mut handles = Vec::with_capacity(workers.len());
        for w in workers {
            let (tx, rx) = bounded(VARIANT_QUEUE);
            let name = format!("sv-{stream}-{}", w.name);
            let ladder = &ladder;
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || w.run(rx, control, stats, ladder));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    control.request_abort();
                    return Err(Error::Internal {
                        stream: stream.to_owned(),
                        message: format!("spawning a variant thread: {e}"),
                    });
                }
            }
            senders.push(tx);
        }
        let mut decode = DecodeLoop::new(
            config,
            control,
            stats,
            &senders,
            &audio_route,
            v.time_base,
            src_fps,
        );
        let mut current = Some(session);
        let mut fell_back = false;
        let main = loop {
            let mut s = current.take().expect("a session per turn");
            let r = decode.run_session(&mut s, audio.as_mut(), events);
            // Close the old connection before opening a new one.
            drop(s);
            match r {
                Ok(end) => break Ok(end),
                Err(e)
                    if e.kind() == ErrorKind::Hardware
                        && config.recovery().hardware_fallback
                        && !fell_back =>
                {
                    // The device was lost mid-stream: go on on the CPU, from where we were.
                    fell_back = true;
                    log::warn!("{e}; falling back to the CPU");
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    stats.hardware_fallbacks.fetch_add(1, Ordering::Relaxed);
                    events(PipelineEvent::Recovering(e));
                    hw = None;
                    let reopened = Session::open(config, control, None, audio.as_mut()).and_then(
                        |mut next| {
                            if next.src.live {
                                decode.discontinuity(audio.as_mut())?;
                            } else {
                                decode.resume(&mut next)?;
                            }
                            Ok(next)
                        },
                    );
                    match reopened {
                        Ok(next) => {
                            current = Some(next);
                            stats.recoveries.fetch_add(1, Ordering::Relaxed);
                            events(PipelineEvent::Recovered);
                        }
                        Err(e) => break Err(e),
                    }
                }
                Err(e) if decode::should_reconnect(config, &e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    events(PipelineEvent::Recovering(e.clone()));
                    match decode::reconnect(config, control, stats, hw.as_ref(), audio.as_mut(), e)
                    {
                        Ok(Some(next)) => {
                            if let Err(e) = decode.discontinuity(audio.as_mut()) {
                                break Err(e);
                            }
                            current = Some(next);
                            stats.recoveries.fetch_add(1, Ordering::Relaxed);
                            events(PipelineEvent::Recovered);
                        }
                        Ok(None) => {
                            events(PipelineEvent::Draining);
                            break Ok(Ending::Stopped);
                        }
                        Err(e) => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let main = main.and_then(|end| {
            if let Some(a) = audio.as_mut() {
                decode.finish_audio(a)?;
            }
            let mut all_told = Ok(end);
            for tx in &senders {
                // A variant that already failed has hung up: its own error is collected
                // below; an abort meanwhile makes the whole run aborted.
                if let Err(e) = decode.send(tx, VariantMsg::End) {
                    all_told = Err(e);
                }
            }
            all_told
        });
        drop(senders);
        let results: Vec<Result<(u64, u64), Error>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Err(Error::Panicked {
                        stream: stream.to_owned(),
                        message: crate::panic::panic_message(&*p),
                    })
                })
            })
            .collect();
        combine(main, results)
    });
    drop(audio);
    match outcome {
        Ok((ending, measured)) => {
            ladder.finish(&measured, stats);
            Ok(ending)
        }
        Err(e) => Err(e),
    }
}

/// The stream's result from the decode loop's and every variant's: the root cause wins
/// over the `Aborted` that other threads report when they are torn down because of it, and
/// a run is only finished when every variant finished (an abort that overtook a graceful
/// end leaves variants without their final segment: the run is aborted then).
fn combine(
    main: Result<Ending, Error>,
    variants: Vec<Result<(u64, u64), Error>>,
) -> Result<(Ending, Vec<(u64, u64)>), Error> {
    let mut measured = Vec::with_capacity(variants.len());
    let mut root = None;
    let mut aborted = None;
    for r in variants {
        match r {
            Ok(m) => measured.push(m),
            Err(e @ Error::Aborted { .. }) => aborted = Some(e),
            Err(e) => {
                root.get_or_insert(e);
            }
        }
    }
    match (main, root, aborted) {
        (_, Some(root), _) => Err(root),
        (Err(e), None, _) => Err(e),
        (Ok(_), None, Some(a)) => Err(a),
        (Ok(end), None, None) => Ok((end, measured)),
    }
}

/// x264 threads for each rung: the machine's cores (plus one, to cover I/O waits) shared in
/// proportion to each rung's pixel rate, at least one each. The rungs already run in
/// parallel with each other, so giving every encoder x264's automatic 1.5 x cores
/// oversubscribes the machine; measured on 2 cores this split is ~6 % faster.
fn encoder_threads(pixel_rates: &[f64], cores: usize) -> Vec<i32> {
    let total: f64 = pixel_rates.iter().sum();
    let budget = (cores + 1) as f64;
    pixel_rates
        .iter()
        .map(|r| {
            if total > 0.0 {
                (r / total * budget).round().max(1.0) as i32
            } else {
                1
            }
        })
        .collect()
}

fn rational_fps(fps: f64) -> Rational {
    let r = (fps * 1000.0).round() as i32;
    if r % 1000 == 0 {
        Rational::new(r / 1000, 1)
    } else {
        Rational::new(r, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_prefers_the_root_cause_and_never_reports_a_partial_finish() {
        let aborted = || Error::Aborted { stream: "s".into() };
        let disk = || Error::Output {
            stream: "s".into(),
            path: "x".into(),
            message: "full".into(),
            code: None,
        };
        assert!(matches!(
            combine(Err(aborted()), vec![Ok((1, 1)), Err(disk())]),
            Err(Error::Output { .. })
        ));
        assert!(matches!(
            combine(Ok(Ending::Stopped), vec![Ok((1, 1)), Err(aborted())]),
            Err(Error::Aborted { .. })
        ));
        let ok = combine(Ok(Ending::SourceEnded), vec![Ok((1, 2)), Ok((3, 4))]).unwrap();
        assert_eq!(ok, (Ending::SourceEnded, vec![(1, 2), (3, 4)]));
    }

    #[test]
    fn encoder_threads_follow_pixel_rate() {
        let ladder = [
            1920.0 * 1080.0,
            1280.0 * 720.0,
            854.0 * 480.0,
            640.0 * 360.0,
        ];
        assert_eq!(encoder_threads(&ladder, 2), [2, 1, 1, 1]);
        assert_eq!(encoder_threads(&ladder, 16), [10, 4, 2, 1]);
        assert_eq!(encoder_threads(&[1.0], 2), [3]);
        assert_eq!(encoder_threads(&[0.0, 0.0], 2), [1, 1]);
    }

    #[test]
    fn widths_follow_display_aspect_and_are_even() {
        let sq = Rational::new(1, 1);
        assert_eq!(width_for(720, 1920, 1080, sq), 1280);
        assert_eq!(width_for(480, 1920, 1080, sq), 854);
        assert_eq!(width_for(360, 1920, 1080, sq), 640);
        assert_eq!(width_for(240, 1920, 1080, sq), 426);
        assert_eq!(width_for(480, 640, 480, sq), 640);
        // Anamorphic 720x576 with 16:15 SAR displays 4:3.
        assert_eq!(width_for(576, 720, 576, Rational::new(16, 15)), 768);
        assert_eq!(width_for(360, 1080, 1920, Rational::new(0, 1)), 202);
    }
}
