//! Prometheus metrics: `Manager::render_metrics` and the `manager` example's `/metrics`,
//! parsed by a real OpenMetrics parser (`prometheus_client`'s, from PyPI or Debian, which
//! `make deps` installs: the format the page declares, `Manager::METRICS_CONTENT_TYPE`) and
//! checked against `Manager::stats`, `list` and `pool_usage`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamvisor::manager::Refusal;
use streamvisor::{
    AbrProfile, Error, Manager, ResourceCapacity, StreamConfig, StreamState, StreamStats,
};

/// Parses a page with `prometheus_client.openmetrics.parser.text_string_to_metric_families`
/// (strict: it refuses a page without `# EOF`, a sample outside its family, a bad escape);
/// its families as JSON (`name`, `type`, `help`, `samples`: `name`, `labels`, `value`).
const PARSER: &str = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
families = [
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

/// One parsed sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A page as the real parser read it, checked for the rules a scraper relies on: every
/// family typed (counter or gauge) and documented, counters' samples named `..._total`,
/// no family or series twice.
struct Page {
    samples: Vec<Sample>,
}

fn parse(text: &str) -> Page {
    let out = crate::common::python(PARSER, text);
    assert_ne!(
        out.status.code(),
        Some(3),
        "the Python package prometheus-client is missing: `python3 -m pip install \
         prometheus-client` (make deps installs it)"
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = HashSet::new();
    let mut series = HashSet::new();
    let mut samples = Vec::new();
    for f in &families {
        let name = f["name"].as_str().unwrap();
        let kind = f["type"].as_str().unwrap();
        assert!(names.insert(name.to_owned()), "family {name} twice");
        assert!(
            kind == "counter" || kind == "gauge",
            "{name} is {kind}: a sample outside its family?\n{text}"
        );
        assert!(!f["help"].as_str().unwrap().is_empty(), "{name}: no help");
        assert!(name.starts_with("streamvisor_"), "{name}");
        for s in f["samples"].as_array().unwrap() {
            let sample = Sample {
                name: s["name"].as_str().unwrap().to_owned(),
                labels: serde_json::from_value(s["labels"].clone()).unwrap(),
                value: s["value"].as_f64().unwrap(),
            };
            if kind == "counter" {
                // OpenMetrics names a counter family without its samples' `_total`.
                assert_eq!(sample.name, format!("{name}_total"), "counter sample");
            } else {
                assert_eq!(sample.name, name, "gauge sample");
            }
            assert!(
                sample.value.is_finite() && sample.value >= 0.0,
                "{sample:?}"
            );
            let key = format!("{}{:?}", sample.name, sample.labels);
            assert!(series.insert(key.clone()), "{key} twice");
            samples.push(sample);
        }
    }
    Page { samples }
}

impl Page {
    /// The value of the one sample with this name whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0].value
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &[(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples.iter().filter(move |s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
    }

    /// The label values of `label` among the samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> HashSet<String> {
        self.matching(name, &[])
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }
}

/// A stream paced to real time (until stopped) with the given rungs, ultrafast, 1 s
/// segments.
fn live(id: &str, out: &std::path::Path, rungs: &[&str]) -> StreamConfig {
    let profile = AbrProfile::from_rungs(rungs)
        .unwrap()
        .with_preset("ultrafast")
        .with_keep_taller_rungs(true)
        .with_segment_duration(Duration::from_secs(1));
    StreamConfig::builder(
        id,
        "lavfi:testsrc2=size=320x180:rate=15,realtime",
        out.join(id),
    )
    .local_files_under("/")
    .allow_generated_sources(true)
    .profile(profile)
    .build()
    .unwrap()
}

/// `lo <= v <= hi`, for a counter read between two snapshots.
fn between(what: &str, lo: f64, v: f64, hi: f64) {
    assert!(lo <= v && v <= hi, "{what}: {v} not within [{lo}, {hi}]");
}

/// Checks one stream's figures in `page` against the stats taken just before and after.
fn check_stream(page: &Page, id: &str, before: &StreamStats, after: &StreamStats) {
    let s = [("stream", id)];
    type Read = fn(&StreamStats) -> f64;
    let figures: [(&str, Read); 8] = [
        ("streamvisor_stream_frames_in_total", |x| x.frames_in as f64),
        ("streamvisor_stream_packets_in_total", |x| {
            x.packets_in as f64
        }),
        ("streamvisor_stream_bytes_in_total", |x| x.bytes_in as f64),
        ("streamvisor_stream_bytes_out_total", |x| x.bytes_out as f64),
        ("streamvisor_stream_media_seconds_total", |x| {
            x.media_time.as_secs_f64()
        }),
        ("streamvisor_stream_cpu_seconds_total", |x| {
            x.cpu_time.as_secs_f64()
        }),
        ("streamvisor_stream_uptime_seconds", |x| {
            x.uptime.as_secs_f64()
        }),
        ("streamvisor_stream_frames_out_total", |x| {
            x.variants.iter().map(|v| v.frames_out).sum::<u64>() as f64
        }),
    ];
    for (name, get) in figures {
        between(name, get(before), page.value(name, &s), get(after));
    }
    assert!(
        page.value("streamvisor_stream_frames_in_total", &s) > 0.0,
        "{id}: {after:?}"
    );
    for (name, get) in [
        ("streamvisor_stream_errors_total", after.errors),
        ("streamvisor_stream_recoveries_total", after.recoveries),
        ("streamvisor_stream_outages_total", after.outage_count),
    ] {
        assert_eq!(page.value(name, &s), get as f64, "{name}");
    }
    let speed = page.value("streamvisor_stream_speed_ratio", &s);
    // Paced to real time: never faster (the start counts in the wall time, so under load
    // it may be well below 1).
    assert!(
        speed > 0.0 && speed < 1.5,
        "a real-time stream's speed: {speed}"
    );
    let names: HashSet<String> = after.variants.iter().map(|v| v.name.clone()).collect();
    for name in [
        "streamvisor_variant_frames_out_total",
        "streamvisor_variant_segments_total",
    ] {
        let of_stream: HashSet<String> = page
            .matching(name, &s)
            .map(|x| x.labels["variant"].clone())
            .collect();
        assert_eq!(of_stream, names, "{name}");
    }
    for (b, a) in before.variants.iter().zip(&after.variants) {
        let v = [("stream", id), ("variant", a.name.as_str())];
        let out = page.value("streamvisor_variant_frames_out_total", &v);
        between(
            "variant frames out",
            b.frames_out as f64,
            out,
            a.frames_out as f64,
        );
        let segs = page.value("streamvisor_variant_segments_total", &v);
        between(
            "variant segments",
            b.segments as f64,
            segs,
            a.segments as f64,
        );
        let bytes = page.value("streamvisor_variant_bytes_out_total", &v);
        between(
            "variant bytes",
            b.bytes_out as f64,
            bytes,
            a.bytes_out as f64,
        );
    }
}

/// The stream's state as the page says: the one state at 1, every other at 0.
fn state_of(page: &Page, id: &str) -> String {
    let samples: Vec<&Sample> = page
        .matching("streamvisor_stream_state", &[("stream", id)])
        .collect();
    assert_eq!(
        samples.len(),
        StreamState::ALL.len(),
        "{id}: one sample per state"
    );
    let on: Vec<&str> = samples
        .iter()
        .filter(|s| s.value == 1.0)
        .map(|s| s.labels["state"].as_str())
        .collect();
    assert_eq!(on.len(), 1, "{id}: {samples:?}");
    assert!(samples.iter().all(|s| s.value == 0.0 || s.value == 1.0));
    on[0].to_owned()
}

#[test]
fn render_metrics_parses_and_agrees_with_stats_list_and_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::builder()
        .max_concurrent(2)
        .capacity(ResourceCapacity::new(10_000.0, 64 << 30).with_hw_sessions("cuda:7", 2))
        .build()
        .unwrap();
    m.create_stream(live("a", dir.path(), &["360p", "240p"]))
        .unwrap();
    m.create_stream(live("b", dir.path(), &["240p"])).unwrap();
    // A third waits for max_concurrent; the same id again is refused.
    let queued = m.create_stream(live("q", dir.path(), &["240p"])).unwrap();
    assert_eq!(queued, streamvisor::Admitted::Queued { position: 0 });
    match m.create_stream(live("a", dir.path(), &["240p"])) {
        Err(Error::Refused {
            reason: Refusal::DuplicateId,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Both running, with segments written.
    let t = Instant::now();
    while ["a", "b"].iter().any(|id| {
        m.stats(id)
            .is_none_or(|s| s.variants.is_empty() || s.variants.iter().any(|v| v.segments < 1))
    }) {
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", m.list());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before: Vec<StreamStats> = ["a", "b"].map(|id| m.stats(id).unwrap()).into();
    let (list, pool) = (m.list(), m.pool_usage());
    let text = m.render_metrics();
    let after: Vec<StreamStats> = ["a", "b"].map(|id| m.stats(id).unwrap()).into();
    assert_eq!(m.list(), list, "nothing moved while rendering");
    let page = parse(&text);

    for s in &list {
        assert_eq!(state_of(&page, &s.id), s.state.name(), "{}", s.id);
    }
    assert_eq!(state_of(&page, "q"), "New", "a queued stream");
    for (i, id) in ["a", "b"].into_iter().enumerate() {
        check_stream(&page, id, &before[i], &after[i]);
    }
    assert_eq!(
        page.label_values("streamvisor_stream_frames_in_total", "stream"),
        HashSet::from(["a".to_owned(), "b".to_owned()]),
        "figures for the managed streams only"
    );

    // The pool, as pool_usage says (nothing is allocated or released meanwhile).
    let g = |name: &str| page.value(name, &[]);
    assert_eq!(g("streamvisor_pool_compute_capacity_units"), 10_000.0);
    assert_eq!(g("streamvisor_pool_compute_used_units"), pool.used.compute);
    assert_eq!(
        g("streamvisor_pool_compute_free_units"),
        pool.free_compute()
    );
    assert_eq!(
        g("streamvisor_pool_memory_capacity_bytes"),
        (64u64 << 30) as f64
    );
    assert_eq!(
        g("streamvisor_pool_memory_used_bytes"),
        pool.used.memory as f64
    );
    assert_eq!(g("streamvisor_pool_allocations"), 2.0);
    let held: f64 = ["a", "b"]
        .iter()
        .map(|id| {
            page.value(
                "streamvisor_stream_allocated_compute_units",
                &[("stream", id)],
            )
        })
        .sum();
    assert!(
        (held - pool.used.compute).abs() < 1e-6,
        "{held} vs {pool:?}"
    );
    let cuda = [("device", "cuda:7")];
    assert_eq!(
        page.value("streamvisor_pool_hw_sessions_capacity", &cuda),
        2.0
    );
    assert_eq!(page.value("streamvisor_pool_hw_sessions_free", &cuda), 2.0);

    // Admissions and phases.
    let admissions = |labels: &[(&str, &str)]| page.value("streamvisor_admissions_total", labels);
    assert_eq!(admissions(&[("outcome", "started")]), 2.0);
    assert_eq!(
        admissions(&[("outcome", "queued"), ("reason", "max_concurrent")]),
        1.0
    );
    assert_eq!(
        admissions(&[("outcome", "refused"), ("reason", "duplicate_id")]),
        1.0
    );
    let total: f64 = page
        .matching("streamvisor_admissions_total", &[])
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 4.0, "four decisions, no more");
    let phase = |p: &str| page.value("streamvisor_manager_streams", &[("phase", p)]);
    assert_eq!((phase("managed"), phase("queued")), (2.0, 1.0));
    assert_eq!(g("streamvisor_manager_max_concurrent"), 2.0);

    // One stream ends: its series go, the queued one starts.
    let b = m.terminate_stream("b", Duration::from_secs(10)).unwrap();
    assert_eq!(b.state, StreamState::Stopped);
    let t = Instant::now();
    while m.state("q").is_none_or(|s| s == StreamState::Starting) {
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", m.list());
        std::thread::sleep(Duration::from_millis(50));
    }
    let page = parse(&m.render_metrics());
    assert_eq!(
        page.label_values("streamvisor_stream_state", "stream"),
        HashSet::from(["a".to_owned(), "q".to_owned()])
    );
    assert_eq!(
        page.value("streamvisor_admissions_total", &[("outcome", "started")]),
        3.0
    );
    assert_eq!(state_of(&page, "q"), "Running");
    let _ = m.shutdown(Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------
// The `manager` example's endpoint
// ---------------------------------------------------------------------------------------

/// An HTTP/1.1 GET of `path` on `addr`: (status line, headers, body).
fn get(addr: &str, path: &str) -> (String, String, String) {
    request(addr, "GET", path)
}

/// An HTTP/1.1 request without a body on a new connection: (status line, headers, body).
fn request(addr: &str, method: &str, path: &str) -> (String, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    exchange(&mut s, addr, method, path)
}

/// One request on `s`, which stays open (keep-alive, as a scraper's): the answer is read
/// by its `Content-Length`, so a chunked or unframed answer fails here.
fn exchange(
    s: &mut std::net::TcpStream,
    addr: &str,
    method: &str,
    path: &str,
) -> (String, String, String) {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert_ne!(
            reader.read_line(&mut head).unwrap(),
            0,
            "closed in the head: {head}"
        );
    }
    let head = head.trim_end();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let length = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {headers}"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    // Nothing buffered past the body: the next answer starts on the socket.
    assert!(reader.buffer().is_empty(), "more than Content-Length");
    let body = String::from_utf8(body).unwrap();
    (status.to_owned(), headers.to_owned(), body)
}

#[test]
fn the_manager_example_serves_metrics_that_a_prometheus_parser_reads() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough not to end before it is scraped, however loaded the machine: the test
    // ends it with SIGTERM.
    let source = "lavfi:testsrc2=size=320x180:rate=15:duration=120,realtime";
    let mut child = Command::new(crate::security::example("manager"))
        .args([
            "--metrics",
            "127.0.0.1:0",
            "--allow-lavfi",
            "--ladder",
            "240p",
        ])
        .args(["--out", dir.path().to_str().unwrap(), source, source])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says where it listens (port 0: the system's choice) on stderr.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "no metrics address"
        );
        if let Some(url) = line.trim().strip_prefix("metrics: http://") {
            break url.strip_suffix("/metrics").unwrap().to_owned();
        }
    };
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let t = Instant::now();
    let page = loop {
        let (status, headers, body) = get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let content_type = format!("Content-Type: {}", Manager::METRICS_CONTENT_TYPE);
        assert!(headers.lines().any(|l| l == content_type), "{headers}");
        assert_eq!(
            Manager::METRICS_CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let page = parse(&body);
        let running = ["s0", "s1"].iter().all(|id| {
            page.matching("streamvisor_stream_frames_in_total", &[("stream", id)])
                .any(|s| s.value > 0.0)
        });
        if running {
            break page;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for id in ["s0", "s1"] {
        assert_eq!(state_of(&page, id), "Running");
        let v = [("stream", id), ("variant", "240p")];
        assert_eq!(
            page.matching("streamvisor_variant_frames_out_total", &v)
                .count(),
            1
        );
    }
    let started = page.value("streamvisor_admissions_total", &[("outcome", "started")]);
    assert_eq!(started, 2.0);
    assert!(page.value("streamvisor_pool_compute_capacity_units", &[]) > 0.0);
    // Other paths and methods.
    let (status, _, _) = get(&addr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = request(&addr, "POST", "/metrics");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.lines().any(|l| l == "Allow: GET"), "{headers}");
    let (status, _, body) = get(&addr, "/metrics?x=1");
    assert_eq!(status, "HTTP/1.1 200 OK", "a query string is ignored");
    parse(&body);
    // Two scrapes on one kept-alive connection.
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..2 {
        let (status, _, body) = exchange(&mut conn, &addr, "GET", "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        parse(&body);
    }
    // SIGTERM: the example shuts the manager down gracefully (every stream Stopped) and
    // exits 0.
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signals our own child, not yet waited for (so its pid is still its own).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the example did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = rest.join().unwrap();
    assert!(status.success(), "{status:?}: {text}");
}
