//! What the origin answers a request, from its files as they are now: the file, a file
//! being written (streamed as it grows), a blocking request parked until what it asks for
//! exists (LL-HLS `_HLS_msn`/`_HLS_part`, the preload-hinted part, the segment a
//! low-latency DASH manifest lists as it begins), the time (`/time`, the manifest's
//! `UTCTiming`), or an error. Pure but for the clock: the server calls it again for a
//! parked request whenever the files change, and answers 503 (or 404) when its wait is over.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::store::{Files, PlaylistState};
use crate::output::naming::{parse_part, parse_segment};
use crate::output::xs;

/// The path of the origin's clock: `GET /time` answers the time, xs:dateTime to the
/// millisecond (DASH `UTCTiming` `http-iso`).
pub(crate) const TIME_PATH: &str = "time";

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub method: String,
    /// The path without its leading `/`, percent-decoding not needed (our names are plain).
    pub path: String,
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: bool,
    /// Why its LL-HLS directives are malformed (a value that is no sequence number, a part
    /// without a segment): a playlist request answers 400 with it.
    pub malformed: Option<&'static str>,
    /// The client asked to close the connection after the answer.
    pub close: bool,
    /// Its `Host` header (the origin's address as the client knows it).
    pub host: Option<String>,
}

impl Request {
    /// Reads a request target (`/dir/file?query`).
    pub fn new(method: &str, target: &str, close: bool) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut r = Request {
            method: method.to_owned(),
            path: path.trim_start_matches('/').to_owned(),
            msn: None,
            part: None,
            skip: false,
            malformed: None,
            close,
            host: None,
        };
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("_HLS_msn", v)) => {
                    r.msn = number(
                        v,
                        "_HLS_msn is not a media sequence number",
                        &mut r.malformed,
                    );
                }
                Some(("_HLS_part", v)) => {
                    r.part = number(v, "_HLS_part is not a part index", &mut r.malformed);
                }
                Some(("_HLS_skip", v)) => r.skip = v == "YES" || v == "v2",
                _ => {}
            }
        }
        if r.part.is_some() && r.msn.is_none() && r.malformed.is_none() {
            // RFC 8216bis 6.2.5.2: a server MUST answer 400 then.
            r.malformed = Some("_HLS_part without _HLS_msn");
        }
        r
    }
}

/// A directive's value as a number; `None`, with `why` as the request's fault, when it is
/// not one.
fn number(value: &str, why: &'static str, malformed: &mut Option<&'static str>) -> Option<u64> {
    let n = value.parse().ok();
    if n.is_none() {
        *malformed = Some(why);
    }
    n
}

/// A response: status, headers that depend on the file, and the body.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub body: Arc<Vec<u8>>,
}

/// What to do with a request now.
#[derive(Debug)]
pub(crate) enum Answer {
    Now(Response),
    /// Ask again when the files change, until this long after the request came; then
    /// answer with the response given.
    Wait(Duration, Response),
    /// The file at this path is being written: stream it as it grows (chunked), to its end.
    Stream(String),
}

fn error(status: u16, why: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        cache_control: "no-store",
        body: Arc::new(format!("{why}\n").into_bytes()),
    }
}

pub(crate) fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        Some("ts") => "video/mp2t",
        _ => "application/octet-stream",
    }
}

