//! The check every URL a source opens goes through (see `ffi::OpenGuard`):
//! - a local source: each file it opens must be a local file inside the directory the
//!   application allowed (`local_files_under`), resolved first and opened as resolved;
//!   anything else it names (another protocol) is refused;
//! - a network source: each URL it names (a remote playlist's segments and keys) must use a
//!   protocol of its scheme's allow-list. FFmpeg's whitelist refuses the others too, but
//!   as "Invalid data" (or, in a playlist, by skipping the segment): here the refusal says
//!   which URL and which rule, and fails the stream.

use std::sync::Arc;

use crate::config::local::{self, RULE};
use crate::config::source::SourceKind;
use crate::config::StreamConfig;
use crate::error::Error;
use crate::ffi::{OpenGuard, OpenVerdict};
use crate::redact::redact_url;

/// The guard of a config's source; `None` for sources that open nothing through a
/// demuxer's callback (readers, generated graphs, devices) or need no check.
pub(super) fn open_guard(config: &StreamConfig) -> Option<Arc<OpenGuard>> {
    match config.source_kind() {
        SourceKind::File => local_guard(config),
        kind @ SourceKind::Network { scheme } => {
            let allowed: Vec<String> = kind
                .protocol_whitelist()?
                .split(',')
                .map(str::to_owned)
                .collect();
            let rule = format!(
                "a {scheme} source may reach only {} (a URL it names may not widen that)",
                allowed.join(", ")
            );
            let check = move |url: &str| match protocols_of(url).find(|p| !allowed.contains(p)) {
                Some(_) => OpenVerdict::Refuse(rule.clone()),
                None => OpenVerdict::Open,
            };
            Some(Arc::new(OpenGuard::new(Box::new(check))))
        }
        _ => None,
    }
}

/// The protocols FFmpeg opens `url` with, outermost first: `crypto+http://h/k` is
/// `crypto` then `http`; a URL without a scheme is a `file`.
fn protocols_of(url: &str) -> impl Iterator<Item = String> + '_ {
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        })
        .unwrap_or("file");
    scheme.split('+').map(str::to_ascii_lowercase)
}

/// The guard of a local source: every file inside the allowed directory.
fn local_guard(config: &StreamConfig) -> Option<Arc<OpenGuard>> {
    let root = config.local_files_root()?.to_path_buf();
    let check = move |url: &str| {
        // An HLS key or encrypted segment is opened through `crypto`, around the file.
        let (wrapper, inner) = match url.strip_prefix("crypto+").or(url.strip_prefix("crypto:")) {
            Some(inner) => (true, inner),
            None => (false, url),
        };
        let Some(path) = local::local_path(inner) else {
            return OpenVerdict::Refuse(
                "a local source may open local files only, not another protocol".to_owned(),
            );
        };
        match local::confine(&root, path) {
            // Opened as resolved: what was checked is what is opened.
            Ok(resolved) if !wrapper => match resolved.to_str() {
                Some(p) => OpenVerdict::OpenInstead(format!("file:{p}")),
                None => OpenVerdict::Refuse("the resolved path is not UTF-8".to_owned()),
            },
            Ok(_) => OpenVerdict::Open,
            Err(why) => OpenVerdict::Refuse(format!("{why}; {RULE}")),
        }
    };
    Some(Arc::new(OpenGuard::new(Box::new(check))))
}

/// The stream's error for a URL its guard refused.
pub(super) fn forbidden((url, rule): (String, String)) -> Error {
    Error::Forbidden {
        url: redact_url(&url).into_owned(),
        rule,
    }
}
