//! Recovery: sources that die and come back, sources that die for good, silent sources,
//! and hardware devices that are not there.

use std::time::{Duration, Instant};

use streamvisor::config::HwKind;
use streamvisor::{
    AbrProfile, Error, ErrorKind, RecoveryPolicy, StateSet, Stream, StreamConfig, StreamState,
};

use crate::common::*;

#[test]
fn a_killed_and_restarted_source_reconnects_into_one_continuous_output() {
    let server = LiveServer::start();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (hooks, seen) = recorder();
    // The output pauses with its source (no filler: every frame out is a decoded one; the
    // live clock would hold the last picture over the gap, as it should for viewers).
    let config = live_builder("reconnect", &server.url(), &out, fast_policy(30))
        .input_loss(streamvisor::config::InputLoss::Stop)
        .build()
        .unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    wait_running(&running, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(2500));
    drop(server); // the publisher dies mid-stream
    assert_eq!(
        running.wait_for(
            StateSet::ERROR | StateSet::TERMINAL,
            Duration::from_secs(10)
        ),
        StreamState::Error
    );
    let before = running.stats().frames_in;
    let server = LiveServer::start_on(port);
    wait_running(&running, Duration::from_secs(15));
    wait_until(
        "frames after the reconnect",
        Duration::from_secs(15),
        || running.stats().frames_in > before + 60,
    );
    let report = running.stop(Duration::from_secs(10));
    drop(server);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.recoveries, 1);
    assert!(report.stats.errors >= 1);
    // The outage is reported closed, with how long it lasted.
    assert_eq!(report.stats.outage_count, 1, "{:?}", report.stats.outages);
    let outage = &report.stats.outages[0];
    assert!(outage.recovered && !outage.ongoing, "{outage:?}");
    assert!(
        outage.duration > Duration::ZERO && outage.duration < Duration::from_secs(30),
        "{outage:?}"
    );
    assert_eq!(report.stats.outage_time, outage.duration);
    let seq = states(&seen);
    let error_at = seq
        .iter()
        .position(|s| *s == StreamState::Error)
        .expect("an Error state");
    assert_eq!(seq[error_at - 1], StreamState::Running, "{seq:?}");
    assert_eq!(seq[error_at + 1], StreamState::Running, "{seq:?}");
    let ev = &seen.lock().unwrap()[error_at];
    assert_eq!(
        ev.error.as_ref().map(Error::kind),
        Some(ErrorKind::SourceIo),
        "{ev:?}"
    );

    let mut starts_by_variant = Vec::new();
    for v in &report.stats.variants {
        let dir = out.join(&v.name);
        let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
        // The encoders never stopped and the timeline continued right after the last
        // frame: one continuous stream, so no discontinuity is needed, and none written.
        assert!(!text.contains("DISCONTINUITY\n"), "{}:\n{text}", v.name);
        assert_continuous_video(&dir.join("index.m3u8"), 30.0);
        let media = read_media(&dir.join("index.m3u8"));
        assert!(media.end_list);
        let mut last = f64::MIN;
        let mut starts = Vec::new();
        for seg in &media.segments {
            let path = dir.join(&seg.uri);
            let (pts, key) = first_video_packet(&path);
            assert!(key, "{}: {} starts with a keyframe", v.name, seg.uri);
            assert!(
                pts > last,
                "{}: timestamps go forward ({pts} after {last})",
                v.name
            );
            last = pts;
            starts.push((pts * 1000.0).round() as i64);
            assert!(
                probe_video(&path).frames > 0,
                "{}: {} decodes",
                v.name,
                seg.uri
            );
        }
        assert_eq!(
            probe_video(&dir.join("index.m3u8")).frames,
            v.frames_out,
            "{}",
            v.name
        );
        assert_eq!(
            v.frames_out,
            frames_to_encode(&report.stats),
            "{}: every decoded frame encoded",
            v.name
        );
        starts_by_variant.push(starts);
    }
    assert_eq!(
        starts_by_variant[0], starts_by_variant[1],
        "keyframes stay aligned across variants"
    );
}

