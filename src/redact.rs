//! Secrets out of everything that shows a URL: errors, config dumps, logs (FFmpeg's own
//! lines included), events and the examples' output. The real URL is still what is opened;
//! only what is *shown* is masked. A leaf module: it imports nothing from the crate, so
//! every layer (`ffi`'s log callback included) may use it.
//!
//! What is masked, with `***`:
//! - the userinfo of `scheme://user:password@host/...` (everything before the last `@`
//!   that comes before the query);
//! - the value of every query parameter, except those whose name is on a short allow-list
//!   of names known to be harmless ([`SHOWN_BY_DEFAULT`]: transport settings such as
//!   `mode`, `latency`, `listen`, `timeout`; an application adds its own with
//!   [`show_query_values`]). A deny-list of secret-looking names can never be complete
//!   (CDN and origin token schemes use names such as `hdnts`, `e`, `st`, `Policy`,
//!   `wmsAuthSign`), so nothing is shown unless it is known to be harmless. The query is
//!   taken to run to the end of the URL (a `#` in an SRT `streamid` is not a fragment);
//! - for `rtmp`-family URLs, the last path element when the path has two or more (the
//!   stream key in `rtmp://host/app/KEY`); `rtmp://host/app` keeps its application name.
//!
//! Masking is idempotent (redacting a redacted URL changes nothing). Secrets in other
//! places (a token as an ordinary path element of an http URL) cannot be told apart from
//! names and are not masked.

use std::borrow::Cow;

/// The mask that replaces a secret.
pub(crate) const MASK: &str = "***";

/// Query parameters (and FFmpeg options) whose values are shown: names known to carry no
/// secret, compared case-insensitively. Everything else is masked.
pub const SHOWN_BY_DEFAULT: [&str; 24] = [
    // SRT, UDP, TCP, RTP transport settings.
    "mode",
    "latency",
    "rcvlatency",
    "peerlatency",
    "listen",
    "listen_timeout",
    "timeout",
    "rw_timeout",
    "connect_timeout",
    "conntimeo",
    "transtype",
    "pkt_size",
    "payload_size",
    "buffer_size",
    "fifo_size",
    "overrun_nonfatal",
    "maxbw",
    "tlpktdrop",
    "nakreport",
    "localport",
    "reuse",
    "ttl",
    "tcp_nodelay",
    // FFmpeg demuxer options that are plain numbers or formats.
    "reconnect",
];

/// Names an application added to [`SHOWN_BY_DEFAULT`] (lower-cased).
static SHOWN_ALSO: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Shows the values of query parameters (and FFmpeg options) with these names too,
/// process-wide, from now on: names the application knows to be harmless in its URLs
/// (e.g. `quality`, `lang`). Compared case-insensitively. There is no way to hide a name
/// of [`SHOWN_BY_DEFAULT`].
///
/// ```
/// use streamvisor::redact::{redact_url, show_query_values};
/// assert_eq!(redact_url("http://h/live.m3u8?lang=en"), "http://h/live.m3u8?lang=***");
/// show_query_values(["lang"]);
/// assert_eq!(redact_url("http://h/live.m3u8?lang=en&hdnts=exp~sig"), "http://h/live.m3u8?lang=en&hdnts=***");
/// ```
pub fn show_query_values<'a>(names: impl IntoIterator<Item = &'a str>) {
    let names: Vec<String> = names.into_iter().map(str::to_ascii_lowercase).collect();
    // A poisoned lock only means another thread panicked while pushing: the list is fine.
    let mut shown = SHOWN_ALSO.write().unwrap_or_else(|p| p.into_inner());
    for name in names {
        if !shown.contains(&name) {
            shown.push(name);
        }
    }
}

/// A source string as it may be shown, with its secrets replaced by `***`: the userinfo
/// (`scheme://***@host`), the value of every query parameter not on the allow-list
/// ([`SHOWN_BY_DEFAULT`] and what [`show_query_values`] added; the query runs to the end of
/// the URL), and for `rtmp`-family URLs the last path element when there are two or more
/// (the stream key of `rtmp://host/app/KEY`). Local paths and `lavfi:` graphs come back
/// unchanged; redacting twice changes nothing. Every error, log line and `Debug` of this
/// crate already shows sources this way; use it where an application shows a source
/// itself.
///
/// ```
/// use streamvisor::redact_url;
/// assert_eq!(redact_url("rtmp://u:p@host/live/KEY"), "rtmp://***@host/live/***");
/// assert_eq!(redact_url("srt://h:9000?passphrase=x&latency=20"), "srt://h:9000?passphrase=***&latency=20");
/// assert_eq!(redact_url("https://cdn/a.m3u8?hdnts=st=1~exp=2~hmac=ab"), "https://cdn/a.m3u8?hdnts=***");
/// assert_eq!(redact_url("/media/in.mp4"), "/media/in.mp4");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    // One pass can uncover more to mask (a masked value joins a nested URL's authority to
    // an '@'): repeat until nothing changes. Each change masks at least one character.
    let mut shown = redact_once(url);
    for _ in 0..64 {
        let again = redact_once(&shown);
        if again == shown {
            break;
        }
        shown = Cow::Owned(again.into_owned());
    }
    shown
}

