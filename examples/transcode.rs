//! Transcode one source to an HLS ABR ladder.
//!
//! ```text
//! cargo run --release --example transcode -- [INPUT] [--out DIR] [--ladder 1080p,720p,...]
//!     [--preset NAME] [--segment SECS] [--json] [--max-reconnects N] [--allow-lavfi]
//!     [--format NAME] [--container ts|fmp4] [--codec h264|hevc|av1] [--dash]
//! ```
//! `--container fmp4` writes CMAF segments (fragmented MP4, audio as its own rendition);
//! `--codec` sets every rung's video codec (HEVC and AV1 need fmp4, which they then imply);
//! a rung in `--ladder` may name its own, after a colon: `--ladder 720p:av1,360p:h264`.
//! `--dash` also writes `manifest.mpd` over the same segments (implies fmp4).
//! `--put URL` uploads everything to an HTTP origin with PUT (and DELETE for segments that
//! leave a live window) instead of writing under `--out` (which then only names the
//! output): `--put http://origin:8080/live/cam1`.
//! Without INPUT it transcodes the embedded default: a 10 s 1080p30 test pattern with a
//! tone. A `lavfi:` INPUT is refused unless `--allow-lavfi` is given (generated sources
//! are trusted input). INPUT `-` reads stdin through a Rust `Read` (`Source::reader`), e.g.
//! `cat in.ts | transcode - --format mpegts`; `--format` forces the input format by
//! FFmpeg's short name (for any INPUT). A progress line goes to stderr while it runs, a summary at the end. Exit 0 when
//! the stream ended normally; non-zero, with the error on stderr, when it failed.
//!
//! `--json` prints one JSON object per line on stdout for every state change
//! (`{"event":"state","stream":ID,"from":STATE,"to":STATE,"error":ERROR|null,"at":SECS}`),
//! every stats snapshot (`{"event":"stats","stream":ID,"state":STATE,"stats":{...}}`) and a
//! final `{"event":"summary",...}` (the `StreamReport`): the crate's own serialization
//! (feature `serde`), every field of `StreamStats` included; durations in seconds.
//!
//! SIGINT / SIGTERM stop gracefully (the output is finished, exit 0); a second one aborts.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "common/json.rs"]
mod json;

use streamvisor::sink::HttpSink;
use streamvisor::{
    AbrProfile, Container, RecoveryPolicy, Source, StateSet, Stream, StreamConfig, StreamState,
    VideoCodec,
};

/// The embedded default source: 10 s of 1080p30 test pattern with a 440 Hz tone.
const DEFAULT_SOURCE: &str = "lavfi:testsrc2=size=1920x1080:rate=30:duration=10;sine=frequency=440:sample_rate=48000:duration=10";

struct Args {
    input: String,
    out: String,
    ladder: Option<Vec<String>>,
    preset: Option<String>,
    segment: Option<f64>,
    json: bool,
    max_reconnects: Option<u32>,
    /// Generated (`lavfi:`) sources accepted: the embedded default, or `--allow-lavfi`.
    allow_lavfi: bool,
    /// The input format, forced by name.
    format: Option<String>,
    container: Option<Container>,
    codec: Option<VideoCodec>,
    dash: bool,
    /// Upload to this origin instead of writing files.
    put: Option<String>,
}

fn usage() -> &'static str {
    "usage: transcode [INPUT] [--out DIR] [--ladder 1080p[:CODEC],720p,...] [--preset NAME] [--segment SECS] [--json] [--max-reconnects N] [--allow-lavfi] [--format NAME] [--container ts|fmp4] [--codec h264|hevc|av1] [--dash] [--put URL]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        input: DEFAULT_SOURCE.to_owned(),
        out: "out/demo".to_owned(),
        ladder: None,
        preset: None,
        segment: None,
        json: false,
        max_reconnects: None,
        allow_lavfi: false,
        format: None,
        container: None,
        codec: None,
        dash: false,
        put: None,
    };
    let mut it = std::env::args().skip(1);
    let mut input = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--out" => args.out = value("--out")?,
            "--ladder" => {
                args.ladder = Some(value("--ladder")?.split(',').map(str::to_owned).collect())
            }
            "--preset" => args.preset = Some(value("--preset")?),
            "--segment" => {
                let v = value("--segment")?;
                args.segment = Some(
                    v.parse()
                        .map_err(|_| format!("--segment: {v:?} is not a number"))?,
                );
            }
            "--json" => args.json = true,
            "--max-reconnects" => {
                let v = value("--max-reconnects")?;
                args.max_reconnects = Some(
                    v.parse()
                        .map_err(|_| format!("--max-reconnects: {v:?} is not a count"))?,
                );
            }
            "--allow-lavfi" => args.allow_lavfi = true,
            "--format" => args.format = Some(value("--format")?),
            "--container" => {
                let v = value("--container")?;
                args.container = Some(v.parse().map_err(|e| format!("--container: {e}"))?);
            }
            "--codec" => {
                let v = value("--codec")?;
                args.codec = Some(v.parse().map_err(|e| format!("--codec: {e}"))?);
            }
            "--dash" => args.dash = true,
            "--put" => args.put = Some(value("--put")?),
            "-h" | "--help" => return Err(usage().to_owned()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            s if input.is_none() => input = Some(s.to_owned()),
            s => {
                let s = streamvisor::redact_url(s);
                return Err(format!("unexpected argument {s}\n{}", usage()));
            }
        }
    }
    match input {
        Some(i) => args.input = i,
        None => args.allow_lavfi = true, // the embedded default
    }
    Ok(args)
}

