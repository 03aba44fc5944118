//! Real-browser playback: Debian's Chromium plays a ladder with hls.js or dash.js
//! (`tools/browser/play.mjs`, driven by playwright-core) and every quality level must load
//! and play, at its own height. A missing package fails the test with its name (`make deps`
//! installs them all: chromium, nodejs, npm and the npm packages of tools/browser).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::ffmpeg;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Seconds the harness plays in all (from the start again when the stream ends).
const PLAY_SECONDS: u32 = 4;
/// The harness's own deadline (it prints what it saw by then); the process is killed
/// [`KILL_GRACE`] later if it is still running.
const PLAY_TIMEOUT: Duration = Duration::from_secs(40);
const KILL_GRACE: Duration = Duration::from_secs(20);

/// Which player plays the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// hls.js, from a master or media playlist.
    Hls,
    /// dash.js, from an MPD.
    Dash,
}

/// One video quality level as the player offered it (levels whose codec the browser cannot
/// play may be left out by the player: compare `levels.len()` with the rungs made).
#[allow(dead_code)] // Every field play.mjs reports, for the tests to come.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub index: u64,
    pub height: u64,
    pub width: u64,
    /// The codecs the playlist declares (empty when it declares none).
    pub codecs: String,
    pub bitrate: u64,
    /// Selected, loaded and played for a second with the picture at this level's height.
    pub played: bool,
    /// Seconds played at this level, at its height.
    pub seconds: f64,
}

/// What `tools/browser/play.mjs` saw; `json` is its whole output.
#[allow(dead_code)] // Every field play.mjs reports, for the tests to come.
#[derive(Debug, Clone)]
pub struct Playback {
    /// No fatal error, every level played, [`PLAY_SECONDS`] played in all.
    pub ok: bool,
    /// Why `ok` is false.
    pub reason: Option<String>,
    pub levels: Vec<Level>,
    /// Every height the rendered video had.
    pub heights_seen: Vec<u64>,
    /// The MIME types the player gave MSE (the codecs it really used).
    pub source_buffers: Vec<String>,
    pub played_seconds: f64,
    /// Live play (`play_live`): `waiting` events after playback started, and seconds the
    /// playhead stood still while playing.
    pub waiting_events: u64,
    pub stalled_seconds: f64,
    /// Live play: the latency (wall clock minus the program date-time on screen), median
    /// and 95th percentile, seconds.
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    /// Every error event (player, video element, page, HTTP answers not 200/206), fatal
    /// or not.
    pub errors: Vec<Value>,
    pub fatal: bool,
    /// `MediaSource.isTypeSupported('video/mp4; codecs="…"')` for avc1.640028,
    /// av01.0.04M.08 and hvc1.1.6.L93.B0: says why a codec's test is skipped.
    pub supported: BTreeMap<String, bool>,
    /// Chromium's version.
    pub browser: String,
    pub elapsed_s: f64,
    pub json: Value,
}

impl Playback {
    /// Whether this Chromium's MSE takes `codec` (one of the codecs in [`Playback::supported`]).
    pub fn supports(&self, codec: &str) -> bool {
        self.supported.get(codec).copied().unwrap_or(false)
    }

    /// Fails the test, with the whole report, unless live play had no fatal error and
    /// played `min_seconds`.
    pub fn assert_played_live(&self, min_seconds: f64) {
        let report = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        assert!(!self.fatal, "a fatal playback error: {report}");
        assert!(
            self.played_seconds >= min_seconds,
            "played {} s live, not {min_seconds} s: {report}",
            self.played_seconds
        );
    }

    /// Prints the live latency the player measured (p50, p95) under `what`, after checking
    /// it is a measurement at all: samples between 0 and 10 s. Reported, not timed: the
    /// bench (`make latency`) gives the figures.
    pub fn print_latency(&self, what: &str) {
        let p50 = self.latency_p50.expect("latency samples");
        let p95 = self.latency_p95.unwrap_or(f64::NAN);
        eprintln!("{what}: latency p50 {p50:.2} s, p95 {p95:.2} s");
        assert!(p50 > 0.0 && p50 < 10.0, "{p50}");
    }

    /// [`Self::assert_played_live`], and the player never stalled.
    pub fn assert_played_live_without_stall(&self, min_seconds: f64) {
        self.assert_played_live(min_seconds);
        let report = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        assert_eq!(self.waiting_events, 0, "the player waited: {report}");
        assert!(
            self.stalled_seconds < 0.5,
            "the playhead stood still: {report}"
        );
    }

