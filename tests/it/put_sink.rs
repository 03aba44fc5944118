//! `HttpSink` against real origins: nginx's WebDAV module (PUT, replace, DELETE, an origin
//! that fails or goes away and comes back, one that refuses), a dead port, a stalled origin,
//! and the test-owned origin of `origin.rs` (request log, chosen failures, keep-alive).

use std::io::Write;
use std::time::{Duration, Instant};

use streamvisor::sink::{HttpError, HttpSink, SegmentSink};

use crate::common::{fixed_port, xorshift_bytes};
use crate::origin::Origin;
use crate::servers::Nginx;

/// The body at `url`, or `None` for a 404.
fn get(url: &str) -> Option<Vec<u8>> {
    match ureq::get(url).call() {
        Ok(mut r) => Some(
            r.body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .unwrap(),
        ),
        Err(ureq::Error::StatusCode(404)) => None,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Quick and many retries for tests against a live origin: 3 to 6 s of backoff in all
/// (nginx restarting on a loaded machine), each at most 200 ms.
fn quick(sink: HttpSink) -> HttpSink {
    sink.retries(30)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .timeout(Duration::from_secs(5))
}

/// The `HttpError` inside an error from the sink.
fn http_error(e: &std::io::Error) -> &HttpError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<HttpError>())
        .unwrap_or_else(|| panic!("not an HttpError: {e:?}"))
}

#[test]
fn files_are_put_and_read_back_byte_for_byte_from_nginx() {
    let nginx = Nginx::webdav();
    let sink = quick(HttpSink::new(&nginx.http_url("live/s1")).unwrap());
    let segment = xorshift_bytes(7, 1 << 20);
    let mut f = sink.create("720p/seg_00001.m4s").unwrap();
    for chunk in segment.chunks(4000) {
        f.write_all(chunk).unwrap();
    }
    assert_eq!(f.finish().unwrap(), segment.len() as u64);
    let init = xorshift_bytes(9, 1234);
    let mut f = sink.create("720p/init.mp4").unwrap();
    f.write_all(&init).unwrap();
    f.finish().unwrap();
    assert_eq!(sink.create("720p/empty.m4s").unwrap().finish().unwrap(), 0);
    let mut torn = sink.create("720p/torn.m4s").unwrap();
    torn.write_all(b"never sent").unwrap();
    drop(torn);

    let url = |p: &str| nginx.http_url(&format!("live/s1/{p}"));
    assert!(get(&url("720p/seg_00001.m4s")).unwrap() == segment);
    assert_eq!(get(&url("720p/init.mp4")).unwrap(), init);
    assert_eq!(get(&url("720p/empty.m4s")).unwrap(), b"");
    assert_eq!(get(&url("720p/torn.m4s")), None);
    assert_eq!(
        sink.location("720p/init.mp4"),
        nginx.http_url("live/s1/720p/init.mp4")
    );
}

#[test]
fn replace_swaps_a_whole_file_and_readers_never_see_a_part() {
    let nginx = Nginx::webdav();
    let sink = quick(HttpSink::new(&nginx.http_url("")).unwrap());
    let url = nginx.http_url("index.m3u8");
    let long = xorshift_bytes(1, 200_000);
    let short = xorshift_bytes(2, 3_000);
    sink.replace("index.m3u8", &long).unwrap();
    assert!(get(&url).unwrap() == long);
    sink.replace("index.m3u8", &short).unwrap();
    assert_eq!(get(&url).unwrap(), short);

    // A reader polling while the writer alternates sees one version or the other, whole.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = get(&url).expect("the playlist is always there");
                assert!(
                    body == long || body == short,
                    "a torn read: {} bytes",
                    body.len()
                );
                reads += 1;
            }
            reads
        });
        for i in 0..60 {
            let body = if i % 2 == 0 { &long } else { &short };
            sink.replace("index.m3u8", body).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert!(reads > 0);
}

#[test]
fn delete_removes_and_a_missing_file_is_not_an_error() {
    let nginx = Nginx::webdav();
    let sink = quick(HttpSink::new(&nginx.http_url("out")).unwrap());
    sink.replace("a/seg_1.ts", b"x").unwrap();
    assert_eq!(get(&nginx.http_url("out/a/seg_1.ts")).unwrap(), b"x");
    sink.delete("a/seg_1.ts").unwrap();
    assert_eq!(get(&nginx.http_url("out/a/seg_1.ts")), None);
    sink.delete("a/seg_1.ts").unwrap();
    sink.delete("never/was.ts").unwrap();
}

