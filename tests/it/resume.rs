//! A live stream restarted into the same output carries its playlists on, through whatever
//! sink it writes to: the same test on the filesystem (`FsSink`, the default) and on nginx's
//! WebDAV through `HttpSink` (which can read the playlist back but not list a directory).
//! The second run continues the first run's sequence numbers after one DISCONTINUITY, the
//! first run's segments stay listed and readable with their own init segment, and every
//! frame of both runs decodes. The live DASH manifest is carried on the same way: the same
//! `availabilityStartTime`, the first run's Period kept, a new Period for the second run
//! placed on the wall clock, every listed file there.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use streamvisor::config::PlaylistMode;
use streamvisor::sink::{HttpSink, SegmentSink};
use streamvisor::{
    AbrProfile, Container, RecoveryPolicy, Stream, StreamConfig, StreamState, VariantProfile,
};

use crate::common::{ffprobe_json, is_listening, read_media, wait_until, LiveServer};
use crate::servers::Nginx;

/// Two live fMP4 runs into `root` (where the sink's files land on this machine): the first
/// ends when its source dies (Failed, no ENDLIST), the second, on a source brought back,
/// runs until it has listed `more` segments of its own.
fn two_runs(root: &Path, sink: impl Fn() -> Option<Arc<dyn SegmentSink>>, more: usize) {
    let server = LiveServer::start();
    let port = server.port;
    let cfg = || {
        let profile = AbrProfile::new(vec![
            VariantProfile::new("240p", 240, 300_000).with_preset("ultrafast")
        ])
        .with_container(Container::Fmp4)
        .with_dash(true)
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(30);
        let b = StreamConfig::builder("resume", format!("tcp://127.0.0.1:{port}"), root)
            .local_files_under("/")
            .profile(profile)
            .playlist_mode(PlaylistMode::Live)
            .recovery(RecoveryPolicy::default().with_max_attempts(1));
        match sink() {
            Some(s) => b.sink(s),
            None => b,
        }
        .build()
        .unwrap()
    };
    let playlist = root.join("240p/index.m3u8");
    let first = Stream::new(cfg()).start().unwrap();
    wait_until("the first run's segments", Duration::from_secs(30), || {
        playlist.exists() && read_media(&playlist).segments.len() >= 3
    });
    drop(server);
    let report = first.wait();
    assert_eq!(report.state, StreamState::Failed, "{:?}", report.error);
    let before = read_media(&playlist);
    assert!(!before.end_list, "a failed run leaves no ENDLIST");
    let manifest = root.join("manifest.mpd");
    let first_mpd = std::fs::read_to_string(&manifest).expect("the first run's manifest");
    let server = LiveServer::start_on(port);
    wait_until("the source", Duration::from_secs(10), || is_listening(port));
    let second = Stream::new(cfg()).start().unwrap();
    let want = before.segments.len() + more;
    wait_until("the second run's segments", Duration::from_secs(60), || {
        read_media(&playlist).segments.len() >= want
    });
    let live_mpd = std::fs::read_to_string(&manifest).expect("the second run's manifest");
    let read_at = SystemTime::now();
    let report = second.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    drop(server);
    check_continued(root, &before);
    let final_mpd = std::fs::read_to_string(&manifest).expect("the final manifest");
    check_dash_continued(root, &before, [&first_mpd, &live_mpd, &final_mpd], read_at);
}

/// A listed segment: file number, start and end (s, Period time).
pub type Listed = (u64, f64, f64);

/// One Period of a manifest: id, start (s), and per representation its directory, init
/// file and listed segments.
pub struct MpdPeriod {
    pub id: String,
    pub start: f64,
    pub reps: Vec<(String, String, Vec<Listed>)>,
}

