//! Opening the source: URL forms, the interrupt and timeout, stream selection, and turning
//! FFmpeg's failures into errors that say what is wrong.

use std::sync::Arc;

use crate::config::{PlaylistMode, StreamConfig};
use crate::error::Error;
use crate::ffi::{AvError, Dictionary, InputContext, Interrupt, StreamInfo};

/// Largest picture a source may declare or decode to (16384 x 16384); a hostile header
/// cannot make us allocate more.
pub(crate) const MAX_PIXELS: i64 = 16384 * 16384;
/// Largest width or height a source may declare.
pub(crate) const MAX_DIMENSION: i32 = 16384;

/// Schemes whose sources are live by nature.
const LIVE_SCHEMES: [&str; 8] = ["rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "rtsp", "rist"];

pub(crate) struct Source {
    pub input: InputContext,
    pub video: StreamInfo,
    pub audio: Option<StreamInfo>,
    pub live: bool,
}

/// `lavfi:<graph>` opens FFmpeg's lavfi virtual input; `;`-separated chains get `[outN]`
/// labels so a video chain and an audio chain become two streams.
fn split_source(source: &str) -> (String, Option<&'static str>) {
    match source.strip_prefix("lavfi:") {
        Some(graph) => {
            let chains: Vec<String> = graph
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .enumerate()
                .map(|(i, c)| {
                    if c.contains("[out") {
                        c.to_owned()
                    } else {
                        format!("{c}[out{i}]")
                    }
                })
                .collect();
            (chains.join(";"), Some("lavfi"))
        }
        None => (source.to_owned(), None),
    }
}

fn scheme(source: &str) -> Option<&str> {
    let (s, _) = source.split_once("://")?;
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+')
        .then_some(s)
}

/// Opens the source and selects its streams. Blocking, bounded by the I/O timeout and
/// cancellable through `interrupt`.
pub(crate) fn open(config: &StreamConfig, interrupt: &Arc<Interrupt>) -> Result<Source, Error> {
    let stream = config.id();
    let (url, format) = split_source(config.source());
    let mut opts = Dictionary::new();
    let av = |e: AvError| open_error(config, interrupt, e);
    for (k, v) in config.input_options() {
        opts.set(k, v).map_err(av)?;
    }
    interrupt.arm(config.io_timeout());
    let (input, unused) = InputContext::open(&url, format, opts, interrupt.clone()).map_err(av)?;
    interrupt.disarm();
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
    if video.width > MAX_DIMENSION
        || video.height > MAX_DIMENSION
        || i64::from(video.width) * i64::from(video.height) > MAX_PIXELS
    {
        return Err(invalid(format!(
            "declared picture {}x{} exceeds the {MAX_DIMENSION}x{MAX_DIMENSION} limit",
            video.width, video.height
        )));
    }
    let audio = input.best_audio().map(|i| input.stream_info(i));
    let live = match config.playlist_mode() {
        PlaylistMode::Vod => false,
        PlaylistMode::Live => true,
        _ => match scheme(config.source()) {
            Some(s) if LIVE_SCHEMES.contains(&s) => true,
            Some("http" | "https") => !input.has_duration(),
            _ => false,
        },
    };
    Ok(Source {
        input,
        video,
        audio,
        live,
    })
}

/// Classifies a failure to open: cancelled, timed out, not media, or unreachable.
fn open_error(config: &StreamConfig, interrupt: &Interrupt, e: AvError) -> Error {
    let stream = config.id().to_owned();
    let url = config.source().to_owned();
    if interrupt.is_interrupted() {
        return Error::Aborted { stream };
    }
    if interrupt.timed_out() {
        return Error::SourceIo {
            stream,
            url,
            op: "opening",
            code: e.code,
            message: format!("timed out after {} ms", config.io_timeout().as_millis()),
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
    Error::SourceIo {
        stream,
        url,
        op: "opening",
        code: e.code,
        message: e.message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lavfi_chains_get_labels() {
        assert_eq!(
            split_source("lavfi:testsrc2=size=640x360;sine=f=440"),
            (
                "testsrc2=size=640x360[out0];sine=f=440[out1]".to_owned(),
                Some("lavfi")
            )
        );
        assert_eq!(split_source("/a/b.mp4"), ("/a/b.mp4".to_owned(), None));
        assert_eq!(scheme("srt://1.2.3.4:9000"), Some("srt"));
        assert_eq!(scheme("/x/y"), None);
    }
}