#[test]
fn a_failing_origin_is_retried_until_it_recovers() {
    let nginx = Nginx::webdav();
    let sink = quick(HttpSink::new(&nginx.http_url("")).unwrap());
    nginx.fail(Some(500));
    let started = Instant::now();
    std::thread::scope(|s| {
        let put = s.spawn(|| sink.replace("live.m3u8", b"#EXTM3U\n"));
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !put.is_finished(),
            "the PUT gave up or succeeded while nginx failed"
        );
        nginx.fail(None);
        put.join().unwrap().unwrap();
    });
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(get(&nginx.http_url("live.m3u8")).unwrap(), b"#EXTM3U\n");
}

#[test]
fn an_origin_that_goes_away_and_comes_back_gets_the_file() {
    let mut nginx = Nginx::webdav();
    let sink = quick(HttpSink::new(&nginx.http_url("")).unwrap());
    sink.replace("first.ts", b"1").unwrap(); // a pooled connection that will go stale
    nginx.stop();
    let body = xorshift_bytes(3, 100_000);
    std::thread::scope(|s| {
        let put = s.spawn(|| {
            let mut f = sink.create("second.ts").unwrap();
            f.write_all(&body).unwrap();
            f.finish()
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(!put.is_finished(), "the PUT gave up while nginx was down");
        nginx.start_again();
        assert_eq!(put.join().unwrap().unwrap(), body.len() as u64);
    });
    assert!(get(&nginx.http_url("second.ts")).unwrap() == body);
}

#[test]
fn client_errors_fail_at_once_and_server_errors_after_the_retries() {
    let nginx = Nginx::webdav();
    let sink = HttpSink::new(&nginx.http_url(""))
        .unwrap()
        .retries(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(50));
    let e = sink.replace("forbidden/x.m3u8", b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    let h = http_error(&e);
    assert_eq!(
        (h.status(), h.attempts(), h.method()),
        (Some(403), 1, "PUT")
    );
    assert_eq!(h.url(), nginx.http_url("forbidden/x.m3u8"));

    let e = sink.delete("always500/x.ts").unwrap_err();
    let h = http_error(&e);
    assert_eq!(
        (h.status(), h.attempts(), h.method()),
        (Some(500), 3, "DELETE")
    );
    let shown = e.to_string();
    assert!(
        shown.contains("HTTP 500 Internal Server Error") && shown.contains("3 attempts"),
        "{shown}"
    );
}

#[test]
fn a_dead_origin_fails_within_the_bound_naming_the_redacted_url() {
    let port = fixed_port(); // nothing listens there
    let base = format!("http://user:SECRETPW@127.0.0.1:{port}/live?token=SECRETTK");
    let sink = HttpSink::new(&base)
        .unwrap()
        .retries(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .timeout(Duration::from_millis(500));
    let bound = sink.max_duration();
    assert_eq!(bound, Duration::from_millis(4 * 500 + 3 * 200));
    let shown_url = format!("http://***@127.0.0.1:{port}/live/seg.m4s?token=***");
    assert_eq!(sink.location("seg.m4s"), shown_url);

    let started = Instant::now();
    let mut f = sink.create("seg.m4s").unwrap();
    f.write_all(b"data").unwrap();
    let e = f.finish().unwrap_err();
    let took = started.elapsed();
    assert!(
        took <= bound + Duration::from_secs(1),
        "{took:?} > {bound:?}"
    );
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e:?}");
    let h = http_error(&e);
    assert_eq!((h.status(), h.attempts()), (None, 4));
    assert_eq!(h.url(), shown_url);
    for shown in [
        e.to_string(),
        format!("{e:?}"),
        format!("{sink:?}"),
        sink.replace("x.m3u8", b"x").unwrap_err().to_string(),
        format!("{:?}", sink.delete("x.ts").unwrap_err()),
    ] {
        assert!(!shown.contains("SECRET"), "a secret shows: {shown}");
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    }
    assert!(e.to_string().contains(&shown_url), "{e}");
}

#[test]
fn a_stalled_origin_times_out_within_the_bound() {
    let origin = Origin::start();
    origin.stall_first(usize::MAX, "PUT", "", Duration::from_secs(3));
    let sink = HttpSink::new(&origin.url("s"))
        .unwrap()
        .retries(1)
        .backoff(Duration::from_millis(50), Duration::from_millis(100))
        .timeout(Duration::from_millis(400));
    let started = Instant::now();
    let e = sink.replace("a.m3u8", b"x").unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2 * 400), "{took:?}");
    assert!(
        took <= sink.max_duration() + Duration::from_secs(1),
        "{took:?} > {:?}",
        sink.max_duration()
    );
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e:?}");
    assert_eq!(http_error(&e).attempts(), 2);
}

