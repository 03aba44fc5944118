//! A whole ladder uploaded through `HttpSink`: to nginx's WebDAV module (every file there,
//! byte for byte what a filesystem run makes of the same source, bar the timing), to the
//! test-owned origin (a playlist is never PUT before the segments it lists; failing PUTs are
//! retried and the stream goes on), and to a dead origin (the stream fails with an output
//! error naming the URL, its secrets redacted).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use streamvisor::sink::HttpSink;
use streamvisor::{AbrProfile, Container, ErrorKind, StreamConfig, StreamState};

use crate::common::{fixed_port, run_to_end};
use crate::origin::Origin;
use crate::servers::Nginx;

const SOURCE: &str = "lavfi:testsrc2=size=640x360:rate=30:duration=6;\
                      sine=frequency=440:sample_rate=48000:duration=6";

fn config(id: &str, sink: HttpSink) -> StreamConfig {
    let profile = AbrProfile::from_rungs(&["360p", "240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_container(Container::Fmp4)
        .with_dash(true);
    StreamConfig::builder(id, SOURCE, format!("/nonexistent/sv-put/{id}"))
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .sink(Arc::new(sink))
        .build()
        .unwrap()
}

fn quick(sink: HttpSink) -> HttpSink {
    sink.retries(4)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .timeout(Duration::from_secs(3))
}

#[test]
fn a_whole_ladder_is_uploaded_to_nginx_and_reads_back_whole() {
    let nginx = Nginx::webdav();
    let base = format!("http://127.0.0.1:{}/live/put1", nginx.port);
    let report = run_to_end(config("put1", quick(HttpSink::new(&base).unwrap())));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let root = nginx.root().join("live/put1");
    // Everything a player needs is on the origin, and nothing was written locally.
    assert!(!std::path::Path::new("/nonexistent/sv-put").exists());
    for f in [
        "master.m3u8",
        "manifest.mpd",
        "360p/index.m3u8",
        "audio-128k/index.m3u8",
    ] {
        assert!(root.join(f).exists(), "{f} on the origin");
    }
    for rendition in ["360p", "240p", "audio-128k"] {
        let media = crate::common::read_media(&root.join(rendition).join("index.m3u8"));
        assert!(media.end_list);
        for s in &media.segments {
            assert!(
                root.join(rendition).join(&s.uri).exists(),
                "{rendition}/{}",
                s.uri
            );
        }
    }
    // The uploaded ladder is whole: every frame of each rung, read back through the origin.
    let frames = crate::common::video_pts(&root.join("360p/index.m3u8")).len();
    assert_eq!(frames, 180, "every frame of 6 s at 30 fps");
}

#[test]
fn a_playlist_is_never_put_before_the_segments_it_lists() {
    let origin = Origin::start();
    // The first six PUTs of a seg_00002 fail (two tries of each rendition's, in whatever
    // order they come): retried, the stream carries on.
    origin.fail_first(6, "PUT", "seg_00002", 500);
    let sink = quick(HttpSink::new(&origin.url("out")).unwrap());
    let report = run_to_end(config("put2", sink));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let log = origin.requests();
    let mut stored: HashSet<String> = HashSet::new();
    let mut playlists = 0;
    for r in log.iter().filter(|r| r.method == "PUT") {
        if r.status != 200 && r.status != 201 && r.status != 204 {
            continue;
        }
        let path = r.path.trim_start_matches("/out/").to_owned();
        if path.ends_with("index.m3u8") {
            playlists += 1;
            // Every segment and init segment this version lists was stored before it.
            let dir = path.trim_end_matches("index.m3u8");
            let text = r.text.clone().expect("a playlist's body");
            for line in text.lines() {
                let uri = line
                    .strip_prefix("#EXT-X-MAP:URI=")
                    .map(|u| u.trim_matches('"'))
                    .or((!line.starts_with('#') && !line.is_empty()).then_some(line));
                if let Some(uri) = uri {
                    let file = format!("{dir}{uri}");
                    assert!(
                        stored.contains(&file),
                        "{path} listed {file} before it was stored"
                    );
                }
            }
        }
        stored.insert(path);
    }
    assert!(
        playlists >= 9,
        "a playlist PUT per segment of each rendition: {playlists}"
    );
    let failed = log.iter().filter(|r| r.status == 500).count();
    assert_eq!(
        failed, 6,
        "seg_00002 of each of three renditions failed twice"
    );
    assert!(report.stats.errors == 0, "retried uploads are not errors");
}

#[test]
fn a_dead_origin_fails_the_stream_with_an_output_error_naming_the_redacted_url() {
    let port = fixed_port(); // nothing listens there
    let base = format!("http://user:hunter2@127.0.0.1:{port}/out?token=s3cret");
    let sink = HttpSink::new(&base)
        .unwrap()
        .retries(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .timeout(Duration::from_secs(1));
    let report = run_to_end(config("put3", sink));
    assert_eq!(report.state, StreamState::Failed);
    let e = report.error.expect("an error");
    assert_eq!(e.kind(), ErrorKind::Output, "{e}");
    let text = format!("{e} {:?} {}", e, e.full_message());
    assert!(text.contains(&format!("127.0.0.1:{port}/out")), "{text}");
    for secret in ["hunter2", "s3cret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn transcode_put_uploads_an_av1_ladder_with_its_dash_manifest() {
    let nginx = Nginx::webdav();
    let url = format!("http://127.0.0.1:{}/vod/t1", nginx.port);
    let out = std::process::Command::new(crate::security::example("transcode"))
        .arg("lavfi:testsrc2=size=640x360:rate=30:duration=4;sine=duration=4")
        .args([
            "--allow-lavfi",
            "--ladder",
            "360p:av1,240p",
            "--preset",
            "ultrafast",
        ])
        .args(["--dash", "--put", &url, "--out", "/nonexistent/sv-put/t1"])
        .env("SVT_LOG", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The summary names the origin, not the --out name.
    assert!(err.contains(&format!("MB uploaded to {url}\n")), "{err}");
    assert!(!err.contains("/nonexistent"), "{err}");
    let root = nginx.root().join("vod/t1");
    let master = std::fs::read_to_string(root.join("master.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"av01."), "{master}");
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    let mpd = std::fs::read_to_string(root.join("manifest.mpd")).unwrap();
    let (kind, _, reps) = crate::cmaf::parse_mpd(&mpd);
    assert_eq!((kind.as_str(), reps.len()), ("static", 3));
    for rep in reps {
        for i in 0..rep.segments.len() as u64 {
            let file = crate::cmaf::media_file(&rep.media, rep.start_number + i);
            assert!(root.join(&file).exists(), "{file} on the origin");
        }
    }
}

/// A write-once store (every DELETE refused, as PUT-only presigned URLs answer) does not take
/// a live stream down: each playlist lists the newest segment, the refusals are counted, and
/// the stream stops cleanly with every listed segment on the origin.
#[test]
fn a_live_stream_runs_on_through_an_origin_that_refuses_every_delete() {
    use streamvisor::{config::PlaylistMode, Hooks, OutputEvent, Stream};
    let nginx = Nginx::webdav();
    let base = format!("http://127.0.0.1:{}/nodelete/live", nginx.port);
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(3);
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = failures.clone();
    let hooks = Hooks::new().on_output(move |ev| {
        if let OutputEvent::DeleteFailed {
            path,
            attempt,
            given_up,
            error,
            ..
        } = ev
        {
            seen.lock()
                .unwrap()
                .push((path.clone(), *attempt, *given_up, error.clone()));
        }
    });
    // In real time, as a live source delivers.
    let source = "lavfi:testsrc2=size=426x240:rate=30,realtime";
    let config = StreamConfig::builder("nodelete", source, "x")
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .sink(Arc::new(quick(HttpSink::new(&base).unwrap())))
        .build()
        .unwrap();
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let playlist = nginx.root().join("nodelete/live/240p/index.m3u8");
    // Deletes start once a segment has been out of the window for 4 s of media; each is
    // tried 5 times with backoff (0.5 + 1 + 2 + 4 s) before it is given up.
    crate::common::wait_until("a delete given up", Duration::from_secs(90), || {
        running.stats().deletes_given_up >= 1
    });
    assert_eq!(running.state(), StreamState::Running);
    let media = crate::common::read_media(&playlist);
    assert_eq!(media.segments.len(), 3, "the window holds");
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let stats = &report.stats;
    assert!(
        stats.deletes_refused >= 5,
        "each refusal counted: {stats:?}"
    );
    assert!(
        stats.errors >= stats.deletes_refused,
        "and counted as errors"
    );
    // The first expired segment: refused four times and retried, then given up.
    let failures = failures.lock().unwrap();
    let first = &failures[0].0;
    let tries: Vec<(u32, bool)> = failures
        .iter()
        .filter(|f| &f.0 == first)
        .map(|f| (f.1, f.2))
        .collect();
    assert_eq!(
        tries,
        [(1, false), (2, false), (3, false), (4, false), (5, true)],
        "{failures:?}"
    );
    assert!(
        failures[0].3.contains("405"),
        "the store's answer: {failures:?}"
    );
    let media = crate::common::read_media(&playlist);
    let dir = playlist.parent().unwrap();
    let last = media.segments.last().unwrap();
    assert!(
        dir.join(&last.uri).exists(),
        "the newest segment is listed and stored"
    );
    let written = report.stats.variants[0].segments as usize;
    let stored = std::fs::read_dir(dir).unwrap().count() - 1;
    assert_eq!(
        stored, written,
        "nothing was deleted: every segment is still there"
    );
}

/// An application's sink whose deletes block until the test lets them go (a store that
/// takes its whole timeout to answer a DELETE).
#[derive(Debug)]
struct SlowDeletes {
    inner: streamvisor::sink::FsSink,
    /// Dropped by the test to let every delete go.
    release: crossbeam_channel::Receiver<()>,
    /// Told when a delete starts.
    started: crossbeam_channel::Sender<String>,
}

impl streamvisor::sink::SegmentSink for SlowDeletes {
    fn create(&self, path: &str) -> std::io::Result<Box<dyn streamvisor::sink::SinkFile>> {
        self.inner.create(path)
    }
    fn replace(&self, path: &str, contents: &[u8]) -> std::io::Result<()> {
        self.inner.replace(path, contents)
    }
    fn delete(&self, path: &str) -> std::io::Result<()> {
        let _ = self.started.try_send(path.to_owned());
        let _ = self.release.recv_timeout(Duration::from_secs(120));
        self.inner.delete(path)
    }
    fn location(&self, path: &str) -> String {
        self.inner.location(path)
    }
}

/// Deletes run off the renditions' threads: while a delete hangs in the sink, segments
/// keep being written and listed, and once it returns the expired files go.
#[test]
fn a_delete_that_hangs_holds_up_no_segment() {
    use streamvisor::{config::PlaylistMode, Stream};
    let dir = tempfile::tempdir().unwrap();
    let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
    let (started, deletes) = crossbeam_channel::unbounded();
    let sink = SlowDeletes {
        inner: streamvisor::sink::FsSink::new(dir.path(), false),
        release,
        started,
    };
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(3);
    let config = StreamConfig::builder("slowdelete", "lavfi:testsrc2=size=426x240:rate=30", "x")
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .sink(Arc::new(sink))
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    let first = deletes
        .recv_timeout(Duration::from_secs(60))
        .expect("a delete starts");
    let segments = || running.stats().variants[0].segments;
    let at_first = segments();
    crate::common::wait_until(
        "ten more segments while the delete hangs",
        Duration::from_secs(60),
        || segments() >= at_first + 10,
    );
    assert!(
        dir.path().join(&first).exists(),
        "the hung delete has not happened"
    );
    let playlist = crate::common::read_media(&dir.path().join("240p/index.m3u8"));
    assert_eq!(playlist.segments.len(), 3, "the window slides on");
    drop(release_tx);
    crate::common::wait_until("the expired file deleted", Duration::from_secs(30), || {
        !dir.path().join(&first).exists()
    });
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
}
