//! fMP4 (CMAF) output: HEVC and AV1 rungs beside H.264, audio as its own rendition, and
//! the DASH manifest over the same segments, all checked with ffprobe (and the MPD with an
//! XML parser) against the files on disk.

use std::path::Path;
use std::time::Duration;

use streamvisor::{
    AbrProfile, Container, OutputEvent, StreamConfig, StreamState, VariantProfile, VideoCodec,
};

use crate::common::{ffprobe_json, read_master, read_media, run_to_end};

const FPS: f64 = 30.0;
const SECS: u32 = 6;

/// A 640x360 30 fps test pattern with a tone, `SECS` long.
fn source() -> String {
    format!(
        "lavfi:testsrc2=size=640x360:rate=30:duration={SECS};\
         sine=frequency=440:sample_rate=48000:duration={SECS}"
    )
}

/// 360p and 240p rungs of the given codecs, fMP4, 2 s segments.
fn profile(codecs: [VideoCodec; 2]) -> AbrProfile {
    let rungs = [("360p", 360, 700_000), ("240p", 240, 300_000)];
    let variants = rungs
        .iter()
        .zip(codecs)
        .map(|(&(name, h, bps), codec)| {
            VariantProfile::new(name, h, bps)
                .with_codec(codec)
                .with_preset("ultrafast")
        })
        .collect();
    AbrProfile::new(variants)
        .with_container(Container::Fmp4)
        .with_segment_duration(Duration::from_secs(2))
}

fn run(id: &str, out: &Path, profile: AbrProfile) {
    let config = StreamConfig::builder(id, source(), out)
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(profile)
        .build()
        .unwrap();
    let report = run_to_end(config);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
}

/// One packet as ffprobe reads it from an init segment followed by media segments.
#[derive(Debug, Clone, Copy)]
struct Pkt {
    pts: f64,
    key: bool,
}

/// The packets of `init` + `segments` concatenated (what a player appends), in file order.
fn packets(dir: &Path, segments: &[String]) -> Vec<Pkt> {
    let media = read_media(&dir.join("index.m3u8"));
    let init = media.segments[0]
        .map
        .as_ref()
        .map(|m| m.uri.clone())
        .expect("#EXT-X-MAP before the first segment");
    let mut bytes = std::fs::read(dir.join(&init)).unwrap();
    for s in segments {
        bytes.extend(std::fs::read(dir.join(s)).unwrap());
    }
    let joined = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(joined.path(), bytes).unwrap();
    let v = ffprobe_json(joined.path(), &["-show_entries", "packet=pts_time,flags"]);
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Pkt {
            pts: p["pts_time"].as_str().unwrap().parse().unwrap(),
            key: p["flags"].as_str().unwrap_or_default().starts_with('K'),
        })
        .collect()
}

fn segment_uris(dir: &Path) -> Vec<String> {
    let media = read_media(&dir.join("index.m3u8"));
    assert!(media.end_list, "{dir:?}: a finished playlist");
    assert_eq!(media.version, Some(7), "{dir:?}: fMP4 needs version 7");
    media.segments.iter().map(|s| s.uri.clone()).collect()
}

/// The first presentation time of each segment of a rendition, after checking that each
/// one starts with a keyframe.
fn segment_starts(dir: &Path) -> Vec<f64> {
    segment_uris(dir)
        .iter()
        .map(|s| {
            assert!(s.ends_with(".m4s"), "{s}");
            let pkts = packets(dir, std::slice::from_ref(s));
            let first = pkts.first().unwrap_or_else(|| panic!("{s}: empty"));
            assert!(first.key, "{dir:?}/{s} does not start with a keyframe");
            pkts.iter().map(|p| p.pts).fold(f64::MAX, f64::min)
        })
        .collect()
}

