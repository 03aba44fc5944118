//! A live stream restarted into the same output carries its playlists on, through whatever
//! sink it writes to: the same test on the filesystem (`FsSink`, the default) and on nginx's
//! WebDAV through `HttpSink` (which can read the playlist back but not list a directory).
//! The second run continues the first run's sequence numbers after one DISCONTINUITY, the
//! first run's segments stay listed and readable with their own init segment, and every
//! frame of both runs decodes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(30);
        let b = StreamConfig::builder("resume", format!("tcp://127.0.0.1:{port}"), root)
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
    let server = LiveServer::start_on(port);
    wait_until("the source", Duration::from_secs(10), || is_listening(port));
    let second = Stream::new(cfg()).start().unwrap();
    let want = before.segments.len() + more;
    wait_until("the second run's segments", Duration::from_secs(60), || {
        read_media(&playlist).segments.len() >= want
    });
    let report = second.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    drop(server);
    check_continued(root, &before);
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
