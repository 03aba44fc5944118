//! How an [`Error`] reads: its own message in `Display`, its cause (an [`io::Error`], an
//! [`AvError`]) as `source()`, never both; sources shown with their secrets masked.

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
                stream,
                url,
                op,
                code,
                message,
                source,
            } => {
                write!(f, "stream {stream}: source {}", redact_url(url))?;
                if source.is_none() {
                    write!(f, ": {message}")?;
                }
                write!(f, " (while {op}, AVERROR {code})")
            }
            Error::SourceStalled {
                stream,
                url,
                timeout_ms,
            } => write!(
                f,
                "stream {stream}: source {} stalled: no data for {timeout_ms} ms",
                redact_url(url)
            ),
            Error::InvalidInput {
                stream,
                url,
                reason,
                ..
            } => write!(
                f,
                "stream {stream}: invalid input {}: {reason}",
                redact_url(url)
            ),
            Error::UnsupportedCodec {
                stream,
                codec,
                reason,
            } => write!(f, "stream {stream}: unsupported codec {codec}: {reason}"),
            Error::Hardware {
                stream,
                device,
                reason,
                ..
            } => write!(f, "stream {stream}: hardware device {device}: {reason}"),
            Error::Output {
                stream,
                path,
                message,
                source,
                ..
            } => {
                write!(f, "stream {stream}: output {}", path.display())?;
                match source {
                    Some(_) => Ok(()),
                    None => write!(f, ": {message}"),
                }
            }
            Error::Codec { stream, what, .. } => write!(f, "stream {stream}: {what} failed"),
            Error::Panicked { stream, message } => {
                write!(f, "stream {stream}: internal error (panic): {message}")
            }
            Error::Internal { stream, message } => {
                write!(f, "stream {stream}: internal error: {message}")
            }
            Error::Aborted { stream } => write!(f, "stream {stream}: aborted"),
            Error::Refused { stream, reason } => write!(f, "stream {stream}: refused: {reason}"),
            Error::UnknownStream { stream } => write!(f, "stream {stream}: no such stream"),
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
