//! Local files are opt-in and confined: without `local_files_under` a local source is
//! refused when the config is built; with it, only files that resolve inside the directory
//! (symbolic links and `..` resolved) are read — the source itself at `build()`, and every
//! file it opens while it runs (a local HLS playlist's segments), which fails the stream
//! with `ErrorKind::Forbidden` naming the file and the rule.

use std::path::Path;

use streamvisor::{AbrProfile, Error, ErrorKind, RecoveryPolicy, StreamConfig, StreamState};

use crate::common::{ffmpeg, make_mp4, run_to_end};

fn config(source: &Path, root: Option<&Path>, out: &Path) -> Result<StreamConfig, Error> {
    let mut b = StreamConfig::builder("local", source.to_str().unwrap(), out)
        .profile(
            AbrProfile::from_rungs(&["240p"])
                .unwrap()
                .with_preset("ultrafast"),
        )
        .recovery(RecoveryPolicy::none());
    if let Some(root) = root {
        b = b.local_files_under(root);
    }
    b.build()
}

/// The reason of an `InvalidConfig` on `field`.
fn refused_on(r: Result<StreamConfig, Error>, field: &str) -> String {
    match r {
        Err(Error::InvalidConfig {
            field: f, reason, ..
        }) if f == field => reason,
        other => panic!("expected InvalidConfig on {field}, got {other:?}"),
    }
}

#[test]
fn a_local_source_is_refused_without_the_opt_in_and_outside_its_directory() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let inside = make_mp4(&root, "in.mp4", "320x180", 15, 1, false);
    let outside = make_mp4(d.path(), "other-tenant.mp4", "320x180", 15, 1, false);
    let link = root.join("link.mp4");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let out = d.path().join("out");

    let why = refused_on(config(&inside, None, &out), "source");
    assert!(why.contains("local_files_under"), "names the rule: {why}");
    let file_url = format!("file:{}", inside.display());
    let r = StreamConfig::builder("local", file_url.as_str(), &out).build();
    refused_on(r, "source");

    for escape in [outside.clone(), link, root.join("../other-tenant.mp4")] {
        let why = refused_on(config(&escape, Some(&root), &out), "source");
        assert!(why.contains("outside"), "{escape:?}: {why}");
    }
    let missing_root = refused_on(
        config(&inside, Some(&d.path().join("nope")), &out),
        "local_files_under",
    );
    assert!(missing_root.contains("nope"), "{missing_root}");

    let report = run_to_end(config(&inside, Some(&root), &out).unwrap());
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.frames_in, 15);
}

/// An HLS playlist of `segments` 1 s MPEG-TS segments in `dir` (`seg_N.ts`, `in.m3u8`).
fn local_hls(dir: &Path, segments: u32) -> std::path::PathBuf {
    let playlist = dir.join("in.m3u8");
    let source = format!("testsrc2=size=320x180:rate=15:duration={segments}");
    let pattern = dir.join("seg_%d.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "15",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        pattern.to_str().unwrap(),
        playlist.to_str().unwrap(),
    ]);
    playlist
}

/// A local playlist inside the directory that names a segment outside it (by absolute
/// path, or through a symbolic link inside) fails the stream with `Forbidden`, naming the
/// file; the same playlist with its own segments plays.
#[test]
fn a_local_playlist_cannot_reach_a_file_outside_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let playlist = local_hls(&root, 3);
    let out = d.path().join("out");
    let report = run_to_end(config(&playlist, Some(&root), &out).unwrap());
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(
        report.stats.frames_in, 45,
        "every frame of the local playlist"
    );

    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::copy(root.join("seg_1.ts"), elsewhere.join("seg_1.ts")).unwrap();
    let text = std::fs::read_to_string(&playlist).unwrap();
    let stolen = elsewhere.join("seg_1.ts");
    let by_path = text.replace("seg_1.ts", stolen.to_str().unwrap());
    std::fs::write(root.join("by_path.m3u8"), by_path).unwrap();
    std::os::unix::fs::symlink(&stolen, root.join("linked.ts")).unwrap();
    let by_link = text.replace("seg_1.ts", "linked.ts");
    std::fs::write(root.join("by_link.m3u8"), by_link).unwrap();
    for name in ["by_path.m3u8", "by_link.m3u8"] {
        let config = config(&root.join(name), Some(&root), &out.join(name)).unwrap();
        let report = run_to_end(config);
        assert_eq!(report.state, StreamState::Failed, "{name}");
        let e = report.error.expect("an error");
        assert_eq!(e.kind(), ErrorKind::Forbidden, "{name}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("seg_1.ts") || text.contains("linked.ts"),
            "{text}"
        );
        assert!(text.contains("outside"), "names the rule: {text}");
        assert!(!e.is_recoverable());
    }
}

/// A manager's own bound over every config it admits: a local source outside its directory
/// is refused (whatever the config allowed), one inside runs confined to it.
#[test]
fn a_manager_confines_every_stream_it_admits_to_its_directory() {
    use std::time::Duration;
    use streamvisor::manager::Refusal;
    use streamvisor::Manager;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let inside = make_mp4(&root, "in.mp4", "320x180", 15, 1, false);
    let outside = make_mp4(d.path(), "elsewhere.mp4", "320x180", 15, 1, false);
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = finished.clone();
    let manager = Manager::builder()
        .local_files_under(&root)
        .on_finished(move |r| seen.lock().unwrap().push((r.id.clone(), r.state)))
        .build()
        .unwrap();
    // The config allows the whole disk; the manager does not.
    let wide = |id: &str, source: &Path| {
        let out = d.path().join("out").join(id);
        crate::common::config(id, source.to_str().unwrap(), &out, &["240p"])
    };
    match manager.create_stream(wide("out", &outside)) {
        Err(Error::Refused {
            reason: Refusal::LocalFilesOutside { dir },
            ..
        }) => assert_eq!(dir, root.canonicalize().unwrap()),
        other => panic!("expected LocalFilesOutside, got {other:?}"),
    }
    manager.create_stream(wide("in", &inside)).unwrap();
    assert!(manager.wait_idle(Duration::from_secs(30)));
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished, [("in".to_owned(), StreamState::Stopped)]);
    assert!(
        Manager::builder()
            .local_files_under(d.path().join("missing"))
            .build()
            .is_err(),
        "a directory that does not exist is refused"
    );
}
