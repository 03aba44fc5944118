//! One connection to the source: the demuxer (opened with the interrupt and timeouts, the
//! protocol whitelist, and the size checks) and the video decoder; and the
//! [`SourceOpener`], the primitives the lifecycle's recovery policy drives (open the
//! hardware device, open a session, leave the device).

use std::time::Duration;

use super::control::Signals;
use super::errors::{decoder_error, hardware_error, invalid_input, open_error};
use super::reader::{open_reader, reader_failure};
use super::upright::Orientation;
use crate::config::{is_allowed_filter, GeneratedGraph, PlaylistMode, SourceKind, StreamConfig};
use crate::error::Error;
use crate::ffi::{
    instantiated_filters, take_refused_picture, AvError, CodecContext, Dictionary, HwDeviceContext,
    InputContext, StreamInfo,
};

/// Largest picture a source may declare or decode to (16384 x 16384); a hostile header
/// cannot make us allocate more.
pub(crate) const MAX_PIXELS: i64 = 16384 * 16384;
/// Largest width or height a source may declare.
pub(crate) const MAX_DIMENSION: i32 = 16384;

/// The least time an HLS input's read may wait (playlists commonly target 6-10 s).
const HLS_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to the source: its demuxer and video decoder.
pub(crate) struct Session {
    pub input: InputContext,
    pub video: StreamInfo,
    pub audio: Option<StreamInfo>,
    /// A live source: a sliding-window playlist, and its end is an outage.
    pub live: bool,
    /// Live by its nature (a network live protocol, a device, an http source without a
    /// duration), not only because the config asks for a live playlist: what the live
    /// clock and backups are for (a file is never filled, whatever its playlist).
    pub live_source: bool,
    /// An HLS input: one read may wait a whole target duration for the next segment.
    hls: bool,
    pub video_decoder: CodecContext,
    /// Decoding on a hardware device: decoder failures are hardware failures.
    pub on_hardware: bool,
    /// How the decoded pictures are turned upright (the video's display matrix).
    pub orientation: Orientation,
    /// When opening began: the first bytes of the source arrived no earlier (the clock of
    /// the packets read while probing, which the demuxer hands over later).
    pub reading_since: std::time::SystemTime,
    /// The interrupt installed on this input (the stream's, or a backup's own).
    pub interrupt: std::sync::Arc<crate::ffi::Interrupt>,
    /// Packets read before this session was taken over (a warm backup's, since its last
    /// keyframe), decoded before anything is read.
    pub pending: std::collections::VecDeque<crate::ffi::Packet>,
    /// Frames before this source pts (its last pending video packet's) are decoded but not
    /// sent: they were read while another input played.
    pub catch_up_until: Option<i64>,
    /// Which input this is: 0 the source, then each backup.
    pub input_index: usize,
}

impl Session {
    /// How long one read may block before the source counts as stalled.
    pub fn read_timeout(&self, config: &StreamConfig) -> Duration {
        if self.hls {
            config.io_timeout().max(HLS_READ_TIMEOUT)
        } else {
            config.io_timeout()
        }
    }

    /// What an application's reader reported (its error, its panic, a seek it could not
    /// make), as the error that ends the session; `None` for other sources.
    pub fn reader_error(&mut self, config: &StreamConfig) -> Option<Error> {
        reader_failure(config, self.input.custom_io()?)
    }

    /// The source's audio stream, for the audio chain to decode.
    pub fn audio_source(&self) -> Option<(&InputContext, &StreamInfo)> {
        self.audio.as_ref().map(|a| (&self.input, a))
    }
}

/// Opens sessions on the source, with or without the configured hardware device.
pub(crate) struct SourceOpener<'a> {
    config: &'a StreamConfig,
    signals: &'a Signals,
    device: Option<HwDeviceContext>,
}

impl<'a> SourceOpener<'a> {
    pub fn new(config: &'a StreamConfig, signals: &'a Signals) -> Self {
        Self {
            config,
            signals,
            device: None,
        }
    }

    /// Opens the configured hardware device, if one is configured.
    pub fn open_device(&mut self) -> Result<(), Error> {
        let Some(hw) = self.config.hw_device() else {
            return Ok(());
        };
        let device = HwDeviceContext::open(hw.kind.name(), &hw.device).map_err(|e| {
            let reason = format!("cannot open the device: {}", e.message());
            hardware_error(self.config, reason, Some(e.code))
        })?;
        self.device = Some(device);
        Ok(())
    }

