//! The origin's one thread (`sv-origin`): every connection on one `mio` poll, requests read
//! with `httparse`, answers written as the socket takes them. A blocking request is parked
//! on its connection (no thread of its own) and answered when the files change so that it
//! can be, or when its wait is over; a file being written is streamed on its connection
//! with chunked transfer encoding, a chunk each time it grows, to its end. Bounded:
//! connections, request size, idle time.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::answer::{answer, content_type, Answer, Request, Response};
use super::store::{Files, Store};

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// Connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 2048;
/// The largest request head read.
const MAX_REQUEST: usize = 16 * 1024;
/// A connection with nothing to do for this long is closed.
const IDLE: Duration = Duration::from_secs(30);

/// One client connection.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// A request waiting for the files: it, when it came, how long it may wait, and what
    /// to answer then.
    parked: Option<(Request, Instant, Duration, Response)>,
    /// A file being written, streamed: its path and how many of its bytes were sent.
    streaming: Option<(String, usize)>,
    close_after: bool,
    last_active: Instant,
}

/// What the origin's thread runs on.
pub(crate) struct Server {
    pub poll: Poll,
    pub listener: TcpListener,
    pub store: Arc<Store>,
    pub stop: Arc<AtomicBool>,
    /// Connections open now, and requests parked now (figures for tests and logs).
    pub open: Arc<AtomicUsize>,
    pub parked: Arc<AtomicUsize>,
}

