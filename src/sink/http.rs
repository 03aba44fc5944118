//! A sink that uploads to an HTTP origin: every file is one `PUT` of its whole body, deletes
//! are `DELETE`s. Speaks to anything that accepts WebDAV-style `PUT` (nginx's `dav_methods
//! PUT DELETE`, Apache `mod_dav`, most CDN ingest endpoints and object stores' presigned
//! URLs).
//!
//! The client is [`ureq`] (synchronous, no async runtime): plain `http://` always,
//! `https://` with the crate's `https` feature (rustls with the webpki roots).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ureq::http::{self, HeaderName, HeaderValue, Method, Request, StatusCode};

use super::{SegmentSink, SinkFile};
use crate::redact::{redact_text, redact_url};

/// Retries after the first attempt, by default.
const DEFAULT_RETRIES: u32 = 3;
/// The first backoff before a retry, by default (it doubles each retry).
const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// The longest backoff before a retry, by default.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The limit on one request, everything included, by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The limit on opening one connection, by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this much of a response body is read (and dropped) so that the connection can be
/// reused; a longer one closes the connection instead.
const RESPONSE_DRAIN_LIMIT: u64 = 64 * 1024;

/// Uploads a stream's files to an HTTP origin under a base URL: `create(path)` buffers the
/// file in memory and [`SinkFile::finish`] `PUT`s it to `base_url/path` with its
/// `Content-Length` and a `Content-Type` from its extension ([`content_type`]);
/// [`replace`](SegmentSink::replace) is the same `PUT`; [`delete`](SegmentSink::delete) is a
/// `DELETE` (`404`/`410` count as done). Dropping an unfinished file sends nothing.
///
/// **Atomicity.** An origin applies a `PUT` only once its whole body has arrived: a reader
/// gets the old file or the new one, never a part (nginx's dav module writes the body to a
/// temporary file and renames it into place; object stores commit on completion). So a
/// playlist `replace` is atomic for the origin's readers as the trait asks; no temporary
/// name is involved.
///
/// **URLs.** `base_url` is `http://` (always) or `https://` (with the crate's `https`
/// feature); anything else is refused by [`HttpSink::new`]. A query on the base URL (a
/// signed token: `https://origin/live?token=...`) is kept on every request, after the path:
/// `base_url` `https://o/live?token=T` and path `720p/seg_1.m4s` give
/// `https://o/live/720p/seg_1.m4s?token=T`. Userinfo (`http://user:pass@host/`) is sent as
/// HTTP Basic authorization. Path elements are percent-encoded (unreserved characters are
/// kept); empty, `.` and `..` elements are refused. [`location`](SegmentSink::location), and
/// every error, shows the URL through [`redact_url`]: the userinfo and
/// secret-looking query values (`token`, `sig`, ...) are masked.
///
/// **Retries.** A request that fails to connect, times out, breaks off, or gets a `5xx`,
/// `408` or `429` is retried after a jittered exponential backoff: before retry `k` (1, 2,
/// ...) the sink sleeps a random time between half and all of `min(max, initial × 2^(k-1))`
/// (a `Retry-After` in seconds on a `429`/`503` is honoured up to `max`). Other statuses
/// (`4xx`, `3xx`: redirects are not followed) fail at once. When it gives up, the
/// [`io::Error`] carries an [`HttpError`] that names the method, the redacted URL, the last
/// status or cause, and the number of attempts.
///
/// **Bound.** Every attempt is limited as a whole (DNS lookup, connect, sending the body,
/// reading the response) by [`timeout`](Self::timeout), and its connect by
/// [`connect_timeout`](Self::connect_timeout), so one call (`finish`, `replace`, `delete`)
/// returns within [`max_duration`](Self::max_duration) = `(retries + 1) × timeout +
/// retries × backoff max` (46 s with the defaults: 3 retries, 10 s, 2 s), however dead the
/// origin is (plus scheduling noise). A variant thread writing through this sink is never
/// blocked longer than that per file.
///
/// Connections are kept alive and reused (a pool per sink, shared by its clones); a
/// connection the origin closed meanwhile is detected before reuse.
///
/// ```no_run
/// use std::io::Write;
/// use std::time::Duration;
/// use streamvisor::sink::{HttpSink, SegmentSink};
///
/// let sink = HttpSink::new("http://127.0.0.1:8080/live/stream1")?
///     .retries(2)
///     .backoff(Duration::from_millis(100), Duration::from_secs(1))
///     .timeout(Duration::from_secs(4))
///     .header("Authorization", "Bearer SECRET")?;
/// let mut f = sink.create("720p/seg_00001.m4s")?;
/// f.write_all(b"...")?;
/// f.finish()?;
/// sink.replace("720p/index.m3u8", b"#EXTM3U\n")?;
/// assert_eq!(sink.max_duration(), Duration::from_secs(3 * 4 + 2 * 1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpSink {
    inner: Arc<Inner>,
}

