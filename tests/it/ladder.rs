//! Ladders really transcoded, checked with ffprobe: sizes, codecs, frame counts equal to the
//! source's, a keyframe at every segment boundary in every variant (on the same
//! timestamps), ENDLIST, and the master playlist's attributes.

use std::path::Path;

use streamvisor::{AbrProfile, StreamConfig, StreamState, VariantProfile};

use crate::common::*;

/// One expected variant: name, width, height, frames.
struct Expect<'a> {
    name: &'a str,
    width: u64,
    height: u64,
    frames: u64,
}

fn check_ladder(out: &Path, expect: &[Expect], audio: bool, fps: f64) {
    let master = read_master(out);
    assert_eq!(
        master.variants.len(),
        expect.len(),
        "master lists every variant and only those"
    );
    let mut boundaries: Option<Vec<f64>> = None;
    for (e, mv) in expect.iter().zip(&master.variants) {
        assert_eq!(mv.uri, format!("{}/index.m3u8", e.name));
        let res = mv.resolution.as_ref().expect("RESOLUTION");
        assert_eq!(
            (res.width, res.height),
            (e.width, e.height),
            "{}: RESOLUTION",
            e.name
        );
        assert!(mv.bandwidth > 0, "{}: BANDWIDTH", e.name);
        let avg = mv.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(
            avg > 0 && avg <= mv.bandwidth,
            "{}: AVERAGE-BANDWIDTH {avg} vs {}",
            e.name,
            mv.bandwidth
        );
        let codecs = mv.codecs.as_deref().expect("CODECS");
        assert!(codecs.starts_with("avc1."), "{}: CODECS {codecs}", e.name);
        assert_eq!(
            codecs.contains("mp4a.40.2"),
            audio,
            "{}: CODECS {codecs}",
            e.name
        );
        let rate = mv.frame_rate.expect("FRAME-RATE");
        assert!(
            (rate - fps).abs() < 0.01,
            "{}: FRAME-RATE {rate} vs {fps}",
            e.name
        );

        let playlist_path = out.join(e.name).join("index.m3u8");
        let media = read_media(&playlist_path);
        assert!(media.end_list, "{}: ENDLIST", e.name);
        assert!(!media.segments.is_empty());
        let probe = probe_video(&playlist_path);
        assert_eq!(
            probe,
            VideoProbe {
                codec: "h264".into(),
                width: e.width,
                height: e.height,
                frames: e.frames
            },
            "{}: ffprobe of the whole playlist",
            e.name
        );
        let mut starts = Vec::new();
        for seg in &media.segments {
            let path = out.join(e.name).join(&seg.uri);
            let (pts, key) = first_video_packet(&path);
            assert!(
                key,
                "{}: {} does not start with a keyframe",
                e.name, seg.uri
            );
            starts.push((pts * 1000.0).round() / 1000.0);
            let codecs = stream_codecs(&path);
            assert_eq!(
                codecs.contains(&"aac".to_owned()),
                audio,
                "{}: {} streams {codecs:?}",
                e.name,
                seg.uri
            );
            assert!(
                seg.duration > 0.0 && seg.duration as u64 <= media.target_duration,
                "{}: EXTINF",
                e.name
            );
        }
        match &boundaries {
            None => boundaries = Some(starts),
            Some(b) => assert_eq!(
                b, &starts,
                "{}: segment boundaries differ from the first variant",
                e.name
            ),
        }
    }
}

#[test]
fn lavfi_source_makes_an_aligned_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = "lavfi:testsrc2=size=1280x720:rate=30:duration=4;sine=frequency=440:sample_rate=48000:duration=4";
    let report = run_to_end(config("lavfi", source, &out, &["720p", "480p", "360p"]));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.frames_in, 120);
    check_ladder(
        &out,
        &[
            Expect {
                name: "720p",
                width: 1280,
                height: 720,
                frames: 120,
            },
            Expect {
                name: "480p",
                width: 854,
                height: 480,
                frames: 120,
            },
            Expect {
                name: "360p",
                width: 640,
                height: 360,
                frames: 120,
            },
        ],
        true,
        30.0,
    );
    let first = read_media(&out.join("720p/index.m3u8"));
    assert_eq!(first.segments.len(), 2, "4 s in 2 s segments");
}

#[test]
fn mp4_source_leaves_out_taller_rungs() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "in.mp4", "1280x720", 30, 5, true);
    let source_frames = probe_video(&src).frames;
    assert_eq!(source_frames, 150);
    let out = dir.path().join("out");
    let report = run_to_end(config(
        "mp4",
        src.to_str().unwrap(),
        &out,
        &["1080p", "720p", "360p"],
    ));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.stats.frames_in, source_frames);
    assert!(
        !out.join("1080p").exists(),
        "a rung taller than the source is left out"
    );
    check_ladder(
        &out,
        &[
            Expect {
                name: "720p",
                width: 1280,
                height: 720,
                frames: source_frames,
            },
            Expect {
                name: "360p",
                width: 640,
                height: 360,
                frames: source_frames,
            },
        ],
        true,
        30.0,
    );
    let seg_count = read_media(&out.join("360p/index.m3u8")).segments.len();
    assert_eq!(seg_count, 3, "5 s in 2 s segments: 2 + 2 + 1");
    // Per-variant stats agree with what is on disk.
    for v in &report.stats.variants {
        assert_eq!(v.frames_out, source_frames, "{}", v.name);
        let on_disk: u64 = std::fs::read_dir(out.join(&v.name))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(
            v.bytes_out, on_disk,
            "{}: bytes_out equals the segment bytes on disk",
            v.name
        );
    }
}

