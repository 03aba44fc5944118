//! Low-Latency HLS: a live fMP4 ladder with parts. Every part is a CMAF chunk in a file of
//! its own, listed as soon as it is complete (`EXT-X-PART`, the first of each segment
//! `INDEPENDENT`), with `EXT-X-PART-INF`, `EXT-X-SERVER-CONTROL:PART-HOLD-BACK` and
//! `EXT-X-PRELOAD-HINT` for the next part; the playlists are read by an LL-HLS parser nobody
//! here wrote (the Python `m3u8` package), and hls.js (low-latency mode) plays the live
//! output in Chromium without a stall.

use std::time::Duration;

use serde_json::Value;
use streamvisor::config::PlaylistMode;
use streamvisor::{Container, Stream, StreamConfig, StreamState};

use crate::browser::{play_live, Kind};
use crate::common::{live_profile, wait_segments, LiveServer};

/// The part target the tests ask for, seconds.
const PART: f64 = 0.334;

/// What the Python `m3u8` package reads in a media playlist's text: its part target,
/// part hold-back, preload hint, and per segment its URI and parts (URI, duration,
/// independent); the parts of the segment being written are those after the last one; the
/// server control's blocking reload and skip, and the rendition reports.
pub fn read_with_python_m3u8(text: &str) -> Value {
    let script = r#"
import json, sys, m3u8
p = m3u8.loads(sys.stdin.read())
part = lambda x: {"uri": x.uri, "duration": x.duration, "independent": x.independent == "YES"}
print(json.dumps({
    "part_target": p.part_inf.part_target if p.part_inf else None,
    "part_hold_back": p.server_control.part_hold_back if p.server_control else None,
    "hint": {"type": p.preload_hint.hint_type, "uri": p.preload_hint.uri} if p.preload_hint else None,
    "segments": [{"uri": s.uri, "duration": s.duration, "parts": [part(x) for x in s.parts]} for s in p.segments],
    "can_block_reload": p.server_control.can_block_reload if p.server_control else None,
    "can_skip_until": p.server_control.can_skip_until if p.server_control else None,
    "reports": [{"uri": r.uri, "last_msn": r.last_msn, "last_part": r.last_part} for r in p.rendition_reports],
}))
"#;
    let out = crate::common::python(script, text);
    assert!(
        out.status.success(),
        "the m3u8 package (python3 -m pip install m3u8; make deps does) read nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_live_cmaf_ladder_lists_its_parts_as_they_are_written_and_hls_js_plays_it() {
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let profile = live_profile(&["240p"])
        .with_container(Container::Fmp4)
        .with_parts(Duration::from_secs_f64(PART));
    let config = StreamConfig::builder("ll", server.url(), &out)
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .build()
        .unwrap();
    let running = Stream::new(config).start().unwrap();
    let playlist = out.join("240p/index.m3u8");
    wait_segments(&playlist, 5);
    let served = out.clone();
    let viewer = std::thread::spawn(move || play_live(Kind::Hls, &served, "master.m3u8", 8));
    for rendition in ["240p", "audio-128k"] {
        let text = std::fs::read_to_string(out.join(rendition).join("index.m3u8")).unwrap();
        let p = read_with_python_m3u8(&text);
        let target = p["part_target"].as_f64().expect("EXT-X-PART-INF");
        assert!((target - PART).abs() < 1e-3, "{text}");
        let hold_back = p["part_hold_back"].as_f64().expect("PART-HOLD-BACK");
        assert!(hold_back >= 3.0 * target - 1e-6, "{text}");
        assert_eq!(p["hint"]["type"], "PART", "{text}");
        let segments = p["segments"].as_array().unwrap();
        let with_parts: Vec<&Value> = segments
            .iter()
            .filter(|s| !s["parts"].as_array().unwrap().is_empty())
            .collect();
        assert!(
            with_parts.len() >= 3,
            "the newest segments keep their parts: {text}"
        );
        for s in &with_parts {
            let parts = s["parts"].as_array().unwrap();
            // The parts of a whole segment add up to it (the segment being written is the
            // parser's last, without a URI); each begins with a keyframe.
            if let Some(whole) = s["duration"].as_f64().filter(|_| s["uri"].is_string()) {
                let sum: f64 = parts.iter().map(|x| x["duration"].as_f64().unwrap()).sum();
                assert!((sum - whole).abs() < 0.05, "{sum} vs {whole}: {text}");
            }
            assert_eq!(parts[0]["independent"], true, "{text}");
            for x in parts {
                let d = x["duration"].as_f64().unwrap();
                assert!(d <= target * 1.5, "part of {d} s: {text}");
                let file = out.join(rendition).join(x["uri"].as_str().unwrap());
                let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
                let chunk = bytes.windows(4).any(|w| w == b"moof")
                    && bytes.windows(4).any(|w| w == b"mdat");
                assert!(chunk, "{file:?} is a CMAF chunk (moof + mdat)");
            }
        }
        // The hint names the next part: of the segment after the last listed one.
        let last = segments
            .iter()
            .rev()
            .find_map(|s| s["uri"].as_str())
            .unwrap();
        let hint = p["hint"]["uri"].as_str().unwrap();
        let number = |uri: &str| uri[4..9].parse::<u64>().unwrap();
        assert!(
            number(hint) > number(last),
            "hint {hint} after {last}: {text}"
        );
    }
    let playback = viewer.join().unwrap();
    let report = running.stop(Duration::from_secs(10));
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    // A second from the live edge (PART-HOLD-BACK) with a static server and playlist
    // polling, a busy machine can make hls.js wait for a part: what takes that away is the
    // blocking playlist reload of the crate's own origin (to come), so stalls are counted
    // here, not refused.
    playback.assert_played_live(7.0);
    eprintln!(
        "low latency from a static server: {} waiting events, {} s stalled",
        playback.waiting_events, playback.stalled_seconds
    );
    // The final playlist lists whole segments only.
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(
        !text.contains("#EXT-X-PART") && text.contains("#EXT-X-ENDLIST"),
        "{text}"
    );
}
