//! Bad input gets a typed error that says what is wrong: no panic, no hang, and no
//! master playlist left claiming a ladder that does not exist.

use std::path::Path;

use streamvisor::{AbrProfile, Error, ErrorKind, StreamConfig, StreamState};

use crate::common::*;

fn run_failing(source: &str, out: &Path) -> Error {
    let report = run_to_end(config("bad", source, out, &["360p"]));
    assert_eq!(report.state, StreamState::Failed);
    assert!(
        !out.join("master.m3u8").exists(),
        "no master.m3u8 after a failed start"
    );
    // The report names the stream, once; the error is about the source.
    assert_eq!(report.id, "bad");
    report.error.expect("a failed stream carries its error")
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.mp4");
    let e = run_failing(missing.to_str().unwrap(), &dir.path().join("out"));
    assert_eq!(e.kind(), ErrorKind::SourceIo, "{e}");
    assert!(e.to_string().contains("No such file"), "{e}");
    assert!(e.to_string().starts_with("source "), "{e}");
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mp4");
    // Deterministic pseudo-random bytes (xorshift), no header any demuxer recognises.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    let e = run_failing(junk.to_str().unwrap(), &dir.path().join("out"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let e = run_failing(empty.to_str().unwrap(), &dir.path().join("out"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn audio_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let m4a = dir.path().join("tone.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "aac",
        m4a.to_str().unwrap(),
    ]);
    let e = run_failing(m4a.to_str().unwrap(), &dir.path().join("out"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no video stream"), "{e}");
}

#[test]
fn a_stale_master_from_an_earlier_run_is_not_left_claiming_a_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("master.m3u8"), "#EXTM3U\n").unwrap();
    let empty = dir.path().join("empty.ts");
    std::fs::write(&empty, b"").unwrap();
    let _ = run_failing(empty.to_str().unwrap(), &out);
}

#[test]
fn invalid_configs_are_refused_with_the_field() {
    let cases: Vec<(Result<StreamConfig, Error>, &str)> = vec![
        (
            StreamConfig::builder("../etc", "x.mp4", "o")
                .local_files_under("/")
                .build(),
            "id",
        ),
        (
            StreamConfig::builder("ok", "x.mp4", "o")
                .local_files_under("/")
                .profile(AbrProfile::new(vec![]))
                .build(),
            "profile.variants",
        ),
        (
            StreamConfig::builder("ok", "x.mp4", "o")
                .local_files_under("/")
                .profile(AbrProfile::standard().with_preset("ludicrous"))
                .build(),
            "profile.variants[0].preset",
        ),
    ];
    for (r, field) in cases {
        match r {
            Err(e @ Error::InvalidConfig { .. }) => {
                assert_eq!(e.kind(), ErrorKind::InvalidConfig);
                assert!(e.to_string().contains(field), "{e} names {field}");
            }
            other => panic!("expected InvalidConfig for {field}, got {other:?}"),
        }
    }
    assert!(AbrProfile::from_rungs(&["4320p"]).is_err());
}
