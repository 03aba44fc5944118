//! URLs and content types of the HTTP sink: the base URL checked and split, relative paths
//! percent-encoded, the `Content-Type` by extension.

use std::fmt;
use std::io;

use ureq::http;

use crate::redact::redact_url;

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
pub(super) fn invalid(url: &str, why: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("HTTP sink URL {}: {why}", redact_url(url)),
    )
}

/// Splits and checks a base URL: (`scheme://authority/path` without a trailing `/`, query).
pub(super) fn parse_base(url: &str) -> io::Result<(String, Option<String>)> {
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
pub(super) fn encode_path(path: &str) -> Result<String, String> {
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