/// The answer to `req` from `files`.
pub(crate) fn answer(files: &Files, req: &Request) -> Answer {
    if req.method == "OPTIONS" {
        // A CORS preflight: the headers say it all; a 204 has no body.
        return Answer::Now(Response {
            status: 204,
            content_type: "text/plain; charset=utf-8",
            cache_control: "no-store",
            body: Arc::new(Vec::new()),
        });
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Answer::Now(error(405, "GET, HEAD or OPTIONS only"));
    }
    let plain = req
        .path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if req.path.is_empty() || !plain || req.path.split('/').any(|s| s == ".." || s.is_empty()) {
        return Answer::Now(error(404, "no such file"));
    }
    if req.path == TIME_PATH {
        return Answer::Now(Response {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            cache_control: "no-store",
            body: Arc::new(xs::date_time_ms(SystemTime::now()).into_bytes()),
        });
    }
    if let Some(state) = files.playlists.get(&req.path) {
        return playlist(files, req, state);
    }
    if let Some(body) = files.files.get(&req.path) {
        let manifest = req.path.ends_with(".mpd");
        let cache_control = if req.path.ends_with(".m3u8") || manifest {
            "no-cache"
        } else {
            "max-age=31536000, immutable"
        };
        let body = match manifest {
            true => Arc::new(served_manifest(body, req.host.as_deref()).into_bytes()),
            false => body.clone(),
        };
        return Answer::Now(Response {
            status: 200,
            content_type: content_type(&req.path),
            cache_control,
            body,
        });
    }
    if files.growing.contains_key(&req.path) {
        return Answer::Stream(req.path.clone());
    }
    match held(files, &req.path) {
        Some(target) => Answer::Wait(
            Duration::from_secs_f64(3.0 * target.max(1.0)),
            error(404, "the part or segment was not written in time"),
        ),
        None => Answer::Now(error(404, "no such file")),
    }
}

/// How long to hold a request for `path`, not written yet, in target durations of its
/// playlist: the part a playlist's preload hint names (a blocking part request), and, with
/// parts, the segment being written or the next (a low-latency DASH player asks for a
/// segment as its first chunk is due, by the wall clock).
fn held(files: &Files, path: &str) -> Option<f64> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    files.playlists.iter().find_map(|(p, s)| {
        let p_dir = p.rsplit_once('/').map_or("", |(d, _)| d);
        if p_dir != dir || s.ended {
            return None;
        }
        let hinted = s.hint.as_deref() == Some(name);
        let open = s.hint.as_deref().and_then(parse_part).map(|(file, _)| file);
        let segment = parse_segment(name).map(|(file, _)| file);
        let coming = matches!((open, segment), (Some(o), Some(f)) if f == o || f == o + 1);
        (hinted || coming).then_some(s.target)
    })
}

/// A DASH manifest as this origin serves it: a live one's `UTCTiming` points at the
/// origin's clock (`http-iso`, `/time` on the host the player asked) instead of carrying
/// the render time, which is too coarse at low latency.
pub(crate) fn served_manifest(body: &[u8], host: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"')) else {
        return text;
    };
    let Some(start) = text.find("<UTCTiming") else {
        return text;
    };
    let Some(len) = text[start..].find("/>") else {
        return text;
    };
    let timing = format!(
        "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"http://{host}/{TIME_PATH}\"/>"
    );
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(&text[..start]);
    out.push_str(&timing);
    out.push_str(&text[start + len + 2..]);
    out
}

/// A media playlist: at once, held until it holds what `_HLS_msn`/`_HLS_part` ask for
/// (at most three target durations, then 503), or refused (400) for a segment more than
/// two ahead. Served with the blocking reload and delta updates advertised.
fn playlist(files: &Files, req: &Request, state: &PlaylistState) -> Answer {
    if let Some(why) = req.malformed {
        return Answer::Now(error(400, why));
    }
    if let Some(msn) = req.msn {
        if !state.ended && msn > state.open_msn + 1 {
            return Answer::Now(error(400, "_HLS_msn is more than two segments ahead"));
        }
        if !state.ended
            && req
                .part
                .is_some_and(|p| parts_ahead(state, msn, p) > advance_part_limit(state))
        {
            return Answer::Now(error(400, "_HLS_part is beyond the advance part limit"));
        }
        if !state.holds(msn, req.part) {
            let wait = Duration::from_secs_f64(3.0 * state.target.max(1.0));
            return Answer::Wait(
                wait,
                error(503, "not written within three target durations"),
            );
        }
    }
    let text = files
        .files
        .get(&req.path)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let text = if state.low_latency && !state.ended {
        served(&text, state.target, req.skip) + &rendition_reports(files, &req.path)
    } else {
        text
    };
    Answer::Now(Response {
        status: 200,
        content_type: content_type(&req.path),
        cache_control: "no-cache",
        body: Arc::new(text.into_bytes()),
    })
}

