//! The HLS output layout: live sliding windows and playlists never seen half-written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamvisor::config::PlaylistMode;
use streamvisor::{AbrProfile, StreamConfig, StreamState};

use crate::common::*;

#[test]
fn live_playlists_keep_a_sliding_window_and_delete_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live");
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(3);
    let cfg = StreamConfig::builder(
        "window",
        "lavfi:testsrc2=size=426x240:rate=30:duration=10",
        &out,
    )
    .local_files_under("/")
    .allow_generated_sources(true)
    .profile(profile)
    .playlist_mode(PlaylistMode::Live)
    .build()
    .unwrap();
    let watcher = PlaylistWatcher::start(out.join("240p/index.m3u8"));
    let report = run_to_end(cfg);
    assert!(watcher.finish() > 0);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let media = read_media(&out.join("240p/index.m3u8"));
    assert_eq!(media.segments.len(), 3, "the window");
    assert_eq!(
        media.media_sequence, 7,
        "10 one-second segments, the last 3 listed"
    );
    assert!(
        media.playlist_type.is_none(),
        "a live playlist has no EVENT/VOD type"
    );
    let on_disk: Vec<String> = std::fs::read_dir(out.join("240p"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ts"))
        .collect();
    // A segment leaves the disk one playlist duration (3 s) plus a target duration (1 s)
    // after it left the playlist: the window plus four segments of grace for clients
    // still fetching them.
    assert_eq!(on_disk.len(), 3 + 4, "{on_disk:?}");
    for gone in ["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"] {
        assert!(!on_disk.contains(&gone.to_owned()), "{gone}: {on_disk:?}");
    }
    for s in &media.segments {
        assert!(out.join("240p").join(&s.uri).exists());
    }
}

#[test]
fn playlists_are_never_seen_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("atomic");
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_segment_duration(Duration::from_millis(500));
    let cfg = StreamConfig::builder(
        "atomic",
        "lavfi:testsrc2=size=426x240:rate=30:duration=8",
        &out,
    )
    .local_files_under("/")
    .allow_generated_sources(true)
    .profile(profile)
    .build()
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let playlist = out.join("240p/index.m3u8");
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                if let Ok(text) = std::fs::read_to_string(&playlist) {
                    assert!(
                        text.starts_with("#EXTM3U\n") && text.ends_with('\n'),
                        "partial playlist: {text:?}"
                    );
                    let last = text.lines().last().unwrap();
                    assert!(
                        last.ends_with(".ts") || last == "#EXT-X-ENDLIST",
                        "partial playlist: {text:?}"
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    let report = run_to_end(cfg);
    done.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("no partial playlist seen");
    assert_eq!(report.state, StreamState::Stopped);
    assert!(reads > 0);
    assert_eq!(read_media(&out.join("240p/index.m3u8")).segments.len(), 16);
}

/// The segment number in `seg_NNNNN.ts`.
fn seg_number(uri: &str) -> u64 {
    uri.trim_start_matches("seg_")
        .trim_end_matches(".ts")
        .parse()
        .unwrap()
}

/// Waits until the 240p playlist of `out` lists at least `n` segments.
fn wait_for_segments(out: &std::path::Path, n: usize) {
    let path = out.join("240p/index.m3u8");
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if std::fs::read(&path).is_ok_and(|b| {
            matches!(m3u8_rs::parse_playlist_res(&b), Ok(m3u8_rs::Playlist::MediaPlaylist(m)) if m.segments.len() >= n)
        }) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path:?}: fewer than {n} segments after 30 s");
}

#[test]
fn a_restarted_live_stream_continues_its_playlist() {
    use streamvisor::{RecoveryPolicy, Stream};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("restart");
    let server = LiveServer::start();
    let port = server.port;
    let cfg = || {
        StreamConfig::builder("restart", format!("tcp://127.0.0.1:{port}"), &out)
            .local_files_under("/")
            .profile(
                AbrProfile::from_rungs(&["240p"])
                    .unwrap()
                    .with_preset("ultrafast")
                    .with_segment_duration(Duration::from_secs(1))
                    .with_live_window(10),
            )
            .playlist_mode(PlaylistMode::Live)
            .recovery(
                RecoveryPolicy::default()
                    .with_max_attempts(1)
                    .with_backoff(Duration::from_millis(50), Duration::from_millis(50)),
            )
            .build()
            .unwrap()
    };
    // Every version of the playlist, across both runs, keeps the sequence rules.
    let watcher = PlaylistWatcher::start(out.join("240p/index.m3u8"));
    // First run: the source dies, the stream fails (no ENDLIST), as before a restart.
    let first = Stream::new(cfg()).start().unwrap();
    wait_for_segments(&out, 2);
    drop(server);
    let report = first.wait();
    assert_eq!(report.state, StreamState::Failed);
    let before = read_media(&out.join("240p/index.m3u8"));
    assert!(!before.end_list);
    let last_before = seg_number(&before.segments.last().unwrap().uri);
    // The restart continues the same directory.
    let server = LiveServer::start_on(port);
    let t = std::time::Instant::now();
    while !is_listening(port) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = Stream::new(cfg()).start().unwrap();
    wait_for_segments(&out, before.segments.len() + 2);
    let _ = second.stop(Duration::from_secs(5));
    drop(server);
    assert!(watcher.finish() > 2);
    let after = read_media(&out.join("240p/index.m3u8"));
    assert!(after.media_sequence >= before.media_sequence);
    let uris: Vec<&str> = after.segments.iter().map(|s| s.uri.as_str()).collect();
    let old: Vec<&str> = before.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(
        &uris[..old.len()],
        &old[..],
        "the earlier segments are still listed"
    );
    let first_new = &after.segments[old.len()];
    assert!(
        first_new.discontinuity,
        "a discontinuity where the new run starts"
    );
    for s in &after.segments[old.len()..] {
        assert!(
            seg_number(&s.uri) > last_before,
            "{} reuses a number",
            s.uri
        );
        assert!(out.join("240p").join(&s.uri).exists());
    }
    assert!(out.join("master.m3u8").exists());
}

/// A crash can leave a segment written but never listed. The next run carries the
/// playlist on with the sequence right after its last listed segment, in files past every
/// one on disk: each sequence number names one URI across both runs (RFC 8216 §6.2.1).
#[test]
fn a_segment_left_unlisted_by_a_crash_shifts_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crash");
    let cfg = |source: &str| {
        StreamConfig::builder("crash", source, &out)
            .local_files_under("/")
            .allow_generated_sources(true)
            .profile(
                AbrProfile::from_rungs(&["240p"])
                    .unwrap()
                    .with_preset("ultrafast")
                    .with_segment_duration(Duration::from_secs(1))
                    .with_live_window(3),
            )
            .playlist_mode(PlaylistMode::Live)
            .build()
            .unwrap()
    };
    let watcher = PlaylistWatcher::start(out.join("240p/index.m3u8"));
    // First run: ends without ENDLIST (aborted, as a crash would leave it).
    let first = streamvisor::Stream::new(cfg("lavfi:testsrc2=size=426x240:rate=30"))
        .start()
        .unwrap();
    wait_for_segments(&out, 2);
    let _ = first.abort();
    let before = read_media(&out.join("240p/index.m3u8"));
    assert!(!before.end_list);
    let last_listed = before.media_sequence + before.segments.len() as u64 - 1;
    // ... and the segment it was writing when it "crashed", on disk but never listed.
    let highest_on_disk = std::fs::read_dir(out.join("240p"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".ts").then(|| seg_number(&name))
        })
        .max()
        .unwrap();
    let stray = out.join(format!("240p/seg_{:05}.ts", highest_on_disk + 1));
    std::fs::write(&stray, b"partial").unwrap();

    let report = run_to_end(cfg("lavfi:testsrc2=size=426x240:rate=30:duration=6"));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert!(watcher.finish() > 2);
    let written = report.stats.variants[0].segments;
    let after = read_media(&out.join("240p/index.m3u8"));
    let last = after.media_sequence + after.segments.len() as u64 - 1;
    assert_eq!(
        last,
        last_listed + written,
        "the new run's segments follow the last listed one ({last_listed}) without a gap"
    );
    for s in &after.segments {
        assert!(
            seg_number(&s.uri) > highest_on_disk + 1,
            "{} reuses a file",
            s.uri
        );
        assert!(out.join("240p").join(&s.uri).exists());
    }
    assert!(!stray.exists(), "the unlisted file is deleted");
}

