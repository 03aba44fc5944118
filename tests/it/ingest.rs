//! Real ingest servers in the loop: nginx with the RTMP module, SRT peers in both modes, and
//! an HLS origin (nginx serving a live playlist the `ffmpeg` CLI writes). As each source
//! comes and goes: the state follows it (`Running` whenever media flows, `Error` while it
//! does not), every outage is closed in the stats, the output stays one valid ladder whose
//! timeline is continuous except where a discontinuity says otherwise, and stop is bounded
//! in every phase (connecting, playing, waiting for a publisher).

use std::path::Path;
use std::time::{Duration, Instant};

use streamvisor::stream::GRACE;
use streamvisor::{
    ErrorKind, RecoveryPolicy, Running, StateSet, Stream, StreamReport, StreamState,
};

use crate::common::*;
use crate::servers::{free_udp_port, Nginx, Peer, PEER_FPS};

/// Recovery for these tests: quick retries, a 20 s outage bound.
fn policy() -> RecoveryPolicy {
    fast_policy(100)
}

/// A live stream over `url` that pauses with its source (`InputLoss::Stop`): these tests
/// account for every source frame, none added.
fn start(id: &str, url: &str, out: &Path, policy: RecoveryPolicy) -> (Stream<Running>, Seen) {
    let (hooks, seen) = recorder();
    let config = live_config(id, url, out, policy)
        .to_builder()
        .input_loss(streamvisor::config::InputLoss::Stop)
        .build()
        .unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    (running, seen)
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<streamvisor::StateEvent>>>;

/// Waits for `state` (or a terminal one), failing the test with the states seen so far.
fn expect_state(running: &Stream<Running>, state: StreamState, seen: &Seen, limit: Duration) {
    let set = state.as_set() | StateSet::TERMINAL;
    let got = running.wait_for(set, limit);
    assert_eq!(got, state, "states so far: {:?}", states(seen));
}

/// Waits until frames decoded stop moving (the peer finished and everything it sent was
/// read), within 30 s.
fn wait_frames_settled(running: &Stream<Running>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = running.stats().frames_in;
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = running.stats().frames_in;
        if now == last {
            return;
        }
        assert!(Instant::now() < deadline, "frames never stopped coming");
        last = now;
    }
}

/// The output of a stopped live stream: every variant's playlist conforms (checked by
/// `read_media`), every decoded frame was encoded and listed, and the video is continuous
/// wherever no discontinuity is marked, with a discontinuity exactly where it is not.
fn check_ladder(out: &Path, report: &StreamReport) {
    assert!(!report.stats.variants.is_empty());
    for v in &report.stats.variants {
        let playlist = out.join(&v.name).join("index.m3u8");
        let media = read_media(&playlist);
        assert!(media.end_list, "{}: finished with ENDLIST", v.name);
        assert_eq!(v.frames_out, frames_to_encode(&report.stats), "{}", v.name);
        assert_eq!(probe_video(&playlist).frames, v.frames_out, "{}", v.name);
        assert_discontinuities_where_the_timeline_breaks(&playlist, f64::from(PEER_FPS));
    }
}

/// Output timestamps strictly increase across the whole ladder (no duplicate or reordered
/// frame), each segment starts with a keyframe, and a segment starts a discontinuity if and
/// only if its first frame does not follow the previous segment's last frame by one frame
/// interval.
fn assert_discontinuities_where_the_timeline_breaks(playlist: &Path, fps: f64) {
    let media = read_media(playlist);
    let dir = playlist.parent().unwrap();
    let mut prev_last: Option<f64> = None;
    for seg in &media.segments {
        let path = dir.join(&seg.uri);
        let pts = video_pts(&path);
        assert!(!pts.is_empty(), "{path:?}: no video");
        assert!(
            first_video_packet(&path).1,
            "{path:?} starts with a keyframe"
        );
        for w in pts.windows(2) {
            assert!(
                (w[1] - w[0] - 1.0 / fps).abs() < 0.002,
                "{path:?}: a break inside a segment ({} after {})",
                w[1],
                w[0]
            );
        }
        if let Some(last) = prev_last {
            assert!(pts[0] > last, "{path:?}: timestamps go back");
            let follows = (pts[0] - last - 1.0 / fps).abs() < 0.002;
            assert_eq!(
                seg.discontinuity, !follows,
                "{path:?}: starts at {} after {last}; discontinuity marked: {}",
                pts[0], seg.discontinuity
            );
        }
        prev_last = pts.last().copied();
    }
}

