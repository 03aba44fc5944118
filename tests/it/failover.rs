//! Backup sources: two ffmpeg publishers into nginx-rtmp (a primary key and a backup key).
//! The primary's publisher is killed: the stream switches to the warm backup after the
//! loss delay (the last frame repeated meanwhile, no black); the primary publishes again:
//! the stream switches back once it has been healthy. hls.js plays live across both
//! switches without a stall; FFmpeg's `freezedetect` and `blackdetect` read the output.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamvisor::config::PlaylistMode;
use streamvisor::{
    AbrProfile, Hooks, OutputEvent, Source, Stream, StreamConfig, StreamState,
};

use crate::browser::{play_live, Kind};
use crate::common::{assert_continuous_video, fast_policy, read_media, wait_until};
use crate::servers::{Nginx, Peer};

/// The loss delay the stream runs with (the default filler's).
const LOSS_DELAY: f64 = 1.0;

/// (from, to) of every input switch seen.
type Switches = Arc<Mutex<Vec<(usize, usize)>>>;

fn switch_recorder() -> (Hooks, Switches, Arc<Mutex<Vec<StreamState>>>) {
    let switches: Switches = Arc::default();
    let states: Arc<Mutex<Vec<StreamState>>> = Arc::default();
    let (s, t) = (switches.clone(), states.clone());
    let hooks = Hooks::new()
        .on_output(move |ev| {
            if let OutputEvent::InputSwitched {
                from_index,
                to_index,
                ..
            } = ev
            {
                s.lock().unwrap().push((*from_index, *to_index));
            }
        })
        .on_state_change(move |ev| t.lock().unwrap().push(ev.to));
    (hooks, switches, states)
}

/// What FFmpeg's `freezedetect` and `blackdetect` find in `playlist`: the frozen spans'
/// durations and the black spans' count.
fn frozen_and_black(playlist: &Path) -> (Vec<f64>, usize) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(playlist)
        .args([
            "-vf",
            "freezedetect=n=0.001:d=0.3,blackdetect=d=0.2:pix_th=0.1",
            "-an",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    let frozen = log
        .lines()
        .filter_map(|l| l.split("lavfi.freezedetect.freeze_duration: ").nth(1))
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let black = log.matches("black_start:").count();
    (frozen, black)
}

#[test]
fn a_lost_primary_fails_over_to_the_warm_backup_and_back_without_a_stall() {
    let nginx = Nginx::rtmp();
    let primary_url = nginx.rtmp_url("live", "primary");
    let backup_url = nginx.rtmp_url("live", "backup");
    let primary = Peer::publish_rtmp(&primary_url, None);
    let _backup = Peer::publish_rtmp(&backup_url, None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(60);
    let (hooks, switches, states) = switch_recorder();
    let config = StreamConfig::builder(
        "failover",
        Source::url(primary_url.as_str()).backup(backup_url.as_str()),
        &out,
    )
    .profile(profile)
    .playlist_mode(PlaylistMode::Live)
    .recovery(fast_policy(100))
    .switch_back_after(Duration::from_secs(2))
    .build()
    .unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_until("three segments", Duration::from_secs(30), || {
        playlist.exists() && read_media(&playlist).segments.len() >= 3
    });
    // The backup is warm once it has been read a while.
    std::thread::sleep(Duration::from_secs(2));
    let served = out.clone();
    let viewer = std::thread::spawn(move || play_live(Kind::Hls, &served, "master.m3u8", 16));
    std::thread::sleep(Duration::from_secs(4));
    drop(primary);
    wait_until("the switch to the backup", Duration::from_secs(10), || {
        switches.lock().unwrap().contains(&(0, 1))
    });
    std::thread::sleep(Duration::from_secs(3));
    let _primary = Peer::publish_rtmp(&primary_url, None);
    wait_until("the switch back", Duration::from_secs(20), || {
        switches.lock().unwrap().contains(&(1, 0))
    });
    let playback = viewer.join().unwrap();
    let listed = read_media(&playlist).segments.len();
    wait_until("two segments after", Duration::from_secs(20), || {
        read_media(&playlist).segments.len() >= listed + 2
    });
    let stats = running.stats();
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(*switches.lock().unwrap(), [(0, 1), (1, 0)]);
    // A healthy backup took over: the stream never went down.
    let states = states.lock().unwrap().clone();
    assert!(!states.contains(&StreamState::Error), "{states:?}");
    let (p, b) = (&stats.inputs[0], &stats.inputs[1]);
    assert_eq!((p.activations, p.losses, p.active), (2, 1, true), "{p:?}");
    assert_eq!((b.activations, b.losses, b.active), (1, 0, false), "{b:?}");
    assert!(b.frames >= 60 && b.time_active >= Duration::from_secs(3), "{b:?}");
    assert!(!p.source.is_empty() && !b.source.is_empty());
    playback.assert_played_live_without_stall(15.0);
    // One continuous timeline through both switches, no black, and no picture frozen
    // for much longer than the loss delay (the last frame repeated until the switch).
    assert_continuous_video(&playlist, 30.0);
    let (frozen, black) = frozen_and_black(&playlist);
    assert_eq!(black, 0, "black in the output");
    for d in &frozen {
        assert!(
            *d <= LOSS_DELAY + 0.5,
            "frozen for {d} s (loss delay {LOSS_DELAY} s): {frozen:?}"
        );
    }
    eprintln!("failover: frozen spans {frozen:?} s (loss delay {LOSS_DELAY} s)");
}
