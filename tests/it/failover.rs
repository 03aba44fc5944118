//! Backup sources: two ffmpeg publishers into nginx-rtmp (a primary key and a backup key).
//! The primary's publisher is killed: the stream switches to the warm backup after the
//! loss delay (the last frame repeated meanwhile, no black); the primary publishes again:
//! the stream switches back once it has been healthy. hls.js plays live across both
//! switches without a stall; FFmpeg's `freezedetect` and `blackdetect` read the output.
//! The backup is another shape (4:3 against 16:9) and has no audio: it is pillarboxed into
//! the primary's picture, and silence keeps the audio going.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamvisor::config::PlaylistMode;
use streamvisor::{Hooks, OutputEvent, Source, Stream, StreamConfig, StreamState};

use crate::browser::{play_live, Kind};
use crate::common::{
    assert_continuous_video, fast_policy, frozen_and_black, live_profile, read_media,
    wait_segments, wait_until,
};
use crate::servers::{Nginx, Peer};

/// The loss delay the stream runs with (the default filler's).
const LOSS_DELAY: f64 = 1.0;
/// How much longer than the loss delay a picture may be held at a switch: the handover and
/// the decode of the kept keyframe interval, up to about 0.6 s on a loaded 2-core machine.
const SWITCH_COST: f64 = 0.75;

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
        .on_state_change(move |ev| {
            // Why it moved, in the test's output should an assertion on the states fail.
            if let Some(error) = &ev.error {
                eprintln!("{}: {:?} -> {:?}: {error}", ev.stream, ev.from, ev.to);
            }
            t.lock().unwrap().push(ev.to)
        });
    (hooks, switches, states)
}

/// A live stream over `source` (with backups) writing a 240p ladder into `out`, with
/// `tune` applied to its config; returns it started, its switches and states recorded,
/// once its playlist lists `segments` segments.
fn start(
    id: &str,
    source: Source,
    out: &std::path::Path,
    segments: usize,
    tune: impl FnOnce(streamvisor::StreamConfigBuilder) -> streamvisor::StreamConfigBuilder,
) -> (
    Stream<streamvisor::Running>,
    Switches,
    Arc<Mutex<Vec<StreamState>>>,
) {
    let (hooks, switches, states) = switch_recorder();
    let builder = StreamConfig::builder(id, source, out)
        .profile(live_profile(&["240p"]))
        .playlist_mode(PlaylistMode::Live)
        .recovery(fast_policy(1000));
    let config = tune(builder).build().unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, segments);
    (running, switches, states)
}

/// Lets the stream write two more segments, stops it, and checks that it stopped cleanly,
/// switched inputs exactly as `expected`, and was never down (`Error`).
fn end_without_outage(
    running: Stream<streamvisor::Running>,
    playlist: &std::path::Path,
    switches: &Switches,
    states: &Arc<Mutex<Vec<StreamState>>>,
    expected: &[(usize, usize)],
) -> streamvisor::StreamReport {
    let listed = read_media(playlist).segments.len();
    wait_until("two segments after", Duration::from_secs(20), || {
        read_media(playlist).segments.len() >= listed + 2
    });
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(*switches.lock().unwrap(), expected);
    let states = states.lock().unwrap().clone();
    assert!(!states.contains(&StreamState::Error), "{states:?}");
    report
}

