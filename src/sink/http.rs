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

pub use super::http_url::content_type;
use super::http_url::{encode_path, invalid, parse_base};
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
/// The largest file [`SegmentSink::read`] takes back (playlists are kilobytes).
const READ_LIMIT: u64 = 16 * 1024 * 1024;

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
    /// Returns the response body of a `GET` (empty for the other methods).
    fn send(&self, method: Method, url: &str, body: &[u8], ctype: &str) -> io::Result<Vec<u8>> {
        let mut k = 0;
        loop {
            let failure = match self.attempt(&method, url, body, ctype) {
                Ok(got) => return Ok(got),
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
    fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: &[u8],
        ctype: &str,
    ) -> Result<Vec<u8>, Failure> {
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
        let status = response.status();
        if *method == Method::GET && status.is_success() {
            // A file read back (a playlist to carry on): bounded, and a body cut short is
            // retried like any broken transfer.
            return response
                .body_mut()
                .with_config()
                .limit(READ_LIMIT)
                .read_to_vec()
                .map_err(Failure::from_ureq);
        }
        // Read what little the origin says so the connection can be reused; an error here
        // only costs the connection (the status is in).
        let _ = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_DRAIN_LIMIT)
            .read_to_vec();
        if status.is_success()
            || (*method == Method::DELETE
                && matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE))
        {
            return Ok(Vec::new());
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
            .map(drop)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        let url = self.inner.url(path)?;
        self.inner.send(Method::DELETE, &url, &[], "").map(drop)
    }

    /// `GET`, with the same retries and bound as a `PUT`; a `404` is `NotFound`.
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let url = self.inner.url(path)?;
        self.inner.send(Method::GET, &url, &[], "")
    }

    /// The base URL without its query (which may hold a credential) or userinfo: two
    /// sinks with the same identity write the same files.
    fn identity(&self) -> Option<String> {
        Some(redact_url(&self.inner.base).into_owned())
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
#[path = "http_tests.rs"]
mod tests;