/// What an [`HttpSink`] and its files share.
#[derive(Clone)]
struct Inner {
    /// `scheme://authority/path`, without a trailing `/`.
    base: String,
    /// The base URL's query (without `?`), appended to every request URL.
    query: Option<String>,
    agent: ureq::Agent,
    retry: Backoff,
    timeout: Duration,
    connect_timeout: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The retry schedule: how many retries, and the jittered exponential backoff before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    retries: u32,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// The backoff before retry `k` (1-based) without jitter: `min(max, initial × 2^(k-1))`.
    fn ceiling(&self, k: u32) -> Duration {
        let factor = 1u32.checked_shl(k.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered backoff before retry `k`: `ceiling(k) × (1 + unit) / 2` for a `unit` in
    /// `[0, 1]`, so between half and all of the ceiling.
    fn delay(&self, k: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(k);
        ceiling
            .mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
            .min(ceiling)
    }
}

/// A random number in `[0, 1]` for the jitter (std's randomly keyed hasher, no RNG crate).
fn jitter_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The `Content-Type` the sink sends for `path`, by its extension (case-insensitive):
/// `.m3u8` `application/vnd.apple.mpegurl`, `.mpd` `application/dash+xml`, `.m4s`
/// `video/iso.segment`, `.mp4`/`.m4v` `video/mp4`, `.m4a` `audio/mp4`, `.ts` `video/mp2t`,
/// `.aac` `audio/aac`, `.vtt` `text/vtt`; anything else `application/octet-stream`.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "m4s" => "video/iso.segment",
        "mp4" | "m4v" => "video/mp4",
        "m4a" => "audio/mp4",
        "ts" => "video/mp2t",
        "aac" => "audio/aac",
        "vtt" => "text/vtt",
        _ => "application/octet-stream",
    }
}

/// An invalid-input error naming `url` redacted.
fn invalid(url: &str, why: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("HTTP sink URL {}: {why}", redact_url(url)),
    )
}

impl HttpSink {
    /// A sink uploading under `base_url` (`http://host[:port][/path][?query]`, or
    /// `https://...` with the crate's `https` feature), with the default retries (3), backoff
    /// (200 ms doubling up to 2 s), per-request timeout (10 s) and connect timeout (3 s).
    /// Nothing is connected yet.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`], naming the URL redacted: another scheme (`ftp://`,
    /// a local path), `https://` without the `https` feature, no host, a fragment, or
    /// characters a URL cannot hold.
    pub fn new(base_url: &str) -> io::Result<Self> {
        let (base, query) = parse_base(base_url)?;
        let retry = Backoff {
            retries: DEFAULT_RETRIES,
            initial: DEFAULT_BACKOFF_INITIAL,
            max: DEFAULT_BACKOFF_MAX,
        };
        let mut inner = Inner {
            base,
            query,
            agent: ureq::Agent::new_with_defaults(),
            retry,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            headers: Vec::new(),
        };
        inner.agent = inner.make_agent();
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// How many times a failed request is retried (after the first attempt; 0 for none).
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        Arc::make_mut(&mut self.inner).retry.retries = retries;
        self
    }

    /// The backoff before retries: `initial` before the first, doubling each retry up to
    /// `max`, each jittered to between half and all of that. `max` below `initial` is taken
    /// as `initial`.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        let retry = &mut Arc::make_mut(&mut self.inner).retry;
        retry.initial = initial;
        retry.max = max.max(initial);
        self
    }

    /// The limit on one request as a whole: DNS lookup, connect, sending the body and
    /// reading the response. A zero duration is taken as 1 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.timeout = timeout.max(Duration::from_millis(1));
        inner.agent = inner.make_agent();
        self
    }

    /// The limit on opening one connection (TCP, and TLS with `https`); never more than
    /// [`timeout`](Self::timeout) in effect.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.connect_timeout = timeout.max(Duration::from_millis(1));
        inner.agent = inner.make_agent();
        self
    }

    /// Adds a header to every request (`Authorization`, an origin's own token header...).
    /// Its value never appears in `Debug` or in errors.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`]: not a valid header name or value, or one the sink
    /// sets itself (`Content-Length`, `Content-Type`, `Transfer-Encoding`, `Host`).
    pub fn header(mut self, name: &str, value: &str) -> io::Result<Self> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("invalid HTTP header name {name:?}")))?;
        let own = [
            http::header::CONTENT_LENGTH,
            http::header::CONTENT_TYPE,
            http::header::TRANSFER_ENCODING,
            http::header::HOST,
        ];
        if own.contains(&name) {
            return Err(bad(format!("the HTTP sink sets the {name} header itself")));
        }
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| bad(format!("invalid value for the HTTP header {name}")))?;
        value.set_sensitive(true);
        Arc::make_mut(&mut self.inner).headers.push((name, value));
        Ok(self)
    }

    /// The longest one call (`finish`, `replace`, `delete`) can take before it returns an
    /// error, however the origin fails: `(retries + 1) × timeout + retries × backoff max`.
    pub fn max_duration(&self) -> Duration {
        let r = &self.inner.retry;
        let attempts = r.retries.saturating_add(1);
        self.inner
            .timeout
            .saturating_mul(attempts)
            .saturating_add(r.max.saturating_mul(r.retries))
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let headers: Vec<&str> = i.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSink")
            .field("base_url", &redact_url(&i.url_with_query(&i.base)))
            .field("retries", &i.retry.retries)
            .field("backoff", &(i.retry.initial..=i.retry.max))
            .field("timeout", &i.timeout)
            .field("connect_timeout", &i.connect_timeout)
            .field("headers", &headers)
            .finish()
    }
}