fn stream_field(dir: &Path, field: &str) -> String {
    let uris = segment_uris(dir);
    let init = read_media(&dir.join("index.m3u8")).segments[0]
        .map
        .clone()
        .unwrap()
        .uri;
    let v = ffprobe_json(
        &dir.join(init),
        &["-show_entries", &format!("stream={field}")],
    );
    assert!(!uris.is_empty());
    v["streams"][0][field]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v["streams"][0][field].to_string())
}

/// Every rung: its codec and tag, its size, every frame (exactly), a keyframe at the start
/// of every segment, segment starts equal across rungs, and the audio rendition beside it
/// starting with the video. The master lists each rung with its codec and the audio group.
fn check_ladder(out: &Path, codecs: [(&str, &str, &str); 2]) {
    let master = read_master(out);
    assert_eq!(master.variants.len(), 2);
    let audio = &master.alternatives;
    assert_eq!(audio.len(), 1, "one audio rendition");
    let group = &audio[0].group_id;
    let mut starts = Vec::new();
    for ((name, height), (codec, tag, rfc)) in
        [("360p", 360), ("240p", 240)].into_iter().zip(codecs)
    {
        let dir = out.join(name);
        assert_eq!(stream_field(&dir, "codec_name"), codec, "{name}");
        assert_eq!(stream_field(&dir, "codec_tag_string"), tag, "{name}");
        assert_eq!(stream_field(&dir, "height"), height.to_string(), "{name}");
        let all = packets(&dir, &segment_uris(&dir));
        assert_eq!(
            all.len(),
            (f64::from(SECS) * FPS) as usize,
            "{name}: every frame"
        );
        starts.push(segment_starts(&dir));
        let entry = master
            .variants
            .iter()
            .find(|v| v.uri == format!("{name}/index.m3u8"))
            .unwrap_or_else(|| panic!("{name} in the master"));
        let declared = entry.codecs.as_deref().unwrap_or_default();
        assert!(
            declared.starts_with(rfc) && declared.ends_with(",mp4a.40.2"),
            "{name}: CODECS {declared}"
        );
        assert_eq!(entry.audio.as_deref(), Some(group.as_str()), "{name}");
    }
    assert_eq!(starts[0].len(), 3, "three 2 s segments: {starts:?}");
    for (a, b) in starts[0].iter().zip(&starts[1]) {
        assert!((a - b).abs() < 1e-3, "segment starts differ: {starts:?}");
    }
    // The audio: its own files, starting with the video (less the AAC priming).
    let adir = out.join(
        audio[0]
            .uri
            .as_deref()
            .unwrap()
            .trim_end_matches("/index.m3u8"),
    );
    let apkts = packets(&adir, &segment_uris(&adir));
    let a0 = apkts.iter().map(|p| p.pts).fold(f64::MAX, f64::min);
    let lead = starts[0][0] - a0;
    assert!(
        (0.0..0.05).contains(&lead),
        "audio starts {lead:.3} s before the video"
    );
    let audio_secs = apkts.len() as f64 * 1024.0 / 48000.0;
    assert!(
        (audio_secs - f64::from(SECS)).abs() < 0.1,
        "{audio_secs} s of audio"
    );
}

#[test]
fn fmp4_h264_and_hevc_rungs_are_exact_and_aligned() {
    let d = tempfile::tempdir().unwrap();
    run(
        "cmaf-hevc",
        d.path(),
        profile([VideoCodec::Hevc, VideoCodec::H264]),
    );
    check_ladder(
        d.path(),
        [("hevc", "hvc1", "hvc1."), ("h264", "avc1", "avc1.")],
    );
}

#[test]
fn fmp4_av1_rungs_beside_h264_are_exact_and_aligned() {
    let d = tempfile::tempdir().unwrap();
    run(
        "cmaf-av1",
        d.path(),
        profile([VideoCodec::Av1, VideoCodec::H264]),
    );
    check_ladder(
        d.path(),
        [("av1", "av01", "av01."), ("h264", "avc1", "avc1.")],
    );
}

