//! A test-owned HTTP origin: a `std::net` listener on 127.0.0.1 speaking just enough
//! HTTP/1.1 to take uploads (`PUT` with a `Content-Length` body, `DELETE`, and `GET`/`HEAD`
//! to read them back), with keep-alive. It stores bodies in a map, records every request in
//! order, and can be told to fail or stall chosen requests. Stopped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `PUT`, `DELETE`, `GET`...
    pub method: String,
    /// The request target's path as sent (percent-encoded), without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body's length.
    pub body_len: usize,
    /// The body of a playlist or manifest PUT (`.m3u8`, `.mpd`), kept to check each version.
    pub text: Option<String>,
    /// The status the origin answered.
    pub status: u16,
    /// When the request had arrived in full.
    pub at: Instant,
    /// Which connection it came on (0, 1, ... in the order they were accepted).
    pub connection: usize,
}

impl Request {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a rule does to a request it matches.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Answer this status without touching the store.
    Fail(u16),
    /// Sleep this long, then handle the request normally.
    Stall(Duration),
}

/// A rule: the first `left` requests with this method (any when `None`) whose path contains
/// `contains` get `action`.
struct Rule {
    method: Option<String>,
    contains: String,
    left: usize,
    action: Action,
}

type Predicate = Box<dyn Fn(&str, &str) -> Option<u16> + Send>;

#[derive(Default)]
struct State {
    files: BTreeMap<String, Vec<u8>>,
    log: Vec<Request>,
    rules: Vec<Rule>,
    predicate: Option<Predicate>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The origin; see the module docs.
pub struct Origin {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Origin {
    /// Starts an origin on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test origin");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("test-origin".into())
            .spawn(move || {
                for (connection, stream) in listener.incoming().enumerate() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let s = Arc::clone(&s);
                    let _ = std::thread::Builder::new()
                        .name("test-origin-conn".into())
                        .spawn(move || serve(stream, connection, &s));
                }
            })
            .unwrap();
        Self {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The first `n` requests with `method` (`"*"` for any) whose path contains `contains`
    /// are answered `status` (and change nothing).
    pub fn fail_first(&self, n: usize, method: &str, contains: &str, status: u16) {
        self.add_rule(n, method, contains, Action::Fail(status));
    }

    /// The first `n` requests with `method` (`"*"` for any) whose path contains `contains`
    /// are answered only after `delay` (and then handled normally: a `PUT` whose client gave
    /// up meanwhile is still stored).
    pub fn stall_first(&self, n: usize, method: &str, contains: &str, delay: Duration) {
        self.add_rule(n, method, contains, Action::Stall(delay));
    }

    fn add_rule(&self, n: usize, method: &str, contains: &str, action: Action) {
        self.lock().rules.push(Rule {
            method: (method != "*").then(|| method.to_ascii_uppercase()),
            contains: contains.to_owned(),
            left: n,
            action,
        });
    }

    /// Every request for which `fail(method, path)` returns a status gets it (after the
    /// `fail_first`/`stall_first` rules); replaces an earlier predicate.
    pub fn fail_when(&self, fail: impl Fn(&str, &str) -> Option<u16> + Send + 'static) {
        self.lock().predicate = Some(Box::new(fail));
    }

    /// Forgets every rule and the predicate.
    pub fn clear_failures(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.predicate = None;
    }

    /// Every request so far, in the order they arrived in full.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    /// The stored body at `path` (`/`-prefixed, as requested), if any.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(path).cloned()
    }

    /// The stored paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.lock().files.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection until the client closes it, asks to, or stays idle for 10 s.
fn serve(stream: TcpStream, connection: usize, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    while !shared.stop.load(Ordering::SeqCst) {
        match one_request(&mut input, &mut out, connection, shared) {
            Ok(true) => {}
            _ => return,
        }
    }
}

/// Reads one request and answers it. `Ok(false)` when the connection is done.
fn one_request(
    input: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
    connection: usize,
    shared: &Shared,
) -> std::io::Result<bool> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(false);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        respond(out, 400, b"", true)?;
        return Ok(false);
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if input.read_line(&mut h)? == 0 {
            return Ok(false);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if get("transfer-encoding").is_some() {
        respond(out, 411, b"", true)?; // Content-Length bodies only
        return Ok(false);
    }
    if get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let len: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    input.read_exact(&mut body)?;
    let close = get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.clone(), None),
    };

    let action = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let rule = state.rules.iter_mut().find(|r| {
            r.left > 0
                && r.method.as_deref().is_none_or(|m| m == method)
                && path.contains(&r.contains)
        });
        match rule {
            Some(r) => {
                r.left -= 1;
                Some(r.action)
            }
            None => state
                .predicate
                .as_ref()
                .and_then(|p| p(&method, &path))
                .map(Action::Fail),
        }
    };
    if let Some(Action::Stall(delay)) = action {
        std::thread::sleep(delay);
    }
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let (status, reply) = match (action, method.as_str()) {
        (Some(Action::Fail(status)), _) => (status, b"failed on purpose\n".to_vec()),
        (_, "PUT") => match state.files.insert(path.clone(), body.clone()) {
            Some(_) => (204, Vec::new()),
            None => (201, Vec::new()),
        },
        (_, "DELETE") => match state.files.remove(&path) {
            Some(_) => (204, Vec::new()),
            None => (404, Vec::new()),
        },
        (_, "GET" | "HEAD") => match state.files.get(&path) {
            Some(b) => (200, b.clone()),
            None => (404, Vec::new()),
        },
        _ => (405, Vec::new()),
    };
    let text = (path.ends_with(".m3u8") || path.ends_with(".mpd"))
        .then(|| String::from_utf8_lossy(&body).into_owned());
    state.log.push(Request {
        method: method.clone(),
        path,
        query,
        headers,
        body_len: body.len(),
        text,
        status,
        at: Instant::now(),
        connection,
    });
    drop(state);
    respond_with(out, status, &reply, method != "HEAD", close)?;
    Ok(!close)
}

fn respond(out: &mut TcpStream, status: u16, body: &[u8], close: bool) -> std::io::Result<()> {
    respond_with(out, status, body, true, close)
}

/// Answers `status` with `body`'s length, and the body itself unless `send_body` is false
/// (a `HEAD`).
fn respond_with(
    out: &mut TcpStream,
    status: u16,
    body: &[u8],
    send_body: bool,
    close: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        _ => "Status",
    };
    let connection = if close { "close" } else { "keep-alive" };
    // 204 carries no body and no Content-Length.
    let length = if status == 204 {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\n{length}Connection: {connection}\r\n\r\n");
    out.write_all(head.as_bytes())?;
    if send_body {
        out.write_all(body)?;
    }
    out.flush()
}
