//! The crate's errors: the one [`Error`] enum (with [`Result`]), its classification
//! [`ErrorKind`], the FFmpeg failure behind a codec error ([`AvError`]), and the error of
//! parsing one of the crate's names ([`ParseError`]). [`Error`], [`ErrorKind`] and
//! [`Result`] are also at the crate root.
//!
//! Error chains: an error's `Display` is its own message only. Where a failure has an
//! underlying error value (an [`io::Error`] from the OS or from an application's reader, an
//! FFmpeg call as an [`AvError`]), `Display` leaves that cause's text out and
//! [`std::error::Error::source`] returns it, so an error reporter prints each text once.
//! [`Error::full_message`] joins the whole chain for a log line.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::redact::redact_url;

mod display;
mod parse;
pub(crate) mod refusal;
#[cfg(feature = "serde")]
mod serialize;

pub use crate::ffi::AvError;
pub use parse::ParseError;
pub(crate) use parse::{enum_names, parse_name};
pub(crate) use refusal::{Refusal, Shortage};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; callers and the recovery logic branch on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source could not be reached or read (refused, reset, timed out, stalled, ended).
    SourceIo,
    /// The source was reached but its content is not usable media.
    InvalidInput,
    /// The configuration is invalid.
    InvalidConfig,
    /// A codec the stream needs is missing from this FFmpeg build.
    UnsupportedCodec,
    /// A hardware device could not be opened or was lost.
    Hardware,
    /// Writing the output failed (not writable, disk full, I/O error).
    Output,
    /// A failure inside FFmpeg while decoding, scaling or encoding.
    Codec,
    /// A bug or a caught panic.
    Internal,
    /// The stream was aborted on request.
    Aborted,
    /// The manager refused to admit the stream (see [`Refusal`]).
    Refused,
    /// No stream with this id is managed ([`Error::UnknownStream`]).
    UnknownStream,
    /// The source, or a URL it names (a playlist's segment or key, a redirect), was refused
    /// by a rule of the trust boundary ([`Error::Forbidden`]); never retried.
    Forbidden,
}

enum_names!(ErrorKind, "error kind",
    /// The kind's name, as its variant is spelled (`"SourceIo"`, `"InvalidConfig"`, ...):
    /// what `Display` writes, `FromStr` reads and the `serde` feature serializes.
    {
        SourceIo => "SourceIo",
        InvalidInput => "InvalidInput",
        InvalidConfig => "InvalidConfig",
        UnsupportedCodec => "UnsupportedCodec",
        Hardware => "Hardware",
        Output => "Output",
        Codec => "Codec",
        Internal => "Internal",
        Aborted => "Aborted",
        Refused => "Refused",
        UnknownStream => "UnknownStream",
        Forbidden => "Forbidden",
    }
);

