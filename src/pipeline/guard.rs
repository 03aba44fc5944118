//! The check every URL a source opens goes through (see `ffi::OpenGuard`): for a local
//! source, each file it opens must be a local file inside the directory the application
//! allowed (`local_files_under`), resolved first and opened as resolved; anything else it
//! names (another protocol) is refused with the rule that refuses it.

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
    if !matches!(config.source_kind(), SourceKind::File) {
        return None;
    }
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
