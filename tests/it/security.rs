//! The trust boundary (issue 10): nothing a source string or a config says reads a local
//! file, loads code, writes outside the output directory or leaks a secret. Every graph
//! attack is refused before anything is opened, proved with a canary FIFO: had FFmpeg
//! opened it for reading, that open would still be blocked (and the test would hang, or
//! the canary would show a reader).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use streamvisor::{
    AbrProfile, Error, ErrorKind, Hooks, RecoveryPolicy, StateSet, Stream, StreamConfig,
};

use crate::common::*;

/// A FIFO in `dir`: opening it for reading blocks until a writer comes.
pub fn canary_fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system entry.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo {path:?}: {}", std::io::Error::last_os_error());
    path
}

/// Panics if anything has the FIFO open for reading: a non-blocking open for writing
/// fails with ENXIO exactly when no reader has it open (and would unblock one that had).
pub fn assert_never_opened(fifo: &Path) {
    let c = CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; the descriptor, if any, is closed right away.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
    let err = std::io::Error::last_os_error();
    if fd >= 0 {
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        panic!("something opened the canary {fifo:?} for reading");
    }
    assert_eq!(err.raw_os_error(), Some(libc::ENXIO), "{fifo:?}: {err}");
}

/// Builds a config for `lavfi:<graph>` with generated sources allowed: the grammar alone
/// must refuse it, naming `needle` (the filter, the option or the character).
fn assert_graph_refused(graph: &str, needle: &str) {
    let r = StreamConfig::builder("attack", format!("lavfi:{graph}"), "out")
        .local_files_under("/")
        .allow_generated_sources(true)
        .build();
    match r {
        Err(Error::InvalidConfig { field, reason, .. }) => {
            assert_eq!(field, "source", "{graph}");
            assert!(
                reason.contains(needle),
                "{graph}: {reason:?} lacks {needle:?}"
            );
        }
        other => panic!("{graph} was not refused: {other:?}"),
    }
}

/// Runs each attack (`{}` stands for the canary's path) and checks the canary after all.
fn refused_before_anything_opens(attacks: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = canary_fifo(dir.path(), "canary");
    let path = fifo.to_str().unwrap();
    for (graph, needle) in attacks {
        assert_graph_refused(&graph.replace("{}", path), needle);
    }
    assert_never_opened(&fifo);
}

#[test]
fn generated_sources_are_refused_unless_the_config_opts_in() {
    let r = StreamConfig::builder("g", "lavfi:testsrc2", "out")
        .local_files_under("/")
        .build();
    let Err(Error::InvalidConfig { field, reason, .. }) = r else {
        panic!("{r:?}");
    };
    assert_eq!(field, "source");
    assert!(reason.contains("allow_generated_sources(true)"), "{reason}");
}

#[test]
fn quoting_tricks_are_refused() {
    refused_before_anything_opens(&[
        ("testsrc2[a'b]", "'['"),
        ("testsrc2[a'b],drawtext=textfile={}", "'['"),
        ("testsrc2,drawtext=text='a,b':textfile={}", "'\\''"),
        ("testsrc2=size=\"1x1,movie={}\"", "'\"'"),
        ("[in]testsrc2", "'['"),
        ("testsrc2@x,movie@y={}", "'@'"),
        ("testsrc2 ,movie={}", "' '"),
    ]);
}

#[test]
fn option_keys_that_read_files_are_refused() {
    refused_before_anything_opens(&[
        ("life=f={}", "option \"f\""),
        ("life=filename={}", "option \"filename\""),
        ("cellauto=f={}", "option \"f\""),
        ("cellauto=filename={}", "option \"filename\""),
        ("cellauto=pattern=x:filename={}", "option \"pattern\""),
        ("testsrc2,drawtext=textfile={}", "\"drawtext\""),
        ("testsrc2,drawtext=fontfile={}", "\"drawtext\""),
        ("testsrc2,metadata=mode=print:file={}", "\"metadata\""),
        ("life=rule=B3", "option \"rule\""),
    ]);
}

#[test]
fn filters_that_load_code_are_refused() {
    refused_before_anything_opens(&[
        ("sine,ladspa=file={}", "\"ladspa\""),
        ("testsrc2,frei0r=filter_name={}", "\"frei0r\""),
        ("sine,lv2=plugin={}", "\"lv2\""),
        ("testsrc2,hwupload", "\"hwupload\""),
    ]);
}