/// Everything that can go wrong in a stream, with the AVERROR code where FFmpeg gave one.
///
/// `Display` is this error's own message; an underlying error (the [`io::Error`] of a
/// reader or of the OS, the [`AvError`] of a codec) is its [`source`](std::error::Error::source),
/// not repeated in the message. [`Error::full_message`] gives the whole chain on one line.
/// Every text is safe to log: sources are shown with their secrets masked ([`redact_url`]).
///
/// The stream an error belongs to is not in the error: it is on whatever carries the error
/// out of the stream, stored once there ([`StreamReport::id`](crate::StreamReport::id),
/// [`StateEvent::stream`](crate::StateEvent::stream), the stream a `stream::StartError`
/// hands back, whose `Display` names it), or known to the caller (the config given to
/// [`Manager::create_stream`](crate::Manager::create_stream)). The crate's own log lines
/// name it.
///
/// Matching: the enum and each of its variants are `#[non_exhaustive]` (new failures, and
/// new context on a failure, may be added in a minor release), so a `match` needs a `_`
/// arm and a variant's pattern needs `..`: `Error::Refused { reason, .. }`. [`Error::kind`]
/// is the stable way to branch.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; `field` names it (e.g. `profile.variants[1].name`).
    #[non_exhaustive]
    InvalidConfig {
        /// The offending field.
        field: String,
        /// Why it was refused.
        reason: String,
    },

    /// The source could not be opened or read. For an application's reader the reader's
    /// [`io::Error`] is the [`source`](std::error::Error::source) (and `Display` leaves its
    /// text out); for FFmpeg's own I/O, `Display` includes FFmpeg's message.
    #[non_exhaustive]
    SourceIo {
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// What was being done.
        op: &'static str,
        /// FFmpeg's error code.
        code: i32,
        /// FFmpeg's message for the code (for a reader source, the reader's error's text).
        message: String,
        /// The I/O error an application's reader returned (a reader source); `None` for
        /// FFmpeg's own I/O. Its kind is [`Error::io_kind`].
        source: Option<Arc<io::Error>>,
    },

    /// No data arrived from the source within the read timeout.
    #[non_exhaustive]
    SourceStalled {
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// The timeout that passed (the config's `io_timeout`).
        timeout: Duration,
    },

    /// The source's content cannot be used (not media, no video, corrupt headers).
    #[non_exhaustive]
    InvalidInput {
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
        /// FFmpeg's error code, if it produced one.
        code: Option<i32>,
    },

    /// A codec is missing from this FFmpeg build.
    #[non_exhaustive]
    UnsupportedCodec {
        /// The codec's name.
        codec: String,
        /// Decoder or encoder missing, or why it could not be used.
        reason: String,
    },

    /// A hardware device failed.
    #[non_exhaustive]
    Hardware {
        /// The device as configured.
        device: String,
        /// What failed.
        reason: String,
        /// FFmpeg's error code, if any.
        code: Option<i32>,
    },

    /// Writing output failed; `path` names the file or directory. When the OS refused
    /// (permissions, disk full), its [`io::Error`] is the
    /// [`source`](std::error::Error::source) and `Display` leaves its text out; a muxer's
    /// failure inside FFmpeg is shown in `Display`.
    #[non_exhaustive]
    Output {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// What failed (the OS error's text, when there is one).
        message: String,
        /// The OS errno or AVERROR, if known.
        code: Option<i32>,
        /// The OS error, when the OS refused the write. Its kind is [`Error::io_kind`].
        source: Option<Arc<io::Error>>,
    },

    /// FFmpeg failed while decoding, scaling or encoding. The FFmpeg call and its code are
    /// the [`source`](std::error::Error::source), not repeated in `Display`.
    #[non_exhaustive]
    Codec {
        /// Which part of the pipeline (e.g. `variant 720p encoder`).
        what: String,
        /// The FFmpeg call and its code.
        source: AvError,
    },

    /// A panic was caught inside a stream's thread.
    #[non_exhaustive]
    Panicked {
        /// The panic payload, when it was a string.
        message: String,
    },

    /// Something the library relies on failed (e.g. a thread could not be spawned).
    #[non_exhaustive]
    Internal {
        /// What failed.
        message: String,
    },

    /// The stream was aborted before it finished.
    #[non_exhaustive]
    Aborted {},

    /// A manager refused to admit the stream.
    #[non_exhaustive]
    Refused {
        /// What ran short.
        reason: Refusal,
    },

    /// No stream with this id is managed.
    #[non_exhaustive]
    UnknownStream {
        /// The id asked for.
        id: String,
    },

    /// A URL the source opened, or one it named (a playlist's segment or key), was refused
    /// by a rule of the trust boundary: a local file outside the directory the application
    /// allowed, or a protocol the source's scheme may not reach. Recorded where the open is
    /// refused, so the stream fails (a demuxer that skips what it cannot open would go on
    /// silently otherwise).
    #[non_exhaustive]
    Forbidden {
        /// The URL refused, its secrets redacted.
        url: String,
        /// The rule that refused it.
        rule: String,
    },
}