#[test]
fn hevc_and_av1_in_mpeg_ts_and_dash_without_fmp4_are_refused() {
    for codec in [VideoCodec::Hevc, VideoCodec::Av1] {
        let p = profile([VideoCodec::H264, codec]).with_container(Container::MpegTs);
        let e = StreamConfig::builder("x", "in.mp4", "/tmp/x")
            .local_files_under("/")
            .profile(p)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("profile.variants[1].codec"), "{e}");
        assert!(e.to_string().contains("fmp4"), "{e}");
    }
    let p = AbrProfile::from_rungs(&["360p"]).unwrap().with_dash(true);
    let e = StreamConfig::builder("x", "in.mp4", "/tmp/x")
        .local_files_under("/")
        .profile(p)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("profile.dash"), "{e}");
}

/// An MPD's representations: id, timescale, presentationTimeOffset, startNumber, the
/// (start, duration) of every listed segment, and the init and media templates.
#[derive(Debug)]
pub struct MpdRep {
    pub id: String,
    pub timescale: u64,
    pub pto: u64,
    pub start_number: u64,
    pub segments: Vec<(u64, u64)>,
    pub init: String,
    pub media: String,
}

/// Parses an MPD (strictly: well-formed XML in the DASH namespace) into its type and its
/// representations, expanding each SegmentTimeline.
pub fn parse_mpd(text: &str) -> (String, Option<String>, Vec<MpdRep>) {
    let doc = roxmltree::Document::parse(text).expect("the MPD is well-formed XML");
    let mpd = doc.root_element();
    assert_eq!(mpd.tag_name().name(), "MPD");
    assert_eq!(
        mpd.tag_name().namespace(),
        Some("urn:mpeg:dash:schema:mpd:2011")
    );
    let kind = mpd.attribute("type").unwrap_or("static").to_owned();
    let duration = mpd
        .attribute("mediaPresentationDuration")
        .map(str::to_owned);
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).map_or(0, |v| v.parse().unwrap());
    let reps = mpd
        .descendants()
        .filter(|n| n.has_tag_name("Representation"))
        .map(|r| {
            let t = r
                .children()
                .find(|n| n.has_tag_name("SegmentTemplate"))
                .expect("a SegmentTemplate");
            let mut segments = Vec::new();
            let mut at = 0;
            for s in t.descendants().filter(|n| n.has_tag_name("S")) {
                at = s.attribute("t").map_or(at, |v| v.parse().unwrap());
                let d: u64 = num(s, "d");
                for _ in 0..=num(s, "r") {
                    segments.push((at, d));
                    at += d;
                }
            }
            MpdRep {
                id: r.attribute("id").unwrap().to_owned(),
                timescale: num(t, "timescale"),
                pto: num(t, "presentationTimeOffset"),
                start_number: num(t, "startNumber"),
                segments,
                init: t.attribute("initialization").unwrap().to_owned(),
                media: t.attribute("media").unwrap().to_owned(),
            }
        })
        .collect();
    (kind, duration, reps)
}

/// The file a `$Number%05d$` template names for `number`.
pub fn media_file(template: &str, number: u64) -> String {
    template.replace("$Number%05d$", &format!("{number:05}"))
}