#[test]
fn taller_rungs_can_be_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let source = "lavfi:testsrc2=size=640x360:rate=25:duration=2";
    let profile = AbrProfile::from_rungs(&["480p", "360p"])
        .unwrap()
        .with_preset("ultrafast")
        .with_keep_taller_rungs(true);
    let cfg = StreamConfig::builder("keep", source, &out)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .build()
        .unwrap();
    let report = run_to_end(cfg);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    check_ladder(
        &out,
        &[
            Expect {
                name: "480p",
                width: 854,
                height: 480,
                frames: 50,
            },
            Expect {
                name: "360p",
                width: 640,
                height: 360,
                frames: 50,
            },
        ],
        false,
        25.0,
    );
}

#[test]
fn video_only_source_gives_a_video_only_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "silent.mp4", "640x360", 30, 3, false);
    let out = dir.path().join("out");
    let report = run_to_end(config(
        "silent",
        src.to_str().unwrap(),
        &out,
        &["360p", "240p"],
    ));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    check_ladder(
        &out,
        &[
            Expect {
                name: "360p",
                width: 640,
                height: 360,
                frames: 90,
            },
            Expect {
                name: "240p",
                width: 426,
                height: 240,
                frames: 90,
            },
        ],
        false,
        30.0,
    );
}

#[test]
fn four_by_three_source_keeps_its_aspect() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "4x3.mp4", "640x480", 30, 2, true);
    let out = dir.path().join("out");
    let report = run_to_end(config(
        "fourthree",
        src.to_str().unwrap(),
        &out,
        &["480p", "360p", "240p"],
    ));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    check_ladder(
        &out,
        &[
            Expect {
                name: "480p",
                width: 640,
                height: 480,
                frames: 60,
            },
            Expect {
                name: "360p",
                width: 480,
                height: 360,
                frames: 60,
            },
            Expect {
                name: "240p",
                width: 320,
                height: 240,
                frames: 60,
            },
        ],
        true,
        30.0,
    );
}

#[test]
fn sixty_fps_source_and_a_frame_rate_cap() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_mp4(dir.path(), "60.mp4", "640x360", 60, 4, true);
    let out = dir.path().join("out");
    let full = VariantProfile::new("full", 360, 800_000).with_preset("ultrafast");
    let capped = VariantProfile::new("capped", 240, 400_000)
        .with_preset("ultrafast")
        .with_max_frame_rate(30.0);
    let cfg = StreamConfig::builder("sixty", src.to_str().unwrap(), &out)
        .local_files_under("/")
        .profile(AbrProfile::new(vec![full, capped]))
        .build()
        .unwrap();
    let report = run_to_end(cfg);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let master = read_master(&out);
    assert_eq!(master.variants[0].frame_rate, Some(60.0));
    assert_eq!(master.variants[1].frame_rate, Some(30.0));
    assert_eq!(probe_video(&out.join("full/index.m3u8")).frames, 240);
    assert_eq!(probe_video(&out.join("capped/index.m3u8")).frames, 120);
    // The capped rung still switches with the full one: same segment starts, all keyframes.
    let starts = |name: &str| -> Vec<(i64, bool)> {
        read_media(&out.join(name).join("index.m3u8"))
            .segments
            .iter()
            .map(|s| {
                let (pts, key) = first_video_packet(&out.join(name).join(&s.uri));
                ((pts * 1000.0).round() as i64, key)
            })
            .collect()
    };
    let a = starts("full");
    assert_eq!(a, starts("capped"));
    assert!(a.iter().all(|(_, k)| *k));
    let capped_stats = &report.stats.variants[1];
    assert_eq!(capped_stats.frames_out, 120);
    assert_eq!(capped_stats.frames_dropped, 120);
}

/// Audio packets of the source, (pts, duration) in seconds, from ffprobe.
fn audio_packets(path: &Path) -> Vec<(f64, f64)> {
    let v = ffprobe_json(
        path,
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "packet=pts_time,duration_time",
        ],
    );
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let t = p["pts_time"].as_str()?.parse().ok()?;
            let d = p["duration_time"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            Some((t, d))
        })
        .collect()
}

#[test]
fn a_gap_in_the_source_audio_stays_a_gap_so_audio_keeps_sync() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("gap.ts");
    // One second of audio (1 s to 2 s) is missing; the rest keeps its timestamps.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=4",
        "-af",
        "aselect='not(between(t,1,2))'",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-f",
        "mpegts",
        src.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    let report = run_to_end(config("gap", src.to_str().unwrap(), &out, &["360p"]));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let packets = audio_packets(&out.join("360p/index.m3u8"));
    let video_start = first_video_packet(&out.join("360p/seg_00000.ts")).0;
    let widest = packets
        .windows(2)
        .map(|w| w[1].0 - w[0].0 - w[0].1)
        .fold(0.0, f64::max);
    assert!(
        widest > 0.8,
        "the one-second hole is kept (widest gap {widest:.3} s)"
    );
    let (last, dur) = *packets.last().unwrap();
    let audio_end = last + dur - video_start;
    assert!(
        (audio_end - 4.0).abs() < 0.15,
        "audio ends with the video at 4 s, not 1 s early: {audio_end:.3}"
    );
}
