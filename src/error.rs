//! The crate's one error type and its classification.

use std::fmt;
use std::path::PathBuf;

use crate::ffi::AvError;
use crate::redact::redact_url;

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
}

/// Why a manager refused a stream: what ran short.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A stream with this id is already running.
    #[error("the id is already in use")]
    DuplicateId,
    /// Another managed stream writes to the same output directory.
    #[error("another stream writes to the same output directory")]
    OutputInUse,
    /// An earlier stream on the same output directory ended with its worker left behind
    /// (stuck in a call nothing could interrupt), which may still write there: the
    /// directory is refused until that thread ends.
    #[error("a thread left behind by an earlier stream may still write to the output directory")]
    OutputBusy,
    /// `max_concurrent` streams are running.
    #[error("max_concurrent ({limit}) reached")]
    MaxConcurrent {
        /// The limit.
        limit: usize,
    },
    /// The resource pool cannot cover the stream.
    #[error("resource pool short of {0}")]
    Capacity(Shortage),
    /// Streams queued before it wait for capacity: it waits behind them (first come, first
    /// served), though it would fit now.
    #[error("{ahead} stream(s) queued before it wait for capacity")]
    BehindQueue {
        /// Streams ahead of it in the queue.
        ahead: usize,
    },
    /// The stream did not fit and the admission queue is full.
    #[error("the admission queue is full ({limit} streams wait)")]
    QueueFull {
        /// The queue's length.
        limit: usize,
    },
    /// A live stream runs below real time: the machine is over-committed whatever the
    /// prices say, so new live work is refused until it catches up.
    #[error(
        "live stream {stream} runs at {speed:.2}x real time: no new live work until it catches up"
    )]
    Overloaded {
        /// The stream that is behind.
        stream: String,
        /// Its speed over the manager's real-time window (media time per wall time).
        speed: f64,
    },
    /// The manager is shutting down.
    #[error("the manager is shutting down")]
    ShuttingDown,
}

/// Everything that can go wrong in a stream, with the AVERROR code where FFmpeg gave one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; `field` names it (e.g. `profile.variants[1].name`).
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: String,
        /// Why it was refused.
        reason: String,
    },

    /// The source could not be opened or read.
    #[error(
        "stream {stream}: source {}: {message} (while {op}, AVERROR {code})",
        redact_url(url)
    )]
    SourceIo {
        /// Stream id.
        stream: String,
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// What was being done.
        op: &'static str,
        /// FFmpeg's error code.
        code: i32,
        /// FFmpeg's message for the code (for a reader source, the reader's error).
        message: String,
        /// The kind of the I/O error an application's reader returned (a reader source);
        /// `None` for FFmpeg's own I/O. Also [`Error::io_kind`].
        io_kind: Option<std::io::ErrorKind>,
    },

    /// No data arrived from the source within the read timeout.
    #[error(
        "stream {stream}: source {} stalled: no data for {timeout_ms} ms",
        redact_url(url)
    )]
    SourceStalled {
        /// Stream id.
        stream: String,
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// The timeout that passed.
        timeout_ms: u64,
    },

    /// The source's content cannot be used (not media, no video, corrupt headers).
    #[error("stream {stream}: invalid input {}: {reason}", redact_url(url))]
    InvalidInput {
        /// Stream id.
        stream: String,
        /// The source as configured, secrets masked ([`redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
        /// FFmpeg's error code, if it produced one.
        code: Option<i32>,
    },

    /// A codec is missing from this FFmpeg build.
    #[error("stream {stream}: unsupported codec {codec}: {reason}")]
    UnsupportedCodec {
        /// Stream id.
        stream: String,
        /// The codec's name.
        codec: String,
        /// Decoder or encoder missing, or why it could not be used.
        reason: String,
    },

    /// A hardware device failed.
    #[error("stream {stream}: hardware device {device}: {reason}")]
    Hardware {
        /// Stream id.
        stream: String,
        /// The device as configured.
        device: String,
        /// What failed.
        reason: String,
        /// FFmpeg's error code, if any.
        code: Option<i32>,
    },

    /// Writing output failed; `path` names the file or directory.
    #[error("stream {stream}: output {}: {message}", path.display())]
    Output {
        /// Stream id.
        stream: String,
        /// The file or directory that could not be written.
        path: PathBuf,
        /// What failed.
        message: String,
        /// The OS errno or AVERROR, if known.
        code: Option<i32>,
    },

    /// FFmpeg failed while decoding, scaling or encoding.
    #[error("stream {stream}: {what}: {source}")]
    Codec {
        /// Stream id.
        stream: String,
        /// Which part of the pipeline (e.g. `variant 720p encoder`).
        what: String,
        /// The FFmpeg call and its code.
        source: AvError,
    },

    /// A panic was caught inside a stream's thread.
    #[error("stream {stream}: internal error (panic): {message}")]
    Panicked {
        /// Stream id.
        stream: String,
        /// The panic payload, when it was a string.
        message: String,
    },

    /// Something the library relies on failed (e.g. a thread could not be spawned).
    #[error("stream {stream}: internal error: {message}")]
    Internal {
        /// Stream id.
        stream: String,
        /// What failed.
        message: String,
    },

    /// The stream was aborted before it finished.
    #[error("stream {stream}: aborted")]
    Aborted {
        /// Stream id.
        stream: String,
    },

    /// A manager refused to admit the stream.
    #[error("stream {stream}: refused: {reason}")]
    Refused {
        /// Stream id.
        stream: String,
        /// What ran short.
        reason: Refusal,
    },

    /// No stream with this id is managed.
    #[error("stream {stream}: no such stream")]
    UnknownStream {
        /// Stream id.
        stream: String,
    },
}

