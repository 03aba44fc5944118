//! The ABR ladder: rungs (height, bitrates, codec, preset, frame-rate cap), segmenting,
//! and whether playlists are live or finished.

use std::time::Duration;

use super::validate_name;
use crate::error::{Error, Result};

/// Most variants one stream may carry (each is a full encoder).
pub const MAX_VARIANTS: usize = 8;
/// Largest named size (a rung's short side, [`VariantProfile::height`]) a variant may ask
/// for (8K).
pub const MAX_HEIGHT: u32 = 4320;
/// Highest video bitrate a variant may ask for, bits/s.
pub const MAX_VIDEO_BITRATE: u64 = 200_000_000;
/// x264 presets, fastest first.
pub(crate) const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// Video codec of a variant. HEVC and AV1 need [`Container::Fmp4`].
///
/// The [`VariantProfile::preset`] names a speed on x264's scale for every codec: x265
/// takes the same names; SVT-AV1's numeric presets are mapped (ultrafast 12, superfast 11,
/// veryfast 10, faster 9, fast 8, medium 7, slow 5, slower 4, veryslow 2, placebo 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC through libx264 (`avc1`).
    #[default]
    H264,
    /// H.265 / HEVC through libx265, tagged `hvc1` (what Apple's players require).
    Hevc,
    /// AV1 through SVT-AV1. SVT-AV1 cannot place a keyframe on request, so its GOP is
    /// exactly one segment of frames: it stays aligned with the other rungs when the
    /// segment duration is a whole number of frames at the rung's frame rate.
    Av1,
}

crate::error::enum_names!(VideoCodec, "video codec",
    /// The codec's name in config files and messages (`h264`, `hevc`, `av1`).
    {
        H264 => "h264",
        Hevc => "hevc",
        Av1 => "av1",
    }
);

impl VideoCodec {
    /// The FFmpeg encoder that implements it on the CPU.
    pub fn encoder_name(self) -> &'static str {
        self.traits().encoder
    }

    /// The encoder's own preset for a speed named on x264's scale (see the type's docs).
    pub fn encoder_preset(self, preset: &str) -> String {
        match self.traits().presets {
            None => preset.to_owned(),
            Some(own) => {
                let at = X264_PRESETS.iter().position(|p| *p == preset);
                own[at.unwrap_or(2)].to_owned()
            }
        }
    }
}

/// How segments are packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Container {
    /// MPEG-TS segments (`seg_NNNNN.ts`), HLS version 3, audio muxed into every variant.
    /// H.264 only.
    #[default]
    MpegTs,
    /// CMAF: fragmented MP4 segments (`seg_NNNNN.m4s`, each one fragment starting with a
    /// keyframe) after one init segment per rendition and run (`init_NNNNN.mp4`,
    /// `#EXT-X-MAP`), HLS version 7. One track per file: the audio is its own rendition (`audio-<kbps>k/`),
    /// stored once and shared by every video rung. Any [`VideoCodec`]; the segments can
    /// also be described by a DASH manifest ([`AbrProfile::dash`]).
    Fmp4,
}

crate::error::enum_names!(Container, "container",
    /// The container's name in config files and messages (`ts`, `fmp4`).
    {
        MpegTs => "ts",
        Fmp4 => "fmp4",
    }
);

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VariantProfile {
    /// Name, also the variant's directory: `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// The rung's named size in pixels (`720` for "720p"): its short side. The source is
    /// sized upright (its display matrix applied, as a phone's portrait clip asks): for a
    /// landscape or square source this is the rung's height and the width follows the
    /// display aspect; for a portrait source it is the width (a 720p rung of a portrait clip
    /// is 720x1280) and the height follows. The long side is rounded to even and capped at
    /// 4 x the short side and 8192 pixels.
    pub height: u32,
    /// Target video bitrate, bits/s.
    pub video_bitrate: u64,
    /// VBV max rate, bits/s (default 110 % of the bitrate).
    pub max_rate: u64,
    /// VBV buffer, bits (default twice the bitrate).
    pub buf_size: u64,
    /// Video codec.
    pub codec: VideoCodec,
    /// Speed preset on x264's scale (default `veryfast`), mapped for other codecs (see
    /// [`VideoCodec`]).
    pub preset: String,
    /// Frame-rate cap: frames above it are dropped evenly. `None` keeps the source's rate.
    pub max_frame_rate: Option<f64>,
    /// AAC bitrate, bits/s (default 128 kb/s).
    pub audio_bitrate: u64,
}

/// The standard rungs: name, height, video kb/s.
const STANDARD_RUNGS: [(&str, u32, u64); 5] = [
    ("1080p", 1080, 5000),
    ("720p", 720, 2800),
    ("480p", 480, 1400),
    ("360p", 360, 800),
    ("240p", 240, 400),
];