/// stop() returns within its deadline plus the grace (and a margin for a loaded machine).
fn stop_bounded(running: Stream<Running>, phase: &str) -> StreamReport {
    let deadline = Duration::from_secs(1);
    let t = Instant::now();
    let report = running.stop(deadline);
    let took = t.elapsed();
    assert!(
        took < deadline + GRACE + Duration::from_millis(500),
        "stop while {phase} took {took:?}"
    );
    report
}

#[test]
fn rtmp_a_short_publisher_gap_resumes_on_the_same_connection_with_every_frame() {
    let nginx = Nginx::rtmp();
    let url = nginx.rtmp_url("live", "short");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (running, seen) = start("rtmp-short", &url, &out, policy());
    // The player is connected and waiting before anyone publishes: it gets every frame.
    std::thread::sleep(Duration::from_millis(800));
    Peer::publish_rtmp(&url, Some(90)).wait(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500)); // below the 3 s read timeout
    Peer::publish_rtmp(&url, Some(90)).wait(Duration::from_secs(20));
    wait_frames_settled(&running);
    let report = stop_bounded(running, "playing");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    // (The last frames leave the decoder when the stop drains it.)
    assert_eq!(
        report.stats.frames_in, 180,
        "both publishers' frames, once each"
    );
    assert_eq!(report.stats.outage_count, 0, "{:?}", report.stats.outages);
    assert!(!states(&seen).contains(&StreamState::Error));
    check_ladder(&out, &report);
}