#[test]
fn an_on_demand_dash_manifest_lists_the_hls_segments_with_their_media_times() {
    let d = tempfile::tempdir().unwrap();
    let p = profile([VideoCodec::H264, VideoCodec::H264]).with_dash(true);
    run("dash-vod", d.path(), p);
    let text = std::fs::read_to_string(d.path().join("manifest.mpd")).unwrap();
    let (kind, duration, reps) = parse_mpd(&text);
    assert_eq!(kind, "static");
    let secs: f64 = duration
        .unwrap()
        .trim_start_matches("PT")
        .trim_end_matches('S')
        .parse()
        .unwrap();
    assert!(
        (secs - f64::from(SECS)).abs() < 0.1,
        "mediaPresentationDuration {secs}"
    );
    assert_eq!(reps.len(), 3, "two video rungs and the audio: {reps:?}");
    for rep in &reps {
        let hls = read_media(&d.path().join(&rep.id).join("index.m3u8"));
        assert_eq!(
            rep.segments.len(),
            hls.segments.len(),
            "{}: same segments",
            rep.id
        );
        assert!(d.path().join(&rep.init).exists(), "{}", rep.init);
        for (i, (start, dur)) in rep.segments.iter().enumerate() {
            let file = media_file(&rep.media, rep.start_number + i as u64);
            assert!(
                file.ends_with(&hls.segments[i].uri),
                "{file} is the HLS segment"
            );
            // The MPD's time of each segment is the media time of its first sample.
            let dir = d.path().join(&rep.id);
            let pkts = packets(&dir, std::slice::from_ref(&hls.segments[i].uri));
            let first = pkts.iter().map(|p| p.pts).fold(f64::MAX, f64::min);
            let t = *start as f64 / rep.timescale as f64;
            assert!(
                (t - first).abs() < 0.03,
                "{file}: MPD says {t}, media {first}"
            );
            let hls_d = f64::from(hls.segments[i].duration);
            assert!(
                (*dur as f64 / rep.timescale as f64 - hls_d).abs() < 0.01,
                "{file}"
            );
        }
        // Media time zero of the period is the output timeline's zero.
        let first = rep.segments[0].0 as f64 / rep.timescale as f64;
        let zero = rep.pto as f64 / rep.timescale as f64;
        assert!(
            (first - zero).abs() < 0.05,
            "{}: starts {first}, offset {zero}",
            rep.id
        );
    }
}

#[test]
fn a_live_dash_manifest_slides_and_lists_only_segments_that_exist() {
    use std::sync::{Arc, Mutex};
    use streamvisor::config::PlaylistMode;
    use streamvisor::{Hooks, OutputEvent, Stream};
    let server = crate::common::LiveServer::start();
    let d = tempfile::tempdir().unwrap();
    let profile = profile([VideoCodec::H264, VideoCodec::H264])
        .with_dash(true)
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(3);
    let config = StreamConfig::builder("dash-live", server.url(), d.path())
        .local_files_under("/")
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let hooks = Hooks::new().on_output(move |ev| seen.lock().unwrap().push(ev.clone()));
    let running = Stream::new(config).with_hooks(hooks).start().unwrap();
    let mpd = d.path().join("manifest.mpd");
    let deadline = std::time::Instant::now() + Duration::from_secs(9);
    let (mut versions, mut ast, mut last_start) = (0, None, 0);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(text) = std::fs::read_to_string(&mpd) else {
            continue;
        };
        versions += 1;
        let doc = roxmltree::Document::parse(&text).expect("every version is well-formed");
        let root = doc.root_element();
        assert_eq!(root.attribute("type"), Some("dynamic"));
        let this_ast = root.attribute("availabilityStartTime").unwrap().to_owned();
        assert_eq!(
            ast.get_or_insert(this_ast.clone()),
            &this_ast,
            "availabilityStartTime moved"
        );
        let (_, _, reps) = parse_mpd(&text);
        assert_eq!(reps.len(), 3);
        for rep in &reps {
            assert!(
                (1..=3).contains(&rep.segments.len()),
                "{}: window {:?}",
                rep.id,
                rep.segments
            );
            assert!(d.path().join(&rep.init).exists(), "{}", rep.init);
            for i in 0..rep.segments.len() as u64 {
                let file = media_file(&rep.media, rep.start_number + i);
                assert!(
                    d.path().join(&file).exists(),
                    "listed but not there: {file}"
                );
            }
        }
        assert!(reps[0].start_number >= last_start, "startNumber went back");
        last_start = reps[0].start_number;
    }
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert!(versions >= 10, "the manifest was read {versions} times");
    assert!(last_start >= 3, "the window slid: startNumber {last_start}");
    // The hooks saw every segment, the deletions and the manifest being written.
    let events = events.lock().unwrap();
    let segments = |v: &str| {
        events
            .iter()
            .filter(|e| matches!(e, OutputEvent::Segment(s) if s.variant == v))
            .count()
    };
    for v in ["360p", "240p", "audio-128k"] {
        let listed = read_media(&d.path().join(v).join("index.m3u8"));
        let last = listed.segments.len() as u64 + listed.media_sequence;
        assert_eq!(segments(v) as u64, last, "{v}: one event per segment");
    }
    let deleted: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::SegmentDeleted { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert!(!deleted.is_empty(), "old segments were deleted");
    assert!(
        deleted.iter().all(|p| !p.exists()),
        "a deleted segment is gone"
    );
    let wrote_mpd = events.iter().any(
        |e| matches!(e, OutputEvent::PlaylistWritten { path, .. } if path.ends_with("manifest.mpd")),
    );
    assert!(wrote_mpd, "manifest.mpd writes are told");
}

