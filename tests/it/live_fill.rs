//! A live output that never stalls its viewers: while the source is gone the input-loss
//! filler keeps every rendition going on the wall clock (the last frame, then black, with
//! silence), on the same segment boundaries; the next real frame follows at the next frame
//! slot. Checked with the players in Chromium playing live across the outage, with ffprobe
//! (one continuous timeline), `blackdetect`, and the playlists' program date-times.

use std::path::Path;
use std::time::{Duration, SystemTime};

use streamvisor::config::{FillPicture, Filler, InputLoss, PlaylistMode, Slate};
use streamvisor::{AbrProfile, Container, Stream, StreamConfig, StreamState};

use crate::browser::{play_live, Kind};
use crate::common::{
    assert_continuous_video, fast_policy, frozen_and_black, live_profile, read_master, read_media,
    recorder, states, wait_segments, wait_until, LiveServer,
};

/// The outage each test makes: the source's server is gone this long.
const OUTAGE: Duration = Duration::from_secs(6);
/// The segment duration of the tests' ladders.
const SEGMENT: f64 = 1.0;

fn secs_of(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The segments of a live playlist: (program date-time, duration), seconds.
fn clock_of(playlist: &Path) -> Vec<(f64, f64)> {
    let p = read_media(playlist);
    p.segments
        .iter()
        .map(|s| {
            let pdt = s
                .program_date_time
                .as_ref()
                .unwrap_or_else(|| panic!("{playlist:?}: {} has no PROGRAM-DATE-TIME", s.uri));
            (
                pdt.timestamp_millis() as f64 / 1000.0,
                f64::from(s.duration),
            )
        })
        .collect()
}

/// Every segment of `playlist` follows the one before on the wall clock exactly as on the
/// media (the output's media time is the wall clock's, the outage included), segments cover
/// the outage, and the playlist ends within a segment (plus the one being written) of
/// `read_at`, when it was read.
fn check_on_the_wall_clock(playlist: &Path, outage: (SystemTime, SystemTime), read_at: SystemTime) {
    let clock = clock_of(playlist);
    assert!(clock.len() >= 8, "{playlist:?}: {} segments", clock.len());
    for (i, w) in clock.windows(2).enumerate() {
        let step = w[1].0 - w[0].0;
        assert!(
            (step - w[0].1).abs() <= 0.075,
            "{playlist:?}: segment {} is {step:.3} s after the one before, which lasts {:.3} s; \
             outage {:.2}..{:.2}: {clock:?}",
            i + 1,
            w[0].1,
            secs_of(outage.0),
            secs_of(outage.1)
        );
    }
    let (gone, back) = (secs_of(outage.0), secs_of(outage.1));
    let during = clock
        .iter()
        .filter(|(t, _)| *t >= gone + 1.5 && *t + SEGMENT <= back)
        .count();
    assert!(
        during >= 3,
        "{playlist:?}: {during} segments during the outage: {clock:?}"
    );
    let (last, duration) = clock.last().copied().unwrap();
    let behind = secs_of(read_at) - (last + duration);
    assert!(
        (-0.2..=2.0 * SEGMENT + 0.5).contains(&behind),
        "{playlist:?}: ends {behind:.2} s before the wall clock"
    );
}

/// A live stream over a source that goes away for [`OUTAGE`] and returns, played live by
/// `player` in Chromium across the outage.
fn fill_across_an_outage(container: Container, player: Kind) {
    let server = LiveServer::start();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let profile = AbrProfile::from_rungs(&["360p", "240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_container(container)
        .with_dash(container == Container::Fmp4)
        .with_segment_duration(Duration::from_secs_f64(SEGMENT))
        .with_live_window(60);
    let (hooks, seen) = recorder();
    let config = StreamConfig::builder("fill", server.url(), &out)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .recovery(fast_policy(100))
        .build()
        .unwrap();
    assert!(
        matches!(config.input_loss(), InputLoss::Fill(_)),
        "the default"
    );
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, 3);
    let (entry, seconds) = match player {
        Kind::Hls => ("master.m3u8", 18),
        Kind::Dash => ("manifest.mpd", 18),
    };
    let served = out.clone();
    let viewer = std::thread::spawn(move || play_live(player, &served, entry, seconds));
    std::thread::sleep(Duration::from_secs(4));
    drop(server);
    let gone = SystemTime::now();
    wait_until("the filler", Duration::from_secs(5), || {
        running.stats().live_clock.filling
    });
    std::thread::sleep(OUTAGE.saturating_sub(Duration::from_secs(1)));
    let server = LiveServer::start_on(port);
    wait_until("media back", Duration::from_secs(20), || {
        !running.stats().live_clock.filling
    });
    let back = SystemTime::now();
    let listed = read_media(&playlist).segments.len();
    wait_until("four segments after", Duration::from_secs(20), || {
        read_media(&playlist).segments.len() >= listed + 4
    });
    let playback = viewer.join().unwrap();
    let read_at = SystemTime::now();
    let master = read_master(&out);
    let mut renditions: Vec<String> = master.variants.iter().map(|v| v.uri.clone()).collect();
    renditions.extend(master.alternatives.iter().filter_map(|a| a.uri.clone()));
    for uri in &renditions {
        check_on_the_wall_clock(&out.join(uri), (gone, back), read_at);
    }
    let stats = running.stats();
    let report = running.stop(Duration::from_secs(10));
    drop(server);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    playback.assert_played_live_without_stall(f64::from(seconds) - 1.0);
    let clock = &stats.live_clock;
    assert_eq!(clock.fills, 1, "{clock:?}");
    assert!(clock.filler_frames >= 100, "{clock:?}");
    assert!(clock.silence_packets > 0, "{clock:?}");
    assert_eq!(clock.frames_repeated, 0, "{clock:?}");
    // The state follows: Error while the filler plays, Running when media is back.
    let seen = states(&seen);
    let error = seen.iter().position(|s| *s == StreamState::Error);
    let error = error.unwrap_or_else(|| panic!("no Error: {seen:?}"));
    assert!(seen[error..].contains(&StreamState::Running), "{seen:?}");
    // One continuous timeline, every frame one interval after the one before, outage and all.
    assert_continuous_video(&playlist, 30.0);
    // The filler as FFmpeg sees it: one picture standing still through the outage (the last
    // frame, then black), black once.
    let (frozen, black) = frozen_and_black(&playlist);
    assert_eq!(black, 1, "one black span: frozen {frozen:?}");
    assert!(
        frozen.len() == 1 && frozen[0] >= 4.0,
        "one frozen span through the outage: {frozen:?}"
    );
}

#[test]
fn an_outage_is_filled_on_the_wall_clock_and_hls_js_plays_through_it() {
    fill_across_an_outage(Container::MpegTs, Kind::Hls);
}

#[test]
fn an_outage_is_filled_in_fmp4_and_dash_and_dash_js_plays_through_it() {
    fill_across_an_outage(Container::Fmp4, Kind::Dash);
}

/// Frames of `playlist` whose picture is mostly red (FFmpeg's `signalstats`: the average
/// V above 170; a square red slate boxed into 16:9 averages about 190, the test pattern
/// near 126).
fn red_frames(playlist: &Path) -> usize {
    let vf = "signalstats,metadata=print:key=lavfi.signalstats.VAVG";
    crate::common::filter_log(playlist, vf)
        .lines()
        .filter_map(|l| l.split("lavfi.signalstats.VAVG=").nth(1))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .filter(|v| *v > 170.0)
        .count()
}

/// An application's slate (a red PNG of another shape) shows once the last frame has been
/// held for `repeat_last`; no black.
#[test]
fn the_slate_follows_the_held_frame_during_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("slate.png");
    crate::common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=320x320",
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let server = LiveServer::start();
    let port = server.port;
    let out = dir.path().join("out");
    let profile = live_profile(&["240p"]);
    let filler = Filler::default()
        .repeat_last(Duration::from_millis(500))
        .then(FillPicture::Slate(Slate::from_file(&png).unwrap()));
    let config = StreamConfig::builder("slate", server.url(), &out)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .recovery(fast_policy(100))
        .input_loss(InputLoss::Fill(filler))
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, 3);
    drop(server);
    wait_until("the filler", Duration::from_secs(5), || {
        running.stats().live_clock.filling
    });
    std::thread::sleep(Duration::from_secs(3));
    let _server = LiveServer::start_on(port);
    wait_until("media back", Duration::from_secs(20), || {
        !running.stats().live_clock.filling
    });
    let listed = read_media(&playlist).segments.len();
    wait_until("two segments after", Duration::from_secs(20), || {
        read_media(&playlist).segments.len() >= listed + 2
    });
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let red = red_frames(&playlist);
    assert!(red >= 60, "{red} frames of the red slate");
    let (_, black) = frozen_and_black(&playlist);
    assert_eq!(black, 0, "the slate, not black");
    assert_continuous_video(&playlist, 30.0);
}