#[test]
fn a_lost_primary_fails_over_to_the_warm_backup_and_back_without_a_stall() {
    let nginx = Nginx::rtmp();
    let primary_url = nginx.rtmp_url("live", "primary");
    let backup_url = nginx.rtmp_url("live", "backup");
    let primary = Peer::publish_rtmp(&primary_url, None);
    // A 4:3 publisher without audio.
    let _backup = Peer::pattern("480x360", false, &["-f", "flv", &backup_url]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = Source::url(primary_url.as_str()).backup(backup_url.as_str());
    let (running, switches, states) = start("failover", source, &out, 3, |b| {
        b.io_timeout(Duration::from_secs(8))
            .switch_back_after(Duration::from_secs(2))
    });
    let playlist = out.join("240p/index.m3u8");
    // A video-only RTMP source takes FFmpeg's analyzeduration (5 s) to open: the flv
    // header RTMP makes up announces audio, which never comes.
    wait_until("the backup ready", Duration::from_secs(20), || {
        running.stats().inputs[1].ready
    });
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
    assert!(
        b.frames >= 60 && b.time_active >= Duration::from_secs(3),
        "{b:?}"
    );
    assert!(!p.source.is_empty() && !b.source.is_empty());
    playback.assert_played_live_without_stall(15.0);
    // One continuous timeline through both switches, no black, and no picture frozen
    // for much longer than the loss delay (the last frame repeated until the switch).
    assert_continuous_video(&playlist, 30.0);
    let (frozen, black) = frozen_and_black(&playlist);
    assert_eq!(black, 0, "black in the output");
    for d in &frozen {
        assert!(
            *d <= LOSS_DELAY + SWITCH_COST,
            "frozen for {d} s (loss delay {LOSS_DELAY} s): {frozen:?}"
        );
    }
    eprintln!("failover: frozen spans {frozen:?} s (loss delay {LOSS_DELAY} s)");
    // The 4:3 backup was pillarboxed into the 16:9 rung, not stretched.
    let widths = crop_widths(&playlist);
    let full = *widths.iter().max().unwrap();
    let boxed = widths.iter().filter(|w| **w * 10 <= full * 8).count();
    assert!(
        boxed >= 30,
        "pillarboxed frames: {boxed} of {} ({full} wide)",
        widths.len()
    );
    // Silence stood in for the backup's missing audio: no hole in the audio.
    assert_continuous_audio(&playlist);
}

/// The width of the picture inside any black bars, per frame (FFmpeg's `cropdetect`).
fn crop_widths(playlist: &std::path::Path) -> Vec<u32> {
    let log = crate::common::filter_log(playlist, "cropdetect=limit=24:round=2:reset=1");
    log.lines()
        .filter_map(|l| l.split(" crop=").nth(1))
        .filter_map(|c| c.split(':').next()?.parse().ok())
        .collect()
}

/// Every audio packet of `playlist` follows the one before without a hole.
fn assert_continuous_audio(playlist: &std::path::Path) {
    let v = crate::common::ffprobe_json(
        playlist,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "packet=pts_time,duration_time",
        ],
    );
    let packets: Vec<(f64, f64)> = v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let t = p["pts_time"].as_str()?.parse().ok()?;
            let d = p["duration_time"].as_str()?.parse().ok()?;
            Some((t, d))
        })
        .collect();
    assert!(packets.len() > 100, "{} audio packets", packets.len());
    for w in packets.windows(2) {
        let hole = w[1].0 - (w[0].0 + w[0].1);
        assert!(
            hole < 0.05,
            "a hole of {hole:.3} s in the audio at {:.3}",
            w[0].0
        );
    }
}