/// A sink over a directory that refuses to write one file.
#[derive(Debug)]
struct Refuses {
    inner: streamvisor::sink::FsSink,
    file: &'static str,
}

impl streamvisor::sink::SegmentSink for Refuses {
    fn create(&self, path: &str) -> std::io::Result<Box<dyn streamvisor::sink::SinkFile>> {
        self.inner.create(path)
    }
    fn replace(&self, path: &str, contents: &[u8]) -> std::io::Result<()> {
        if path == self.file {
            return Err(std::io::Error::other("the store refused it"));
        }
        self.inner.replace(path, contents)
    }
    fn delete(&self, path: &str) -> std::io::Result<()> {
        self.inner.delete(path)
    }
    fn location(&self, path: &str) -> String {
        self.inner.location(path)
    }
}

/// A final master playlist or DASH manifest that cannot be written is the stream's output
/// error, never a silent `Stopped` with the file missing.
#[test]
fn a_final_manifest_that_cannot_be_written_is_reported() {
    use streamvisor::{Container, ErrorKind};
    for file in ["manifest.mpd", "master.m3u8"] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Refuses {
            inner: streamvisor::sink::FsSink::new(dir.path(), false),
            file,
        };
        let profile = AbrProfile::from_rungs(&["240p"])
            .unwrap()
            .with_preset("ultrafast")
            .with_container(Container::Fmp4)
            .with_dash(true);
        let source = "lavfi:testsrc2=size=426x240:rate=30:duration=3;sine=duration=3";
        let config = StreamConfig::builder("lost", source, dir.path())
            .local_files_under("/")
            .allow_generated_sources(true)
            .profile(profile)
            .sink(Arc::new(sink))
            .build()
            .unwrap();
        let report = run_to_end(config);
        assert_eq!(report.state, StreamState::Failed, "{file}");
        let error = report.error.expect("the report says what was lost");
        assert_eq!(error.kind(), ErrorKind::Output);
        assert!(error.to_string().contains(file), "{file}: {error}");
        assert!(!dir.path().join(file).exists());
        // Everything else was written.
        let other = ["manifest.mpd", "master.m3u8"]
            .into_iter()
            .find(|f| *f != file);
        assert!(dir.path().join(other.unwrap()).exists());
        assert!(read_media(&dir.path().join("240p/index.m3u8")).end_list);
    }
}