#[test]
fn a_source_gone_for_good_fails_within_the_policy() {
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = RecoveryPolicy::default()
        .with_max_attempts(3)
        .with_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .with_max_outage(Duration::from_secs(5));
    let (hooks, seen) = recorder();
    let running = Stream::new(live_config(
        "gone",
        &server.url(),
        &dir.path().join("o"),
        policy,
    ))
    .with_hooks(hooks)
    .start()
    .unwrap();
    wait_running(&running, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    drop(server);
    let t = Instant::now();
    let end = running.wait_for(StateSet::TERMINAL, Duration::from_secs(30));
    let took = t.elapsed();
    assert_eq!(end, StreamState::Failed);
    assert!(
        took < Duration::from_secs(5) + Duration::from_secs(3),
        "failed after {took:?}, past the 5 s outage bound"
    );
    let report = running.wait();
    let e = report.error.expect("the last error");
    assert_eq!(e.kind(), ErrorKind::SourceIo, "{e}");
    assert!(e.is_recoverable());
    let seq = states(&seen);
    assert_eq!(
        &seq[seq.len() - 2..],
        &[StreamState::Error, StreamState::Failed],
        "{seq:?}"
    );
}

#[test]
fn a_silent_server_is_a_stall_not_an_end_of_stream() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(1).flatten().collect();
        std::thread::sleep(Duration::from_secs(4));
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = StreamConfig::builder(
        "stall",
        format!("tcp://127.0.0.1:{port}"),
        dir.path().join("o"),
    )
    .local_files_under("/")
    .io_timeout(Duration::from_secs(1))
    .recovery(RecoveryPolicy::none())
    .build()
    .unwrap();
    let t = Instant::now();
    let report = run_to_end(cfg);
    let took = t.elapsed();
    assert_eq!(report.state, StreamState::Failed);
    let e = report.error.unwrap();
    assert!(
        matches!(
            e,
            Error::SourceStalled { timeout, .. } if timeout == Duration::from_secs(1)
        ),
        "{e}"
    );
    assert!(
        took < Duration::from_secs(2),
        "stall reported after {took:?}; timeout 1 s + 1 s"
    );
    holder.join().unwrap();
}

fn hw_config(id: &str, out: &std::path::Path, fallback: bool) -> StreamConfig {
    StreamConfig::builder(id, "lavfi:testsrc2=size=640x360:rate=30:duration=2", out)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(
            AbrProfile::from_rungs(&["360p"])
                .unwrap()
                .with_preset("ultrafast"),
        )
        .hw_device(HwKind::Cuda, "7")
        .recovery(RecoveryPolicy::default().with_hardware_fallback(fallback))
        .build()
        .unwrap()
}

#[test]
fn a_missing_hardware_device_falls_back_to_the_cpu_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let (hooks, seen) = recorder();
    let running = Stream::new(hw_config("hw-ok", &out, true))
        .with_hooks(hooks)
        .start()
        .unwrap();
    let report = running.wait();
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.hardware_fallbacks, 1);
    assert_eq!(report.stats.recoveries, 1);
    assert_eq!(probe_video(&out.join("360p/index.m3u8")).frames, 60);
    let events = seen.lock().unwrap().clone();
    let err = events
        .iter()
        .find(|e| e.to == StreamState::Error)
        .expect("the switch is visible");
    assert_eq!(
        err.error.as_ref().map(streamvisor::Error::kind),
        Some(ErrorKind::Hardware)
    );
    use StreamState::*;
    let seq: Vec<_> = events.iter().map(|e| e.to).collect();
    assert_eq!(seq, vec![Starting, Error, Running, Stopping, Stopped]);
}