impl VariantProfile {
    /// A variant with the defaults for everything but its name, height and bitrate (bits/s).
    pub fn new(name: impl Into<String>, height: u32, video_bitrate: u64) -> Self {
        Self {
            name: name.into(),
            height,
            video_bitrate,
            max_rate: video_bitrate.saturating_mul(11) / 10,
            buf_size: video_bitrate.saturating_mul(2),
            codec: VideoCodec::H264,
            preset: "veryfast".into(),
            max_frame_rate: None,
            audio_bitrate: 128_000,
        }
    }

    /// A rung of the standard ladder by name (`1080p`, `720p`, `480p`, `360p`, `240p`).
    pub fn standard(name: &str) -> Option<Self> {
        STANDARD_RUNGS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(n, h, kbps)| Self::new(n, h, kbps * 1000))
    }

    /// Sets the video codec.
    pub fn with_codec(mut self, codec: VideoCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the speed preset (x264's names; see [`VideoCodec`] for other codecs).
    pub fn with_preset(mut self, preset: impl Into<String>) -> Self {
        self.preset = preset.into();
        self
    }

    /// Caps the frame rate.
    pub fn with_max_frame_rate(mut self, fps: f64) -> Self {
        self.max_frame_rate = Some(fps);
        self
    }

    /// Sets the AAC bitrate, bits/s.
    pub fn with_audio_bitrate(mut self, bps: u64) -> Self {
        self.audio_bitrate = bps;
        self
    }

    /// Sets the VBV max rate and buffer size, bits/s and bits.
    pub fn with_vbv(mut self, max_rate: u64, buf_size: u64) -> Self {
        self.max_rate = max_rate;
        self.buf_size = buf_size;
        self
    }

    pub(crate) fn validate(&self, field: &str) -> Result<()> {
        validate_name(&format!("{field}.name"), &self.name)?;
        if self.height % 2 != 0 {
            return Err(Error::config(
                format!("{field}.height"),
                format!("{} is odd; 4:2:0 video needs an even height", self.height),
            ));
        }
        if self.height < 2 || self.height > MAX_HEIGHT {
            return Err(Error::config(
                format!("{field}.height"),
                format!("{} is outside 2..={MAX_HEIGHT}", self.height),
            ));
        }
        for (what, v, min) in [
            ("video_bitrate", self.video_bitrate, 1_000),
            ("max_rate", self.max_rate, 1_000),
            ("buf_size", self.buf_size, 1_000),
        ] {
            if v < min || v > MAX_VIDEO_BITRATE * 4 {
                return Err(Error::config(
                    format!("{field}.{what}"),
                    format!("{v} is outside {min}..={}", MAX_VIDEO_BITRATE * 4),
                ));
            }
        }
        if self.video_bitrate > MAX_VIDEO_BITRATE {
            return Err(Error::config(
                format!("{field}.video_bitrate"),
                format!(
                    "{} b/s is above the cap of {MAX_VIDEO_BITRATE}",
                    self.video_bitrate
                ),
            ));
        }
        if self.max_rate < self.video_bitrate {
            return Err(Error::config(
                format!("{field}.max_rate"),
                "must be at least video_bitrate",
            ));
        }
        if !X264_PRESETS.contains(&self.preset.as_str()) {
            return Err(Error::config(
                format!("{field}.preset"),
                format!(
                    "unknown preset {:?}; one of {}",
                    self.preset,
                    X264_PRESETS.join(", ")
                ),
            ));
        }
        if let Some(fps) = self.max_frame_rate {
            if !(1.0..=240.0).contains(&fps) {
                return Err(Error::config(
                    format!("{field}.max_frame_rate"),
                    format!("{fps} is outside 1..=240"),
                ));
            }
        }
        if !(8_000..=512_000).contains(&self.audio_bitrate) {
            return Err(Error::config(
                format!("{field}.audio_bitrate"),
                format!("{} is outside 8000..=512000", self.audio_bitrate),
            ));
        }
        Ok(())
    }
}

/// The ladder and its segmenting.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AbrProfile {
    /// The rungs, in the order given (the master playlist lists them in this order).
    pub variants: Vec<VariantProfile>,
    /// Target segment duration (default 2 s); every variant has a keyframe at each boundary.
    pub segment_duration: Duration,
    /// Segments kept in a live playlist's sliding window (default 6).
    pub live_window: usize,
    /// Keep rungs larger than the source (upscaling) instead of leaving them out: a rung
    /// is larger when its named size ([`VariantProfile::height`]) exceeds the upright
    /// source's short side (its height, or a portrait source's width). When every rung is
    /// larger, the smallest runs anyway.
    pub keep_taller_rungs: bool,
    /// A jump between consecutive source timestamps beyond this is a discontinuity (a
    /// splice, a restart) absorbed into the timeline, not a gap (default 10 s, like the
    /// FFmpeg CLI for discontinuous formats).
    pub timestamp_jump: Duration,
    /// How segments are packaged (default MPEG-TS).
    pub container: Container,
    /// Also write a DASH manifest (`manifest.mpd`) over the same segments (needs
    /// [`Container::Fmp4`]; default false).
    pub dash: bool,
    /// Low-Latency HLS: partial segments of about this duration (0.2 to 1 s; needs
    /// [`Container::Fmp4`]; default none). Each part is a CMAF chunk of its segment, written
    /// as a file of its own (`seg_00042.3.m4s`) as soon as it is complete and listed in the
    /// live playlist (`EXT-X-PART`, `EXT-X-PART-INF`, `EXT-X-PRELOAD-HINT`,
    /// `EXT-X-SERVER-CONTROL:PART-HOLD-BACK`); whole segments are still listed, so players
    /// without low-latency support play the same playlist. On-demand output has no parts.
    pub part_duration: Option<Duration>,
    /// Low-latency DASH (parts with [`AbrProfile::dash`], live): the latency the manifest
    /// tells players to aim at (`ServiceDescription` `Latency@target`, glass to glass, and
    /// `suggestedPresentationDelay`); default four parts (1.336 s with 0.334 s parts, at
    /// least 1 s). A player holds about this minus the pipeline's delay in its buffer: a
    /// busy machine (a slower encode, a later chunk) wants another part or two. At least
    /// two parts, at most 30 s.
    pub dash_target_latency: Option<Duration>,
}

