//! One continuous output timeline whatever the source's timestamps do: MPEG-TS files joined
//! with `cat` whose timestamps jump 100 s forward or backward give a ladder with every frame,
//! the source's media duration, and no segment longer than the target.

use std::path::Path;

use std::time::Duration;

use m3u8_rs::MediaPlaylist;

use crate::common::{config, ffmpeg, probe_video, read_media, run_to_end};

/// A 4 s 640x360 15 fps H.264/AAC MPEG-TS piece whose timestamps start at `offset` s.
pub fn ts_piece(dir: &Path, name: &str, offset: u32) -> Vec<u8> {
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

/// Joins two pieces (first at `a` s, second at `b` s), transcodes, and checks the ladder:
/// every frame, 8 s of media listed, no segment over the target (checked by `read_media`).
/// Returns the 360p playlist.
fn joined_pieces_make_one_timeline(a: u32, b: u32) -> MediaPlaylist {
    joined_pieces_with(a, b, |p| p)
}

fn joined_pieces_with(
    a: u32,
    b: u32,
    profile: impl Fn(streamvisor::AbrProfile) -> streamvisor::AbrProfile,
) -> MediaPlaylist {
    let dir = tempfile::tempdir().unwrap();
    let mut joined = ts_piece(dir.path(), "a.ts", a);
    joined.extend(ts_piece(dir.path(), "b.ts", b));
    let src = dir.path().join("joined.ts");
    std::fs::write(&src, joined).unwrap();
    let out = dir.path().join("o");
    let base = config("jump", src.to_str().unwrap(), &out, &["360p", "240p"]);
    let profile = profile(base.profile().clone());
    // A gap below the threshold stays in the media time; a jump past it does not.
    let gap = f64::from(b) - f64::from(a + 4);
    let expected = if gap > 0.0 && gap <= profile.timestamp_jump.as_secs_f64() {
        8.0 + gap
    } else {
        8.0
    };
    let cfg = streamvisor::StreamConfig::builder("jump", src.to_str().unwrap(), &out)
        .local_files_under("/")
        .profile(profile)
        .build()
        .unwrap();
    let report = run_to_end(cfg);
    assert!(report.error.is_none(), "{:?}", report.error);
    let media = report.stats.media_time.as_secs_f64();
    assert!(
        (media - expected).abs() < 0.2,
        "media time {media} s, expected {expected}"
    );
    let mut first = None;
    for v in ["360p", "240p"] {
        let playlist = read_media(&out.join(v).join("index.m3u8"));
        assert_eq!(playlist.target_duration, 2, "{v}");
        let total = total_duration(&playlist);
        assert!((total - 8.0).abs() <= 1.0 / 15.0 + 0.01, "{v}: {total} s");
        // Every frame, once; ffprobe decodes the whole variant without error.
        assert_eq!(
            probe_video(&out.join(v).join("index.m3u8")).frames,
            120,
            "{v}"
        );
        first.get_or_insert(playlist);
    }
    first.unwrap()
}

fn discontinuities(p: &MediaPlaylist) -> usize {
    p.segments.iter().filter(|s| s.discontinuity).count()
}

#[test]
fn a_33_bit_timestamp_wrap_is_unwrapped() {
    // 2^33 / 90 kHz = 95 443.7 s: the first piece crosses the wrap, the second continues.
    let p = joined_pieces_make_one_timeline(95_440, 95_444);
    assert_eq!(discontinuities(&p), 0, "a real wrap is continuous");
}

#[test]
fn a_5_s_gap_stays_a_gap_unless_the_threshold_is_lower() {
    // 4 s of media, 5 s of nothing, 4 s of media: below the 10 s threshold it stays a gap
    // (the segment before it lists its own media, the one after starts a discontinuity).
    let p = joined_pieces_make_one_timeline(10, 19);
    assert_eq!(discontinuities(&p), 1);
    // With a 3 s threshold the same gap is a jump, absorbed into one continuous timeline.
    let p = joined_pieces_with(10, 19, |p| p.with_timestamp_jump(Duration::from_secs(3)));
    assert_eq!(discontinuities(&p), 0);
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

#[test]
fn audio_that_disappears_mid_stream_leaves_the_video_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut joined = ts_piece(dir.path(), "a.ts", 10);
    // The second piece has no audio at all: the audio PID just stops.
    let b = dir.path().join("b.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=15:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "15",
        "-output_ts_offset",
        "14",
        "-f",
        "mpegts",
        b.to_str().unwrap(),
    ]);
    joined.extend(std::fs::read(&b).unwrap());
    let src = dir.path().join("joined.ts");
    std::fs::write(&src, joined).unwrap();
    let out = dir.path().join("o");
    let report = run_to_end(config("silent", src.to_str().unwrap(), &out, &["360p"]));
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(probe_video(&out.join("360p/index.m3u8")).frames, 120);
    let playlist = read_media(&out.join("360p/index.m3u8"));
    let first = out.join("360p").join(&playlist.segments[0].uri);
    assert!(crate::common::stream_codecs(&first).contains(&"aac".to_owned()));
    let total = total_duration(&playlist);
    assert!((total - 8.0).abs() <= 1.0 / 15.0 + 0.01, "{total} s");
}