#[test]
fn a_missing_hardware_device_fails_when_fallback_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_to_end(hw_config("hw-no", &dir.path().join("o"), false));
    assert_eq!(report.state, StreamState::Failed);
    let e = report.error.unwrap();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    assert!(e.to_string().contains("cuda:7"), "{e}");
    assert!(!dir.path().join("o/master.m3u8").exists());
}

#[test]
fn a_stop_while_recovering_finishes_the_outputs() {
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let policy =
        fast_policy(1000).with_backoff(Duration::from_millis(200), Duration::from_millis(200));
    // Every frame decoded is counted out: the output pauses with its source.
    let config = live_config("stop-in-error", &server.url(), &out, policy)
        .to_builder()
        .input_loss(streamvisor::config::InputLoss::Stop)
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    wait_running(&running, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(2500));
    drop(server);
    assert_eq!(
        running.wait_for(
            StateSet::ERROR | StateSet::TERMINAL,
            Duration::from_secs(10)
        ),
        StreamState::Error
    );
    let t = Instant::now();
    let report = running.stop(Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop from Error took {:?}",
        t.elapsed()
    );
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert!(!report.stop_deadline_exceeded);
    for v in &report.stats.variants {
        let media = read_media(&out.join(&v.name).join("index.m3u8"));
        assert!(media.end_list, "{}: ENDLIST after a stop in Error", v.name);
        assert_eq!(v.frames_out, frames_to_encode(&report.stats));
    }
}

fn lost_device_config(
    src: &std::path::Path,
    out: &std::path::Path,
    fallback: bool,
) -> StreamConfig {
    StreamConfig::builder("lost", src.to_str().unwrap(), out)
        .local_files_under("/")
        .profile(
            AbrProfile::from_rungs(&["360p", "240p"])
                .unwrap()
                .with_preset("ultrafast"),
        )
        .recovery(RecoveryPolicy::default().with_hardware_fallback(fallback))
        .inject_hardware_loss_after_frames(40)
        .build()
        .unwrap()
}

#[test]
fn a_device_lost_mid_file_falls_back_without_losing_or_repeating_media() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "in.mp4", "640x360", 30, 5, true);
    let out = dir.path().join("o");
    let (hooks, seen) = recorder();
    let running = Stream::new(lost_device_config(&src, &out, true))
        .with_hooks(hooks)
        .start()
        .unwrap();
    let report = running.wait();
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.hardware_fallbacks, 1);
    assert_eq!(report.stats.recoveries, 1);
    assert_eq!(report.stats.frames_in, 150, "every source frame once");
    use StreamState::*;
    assert_eq!(
        states(&seen),
        vec![Starting, Running, Error, Running, Stopping, Stopped]
    );
    for v in &report.stats.variants {
        let playlist = out.join(&v.name).join("index.m3u8");
        assert_eq!(probe_video(&playlist).frames, 150, "{}", v.name);
        let text = std::fs::read_to_string(&playlist).unwrap();
        assert!(
            !text.contains("DISCONTINUITY"),
            "a file resumes where it was: no discontinuity"
        );
        // Audio neither repeated nor lost: monotonic, and it spans the 5 s.
        let v = ffprobe_json(
            &playlist,
            &[
                "-select_streams",
                "a:0",
                "-show_entries",
                "packet=pts_time,duration_time",
            ],
        );
        let pts: Vec<f64> = v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
            .collect();
        assert!(
            pts.windows(2).all(|w| w[1] > w[0]),
            "audio timestamps go forward"
        );
        let span = pts.last().unwrap() - pts.first().unwrap();
        assert!(
            (span - 5.0).abs() < 0.1,
            "audio spans the source's 5 s: {span:.3}"
        );
    }
}

#[test]
fn a_device_lost_mid_file_fails_when_fallback_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "in.mp4", "640x360", 30, 3, false);
    let report = run_to_end(lost_device_config(&src, &dir.path().join("o"), false));
    assert_eq!(report.state, StreamState::Failed);
    let e = report.error.unwrap();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    assert!(e.to_string().contains("device was lost"), "{e}");
}
