//! Hostile and broken inputs and outputs: a remote playlist that points at local files, a
//! header that declares an absurd picture, damaged and truncated files, an output directory
//! that cannot exist, and a disk that fills up. Each ends with a typed error (or, where the
//! damage is survivable, a finished ladder), no panic, no hang, nothing leaked from this
//! machine, and nothing half-written on disk.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamvisor::{
    AbrProfile, Error, ErrorKind, RecoveryPolicy, StreamConfig, StreamReport, StreamState,
};

use crate::common::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A config writing `rungs` (ultrafast) to `out` with the given recovery policy.
fn config_with(
    id: &str,
    source: &str,
    out: &Path,
    rungs: &[&str],
    policy: RecoveryPolicy,
) -> StreamConfig {
    StreamConfig::builder(id, source, out)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(
            AbrProfile::from_rungs(rungs)
                .unwrap()
                .with_preset("ultrafast"),
        )
        .io_timeout(Duration::from_secs(5))
        .recovery(policy)
        .build()
        .unwrap()
}

/// The error of a stream that must have failed, with everything printed if it did not.
fn expect_failed(report: &StreamReport) -> &Error {
    assert_eq!(
        report.state,
        StreamState::Failed,
        "expected Failed; error {:?}, stats {:?}",
        report.error,
        report.stats
    );
    report
        .error
        .as_ref()
        .expect("a failed stream carries its error")
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_ending(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            found.push(p);
        }
    }
    found
}

/// This process's peak resident set (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A tiny HTTP/1.1 responder on 127.0.0.1: answers `GET <path>` for the routes it was given
/// (one response per connection, `Connection: close`) and 404 for anything else. Records
/// every request line. Stopped and joined on drop, so no thread outlives the test.
struct HttpServer {
    ip: &'static str,
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(routes: Vec<(&'static str, &'static str, Vec<u8>)>) -> Self {
        Self::start_on("127.0.0.1", routes)
    }