impl Error {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. } => ErrorKind::InvalidConfig,
            Error::SourceIo { .. } | Error::SourceStalled { .. } => ErrorKind::SourceIo,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::UnsupportedCodec { .. } => ErrorKind::UnsupportedCodec,
            Error::Hardware { .. } => ErrorKind::Hardware,
            Error::Output { .. } => ErrorKind::Output,
            Error::Codec { .. } => ErrorKind::Codec,
            Error::Panicked { .. } | Error::Internal { .. } => ErrorKind::Internal,
            Error::Aborted { .. } => ErrorKind::Aborted,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::UnknownStream { .. } => ErrorKind::UnknownStream,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }

    /// True when retrying (reconnecting, or falling back to the CPU) may succeed.
    pub fn is_recoverable(&self) -> bool {
        matches!(self.kind(), ErrorKind::SourceIo | ErrorKind::Hardware)
    }

    /// The AVERROR (or errno) code behind the error, if there is one.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::SourceIo { code, .. } => Some(*code),
            Error::InvalidInput { code, .. }
            | Error::Hardware { code, .. }
            | Error::Output { code, .. } => *code,
            Error::Codec { source, .. } => Some(source.code),
            _ => None,
        }
    }

    /// The kind of the I/O error behind the error: an application's reader's failure
    /// ([`Error::SourceIo`], see [`Source::reader`](crate::Source::reader)) or the OS's
    /// refusal of an output write ([`Error::Output`]). `None` otherwise.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.io_error().map(io::Error::kind)
    }

    /// The I/O error behind the error, as [`Error::io_kind`] describes; also its
    /// [`source`](std::error::Error::source).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::SourceIo { source, .. } | Error::Output { source, .. } => source.as_deref(),
            _ => None,
        }
    }

    /// This error's message followed by each of its sources', joined by `": "`: the whole
    /// chain on one line, for a log that does not walk [`source`](std::error::Error::source)
    /// itself.
    ///
    /// ```
    /// let e = streamvisor::StreamConfig::builder("a/b", "in.mp4", "out").build().unwrap_err();
    /// assert_eq!(e.full_message(), e.to_string()); // a config error has no source
    /// ```
    pub fn full_message(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An output error from the OS.
    pub(crate) fn output(path: impl Into<PathBuf>, err: io::Error) -> Self {
        Error::Output {
            path: path.into(),
            message: err.to_string(),
            code: err.raw_os_error(),
            source: Some(Arc::new(err)),
        }
    }

    /// An output error from FFmpeg (a muxer or its I/O).
    pub(crate) fn output_av(path: impl Into<PathBuf>, err: &AvError) -> Self {
        Error::Output {
            path: path.into(),
            message: err.to_string(),
            code: Some(err.code),
            source: None,
        }
    }

    /// A failure inside FFmpeg while decoding, scaling or encoding.
    pub(crate) fn codec(what: impl Into<String>, source: AvError) -> Self {
        Error::Codec {
            what: what.into(),
            source,
        }
    }

    /// The source could not be opened or read. Errors built here keep the source with its
    /// secrets masked (the `Debug` of an error is as safe to log as its `Display`).
    pub(crate) fn source_io(url: &str, op: &'static str, err: &AvError) -> Self {
        Self::source_io_message(url, op, err.code, err.message())
    }

    /// [`Error::source_io`] with a message of our own (e.g. "the live source ended").
    pub(crate) fn source_io_message(
        url: &str,
        op: &'static str,
        code: i32,
        message: String,
    ) -> Self {
        Error::SourceIo {
            url: redact_url(url).into_owned(),
            op,
            code,
            message,
            source: None,
        }
    }

    /// An application's reader (shown as `label`) failed with this I/O error.
    pub(crate) fn reader_io(label: &str, op: &'static str, code: i32, err: Arc<io::Error>) -> Self {
        Error::SourceIo {
            url: label.to_owned(),
            op,
            code,
            message: err.to_string(),
            source: Some(err),
        }
    }

    /// An abort.
    pub(crate) fn aborted() -> Self {
        Error::Aborted {}
    }
}

#[cfg(test)]
mod tests;