/// Two live fMP4 runs into one directory (a 240p rung, 1 s segments, a window of
/// `window`): the first fails after two segments (its source dies), the second carries its
/// playlist on until it lists `more` segments of its own. Returns how many segments the
/// first run's playlist listed, and the second run's output events.
fn two_live_fmp4_runs(out: &Path, window: usize, more: usize) -> (usize, Vec<OutputEvent>) {
    use crate::common::{is_listening, LiveServer};
    use std::sync::{Arc, Mutex};
    use streamvisor::config::PlaylistMode;
    use streamvisor::{Hooks, RecoveryPolicy, Stream};
    let server = LiveServer::start();
    let port = server.port;
    let cfg = || {
        let profile = AbrProfile::new(vec![
            VariantProfile::new("240p", 240, 300_000).with_preset("ultrafast")
        ])
        .with_container(Container::Fmp4)
        .with_segment_duration(Duration::from_secs(1))
        .with_live_window(window);
        StreamConfig::builder("fmp4-restart", format!("tcp://127.0.0.1:{port}"), out)
            .local_files_under("/")
            .profile(profile)
            .playlist_mode(PlaylistMode::Live)
            .recovery(RecoveryPolicy::default().with_max_attempts(1))
            .build()
            .unwrap()
    };
    let playlist = out.join("240p/index.m3u8");
    let last_sequence = || {
        let m = read_media(&playlist);
        m.media_sequence as usize + m.segments.len()
    };
    let first = Stream::new(cfg()).start().unwrap();
    crate::common::wait_until("two segments", Duration::from_secs(30), || {
        playlist.exists() && last_sequence() >= 2
    });
    drop(server);
    assert_eq!(first.wait().state, StreamState::Failed);
    let before = last_sequence();
    let server = LiveServer::start_on(port);
    crate::common::wait_until("the source", Duration::from_secs(10), || is_listening(port));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let hooks = Hooks::new().on_output(move |ev| seen.lock().unwrap().push(ev.clone()));
    let second = Stream::new(cfg()).with_hooks(hooks).start().unwrap();
    crate::common::wait_until("more segments", Duration::from_secs(60), || {
        last_sequence() >= before + more
    });
    let report = second.stop(Duration::from_secs(5));
    drop(server);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let events = events.lock().unwrap().clone();
    (before, events)
}

#[test]
fn an_earlier_runs_init_segment_is_deleted_with_its_last_segment() {
    let d = tempfile::tempdir().unwrap();
    // A window of 3: the first run's segments leave it, and are deleted 4 s later.
    let (_, events) = two_live_fmp4_runs(d.path(), 3, 10);
    let dir = d.path().join("240p");
    assert!(
        !dir.join("init_00000.mp4").exists(),
        "the first run's init is gone"
    );
    let media = read_media(&dir.join("index.m3u8"));
    let map = media.segments[0]
        .map
        .as_ref()
        .expect("the current init")
        .uri
        .clone();
    assert!(
        dir.join(&map).exists(),
        "{map}: the current run's init stays"
    );
    let told = events.iter().any(|e| {
        matches!(e, OutputEvent::SegmentDeleted { path, .. } if path.ends_with("init_00000.mp4"))
    });
    assert!(told, "its deletion is told");
}