    /// Leaves the hardware device: later sessions decode on the CPU.
    pub fn drop_device(&mut self) {
        self.device = None;
    }

    /// Opens backup `index` (0-based) of the source instead of the source itself, once (a
    /// stream whose primary is down when it starts begins on a backup).
    pub fn open_backup(&mut self, index: usize) -> Result<Session, Error> {
        let backup = self.config.backup_config(index)?;
        let mut opener = SourceOpener {
            config: &backup,
            signals: self.signals,
            device: self.device.take(),
        };
        let opened = opener.open();
        self.device = opener.device.take();
        let mut session = opened?;
        session.input_index = index + 1;
        Ok(session)
    }

    /// Opens the source and its video decoder. Blocking, bounded by the I/O timeout and
    /// cancellable through the signals.
    pub fn open(&mut self) -> Result<Session, Error> {
        let config = self.config;
        let reading_since = std::time::SystemTime::now();
        let (mut input, video, audio) = open_input(config, self.signals)?;
        let orientation = Orientation::read(&video).unwrap_or_else(|angle| {
            log::warn!(
                "stream {}: the display matrix turns the picture {angle:.0} degrees, not a \
                 multiple of 90: the picture is left as stored",
                config.id()
            );
            Orientation::default()
        });
        if orientation != Orientation::default() {
            log::info!(
                "stream {}: the display matrix asks for {}: applied after decode",
                config.id(),
                orientation.describe()
            );
        }
        let mut opts = Dictionary::new();
        opts.set("max_pixels", &MAX_PIXELS.to_string())
            .map_err(|e| Error::codec("video decoder options", e))?;
        if let Some(cores) = config.core_share() {
            // A managed stream decodes on its share of the cores too (plus one thread, as
            // frame threads wait on each other), not on as many threads as the machine has.
            opts.set("threads", &(cores + 1).to_string())
                .map_err(|e| Error::codec("video decoder options", e))?;
        }
        let video_decoder = input
            .open_decoder(video.index, opts, self.device.as_ref())
            .map_err(|e| decoder_error(&video, e))?;
        check_picture("decoder's", video_decoder.picture_size())
            .map_err(|r| invalid_input(config, r, None))?;
        let keep: Vec<usize> = std::iter::once(video.index)
            .chain(audio.as_ref().map(|a| a.index))
            .collect();
        input.keep_only(&keep);
        let kind = config.source_kind();
        let live_source = kind.is_live_by_nature() || (kind.is_http() && !input.has_duration());
        let live = match config.playlist_mode() {
            PlaylistMode::Vod => false,
            PlaylistMode::Live => true,
            _ => live_source,
        };
        let hls = input.format_name().split(',').any(|n| n == "hls");
        Ok(Session {
            input,
            video,
            audio,
            live,
            live_source: live && live_source,
            hls,
            video_decoder,
            on_hardware: self.device.is_some(),
            orientation,
            reading_since,
            interrupt: self.signals.interrupt().clone(),
            pending: std::collections::VecDeque::new(),
            catch_up_until: None,
            input_index: 0,
        })
    }
}

/// Opens the demuxer and selects the streams: the best video (required) and audio.
fn open_input(
    config: &StreamConfig,
    signals: &Signals,
) -> Result<(InputContext, StreamInfo, Option<StreamInfo>), Error> {
    let interrupt = signals.interrupt();
    let av = |e: AvError| open_error(config, interrupt, e);
    let kind = config.source_kind();
    let mut opts = Dictionary::new();
    for (k, v) in config.input_options() {
        opts.set(k, v).map_err(av)?;
    }
    // Set last, so it replaces whatever the options said (the config refuses that key
    // already: defence in depth).
    if let Some(list) = kind.protocol_whitelist() {
        opts.set("protocol_whitelist", list).map_err(av)?;
    }
    interrupt.arm(config.io_timeout());
    let _ = take_refused_picture(); // forget an earlier session's
    let (mut input, unused) = open_demuxer(config, signals, opts).map_err(|e| {
        interrupt.disarm();
        refused_picture(config).unwrap_or(e)
    })?;
    if !unused.is_empty() {
        log::warn!(
            "stream {}: input options not recognised by FFmpeg: {}",
            config.id(),
            unused.join(", ")
        );
    }
    let invalid = |reason: String| invalid_input(config, reason, None);
    // A hostile header is refused on what it declares, before anything is decoded.
    check_picture("declared", input.largest_declared_picture()).map_err(|r| {
        interrupt.disarm();
        invalid(r)
    })?;
    let probed = input.find_stream_info(MAX_PIXELS);
    interrupt.disarm();
    probed.map_err(|e| {
        let reader = || match input.custom_io() {
            Some(io) if !interrupt.is_interrupted() => reader_failure(config, io),
            _ => None,
        };
        refused_picture(config)
            .or_else(reader)
            .unwrap_or_else(|| av(e))
    })?;
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
    check_picture("declared", (video.width, video.height)).map_err(invalid)?;
    let audio = input.best_audio().map(|i| input.stream_info(i));
    Ok((input, video, audio))
}

