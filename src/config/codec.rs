//! What the crate knows about each [`VideoCodec`], in one table that every site reads:
//! the encoder, how it places keyframes, how its stream is packaged and described, which
//! containers carry it, and what it costs. Adding a codec is adding a row here (and its
//! RFC 6381 parser in `output::codecs`).

use super::{Container, VideoCodec};

/// One codec's row.
#[derive(Debug)]
pub(crate) struct CodecTraits {
    /// The FFmpeg encoder that implements it on the CPU.
    pub encoder: &'static str,
    /// The encoder's own presets for x264's ten speed names, fastest first; `None`: it
    /// takes x264's names.
    pub presets: Option<[&'static str; 10]>,
    /// The encoder places a keyframe where it is asked to (forced IDR); if not, its GOP is
    /// exactly one segment and each of its keyframes starts a segment.
    pub forced_keyframes: bool,
    /// The keyframes repeat the parameter sets in-band (so the RFC 6381 string can be read
    /// from a packet when the global header is missing).
    pub in_band_parameter_sets: bool,
    /// The fMP4 sample-entry tag when the muxer's default is not what players need.
    pub mp4_tag: Option<[u8; 4]>,
    /// The containers that carry it.
    pub containers: &'static [Container],
    /// Encoding CPU per pixel beside x264 at the same preset (measured: `make compare`,
    /// 720p+360p from 1080p30 at veryfast, CPU time per media second).
    pub cpu_weight: f64,
    /// Frames' memory in flight beside x264 at the same preset (measured: peak RSS).
    pub memory_weight: f64,
}

const H264: CodecTraits = CodecTraits {
    encoder: "libx264",
    presets: None,
    forced_keyframes: true,
    in_band_parameter_sets: true,
    mp4_tag: None,
    containers: &[Container::MpegTs, Container::Fmp4],
    cpu_weight: 1.0,
    memory_weight: 1.0,
};

const HEVC: CodecTraits = CodecTraits {
    encoder: "libx265",
    presets: None,
    forced_keyframes: true,
    in_band_parameter_sets: false,
    // Apple's players take HEVC in MP4 as hvc1 only (parameter sets in the sample entry).
    mp4_tag: Some(*b"hvc1"),
    containers: &[Container::Fmp4],
    cpu_weight: 3.3,
    memory_weight: 2.0,
};

const AV1: CodecTraits = CodecTraits {
    encoder: "libsvtav1",
    presets: Some(["12", "11", "10", "9", "8", "7", "5", "4", "2", "1"]),
    // SVT-AV1 ignores forced keyframes (checked with the FFmpeg CLI).
    forced_keyframes: false,
    in_band_parameter_sets: false,
    mp4_tag: None,
    containers: &[Container::Fmp4],
    cpu_weight: 2.6,
    memory_weight: 3.0,
};

impl VideoCodec {
    /// Its row of the codec table.
    pub(crate) fn traits(self) -> &'static CodecTraits {
        match self {
            VideoCodec::H264 => &H264,
            VideoCodec::Hevc => &HEVC,
            VideoCodec::Av1 => &AV1,
        }
    }
}