/// What the filler costs (`make filler-cost`, not a timed test): the stream's CPU time over
/// 60 s of a real-time 640x360 source, then over 60 s of the source gone (the filler: the
/// last frame held, then black, silence), on the same two-rung ladder. Printed.
#[test]
#[ignore = "a measurement of two minutes; run by make filler-cost"]
fn filler_cpu_cost() {
    let minute = Duration::from_secs(60);
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let profile = AbrProfile::from_rungs(&["360p", "240p"])
        .unwrap()
        .with_preset("veryfast")
        .with_segment_duration(Duration::from_secs(2))
        .with_live_window(10);
    let policy = fast_policy(10_000).with_max_outage(Duration::from_secs(600));
    let config = StreamConfig::builder("cost", server.url(), dir.path().join("out"))
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .recovery(policy)
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    wait_until("media", Duration::from_secs(30), || {
        running.stats().frames_in > 30
    });
    let cpu0 = running.stats().cpu_time;
    std::thread::sleep(minute);
    let cpu1 = running.stats().cpu_time;
    drop(server);
    wait_until("the filler", Duration::from_secs(10), || {
        running.stats().live_clock.filling
    });
    let cpu2 = running.stats().cpu_time;
    std::thread::sleep(minute);
    let stats = running.stats();
    let cpu3 = stats.cpu_time;
    let _ = running.abort();
    assert!(stats.live_clock.filling, "{:?}", stats.live_clock);
    let media = (cpu1 - cpu0).as_secs_f64();
    let filler = (cpu3 - cpu2).as_secs_f64();
    println!(
        "CPU time of 60 s, two rungs (360p, 240p, veryfast), 640x360 30 fps source: \
         media {media:.1} s, filler {filler:.1} s ({:.0} % of media)",
        100.0 * filler / media.max(1e-9)
    );
}