#[test]
fn movie_and_amovie_are_refused() {
    refused_before_anything_opens(&[
        ("movie={}", "\"movie\""),
        ("movie=filename={}", "\"movie\""),
        ("amovie={}", "\"amovie\""),
        ("testsrc2;amovie=filename={}", "\"amovie\""),
        ("testsrc2,overlay,movie={}", "\"overlay\""),
    ]);
}

#[test]
fn sendcmd_and_zmq_are_refused() {
    refused_before_anything_opens(&[
        ("testsrc2,sendcmd=f={}", "\"sendcmd\""),
        ("testsrc2,sendcmd=filename={}", "\"sendcmd\""),
        ("sine,asendcmd=f={}", "\"asendcmd\""),
        ("testsrc2,zmq", "\"zmq\""),
        ("sine,azmq", "\"azmq\""),
    ]);
}

#[test]
fn escaped_separators_are_refused() {
    refused_before_anything_opens(&[
        ("testsrc2=size=1x1\\,movie={}", "'\\\\'"),
        ("testsrc2\\;movie={}", "'\\\\'"),
        ("sine=f=1\\:textfile={}", "'\\\\'"),
        ("testsrc2=size=1x1%2Cmovie={}", "'%'"),
    ]);
}

#[test]
fn a_fifo_as_an_option_value_is_refused() {
    // On allowed filters and keys: only the value is wrong (a path).
    refused_before_anything_opens(&[
        ("testsrc2=size={}", "option size: value"),
        ("sine=frequency={}", "option frequency: value"),
        ("testsrc2=rate=1/{}", "option rate: value"),
    ]);
}

/// Input options cannot widen what a source may reach: the protocol allow-list (a remote
/// HLS playlist listing `file:///...` segments), the demuxers' own gates, or a generated
/// source's checked graph (replaced, or read from a file). The config refuses each key, in
/// any case, naming the option; nothing is opened.
#[test]
fn input_options_that_widen_what_a_source_reaches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = canary_fifo(dir.path(), "graph.txt");
    let playlist = "http://127.0.0.1:9/x.m3u8";
    let attacks = [
        (playlist, "protocol_whitelist", "http,tcp,file"),
        (playlist, "PROTOCOL_WHITELIST", "file"),
        (playlist, "protocol_blacklist", ""),
        (playlist, "format_whitelist", "hls,mpegts,concat"),
        (playlist, "codec_whitelist", "h264"),
        (playlist, "allowed_extensions", "ALL"),
        (playlist, "allowed_segment_extensions", "ALL"),
        (playlist, "extension_picky", "0"),
        (playlist, "seg_format_options", "protocol_whitelist=file"),
        ("/srv/list.ffconcat", "safe", "0"),
        ("/srv/in.mp4", "use_absolute_path", "1"),
        ("/srv/in.mp4", "enable_drefs", "1"),
        ("lavfi:testsrc2", "graph", "movie=/etc/passwd"),
        ("lavfi:testsrc2", "graph_file", fifo.to_str().unwrap()),
    ];
    for (source, key, value) in attacks {
        let r = StreamConfig::builder("widen", source, dir.path().join("o"))
            .local_files_under("/")
            .allow_generated_sources(true)
            .input_option("rw_timeout", "1000000")
            .input_option(key, value)
            .build();
        match r {
            Err(Error::InvalidConfig { field, reason, .. }) => {
                assert_eq!(field, "input_options[1]", "{key}");
                assert!(reason.contains(key), "{key}: {reason}");
            }
            other => panic!("{key}={value} on {source} was not refused: {other:?}"),
        }
    }
    assert_never_opened(&fifo);
    // Options that reach nothing new are kept.
    let ok = StreamConfig::builder("ok", "rtsp://127.0.0.1/cam", dir.path().join("o"))
        .local_files_under("/")
        .input_option("rtsp_transport", "tcp")
        .build()
        .unwrap();
    assert_eq!(ok.input_options().len(), 1);
}

