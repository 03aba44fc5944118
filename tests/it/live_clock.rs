//! Live output on the wall clock: every segment of every rendition carries
//! `#EXT-X-PROGRAM-DATE-TIME`, the wall-clock time its first frame's packet was read (a
//! source carries no capture time), and a real-time source's segments are as far apart on
//! that clock as on the media's.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use streamvisor::config::PlaylistMode;
use streamvisor::{AbrProfile, Container, Stream, StreamConfig, StreamState};

use crate::common::{read_master, read_media, wait_segments, wait_until, LiveServer};

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Every segment of `playlist` has a program date-time, its first between `before` and
/// `after`, each one after it as far on the wall clock as on the media (a real-time
/// source), none in the future. Returns them, ms.
fn check_clock(playlist: &Path, before: SystemTime, after: SystemTime) -> Vec<i64> {
    let p = read_media(playlist);
    assert!(
        p.segments.len() >= 3,
        "{playlist:?}: {} segments",
        p.segments.len()
    );
    let pdt: Vec<i64> = p
        .segments
        .iter()
        .map(|s| {
            let pdt = s.program_date_time.as_ref().map(|t| t.timestamp_millis());
            pdt.unwrap_or_else(|| panic!("{playlist:?}: {} has no PROGRAM-DATE-TIME", s.uri))
        })
        .collect();
    assert!(
        pdt[0] >= ms_of(before) - 1000 && pdt[0] <= ms_of(after),
        "{playlist:?}: first {} outside [{}, {}]",
        pdt[0],
        ms_of(before),
        ms_of(after)
    );
    let mut media_ms = 0.0;
    for (i, s) in p.segments.iter().enumerate() {
        let drift = (pdt[i] - pdt[0]) as f64 - media_ms;
        // Reads of a real-time source are paced by it; a busy machine adds jitter.
        assert!(
            drift.abs() <= 250.0,
            "{playlist:?}: segment {i} off by {drift} ms"
        );
        media_ms += f64::from(s.duration) * 1000.0;
    }
    let end = pdt[0] as f64 + media_ms;
    assert!(
        end <= ms_of(after) as f64 + 500.0,
        "{playlist:?}: ends in the future"
    );
    pdt
}

fn live_clock(container: Container) {
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let profile = AbrProfile::from_rungs(&["360p", "240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_container(container)
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(30);
    let config = StreamConfig::builder("clock", server.url(), &out)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .build()
        .unwrap();
    let before = SystemTime::now();
    let running = Stream::new(config).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, 5);
    let report = running.stop(Duration::from_secs(10));
    let after = SystemTime::now();
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let master = read_master(&out);
    let mut renditions: Vec<String> = master.variants.iter().map(|v| v.uri.clone()).collect();
    renditions.extend(master.alternatives.iter().filter_map(|a| a.uri.clone()));
    assert_eq!(
        renditions.len(),
        if container == Container::Fmp4 { 3 } else { 2 },
        "{renditions:?}"
    );
    let clocks: Vec<Vec<i64>> = renditions
        .iter()
        .map(|uri| check_clock(&out.join(uri), before, after))
        .collect();
    // The renditions cut on the same boundaries: the same sequence, the same time of day.
    for c in &clocks[1..] {
        for (a, b) in clocks[0].iter().zip(c) {
            assert!((a - b).abs() <= 50, "{clocks:?}");
        }
    }
}

#[test]
fn every_live_mpeg_ts_segment_says_when_its_first_frame_was_read() {
    live_clock(Container::MpegTs);
}

#[test]
fn every_live_fmp4_segment_and_audio_rendition_says_when_its_first_frame_was_read() {
    live_clock(Container::Fmp4);
}

/// A live source that goes away for a few seconds and returns, within one run, with the
/// output pausing with its source (`InputLoss::Stop`; the filler's tests are in
/// `live_fill`): the live DASH manifest closes its Period at the outage and begins a new one at the wall clock, so
/// a player's live edge (availabilityStartTime + Period@start + media time) is at segments
/// that exist, not ahead of them by the outage; every listed file is there.
#[test]
fn an_outage_within_a_run_begins_a_new_dash_period_on_the_wall_clock() {
    use crate::common::fast_policy;
    use crate::resume::periods;
    let server = LiveServer::start();
    let port = server.port;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_container(Container::Fmp4)
        .with_dash(true)
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(30);
    let config = StreamConfig::builder("outage", server.url(), &out)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .recovery(fast_policy(60))
        .input_loss(streamvisor::config::InputLoss::Stop)
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, 3);
    drop(server);
    std::thread::sleep(Duration::from_secs(4));
    let listed = read_media(&playlist).segments.len();
    // Not polled for listening: the reconnecting stream may take the one-shot listen before
    // a poll sees it (LiveServer::start_on); the segments say the source is back.
    let server = LiveServer::start_on(port);
    wait_until(
        "three segments after the outage",
        Duration::from_secs(30),
        || read_media(&playlist).segments.len() >= listed + 3,
    );
    let text = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let read_at = SystemTime::now();
    let report = running.stop(Duration::from_secs(10));
    drop(server);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let (kind, ast, periods) = periods(&text);
    assert_eq!(kind, "dynamic");
    assert!(periods.len() >= 2, "a new Period after the outage: {text}");
    let end = |p: &crate::resume::MpdPeriod| p.start + p.reps[0].2.last().unwrap().2;
    let (before, after) = (&periods[periods.len() - 2], &periods[periods.len() - 1]);
    assert!(
        after.start >= end(before) + 2.0,
        "the new Period begins after the outage: {} vs {}",
        after.start,
        end(before)
    );
    let edge = read_at.duration_since(ast.unwrap()).unwrap().as_secs_f64();
    let newest = end(after);
    assert!(
        newest <= edge + 0.5 && newest >= edge - 4.0,
        "newest {newest}, edge {edge}: the live edge is at segments that exist"
    );
    for p in &periods {
        for (dir, init, segs) in &p.reps {
            assert!(out.join(init).exists(), "{init}");
            for (n, _, _) in segs {
                let file = out.join(dir).join(format!("seg_{n:05}.m4s"));
                assert!(file.exists(), "{}", file.display());
            }
        }
    }
    // The final manifest, static with both Periods (one after the other, without the
    // outage between them), plays in dash.js across them: past the end of the first.
    let final_text = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let (_, _, last) = crate::resume::periods(&final_text);
    assert!(last.len() >= 2, "the final manifest keeps the Periods");
    assert!(
        (last[1].start - end(&last[0])).abs() < 0.5,
        "no gap on demand: {} after {}",
        last[1].start,
        end(&last[0])
    );
    let past_first = (end(&last[0]) + 2.0).ceil();
    let dash = crate::browser::play_for(
        crate::browser::Kind::Dash,
        &out,
        "manifest.mpd",
        past_first as u32,
    );
    dash.assert_played(past_first);
}
