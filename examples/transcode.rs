//! Transcode one source to an HLS ABR ladder (and a DASH manifest with `--dash`).
//!
//! ```text
//! cargo run --release --example transcode -- --help
//! cargo run --release --example transcode -- input.mp4 --out out/film --ladder 720p,360p
//! ```
//! Every flag is described by `--help` (the `Args` below). A progress line goes to stderr
//! while it runs, a summary at the end, naming where the output went (the directory, or the
//! redacted `--put` URL). Exit 0 when the stream ended normally; 1, with the error on
//! stderr, when it failed; 2 for a usage error.
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

use clap::{CommandFactory, Parser};

#[path = "common/json.rs"]
mod json;
#[path = "common/local_files.rs"]
mod local_files;

use streamvisor::config::{FillPicture, Filler, InputLoss, Slate};
use streamvisor::origin::Origin;
use streamvisor::sink::{FsSink, HttpSink};
use streamvisor::{
    AbrProfile, Container, RecoveryPolicy, Source, StateSet, Stream, StreamConfig, StreamState,
    VideoCodec,
};

/// The embedded default source: 10 s of 1080p30 test pattern with a 440 Hz tone.
const DEFAULT_SOURCE: &str = "lavfi:testsrc2=size=1920x1080:rate=30:duration=10;sine=frequency=440:sample_rate=48000:duration=10";

/// Shown after the flags by `--help`.
const AFTER_HELP: &str = "\
Exit status: 0 when the stream ended normally; 1, with the error on stderr, when it failed;
2 for a usage error. SIGINT or SIGTERM stops gracefully (playlists finished, exit 0); a
second one aborts.

Examples:
  transcode input.mp4 --out out/film --ladder 720p,360p
  transcode 'tcp://127.0.0.1:9000?listen=1' --json
  transcode input.mp4 --out out/av1 --ladder 1080p:av1,720p:av1,360p:h264 --dash
  transcode input.mp4 --ladder 720p:hevc,360p --dash --put http://origin:8080/vod/film
  cat in.ts | transcode - --format mpegts
  transcode 'tcp://127.0.0.1:9000?listen=1' --low-latency --dash --serve 127.0.0.1:8080";

/// Transcode one source to an HLS ABR ladder (master playlist, one playlist per rung), with
/// a DASH manifest over the same segments on request.
///
/// A progress line goes to stderr while it runs; a summary at the end says where the output
/// went.
#[derive(Debug, Parser)]
// A flag given twice keeps its last value, as the hand-written parser did.
#[command(name = "transcode", args_override_self = true, after_help = AFTER_HELP)]
struct Args {
    /// The source: a file, a URL (http(s), rtmp, srt, udp, rtp, tcp, ...), `-` for standard
    /// input, or a `lavfi:` graph (with --allow-lavfi). Without it: the embedded 10 s 1080p30
    /// test pattern with a tone
    #[arg(value_name = "INPUT")]
    input: Option<String>,

    /// More positional arguments: refused, shown redacted (they may be URLs with secrets).
    #[arg(hide = true)]
    unexpected: Vec<String>,

    /// Directory to write the ladder to (with --put: only the output's name)
    #[arg(long, value_name = "DIR", default_value = "out/demo")]
    out: String,

    /// Rungs to encode, comma-separated: standard names (1080p, 720p, 480p, 360p, 240p),
    /// each with an optional `:CODEC` (720p:av1,360p:h264) [default: all five; rungs taller
    /// than the source are left out]
    #[arg(long, value_name = "RUNG[:CODEC],...", value_delimiter = ',', value_parser = parse_rung)]
    ladder: Vec<Rung>,

    /// Encoder speed preset on x264's scale, ultrafast to veryslow (x265 takes the same
    /// names, SVT-AV1's presets are mapped) [default: veryfast]
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,

    /// Segment duration in seconds [default: 2]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    segment: Option<Duration>,

    /// Print one JSON object per line on stdout: every state change, a stats snapshot each
    /// second and a final summary (the crate's serde serialization)
    #[arg(long)]
    json: bool,

    /// Most reconnection attempts when a network source fails (0: none) [default: 5]
    #[arg(long, value_name = "N")]
    max_reconnects: Option<u32>,

    /// Do not fsync segments and playlists before they are listed (faster on a slow disk;
    /// a power loss may then leave a playlist listing a torn segment)
    #[arg(long)]
    no_sync_output: bool,

    /// Read local files (a local INPUT and what it opens) from this directory only
    /// [default: the directory of each local source named here]
    #[arg(long, value_name = "DIR")]
    local_files_under: Option<std::path::PathBuf>,

