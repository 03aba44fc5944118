//! FFmpeg's log: routed to the `log` crate by default, left alone when the application opts
//! out before its first stream, handed to FFmpeg's default callback (stderr) when routing
//! is turned off later. The callback is process-wide, so each case runs in its own child
//! process; the parent reads what reached the child's logger (its stdout) and what FFmpeg
//! printed itself (its stderr).

use std::sync::Mutex;

/// FFmpeg's records that reached the `log` crate in this process.
static ROUTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target() == "ffmpeg"
    }
    fn log(&self, r: &log::Record) {
        if r.target() == "ffmpeg" {
            ROUTED.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Marks a run in FFmpeg's own output: the refused port differs per run.
fn refused_run(tag: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    crate::common::run_refused(tag, dir.path())
}

/// Lines naming `port` that reached the logger so far.
fn routed_about(port: u16) -> usize {
    let needle = format!("127.0.0.1:{port}");
    ROUTED
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&needle))
        .count()
}

#[test]
#[ignore = "runs in a child process started by ffmpeg_logs_are_routed_unless_the_application_opts_out"]
fn ffmpeg_log_child() {
    let Some(mode) = std::env::var_os("SV_LOG_MODE") else {
        return;
    };
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    match mode.to_str().unwrap() {
        "default" => {
            let port = refused_run("a");
            assert!(routed_about(port) > 0, "{:?}", ROUTED.lock().unwrap());
            println!("PORTS routed={port}");
        }
        "off-first" => {
            streamvisor::route_ffmpeg_logs(false);
            let port = refused_run("b");
            assert_eq!(routed_about(port), 0, "{:?}", ROUTED.lock().unwrap());
            println!("PORTS stderr={port}");
        }
        "off-later" => {
            let first = refused_run("c");
            assert!(routed_about(first) > 0);
            streamvisor::route_ffmpeg_logs(false);
            let off = refused_run("d");
            assert_eq!(routed_about(off), 0, "{:?}", ROUTED.lock().unwrap());
            streamvisor::route_ffmpeg_logs(true);
            let again = refused_run("e");
            assert!(routed_about(again) > 0);
            println!("PORTS routed={first} stderr={off} routed={again}");
        }
        other => panic!("SV_LOG_MODE {other}"),
    }
}

/// Runs the child in `mode`; its (stdout, stderr).
fn child(mode: &str) -> (String, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ffmpeg_log::ffmpeg_log_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("SV_LOG_MODE", mode)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {mode} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The ports the child said went each way.
fn ports(stdout: &str, way: &str) -> Vec<String> {
    let line = stdout.lines().find(|l| l.starts_with("PORTS")).unwrap();
    line.split_whitespace()
        .filter_map(|kv| kv.strip_prefix(&format!("{way}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ffmpeg_logs_are_routed_unless_the_application_opts_out() {
    if std::env::var_os("SV_LOG_MODE").is_some() {
        return;
    }
    for mode in ["default", "off-first", "off-later"] {
        let (stdout, stderr) = child(mode);
        // FFmpeg's default callback prints `[tcp @ 0x...] Connection to tcp://...:PORT
        // failed: ...` to stderr; a routed line is not printed there.
        for port in ports(&stdout, "stderr") {
            assert!(
                stderr.contains(&format!("127.0.0.1:{port}")),
                "{mode}: FFmpeg's own output lacks the run on port {port}:\n{stderr}"
            );
        }
        for port in ports(&stdout, "routed") {
            assert!(
                !stderr.contains(&format!("127.0.0.1:{port}")),
                "{mode}: a routed run reached stderr too:\n{stderr}"
            );
        }
    }
}
