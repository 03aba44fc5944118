//! nginx for the fleet tests (the core suite's helper, cut down): a WebDAV origin every node
//! uploads to, an RTMP server every node can pull from; an `ffmpeg` CLI publisher; hls.js
//! in Chromium through the repository's `tools/browser/play.mjs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{free_port, require, wait_for};

const NGINX: &str = "/usr/sbin/nginx";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// An nginx process with its own configuration, logs and files in a temporary directory.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Nginx {
    fn start(body: &str, needs_rtmp: bool) -> Self {
        require(NGINX, "nginx-light");
        let load = if needs_rtmp {
            require(RTMP_MODULE, "libnginx-mod-rtmp");
            format!("load_module {RTMP_MODULE};")
        } else {
            String::new()
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display().to_string();
        // One process, no user switch: it reads and writes the test's own files.
        let conf = format!(
            "{load}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n{}",
            body.replace("{PORT}", &port.to_string())
                .replace("{DIR}", &d)
        );
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        wait_for("nginx to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self { child, dir, port }
    }

    /// nginx with the RTMP module: application `live` (players wait for a publisher).
    pub fn rtmp() -> Self {
        Self::start(
            "rtmp { server { listen 127.0.0.1:{PORT};\n\
               application live { live on; record off; } } }",
            true,
        )
    }

    /// nginx as a WebDAV origin on `root()`: `PUT` (directories made as needed) and
    /// `DELETE`, `GET` to read back.
    pub fn webdav() -> Self {
        Self::start(
            "http { access_log off; client_body_temp_path {DIR}/body;\n\
               server { listen 127.0.0.1:{PORT}; root {DIR}/root;\n\
                 location / { dav_methods PUT DELETE; create_full_put_path on;\n\
                   client_max_body_size 0; dav_access user:rw group:r all:r; } } }",
            false,
        )
    }

    /// The directory the origin serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
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

/// An `ffmpeg` CLI publishing a 640x360 30 fps test pattern with a tone in real time (a
/// keyframe a second) to an RTMP URL until dropped.
pub struct Publisher(Child);

impl Publisher {
    pub fn rtmp(url: &str) -> Self {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "30", "-c:a", "aac", "-f", "flv", url])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg CLI");
        Self(child)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What hls.js in Chromium saw playing a live stream.
#[derive(Debug)]
pub struct Playback {
    pub fatal: bool,
    pub played_seconds: f64,
    pub stalled_seconds: f64,
    pub json: serde_json::Value,
}

/// Plays `entry` under `dir` (served by the harness's own server) live for `seconds` with
/// hls.js in Chromium (`tools/browser/play.mjs --live`).
pub fn play_live(dir: &Path, entry: &str, seconds: u32) -> Playback {
    require("/usr/bin/chromium", "chromium");
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/browser");
    assert!(
        tools.join("node_modules/hls.js/package.json").exists(),
        "hls.js is missing: run `npm ci --prefix tools/browser` (`make deps` does)"
    );
    let out = Command::new("node")
        .arg(tools.join("play.mjs"))
        .arg("--hls")
        .arg(dir)
        .arg(entry)
        .args([
            "--seconds",
            &seconds.to_string(),
            "--live",
            "--timeout",
            "60",
        ])
        .args(["--chromium", "/usr/bin/chromium"])
        .stdin(Stdio::null())
        .output()
        .expect("node tools/browser/play.mjs (install nodejs: `make deps` does)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "play.mjs failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("play.mjs printed no JSON ({e}): {text}"));
    Playback {
        fatal: json["fatal"].as_bool().unwrap_or(true),
        played_seconds: json["played_seconds"].as_f64().unwrap_or(0.0),
        stalled_seconds: json["stalled_seconds"].as_f64().unwrap_or(0.0),
        json,
    }
}
