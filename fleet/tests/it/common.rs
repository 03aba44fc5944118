//! The fleet suite's real components: a `redis-server` of its own on a free loopback port,
//! `worker` processes as nodes (killed with SIGKILL or drained with SIGTERM), nginx as the
//! shared WebDAV origin and as an RTMP server, an `ffmpeg` CLI publisher, and `ffprobe`
//! checks. A missing package fails the test with its name (`make deps` installs them all).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use streamvisor_fleet::{FleetClient, JobKind, JobStatus};

/// The fleet tests run one at a time: each starts several encoding processes, and the
/// machine may have two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fails the test, naming the Debian package, when `path` is missing.
pub fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package `{package}` (`make deps` does)"
    );
}

/// A free TCP port on 127.0.0.1 (nothing listens on it now).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`, or fails the test.
fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or fails the test saying `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `redis-server` with its own directory, no persistence; killed on drop.
pub struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Self {
        require("/usr/bin/redis-server", "redis-server");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("/usr/bin/redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        wait_listening(port, "redis-server", &mut child);
        Self {
            child,
            _dir: dir,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> FleetClient {
        FleetClient::connect(&self.url()).expect("connecting to redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `worker serve` process (a node); its log in a file, shown when a test fails. Killed
/// on drop.
pub struct Worker {
    child: Child,
    pub name: String,
    log: PathBuf,
}

impl Worker {
    /// `worker serve --redis URL --node NAME --no-sync-output` with `args` (the output,
    /// capacity, rules).
    pub fn start(redis: &Redis, name: &str, logs: &Path, args: &[&str]) -> Self {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["serve", "--redis", &redis.url(), "--node", name])
            .arg("--no-sync-output")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting the worker");
        Self {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// The node dies at once (SIGKILL): no clean-up of any kind.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the node to drain (SIGTERM).
    pub fn term(&self) {
        self.signal("TERM");
    }

    /// Sends the process a signal by name (`TERM`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit status.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        wait_for("the worker to exit", limit, || {
            child.try_wait().ok().flatten()
        })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of worker {} ---\n{}", self.name, self.log());
        }
    }
}

/// A short generated source paced to real time (a job lasts about `secs` seconds).
pub fn paced_source(secs: u32) -> String {
    format!(
        "lavfi:testsrc2=size=640x360:rate=15:duration={secs},realtime;\
         sine=duration={secs},arealtime"
    )
}

/// The serde form of a stream config with these rungs and 1 s segments.
pub fn config(source: &str, rungs: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "source": source,
        "profile": {"variants": rungs, "segment_duration": "1s"},
    })
}

/// Submits an on-demand job.
pub fn submit_vod(client: &mut FleetClient, id: &str, source: &str, rungs: &[&str]) {
    client
        .submit(id, JobKind::Vod, &config(source, rungs))
        .expect("submit");
}

/// Waits until job `id` is in a final state; its status.
pub fn wait_final(client: &mut FleetClient, id: &str, limit: Duration) -> JobStatus {
    wait_for(&format!("job {id} to end"), limit, || {
        client.status(id).ok().filter(JobStatus::is_final)
    })
}

/// `ffprobe` of a media playlist or file: (width, height, duration in seconds) of its
/// video, or the test fails.
pub fn probe(path: &Path) -> (u64, u64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height:format=duration"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    let duration = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        stream["width"].as_u64().unwrap_or(0),
        stream["height"].as_u64().unwrap_or(0),
        duration,
    )
}
