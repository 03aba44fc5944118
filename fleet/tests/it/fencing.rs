//! A test-owned HTTP origin that checks the fencing token: `PUT`, `DELETE` and `GET` on a
//! directory, where a `PUT` or `DELETE` under `/<app>/<job>/` whose `X-Fencing-Token` is
//! lower than the highest the origin has seen for that job is refused (409) and counted.
//! What a plain WebDAV origin cannot do.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use streamvisor_fleet::FENCING_HEADER;

/// What the origin saw.
#[derive(Debug, Default, Clone)]
pub struct Fenced {
    /// Highest token seen per job.
    pub highest: HashMap<String, u64>,
    /// Writes accepted per token.
    pub accepted: HashMap<u64, u64>,
    /// Writes refused (a stale token), per token.
    pub refused: HashMap<u64, u64>,
}

pub struct FencingOrigin {
    pub port: u16,
    root: tempfile::TempDir,
    seen: Arc<Mutex<Fenced>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FencingOrigin {
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let root = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Fenced::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, state, flag) = (root.path().to_owned(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) {
                    serve(&dir, &state, request);
                }
            }
        });
        Self {
            port,
            root,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.root.path().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn seen(&self) -> Fenced {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FencingOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The file under `root` a URL path names, if it is a plain relative path.
fn file_of(root: &Path, url: &str) -> Option<PathBuf> {
    let rel = Path::new(url.split('?').next()?.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
}

fn serve(root: &Path, seen: &Mutex<Fenced>, mut request: tiny_http::Request) {
    let Some(file) = file_of(root, request.url()) else {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    };
    let job = request
        .url()
        .split('/')
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let token: Option<u64> = request
        .headers()
        .iter()
        .find(|h| h.field.equiv(FENCING_HEADER))
        .and_then(|h| h.value.as_str().parse().ok());
    let status = match request.method() {
        tiny_http::Method::Get => match std::fs::read(&file) {
            Ok(bytes) => {
                let _ = request.respond(tiny_http::Response::from_data(bytes));
                return;
            }
            Err(_) => 404,
        },
        method => {
            let writes = matches!(method, tiny_http::Method::Put | tiny_http::Method::Delete);
            if !writes || !admit(seen, &job, token) {
                if writes {
                    let _ = std::io::copy(request.as_reader(), &mut std::io::sink());
                }
                409
            } else if *method == tiny_http::Method::Put {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                let tmp = file.with_extension("part");
                std::fs::write(&tmp, body).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                201
            } else {
                let _ = std::fs::remove_file(&file);
                204
            }
        }
    };
    let _ = request.respond(tiny_http::Response::empty(status));
}

/// Admits a write with `token` for `job` (not lower than the highest seen), counting it.
fn admit(seen: &Mutex<Fenced>, job: &str, token: Option<u64>) -> bool {
    let token = token.unwrap_or(0);
    let mut g = seen.lock().unwrap();
    let highest = g.highest.entry(job.to_owned()).or_insert(0);
    if token < *highest {
        *g.refused.entry(token).or_insert(0) += 1;
        return false;
    }
    *highest = token;
    *g.accepted.entry(token).or_insert(0) += 1;
    true
}