/// Splits and checks a base URL: (`scheme://authority/path` without a trailing `/`, query).
fn parse_base(url: &str) -> io::Result<(String, Option<String>)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(
            url,
            "not a URL; the HTTP sink needs http://host/... or https://host/...",
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" if cfg!(feature = "https") => {}
        "https" => {
            return Err(invalid(
                url,
                "https:// needs streamvisor's `https` cargo feature",
            ))
        }
        _ => {
            return Err(invalid(
                url,
                format_args!(
                    "unsupported scheme `{scheme}`: the HTTP sink speaks http:// and https://"
                ),
            ))
        }
    }
    if url.contains('#') {
        return Err(invalid(url, "a fragment (#) has no meaning for an upload"));
    }
    let uri: http::Uri = url.parse().map_err(|e| invalid(url, e))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(url, "no host"));
    }
    let (before, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q.to_owned()).filter(|q| !q.is_empty())),
        None => (rest, None),
    };
    let base = format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        before.trim_end_matches('/')
    );
    Ok((base, query))
}

/// Characters kept as they are in a path element: RFC 3986's unreserved ones.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `path` (relative, `/`-separated) percent-encoded element by element.
fn encode_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("an empty path".into());
    }
    let mut out = String::with_capacity(path.len());
    for (i, element) in path.split('/').enumerate() {
        if matches!(element, "" | "." | "..") {
            return Err(format!(
                "path {path:?} has an empty, `.` or `..` element (paths are relative, `/`-separated)"
            ));
        }
        if i > 0 {
            out.push('/');
        }
        for &b in element.as_bytes() {
            if is_unreserved(b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(out)
}

impl Inner {
    fn make_agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("streamvisor/", env!("CARGO_PKG_VERSION")))
            // One idle connection per variant uploading at once (ureq keeps 3 per host).
            .max_idle_connections(64)
            .max_idle_connections_per_host(16)
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.connect_timeout.min(self.timeout)))
            .build()
            .new_agent()
    }

    fn url_with_query(&self, url: &str) -> String {
        match &self.query {
            Some(q) => format!("{url}?{q}"),
            None => url.to_owned(),
        }
    }

    /// The request URL for `path`.
    fn url(&self, path: &str) -> io::Result<String> {
        let full = self.url_with_query(&self.base);
        let encoded = encode_path(path).map_err(|why| invalid(&full, why))?;
        Ok(self.url_with_query(&format!("{}/{encoded}", self.base)))
    }

    /// Sends `method` to `url` (with `body` for a `PUT`) until it succeeds, fails for good,
    /// or the retries are spent.
    fn send(&self, method: Method, url: &str, body: &[u8], ctype: &str) -> io::Result<()> {
        let mut k = 0;
        loop {
            let failure = match self.attempt(&method, url, body, ctype) {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !failure.retryable || k >= self.retry.retries {
                return Err(HttpError {
                    method: method.to_string(),
                    url: redact_url(url).into_owned(),
                    status: failure.status,
                    cause: failure.cause,
                    attempts: k + 1,
                    kind: failure.kind,
                }
                .into());
            }
            k += 1;
            let mut delay = self.retry.delay(k, jitter_unit());
            if let Some(after) = failure.retry_after {
                delay = delay.max(after.min(self.retry.max));
            }
            log::warn!(
                "{method} {}: {}; retry {k} of {} in {delay:?}",
                redact_url(url),
                failure.cause,
                self.retry.retries
            );
            thread::sleep(delay);
        }
    }

    /// One request.
    fn attempt(&self, method: &Method, url: &str, body: &[u8], ctype: &str) -> Result<(), Failure> {
        let mut request = Request::builder().method(method.clone()).uri(url);
        if *method == Method::PUT {
            request = request.header(http::header::CONTENT_TYPE, ctype);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request.body(body).map_err(|e| Failure {
            retryable: false,
            status: None,
            cause: redact_text(&e.to_string()).into_owned(),
            retry_after: None,
            kind: io::ErrorKind::InvalidInput,
        })?;
        let mut response = self.agent.run(request).map_err(Failure::from_ureq)?;
        // Read what little the origin says so the connection can be reused; an error here
        // only costs the connection (the status is in).
        let _ = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_DRAIN_LIMIT)
            .read_to_vec();
        let status = response.status();
        if status.is_success()
            || (*method == Method::DELETE
                && matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE))
        {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(Failure::from_status(status, retry_after))
    }
}

