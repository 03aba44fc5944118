//! The crate's own Low-Latency HLS origin (`origin::Origin`, feature `origin`), fed by a live
//! stream with parts through its sink: blocking playlist reloads answered when the part
//! they ask for lands, refused far ahead; the hinted part held until written; delta
//! updates; 200 clients held at once on the origin's one thread; the served playlists read
//! by the Python `m3u8` package and played by hls.js in Chromium.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamvisor::config::PlaylistMode;
use streamvisor::origin::Origin;
use streamvisor::{Container, Running, Stream, StreamConfig};

use crate::browser::{play_live_from, Kind};
use crate::common::{live_profile, threads_named, wait_until, LiveServer};

/// The part target, seconds.
pub const PART: f64 = 0.334;

/// An HTTP GET through the origin: status and body.
fn get(url: &str) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build(),
    );
    let mut r = agent.get(url).call().expect("the origin answers");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// The open segment's sequence number and the parts it lists, from a playlist's text.
fn open_part(text: &str) -> (u64, u64) {
    let mut first = 0;
    let (mut segments, mut parts) = (0, 0);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            first = v.parse().unwrap();
        } else if line.starts_with("#EXT-X-PART:") {
            parts += 1;
        } else if !line.starts_with('#') && !line.is_empty() {
            segments += 1;
            parts = 0;
        }
    }
    (first + segments, parts)
}

/// A live LL-HLS stream into `origin` under `live/` (one 240p rung and its audio, 1 s
/// segments), with a low-latency DASH manifest too when `dash`.
pub fn start_live(
    origin: &Origin,
    server: &LiveServer,
    dir: &std::path::Path,
    dash: bool,
) -> Stream<Running> {
    start_live_with(origin, server, dir, ll_profile(dash))
}

/// A 240p low-latency CMAF ladder with parts of [`PART`], and a DASH manifest if `dash`.
pub fn ll_profile(dash: bool) -> streamvisor::AbrProfile {
    live_profile(&["240p"])
        .with_container(Container::Fmp4)
        .with_dash(dash)
        .with_parts(Duration::from_secs_f64(PART))
}

/// [`start_live`] with `profile`.
pub fn start_live_with(
    origin: &Origin,
    server: &LiveServer,
    dir: &std::path::Path,
    profile: streamvisor::AbrProfile,
) -> Stream<Running> {
    let config = StreamConfig::builder("llstream", server.url(), dir.join("out"))
        .profile(profile)
        .playlist_mode(PlaylistMode::Live)
        .sink(Arc::new(origin.sink("live", None)))
        .build()
        .unwrap();
    Stream::new(config).start().unwrap()
}