/// A TCP relay in front of a server: every client it accepts is connected to `upstream`.
/// While it is paused, what the server sends is dropped (the connection stays open: a source
/// that stalls rather than ends), or with `holds` kept and delivered late on resume (a
/// network hiccup: nothing lost).
struct Relay {
    port: u16,
    paused: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(upstream: u16, holds: bool) -> Self {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering::SeqCst;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = paused.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut c_in, &mut s_out));
                let (mut s_in, mut c_out, p) = (server, client, p.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = s_in.read(&mut buf) {
                        while holds && p.load(SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        if !p.load(SeqCst) && c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, paused }
    }

    fn pause(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The primary stalls (its connection stays open, nothing comes): the last frame is held
/// for the loss delay, then the warm backup takes over; when the primary flows again the
/// stream switches back. No black, no picture held much longer than the loss delay; dash.js
/// plays the live CMAF output through both switches without a stall.
#[test]
fn a_stalled_primary_is_left_after_the_loss_delay_with_its_last_frame_held() {
    let nginx = Nginx::rtmp();
    let relay = Relay::start(nginx.port, false);
    let primary_url = format!("rtmp://127.0.0.1:{}/live/primary", relay.port);
    let backup_url = nginx.rtmp_url("live", "backup");
    let _primary = Peer::publish_rtmp(&nginx.rtmp_url("live", "primary"), None);
    let _backup = Peer::publish_rtmp(&backup_url, None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = Source::url(primary_url.as_str()).backup(backup_url.as_str());
    let (running, switches, states) = start("stalled", source, &out, 4, |b| {
        // CMAF with DASH: dash.js watches this one.
        let profile = live_profile(&["240p"])
            .with_container(streamvisor::Container::Fmp4)
            .with_dash(true);
        b.profile(profile)
            .io_timeout(Duration::from_secs(2))
            .switch_back_after(Duration::from_secs(2))
    });
    let playlist = out.join("240p/index.m3u8");
    let served = out.clone();
    let viewer = std::thread::spawn(move || play_live(Kind::Dash, &served, "manifest.mpd", 16));
    std::thread::sleep(Duration::from_secs(4));
    relay.pause(true);
    wait_until("the switch to the backup", Duration::from_secs(10), || {
        switches.lock().unwrap().contains(&(0, 1))
    });
    std::thread::sleep(Duration::from_secs(3));
    relay.pause(false);
    wait_until("the switch back", Duration::from_secs(30), || {
        switches.lock().unwrap().contains(&(1, 0))
    });
    let playback = viewer.join().unwrap();
    let _ = end_without_outage(running, &playlist, &switches, &states, &[(0, 1), (1, 0)]);
    playback.assert_played_live_without_stall(15.0);
    assert_continuous_video(&playlist, 30.0);
    let (frozen, black) = frozen_and_black(&playlist);
    assert_eq!(black, 0, "black in the output");
    assert!(
        frozen.len() == 1 && frozen[0] >= 0.25 && frozen[0] <= LOSS_DELAY + SWITCH_COST,
        "the last frame held about the loss delay once: {frozen:?}"
    );
    eprintln!(
        "failover after a stall: the last frame held {frozen:?} s (loss delay {LOSS_DELAY} s)"
    );
}

/// The primary stalls while the backup is late (held up for a moment, nothing lost): the
/// stream waits for the backup that is still connected rather than calling an outage, and
/// takes it over once its media comes; it never goes to `Error`.
#[test]
fn a_backup_late_when_the_primary_is_lost_is_waited_for_without_an_outage() {
    let nginx = Nginx::rtmp();
    let (primary_relay, backup_relay) = (
        Relay::start(nginx.port, false),
        Relay::start(nginx.port, true),
    );
    let primary_url = format!("rtmp://127.0.0.1:{}/live/primary", primary_relay.port);
    let backup_url = format!("rtmp://127.0.0.1:{}/live/backup", backup_relay.port);
    let _primary = Peer::publish_rtmp(&nginx.rtmp_url("live", "primary"), None);
    let _backup = Peer::publish_rtmp(&nginx.rtmp_url("live", "backup"), None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = Source::url(primary_url.as_str()).backup(backup_url.as_str());
    // The read timeout is above the backup's hold-up: its warm connection stays.
    let (running, switches, states) = start("late-backup", source, &out, 3, |b| {
        b.io_timeout(Duration::from_secs(4))
    });
    wait_until("the backup ready", Duration::from_secs(20), || {
        running.stats().inputs[1].ready
    });
    // The backup's last packet is 1.3 s old when the primary is lost (loss delay 1 s): it
    // is not healthy then, and its media comes 0.3 s later.
    backup_relay.pause(true);
    std::thread::sleep(Duration::from_millis(300));
    primary_relay.pause(true);
    std::thread::sleep(Duration::from_millis(1300));
    backup_relay.pause(false);
    wait_until("the switch to the backup", Duration::from_secs(10), || {
        switches.lock().unwrap().contains(&(0, 1))
    });
    let playlist = out.join("240p/index.m3u8");
    let _ = end_without_outage(running, &playlist, &switches, &states, &[(0, 1)]);
    assert_continuous_video(&playlist, 30.0);
}

/// The primary is down when the stream starts: it starts on the backup (`Running`, the
/// backup active), and switches to the primary once it comes up and has been healthy.
#[test]
fn a_stream_whose_primary_is_down_starts_on_its_backup_and_takes_the_primary_when_it_comes() {
    use crate::common::{fixed_port, LiveServer};
    let primary_port = fixed_port();
    let backup = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = Source::url(format!("tcp://127.0.0.1:{primary_port}")).backup(backup.url());
    let (running, switches, states) = start("down-at-start", source, &out, 3, |b| {
        b.switch_back_after(Duration::from_secs(1))
    });
    let playlist = out.join("240p/index.m3u8");
    let stats = running.stats();
    assert!(
        stats.inputs[1].active && !stats.inputs[0].active,
        "{:?}",
        stats.inputs
    );
    assert_eq!(running.state(), StreamState::Running);
    let _primary = LiveServer::start_on(primary_port);
    wait_until("the switch to the primary", Duration::from_secs(30), || {
        switches.lock().unwrap().contains(&(1, 0))
    });
    let report = end_without_outage(running, &playlist, &switches, &states, &[(1, 0)]);
    assert!(
        report.stats.inputs[0].frames > 30,
        "{:?}",
        report.stats.inputs
    );
    assert_continuous_video(&playlist, 30.0);
}
