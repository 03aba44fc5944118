//! The HLS output layout: live sliding windows and playlists never seen half-written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamvisor::{AbrProfile, PlaylistMode, StreamConfig, StreamState};

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
    .allow_generated_sources(true)
    .profile(profile)
    .playlist_mode(PlaylistMode::Live)
    .build()
    .unwrap();
    let report = run_to_end(cfg);
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
    // The window plus two segments of grace for clients still fetching them.
    assert_eq!(on_disk.len(), 5, "{on_disk:?}");
    assert!(!on_disk.contains(&"seg_00000.ts".to_owned()));
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
