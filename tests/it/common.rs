//! Shared helpers: media made at test time with the ffmpeg CLI, outputs checked with
//! ffprobe (an independent tool) and m3u8-rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use m3u8_rs::{MasterPlaylist, MediaPlaylist, Playlist};
use serde_json::Value;
use streamvisor::{
    AbrProfile, Hooks, RecoveryPolicy, StateEvent, Stream, StreamConfig, StreamReport, StreamState,
};

/// Runs the ffmpeg CLI quietly; panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg CLI not found (make deps installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes an H.264/AAC MP4 of `secs` seconds at `size` and `rate` (audio optional).
pub fn make_mp4(dir: &Path, name: &str, size: &str, rate: u32, secs: u32, audio: bool) -> PathBuf {
    let path = dir.join(name);
    let video = format!("testsrc2=size={size}:rate={rate}:duration={secs}");
    let tone = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let p = path.to_str().unwrap();
    let mut args = vec!["-f", "lavfi", "-i", &video];
    if audio {
        args.extend(["-f", "lavfi", "-i", &tone, "-c:a", "aac", "-b:a", "128k"]);
    }
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        p,
    ]);
    ffmpeg(&args);
    path
}

/// ffprobe's JSON for `args` + `path`.
pub fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe not found");
    assert!(
        out.status.success(),
        "ffprobe {path:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// What ffprobe says about the first video stream of a file or playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProbe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
}

/// The frames each variant of a stream that ended should have encoded: every decoded frame
/// but those the live clock skipped to begin (or resume) at the live edge, which is more on
/// a loaded machine, with the frames the clock added (repeats, the filler, the last picture
/// held over a gap). For a file, or a live stream with `InputLoss::Stop`, the frames
/// decoded.
pub fn frames_to_encode(stats: &streamvisor::StreamStats) -> u64 {
    let clock = &stats.live_clock;
    assert!(
        clock.stale_frames <= 90,
        "more than 3 s skipped as stale: {clock:?}"
    );
    stats.frames_in - clock.stale_frames + clock.frames_repeated + clock.filler_frames
}