#[test]
fn the_test_origin_records_requests_and_fails_what_it_is_told() {
    let origin = Origin::start();
    origin.fail_first(2, "PUT", "seg_2", 500);
    origin.fail_first(1, "*", "index", 429);
    origin.fail_when(|method, path| (method == "PUT" && path.contains("refused")).then_some(403));
    let sink = HttpSink::new(&format!(
        "http://alice:pw@127.0.0.1:{}/live?token=T",
        origin.port()
    ))
    .unwrap()
    .retries(3)
    .backoff(Duration::from_millis(10), Duration::from_millis(40))
    .header("X-Origin-Key", "K")
    .unwrap();

    for (name, len) in [("720p/seg_1.m4s", 1000), ("720p/seg_2.m4s", 2000)] {
        let mut f = sink.create(name).unwrap();
        f.write_all(&xorshift_bytes(5, len)).unwrap();
        f.finish().unwrap();
    }
    sink.replace("720p/index.m3u8", b"#EXTM3U\n").unwrap();
    sink.delete("720p/seg_1.m4s").unwrap();
    sink.delete("720p/seg_1.m4s").unwrap();
    let e = sink.replace("refused.m3u8", b"x").unwrap_err();
    assert_eq!(http_error(&e).attempts(), 1);

    let log = origin.requests();
    let seen: Vec<(&str, &str, usize, u16)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.body_len, r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("PUT", "/live/720p/seg_1.m4s", 1000, 201),
            ("PUT", "/live/720p/seg_2.m4s", 2000, 500),
            ("PUT", "/live/720p/seg_2.m4s", 2000, 500),
            ("PUT", "/live/720p/seg_2.m4s", 2000, 201),
            ("PUT", "/live/720p/index.m3u8", 8, 429),
            ("PUT", "/live/720p/index.m3u8", 8, 201),
            ("DELETE", "/live/720p/seg_1.m4s", 0, 204),
            ("DELETE", "/live/720p/seg_1.m4s", 0, 404),
            ("PUT", "/live/refused.m3u8", 1, 403),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(log.iter().all(|r| r.query.as_deref() == Some("token=T")));
    assert!(log.iter().all(|r| r.header("x-origin-key") == Some("K")));
    // alice:pw as HTTP Basic.
    assert!(log
        .iter()
        .all(|r| r.header("authorization") == Some("Basic YWxpY2U6cHc=")));
    assert_eq!(log[0].header("content-type"), Some("video/iso.segment"));
    assert_eq!(log[0].header("content-length"), Some("1000"));
    assert_eq!(
        log[4].header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    // Kept alive: the successful requests share connections.
    let connections: std::collections::BTreeSet<usize> = log.iter().map(|r| r.connection).collect();
    assert!(connections.len() < log.len(), "{connections:?}");

    assert_eq!(
        origin.paths(),
        ["/live/720p/index.m3u8", "/live/720p/seg_2.m4s"]
    );
    assert_eq!(
        origin.file("/live/720p/seg_2.m4s").unwrap(),
        xorshift_bytes(5, 2000)
    );
    assert_eq!(
        get(&origin.url("live/720p/index.m3u8")).unwrap(),
        b"#EXTM3U\n"
    );
    origin.clear_failures();
    sink.replace("refused.m3u8", b"ok").unwrap();
}

#[test]
fn the_test_origin_retries_a_stalled_request_and_stores_the_retry() {
    let origin = Origin::start();
    origin.stall_first(1, "PUT", "seg", Duration::from_millis(1500));
    let sink = HttpSink::new(&origin.url(""))
        .unwrap()
        .retries(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .timeout(Duration::from_millis(300));
    sink.replace("seg.ts", b"abc").unwrap();
    assert_eq!(origin.file("/seg.ts").unwrap(), b"abc");
    // The stalled request is logged when it finishes, after the retry.
    let wait = Instant::now() + Duration::from_secs(5);
    while origin.requests().len() < 2 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = origin.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].connection != log[1].connection);
}
