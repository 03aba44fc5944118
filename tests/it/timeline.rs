//! One continuous output timeline whatever the source's timestamps do: MPEG-TS files joined
//! with `cat` whose timestamps jump 100 s forward or backward give a ladder with every frame,
//! the source's media duration, and no segment longer than the target.

use std::path::Path;

use m3u8_rs::MediaPlaylist;

use crate::common::{config, ffmpeg, probe_video, read_media, run_to_end};

/// A 4 s 640x360 15 fps H.264/AAC MPEG-TS piece whose timestamps start at `offset` s.
fn ts_piece(dir: &Path, name: &str, offset: u32) -> Vec<u8> {
    ts_piece_with(dir, name, offset, "640x360", "yuv420p", 48000, 2)
}

/// A 4 s 15 fps H.264/AAC MPEG-TS piece with this picture and audio format.
fn ts_piece_with(
    dir: &Path,
    name: &str,
    offset: u32,
    size: &str,
    pix_fmt: &str,
    sample_rate: u32,
    channels: u32,
) -> Vec<u8> {
    let path = dir.join(name);
    let video = format!("testsrc2=size={size}:rate=15:duration=4");
    let audio = format!("sine=frequency=440:sample_rate={sample_rate}:duration=4");
    let (offset, channels) = (offset.to_string(), channels.to_string());
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "15",
        "-pix_fmt",
        pix_fmt,
        "-c:a",
        "aac",
        "-ac",
        &channels,
        "-output_ts_offset",
        &offset,
        "-f",
        "mpegts",
        path.to_str().unwrap(),
    ]);
    std::fs::read(&path).unwrap()
}

fn total_duration(p: &MediaPlaylist) -> f64 {
    p.segments.iter().map(|s| f64::from(s.duration)).sum()
}

/// Joins two pieces (first at `a` s, second at `b` s), transcodes, and checks the ladder.
fn joined_pieces_make_one_timeline(a: u32, b: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut joined = ts_piece(dir.path(), "a.ts", a);
    joined.extend(ts_piece(dir.path(), "b.ts", b));
    let src = dir.path().join("joined.ts");
    std::fs::write(&src, joined).unwrap();
    let out = dir.path().join("o");
    let report = run_to_end(config(
        "jump",
        src.to_str().unwrap(),
        &out,
        &["360p", "240p"],
    ));
    assert!(report.error.is_none(), "{:?}", report.error);
    let media = report.stats.media_time.as_secs_f64();
    assert!(
        (media - 8.0).abs() < 0.2,
        "media time {media} s for 8 s of source"
    );
    for v in ["360p", "240p"] {
        let playlist = read_media(&out.join(v).join("index.m3u8"));
        assert_eq!(playlist.target_duration, 2, "{v}");
        for s in &playlist.segments {
            assert!(
                f64::from(s.duration).round() <= 2.0,
                "{v}: segment {} of {} s",
                s.uri,
                s.duration
            );
        }
        let total = total_duration(&playlist);
        assert!((total - 8.0).abs() <= 1.0 / 15.0 + 0.01, "{v}: {total} s");
        // Every frame, once; ffprobe decodes the whole variant without error.
        assert_eq!(
            probe_video(&out.join(v).join("index.m3u8")).frames,
            120,
            "{v}"
        );
    }
}

#[test]
fn a_forward_jump_of_100_s_is_absorbed() {
    joined_pieces_make_one_timeline(10, 110);
}

#[test]
fn a_backward_jump_of_100_s_is_absorbed() {
    joined_pieces_make_one_timeline(110, 10);
}

#[test]
fn resolution_pixel_format_and_audio_format_may_change_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut joined = ts_piece_with(dir.path(), "a.ts", 10, "640x360", "yuv420p", 44100, 1);
    joined.extend(ts_piece_with(
        dir.path(),
        "b.ts",
        14,
        "1280x720",
        "yuv422p",
        48000,
        2,
    ));
    let src = dir.path().join("changes.ts");
    std::fs::write(&src, joined).unwrap();
    let out = dir.path().join("o");
    let report = run_to_end(config("changes", src.to_str().unwrap(), &out, &["360p"]));
    assert!(report.error.is_none(), "{:?}", report.error);
    let v = probe_video(&out.join("360p/index.m3u8"));
    assert_eq!((v.width, v.height, v.frames), (640, 360, 120), "{v:?}");
    let playlist = read_media(&out.join("360p/index.m3u8"));
    let total = total_duration(&playlist);
    assert!((total - 8.0).abs() <= 1.0 / 15.0 + 0.01, "{total} s");
    // Audio goes on through the change: AAC in the last segment too.
    let last = out
        .join("360p")
        .join(&playlist.segments.last().unwrap().uri);
    assert!(crate::common::stream_codecs(&last).contains(&"aac".to_owned()));
}