pub fn probe_video(path: &Path) -> VideoProbe {
    let v = ffprobe_json(
        path,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ],
    );
    let s = &v["streams"][0];
    VideoProbe {
        codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
        width: s["width"].as_u64().unwrap_or(0),
        height: s["height"].as_u64().unwrap_or(0),
        frames: s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

/// Codec names of every stream in a file.
pub fn stream_codecs(path: &Path) -> Vec<String> {
    let v = ffprobe_json(path, &["-show_entries", "stream=codec_name"]);
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["codec_name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// pts (seconds) of the first video packet of a segment file, and whether it is a keyframe.
pub fn first_video_packet(segment: &Path) -> (f64, bool) {
    let v = ffprobe_json(
        segment,
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "packet=pts_time,flags",
        ],
    );
    let p = &v["packets"][0];
    let pts = p["pts_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a video packet");
    (
        pts,
        p["flags"].as_str().unwrap_or_default().starts_with('K'),
    )
}

/// The video packets' pts (seconds) of a whole HLS playlist (or media file), in order.
pub fn video_pts(path: &Path) -> Vec<f64> {
    let v = ffprobe_json(
        path,
        &["-select_streams", "v:0", "-show_entries", "packet=pts_time"],
    );
    let mut pts: Vec<f64> = v["packets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pts.sort_by(f64::total_cmp);
    pts
}

/// Checks that the video of `playlist` is one continuous timeline: every frame exactly one
/// frame interval (`1/fps`) after the one before, none repeated, none missing in between.
pub fn assert_continuous_video(playlist: &Path, fps: f64) {
    let pts = video_pts(playlist);
    assert!(pts.len() > 1, "{playlist:?}: no video");
    for (i, w) in pts.windows(2).enumerate() {
        let step = w[1] - w[0];
        assert!(
            (step - 1.0 / fps).abs() < 0.002,
            "{playlist:?}: frame {} at {} follows {} (a step of {step:.4} s, not 1/{fps})",
            i + 1,
            w[1],
            w[0]
        );
    }
}

pub fn read_master(dir: &Path) -> MasterPlaylist {
    let bytes = std::fs::read(dir.join("master.m3u8")).expect("master.m3u8");
    match m3u8_rs::parse_playlist_res(&bytes).expect("master parses") {
        Playlist::MasterPlaylist(m) => m,
        Playlist::MediaPlaylist(_) => panic!("master.m3u8 is a media playlist"),
    }
}

/// Reads a media playlist and checks it against RFC 8216's rules for what the crate
/// writes: every EXTINF rounds to at most the target duration, no URI is listed twice, a
/// live window lasts at least three target durations.
pub fn read_media(path: &Path) -> MediaPlaylist {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let media = match m3u8_rs::parse_playlist_res(&bytes).expect("media playlist parses") {
        Playlist::MediaPlaylist(m) => m,
        Playlist::MasterPlaylist(_) => panic!("{path:?} is a master playlist"),
    };
    check_media_conformance(path, &media);
    media
}

fn check_media_conformance(path: &Path, media: &MediaPlaylist) {
    let target = media.target_duration;
    assert!(target >= 1, "{path:?}: TARGETDURATION {target}");
    let mut uris = std::collections::HashSet::new();
    for s in &media.segments {
        assert!(
            f64::from(s.duration).round() as u64 <= target,
            "{path:?}: EXTINF {} over TARGETDURATION {target}",
            s.duration
        );
        assert!(uris.insert(&s.uri), "{path:?}: {} listed twice", s.uri);
    }
    let live = media.playlist_type.is_none() && !media.end_list;
    let total: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
    if live && media.segments.len() > 3 {
        assert!(
            total + 1.0 >= 3.0 * target as f64,
            "{path:?}: a live window of {total} s under three target durations"
        );
    }
}

/// A config writing `rungs` of the standard ladder to `out`.
pub fn config(
    id: &str,
    source: impl Into<streamvisor::Source>,
    out: &Path,
    rungs: &[&str],
) -> StreamConfig {
    StreamConfig::builder(id, source, out)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(
            AbrProfile::from_rungs(rungs)
                .unwrap()
                .with_preset("ultrafast"),
        )
        .build()
        .unwrap()
}

/// Starts a stream and waits for it to end by itself, with a generous safety net.
pub fn run_to_end(config: StreamConfig) -> StreamReport {
    let running = Stream::new(config).start().expect("start");
    let end = running.wait_for(streamvisor::StateSet::TERMINAL, Duration::from_secs(120));
    assert!(
        end.is_terminal(),
        "stream did not end within 120 s (state {end})"
    );
    running.wait()
}

/// Waits for a started stream to be `Running`; fails the test if it ends or times out.
pub fn wait_running(running: &Stream<streamvisor::Running>, limit: Duration) {
    let s = running.wait_for(
        streamvisor::StateSet::RUNNING | streamvisor::StateSet::TERMINAL,
        limit,
    );
    assert_eq!(
        s,
        streamvisor::StreamState::Running,
        "{:?}",
        running.last_error()
    );
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of this process with this name (Linux keeps the first 15 bytes of it).
pub fn threads_named(name: &str) -> usize {
    let short: String = name.chars().take(15).collect();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == short)
        .count()
}

/// Waits up to 5 s for every thread with this name to end.
pub fn no_thread_named(name: &str) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if threads_named(name) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Thread and descriptor counts once they stop moving (threads that are ending, e.g. a
/// reaper thread right after its retirement, are given up to 2 s to be gone).
pub fn settled_counts() -> (usize, usize) {
    let mut last = (thread_count(), fd_count());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = (thread_count(), fd_count());
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A free port below the kernel's ephemeral range, so that after a server on it is killed
/// no other test's `free_port()` can be handed it before the server is restarted.
pub fn fixed_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 5000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// True when something listens on 127.0.0.1:`port` (read from /proc, without connecting,
/// so a one-shot `listen=1` server is not used up by the check).
pub fn is_listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let needle = format!("0100007F:{port:04X}");
    table.lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.get(1) == Some(&needle.as_str()) && cols.get(3) == Some(&"0A")
    })
}

/// An `ffmpeg` CLI process serving real-time MPEG-TS over TCP on 127.0.0.1; killed on drop.
/// Adds the media every live test peer sends to an `ffmpeg` command: a 640x360 30 fps test
/// pattern and a 440 Hz tone (`frames` video frames, or endless), x264 ultrafast with no
/// latency and a keyframe a second, AAC. The output comes after.
pub fn live_pattern(cmd: &mut Command, frames: Option<u32>) -> &mut Command {
    live_pattern_of(cmd, "640x360", true, frames)
}

/// [`live_pattern`] of another picture `size`, with the tone or (`audio` false) without
/// audio at all.
pub fn live_pattern_of<'a>(
    cmd: &'a mut Command,
    size: &str,
    audio: bool,
    frames: Option<u32>,
) -> &'a mut Command {
    cmd.args([
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
    ]);
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    } else {
        cmd.arg("-an");
    }
    if let Some(n) = frames {
        cmd.args(["-frames:v", &n.to_string(), "-shortest"]);
    }
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
    ])
    .args(["-g", "30", "-c:a", "aac"])
}

