//! Real ingest servers for the tests, started on 127.0.0.1 and stopped on drop: nginx with
//! the RTMP module, nginx serving HTTP (an HLS origin that can be told to fail), nginx as
//! a WebDAV upload origin (stopped and started again at will), and
//! `ffmpeg` CLI peers that publish RTMP, serve or call SRT, and write a live HLS playlist.
//! A missing package fails the test with its name (`make deps` installs them all).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{fixed_port, is_listening, live_pattern_of};

const NGINX: &str = "/usr/sbin/nginx";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Fails the test, naming the Debian package, when `path` is missing.
fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package `{package}` (`make deps` does)"
    );
}

/// Waits until something listens on `port` (TCP), or fails the test.
fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_listening(port) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An nginx process with its own configuration, logs and files in a temporary directory.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Nginx {
    fn start(config_body: &str, needs_rtmp: bool) -> Self {
        require(NGINX, "nginx-light");
        if needs_rtmp {
            require(RTMP_MODULE, "libnginx-mod-rtmp");
        }
        let dir = tempfile::tempdir().unwrap();
        let port = fixed_port();
        let d = dir.path().display();
        let load = if needs_rtmp {
            format!("load_module {RTMP_MODULE};")
        } else {
            String::new()
        };
        // One process (no master/worker split, no user switch): it reads and writes the
        // test's own files, and dies with the test.
        let conf = format!(
            "{load}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n{}",
            config_body
                .replace("{PORT}", &port.to_string())
                .replace("{DIR}", &d.to_string())
        );
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Self::spawn(dir.path(), port);
        Self { child, dir, port }
    }

    /// Runs nginx on the configuration in `dir` and waits until it listens on `port`.
    fn spawn(dir: &Path, port: u16) -> Child {
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        wait_listening(port, "nginx", &mut child);
        child
    }

    /// nginx with the RTMP module: application `live` (players wait for a publisher) and
    /// application `strict` (a stream key nobody publishes is refused at once).
    pub fn rtmp() -> Self {
        Self::start(
            "rtmp { server { listen 127.0.0.1:{PORT};\n\
               application live { live on; record off; }\n\
               application strict { live on; record off; idle_streams off; } } }",
            true,
        )
    }

    /// nginx serving `root()` over HTTP, answering 500 or 404 for everything while
    /// [`Nginx::fail`] says so.
    pub fn http() -> Self {
        Self::start(
            "http { access_log off; client_body_temp_path {DIR}/body; \
               proxy_temp_path {DIR}/proxy;\n\
               types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }\n\
               server { listen 127.0.0.1:{PORT}; root {DIR}/root;\n\
                 location / { if (-f {DIR}/fail500) { return 500; }\n\
                   if (-f {DIR}/fail404) { return 404; }\n\
                   add_header Cache-Control no-cache; } } }",
            false,
        )
    }

    /// nginx as a WebDAV upload origin on `root()`: `PUT` (creating directories as
    /// needed, no body size limit) and `DELETE` through its dav module, `GET` to read back.
    /// Everything gets 500 while [`Nginx::fail`] says so; paths under `/always500/` always
    /// get 500, under `/forbidden/` 403, and a `DELETE` under `/nodelete/` 405 (a write-once
    /// store).
    pub fn webdav() -> Self {
        Self::start(
            "http { access_log off; client_body_temp_path {DIR}/body; \
               proxy_temp_path {DIR}/proxy;\n\
               server { listen 127.0.0.1:{PORT}; root {DIR}/root;\n\
                 location /always500/ { return 500; }\n\
                 location /forbidden/ { return 403; }\n\
                 location /nodelete/ { dav_methods PUT; create_full_put_path on;\n\
                   client_max_body_size 0; dav_access user:rw group:r all:r; }\n\
                 location / { if (-f {DIR}/fail500) { return 500; }\n\
                   dav_methods PUT DELETE; create_full_put_path on;\n\
                   client_max_body_size 0; dav_access user:rw group:r all:r; } } }",
            false,
        )
    }

    /// Stops nginx (nothing listens on its port until [`Nginx::start_again`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped nginx again, same port and configuration, and waits until it
    /// listens.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port);
    }

    /// The directory an HTTP server serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// From now on every HTTP request gets `status` (500 or 404), or is served again with
    /// `None`.
    pub fn fail(&self, status: Option<u16>) {
        for s in [500, 404] {
            let _ = std::fs::remove_file(self.dir.path().join(format!("fail{s}")));
        }
        if let Some(s) = status {
            std::fs::write(self.dir.path().join(format!("fail{s}")), b"").unwrap();
        }
    }

    pub fn rtmp_url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frame rate of every test peer's video ([`live_pattern`]).
pub const PEER_FPS: u32 = 30;

/// An `ffmpeg` CLI process producing a 640x360 30 fps test pattern with a tone in real
/// time, one keyframe a second, killed on drop.
pub struct Peer {
    child: Child,
}

impl Peer {
    fn spawn(frames: Option<u32>, output: &[&str]) -> Self {
        Self::spawn_of("640x360", true, frames, output)
    }

    /// A peer of another picture `size`, with or without its tone, writing to `output`
    /// (format and URL) until dropped.
    pub fn pattern(size: &str, audio: bool, output: &[&str]) -> Self {
        Self::spawn_of(size, audio, None, output)
    }

    fn spawn_of(size: &str, audio: bool, frames: Option<u32>, output: &[&str]) -> Self {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
        let child = live_pattern_of(&mut cmd, size, audio, frames)
            .args(output)
            .stdin(Stdio::null())
            // A peer's own complaints when the other side goes away are expected here.
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg CLI");
        Self { child }
    }

    /// Publishes to an RTMP URL; `frames` video frames, or until dropped.
    pub fn publish_rtmp(url: &str, frames: Option<u32>) -> Self {
        Self::spawn(frames, &["-f", "flv", url])
    }

    /// Sends MPEG-TS over SRT to `url` (a listener, or a caller with `mode=caller`).
    pub fn srt(url: &str) -> Self {
        Self::spawn(None, &["-f", "mpegts", url])
    }

    /// Writes a live HLS playlist `live.m3u8` (1 s segments, a 4-segment window, old
    /// segments deleted) into `dir`.
    pub fn hls(dir: &Path) -> Self {
        let playlist = dir.join("live.m3u8");
        let segments = dir.join("seg%05d.ts");
        Self::spawn(
            None,
            &[
                "-f",
                "hls",
                "-hls_time",
                "1",
                "-hls_list_size",
                "4",
                "-hls_flags",
                "delete_segments+temp_file",
                "-hls_segment_filename",
                segments.to_str().unwrap(),
                playlist.to_str().unwrap(),
            ],
        )
    }

    /// True once the process has exited (an SRT caller that found no listener).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the peer to finish by itself (a fixed number of frames).
    pub fn wait(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "the ffmpeg peer did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port (for SRT).
pub fn free_udp_port() -> u16 {
    loop {
        let port = fixed_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
