//! How an [`Error`] reads: its own message in `Display`, its cause (an [`io::Error`], an
//! [`AvError`]) as `source()`, never both; sources shown with their secrets masked. The
//! stream is not in the message: whatever carries the error out of the stream names it.

use std::fmt;
#[cfg(doc)]
use std::io;

use super::Error;
#[cfg(doc)]
use crate::ffi::AvError;
use crate::redact::redact_url;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { field, reason } => {
                write!(f, "invalid config: {field}: {reason}")
            }
            Error::SourceIo {
                url,
                op,
                code,
                message,
                source,
            } => {
                write!(f, "source {}", redact_url(url))?;
                if source.is_none() {
                    write!(f, ": {message}")?;
                }
                write!(f, " (while {op}, AVERROR {code})")
            }
            Error::SourceStalled { url, timeout } => write!(
                f,
                "source {} stalled: no data for {} ms",
                redact_url(url),
                timeout.as_millis()
            ),
            Error::InvalidInput { url, reason, .. } => {
                write!(f, "invalid input {}: {reason}", redact_url(url))
            }
            Error::UnsupportedCodec { codec, reason } => {
                write!(f, "unsupported codec {codec}: {reason}")
            }
            Error::Hardware { device, reason, .. } => {
                write!(f, "hardware device {device}: {reason}")
            }
            Error::Output {
                path,
                message,
                source,
                ..
            } => {
                write!(f, "output {}", path.display())?;
                match source {
                    Some(_) => Ok(()),
                    None => write!(f, ": {message}"),
                }
            }
            Error::Codec { what, .. } => write!(f, "{what} failed"),
            Error::Panicked { message } => write!(f, "internal error (panic): {message}"),
            Error::Internal { message } => write!(f, "internal error: {message}"),
            Error::Aborted {} => f.write_str("aborted"),
            Error::Refused { reason } => write!(f, "refused: {reason}"),
            Error::UnknownStream { id } => write!(f, "no such stream: {id}"),
            Error::Forbidden { url, rule } => write!(f, "refused to open {url}: {rule}"),
        }
    }
}

/// `source()` is the [`io::Error`] itself (not a wrapper), so
/// `source().and_then(|s| s.downcast_ref::<io::Error>())` finds it, or the [`AvError`] of a
/// codec failure.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::SourceIo { source, .. } | Error::Output { source, .. } => source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            Error::Codec { source, .. } => Some(source),
            _ => None,
        }
    }
}