impl AbrProfile {
    /// A profile over these variants with default segmenting.
    pub fn new(variants: Vec<VariantProfile>) -> Self {
        Self {
            variants,
            segment_duration: Duration::from_secs(2),
            live_window: 6,
            keep_taller_rungs: false,
            timestamp_jump: Duration::from_secs(10),
            container: Container::MpegTs,
            dash: false,
            part_duration: None,
            dash_target_latency: None,
        }
    }

    /// The standard ladder: 1080p, 720p, 480p, 360p, 240p.
    pub fn standard() -> Self {
        Self::new(
            STANDARD_RUNGS
                .iter()
                .filter_map(|(n, _, _)| VariantProfile::standard(n))
                .collect(),
        )
    }

    /// The standard rungs named in `names` (e.g. `["1080p", "720p"]`), in that order.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming `profile.variants[i]` for a name that is not a
    /// standard rung.
    pub fn from_rungs<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let variants = names
            .iter()
            .enumerate()
            .map(|(i, n)| standard_rung(&format!("profile.variants[{i}]"), n.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Self::new(variants))
    }

    /// Sets the segment duration.
    pub fn with_segment_duration(mut self, d: Duration) -> Self {
        self.segment_duration = d;
        self
    }

    /// Sets the live sliding-window length, in segments.
    pub fn with_live_window(mut self, segments: usize) -> Self {
        self.live_window = segments;
        self
    }

    /// Keeps (upscales) rungs larger than the source (see
    /// [`AbrProfile::keep_taller_rungs`]).
    pub fn with_keep_taller_rungs(mut self, keep: bool) -> Self {
        self.keep_taller_rungs = keep;
        self
    }

    /// Sets the timestamp jump threshold (see [`AbrProfile::timestamp_jump`]).
    pub fn with_timestamp_jump(mut self, threshold: Duration) -> Self {
        self.timestamp_jump = threshold;
        self
    }

    /// Sets how segments are packaged.
    pub fn with_container(mut self, container: Container) -> Self {
        self.container = container;
        self
    }

    /// Writes a DASH manifest beside the HLS playlists (needs [`Container::Fmp4`]).
    pub fn with_dash(mut self, dash: bool) -> Self {
        self.dash = dash;
        self
    }

    /// Low-Latency HLS parts of about `part` (see [`AbrProfile::part_duration`]).
    pub fn with_parts(mut self, part: Duration) -> Self {
        self.part_duration = Some(part);
        self
    }

    /// Low-latency DASH players aim at `target` behind the capture clock (see
    /// [`AbrProfile::dash_target_latency`]).
    pub fn with_dash_target_latency(mut self, target: Duration) -> Self {
        self.dash_target_latency = Some(target);
        self
    }

    /// Sets the video codec of every variant.
    pub fn with_codec(mut self, codec: VideoCodec) -> Self {
        for v in &mut self.variants {
            v.codec = codec;
        }
        self
    }