/// How [`Moody`]'s files answer a write.
#[derive(Debug, Clone, Copy)]
enum Mood {
    /// Every other write is cut short by `Interrupted` (a signal).
    Interrupted,
    /// The third write panics.
    Panics,
}

/// A sink over a directory whose files misbehave in writes as its mood says.
#[derive(Debug)]
struct Moody {
    inner: streamvisor::sink::FsSink,
    mood: Mood,
}

struct MoodyFile {
    inner: Box<dyn streamvisor::sink::SinkFile>,
    mood: Mood,
    calls: u32,
}

impl std::io::Write for MoodyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.calls += 1;
        match self.mood {
            Mood::Interrupted if self.calls % 2 == 0 => Err(std::io::ErrorKind::Interrupted.into()),
            Mood::Panics if self.calls == 3 => panic!("the disk is on fire"),
            _ => self.inner.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl streamvisor::sink::SinkFile for MoodyFile {
    fn finish(self: Box<Self>) -> std::io::Result<u64> {
        self.inner.finish()
    }
}

impl streamvisor::sink::SegmentSink for Moody {
    fn create(&self, path: &str) -> std::io::Result<Box<dyn streamvisor::sink::SinkFile>> {
        let inner = self.inner.create(path)?;
        Ok(Box::new(MoodyFile {
            inner,
            mood: self.mood,
            calls: 0,
        }))
    }
    fn replace(&self, path: &str, contents: &[u8]) -> std::io::Result<()> {
        self.inner.replace(path, contents)
    }
    fn delete(&self, path: &str) -> std::io::Result<()> {
        self.inner.delete(path)
    }
    fn location(&self, path: &str) -> String {
        self.inner.location(path)
    }
}

fn moody_run(dir: &std::path::Path, mood: Mood) -> streamvisor::StreamReport {
    let profile = AbrProfile::from_rungs(&["240p"])
        .unwrap()
        .with_preset("ultrafast");
    let config = StreamConfig::builder(
        "moody",
        "lavfi:testsrc2=size=426x240:rate=30:duration=3",
        dir,
    )
    .local_files_under("/")
    .allow_generated_sources(true)
    .profile(profile)
    .sink(Arc::new(Moody {
        inner: streamvisor::sink::FsSink::new(dir, false),
        mood,
    }))
    .build()
    .unwrap();
    run_to_end(config)
}

/// `Interrupted` from a sink's write is tried again (the `io::Write` convention): the
/// output is whole, every frame there.
#[test]
fn a_sink_write_cut_short_by_a_signal_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let report = moody_run(dir.path(), Mood::Interrupted);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let probe = probe_video(&dir.path().join("240p/index.m3u8"));
    assert_eq!(probe.frames, 90, "every frame of 3 s at 30 fps");
}

/// A sink whose write panics fails the stream with an error that says so, the panic's
/// message kept.
#[test]
fn a_panic_in_a_sink_write_is_reported_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let report = moody_run(dir.path(), Mood::Panics);
    assert_eq!(report.state, StreamState::Failed);
    let error = report.error.expect("an error");
    assert_eq!(error.kind(), streamvisor::ErrorKind::Output, "{error}");
    // The sink's error is the source (Display names the file).
    let source = std::error::Error::source(&error).map(ToString::to_string);
    let text = source.unwrap_or_default();
    assert!(
        text.contains("panicked: the disk is on fire"),
        "{error}: {text}"
    );
}