    /// Accept a `lavfi:` INPUT: generated sources are trusted input, refused without this
    #[arg(long)]
    allow_lavfi: bool,

    /// Force the input format by FFmpeg's short name (mpegts, flv, ...), for any INPUT
    #[arg(long, value_name = "NAME")]
    format: Option<String>,

    /// Segment container: ts (MPEG-TS) or fmp4 (CMAF: fragmented MP4, audio as its own
    /// rendition) [default: ts; fmp4 with --dash or an HEVC or AV1 rung]
    #[arg(long, value_name = "ts|fmp4")]
    container: Option<Container>,

    /// Video codec of every rung: h264, hevc or av1 (HEVC and AV1 need fmp4, which they then
    /// imply); a rung in --ladder may name its own [default: h264]
    #[arg(long, value_name = "h264|hevc|av1")]
    codec: Option<VideoCodec>,

    /// Also write manifest.mpd, a DASH manifest over the same segments (implies fmp4)
    #[arg(long)]
    dash: bool,

    /// Low-Latency HLS for a live INPUT: parts of --part seconds listed as they are
    /// written (implies fmp4)
    #[arg(long)]
    low_latency: bool,

    /// Serve the output over HTTP from the crate's own origin at ADDR (e.g. 127.0.0.1:8080):
    /// Low-Latency HLS with blocking playlist reloads and delta updates; the files are
    /// also written to --out (or --put)
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,

    /// The low-latency part duration in seconds, 0.2 to 1 [default: 0.334]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    part: Option<Duration>,

    /// The latency low-latency DASH players aim at, in seconds, glass to glass [default:
    /// four parts]; another part or two keeps a busy machine's viewers from stalling
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    dash_target: Option<Duration>,

    /// A backup source for a live INPUT (repeatable, in order of preference): kept warm,
    /// switched to when INPUT sends nothing for --fill-after, and back when INPUT has been
    /// healthy for 5 s
    #[arg(long, value_name = "URL")]
    backup: Vec<String>,

    /// What a live output does while its source sends nothing: fill (keep every rendition
    /// going on the wall clock: the last frame, then black or --slate, with silence) or stop
    /// (pause with the source; every source frame out, none added) [default: fill]
    #[arg(long, value_name = "fill|stop")]
    input_loss: Option<InputLossChoice>,

    /// Start the filler after this many seconds without a frame [default: 1]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    fill_after: Option<Duration>,

    /// Show this image (PNG, JPEG, ... any still FFmpeg decodes) once the last frame has
    /// been repeated for 2 s, instead of black
    #[arg(long, value_name = "FILE")]
    slate: Option<std::path::PathBuf>,

    /// Upload everything to this HTTP origin with PUT (and DELETE for segments that leave a
    /// live window) instead of writing files, e.g. http://origin:8080/live/cam1
    #[arg(long, value_name = "URL")]
    put: Option<String>,
}

/// `--input-loss`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputLossChoice {
    Fill,
    Stop,
}

/// The input-loss policy the flags describe.
fn input_loss(args: &Args) -> Result<InputLoss, String> {
    let filler = match args.input_loss {
        Some(InputLossChoice::Stop) if args.fill_after.is_some() || args.slate.is_some() => {
            return Err("--fill-after and --slate need --input-loss fill".into())
        }
        Some(InputLossChoice::Stop) => return Ok(InputLoss::Stop),
        _ => Filler::default(),
    };
    let filler = match args.fill_after {
        Some(after) => filler.after(after),
        None => filler,
    };
    let filler = match &args.slate {
        Some(path) => {
            let slate = Slate::from_file(path).map_err(|e| format!("--slate: {e}"))?;
            filler.then(FillPicture::Slate(slate))
        }
        None => filler,
    };
    Ok(InputLoss::Fill(filler))
}

/// One `--ladder` rung: a standard name and, optionally, its own codec.
#[derive(Debug, Clone)]
struct Rung {
    name: String,
    codec: Option<VideoCodec>,
}

/// `NAME` or `NAME:CODEC`; the name is checked with the whole ladder, by the crate.
fn parse_rung(text: &str) -> Result<Rung, String> {
    let (name, codec) = match text.split_once(':') {
        Some((n, c)) => (n, Some(c.parse::<VideoCodec>().map_err(|e| e.to_string())?)),
        None => (text, None),
    };
    Ok(Rung {
        name: name.to_owned(),
        codec,
    })
}

/// A positive, finite number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !s.is_finite() || s <= 0.0 {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