/// How many parts part `part` of segment `msn` is ahead of the newest listed (counting a
/// segment as the parts the last whole one had, or the target durations' ratio; 0 when it
/// is listed or behind).
fn parts_ahead(state: &PlaylistState, msn: u64, part: u64) -> u64 {
    let nominal = state
        .part_target
        .map_or(1, |p| (state.target / p).ceil() as u64);
    let per_segment = match state.last_parts {
        0 => nominal,
        n => n,
    };
    let per_segment = per_segment.max(state.open_parts).max(1);
    let asked = msn.saturating_mul(per_segment).saturating_add(part);
    let listed = state.open_msn.saturating_mul(per_segment) + state.open_parts;
    asked.saturating_add(1).saturating_sub(listed)
}

/// RFC 8216bis's Advance Part Limit: three part targets' worth of parts (three seconds'
/// worth below one second).
fn advance_part_limit(state: &PlaylistState) -> u64 {
    let part = state.part_target.unwrap_or(1.0);
    if part < 1.0 {
        (3.0 / part).ceil() as u64
    } else {
        3
    }
}

/// `EXT-X-RENDITION-REPORT`s of the other low-latency media playlists beside `path` (in the
/// sibling directories of its own: the other renditions of the stream), so a player
/// switching renditions asks for the right part at once.
fn rendition_reports(files: &Files, path: &str) -> String {
    let parent = |p: &str| -> Option<(String, String)> {
        let (dir, _) = p.rsplit_once('/')?;
        let (up, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        Some((up.to_owned(), name.to_owned()))
    };
    let Some((up, own)) = parent(path) else {
        return String::new();
    };
    let mut reports: Vec<(String, String)> = files
        .playlists
        .iter()
        .filter(|(p, s)| s.low_latency && !s.ended && p.as_str() != path)
        .filter_map(|(p, s)| {
            let (p_up, name) = parent(p)?;
            let file = p.rsplit_once('/')?.1;
            let (msn, part) = s.last_part()?;
            (p_up == up && name != own).then(|| {
                let part = part.map_or(String::new(), |n| format!(",LAST-PART={n}"));
                let line = format!(
                    "#EXT-X-RENDITION-REPORT:URI=\"../{name}/{file}\",LAST-MSN={msn}{part}\n"
                );
                (p.clone(), line)
            })
        })
        .collect();
    reports.sort();
    reports.into_iter().map(|(_, line)| line).collect()
}

/// The playlist as this origin serves it: `CAN-BLOCK-RELOAD=YES` and `CAN-SKIP-UNTIL` (six
/// target durations) added to `EXT-X-SERVER-CONTROL`, version 9, and with `skip` the
/// segments older than that replaced by `#EXT-X-SKIP` (a delta update).
pub(crate) fn served(text: &str, target: f64, skip: bool) -> String {
    let skip_until = 6.0 * target;
    // The segments, as groups of lines ending with a URI; the header before them.
    let mut header = Vec::new();
    let mut groups: Vec<(Vec<&str>, f64)> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_segments = false;
    for line in text.lines() {
        let segment_tag = [
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-MAP",
            "#EXT-X-PROGRAM-DATE-TIME",
            "#EXT-X-PART:",
            "#EXTINF",
        ]
        .iter()
        .any(|t| line.starts_with(t) && !line.starts_with("#EXT-X-DISCONTINUITY-SEQUENCE"));
        in_segments |= segment_tag;
        if !in_segments {
            header.push(line);
            continue;
        }
        current.push(line);
        if !line.is_empty() && !line.starts_with('#') {
            let duration = current
                .iter()
                .find_map(|l| l.strip_prefix("#EXTINF:"))
                .and_then(|d| d.trim_end_matches(',').parse().ok())
                .unwrap_or(0.0);
            groups.push((std::mem::take(&mut current), duration));
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in header {
        let line = match line {
            l if l.starts_with("#EXT-X-VERSION:") => "#EXT-X-VERSION:9".to_owned(),
            l if l.starts_with("#EXT-X-SERVER-CONTROL:") => {
                format!("{l},CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until:.1}")
            }
            l => l.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    // Skipped: the oldest segments that end more than CAN-SKIP-UNTIL before the last one's
    // end.
    let total: f64 = groups.iter().map(|g| g.1).sum();
    let mut skipped = 0;
    let mut map = None;
    if skip {
        let mut start = 0.0;
        for (lines, d) in &groups {
            if total - start - d < skip_until {
                break;
            }
            map = lines
                .iter()
                .rev()
                .find(|l| l.starts_with("#EXT-X-MAP"))
                .copied()
                .or(map);
            start += d;
            skipped += 1;
        }
    }
    if skipped > 0 {
        out.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n"));
        let next_has_map = groups[skipped..]
            .first()
            .is_some_and(|(l, _)| l.iter().any(|x| x.starts_with("#EXT-X-MAP")));
        if let (Some(m), false) = (map, next_has_map) {
            out.push_str(m);
            out.push('\n');
        }
    }
    for (lines, _) in &groups[skipped..] {
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    for l in current {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Files {
        let mut f = Files::default();
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.334\n\
             #EXT-X-SERVER-CONTROL:PART-HOLD-BACK=1.002\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"init_00000.mp4\"\n",
        );
        for n in 0..10 {
            text.push_str(&format!("#EXTINF:1.0,\nseg_{n:05}.m4s\n"));
        }
        text.push_str("#EXT-X-PART:DURATION=0.334,URI=\"seg_00010.0.m4s\",INDEPENDENT=YES\n");
        text.push_str("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg_00010.1.m4s\"\n");
        f.playlists
            .insert("a/index.m3u8".into(), PlaylistState::of(&text).unwrap());
        f.files
            .insert("a/index.m3u8".into(), Arc::new(text.into_bytes()));
        f.files
            .insert("a/seg_00010.0.m4s".into(), Arc::new(vec![1]));
        f
    }

    fn get(target: &str) -> Request {
        Request::new("GET", target, false)
    }

    #[test]
    fn malformed_directives_and_parts_past_the_advance_limit_are_refused() {
        let f = files();
        let status = |t: &str| match answer(&f, &get(t)) {
            Answer::Now(r) => r.status,
            Answer::Wait(..) => 0,
            Answer::Stream(_) => 1,
        };
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=abc",
            "_HLS_msn=-1",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=10&_HLS_part=x",
            "_HLS_msn=10&_HLS_part=",
            // The limit: 3 s of 0.334 s parts (9) past the newest listed (10.0).
            "_HLS_msn=10&_HLS_part=10",
            "_HLS_msn=11&_HLS_part=7",
        ] {
            assert_eq!(status(&format!("/a/index.m3u8?{bad}")), 400, "{bad}");
        }
        for held in ["_HLS_msn=10&_HLS_part=9", "_HLS_msn=11&_HLS_part=6"] {
            assert_eq!(status(&format!("/a/index.m3u8?{held}")), 0, "{held}");
        }
        // Directives mean nothing to a segment request.
        assert_eq!(status("/a/seg_00010.0.m4s?_HLS_msn=abc"), 200);
    }

    #[test]
    fn blocking_reloads_wait_for_the_part_and_refuse_the_far_future() {
        let f = files();
        let now = |t: &str| matches!(answer(&f, &get(t)), Answer::Now(r) if r.status == 200);
        assert!(now("/a/index.m3u8"));
        assert!(now("/a/index.m3u8?_HLS_msn=9"), "a whole segment listed");
        assert!(
            now("/a/index.m3u8?_HLS_msn=10&_HLS_part=0"),
            "a part listed"
        );
        assert!(matches!(
            answer(&f, &get("/a/index.m3u8?_HLS_msn=10&_HLS_part=1")),
            Answer::Wait(_, r) if r.status == 503
        ));
        assert!(matches!(
            answer(&f, &get("/a/index.m3u8?_HLS_msn=12")),
            Answer::Now(r) if r.status == 400
        ));
        // The hinted part waits; another missing one is not found; no escaping the root.
        assert!(matches!(
            answer(&f, &get("/a/seg_00010.1.m4s")),
            Answer::Wait(..)
        ));
        assert!(
            matches!(answer(&f, &get("/a/seg_00011.1.m4s")), Answer::Now(r) if r.status == 404)
        );
        assert!(matches!(answer(&f, &get("/a/../x")), Answer::Now(r) if r.status == 404));
        assert!(
            matches!(answer(&f, &get("/a/seg_00010.0.m4s")), Answer::Now(r) if r.cache_control.contains("immutable"))
        );
    }

    #[test]
    fn a_served_playlist_reports_the_other_renditions() {
        let mut f = files();
        let other = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.334\n\
                     #EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-PART:DURATION=0.334,URI=\"seg_00003.0.m4s\"\n\
                     #EXT-X-PART:DURATION=0.334,URI=\"seg_00003.1.m4s\"\n#EXTINF:1.0,\nseg_00003.m4s\n";
        f.playlists
            .insert("b/index.m3u8".into(), PlaylistState::of(other).unwrap());
        let Answer::Now(r) = answer(&f, &get("/a/index.m3u8")) else {
            panic!("at once");
        };
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(
            text.ends_with(
                "#EXT-X-RENDITION-REPORT:URI=\"../b/index.m3u8\",LAST-MSN=3,LAST-PART=1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("URI=\"../a/"), "{text}");
    }

    #[test]
    fn a_segment_being_written_streams_and_the_next_ones_are_held() {
        let mut f = files();
        f.growing
            .insert("a/seg_00010.m4s".into(), Arc::new(vec![1, 2]));
        assert!(
            matches!(answer(&f, &get("/a/seg_00010.m4s")), Answer::Stream(p) if p == "a/seg_00010.m4s")
        );
        // The hint names segment 10: its successor may be asked for early; later ones not.
        assert!(matches!(
            answer(&f, &get("/a/seg_00011.m4s")),
            Answer::Wait(..)
        ));
        assert!(matches!(answer(&f, &get("/a/seg_00012.m4s")), Answer::Now(r) if r.status == 404));
        assert!(matches!(answer(&f, &get("/b/seg_00011.m4s")), Answer::Now(r) if r.status == 404));
    }

    #[test]
    fn the_clock_and_the_manifest_timing_point_at_the_origin() {
        let f = files();
        let Answer::Now(r) = answer(&f, &get("/time")) else {
            panic!("the time at once");
        };
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        let t = xs::parse_date_time(&text).expect(&text);
        let off = SystemTime::now().duration_since(t).unwrap_or_default();
        assert!(
            off < Duration::from_secs(2) && r.cache_control == "no-store",
            "{text}"
        );
        let mpd = b"<MPD>\n  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"x\"/>\n</MPD>\n";
        let served = served_manifest(mpd, Some("127.0.0.1:8080"));
        assert_eq!(
            served,
            "<MPD>\n  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" \
             value=\"http://127.0.0.1:8080/time\"/>\n</MPD>\n"
        );
        // A host that could break out of the attribute is not written into it.
        let odd = served_manifest(mpd, Some("a\"b"));
        assert!(odd.contains("direct:2014"), "{odd}");
    }

    #[test]
    fn a_delta_update_skips_the_old_segments_and_keeps_the_map() {
        let f = files();
        let text = String::from_utf8(f.files["a/index.m3u8"].to_vec()).unwrap();
        let full = served(&text, 1.0, false);
        assert!(
            full.contains("CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0"),
            "{full}"
        );
        assert!(full.contains("#EXT-X-VERSION:9") && full.contains("seg_00000.m4s"));
        let delta = served(&text, 1.0, true);
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"),
            "{delta}"
        );
        assert!(!delta.contains("seg_00003.m4s") && delta.contains("seg_00004.m4s"));
        assert!(
            delta.contains("#EXT-X-MAP:URI=\"init_00000.mp4\""),
            "{delta}"
        );
        assert!(delta.contains("#EXT-X-PRELOAD-HINT"), "{delta}");
    }
}