    /// Fails the test, with the whole report, unless there was no fatal error, every level
    /// played and at least `min_seconds` played in all.
    pub fn assert_played(&self, min_seconds: f64) {
        let report = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        assert!(!self.fatal, "a fatal playback error: {report}");
        assert!(
            !self.levels.is_empty(),
            "the player offered no level: {report}"
        );
        for l in &self.levels {
            assert!(
                l.played,
                "level {} ({}x{} {}) did not play: {report}",
                l.index, l.width, l.height, l.codecs
            );
        }
        assert!(
            self.played_seconds >= min_seconds,
            "played {} s, not {min_seconds} s: {report}",
            self.played_seconds
        );
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/browser")
}

/// Fails the test, naming what to install, when Chromium, Node.js or the npm packages are
/// missing.
fn require_browser_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian package `chromium` (`make deps` does)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: install the Debian packages `nodejs` and `npm` (`make deps` does)"
    );
    let modules = browser_dir().join("node_modules");
    for package in ["playwright-core", "hls.js", "dashjs"] {
        assert!(
            modules.join(package).join("package.json").exists(),
            "the npm package {package} is missing from {}: run `npm ci --prefix tools/browser` \
             (`make deps` does)",
            modules.display()
        );
    }
}

/// Plays `entry` (relative to `dir`: a master or media playlist for [`Kind::Hls`], an MPD
/// for [`Kind::Dash`]) in headless Chromium: waits for playback, selects every video level
/// in turn and checks that it loads and plays at its height, plays [`PLAY_SECONDS`] in all,
/// and records every error. Bounded: the harness gives up after [`PLAY_TIMEOUT`] with
/// what it saw. Fails the test only when the harness itself fails (a missing package, a
/// browser that does not start); a stream that does not play comes back with `ok` false.
pub fn play(kind: Kind, dir: &Path, entry: &str) -> Playback {
    play_for(kind, dir, entry, PLAY_SECONDS)
}

/// [`play`], requiring `seconds` played in all instead of [`PLAY_SECONDS`].
pub fn play_for(kind: Kind, dir: &Path, entry: &str, seconds: u32) -> Playback {
    run_player(kind, dir, entry, seconds, false, None)
}

/// Plays a live stream being written meanwhile for `seconds` from its live edge (the
/// player's own level choice), counting stalls (`waiting_events`, `stalled_seconds`).
pub fn play_live(kind: Kind, dir: &Path, entry: &str, seconds: u32) -> Playback {
    run_player(kind, dir, entry, seconds, true, None)
}

/// [`play_live`] from an HTTP origin at `base` (the page's own server serves only the
/// player).
pub fn play_live_from(kind: Kind, base: &str, entry: &str, seconds: u32) -> Playback {
    let empty = tempfile::tempdir().unwrap();
    run_player(kind, empty.path(), entry, seconds, true, Some(base))
}

fn run_player(
    kind: Kind,
    dir: &Path,
    entry: &str,
    seconds: u32,
    live: bool,
    base: Option<&str>,
) -> Playback {
    require_browser_tools();
    let script = browser_dir().join("play.mjs");
    let flag = match kind {
        Kind::Hls => "--hls",
        Kind::Dash => "--dash",
    };
    let mut child = Command::new("node")
        .arg(&script)
        .arg(flag)
        .arg(dir)
        .arg(entry)
        .args(["--seconds", &seconds.to_string()])
        .args(live.then_some("--live"))
        .args(base.map(|b| ["--base", b]).into_iter().flatten())
        .args(["--timeout", &PLAY_TIMEOUT.as_secs().to_string()])
        .args(["--chromium", CHROMIUM])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node tools/browser/play.mjs");
    // Both pipes are drained on their own threads so that neither fills up and blocks it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PLAY_TIMEOUT + KILL_GRACE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for play.mjs") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "play.mjs still ran {:?} after its start: killed (stderr: {})",
                PLAY_TIMEOUT + KILL_GRACE,
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "play.mjs {flag} {dir:?} {entry} failed ({status}): {err}{out}"
    );
    let json: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("play.mjs printed no JSON ({e}): {out}{err}"));
    parse(json)
}

fn parse(json: Value) -> Playback {
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    Playback {
        ok: json["ok"].as_bool().unwrap_or(false),
        reason: json["reason"].as_str().map(str::to_owned),
        levels: list(&json["levels"])
            .iter()
            .map(|l| Level {
                index: u(&l["index"]),
                height: u(&l["height"]),
                width: u(&l["width"]),
                codecs: s(&l["codecs"]),
                bitrate: u(&l["bitrate"]),
                played: l["played"].as_bool().unwrap_or(false),
                seconds: f(&l["seconds"]),
            })
            .collect(),
        heights_seen: list(&json["heights_seen"]).iter().map(u).collect(),
        source_buffers: list(&json["source_buffers"]).iter().map(s).collect(),
        played_seconds: f(&json["played_seconds"]),
        waiting_events: u(&json["waiting_events"]),
        stalled_seconds: f(&json["stalled_seconds"]),
        latency_p50: json["latency_p50"].as_f64(),
        latency_p95: json["latency_p95"].as_f64(),
        errors: list(&json["errors"]),
        fatal: json["fatal"].as_bool().unwrap_or(true),
        supported: json["supported"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                    .collect()
            })
            .unwrap_or_default(),
        browser: s(&json["browser"]),
        elapsed_s: f(&json["elapsed_s"]),
        json,
    }
}

