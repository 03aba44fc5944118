//! Low-latency DASH through the crate's origin, on the same CMAF chunks as the LL-HLS
//! parts: the live manifest lists each segment as it begins (`availabilityTimeOffset`,
//! `availabilityTimeComplete="false"`, a `ServiceDescription`), its `UTCTiming` points at
//! the origin's clock, and the origin streams the segment being written chunk by chunk
//! (chunked transfer encoding, a chunk per part) long before it is finished. Played by
//! dash.js in Chromium; the chunks read by ffprobe.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use streamvisor::origin::Origin;

use crate::browser::{play_live_from, Kind};
use crate::common::{probe_video, wait_until, LiveServer};
use crate::origin_ll::{ll_profile, start_live, start_live_with, PART};

/// A GET through the origin: status, headers (lower-case names) and body.
fn get(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build(),
    );
    let mut r = agent.get(url).call().expect("the origin answers");
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = r.body_mut().read_to_vec().unwrap_or_default();
    (r.status().as_u16(), headers, body)
}

fn text(url: &str) -> String {
    String::from_utf8(get(url).2).unwrap()
}

/// The number of the last segment a manifest lists for representation `id`: its template's
/// `startNumber` plus the segments of its `<S>` elements (each `r` more), less one.
fn last_listed(mpd: &str, id: &str) -> u64 {
    let rep = mpd
        .split("<Representation ")
        .find(|r| r.contains(&format!("id=\"{id}\"")))
        .expect("the representation");
    let rep = rep.split("</Representation>").next().unwrap();
    let number = |attr: &str, s: &str| -> Option<u64> {
        let v = s.split(&format!(" {attr}=\"")).nth(1)?;
        v.split('"').next()?.parse().ok()
    };
    let start = number("startNumber", rep).expect("startNumber");
    let count: u64 = rep
        .split("<S ")
        .skip(1)
        .map(|s| 1 + number("r", s.split("/>").next().unwrap()).unwrap_or(0))
        .sum();
    start + count - 1
}