#[test]
fn a_gap_in_the_source_stays_in_every_fmp4_rendition_alike() {
    // 4 s of media, 5 s of nothing, 4 s of media (a gap under the 10 s jump threshold).
    let d = tempfile::tempdir().unwrap();
    let mut joined = crate::timeline::ts_piece(d.path(), "a.ts", 0);
    joined.extend(crate::timeline::ts_piece(d.path(), "b.ts", 9));
    let src = d.path().join("gap.ts");
    std::fs::write(&src, joined).unwrap();
    let out = d.path().join("out");
    let p = profile([VideoCodec::H264, VideoCodec::H264]).with_dash(true);
    let config = StreamConfig::builder("fmp4-gap", src.to_str().unwrap(), &out)
        .local_files_under("/")
        .profile(p)
        .build()
        .unwrap();
    let report = run_to_end(config);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    // The largest step between consecutive presentation times, and where it is.
    let jump = |dir: &Path| {
        let mut pts: Vec<f64> = packets(dir, &segment_uris(dir))
            .iter()
            .map(|p| p.pts)
            .collect();
        pts.sort_by(f64::total_cmp);
        pts.windows(2)
            .map(|w| (w[1] - w[0], w[0]))
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    };
    let (v_gap, v_at) = jump(&out.join("360p"));
    let (w_gap, w_at) = jump(&out.join("240p"));
    let (a_gap, a_at) = jump(&out.join("audio-128k"));
    for (what, gap, at) in [
        ("360p", v_gap, v_at),
        ("240p", w_gap, w_at),
        ("audio", a_gap, a_at),
    ] {
        assert!(
            (gap - 5.0).abs() < 0.2,
            "{what}: the largest step is {gap} s at {at}"
        );
    }
    assert!(
        (v_at - a_at).abs() < 0.1 && (v_at - w_at).abs() < 0.01,
        "{v_at} {w_at} {a_at}"
    );
}

#[test]
fn an_av1_rung_whose_gop_drifts_from_the_time_grid_still_cuts_every_segment() {
    // 29.97 fps in 1 s segments on MPEG-TS's 90 kHz clock: the grid asks for a keyframe
    // every 29.97 frames, SVT-AV1 places one every 30; 34 s in they first disagree (frame
    // 1019 against 1020). The rung is cut at its own keyframes, never left to grow.
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("ntsc.ts");
    crate::common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=426x240:rate=30000/1001:duration=40",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-f",
        "mpegts",
        src.to_str().unwrap(),
    ]);
    let source = src.to_str().unwrap();
    let p = AbrProfile::new(vec![VariantProfile::new("240p", 240, 200_000)
        .with_codec(VideoCodec::Av1)
        .with_preset("ultrafast")])
    .with_container(Container::Fmp4)
    .with_segment_duration(Duration::from_secs(1));
    let config = StreamConfig::builder("av1-drift", source, d.path())
        .local_files_under("/")
        .allow_generated_sources(true)
        .profile(p)
        .build()
        .unwrap();
    let report = run_to_end(config);
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let dir = d.path().join("240p");
    let media = read_media(&dir.join("index.m3u8"));
    assert!(
        media.segments.len() >= 39,
        "{} segments",
        media.segments.len()
    );
    let longest = media
        .segments
        .iter()
        .map(|s| s.duration)
        .fold(0.0, f32::max);
    assert!(longest < 1.1, "a segment of {longest} s");
    let first = packets(&dir, &segment_uris(&dir)[36..37]);
    assert!(first[0].key, "segment 36 opens with a keyframe");
    assert_eq!(
        packets(&dir, &segment_uris(&dir)).len(),
        1199,
        "every frame"
    );
}