/// An fMP4 HLS ladder made by the ffmpeg CLI: 8 s of 1280x720 and 640x360 H.264 at 30 fps
/// (a keyframe every 2 s), each with AAC audio, 2 s segments, `master.m3u8` over
/// `out_0/index.m3u8` (720p) and `out_1/index.m3u8` (360p).
fn cli_hls_ladder(dir: &Path) {
    let master = dir.join("out_%v/index.m3u8");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "8",
        "-filter_complex",
        "[0:v]split=2[a][b];[b]scale=-2:360[c]",
        "-map",
        "[a]",
        "-map",
        "[c]",
        // FFmpeg 5.1 takes an audio stream in one variant only: one copy each.
        "-map",
        "1:a",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-b:v:0",
        "2500k",
        "-b:v:1",
        "800k",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-f",
        "hls",
        "-hls_segment_type",
        "fmp4",
        "-var_stream_map",
        "v:0,a:0 v:1,a:1",
        "-master_pl_name",
        "master.m3u8",
        "-hls_time",
        "2",
        "-hls_playlist_type",
        "vod",
        master.to_str().unwrap(),
    ]);
}

#[test]
fn an_fmp4_h264_hls_ladder_from_the_ffmpeg_cli_plays_every_level_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    cli_hls_ladder(dir.path());
    let p = play(Kind::Hls, dir.path(), "master.m3u8");
    let report = serde_json::to_string_pretty(&p.json).unwrap();
    assert!(
        p.supports("avc1.640028"),
        "Chromium {} has no H.264 in MSE: {report}",
        p.browser
    );
    p.assert_played(3.0);
    assert!(p.ok, "{report}");
    let mut heights: Vec<u64> = p.levels.iter().map(|l| l.height).collect();
    heights.sort_unstable();
    assert_eq!(heights, [360, 720], "{report}");
    for h in [360, 720] {
        assert!(p.heights_seen.contains(&h), "no picture at {h}p: {report}");
    }
}

/// The crate's own fMP4 ladder of `codec` (720p and 360p, 8 s, with a tone) in `dir`,
/// with a DASH manifest beside the HLS playlists.
fn our_ladder(dir: &Path, codec: streamvisor::VideoCodec) {
    use streamvisor::{AbrProfile, Container, StreamConfig, StreamState};
    let source = "lavfi:testsrc2=size=1280x720:rate=30:duration=8;\
                  sine=frequency=440:sample_rate=48000:duration=8";
    let profile = AbrProfile::from_rungs(&["720p", "360p"])
        .unwrap()
        .with_codec(codec)
        .with_preset("ultrafast")
        .with_container(Container::Fmp4)
        .with_dash(true);
    let config = StreamConfig::builder("browser", source, dir)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .build()
        .unwrap();
    let report = crate::common::run_to_end(config);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
}

/// Makes the crate's own ladder of `codec` and plays it through hls.js and dash.js: every
/// level offered and played, no fatal error, at least 3 s played in each player.
fn our_ladder_plays_in_both_players(codec: streamvisor::VideoCodec) -> Playback {
    let d = tempfile::tempdir().unwrap();
    our_ladder(d.path(), codec);
    let hls = play(Kind::Hls, d.path(), "master.m3u8");
    hls.assert_played(3.0);
    assert_eq!(hls.levels.len(), 2, "both rungs offered: {:?}", hls.levels);
    let dash = play(Kind::Dash, d.path(), "manifest.mpd");
    dash.assert_played(3.0);
    let levels = &dash.levels;
    assert_eq!(levels.len(), 2, "both rungs offered: {levels:?}");
    hls
}

#[test]
fn our_fmp4_h264_ladder_plays_every_level_in_hls_js_and_dash_js() {
    our_ladder_plays_in_both_players(streamvisor::VideoCodec::H264);
}

#[test]
fn our_fmp4_av1_ladder_plays_every_level_in_hls_js_and_dash_js() {
    let hls = our_ladder_plays_in_both_players(streamvisor::VideoCodec::Av1);
    assert!(hls.supports("av01.0.04M.08"), "this Chromium plays AV1");
}
