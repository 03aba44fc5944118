//! Transcode one source to an HLS ABR ladder.
//!
//! ```text
//! cargo run --release --example transcode -- [INPUT] [--out DIR] [--ladder 1080p,720p,...]
//!     [--preset NAME] [--segment SECS]
//! ```
//! Without INPUT it transcodes the embedded default: a 10 s 1080p30 test pattern with a
//! tone. A progress line goes to stderr while it runs, a summary at the end. Exit 0 when
//! the stream ended normally; non-zero, with the error on stderr, when it failed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use streamvisor::{AbrProfile, StateSet, Stream, StreamConfig, StreamState};

/// The embedded default source: 10 s of 1080p30 test pattern with a 440 Hz tone.
const DEFAULT_SOURCE: &str = "lavfi:testsrc2=size=1920x1080:rate=30:duration=10;sine=frequency=440:sample_rate=48000:duration=10";

struct Args {
    input: String,
    out: String,
    ladder: Option<Vec<String>>,
    preset: Option<String>,
    segment: Option<f64>,
}

fn usage() -> &'static str {
    "usage: transcode [INPUT] [--out DIR] [--ladder 1080p,720p,...] [--preset NAME] [--segment SECS]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        input: DEFAULT_SOURCE.to_owned(),
        out: "out/demo".to_owned(),
        ladder: None,
        preset: None,
        segment: None,
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
            "-h" | "--help" => return Err(usage().to_owned()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            s if input.is_none() => input = Some(s.to_owned()),
            s => return Err(format!("unexpected argument {s}\n{}", usage())),
        }
    }
    if let Some(i) = input {
        args.input = i;
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let mut profile = match &args.ladder {
        Some(rungs) => AbrProfile::from_rungs(rungs).map_err(|e| e.to_string())?,
        None => AbrProfile::standard(),
    };
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
    let config = StreamConfig::builder("transcode", &args.input, &args.out)
        .profile(profile)
        .build()
        .map_err(|e| e.to_string())?;
    let running = Stream::new(config).start().map_err(|e| e.to_string())?;
    let mut stderr = std::io::stderr();
    loop {
        let state = running.wait_for(StateSet::TERMINAL, Duration::from_millis(500));
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
    for v in &s.variants {
        eprintln!(
            "  {:<8} {:>6} frames  {:>3} segments  {:>8.1} kb/s",
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
            .map_or_else(|| "stream failed".to_owned(), |e| e.to_string())),
    }
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