    /// On another loopback address (127.0.0.2, ...). A route of content type `redirect`
    /// answers `302 Found` to its body as `Location`.
    fn start_on(ip: &'static str, routes: Vec<(&'static str, &'static str, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::Builder::new()
            .name("hardening-http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    Self::serve(conn, &routes, &requests2);
                }
            })
            .unwrap();
        Self {
            ip,
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn serve(
        mut conn: TcpStream,
        routes: &[(&'static str, &'static str, Vec<u8>)],
        requests: &Mutex<Vec<String>>,
    ) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => return,
        });
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        // Skip the headers up to the blank line.
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => {}
            }
        }
        let request_line = request_line.trim_end().to_owned();
        requests.lock().unwrap().push(request_line.clone());
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        let route = routes.iter().find(|(p, _, _)| *p == path);
        let (status, content_type, body): (&str, &str, &[u8]) = match route {
            Some((_, ct, body)) if method == "GET" || method == "HEAD" => ("200 OK", ct, body),
            _ => ("404 Not Found", "text/plain", b"not found\n"),
        };
        let (status, location, body) = match content_type {
            "redirect" => (
                "302 Found",
                String::from_utf8_lossy(body).into_owned(),
                &b""[..],
            ),
            _ => (status, String::new(), body),
        };
        let location = match location.as_str() {
            "" => String::new(),
            l => format!("Location: {l}\r\n"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\n{location}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = conn.write_all(body);
        }
        let _ = conn.flush();
        let _ = conn.shutdown(std::net::Shutdown::Write);
        // Let the client read everything before the socket closes.
        let mut sink = [0u8; 512];
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = conn.read(&mut sink);
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }

    /// True when a `GET <path>` arrived.
    fn was_asked_for(&self, path: &str) -> bool {
        let line = format!("GET {path} ");
        self.requests().iter().any(|r| r.starts_with(&line))
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect((self.ip, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A VOD media playlist listing `uris` as 4-second segments.
fn media_playlist(uris: &[&str]) -> Vec<u8> {
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for u in uris {
        text.push_str(&format!("#EXTINF:4.000,\n{u}\n"));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    text.into_bytes()
}

/// Makes a 640x360 30 fps H.264 + AAC file of `secs` seconds with extra muxer arguments.
fn make_av(path: &Path, secs: u32, extra: &[&str]) {
    let video = format!("testsrc2=size=640x360:rate=30:duration={secs}");
    let tone = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let mut args = vec!["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &tone];
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    args.extend(["-c:a", "aac", "-b:a", "128k"]);
    args.extend(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

/// Top-level MP4 box types in file order.
fn mp4_top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        let size = match size32 {
            1 if at + 16 <= bytes.len() => {
                u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap())
            }
            0 => (bytes.len() - at) as u64,
            s => s,
        };
        boxes.push(kind);
        if size < 8 {
            break;
        }
        at = at.saturating_add(size as usize);
    }
    boxes
}

// ---------------------------------------------------------------------------------------
// A remote playlist cannot reach this machine's files
// ---------------------------------------------------------------------------------------

/// An HLS playlist served over HTTP whose segment is `file:///etc/passwd`: the protocol
/// allow-list for an http source leaves `file:` out, so nothing of /etc/passwd is read.
#[test]
fn remote_hls_playlist_pointing_at_etc_passwd_reads_nothing() {
    let server = HttpServer::start(vec![(
        "/x.m3u8",
        "application/vnd.apple.mpegurl",
        media_playlist(&["file:///etc/passwd"]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let report = run_to_end(config_with(
        "passwd",
        &server.url("/x.m3u8"),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    // Refused where it happens, saying which URL and which rule (not "Invalid data").
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    let text = e.to_string();
    assert!(text.contains("file:///etc/passwd"), "names the URL: {text}");
    assert!(
        text.contains("http source may reach only"),
        "names the rule: {text}"
    );
    assert!(
        server.was_asked_for("/x.m3u8"),
        "the playlist was fetched (else this test proves nothing): {:?}; error: {e}",
        server.requests()
    );
    assert_eq!(
        report.stats.bytes_in, 0,
        "nothing demuxed from /etc/passwd; error: {e}"
    );
    assert_eq!(report.stats.frames_in, 0, "no frames; error: {e}");
    assert!(
        !out.join("master.m3u8").exists(),
        "no master.m3u8; error: {e}"
    );
    assert!(
        files_ending(&out, ".ts").is_empty(),
        "no segments written; error: {e}"
    );
}

/// The same, with a segment that *is* real media on this machine (a `.ts` file, which
/// FFmpeg's HLS demuxer would otherwise accept by extension): refused, zero bytes read.
/// Control: the very same media served over HTTP does transcode, so the refusal is the
/// allow-list's doing; and the allow-list cannot be widened through `input_option`.
#[test]
fn remote_hls_playlist_cannot_reach_local_media_even_through_input_options() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.ts");
    make_av(&local, 2, &["-f", "mpegts"]);
    let uri = format!("file://{}", local.display());
    let server = HttpServer::start(vec![
        (
            "/x.m3u8",
            "application/vnd.apple.mpegurl",
            media_playlist(&[&uri]),
        ),
        (
            "/served.m3u8",
            "application/vnd.apple.mpegurl",
            media_playlist(&["local.ts"]),
        ),
        ("/local.ts", "video/mp2t", std::fs::read(&local).unwrap()),
    ]);

    let out = dir.path().join("refused");
    let report = run_to_end(config_with(
        "localts",
        &server.url("/x.m3u8"),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    assert!(
        server.was_asked_for("/x.m3u8"),
        "the playlist was fetched: {:?}; error: {e}",
        server.requests()
    );
    assert_eq!(
        report.stats.bytes_in, 0,
        "nothing read from {uri}; error: {e}"
    );
    assert_eq!(report.stats.frames_in, 0, "no frames; error: {e}");
    assert!(!out.join("master.m3u8").exists(), "no master; error: {e}");

    // Widening the allow-list through an input option is refused with the config.
    let widened = StreamConfig::builder("localts-widened", server.url("/x.m3u8"), &out)
        .local_files_under("/")
        .input_option("protocol_whitelist", "http,tcp,file")
        .build();
    assert!(
        matches!(&widened, Err(streamvisor::Error::InvalidConfig { field, .. }) if field == "input_options[0]"),
        "{widened:?}"
    );

    // Control: the same media, served over HTTP, transcodes.
    let out = dir.path().join("served");
    let report = run_to_end(config_with(
        "localts-served",
        &server.url("/served.m3u8"),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    assert_eq!(
        report.state,
        StreamState::Stopped,
        "control run over HTTP: {:?}",
        report.error
    );
    assert!(report.stats.frames_in > 0, "control run decoded the media");
}

// ---------------------------------------------------------------------------------------
// Headers that declare absurd pictures
// ---------------------------------------------------------------------------------------

/// A y4m header declaring 65535x65535 (~6 GiB a frame) is refused as invalid input, fast,
/// and without this process's peak memory growing by anything like a frame.
#[test]
fn y4m_declaring_65535x65535_is_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("huge.y4m");
    let mut bytes = b"YUV4MPEG2 W65535 H65535 F30:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    bytes.extend(xorshift_bytes(0x5151, 8 * 1024));
    std::fs::write(&y4m, bytes).unwrap();

    let peak_before = peak_rss_kib();
    let started = Instant::now();
    let report = run_to_end(config_with(
        "huge",
        y4m.to_str().unwrap(),
        &dir.path().join("out"),
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let took = started.elapsed();
    let grew_kib = peak_rss_kib().saturating_sub(peak_before);

    let e = expect_failed(&report);
    // Resource bounds first: they hold whatever the error is called.
    assert!(took < Duration::from_secs(30), "refused in {took:?}: {e}");
    assert!(
        grew_kib < 1024 * 1024,
        "peak RSS grew by {grew_kib} KiB (limit 1 GiB): {e}"
    );
    assert_eq!(report.stats.frames_in, 0, "{e}");
    assert!(!dir.path().join("out/master.m3u8").exists(), "{e}");
    // Then the classification: the content is unusable, not the source unreachable (a
    // SourceIo error would be retried for a network source).
    // FFmpeg's y4m reader itself refuses this size (its frame-size arithmetic overflows)
    // before our own limit is reached; the 20000x16 test below exercises our limit.
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_recoverable(), "{e}");
    // ... and the error says why: the size and the limit, not the demuxer's EBUSY.
    let shown = e.to_string();
    assert!(
        shown.contains("65535x65535") && shown.contains("16384x16384"),
        "{shown}"
    );
}

/// A y4m header FFmpeg itself accepts (20000x16, a small frame) but wider than the
/// 16384-pixel limit: refused on what it declares, before anything is decoded.
#[test]
fn y4m_wider_than_the_limit_but_acceptable_to_ffmpeg_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("wide.y4m");
    let frame_len = 20000 * 16 * 3 / 2;
    let mut bytes = b"YUV4MPEG2 W20000 H16 F30:1 Ip A1:1 C420jpeg\n".to_vec();
    for i in 0..3 {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(xorshift_bytes(0x77 + i, frame_len));
    }
    std::fs::write(&y4m, bytes).unwrap();
    let report = run_to_end(config_with(
        "wide",
        y4m.to_str().unwrap(),
        &dir.path().join("out"),
        &["240p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("exceeds"), "{e}");
    assert!(
        e.to_string().contains("20000x16"),
        "names what was declared: {e}"
    );
    assert_eq!(report.stats.frames_in, 0, "{e}");
}

// ---------------------------------------------------------------------------------------
// Damaged and truncated files
// ---------------------------------------------------------------------------------------

/// An MPEG-TS file with a run of 40 whole TS packets overwritten by garbage in the middle:
/// the damage is counted, the stream goes on past it and finishes, and what it wrote
/// decodes.
#[test]
fn mpegts_with_corrupt_packets_mid_file_is_transcoded_past_the_damage() {
    const TS: usize = 188;
    const DAMAGED: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("damaged.ts");
    make_av(&ts, 4, &["-f", "mpegts"]);
    let mut bytes = std::fs::read(&ts).unwrap();
    assert_eq!(bytes.len() % TS, 0, "the fixture is whole TS packets");
    let packets = bytes.len() / TS;
    let first = packets / 2;
    assert!(first + DAMAGED < packets);
    let garbage = xorshift_bytes(0xC0FFEE, DAMAGED * TS);
    for k in 0..DAMAGED {
        let at = (first + k) * TS;
        bytes[at..at + TS].copy_from_slice(&garbage[k * TS..(k + 1) * TS]);
        // Keep the sync byte: the demuxer parses the garbage as packets (random PIDs,
        // broken continuity) rather than merely resynchronising past it.
        bytes[at] = 0x47;
    }
    std::fs::write(&ts, &bytes).unwrap();

    let out = dir.path().join("out");
    let report = run_to_end(config_with(
        "damaged",
        ts.to_str().unwrap(),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let s = &report.stats;
    assert!(s.corrupt_packets > 0, "the damage was counted: {s:?}");
    // 120 frames in the source; the damage sits at the 2 s mark.
    assert!(
        s.frames_in > 90,
        "decoding went on past the damage: {} frames in; {s:?}",
        s.frames_in
    );
    assert!(s.frames_in <= 120, "{s:?}");
    let variant = &s.variants[0];
    let playlist = out.join("360p/index.m3u8");
    let media = read_media(&playlist);
    assert!(media.end_list, "ENDLIST");
    let probe = probe_video(&playlist);
    assert_eq!(probe.height, 360);
    assert_eq!(
        probe.frames, variant.frames_out,
        "ffprobe decodes every frame the variant wrote"
    );
    assert!(out.join("master.m3u8").exists());
}

/// An MP4 with its index first (`+faststart`) cut at 60 %: the index describes samples that
/// are not there, and the stream finishes with the ones that are.
#[test]
fn truncated_faststart_mp4_finishes_with_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("fast.mp4");
    make_av(&mp4, 4, &["-movflags", "+faststart"]);
    let full_frames = probe_video(&mp4).frames;
    assert_eq!(full_frames, 120);
    let bytes = std::fs::read(&mp4).unwrap();
    let boxes = mp4_top_level_boxes(&bytes);
    let (moov, mdat) = (
        boxes.iter().position(|b| b == "moov"),
        boxes.iter().position(|b| b == "mdat"),
    );
    assert!(
        moov.is_some() && moov < mdat,
        "fixture has moov before mdat: {boxes:?}"
    );
    std::fs::write(&mp4, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let out = dir.path().join("out");
    let report = run_to_end(config_with(
        "cutfast",
        mp4.to_str().unwrap(),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let s = &report.stats;
    assert!(
        s.frames_in > 0 && s.frames_in < full_frames,
        "some but not all of {full_frames} frames: {s:?}"
    );
    let playlist = out.join("360p/index.m3u8");
    let media = read_media(&playlist);
    assert!(media.end_list, "ENDLIST present");
    assert!(!media.segments.is_empty());
    assert_eq!(probe_video(&playlist).frames, s.variants[0].frames_out);
}

/// An MP4 with its index at the end, cut at 60 %: there is no index, so the source is not
/// usable media, and the error says so (invalid input, not an I/O failure to retry).
#[test]
fn truncated_mp4_without_its_moov_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("slow.mp4");
    make_av(&mp4, 4, &[]);
    let bytes = std::fs::read(&mp4).unwrap();
    let boxes = mp4_top_level_boxes(&bytes);
    let (moov, mdat) = (
        boxes.iter().position(|b| b == "moov"),
        boxes.iter().position(|b| b == "mdat"),
    );
    assert!(
        mdat.is_some() && moov > mdat,
        "fixture has moov after mdat: {boxes:?}"
    );
    std::fs::write(&mp4, &bytes[..bytes.len() * 6 / 10]).unwrap();

    let out = dir.path().join("out");
    let report = run_to_end(config_with(
        "cutslow",
        mp4.to_str().unwrap(),
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(report.stats.frames_in, 0, "{e}");
    assert!(!out.join("master.m3u8").exists(), "{e}");
}

// ---------------------------------------------------------------------------------------
// Outputs that cannot be written
// ---------------------------------------------------------------------------------------

/// An output directory under a regular file cannot be created (root or not): the stream
/// fails with an output error whose path names that directory, and the file is untouched.
#[test]
fn output_dir_under_a_regular_file_fails_with_an_output_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, b"not a directory\n").unwrap();
    let out = file.join("out");
    let report = run_to_end(config_with(
        "unwritable",
        "lavfi:testsrc2=size=640x360:rate=30:duration=2",
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    assert_eq!(e.kind(), ErrorKind::Output, "{e}");
    match e {
        Error::Output { ref path, .. } => assert_eq!(
            path,
            &out,
            "the error's path {} names the output directory {}: {e}",
            path.display(),
            out.display()
        ),
        other => panic!("expected Error::Output, got {other:?}"),
    }
    assert!(e.to_string().contains(&*out.to_string_lossy()), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory\n");
}

/// Unmounts (lazily) on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let r = Command::new("umount").arg("-l").arg(&self.0).output();
        if !matches!(&r, Ok(o) if o.status.success()) {
            eprintln!("umount -l {} failed: {r:?}", self.0.display());
        }
    }
}

/// A 300 KiB tmpfs as the output directory fills up mid-stream: the stream fails with an
/// output error naming a path inside it, and whatever media playlist is on disk still
/// parses and lists only whole segments that exist.
#[test]
fn a_full_disk_fails_with_an_output_error_and_leaves_whole_playlists() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"])
        .arg(&mnt)
        .output()
        .expect("the mount command");
    if !mounted.status.success() {
        let why = String::from_utf8_lossy(&mounted.stderr).to_lowercase();
        let unprivileged = [
            "permission denied",
            "operation not permitted",
            "must be superuser",
            "only root",
        ]
        .iter()
        .any(|m| why.contains(m));
        if unprivileged {
            eprintln!(
                "SKIPPED: a_full_disk...: cannot mount a tmpfs here: {}",
                why.trim()
            );
            return;
        }
        panic!("mount -t tmpfs failed: {}", why.trim());
    }
    let _unmount = Mount(mnt.clone());

    let out = mnt.join("out");
    let report = run_to_end(config_with(
        "full",
        "lavfi:testsrc2=size=640x360:rate=30:duration=20",
        &out,
        &["360p"],
        RecoveryPolicy::none(),
    ));
    let e = expect_failed(&report);
    assert_eq!(e.kind(), ErrorKind::Output, "{e}");
    match e {
        Error::Output { path, .. } => assert!(
            path.starts_with(&mnt),
            "the error's path {} is inside the full mount {}: {e}",
            path.display(),
            mnt.display()
        ),
        other => panic!("expected Error::Output, got {other:?}"),
    }
    let playlist = out.join("360p/index.m3u8");
    if playlist.exists() {
        let media = read_media(&playlist);
        for s in &media.segments {
            let seg = out.join("360p").join(&s.uri);
            let len = std::fs::metadata(&seg)
                .unwrap_or_else(|err| panic!("listed segment {} exists: {err}; {e}", seg.display()))
                .len();
            assert!(
                len > 0 && len % 188 == 0,
                "listed segment {} is whole TS packets ({len} bytes); {e}",
                seg.display()
            );
        }
    }
    eprintln!(
        "full disk: {e}; playlist on disk: {}; frames out {}",
        playlist.exists(),
        report.stats.variants.first().map_or(0, |v| v.frames_out)
    );
}

// ---------------------------------------------------------------------------------------
// The network policy: no private address, at any hop, with deny_private_networks
// ---------------------------------------------------------------------------------------

/// A 2 s 640x360 MPEG-TS clip, served over HTTP by the tests below.
fn ts_clip(dir: &Path) -> Vec<u8> {
    let ts = dir.join("clip.ts");
    make_av(&ts, 2, &["-f", "mpegts"]);
    std::fs::read(ts).unwrap()
}

/// `config_with` for an http source, with the network policy `deny` and these
/// exceptions.
fn policy_config(source: &str, out: &Path, deny: bool, allow: &[&str]) -> StreamConfig {
    config_with("netpolicy", source, out, &["240p"], RecoveryPolicy::none())
        .to_builder()
        .deny_private_networks(deny)
        .allow_addresses(allow.iter().map(|a| a.parse().unwrap()))
        .build()
        .unwrap()
}

/// The policy's refusal: `Forbidden`, naming the address, its class and the rule.
fn assert_refused_by_policy(report: &StreamReport, needle: &str) {
    let e = expect_failed(report);
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    let text = e.to_string();
    assert!(text.contains(needle), "names {needle}: {text}");
    assert!(
        text.contains("deny_private_networks"),
        "names the rule: {text}"
    );
    assert!(!e.is_recoverable());
}

/// An http source on 127.0.0.1: refused before any connection with the policy on,
/// transcoded with it off.
#[test]
fn the_network_policy_refuses_a_loopback_source_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::start(vec![("/x.ts", "video/mp2t", ts_clip(dir.path()))]);
    let on = run_to_end(policy_config(
        &server.url("/x.ts"),
        &dir.path().join("on"),
        true,
        &[],
    ));
    assert_refused_by_policy(&on, "127.0.0.1, a loopback address");
    assert!(
        server.requests().is_empty(),
        "never connected: {:?}",
        server.requests()
    );
    let off = run_to_end(policy_config(
        &server.url("/x.ts"),
        &dir.path().join("off"),
        false,
        &[],
    ));
    assert_eq!(off.state, StreamState::Stopped, "{:?}", off.error);
    assert!(off.stats.frames_in > 0);
}

/// A remote playlist (on an address the application allows) whose segment is on
/// 127.0.0.1: refused with the policy on (the segment's server never asked), played with it
/// off.
#[test]
fn a_remote_playlist_cannot_send_its_segments_to_a_private_address() {
    let dir = tempfile::tempdir().unwrap();
    let media = HttpServer::start(vec![("/seg.ts", "video/mp2t", ts_clip(dir.path()))]);
    let segment = media.url("/seg.ts");
    let playlist = HttpServer::start_on(
        "127.0.0.2",
        vec![(
            "/x.m3u8",
            "application/vnd.apple.mpegurl",
            media_playlist(&[&segment]),
        )],
    );
    let source = playlist.url("/x.m3u8");
    let on = run_to_end(policy_config(
        &source,
        &dir.path().join("on"),
        true,
        &["127.0.0.2"],
    ));
    assert_refused_by_policy(&on, "127.0.0.1, a loopback address");
    assert!(
        playlist.was_asked_for("/x.m3u8"),
        "the allowed playlist was read"
    );
    assert!(
        !media.was_asked_for("/seg.ts"),
        "the private segment was not"
    );
    let off = run_to_end(policy_config(&source, &dir.path().join("off"), false, &[]));
    assert_eq!(off.state, StreamState::Stopped, "{:?}", off.error);
    assert!(media.was_asked_for("/seg.ts"));
}

/// A source (on an allowed address) that redirects to 127.0.0.1: the redirect is not
/// followed with the policy on, and the error says where it was sent; FFmpeg follows it
/// with the policy off.
#[test]
fn a_redirect_to_a_private_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let media = HttpServer::start(vec![("/x.ts", "video/mp2t", ts_clip(dir.path()))]);
    let target = media.url("/x.ts");
    let front = HttpServer::start_on(
        "127.0.0.2",
        vec![("/x.ts", "redirect", target.into_bytes())],
    );
    let source = front.url("/x.ts");
    let on = run_to_end(policy_config(
        &source,
        &dir.path().join("on"),
        true,
        &["127.0.0.2"],
    ));
    assert_refused_by_policy(&on, "redirected it to http://127.0.0.1");
    assert!(
        !media.was_asked_for("/x.ts"),
        "the redirect was not followed"
    );
    let off = run_to_end(policy_config(&source, &dir.path().join("off"), false, &[]));
    assert_eq!(off.state, StreamState::Stopped, "{:?}", off.error);
    assert!(media.was_asked_for("/x.ts"));
}