impl Server {
    /// Serves until stopped.
    pub fn run(mut self) {
        let mut conns: HashMap<Token, Conn> = HashMap::new();
        let mut next = 2usize;
        let mut events = Events::with_capacity(256);
        let mut seen_generation = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = Some(Duration::from_millis(50));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("origin: poll failed: {e}");
                    return;
                }
            }
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept(&mut conns, &mut next),
                    WAKER => {}
                    token => {
                        if let Some(c) = conns.get_mut(&token) {
                            if !self.on_ready(c) {
                                conns.remove(&token);
                            }
                        }
                    }
                }
            }
            let generation = self.store.files.lock().generation;
            let changed = std::mem::replace(&mut seen_generation, generation) != generation;
            let now = Instant::now();
            conns.retain(|_, c| self.tick(c, changed, now));
            self.open.store(conns.len(), Ordering::Relaxed);
            let parked = conns.values().filter(|c| c.parked.is_some()).count();
            self.parked.store(parked, Ordering::Relaxed);
        }
    }

    fn accept(&self, conns: &mut HashMap<Token, Conn>, next: &mut usize) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if conns.len() >= MAX_CONNECTIONS {
                        continue; // dropped: closed at once
                    }
                    let token = Token(*next);
                    *next += 1;
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, interest)
                        .is_ok()
                    {
                        let conn = Conn {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            parked: None,
                            streaming: None,
                            close_after: false,
                            last_active: Instant::now(),
                        };
                        conns.insert(token, conn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("origin: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// The socket is readable or writable: read what came, answer a whole request, write
    /// what is pending. False when the connection is to be closed.
    fn on_ready(&self, c: &mut Conn) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    c.input.extend_from_slice(&buf[..n]);
                    c.last_active = Instant::now();
                    if c.input.len() > MAX_REQUEST {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        self.next_request(c);
        flush(c)
    }

    /// Parses the next request when none is parked, and answers it or parks it.
    fn next_request(&self, c: &mut Conn) {
        if c.parked.is_some() || c.streaming.is_some() || !c.output.is_empty() {
            return;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        let used = match parsed.parse(&c.input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return,
            Err(_) => {
                c.output = head(400, "text/plain", "no-store", Some(0), true);
                c.close_after = true;
                return;
            }
        };
        let close = parsed.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && String::from_utf8_lossy(h.value).eq_ignore_ascii_case("close")
        });
        let host = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"));
        let mut req = Request::new(
            parsed.method.unwrap_or(""),
            parsed.path.unwrap_or("/"),
            close,
        );
        req.host = host.and_then(|h| std::str::from_utf8(h.value).ok().map(str::to_owned));
        c.input.drain(..used);
        let files = self.store.files.lock();
        match answer(&files, &req) {
            Answer::Now(r) => respond(c, &req, &r),
            Answer::Wait(wait, otherwise) => {
                c.parked = Some((req, Instant::now(), wait, otherwise))
            }
            Answer::Stream(path) => start_stream(c, &req, path, &files),
        }
    }

    /// A parked request is answered when the files changed so that it can be, or when its
    /// wait is over; idle connections close. False when the connection is to be closed.
    fn tick(&self, c: &mut Conn, changed: bool, now: Instant) -> bool {
        if c.streaming.is_some() {
            if changed && !stream_more(c, &self.store.files.lock()) {
                return false;
            }
            c.last_active = now;
            return self.went_on(c);
        }
        if let Some((req, since, wait, otherwise)) = c.parked.take() {
            // The files are asked again only when they changed (a lock per parked request
            // per change, not per poll).
            let answered = changed && {
                let files = self.store.files.lock();
                match answer(&files, &req) {
                    Answer::Now(r) => {
                        respond(c, &req, &r);
                        true
                    }
                    Answer::Stream(path) => {
                        start_stream(c, &req, path, &files);
                        true
                    }
                    Answer::Wait(..) => false,
                }
            };
            if !answered {
                if now.duration_since(since) < wait {
                    c.parked = Some((req, since, wait, otherwise));
                    return true;
                }
                respond(c, &req, &otherwise);
            }
            c.last_active = now;
            return self.went_on(c);
        }
        now.duration_since(c.last_active) < IDLE
    }

    /// After an answer (or a chunk of one) was queued: writes it, and when the connection
    /// is free again takes its next request. False when the connection is to be closed.
    fn went_on(&self, c: &mut Conn) -> bool {
        if !flush(c) {
            return false;
        }
        if c.streaming.is_none() {
            self.next_request(c);
            return flush(c);
        }
        true
    }
}

/// Starts streaming the file at `path`, being written, as the answer to `req`: the head
/// (chunked), then what it holds so far. A `HEAD` gets the head alone.
fn start_stream(c: &mut Conn, req: &Request, path: String, files: &Files) {
    let cache = "max-age=31536000, immutable";
    c.output = head(200, content_type(&path), cache, None, req.close);
    c.close_after = req.close;
    if req.method != "HEAD" {
        c.streaming = Some((path, 0));
        stream_more(c, files);
    }
}

/// Queues what the streamed file gained since the last chunk, and the end when it is
/// finished; false when it was withdrawn (the connection closes: the body ends short).
fn stream_more(c: &mut Conn, files: &Files) -> bool {
    let Some((path, sent)) = c.streaming.as_mut() else {
        return true;
    };
    let (bytes, done) = match (
        files.files.get(path.as_str()),
        files.growing.get(path.as_str()),
    ) {
        (Some(b), _) => (b, true),
        (None, Some(b)) => (b, false),
        (None, None) => return false,
    };
    if let Some(new) = bytes.get(*sent..).filter(|n| !n.is_empty()) {
        c.output
            .extend_from_slice(format!("{:x}\r\n", new.len()).as_bytes());
        c.output.extend_from_slice(new);
        c.output.extend_from_slice(b"\r\n");
        *sent = bytes.len();
    }
    if done {
        c.output.extend_from_slice(b"0\r\n\r\n");
        c.streaming = None;
    }
    true
}

/// Queues the answer to `req` on the connection.
fn respond(c: &mut Conn, req: &Request, r: &Response) {
    let body = if req.method == "HEAD" {
        &[][..]
    } else {
        &r.body[..]
    };
    c.output = head(
        r.status,
        r.content_type,
        r.cache_control,
        Some(r.body.len()),
        req.close,
    );
    c.output.extend_from_slice(body);
    c.close_after = req.close;
}

/// Writes what is pending; false when the connection is to be closed (an error, or done
/// with `Connection: close`).
fn flush(c: &mut Conn) -> bool {
    while !c.output.is_empty() {
        match c.stream.write(&c.output) {
            Ok(0) => return false,
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    // A streamed answer goes on after what is written now.
    !c.close_after || c.streaming.is_some()
}

/// A response head: the status, the file's type, its length (`None`: chunked) and caching,
/// CORS for browser players.
fn head(status: u16, content_type: &str, cache: &str, len: Option<usize>, close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let length = match len {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{length}\r\n\
         Cache-Control: {cache}\r\nAccess-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\n\
         Connection: {connection}\r\n\r\n"
    )
    .into_bytes()
}