/// Opens the demuxer on the source: a generated graph, a URL (with its forced format, if
/// any), or an application's reader.
fn open_demuxer(
    config: &StreamConfig,
    signals: &Signals,
    opts: Dictionary,
) -> Result<(InputContext, Vec<String>), Error> {
    if let Some(reader) = config.input().reader_source() {
        return open_reader(config, signals, reader, opts);
    }
    let (url, format) = match config.generated_graph() {
        Some(graph) => {
            check_instantiated(config, graph)?;
            (graph.ffmpeg_graph(), Some("lavfi"))
        }
        None => {
            refuse_special_file(config)?;
            (config.source(), config.input().forced_format())
        }
    };
    let interrupt = signals.interrupt();
    let guard = super::guard::open_guard(config);
    InputContext::open(url, format, opts, interrupt.clone(), guard.clone()).map_err(|e| match guard
        .as_deref()
        .and_then(crate::ffi::OpenGuard::refusal)
    {
        Some(refused) => super::guard::forbidden(refused),
        None => open_error(config, interrupt, e),
    })
}

/// Defence in depth behind the grammar: libavfilter parses the rendered graph into a
/// scratch graph, and every filter it instantiated must be on the allow-list, as many as
/// we parsed.
fn check_instantiated(config: &StreamConfig, graph: &GeneratedGraph) -> Result<(), Error> {
    let names = instantiated_filters(graph.ffmpeg_graph()).map_err(|e| {
        let reason = format!("libavfilter refused the graph: {}", e.message());
        invalid_input(config, reason, Some(e.code))
    })?;
    let stray = names.iter().find(|n| !is_allowed_filter(n));
    if let Some(name) = stray {
        let reason = format!("libavfilter instantiated {name:?}, which is not allowed");
        return Err(invalid_input(config, reason, None));
    }
    if names.len() != graph.filter_names().count() {
        let reason = format!("libavfilter instantiated {names:?}, not the parsed graph");
        return Err(invalid_input(config, reason, None));
    }
    Ok(())
}

/// A local source must be a regular file: a FIFO or a device would block the open itself
/// (in the kernel, where no interrupt reaches), and a directory is not media. A missing
/// file is left to FFmpeg, which says so.
fn refuse_special_file(config: &StreamConfig) -> Result<(), Error> {
    if !matches!(config.source_kind(), SourceKind::File) {
        return Ok(());
    }
    let source = config.source();
    let path = source.strip_prefix("file:").unwrap_or(source);
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let reason = format!("the source is {what}; only regular files are read");
    Err(invalid_input(config, reason, None))
}

/// Refuses pictures above the size limit; `what` says whose size it is ("declared",
/// "decoded", ...). Two integer comparisons and a multiplication: cheap enough for every
/// decoded frame.
pub(crate) fn check_picture(what: &str, (w, h): (i32, i32)) -> Result<(), String> {
    if w > MAX_DIMENSION || h > MAX_DIMENSION || i64::from(w) * i64::from(h) > MAX_PIXELS {
        Err(format!(
            "{what} picture {w}x{h} exceeds the {MAX_DIMENSION}x{MAX_DIMENSION} limit"
        ))
    } else {
        Ok(())
    }
}

/// FFmpeg's own size check refused a picture on this thread (a demuxer or decoder then
/// fails with an unrelated code, e.g. EBUSY): the error names the size instead.
pub(crate) fn refused_picture(config: &StreamConfig) -> Option<Error> {
    let (w, h) = take_refused_picture()?;
    let reason = format!(
        "picture {w}x{h} is larger than FFmpeg accepts (the limit here is \
         {MAX_DIMENSION}x{MAX_DIMENSION})"
    );
    Some(invalid_input(config, reason, None))
}