/// The type, `availabilityStartTime` and Periods of a manifest.
pub fn periods(text: &str) -> (String, Option<SystemTime>, Vec<MpdPeriod>) {
    let doc = roxmltree::Document::parse(text).expect("well-formed XML");
    let mpd = doc.root_element();
    let secs = |d: &str| -> f64 {
        let d = d.strip_prefix("PT").unwrap().strip_suffix('S').unwrap();
        let (m, s) = d.split_once('M').unwrap_or(("0", d));
        m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
    };
    let ast = mpd.attribute("availabilityStartTime").map(|t| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", t, "+%s.%N"])
            .output()
            .unwrap();
        let s: f64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)
    });
    let num =
        |n: roxmltree::Node, a: &str| -> u64 { n.attribute(a).map_or(0, |v| v.parse().unwrap()) };
    let periods = mpd
        .children()
        .filter(|n| n.has_tag_name("Period"))
        .map(|p| {
            let reps = p
                .descendants()
                .filter(|n| n.has_tag_name("SegmentTemplate"));
            let reps = reps.map(|t| {
                let ts = num(t, "timescale") as f64;
                let pto = num(t, "presentationTimeOffset");
                let init = t.attribute("initialization").unwrap().to_owned();
                let (dir, _) = init.split_once('/').unwrap();
                let (mut number, mut at, mut segs) = (num(t, "startNumber"), 0, Vec::new());
                for s in t.descendants().filter(|n| n.has_tag_name("S")) {
                    at = s.attribute("t").map_or(at, |v| v.parse().unwrap());
                    let d = num(s, "d");
                    for _ in 0..=num(s, "r") {
                        let start = (at - pto) as f64 / ts;
                        segs.push((number, start, start + d as f64 / ts));
                        (number, at) = (number + 1, at + d);
                    }
                }
                (dir.to_owned(), init.clone(), segs)
            });
            MpdPeriod {
                id: p.attribute("id").unwrap().to_owned(),
                start: secs(p.attribute("start").unwrap()),
                reps: reps.collect(),
            }
        })
        .collect();
    (mpd.attribute("type").unwrap().to_owned(), ast, periods)
}

/// The manifests of the first run, the second one live, and the second one's final carry
/// the first run's on: same clock origin, its Period kept, a new one after it.
fn check_dash_continued(
    root: &Path,
    before: &m3u8_rs::MediaPlaylist,
    [first, live, last]: [&str; 3],
    read_at: SystemTime,
) {
    let (kind, first_ast, first) = periods(first);
    assert_eq!((kind.as_str(), first.len()), ("dynamic", 1));
    let (kind, ast, live) = periods(live);
    assert_eq!(kind, "dynamic");
    assert_eq!(ast, first_ast, "the same availabilityStartTime");
    let ids: Vec<&str> = live.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["0", "1"], "the first run's Period, then the second's");
    let numbers = |p: &MpdPeriod| -> Vec<u64> { p.reps[0].2.iter().map(|s| s.0).collect() };
    let uris: Vec<String> = before.segments.iter().map(|s| s.uri.clone()).collect();
    let listed: Vec<String> = numbers(&live[0])
        .iter()
        .map(|n| format!("seg_{n:05}.m4s"))
        .collect();
    assert_eq!(listed, uris, "Period 0 lists the first run's segments");
    let end = |p: &MpdPeriod| p.start + p.reps[0].2.last().unwrap().2;
    assert!(
        live[1].start >= end(&live[0]),
        "Period 1 starts after Period 0 ends"
    );
    assert!(numbers(&live[1])[0] > *numbers(&live[0]).last().unwrap());
    // The live edge is on the wall clock: the newest listed segment has ended by the time
    // the manifest was read, and not long before.
    let edge = read_at.duration_since(ast.unwrap()).unwrap().as_secs_f64();
    let newest = end(&live[1]);
    assert!(
        newest <= edge + 0.5 && newest >= edge - 4.0,
        "newest {newest}, edge {edge}"
    );
    for p in &live {
        for (dir, init, segs) in &p.reps {
            assert!(root.join(init).exists(), "{init}");
            for (n, _, _) in segs {
                let file = root.join(dir).join(format!("seg_{n:05}.m4s"));
                assert!(file.exists(), "{}", file.display());
            }
        }
    }
    let (kind, _, last) = periods(last);
    assert_eq!(
        (kind.as_str(), last.len()),
        ("static", 2),
        "the final manifest keeps both runs"
    );
}