/// `--ladder`: standard rung names, each with an optional `:codec`.
fn ladder(rungs: &[String]) -> Result<AbrProfile, String> {
    let mut names = Vec::new();
    let mut codecs = Vec::new();
    for r in rungs {
        let (name, codec) = match r.split_once(':') {
            Some((n, c)) => (
                n,
                Some(
                    c.parse::<VideoCodec>()
                        .map_err(|e| format!("--ladder {r}: {e}"))?,
                ),
            ),
            None => (r.as_str(), None),
        };
        names.push(name);
        codecs.push(codec);
    }
    let mut profile = AbrProfile::from_rungs(&names).map_err(|e| e.to_string())?;
    for (v, c) in profile.variants.iter_mut().zip(codecs) {
        if let Some(c) = c {
            v.codec = c;
        }
    }
    Ok(profile)
}

fn run(args: Args) -> Result<(), String> {
    let mut profile = match &args.ladder {
        Some(rungs) => ladder(rungs)?,
        None => AbrProfile::standard(),
    };
    if let Some(codec) = args.codec {
        profile = profile.with_codec(codec);
    }
    let needs_fmp4 = args.dash || profile.variants.iter().any(|v| v.codec != VideoCodec::H264);
    let container = args.container.unwrap_or(if needs_fmp4 {
        Container::Fmp4
    } else {
        Container::MpegTs
    });
    profile = profile.with_container(container).with_dash(args.dash);
    if let Some(p) = &args.preset {
        profile = profile.with_preset(p);
    }
    if let Some(s) = args.segment {
        if !s.is_finite() || s <= 0.0 {
            return Err(format!(
                "--segment: {s} must be a positive number of seconds"
            ));
        }
        profile = profile.with_segment_duration(Duration::from_secs_f64(s));
    }
    let mut recovery = RecoveryPolicy::default();
    if let Some(n) = args.max_reconnects {
        recovery = recovery.with_max_attempts(n);
    }
    // `-` is stdin, read as a Rust `Read` on the stream's reader thread.
    let mut source = match args.input.as_str() {
        "-" => Source::reader(std::io::stdin()),
        url => Source::url(url),
    };
    if let Some(name) = &args.format {
        source = source.format(name);
    }
    let mut builder = StreamConfig::builder("transcode", source, &args.out)
        .allow_generated_sources(args.allow_lavfi)
        .profile(profile)
        .recovery(recovery);
    if let Some(url) = &args.put {
        let sink = HttpSink::new(url).map_err(|e| format!("--put: {e}"))?;
        builder = builder.sink(Arc::new(sink));
    }
    let config = builder.build().map_err(|e| e.to_string())?;
    let signals = Arc::new(AtomicUsize::new(0));
    watch_signals(signals.clone())?;
    let mut stream = Stream::new(config);
    if args.json {
        stream = stream.with_hooks(json::hooks());
    }
    let running = stream.start().map_err(|e| e.error.full_message())?;
    let mut stderr = std::io::stderr();
    let mut stop_sent = false;
    let mut last_draw = std::time::Instant::now();
    loop {
        // Wake often enough to act on a signal at once; redraw the progress line less often.
        let state = running.wait_for(StateSet::TERMINAL, Duration::from_millis(20));
        match signals.load(Ordering::SeqCst) {
            0 => {}
            1 if !stop_sent => {
                eprintln!("\nstopping (finishing the playlists; a second signal aborts)");
                running.request_stop();
                stop_sent = true;
            }
            1 => {}
            _ => {
                eprintln!("\naborting");
                let report = running.abort();
                return Err(format!("aborted by signal in state {}", report.state));
            }
        }
        if !state.is_terminal() && last_draw.elapsed() < Duration::from_millis(250) {
            continue;
        }
        last_draw = std::time::Instant::now();
        let s = running.stats();
        let fps = if s.uptime.as_secs_f64() > 0.0 {
            s.frames_in as f64 / s.uptime.as_secs_f64()
        } else {
            0.0
        };
        let _ = write!(
            stderr,
            "\r{:<9} time={:>8.2}s speed={:>5.2}x fps={:>6.1} frames={} out={:.1} MB   ",
            running.state().name(),
            s.media_time.as_secs_f64(),
            s.speed,
            fps,
            s.frames_in,
            s.bytes_out as f64 / 1e6
        );
        if state.is_terminal() {
            let _ = writeln!(stderr);
            break;
        }
    }
    let report = running.wait();
    if args.json {
        println!("{}", json::summary(&report));
    }
    let s = &report.stats;
    eprintln!(
        "{}: {} frames in {:.2}s of media, {:.2}s wall ({:.2}x), {} corrupt packets, {:.1} MB written to {}",
        report.state,
        s.frames_in,
        s.media_time.as_secs_f64(),
        s.uptime.as_secs_f64(),
        s.speed,
        s.corrupt_packets,
        s.bytes_out as f64 / 1e6,
        args.out
    );
    // Video rungs, then (fMP4) the audio renditions, whose frames are AAC frames.
    for v in s.variants.iter().chain(&s.audio_renditions) {
        eprintln!(
            "  {:<10} {:>6} frames  {:>3} segments  {:>8.1} kb/s",
            v.name,
            v.frames_out,
            v.segments,
            v.average_bitrate / 1000.0
        );
    }
    match report.state {
        StreamState::Stopped => Ok(()),
        _ => Err(report
            .error
            .map_or_else(|| "stream failed".to_owned(), |e| e.full_message())),
    }
}

/// Counts SIGINT/SIGTERM on a small thread (signal-safe, no work in the handler).
fn watch_signals(count: Arc<AtomicUsize>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
