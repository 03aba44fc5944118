//! Every FFmpeg failure of the media pipeline turned into an [`Error`] that says what is
//! wrong, in one place: opening the source, decoders, encoders, outputs. Errors carry no
//! stream id: what carries them out of the stream names it.

use std::time::Duration;

use crate::config::StreamConfig;
use crate::error::Error;
use crate::ffi::{AvError, Interrupt, StreamInfo};
use crate::redact::redact_url;

/// A decoder that could not be opened or failed: missing from this FFmpeg build, or a
/// codec error.
pub(crate) fn decoder_error(info: &StreamInfo, e: AvError) -> Error {
    if e.is_decoder_not_found() {
        Error::UnsupportedCodec {
            codec: info.codec_name.clone(),
            reason: "no decoder for it in this FFmpeg build".into(),
        }
    } else {
        Error::codec(format!("{} decoder", info.codec_name), e)
    }
}

/// An encoder (`codec`, e.g. `libx264`) that could not be opened or failed in `role` (e.g.
/// `variant 720p`, `audio`). Built only when an error happens, never on the frame path.
pub(crate) fn encoder_error(codec: &str, role: &str, e: AvError) -> Error {
    if e.is_encoder_not_found() {
        Error::UnsupportedCodec {
            codec: codec.to_owned(),
            reason: "no encoder for it in this FFmpeg build".into(),
        }
    } else {
        Error::codec(format!("{role} encoder ({codec})"), e)
    }
}

/// The source's content cannot be used.
pub(crate) fn invalid_input(config: &StreamConfig, reason: String, code: Option<i32>) -> Error {
    Error::InvalidInput {
        url: redact_url(config.source()).into_owned(),
        reason,
        code,
    }
}

/// No data from the source within the read timeout.
pub(crate) fn stalled(config: &StreamConfig) -> Error {
    stalled_read(config, None, config.io_timeout())
}

/// The error of a read that had nothing for `timeout`, naming the input it waited on (a
/// backup's, when one plays) and the time it waited (the loss delay, with backups).
pub(crate) fn stalled_read(
    config: &StreamConfig,
    inputs: Option<&super::inputs::Inputs>,
    timeout: Duration,
) -> Error {
    let url = inputs.map_or_else(
        || redact_url(config.source()).into_owned(),
        |i| i.name(i.active()).to_owned(),
    );
    Error::SourceStalled { url, timeout }
}

/// A hardware device failure while decoding or downloading a picture.
pub(crate) fn hardware_error(config: &StreamConfig, reason: String, code: Option<i32>) -> Error {
    Error::Hardware {
        device: config
            .hw_device()
            .map_or_else(|| "none".to_owned(), ToString::to_string),
        reason,
        code,
    }
}

/// True for failures of reaching or reading the source itself: file access, network,
/// protocol and HTTP errors, timeouts, end of data.
fn is_io_failure(e: &AvError) -> bool {
    const IO_ERRNOS: [i32; 20] = [
        libc::ENOENT,
        libc::EACCES,
        libc::EPERM,
        libc::EISDIR,
        libc::ENOTDIR,
        libc::EIO,
        libc::EMFILE,
        libc::ENFILE,
        libc::ECONNREFUSED,
        libc::ECONNRESET,
        libc::ECONNABORTED,
        libc::ETIMEDOUT,
        libc::EHOSTUNREACH,
        libc::ENETUNREACH,
        libc::ENETDOWN,
        libc::EPIPE,
        libc::EAGAIN,
        libc::ENOTCONN,
        libc::EADDRINUSE,
        libc::EADDRNOTAVAIL,
    ];
    match e.errno() {
        Some(errno) => IO_ERRNOS.contains(&errno),
        None => e.is_io_tag(),
    }
}

/// Classifies a failure to open the source: cancelled, timed out, not media, or
/// unreachable.
pub(crate) fn open_error(config: &StreamConfig, interrupt: &Interrupt, e: AvError) -> Error {
    if interrupt.is_interrupted() {
        return Error::aborted();
    }
    if interrupt.timed_out() {
        // Connected (or connecting) but silent for the whole I/O timeout.
        return stalled(config);
    }
    if config.is_network_source() && (e.is_invalid_data() || !is_io_failure(&e)) {
        // A peer that connected and closed before sending media, or a protocol's odd code:
        // for a network source that is a connection problem, worth a reconnect.
        return Error::source_io(config.source(), "opening", &e);
    }
    if e.is_invalid_data() {
        let reason = format!("not media FFmpeg can read ({})", e.message());
        return invalid_input(config, reason, Some(e.code));
    }
    if e.is_demuxer_not_found() {
        return invalid_input(config, "unknown input format".into(), Some(e.code));
    }
    if !is_io_failure(&e) {
        // The source was reached and a demuxer picked, but it refused the content (e.g. a
        // header whose sizes overflow): bad input, not something a reconnect would fix.
        let reason = format!("the demuxer refused it: {}", e.message());
        return invalid_input(config, reason, Some(e.code));
    }
    Error::source_io(config.source(), "opening", &e)
}