/// The playlist under `root` continues `before` (the first run's last playlist).
fn check_continued(root: &Path, before: &m3u8_rs::MediaPlaylist) {
    let dir = root.join("240p");
    let after = read_media(&dir.join("index.m3u8"));
    assert!(after.end_list, "the stopped second run ends its playlist");
    assert_eq!(
        after.media_sequence, before.media_sequence,
        "nothing left the window: the same first sequence number"
    );
    let n = before.segments.len();
    let uris = |p: &m3u8_rs::MediaPlaylist| -> Vec<String> {
        p.segments.iter().map(|s| s.uri.clone()).collect()
    };
    assert_eq!(
        uris(&after)[..n],
        uris(before)[..],
        "the earlier segments are still listed, in order"
    );
    let breaks: Vec<usize> = (0..after.segments.len())
        .filter(|&i| after.segments[i].discontinuity)
        .collect();
    assert_eq!(breaks, [n], "one DISCONTINUITY, where the new run starts");
    // Program date-times: kept for the carried segments, on every new one, and jumping
    // forward (by the time between the runs) only at the DISCONTINUITY.
    let pdt = |p: &m3u8_rs::MediaPlaylist| -> Vec<i64> {
        let each = p.segments.iter().map(|s| s.program_date_time.as_ref());
        each.map(|t| t.expect("a PROGRAM-DATE-TIME").timestamp_millis())
            .collect()
    };
    let (was, now) = (pdt(before), pdt(&after));
    assert_eq!(
        now[..n],
        was[..],
        "the earlier run's date-times are carried on"
    );
    for i in 1..now.len() {
        let step = now[i] - now[i - 1];
        let listed = (f64::from(after.segments[i - 1].duration) * 1000.0) as i64;
        if i == n {
            assert!(
                step > listed,
                "a jump at the new run: {step} ms after {listed} ms"
            );
        } else {
            assert!(
                (step - listed).abs() <= 250,
                "segment {i}: {step} ms vs {listed} ms"
            );
        }
    }
    let number = |uri: &str| -> u64 {
        uri.trim_start_matches("seg_")
            .trim_end_matches(".m4s")
            .parse()
            .unwrap()
    };
    let last_before = number(&before.segments[n - 1].uri);
    assert!(after.segments[n..]
        .iter()
        .all(|s| number(&s.uri) > last_before));
    // Each run's segments decode after that run's own init segment, every frame of them.
    let maps: Vec<String> = after
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref().map(|m| m.uri.clone()))
        .collect();
    assert_eq!(maps.len(), 2, "one EXT-X-MAP per run: {maps:?}");
    for (run, init) in [
        (&after.segments[..n], &maps[0]),
        (&after.segments[n..], &maps[1]),
    ] {
        let mut bytes = std::fs::read(dir.join(init)).expect("the run's init segment");
        for s in run {
            bytes.extend(std::fs::read(dir.join(&s.uri)).expect("a listed segment"));
        }
        let joined = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(joined.path(), bytes).unwrap();
        let v = ffprobe_json(
            joined.path(),
            &["-count_frames", "-show_entries", "stream=nb_read_frames"],
        );
        let frames: u64 = v["streams"][0]["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Every segment but a run's last is a whole second at 30 fps.
        let whole = 30 * (run.len() as u64 - 1);
        assert!(
            frames > whole,
            "{init}: {frames} frames in {} segments",
            run.len()
        );
    }
}

#[test]
fn a_restarted_live_stream_continues_its_playlist_on_the_filesystem() {
    let d = tempfile::tempdir().unwrap();
    two_runs(&d.path().join("out"), || None, 3);
}

#[test]
fn a_restarted_live_stream_continues_its_playlist_through_http_to_nginx() {
    let nginx = Nginx::webdav();
    let base = format!("http://127.0.0.1:{}/live/resume", nginx.port);
    let sink = || -> Option<Arc<dyn SegmentSink>> {
        let s = HttpSink::new(&base).unwrap();
        let s = s.retries(2).timeout(Duration::from_secs(3));
        Some(Arc::new(s))
    };
    two_runs(&nginx.root().join("live/resume"), sink, 3);
}