/// One pass of [`redact_url`].
fn redact_once(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = split_scheme(url) else {
        return Cow::Borrowed(url);
    };
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let (userinfo, host_path) = match before_query.rfind('@') {
        Some(at) => (Some(()), &before_query[at + 1..]),
        None => (None, before_query),
    };
    let host_path = if is_rtmp(scheme) {
        mask_last_path_element(host_path)
    } else {
        Cow::Borrowed(host_path)
    };
    let query = query.map(mask_query);
    let changed = userinfo.is_some()
        || matches!(host_path, Cow::Owned(_))
        || matches!(query, Some(Cow::Owned(_)));
    if !changed {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    if userinfo.is_some() {
        out.push_str(MASK);
        out.push('@');
    }
    out.push_str(&host_path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q);
    }
    Cow::Owned(out)
}

/// Free text (a log line, an error message) with every URL in it redacted: each
/// `scheme://...` run up to whitespace, a quote or `<>` goes through [`redact_url`].
pub(crate) fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(sep) = rest.find("://") {
        // The scheme is the run of (ASCII) scheme characters right before `://`; trimming
        // them off keeps `start` on a char boundary whatever precedes them (`€http://`).
        let start = rest[..sep].trim_end_matches(is_scheme_char).len();
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || "'\"<>`".contains(c))
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        let url = redact_url(&rest[start..end]);
        changed |= matches!(url, Cow::Owned(_));
        out.push_str(&url);
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// `scheme` and what follows `://`, when the string starts with a URL scheme.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(is_scheme_char)).then_some((scheme, rest))
}

fn is_rtmp(scheme: &str) -> bool {
    scheme.to_ascii_lowercase().starts_with("rtmp")
}

/// `host/app/KEY` → `host/app/***`; `host/app` and `host` unchanged.
fn mask_last_path_element(host_path: &str) -> Cow<'_, str> {
    let Some(slash) = host_path.find('/') else {
        return Cow::Borrowed(host_path);
    };
    let path = host_path[slash + 1..].trim_end_matches('/');
    let Some(last) = path.rfind('/') else {
        return Cow::Borrowed(host_path);
    };
    let key = &path[last + 1..];
    if key.is_empty() || key == MASK {
        return Cow::Borrowed(host_path);
    }
    let keep = slash + 1 + last + 1;
    Cow::Owned(format!("{}{MASK}", &host_path[..keep]))
}

/// True when the value of a parameter or option named `name` may be shown: the name is on
/// the allow-list ([`SHOWN_BY_DEFAULT`], [`show_query_values`]).
pub(crate) fn is_shown_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if SHOWN_BY_DEFAULT.contains(&name.as_str()) {
        return true;
    }
    let also = SHOWN_ALSO.read().unwrap_or_else(|p| p.into_inner());
    also.contains(&name)
}

/// `latency=1&passphrase=x` → `latency=1&passphrase=***`. Parameters are split at `&` and at `?`, so
/// the query of a URL nested in a value (`next=http://h/x?token=T`) is masked too, and so
/// is the userinfo of a nested URL (`next=http://u:p@h/`).
fn mask_query(query: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(query.len());
    let mut changed = false;
    let mut start = 0;
    loop {
        let end = query[start..]
            .find(['&', '?'])
            .map_or(query.len(), |i| start + i);
        let pair = &query[start..end];
        match pair.split_once('=') {
            Some((name, value)) if !is_shown_name(name) && value != MASK => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
                changed = true;
            }
            _ => out.push_str(pair),
        }
        if end == query.len() {
            break;
        }
        out.push_str(&query[end..end + 1]); // the separator, as it was
        start = end + 1;
    }
    match mask_nested_userinfo(&out) {
        Cow::Owned(o) => Cow::Owned(o),
        Cow::Borrowed(_) if changed => Cow::Owned(out),
        Cow::Borrowed(_) => Cow::Borrowed(query),
    }
}