#[test]
fn the_origin_holds_blocking_requests_until_their_part_lands_on_one_thread() {
    let origin = Origin::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}/live", origin.local_addr());
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let running = start_live(&origin, &server, dir.path(), false);
    let playlist = format!("{base}/240p/index.m3u8");
    wait_until("eight segments", Duration::from_secs(30), || {
        let (status, text) = get(&playlist);
        status == 200 && open_part(&text).0 >= 8
    });
    let (_, text) = get(&playlist);
    assert!(
        text.contains("CAN-BLOCK-RELOAD=YES") && text.contains("CAN-SKIP-UNTIL=6.0"),
        "{text}"
    );
    // As an LL-HLS parser nobody here wrote reads it: blocking reload, skip, and a report
    // of the other rendition (the audio) where a switch would begin.
    let read = crate::low_latency::read_with_python_m3u8(&text);
    assert_eq!(read["can_block_reload"], "YES", "{read}");
    assert_eq!(read["can_skip_until"], 6.0, "{read}");
    let reports = read["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 1, "{read}");
    assert_eq!(reports[0]["uri"], "../audio-128k/index.m3u8", "{read}");
    let own = open_part(&text).0;
    let last_msn = reports[0]["last_msn"].as_u64().unwrap();
    assert!(last_msn + 2 >= own && last_msn <= own + 1, "{read}");
    assert!(reports[0]["last_part"].is_u64(), "{read}");
    // The next part: held until it is listed, which takes a part duration or so.
    let (msn, parts) = open_part(&text);
    let next = format!("{playlist}?_HLS_msn={msn}&_HLS_part={parts}");
    let asked = Instant::now();
    let (status, held) = get(&next);
    let took = asked.elapsed();
    assert_eq!(status, 200, "{held}");
    let (m2, p2) = open_part(&held);
    assert!(
        (m2, p2) > (msn, parts),
        "{msn}.{parts} asked, {m2}.{p2} got: {held}"
    );
    assert!(took < Duration::from_secs(2), "held {took:?}");
    // Far ahead: refused at once.
    let (status, _) = get(&format!("{playlist}?_HLS_msn={}", msn + 5));
    assert_eq!(status, 400);
    // The hinted part: answered once written, a CMAF chunk.
    let (_, text) = get(&playlist);
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .map(|u| u.trim_end_matches('"').to_owned())
        .expect("a hint");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build(),
    );
    let mut r = agent.get(&format!("{base}/240p/{hint}")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cache = r
        .headers()
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.contains("immutable"), "{cache}");
    let cors = r
        .headers()
        .get("access-control-allow-origin")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cors, "*");
    let body = r.body_mut().read_to_vec().unwrap();
    assert!(body.windows(4).any(|w| w == b"moof"), "a CMAF chunk");
    // A delta update skips what is older than six target durations.
    let (status, delta) = get(&format!("{playlist}?_HLS_skip=YES"));
    assert_eq!(status, 200);
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    // 200 players held at once for the part after the next: one thread holds them all, and
    // all are answered within a part duration or so of the first.
    let (_, text) = get(&playlist);
    let (msn, parts) = open_part(&text);
    let url = format!("{playlist}?_HLS_msn={msn}&_HLS_part={}", parts + 1);
    // Other tests may run origins of their own in this process: the count must not move.
    let origin_threads = threads_named("sv-origin");
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (status, _) = get(&url);
                (status, Instant::now())
            })
        })
        .collect();
    let mut most_held = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && clients.iter().any(|c| !c.is_finished()) {
        most_held = most_held.max(origin.held_requests());
        assert_eq!(
            threads_named("sv-origin"),
            origin_threads,
            "a thread per request?"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let answered: Vec<(u16, Instant)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(answered.iter().all(|(s, _)| *s == 200), "{answered:?}");
    let first = answered.iter().map(|a| a.1).min().unwrap();
    let last = answered.iter().map(|a| a.1).max().unwrap();
    let spread = last.duration_since(first);
    assert!(most_held >= 100, "held at once: {most_held}");
    assert!(
        spread < Duration::from_secs_f64(PART * 2.0),
        "answered over {spread:?}"
    );
    eprintln!("origin: {most_held} requests held at once, all answered within {spread:?}");
    let report = running.stop(Duration::from_secs(10));
    assert!(report.error.is_none(), "{:?}", report.error);
}

#[test]
fn hls_js_plays_low_latency_from_the_origin_with_blocking_reloads() {
    let origin = Origin::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}/live", origin.local_addr());
    let server = LiveServer::start();
    let dir = tempfile::tempdir().unwrap();
    let running = start_live(&origin, &server, dir.path(), false);
    wait_until("four segments", Duration::from_secs(30), || {
        let (status, text) = get(&format!("{base}/240p/index.m3u8"));
        status == 200 && open_part(&text).0 >= 4
    });
    let playback = play_live_from(Kind::Hls, &base, "master.m3u8", 10);
    let report = running.stop(Duration::from_secs(10));
    assert!(report.error.is_none(), "{:?}", report.error);
    playback.assert_played_live_without_stall(9.0);
    // hls.js's latency behind the wall clock, from the program date-times.
    playback.print_latency("hls.js, low latency through the origin");
}