/// A live HLS pull source delivers a segment's media at once: the live clock paces it to
/// the wall clock, so the bursts neither start the filler nor leave gaps; the output is one
/// continuous timeline on the wall clock.
#[test]
fn a_bursty_hls_pull_source_is_paced_without_filler() {
    use crate::servers::{Nginx, Peer};
    let nginx = Nginx::http();
    let _writer = Peer::hls(&nginx.root());
    let origin = nginx.root().join("live.m3u8");
    wait_until("the origin's playlist", Duration::from_secs(15), || {
        origin.exists()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (hooks, seen) = recorder();
    let config = StreamConfig::builder("bursty", nginx.http_url("live.m3u8"), &out)
        .profile(crate::common::live_profile(&["240p"]))
        .playlist_mode(PlaylistMode::Live)
        .recovery(fast_policy(100))
        .build()
        .unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_until("eight segments", Duration::from_secs(40), || {
        playlist.exists() && read_media(&playlist).segments.len() >= 8
    });
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let clock = &report.stats.live_clock;
    assert_eq!(clock.fills, 0, "{clock:?}");
    assert!(clock.frames_repeated <= 2, "{clock:?}");
    assert!(
        !states(&seen).contains(&StreamState::Error),
        "{:?}",
        states(&seen)
    );
    assert_continuous_video(&playlist, 30.0);
    // Segments as far apart on the wall clock as on the media.
    let clock = clock_of(&playlist);
    for w in clock.windows(2) {
        assert!((w[1].0 - w[0].0 - w[0].1).abs() <= 0.075, "{clock:?}");
    }
}