/// Why one attempt failed.
struct Failure {
    retryable: bool,
    status: Option<u16>,
    /// Redacted.
    cause: String,
    retry_after: Option<Duration>,
    kind: io::ErrorKind,
}

impl Failure {
    fn from_status(status: StatusCode, retry_after: Option<Duration>) -> Self {
        let code = status.as_u16();
        let retryable = status.is_server_error() || matches!(code, 408 | 429);
        let kind = match code {
            401 | 403 => io::ErrorKind::PermissionDenied,
            404 => io::ErrorKind::NotFound,
            408 => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        Self {
            retryable,
            status: Some(code),
            cause: format!(
                "HTTP {code} {}",
                status.canonical_reason().unwrap_or("(unknown status)")
            ),
            retry_after: retry_after.filter(|_| matches!(code, 429 | 503)),
            kind,
        }
    }

    fn from_ureq(e: ureq::Error) -> Self {
        use ureq::Error as E;
        let (retryable, kind) = match &e {
            E::Io(io) => (true, io.kind()),
            E::Timeout(_) => (true, io::ErrorKind::TimedOut),
            E::HostNotFound | E::ConnectionFailed | E::Protocol(_) => (true, io::ErrorKind::Other),
            _ => (false, io::ErrorKind::Other),
        };
        Self {
            retryable,
            status: None,
            cause: redact_text(&e.to_string()).into_owned(),
            retry_after: None,
            kind,
        }
    }
}

/// Why an [`HttpSink`] request failed for good, carried inside the [`io::Error`] it returns
/// (`err.get_ref()` and `downcast_ref::<HttpError>()`; the error's kind is `TimedOut`,
/// `ConnectionRefused`, `PermissionDenied` (401/403), `NotFound` (404)... or `Other`). Its
/// `Display` and `Debug` show the URL redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    method: String,
    url: String,
    status: Option<u16>,
    cause: String,
    attempts: u32,
    kind: io::ErrorKind,
}

impl HttpError {
    /// The request's method (`PUT`, `DELETE`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request's URL, redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last HTTP status, when the last attempt got a response.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How many attempts were made (1 when the failure was not worth a retry).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{} {}: {} ({} attempt{s})",
            self.method, self.url, self.cause, self.attempts
        )
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for io::Error {
    fn from(e: HttpError) -> Self {
        io::Error::new(e.kind, e)
    }
}

impl SegmentSink for HttpSink {
    fn create(&self, path: &str) -> io::Result<Box<dyn SinkFile>> {
        let url = self.inner.url(path)?;
        Ok(Box::new(HttpFile {
            inner: Arc::clone(&self.inner),
            content_type: content_type(path),
            url,
            body: Vec::new(),
        }))
    }

    fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        let url = self.inner.url(path)?;
        self.inner
            .send(Method::PUT, &url, contents, content_type(path))
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        let url = self.inner.url(path)?;
        self.inner.send(Method::DELETE, &url, &[], "")
    }

    fn location(&self, path: &str) -> String {
        let url = self.inner.url(path).unwrap_or_else(|_| {
            self.inner
                .url_with_query(&format!("{}/{path}", self.inner.base))
        });
        redact_url(&url).into_owned()
    }
}

/// A file buffered in memory until [`SinkFile::finish`] uploads it.
struct HttpFile {
    inner: Arc<Inner>,
    content_type: &'static str,
    url: String,
    body: Vec<u8>,
}

impl Write for HttpFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SinkFile for HttpFile {
    fn finish(self: Box<Self>) -> io::Result<u64> {
        self.inner
            .send(Method::PUT, &self.url, &self.body, self.content_type)?;
        Ok(self.body.len() as u64)
    }
}

#[cfg(test)]
mod tests {
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
            "http://***@127.0.0.1:8080/live/s1/720p/seg_00001.m4s?token=***&x=1"
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
}