/// Glass-to-glass latency (`make latency`, not a timed test): hls.js and dash.js in Chromium
/// on a live 720p source over 127.0.0.1, a 720p + 360p `veryfast` ladder: Low-Latency HLS
/// and low-latency DASH (parts/chunks of 0.334 s, 1 s segments) through the crate's origin,
/// against the normal ladder (2 s segments, no parts) from a static server. Printed: p50,
/// p95, stalls.
#[test]
#[ignore = "a measurement of about two minutes; run by make latency"]
fn latency_report() {
    let seconds = 30;
    let run = |low_latency: bool, kind: Kind| {
        let port = crate::common::fixed_port();
        // A real-time 1280x720 30 fps MPEG-TS publisher over TCP, x264 zerolatency (as a
        // low-latency encoder upstream would be).
        let url = format!("tcp://127.0.0.1:{port}?listen=1");
        let source = crate::servers::Peer::pattern("1280x720", true, &["-f", "mpegts", &url]);
        let dir = tempfile::tempdir().unwrap();
        let origin = Origin::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut profile = streamvisor::AbrProfile::from_rungs(&["720p", "360p"])
            .unwrap()
            .with_preset("veryfast")
            .with_container(Container::Fmp4)
            .with_dash(true)
            .with_live_window(10);
        // SV_PART: another part target to measure (seconds).
        let part = std::env::var("SV_PART")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(PART);
        profile = if low_latency {
            profile
                .with_segment_duration(Duration::from_secs(1))
                .with_parts(Duration::from_secs_f64(part))
        } else {
            profile.with_segment_duration(Duration::from_secs(2))
        };
        std::thread::sleep(Duration::from_millis(500));
        let mut builder =
            StreamConfig::builder("latency", format!("tcp://127.0.0.1:{port}"), dir.path())
                .profile(profile)
                .playlist_mode(PlaylistMode::Live);
        if low_latency {
            builder = builder.sink(Arc::new(origin.sink("live", None)));
        }
        let running = Stream::new(builder.build().unwrap()).start().unwrap();
        let master = dir.path().join("master.m3u8");
        let base = format!("http://{}/live", origin.local_addr());
        wait_until("the master playlist", Duration::from_secs(30), || {
            if low_latency {
                get(&format!("{base}/master.m3u8")).0 == 200
            } else {
                master.exists()
            }
        });
        std::thread::sleep(Duration::from_secs(3));
        let entry = match kind {
            Kind::Hls => "master.m3u8",
            Kind::Dash => "manifest.mpd",
        };
        let playback = if low_latency {
            play_live_from(kind, &base, entry, seconds)
        } else {
            crate::browser::play_live(kind, dir.path(), entry, seconds)
        };
        let report = running.stop(Duration::from_secs(10));
        drop(source);
        assert!(report.error.is_none(), "{:?}", report.error);
        playback.assert_played_live(f64::from(seconds) - 2.0);
        playback
    };
    let runs = [
        ("hls.js, LL-HLS via the origin", true, Kind::Hls),
        ("dash.js, LL-DASH via the origin", true, Kind::Dash),
        ("hls.js, normal HLS", false, Kind::Hls),
        ("dash.js, normal DASH", false, Kind::Dash),
    ];
    // SV_ONLY: measure only the runs whose name contains it.
    let only = std::env::var("SV_ONLY").unwrap_or_default();
    for (name, low_latency, kind) in runs.into_iter().filter(|r| r.0.contains(&only)) {
        let p = run(low_latency, kind);
        println!(
            "{name}: latency p50 {:.2} s, p95 {:.2} s; {} waiting events, {:.2} s stalled",
            p.latency_p50.unwrap_or(f64::NAN),
            p.latency_p95.unwrap_or(f64::NAN),
            p.waiting_events,
            p.stalled_seconds
        );
    }
}