    /// Sets the preset of every variant.
    pub fn with_preset(mut self, preset: &str) -> Self {
        for v in &mut self.variants {
            v.preset = preset.to_owned();
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.variants.is_empty() {
            return Err(Error::config("profile.variants", "the ladder is empty"));
        }
        if self.variants.len() > MAX_VARIANTS {
            return Err(Error::config(
                "profile.variants",
                format!("{} variants; at most {MAX_VARIANTS}", self.variants.len()),
            ));
        }
        for (i, v) in self.variants.iter().enumerate() {
            v.validate(&format!("profile.variants[{i}]"))?;
            if self.variants[..i].iter().any(|o| o.name == v.name) {
                return Err(Error::config(
                    format!("profile.variants[{i}].name"),
                    format!("duplicate variant name {:?}", v.name),
                ));
            }
        }
        self.validate_packaging()?;
        let seg = self.segment_duration.as_secs_f64();
        if !(0.5..=60.0).contains(&seg) {
            return Err(Error::config(
                "profile.segment_duration",
                format!("{seg} s is outside 0.5..=60 s"),
            ));
        }
        if !(1..=1000).contains(&self.live_window) {
            return Err(Error::config(
                "profile.live_window",
                format!("{} is outside 1..=1000", self.live_window),
            ));
        }
        if let Some(part) = self.part_duration.map(|p| p.as_secs_f64()) {
            if !(0.2..=1.0).contains(&part) || part > seg / 2.0 {
                return Err(Error::config(
                    "profile.part_duration",
                    format!("{part} s is outside 0.2..=1 s or over half a segment ({seg} s)"),
                ));
            }
        }
        if let Some(target) = self.dash_target_latency.map(|t| t.as_secs_f64()) {
            let field = "profile.dash_target_latency";
            let Some(part) = self.part_duration.map(|p| p.as_secs_f64()) else {
                return Err(Error::config(
                    field,
                    "needs low-latency parts (part_duration)",
                ));
            };
            if !(2.0 * part..=30.0).contains(&target) {
                let why = format!("{target} s is outside two parts ({} s)..=30 s", 2.0 * part);
                return Err(Error::config(field, why));
            }
        }
        let jump = self.timestamp_jump.as_secs_f64();
        if !(1.0..=3600.0).contains(&jump) {
            return Err(Error::config(
                "profile.timestamp_jump",
                format!("{jump} s is outside 1..=3600 s"),
            ));
        }
        // RFC 8216 §6.2.2: a live playlist lasts at least three target durations.
        let target = seg.ceil();
        if self.live_window as f64 * seg < 3.0 * target {
            return Err(Error::config(
                "profile.live_window",
                format!(
                    "{} segments of {seg} s is under three target durations ({} s)",
                    self.live_window,
                    3.0 * target
                ),
            ));
        }
        Ok(())
    }
}

impl AbrProfile {
    /// Codecs and manifests the container can carry, and no rung named like the audio.
    fn validate_packaging(&self) -> Result<()> {
        if self.container == Container::MpegTs {
            let other = self
                .variants
                .iter()
                .position(|v| !v.codec.traits().containers.contains(&self.container));
            if let Some(i) = other {
                return Err(Error::config(
                    format!("profile.variants[{i}].codec"),
                    format!(
                        "{} is written in fMP4 (CMAF) segments only: set the container to fmp4",
                        self.variants[i].codec
                    ),
                ));
            }
            if self.dash {
                return Err(Error::config(
                    "profile.dash",
                    "a DASH manifest needs fMP4 (CMAF) segments: set the container to fmp4",
                ));
            }
            if self.part_duration.is_some() {
                return Err(Error::config(
                    "profile.part_duration",
                    "low-latency parts are CMAF chunks: set the container to fmp4",
                ));
            }
        } else if let Some(i) = self
            .variants
            .iter()
            .position(|v| v.name.starts_with("audio"))
        {
            return Err(Error::config(
                format!("profile.variants[{i}].name"),
                "names starting with \"audio\" are kept for the audio renditions in fmp4",
            ));
        }
        Ok(())
    }
}

impl Default for AbrProfile {
    fn default() -> Self {
        Self::standard()
    }
}

/// The standard rung `name`, or the error naming `field` (the rung's place).
pub(crate) fn standard_rung(field: &str, name: &str) -> Result<VariantProfile> {
    VariantProfile::standard(name).ok_or_else(|| {
        Error::config(
            field,
            format!("unknown rung {name:?}; standard rungs are 1080p, 720p, 480p, 360p, 240p"),
        )
    })
}

/// Whether the outputs are a finished (VOD/event) playlist or a live sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PlaylistMode {
    /// Live for network sources (rtmp, srt, udp, rtp, tcp, rtsp, and http(s) without a
    /// known duration); finished otherwise (files, `lavfi:`).
    #[default]
    Auto,
    /// Every segment stays listed; the playlist ends with `#EXT-X-ENDLIST`.
    Vod,
    /// A sliding window of `live_window` segments; old segments are deleted.
    Live,
}

crate::error::enum_names!(PlaylistMode, "playlist mode",
    /// The mode's name in config files and messages (`auto`, `vod`, `live`).
    {
        Auto => "auto",
        Vod => "vod",
        Live => "live",
    }
);
