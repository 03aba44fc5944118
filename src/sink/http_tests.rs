//! Unit tests of the HTTP sink.

use super::*;

#[test]
fn backoff_doubles_up_to_the_max_and_jitters_within_half_to_all() {
    let b = Backoff {
        retries: 10,
        initial: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    let ceilings: Vec<u64> = (1..=6).map(|k| b.ceiling(k).as_millis() as u64).collect();
    assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(1000));
    assert_eq!(b.delay(1, 0.0), Duration::from_millis(50));
    assert_eq!(b.delay(1, 1.0), Duration::from_millis(100));
    assert_eq!(b.delay(9, 7.0), Duration::from_millis(1000));
    for _ in 0..1000 {
        let u = jitter_unit();
        assert!((0.0..=1.0).contains(&u), "{u}");
        let d = b.delay(3, u);
        assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
    }
    // Not constant: two draws in a thousand differ.
    let first = jitter_unit();
    assert!((0..1000).any(|_| jitter_unit() != first));
}

#[test]
fn max_duration_is_attempts_times_timeout_plus_the_backoffs() {
    let sink = HttpSink::new("http://127.0.0.1:1/x").unwrap();
    assert_eq!(sink.max_duration(), Duration::from_secs(4 * 10 + 3 * 2));
    let sink = sink
        .retries(2)
        .timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(50), Duration::from_millis(200));
    assert_eq!(
        sink.max_duration(),
        Duration::from_millis(3 * 300 + 2 * 200)
    );
    let none = sink.retries(0);
    assert_eq!(none.max_duration(), Duration::from_millis(300));
    let b = HttpSink::new("http://h/")
        .unwrap()
        .backoff(Duration::from_secs(3), Duration::from_secs(1));
    assert_eq!(b.inner.retry.max, Duration::from_secs(3));
}

#[test]
fn urls_join_base_path_and_query_and_encode_path_elements() {
    let sink = HttpSink::new("http://u:p@127.0.0.1:8080/live/s1/?token=T&x=1").unwrap();
    assert_eq!(
        sink.inner.url("720p/seg_00001.m4s").unwrap(),
        "http://u:p@127.0.0.1:8080/live/s1/720p/seg_00001.m4s?token=T&x=1"
    );
    assert_eq!(
        sink.location("720p/seg_00001.m4s"),
        "http://***@127.0.0.1:8080/live/s1/720p/seg_00001.m4s?token=***&x=***"
    );
    let plain = HttpSink::new("HTTP://h").unwrap();
    assert_eq!(
        plain.inner.url("master.m3u8").unwrap(),
        "http://h/master.m3u8"
    );
    assert_eq!(
        plain.inner.url("a b/ü?#%.ts").unwrap(),
        "http://h/a%20b/%C3%BC%3F%23%25.ts"
    );
    for bad in ["", "/abs.ts", "a//b.ts", "a/../b.ts", "./a.ts", "a/"] {
        let e = plain.inner.url(bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(plain.create(bad).is_err(), "{bad:?}");
    }
    let debug = format!("{sink:?}");
    assert!(
        !debug.contains(":p@") && !debug.contains("token=T"),
        "{debug}"
    );
}

#[test]
fn only_http_and_https_urls_with_a_host_are_accepted_and_errors_are_redacted() {
    for bad in [
        "ftp://u:SECRET@h/x",
        "file:///tmp/x",
        "/tmp/out",
        "rtmp://h/app/SECRET",
        "http://",
        "http:///path?token=SECRET",
        "http://h/x#frag?token=SECRET",
        "http://h/a b?token=SECRET",
    ] {
        let e = HttpSink::new(bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    let https = HttpSink::new("https://h/x");
    if cfg!(feature = "https") {
        https.unwrap();
    } else {
        let e = https.unwrap_err().to_string();
        assert!(e.contains("`https` cargo feature"), "{e}");
    }
    assert!(HttpSink::new("http://[::1]:8080/").is_ok());
}

#[test]
fn headers_are_checked_and_their_values_hidden() {
    let sink = HttpSink::new("http://h/")
        .unwrap()
        .header("Authorization", "Bearer SECRET")
        .unwrap();
    let debug = format!("{sink:?}");
    assert!(
        debug.contains("authorization") && !debug.contains("SECRET"),
        "{debug}"
    );
    for (name, value) in [
        ("Content-Length", "1"),
        ("content-type", "x"),
        ("Host", "h"),
        ("bad name", "x"),
        ("X-A", "line\nbreak"),
    ] {
        let e = HttpSink::new("http://h/")
            .unwrap()
            .header(name, value)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name}");
    }
}

#[test]
fn content_types_follow_the_extension() {
    let cases = [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("720p/index.M3U8", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "application/dash+xml"),
        ("720p/seg_00001.m4s", "video/iso.segment"),
        ("720p/init.mp4", "video/mp4"),
        ("seg1.ts", "video/mp2t"),
        ("a.vtt", "text/vtt"),
        ("noext", "application/octet-stream"),
        ("dir.m3u8/file", "application/octet-stream"),
    ];
    for (path, ctype) in cases {
        assert_eq!(content_type(path), ctype, "{path}");
    }
}

#[test]
fn statuses_are_retried_only_when_transient() {
    for (code, retry) in [
        (500, true),
        (502, true),
        (503, true),
        (408, true),
        (429, true),
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (409, false),
        (301, false),
    ] {
        let f = Failure::from_status(StatusCode::from_u16(code).unwrap(), None);
        assert_eq!(f.retryable, retry, "{code}");
        assert!(f.cause.starts_with(&format!("HTTP {code} ")), "{}", f.cause);
    }
}

#[test]
fn a_dropped_file_sends_nothing_and_an_http_error_reads_well() {
    // Nothing listens on port 1: an upload would fail, a dropped file does not try.
    let sink = HttpSink::new("http://127.0.0.1:1/").unwrap().retries(0);
    let mut f = sink.create("a.m4s").unwrap();
    f.write_all(b"x").unwrap();
    drop(f);
    let e = HttpError {
        method: "PUT".into(),
        url: "http://***@h/a.m4s".into(),
        status: Some(503),
        cause: "HTTP 503 Service Unavailable".into(),
        attempts: 4,
        kind: io::ErrorKind::Other,
    };
    assert_eq!(
        e.to_string(),
        "PUT http://***@h/a.m4s: HTTP 503 Service Unavailable (4 attempts)"
    );
    let io: io::Error = e.clone().into();
    let inner = io.get_ref().unwrap().downcast_ref::<HttpError>().unwrap();
    assert_eq!(inner, &e);
    assert_eq!(inner.status(), Some(503));
}
