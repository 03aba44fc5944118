//! Opening the source: URL forms, the interrupt and timeout, stream selection, and turning
//! FFmpeg's failures into errors that say what is wrong.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{PlaylistMode, StreamConfig};
use crate::error::Error;
use crate::ffi::{AvError, Dictionary, InputContext, Interrupt, StreamInfo};

/// Largest picture a source may declare or decode to (16384 x 16384); a hostile header
/// cannot make us allocate more.
pub(crate) const MAX_PIXELS: i64 = 16384 * 16384;
/// Largest width or height a source may declare.
pub(crate) const MAX_DIMENSION: i32 = 16384;

pub(crate) struct Source {
    pub input: InputContext,
    pub video: StreamInfo,
    pub audio: Option<StreamInfo>,
    pub live: bool,
    /// An HLS input: one read may wait a whole target duration for the next segment.
    hls: bool,
}

/// The least time an HLS input's read may wait (playlists commonly target 6-10 s).
const HLS_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Source {
    /// How long one read may block before the source counts as stalled.
    pub fn read_timeout(&self, config: &StreamConfig) -> Duration {
        if self.hls {
            config.io_timeout().max(HLS_READ_TIMEOUT)
        } else {
            config.io_timeout()
        }
    }
}

/// Opens the source and selects its streams. Blocking, bounded by the I/O timeout and
/// cancellable through `interrupt`.
pub(crate) fn open(config: &StreamConfig, interrupt: &Arc<Interrupt>) -> Result<Source, Error> {
    let stream = config.id();
    let kind = config.source_kind();
    let (url, format) = kind.ffmpeg_input(config.source());
    let mut opts = Dictionary::new();
    let av = |e: AvError| open_error(config, interrupt, e);
    if let Some(list) = kind.protocol_whitelist() {
        opts.set("protocol_whitelist", list).map_err(av)?;
    }
    for (k, v) in config.input_options() {
        opts.set(k, v).map_err(av)?;
    }
    interrupt.arm(config.io_timeout());
    let opened = InputContext::open(&url, format, opts, interrupt.clone());
    let (mut input, unused) = opened.map_err(|e| {
        interrupt.disarm();
        av(e)
    })?;
    if !unused.is_empty() {
        log::warn!(
            "stream {stream}: input options not recognised by FFmpeg: {}",
            unused.join(", ")
        );
    }
    let invalid = |reason: String| Error::InvalidInput {
        stream: stream.to_owned(),
        url: config.source().to_owned(),
        reason,
        code: None,
    };
    // A hostile header is refused on what it declares, before anything is decoded.
    check_picture(input.largest_declared_picture()).map_err(|r| {
        interrupt.disarm();
        invalid(r)
    })?;
    let probed = input.find_stream_info(MAX_PIXELS);
    interrupt.disarm();
    probed.map_err(av)?;
    let Some(vi) = input.best_video() else {
        let what = if input.best_audio().is_some() {
            "audio only"
        } else {
            "no audio or video"
        };
        return Err(invalid(format!(
            "no video stream ({what}); a ladder needs video"
        )));
    };
    let video = input.stream_info(vi);
    if video.width <= 0 || video.height <= 0 {
        return Err(invalid(format!(
            "video stream {} has no picture size",
            video.codec_name
        )));
    }
    check_picture((video.width, video.height)).map_err(invalid)?;
    let audio = input.best_audio().map(|i| input.stream_info(i));
    let live = match config.playlist_mode() {
        PlaylistMode::Vod => false,
        PlaylistMode::Live => true,
        _ if kind.is_live_scheme() => true,
        _ => kind.is_http() && !input.has_duration(),
    };
    let hls = input.format_name().split(',').any(|n| n == "hls");
    Ok(Source {
        input,
        video,
        audio,
        live,
        hls,
    })
}

/// Refuses pictures above the size limit.
fn check_picture((w, h): (i32, i32)) -> Result<(), String> {
    if w > MAX_DIMENSION || h > MAX_DIMENSION || i64::from(w) * i64::from(h) > MAX_PIXELS {
        Err(format!(
            "declared picture {w}x{h} exceeds the {MAX_DIMENSION}x{MAX_DIMENSION} limit"
        ))
    } else {
        Ok(())
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

/// Classifies a failure to open: cancelled, timed out, not media, or unreachable.
fn open_error(config: &StreamConfig, interrupt: &Interrupt, e: AvError) -> Error {
    let stream = config.id().to_owned();
    let url = config.source().to_owned();
    if interrupt.is_interrupted() {
        return Error::Aborted { stream };
    }
    if interrupt.timed_out() {
        // Connected (or connecting) but silent for the whole I/O timeout.
        return Error::SourceStalled {
            stream,
            url,
            timeout_ms: config.io_timeout().as_millis() as u64,
        };
    }
    if config.is_network_source() && (e.is_invalid_data() || !is_io_failure(&e)) {
        // A peer that connected and closed before sending media, or a protocol's odd code:
        // for a network source that is a connection problem, worth a reconnect.
        return Error::SourceIo {
            stream,
            url,
            op: "opening",
            code: e.code,
            message: e.message(),
        };
    }
    if e.is_invalid_data() {
        return Error::InvalidInput {
            stream,
            url,
            reason: format!("not media FFmpeg can read ({})", e.message()),
            code: Some(e.code),
        };
    }
    if e.is_demuxer_not_found() {
        return Error::InvalidInput {
            stream,
            url,
            reason: "unknown input format".into(),
            code: Some(e.code),
        };
    }
    if !is_io_failure(&e) {
        // The source was reached and a demuxer picked, but it refused the content (e.g. a
        // header whose sizes overflow): bad input, not something a reconnect would fix.
        return Error::InvalidInput {
            stream,
            url,
            reason: format!("the demuxer refused it: {}", e.message()),
            code: Some(e.code),
        };
    }
    Error::SourceIo {
        stream,
        url,
        op: "opening",
        code: e.code,
        message: e.message(),
    }
}