/// The body of a chunked HTTP/1.1 response read off `stream`, with when its first body
/// byte and its end arrived.
fn read_chunked(mut stream: TcpStream) -> (String, Vec<u8>, Instant, Instant) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let mut first_body = None;
    let head_end = loop {
        let n = stream.read(&mut buf).expect("the answer");
        assert!(n > 0, "closed before the head");
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut pending = raw.split_off(head_end);
    if !pending.is_empty() {
        first_body = Some(Instant::now());
    }
    let mut body = Vec::new();
    loop {
        // One chunk: its size line, its bytes, CRLF; size 0 ends the body.
        if let Some(line_end) = pending.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                std::str::from_utf8(&pending[..line_end]).unwrap().trim(),
                16,
            )
            .expect("a chunk size");
            if size == 0 {
                return (head, body, first_body.unwrap(), Instant::now());
            }
            if pending.len() >= line_end + 2 + size + 2 {
                body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
                pending.drain(..line_end + 2 + size + 2);
                continue;
            }
        }
        let n = stream.read(&mut buf).expect("more of the body");
        assert!(n > 0, "the body ended short");
        first_body.get_or_insert_with(Instant::now);
        pending.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn the_origin_streams_the_segment_a_low_latency_manifest_lists_as_it_is_written() {
    let origin = Origin::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = origin.local_addr();
    let base = format!("http://{addr}/live");
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let running = start_live(&origin, &server, dir.path(), true);
    wait_until("a live manifest", Duration::from_secs(30), || {
        get(&format!("{base}/manifest.mpd")).0 == 200
    });
    let mpd = text(&format!("{base}/manifest.mpd"));
    for expected in [
        "type=\"dynamic\"",
        "availabilityTimeOffset=\"0.666\"",
        "availabilityTimeComplete=\"false\"",
        "<ServiceDescription",
        // The default target: four chunks.
        "<Latency target=\"1336\"",
        &format!("urn:mpeg:dash:utc:http-iso:2014\" value=\"http://{addr}/time\""),
    ] {
        assert!(mpd.contains(expected), "{expected} missing:\n{mpd}");
    }
    // The origin's clock, to the millisecond, is the wall clock.
    let now = text(&format!("http://{addr}/time"));
    assert!(now.len() == 24 && now.ends_with('Z'), "{now}");
    // The newest listed segment is the one being written: served chunked.
    let head_of = |number: u64| {
        let url = format!("{base}/240p/seg_{number:05}.m4s");
        let (status, headers, _) = get(&url);
        assert_eq!(status, 200, "{url}");
        headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    };
    let listed_while_written = (0..5).any(|_| {
        let last = last_listed(&text(&format!("{base}/manifest.mpd")), "240p");
        let chunked = head_of(last);
        std::thread::sleep(Duration::from_millis(150));
        chunked
    });
    assert!(
        listed_while_written,
        "the manifest's newest segment was never one being written"
    );
    // The segment after the newest: asked for before it begins, held, then streamed chunk
    // by chunk as the muxer flushes each part, finished a segment later.
    let next = last_listed(&text(&format!("{base}/manifest.mpd")), "240p") + 1;
    let mut socket = TcpStream::connect(addr).unwrap();
    let asked = Instant::now();
    write!(
        socket,
        "GET /live/240p/seg_{next:05}.m4s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (head, streamed, first, end) = read_chunked(socket);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let (to_first, to_end) = (first - asked, end - asked);
    eprintln!("LL-DASH: first chunk after {to_first:?}, the whole segment after {to_end:?}");
    assert!(
        to_end - to_first >= Duration::from_secs_f64(PART),
        "the first chunk came {to_first:?} after asking, the end {to_end:?}: not streamed"
    );
    // What was streamed is the finished file, and it decodes after its init segment.
    let (status, _, finished) = get(&format!("{base}/240p/seg_{next:05}.m4s"));
    assert_eq!(status, 200);
    assert_eq!(streamed, finished, "streamed bytes differ from the file");
    let init = get(&format!("{base}/240p/init_00000.mp4")).2;
    let joined = dir.path().join("joined.mp4");
    std::fs::write(&joined, [init, streamed].concat()).unwrap();
    let probe = probe_video(&joined);
    assert_eq!(probe.height, 240);
    assert!(probe.frames >= 25, "{probe:?}");
    let report = running.stop(Duration::from_secs(10));
    assert!(report.error.is_none(), "{:?}", report.error);
    // Once the stream ended, the manifest is static and lists no segment being written.
    let ended = text(&format!("{base}/manifest.mpd"));
    assert!(
        ended.contains("type=\"static\"") && !ended.contains("availabilityTimeComplete"),
        "{ended}"
    );
}

#[test]
fn dash_js_plays_low_latency_from_the_origin() {
    let origin = Origin::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}/live", origin.local_addr());
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A target of five chunks: with four, dash.js started on 0.1 s of buffer and waited
    // once when another test's browser and encodes shared the 2 cores (a loaded machine's
    // chunks come later).
    let profile = ll_profile(true).with_dash_target_latency(Duration::from_secs_f64(5.0 * PART));
    let running = start_live_with(&origin, &server, dir.path(), profile);
    wait_until("four segments", Duration::from_secs(30), || {
        let (status, _, body) = get(&format!("{base}/manifest.mpd"));
        status == 200 && last_listed(&String::from_utf8_lossy(&body), "240p") >= 4
    });
    let mpd = text(&format!("{base}/manifest.mpd"));
    assert!(mpd.contains("<Latency target=\"1670\""), "{mpd}");
    assert!(
        mpd.contains("suggestedPresentationDelay=\"PT1.67S\""),
        "{mpd}"
    );
    let playback = play_live_from(Kind::Dash, &base, "manifest.mpd", 12);
    let report = running.stop(Duration::from_secs(10));
    assert!(report.error.is_none(), "{:?}", report.error);
    playback.assert_played_live_without_stall(10.0);
    playback.print_latency("dash.js, low latency through the origin");
}