/// Matches every variant: binds its `stream` field as `$s` for `$some`, or gives `$none`
/// for the variants without one. One list of variants for reading and filling the id.
macro_rules! on_stream_field {
    ($e:expr, $s:ident => $some:expr, $none:expr) => {
        match $e {
            Error::InvalidConfig { .. } => $none,
            Error::SourceIo { stream: $s, .. }
            | Error::SourceStalled { stream: $s, .. }
            | Error::InvalidInput { stream: $s, .. }
            | Error::UnsupportedCodec { stream: $s, .. }
            | Error::Hardware { stream: $s, .. }
            | Error::Output { stream: $s, .. }
            | Error::Codec { stream: $s, .. }
            | Error::Panicked { stream: $s, .. }
            | Error::Internal { stream: $s, .. }
            | Error::Aborted { stream: $s }
            | Error::Refused { stream: $s, .. }
            | Error::UnknownStream { stream: $s } => $some,
        }
    };
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
            Error::UnknownStream { .. } => ErrorKind::InvalidConfig,
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

    /// The kind of the I/O error behind a [`Error::SourceIo`] when an application's reader
    /// returned it (see [`Source::reader`](crate::Source::reader)).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::SourceIo { io_kind, .. } => *io_kind,
            _ => None,
        }
    }

    /// The stream the error belongs to, if any.
    pub fn stream_id(&self) -> Option<&str> {
        on_stream_field!(self, stream => Some(stream.as_str()).filter(|s| !s.is_empty()), None)
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An output error from the OS. Errors are built without their stream id inside the
    /// media code; the stream fills it in where the error leaves it ([`Error::with_stream`]).
    pub(crate) fn output(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        Error::Output {
            stream: String::new(),
            path: path.into(),
            message: err.to_string(),
            code: err.raw_os_error(),
        }
    }

    /// An output error from FFmpeg (a muxer or its I/O).
    pub(crate) fn output_av(path: impl Into<PathBuf>, err: &AvError) -> Self {
        Error::Output {
            stream: String::new(),
            path: path.into(),
            message: err.to_string(),
            code: Some(err.code),
        }
    }

    /// A failure inside FFmpeg while decoding, scaling or encoding.
    pub(crate) fn codec(what: impl Into<String>, source: AvError) -> Self {
        Error::Codec {
            stream: String::new(),
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
            stream: String::new(),
            url: redact_url(url).into_owned(),
            op,
            code,
            message,
            io_kind: None,
        }
    }

    /// An application's reader (shown as `label`) failed with an I/O error of this kind.
    pub(crate) fn reader_io(
        label: &str,
        op: &'static str,
        code: i32,
        message: String,
        kind: std::io::ErrorKind,
    ) -> Self {
        Error::SourceIo {
            stream: String::new(),
            url: label.to_owned(),
            op,
            code,
            message,
            io_kind: Some(kind),
        }
    }

    /// Fills in the stream id where the error leaves the stream (kept if already set).
    pub(crate) fn with_stream(mut self, id: &str) -> Self {
        if let Some(stream) = self.stream_id_mut() {
            if stream.is_empty() {
                id.clone_into(stream);
            }
        }
        self
    }

    fn stream_id_mut(&mut self) -> Option<&mut String> {
        on_stream_field!(self, stream => Some(stream), None)
    }

    /// An abort, for the stream to name.
    pub(crate) fn aborted() -> Self {
        Error::Aborted {
            stream: String::new(),
        }
    }
}

/// What ran short when a stream was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Shortage {
    /// Not enough compute units.
    Compute {
        /// Units the stream needs.
        needed: f64,
        /// Units free.
        free: f64,
    },
    /// Not enough memory.
    Memory {
        /// Bytes the stream needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A hardware device is at its session limit.
    HwSessions {
        /// The device key.
        device: String,
        /// Its session limit.
        limit: u32,
    },
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortage::Compute { needed, free } => {
                write!(f, "compute: needs {needed:.1} units, {free:.1} free")
            }
            Shortage::Memory { needed, free } => {
                write!(
                    f,
                    "memory: needs {} MiB, {} MiB free",
                    needed >> 20,
                    free >> 20
                )
            }
            Shortage::HwSessions { device, limit } => {
                write!(f, "hardware sessions: {device} is at its limit of {limit}")
            }
        }
    }
}