#[test]
fn rtmp_a_publisher_that_restarts_after_a_stall_brings_the_stream_back_to_running() {
    let nginx = Nginx::rtmp();
    let url = nginx.rtmp_url("live", "restart");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (running, seen) = start("rtmp-restart", &url, &out, policy());
    std::thread::sleep(Duration::from_millis(800));
    Peer::publish_rtmp(&url, Some(90)).wait(Duration::from_secs(20));
    // Gone past the read timeout: a stall, then reconnects waiting for a publisher.
    expect_state(&running, StreamState::Error, &seen, Duration::from_secs(10));
    let before = running.stats().frames_in;
    assert_eq!(before, 90);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(running.state(), StreamState::Error, "no media, no Running");
    let publisher = Peer::publish_rtmp(&url, Some(120));
    expect_state(
        &running,
        StreamState::Running,
        &seen,
        Duration::from_secs(10),
    );
    publisher.wait(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let after = running.stats().frames_in - before;
    let report = stop_bounded(running, "waiting for a publisher again");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    // A new connection joins the publisher at its next keyframe (one a second) at worst.
    assert!(
        (120 - PEER_FPS as u64..=120).contains(&after),
        "{after} frames after the restart"
    );
    let seq = states(&seen);
    let error_at = seq.iter().position(|s| *s == StreamState::Error).unwrap();
    assert_eq!(
        &seq[error_at - 1..=error_at + 1],
        &[
            StreamState::Running,
            StreamState::Error,
            StreamState::Running
        ],
        "{seq:?}"
    );
    let first = &report.stats.outages[0];
    assert!(first.recovered, "{first:?}");
    assert!(
        first.duration >= Duration::from_secs(1) && first.duration < Duration::from_secs(15),
        "{first:?}"
    );
    assert!(first.cause.contains("stalled"), "{first:?}");
    assert_eq!(report.stats.recoveries, 1);
    check_ladder(&out, &report);
}

#[test]
fn rtmp_a_publisher_gone_for_good_fails_within_the_policy() {
    let nginx = Nginx::rtmp();
    let url = nginx.rtmp_url("live", "gone");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let policy = fast_policy(100).with_max_outage(Duration::from_secs(6));
    let (running, seen) = start("rtmp-gone", &url, &out, policy);
    std::thread::sleep(Duration::from_millis(800));
    Peer::publish_rtmp(&url, Some(60)).wait(Duration::from_secs(20));
    let end = running.wait_for(StateSet::TERMINAL, Duration::from_secs(30));
    assert_eq!(end, StreamState::Failed, "{:?}", states(&seen));
    let report = running.wait();
    let e = report.error.as_ref().expect("the last error");
    assert_eq!(e.kind(), ErrorKind::SourceIo, "{e}");
    assert_eq!(report.stats.outage_count, 1);
    let outage = &report.stats.outages[0];
    assert!(!outage.recovered && !outage.ongoing, "{outage:?}");
    assert!(outage.duration >= Duration::from_secs(5), "{outage:?}");
    let seq = states(&seen);
    assert_eq!(
        &seq[seq.len() - 2..],
        &[StreamState::Error, StreamState::Failed]
    );
    // Everything that was published is in the output, listed in conforming playlists
    // without ENDLIST (a restart may continue them).
    assert_eq!(report.stats.frames_in, 60);
    for v in &report.stats.variants {
        let dir = out.join(&v.name);
        let media = read_media(&dir.join("index.m3u8"));
        assert!(!media.end_list, "{}", v.name);
        // (Probed segment by segment: a reader of a playlist without ENDLIST waits for more.)
        let frames: u64 = media
            .segments
            .iter()
            .map(|seg| probe_video(&dir.join(&seg.uri)).frames)
            .sum();
        assert_eq!(frames, 60, "{}", v.name);
    }
}

#[test]
fn rtmp_a_stream_key_nobody_publishes() {
    let nginx = Nginx::rtmp();
    let dir = tempfile::tempdir().unwrap();
    // Where players may not wait for a publisher, the server refuses the key at once.
    let strict = nginx.rtmp_url("strict", "nobody");
    let none = RecoveryPolicy::none();
    let (running, seen) = start("rtmp-strict", &strict, &dir.path().join("a"), none);
    let end = running.wait_for(StateSet::TERMINAL, Duration::from_secs(15));
    assert_eq!(end, StreamState::Failed, "{:?}", states(&seen));
    let e = running.wait().error.expect("an error");
    assert_eq!(e.kind(), ErrorKind::SourceIo, "{e}");
    assert!(
        !e.to_string().contains("nobody"),
        "the key is redacted: {e}"
    );
    // Where players wait, the stream waits in Error (reconnecting) and stops promptly.
    let waiting = nginx.rtmp_url("live", "nobody");
    let (running, seen) = start("rtmp-wait", &waiting, &dir.path().join("b"), policy());
    expect_state(&running, StreamState::Error, &seen, Duration::from_secs(10));
    let report = stop_bounded(running, "waiting for a publisher");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.frames_in, 0);
    assert!(report.stats.outages[0].ongoing || !report.stats.outages[0].recovered);
}