/// A config for `source` with a recovery policy that gives up at once.
fn one_try(id: &str, source: &str, out: &Path) -> StreamConfig {
    StreamConfig::builder(id, source, out)
        .local_files_under("/")
        .profile(
            AbrProfile::from_rungs(&["240p"])
                .unwrap()
                .with_preset("ultrafast"),
        )
        .recovery(RecoveryPolicy::none())
        .io_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Starts a stream and requires it to fail within `bound` with an error of `kind`.
fn fails_within(config: StreamConfig, bound: Duration, kind: ErrorKind) -> Error {
    let started = Instant::now();
    let running = Stream::new(config).start().expect("start");
    let end = running.wait_for(StateSet::TERMINAL, bound);
    assert!(end.is_terminal(), "still {end} after {bound:?}");
    let report = running.wait();
    let e = report.error.expect("an error");
    assert_eq!(e.kind(), kind, "{e}");
    assert!(started.elapsed() < bound, "{e}");
    e
}

#[test]
fn special_files_as_sources_fail_promptly_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = canary_fifo(dir.path(), "source.ts");
    let out = dir.path().join("out");
    for (id, source, what) in [
        ("fifo", fifo.to_str().unwrap().to_owned(), "a FIFO"),
        ("fifo-url", format!("file:{}", fifo.display()), "a FIFO"),
        (
            "dir",
            dir.path().to_str().unwrap().to_owned(),
            "a directory",
        ),
        ("device", "/dev/zero".to_owned(), "a device"),
    ] {
        let e = fails_within(
            one_try(id, &source, &out),
            Duration::from_secs(5),
            ErrorKind::InvalidInput,
        );
        assert!(e.to_string().contains(what), "{id}: {e}");
        assert_never_opened(&fifo);
    }
}

/// A raw MJPEG stream that starts at 160x90 and changes to 16400x16 (wider than the 16384
/// limit, small enough for FFmpeg): probing sees the first size, and the change is caught
/// when the first wide frame is decoded.
#[test]
fn a_picture_size_change_past_the_limit_fails_the_stream_naming_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let part = |name: &str, size: &str| {
        let p = dir.path().join(name);
        let src = format!("testsrc2=size={size}:rate=15:duration=1");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-c:v",
            "mjpeg",
            "-pix_fmt",
            "yuvj420p",
            "-f",
            "mjpeg",
            p.to_str().unwrap(),
        ]);
        std::fs::read(p).unwrap()
    };
    let mut bytes = part("a.mjpeg", "160x90");
    bytes.extend(part("b.mjpeg", "16400x16"));
    let src = dir.path().join("grows.mjpeg");
    std::fs::write(&src, bytes).unwrap();
    let e = fails_within(
        one_try("grows", src.to_str().unwrap(), &dir.path().join("out")),
        Duration::from_secs(20),
        ErrorKind::InvalidInput,
    );
    let shown = e.to_string();
    assert!(
        shown.contains("decoded picture 16400x16") && shown.contains("16384x16384"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------
// Outputs are files
// ---------------------------------------------------------------------------------------

/// The `transcode` example, built beside this test binary (`cargo test --all-targets` and
/// `make test` build the examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{bin:?} is missing: build it with `cargo build --release --examples`"
    );
    bin
}

#[test]
fn an_output_dir_named_pipe_1_is_a_directory_not_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example("transcode"))
        .current_dir(dir.path())
        .args([
            "lavfi:testsrc2=size=160x90:rate=15:duration=1",
            "--allow-lavfi",
        ])
        .args([
            "--out",
            "pipe:1",
            "--ladder",
            "240p",
            "--preset",
            "ultrafast",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{} bytes on stdout",
        out.stdout.len()
    );
    let root = dir.path().join("pipe:1");
    assert!(root.join("master.m3u8").is_file(), "{stderr}");
    let segments = std::fs::read_dir(root.join("240p")).unwrap().count();
    assert!(segments >= 2, "index and a segment: {segments}");
}