pub struct LiveServer {
    child: std::process::Child,
    pub port: u16,
}

impl LiveServer {
    /// Serves a 640x360 30 fps test pattern with a tone, in real time, to one client.
    pub fn start() -> Self {
        let server = Self::spawn(fixed_port());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_listening(server.port) {
            assert!(
                std::time::Instant::now() < deadline,
                "ffmpeg did not listen on {}",
                server.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The same on a given port, without waiting: to restart a server that a reconnecting
    /// stream will find by itself (it may connect, and so end the one-shot listen, before a
    /// poll could see the port listening).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port)
    }

    fn spawn(port: u16) -> Self {
        Self::spawn_at(port, "1")
    }

    /// The same, delivering media at `rate` x real time (`-readrate`): a source that
    /// keeps a live stream below real time.
    pub fn start_at_rate(rate: &str) -> Self {
        let server = Self::spawn_at(fixed_port(), rate);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_listening(server.port) {
            assert!(
                std::time::Instant::now() < deadline,
                "ffmpeg did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn spawn_at(port: u16, rate: &str) -> Self {
        let url = format!("tcp://127.0.0.1:{port}?listen=1");
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-readrate", rate]);
        let child = live_pattern(&mut cmd, None)
            .args(["-f", "mpegts", &url])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("ffmpeg CLI");
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Watches a media playlist while a stream rewrites it, checking every version against the
/// one before (RFC 8216 §6.2.1-2): MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE never go back,
/// TARGETDURATION never changes, and a sequence number always names the same URI.
pub struct PlaylistWatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl PlaylistWatcher {
    pub fn start(path: PathBuf) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut versions = 0;
            let mut prev: Option<MediaPlaylist> = None;
            let mut names = std::collections::HashMap::new();
            while !s.load(Ordering::SeqCst) {
                let Ok(bytes) = std::fs::read(&path) else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(Playlist::MediaPlaylist(p)) = m3u8_rs::parse_playlist_res(&bytes) else {
                    panic!("{path:?}: unparsable version");
                };
                if let Some(q) = &prev {
                    assert!(
                        p.media_sequence >= q.media_sequence,
                        "{path:?}: MEDIA-SEQUENCE went back"
                    );
                    assert!(
                        p.discontinuity_sequence >= q.discontinuity_sequence,
                        "{path:?}: DISCONTINUITY-SEQUENCE went back"
                    );
                    assert_eq!(
                        p.target_duration, q.target_duration,
                        "{path:?}: TARGETDURATION changed"
                    );
                }
                for (i, seg) in p.segments.iter().enumerate() {
                    let n = p.media_sequence + i as u64;
                    let uri = names.entry(n).or_insert_with(|| seg.uri.clone());
                    assert_eq!(*uri, seg.uri, "{path:?}: sequence {n} renamed");
                }
                versions += 1;
                prev = Some(p);
                std::thread::sleep(Duration::from_millis(5));
            }
            versions
        });
        Self { stop, thread }
    }

    /// Stops watching; the number of versions seen (a violation fails the test here).
    pub fn finish(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .join()
            .expect("playlist rules held across rewrites")
    }
}

/// Records every state event a stream's hooks see.
pub fn recorder() -> (Hooks, Arc<Mutex<Vec<StateEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    (
        Hooks::new().on_state_change(move |ev| log.lock().unwrap().push(ev.clone())),
        seen,
    )
}

pub fn states(seen: &Mutex<Vec<StateEvent>>) -> Vec<StreamState> {
    seen.lock().unwrap().iter().map(|e| e.to).collect()
}

pub fn fast_policy(attempts: u32) -> RecoveryPolicy {
    RecoveryPolicy::default()
        .with_max_attempts(attempts)
        .with_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .with_max_outage(Duration::from_secs(20))
}

pub fn live_config(
    id: &str,
    url: &str,
    out: &std::path::Path,
    policy: RecoveryPolicy,
) -> StreamConfig {
    live_builder(id, url, out, policy).build().unwrap()
}

/// [`live_config`]'s builder, for a test that sets more.
pub fn live_builder(
    id: &str,
    url: &str,
    out: &std::path::Path,
    policy: RecoveryPolicy,
) -> streamvisor::StreamConfigBuilder {
    StreamConfig::builder(id, url, out)
        .local_files_under("/")
        .profile(
            AbrProfile::from_rungs(&["360p", "240p"])
                .unwrap()
                .with_preset("ultrafast")
                .with_segment_duration(Duration::from_secs(1))
                .with_live_window(1000),
        )
        .io_timeout(Duration::from_secs(3))
        .recovery(policy)
}

pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a stream on a local port nobody listens on (FFmpeg logs the refused connection)
/// until it fails, without recovery; returns the port (it names the run in FFmpeg's lines).
pub fn run_refused(id: &str, dir: &Path) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = StreamConfig::builder(id, format!("tcp://127.0.0.1:{port}"), dir)
        .local_files_under("/")
        .recovery(RecoveryPolicy::none())
        .io_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let report = Stream::new(cfg).start().unwrap().wait();
    assert_eq!(report.state, StreamState::Failed, "{report:?}");
    port
}

/// Deterministic pseudo-random bytes (xorshift64).
pub fn xorshift_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What FFmpeg's `freezedetect` and `blackdetect` find in `playlist`: the frozen spans'
/// durations (spans that touch are one: an encoder refining a still picture splits it) and
/// the black spans' count. `SV_DEBUG_FREEZE` prints FFmpeg's lines.
pub fn frozen_and_black(playlist: &Path) -> (Vec<f64>, usize) {
    let log = filter_log(
        playlist,
        "freezedetect=n=0.003:d=0.25,blackdetect=d=0.2:pix_th=0.1",
    );
    if std::env::var_os("SV_DEBUG_FREEZE").is_some() {
        for l in log
            .lines()
            .filter(|l| l.contains("freeze") || l.contains("black"))
        {
            eprintln!("{l}");
        }
    }
    let value = |key: &str| -> Vec<f64> {
        log.lines()
            .filter_map(|l| l.split(key).nth(1))
            .filter_map(|d| d.trim().parse().ok())
            .collect()
    };
    let starts = value("lavfi.freezedetect.freeze_start: ");
    let durations = value("lavfi.freezedetect.freeze_duration: ");
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for (start, d) in starts.into_iter().zip(durations) {
        match spans.last_mut() {
            Some(last) if start - last.1 < 0.05 => last.1 = start + d,
            _ => spans.push((start, start + d)),
        }
    }
    let black = log.matches("black_start:").count();
    (spans.iter().map(|(a, b)| b - a).collect(), black)
}

/// What FFmpeg logs while it decodes `playlist`'s video through the filter graph `vf`
/// (detection filters print what they find).
pub fn filter_log(playlist: &Path, vf: &str) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(playlist)
        .args(["-vf", vf, "-an", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A live ladder of `rungs` for the live tests: ultrafast, 1 s segments, a 60-segment
/// window.
pub fn live_profile(rungs: &[&str]) -> AbrProfile {
    AbrProfile::from_rungs(rungs)
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(60)
}

/// Runs a Python `script` with `input` on its standard input; its output (status, stdout,
/// stderr). Python is `make deps`'s (the packages the tests parse with are installed there).
pub fn python(script: &str, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 not found (make deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits (30 s at most) until the media playlist `playlist` lists `n` segments.
pub fn wait_segments(playlist: &Path, n: usize) {
    wait_until(
        &format!("{n} segments in {playlist:?}"),
        Duration::from_secs(30),
        || playlist.exists() && read_media(playlist).segments.len() >= n,
    );
}