#[test]
fn rtmp_stop_is_bounded_while_connecting_and_while_playing() {
    let nginx = Nginx::rtmp();
    let url = nginx.rtmp_url("live", "bounded");
    let dir = tempfile::tempdir().unwrap();
    // Connecting: the player waits inside the open for a publisher.
    let (running, _) = start("rtmp-connecting", &url, &dir.path().join("a"), policy());
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(running.state(), StreamState::Starting);
    let report = stop_bounded(running, "connecting");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    // Playing.
    let _publisher = Peer::publish_rtmp(&url, None);
    let (running, _) = start("rtmp-playing", &url, &dir.path().join("b"), policy());
    wait_running(&running, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_bounded(running, "playing");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    check_ladder(&dir.path().join("b"), &report);
}

/// Restarts `make_peer` until the stream is `Running` (an SRT caller that found no listener
/// exits), then returns the peer that got through.
fn peer_until_running(
    running: &Stream<Running>,
    seen: &Seen,
    mut make_peer: impl FnMut() -> Peer,
) -> Peer {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut peer = make_peer();
    loop {
        if running.wait_for(StateSet::RUNNING, Duration::from_millis(300)) == StreamState::Running {
            return peer;
        }
        assert!(
            Instant::now() < deadline,
            "never Running: {:?}",
            states(seen)
        );
        if peer.has_exited() {
            peer = make_peer();
        }
    }
}

const SRT_SECRET: &str = "hushhush-0123456789";

#[test]
fn srt_caller_follows_a_listener_that_restarts_and_the_passphrase_never_shows() {
    let port = free_udp_port();
    let peer_url =
        format!("srt://127.0.0.1:{port}?mode=listener&passphrase={SRT_SECRET}&pbkeylen=16");
    let url = format!("srt://127.0.0.1:{port}?mode=caller&passphrase={SRT_SECRET}&pbkeylen=16");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (running, seen) = start("srt-caller", &url, &out, policy());
    let peer = peer_until_running(&running, &seen, || Peer::srt(&peer_url));
    std::thread::sleep(Duration::from_secs(2));
    drop(peer); // the listener goes away, then comes back on the same port
    expect_state(&running, StreamState::Error, &seen, Duration::from_secs(10));
    let _peer = peer_until_running(&running, &seen, || Peer::srt(&peer_url));
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_bounded(running, "playing");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert!(report.stats.outage_count >= 1 && report.stats.outages[0].recovered);
    check_ladder(&out, &report);
    let mut shown = format!("{report:?}");
    for ev in seen.lock().unwrap().iter() {
        shown.push_str(&format!(
            "{ev:?} {}",
            ev.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
        ));
    }
    shown.push_str(&format!("{:?}", live_config("x", &url, &out, policy())));
    assert!(
        !shown.contains(SRT_SECRET),
        "the passphrase leaked: {shown}"
    );
}

#[test]
fn srt_listener_follows_a_caller_that_goes_and_comes_back() {
    let port = free_udp_port();
    let url = format!("srt://127.0.0.1:{port}?mode=listener");
    let peer_url = format!("srt://127.0.0.1:{port}?mode=caller");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (running, seen) = start("srt-listener", &url, &out, policy());
    let peer = peer_until_running(&running, &seen, || Peer::srt(&peer_url));
    std::thread::sleep(Duration::from_secs(2));
    drop(peer);
    expect_state(&running, StreamState::Error, &seen, Duration::from_secs(10));
    let peer = peer_until_running(&running, &seen, || Peer::srt(&peer_url));
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_bounded(running, "playing");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert!(
        report.stats.outages[0].recovered,
        "{:?}",
        report.stats.outages
    );
    assert_eq!(report.stats.recoveries, report.stats.outage_count);
    check_ladder(&out, &report);
    // Our side restarts too: a new stream listens on the same port and output, and the
    // caller (which lost its listener) comes back to it.
    drop(peer);
    let (running, seen) = start("srt-listener", &url, &out, policy());
    let _peer = peer_until_running(&running, &seen, || Peer::srt(&peer_url));
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_bounded(running, "playing after a restart");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    check_ladder(&out, &report);
}

#[test]
fn hls_pull_follows_an_origin_that_fails_and_comes_back() {
    let nginx = Nginx::http();
    let _writer = Peer::hls(&nginx.root());
    let playlist = nginx.root().join("live.m3u8");
    wait_until("the origin's playlist", Duration::from_secs(15), || {
        playlist.exists()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let url = nginx.http_url("live.m3u8");
    let (running, seen) = start("hls-pull", &url, &out, policy());
    wait_running(&running, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    for status in [500, 404] {
        nginx.fail(Some(status));
        expect_state(&running, StreamState::Error, &seen, Duration::from_secs(15));
        std::thread::sleep(Duration::from_secs(1));
        nginx.fail(None);
        expect_state(
            &running,
            StreamState::Running,
            &seen,
            Duration::from_secs(15),
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let report = stop_bounded(running, "playing");
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.outage_count, 2, "{:?}", report.stats.outages);
    assert!(report.stats.outages.iter().all(|o| o.recovered));
    check_ladder(&out, &report);
}