impl Args {
    /// The command line, or clap's usage error (exit 2) or help (exit 0).
    fn from_command_line() -> Self {
        let mut args = Args::parse();
        if let Some(extra) = args.unexpected.first() {
            // clap would echo it as given; it may hold credentials.
            let shown = streamvisor::redact_url(extra);
            Args::command()
                .error(
                    clap::error::ErrorKind::UnknownArgument,
                    format!("unexpected argument {shown}"),
                )
                .exit();
        }
        if args.input.is_none() {
            args.allow_lavfi = true; // the embedded default
        }
        args
    }

    /// Where the summary says the output went: the directory, or the origin (redacted: a
    /// `--put` URL may carry credentials or a token).
    fn destination(&self) -> String {
        match &self.put {
            Some(url) => format!("uploaded to {}", streamvisor::redact_url(url)),
            None => format!("written to {}", self.out),
        }
    }
}

/// The `--ladder` rungs as a profile, each with its own codec where it names one.
fn ladder(rungs: &[Rung]) -> Result<AbrProfile, String> {
    let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
    let mut profile = AbrProfile::from_rungs(&names).map_err(|e| e.to_string())?;
    for (v, r) in profile.variants.iter_mut().zip(rungs) {
        if let Some(c) = r.codec {
            v.codec = c;
        }
    }
    Ok(profile)
}

fn run(args: Args) -> Result<(), String> {
    let mut profile = if args.ladder.is_empty() {
        AbrProfile::standard()
    } else {
        ladder(&args.ladder)?
    };
    if let Some(codec) = args.codec {
        profile = profile.with_codec(codec);
    }
    let needs_fmp4 = args.dash
        || args.low_latency
        || profile.variants.iter().any(|v| v.codec != VideoCodec::H264);
    let container = args.container.unwrap_or(if needs_fmp4 {
        Container::Fmp4
    } else {
        Container::MpegTs
    });
    profile = profile.with_container(container).with_dash(args.dash);
    if args.low_latency || args.part.is_some() {
        profile = profile.with_parts(args.part.unwrap_or(Duration::from_millis(334)));
    }
    if let Some(target) = args.dash_target {
        profile = profile.with_dash_target_latency(target);
    }
    if let Some(p) = &args.preset {
        profile = profile.with_preset(p);
    }
    if let Some(d) = args.segment {
        profile = profile.with_segment_duration(d);
    }
    let mut recovery = RecoveryPolicy::default();
    if let Some(n) = args.max_reconnects {
        recovery = recovery.with_max_attempts(n);
    }
    // `-` is stdin, read as a Rust `Read` on the stream's reader thread.
    let input = args.input.as_deref().unwrap_or(DEFAULT_SOURCE);
    let mut source = match input {
        "-" => Source::reader(std::io::stdin()),
        url => Source::url(url),
    };
    if let Some(name) = &args.format {
        source = source.format(name);
    }
    for url in &args.backup {
        source = source.backup(url.as_str());
    }
    let mut builder = StreamConfig::builder("transcode", source, &args.out)
        .allow_generated_sources(args.allow_lavfi)
        .profile(profile)
        .recovery(recovery)
        .input_loss(input_loss(&args)?)
        .sync_output(!args.no_sync_output);
    if let Some(dir) = local_files::local_root(input, args.local_files_under.as_deref()) {
        builder = builder.local_files_under(dir);
    }
    let store: Option<Arc<dyn streamvisor::sink::SegmentSink>> = match &args.put {
        Some(url) => Some(Arc::new(
            HttpSink::new(url).map_err(|e| format!("--put: {e}"))?,
        )),
        None => None,
    };
    let origin = match args.serve {
        Some(addr) => {
            let origin = Origin::bind(addr).map_err(|e| format!("--serve {addr}: {e}"))?;
            let on_disk = Arc::new(FsSink::new(&args.out, !args.no_sync_output));
            let inner = store.clone().unwrap_or(on_disk);
            builder = builder.sink(Arc::new(origin.sink("", Some(inner))));
            eprintln!("serving on http://{}/master.m3u8", origin.local_addr());
            if args.dash {
                eprintln!("serving on http://{}/manifest.mpd", origin.local_addr());
            }
            Some(origin)
        }
        None => None,
    };
    if let (Some(sink), None) = (store, &origin) {
        builder = builder.sink(sink);
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
        "{}: {} frames in {:.2}s of media, {:.2}s wall ({:.2}x), {} corrupt packets, {:.1} MB {}",
        report.state,
        s.frames_in,
        s.media_time.as_secs_f64(),
        s.uptime.as_secs_f64(),
        s.speed,
        s.corrupt_packets,
        s.bytes_out as f64 / 1e6,
        args.destination()
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
    match run(Args::from_command_line()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