/// Every `scheme://user@host` inside `text` (no scheme check needed: what sits between
/// `://` and the last `@` before the next `/`, `?`, `#` or space is masked, `&`s included:
/// too much rather than too little).
fn mask_nested_userinfo(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut rest = text;
    let mut changed = false;
    while let Some(sep) = rest.find("://") {
        let start = sep + 3;
        let mut end = rest[start..]
            .find(|c: char| "/?#".contains(c) || c.is_whitespace())
            .map_or(rest.len(), |i| start + i);
        if rest[..end].ends_with(':') && rest[end..].starts_with("//") {
            end -= 1; // `a://xb://u@h`: that ':' starts the next URL
        }
        out.push_str(&rest[..start]);
        match rest[start..end].rfind('@') {
            Some(at) if &rest[start..start + at] != MASK => {
                out.push_str(MASK);
                out.push_str(&rest[start + at..end]);
                changed = true;
            }
            _ => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_secrets_and_rtmp_keys_are_masked() {
        let cases = [
            (
                "rtmp://user:pass@127.0.0.1:1935/live/STREAMKEY",
                "rtmp://***@127.0.0.1:1935/live/***",
            ),
            ("rtmps://h/app/KEY/", "rtmps://h/app/***"),
            ("rtmp://h/app", "rtmp://h/app"),
            (
                "srt://127.0.0.1:9000?mode=caller&passphrase=SECRET&streamid=#!::r=a,u=b",
                "srt://127.0.0.1:9000?mode=caller&passphrase=***&streamid=***",
            ),
            (
                "http://127.0.0.1/x.m3u8?token=SECRET&a=1",
                "http://127.0.0.1/x.m3u8?token=***&a=***",
            ),
            (
                "https://a:b@h/p?X-Amz-Signature=S&AccessKey=K",
                "https://***@h/p?X-Amz-Signature=***&AccessKey=***",
            ),
            (
                "tcp://127.0.0.1:9000?listen=1",
                "tcp://127.0.0.1:9000?listen=1",
            ),
            ("/a/b@c.mp4", "/a/b@c.mp4"),
            ("lavfi:testsrc2", "lavfi:testsrc2"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
            assert_eq!(redact_url(shown), shown, "idempotent: {shown}");
        }
        assert!(matches!(redact_url("http://h/x"), Cow::Borrowed(_)));
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let line = "Opening 'http://h/seg.ts?token=T' for reading; tried rtmp://u:p@h/a/k, ok";
        assert_eq!(
            redact_text(line),
            "Opening 'http://h/seg.ts?token=***' for reading; tried rtmp://***@h/a/*** ok"
        );
        assert!(matches!(redact_text("no url here"), Cow::Borrowed(_)));
    }

    #[test]
    fn multibyte_text_around_urls_is_handled_on_char_boundaries() {
        let cases = [
            ("€http://u:p@h/x", "€http://***@h/x"),
            (
                "prix 5€http://h/x?token=T€ fin",
                "prix 5€http://h/x?token=*** fin",
            ),
            ("→rtmp://h/app/KEY←", "→rtmp://h/app/***"),
            (
                "日本語https://h/p?sig=S 日本語",
                "日本語https://h/p?sig=*** 日本語",
            ),
            ("é://x@y", "é://x@y"),
            ("😀://u:p@h/", "😀://u:p@h/"),
            ("a😀b://u:p@h/ ok", "a😀b://***@h/ ok"),
        ];
        for (line, shown) in cases {
            assert_eq!(redact_text(line), shown, "{line}");
        }
    }

    /// Pieces for random log lines: URL parts with secrets, separators, and multibyte text.
    const PIECES: &[&str] = &[
        "://",
        "http",
        "rtmp",
        "srt",
        "€",
        "é",
        "😀",
        "日本",
        " ",
        "'",
        "\"",
        "<",
        ">",
        "@",
        "?",
        "&",
        "=",
        "/",
        "#",
        ":",
        "token=",
        "passphrase=",
        "u:",
        "x",
        "h",
        "app",
        "-",
        "+",
        ".",
    ];

    proptest::proptest! {
        #[test]
        fn redact_text_never_panics_and_never_shows_the_secret(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..40),
            cut in 0usize..40,
        ) {
            let mut line = pieces.concat();
            // Whatever surrounds it, a URL with a secret in it comes out masked.
            let at = line.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(line.len());
            line.insert_str(at, " http://user:SECRETPW@h/p?token=SECRETTK ");
            let shown = redact_text(&line);
            proptest::prop_assert!(!shown.contains("SECRET"), "{line:?} -> {shown:?}");
        }
    }
}