#[test]
fn the_example_refuses_lavfi_input_without_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example("transcode"))
        .current_dir(dir.path())
        .arg("lavfi:testsrc2=size=160x90:rate=15:duration=1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("allow_generated_sources"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

/// Every `log` record of this test binary, when this module installed the logger (the
/// first to ask does; tests run in parallel in one process, so the capture is shared and
/// bounded).
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let mut logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
        if logs.len() < 200_000 {
            logs.push(format!(
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger if no logger is installed; false if another one was.
fn capture_logs() -> bool {
    static OURS: OnceLock<bool> = OnceLock::new();
    *OURS.get_or_init(|| {
        let ours = log::set_logger(&Capture).is_ok();
        if ours {
            log::set_max_level(log::LevelFilter::Trace);
        }
        ours
    })
}

/// A TCP peer on 127.0.0.1 that accepts connections and closes them at once.
fn closing_peer() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The secret-bearing URLs: each scheme against a closed port and a peer that closes.
fn secret_urls() -> Vec<String> {
    let (closed, peer) = (closed_port(), closing_peer());
    let mut urls = Vec::new();
    for port in [closed, peer] {
        urls.push(format!(
            "rtmp://user:S3CRETPASS@127.0.0.1:{port}/live/S3CRETKEY"
        ));
        urls.push(format!(
            "srt://127.0.0.1:{port}?passphrase=S3CRETPHRASE0123&streamid=S3CRETID&latency=20000"
        ));
        urls.push(format!(
            "http://127.0.0.1:{port}/x.m3u8?token=S3CRETTOKEN&a=1"
        ));
        urls.push(format!(
            "https://bob:S3CRETPASS@127.0.0.1:{port}/x.m3u8?sig=S3CRETSIG"
        ));
        urls.push(format!("tcp://127.0.0.1:{port}?auth=S3CRETAUTH"));
        // CDN and origin token shapes whose names say nothing of a secret.
        urls.push(format!(
            "http://127.0.0.1:{port}/a.m3u8?hdnts=st=1~exp=2~acl=*~hmac=S3CRETHMAC"
        ));
        urls.push(format!(
            "https://127.0.0.1:{port}/a.m3u8?Policy=S3CRETPOLICY&Key-Pair-Id=S3CRETKP&e=S3CRETE"
        ));
        urls.push(format!(
            "http://127.0.0.1:{port}/a.m3u8?md5=S3CRETMD5&expires=1700000000&wmsAuthSign=S3CRETW"
        ));
    }
    urls
}

/// A query name off the allow-list, and a value that says it is a secret.
fn query_pair() -> impl proptest::strategy::Strategy<Value = (String, String)> {
    use proptest::strategy::Strategy;
    let name = "[a-zA-Z_][a-zA-Z0-9_.-]{0,11}".prop_filter("a shown name", |n| {
        !streamvisor::redact::SHOWN_BY_DEFAULT.contains(&n.to_ascii_lowercase().as_str())
    });
    (name, "S3CRET[A-Za-z0-9~._-]{0,16}")
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(24))]

    /// Whatever a URL's query names and values are, no value off the allow-list is shown:
    /// not in the config's `Debug`, the source's `Display`, the errors, the state events.
    #[test]
    fn no_query_value_off_the_allow_list_is_ever_shown(
        pairs in proptest::collection::vec(query_pair(), 1..5),
        scheme in proptest::sample::select(vec!["http", "https", "tcp", "rtmp"]),
        shown in proptest::collection::vec(
            proptest::sample::select(streamvisor::redact::SHOWN_BY_DEFAULT.to_vec()), 0..2),
    ) {
        let port = closed_port();
        let mut query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        query.extend(shown.iter().map(|n| format!("{n}=5")));
        let url = format!("{scheme}://127.0.0.1:{port}/live/x?{}", query.join("&"));
        let dir = tempfile::tempdir().unwrap();
        let config = one_try("prop", &url, dir.path());
        assert_no_secret("config Debug", &format!("{config:?}"));
        let displayed = streamvisor::redact_url(config.source()).into_owned();
        assert_no_secret("redact_url", &displayed);
        for n in &shown {
            let kept = format!("{n}=5");
            proptest::prop_assert!(displayed.contains(&kept), "{url} -> {displayed}");
        }
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = events.clone();
        let hooks = Hooks::new().on_state_change(move |ev| {
            let err = ev.error.as_ref().map(|e| format!("{e} {e:?}")).unwrap_or_default();
            sink.lock().unwrap().push(format!("{ev:?} {err}"));
        });
        let report = Stream::new(config).with_hooks(hooks).start().unwrap().wait();
        let e = report.error.as_ref().expect("nothing listens");
        assert_no_secret("report", &format!("{report:?} {e} {e:?}"));
        for line in events.lock().unwrap().iter() {
            assert_no_secret("a state event", line);
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains("S3CRET"), "a secret in {what}: {text}");
}

#[test]
fn secrets_appear_in_no_error_event_log_or_report() {
    let ours = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let shown: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut runs = Vec::new();
    for (i, url) in secret_urls().into_iter().enumerate() {
        let policy = RecoveryPolicy::default()
            .with_max_attempts(1)
            .with_backoff(Duration::from_millis(10), Duration::from_millis(10));
        let config = StreamConfig::builder(format!("s{i}"), &url, dir.path().join(format!("o{i}")))
            .local_files_under("/")
            .recovery(policy)
            .io_timeout(Duration::from_millis(1500))
            .input_option("passphrase", "S3CRETOPTION")
            .build()
            .unwrap();
        assert_no_secret("config Debug", &format!("{config:?}"));
        let sink = shown.clone();
        let hooks = Hooks::new()
            .on_state_change(move |ev| {
                let err = ev.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
                sink.lock().unwrap().push(format!("{ev:?} {err}"));
            })
            .on_stats(Duration::from_millis(100), {
                let sink = shown.clone();
                move |ev| sink.lock().unwrap().push(format!("{ev:?}"))
            });
        runs.push(
            Stream::new(config)
                .with_hooks(hooks)
                .start()
                .expect("start"),
        );
    }
    for running in runs {
        let end = running.wait_for(StateSet::TERMINAL, Duration::from_secs(15));
        assert!(end.is_terminal(), "still {end}");
        if let Some(e) = running.last_error() {
            assert_no_secret("last_error", &format!("{e} {e:?}"));
        }
        let report = running.wait();
        let e = report.error.as_ref().expect("each of these fails");
        assert_no_secret("report", &format!("{report:?} {e}"));
    }
    for line in shown.lock().unwrap().iter() {
        assert_no_secret("a hook event", line);
    }
    if ours {
        let logs = LOGS.lock().unwrap();
        assert!(!logs.is_empty(), "the failures were logged");
        for line in logs.iter() {
            assert_no_secret("the log", line);
        }
    }
}

#[test]
fn secrets_appear_nowhere_in_the_examples_output() {
    // All at once: each waits on its own peer for at most the I/O timeout.
    let runs: Vec<_> = secret_urls()
        .into_iter()
        .map(|url| {
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new(example("transcode"))
                .current_dir(dir.path())
                .args([
                    url.as_str(),
                    "--json",
                    "--max-reconnects",
                    "0",
                    "--ladder",
                    "240p",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (url, dir, child)
        })
        .collect();
    for (url, _dir, child) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{url} cannot work");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{stderr}");
        assert!(stdout.contains("\"event\":\"state\""), "{stdout}");
        assert_no_secret("stdout", &stdout);
        assert_no_secret("stderr", &stderr);
        // A second positional argument is echoed in the usage error: redacted too.
        let out = Command::new(example("transcode"))
            .args(["a.mp4", url.as_str()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unexpected argument"), "{stderr}");
        assert_no_secret("usage error", &stderr);
    }
    // An origin with credentials and a token that refuses the upload: the failure and the
    // summary name it redacted.
    let dir = tempfile::tempdir().unwrap();
    let origin = format!(
        "http://bob:S3CRETPASS@127.0.0.1:{}/live?token=S3CRETTOKEN",
        closed_port()
    );
    let out = Command::new(example("transcode"))
        .current_dir(dir.path())
        .args([
            "lavfi:testsrc2=size=160x90:rate=15:duration=1",
            "--allow-lavfi",
        ])
        .args([
            "--ladder",
            "240p",
            "--preset",
            "ultrafast",
            "--put",
            &origin,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("MB uploaded to http://***@127.0.0.1:"),
        "{stderr}"
    );
    assert_no_secret("the --put summary", &stderr);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(6))]

    /// The same for the `transcode` example's output (its JSON events, its summary, its
    /// error): random query names and values off the allow-list never show.
    #[test]
    fn no_query_value_off_the_allow_list_shows_in_the_examples_output(
        pairs in proptest::collection::vec(query_pair(), 1..4),
        scheme in proptest::sample::select(vec!["http", "tcp", "rtmp"]),
    ) {
        let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let url = format!("{scheme}://127.0.0.1:{}/live/x?{}", closed_port(), query.join("&"));
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(example("transcode"))
            .current_dir(dir.path())
            .args([url.as_str(), "--json", "--max-reconnects", "0", "--ladder", "240p"])
            .output()
            .unwrap();
        proptest::prop_assert!(!out.status.success(), "{url} cannot work");
        assert_no_secret("stdout", &String::from_utf8_lossy(&out.stdout));
        assert_no_secret("stderr", &String::from_utf8_lossy(&out.stderr));
    }
}
