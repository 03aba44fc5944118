//! Stream configuration: what to read, where to write, and the ABR ladder. Everything is
//! validated when the config is built, with an error naming the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Most variants one stream may carry (each is a full encoder).
pub const MAX_VARIANTS: usize = 8;
/// Tallest picture a variant may ask for (8K).
pub const MAX_HEIGHT: u32 = 4320;
/// Highest video bitrate a variant may ask for, bits/s.
pub const MAX_VIDEO_BITRATE: u64 = 200_000_000;
/// x264 presets, fastest first.
pub const X264_PRESETS: [&str; 10] = [
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

/// Video codec of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC through libx264.
    #[default]
    H264,
}

impl VideoCodec {
    /// The FFmpeg encoder that implements it on the CPU.
    pub fn encoder_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "libx264",
        }
    }
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VariantProfile {
    /// Name, also the variant's directory: `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Output height in pixels; the width follows the source's display aspect (even).
    pub height: u32,
    /// Target video bitrate, bits/s.
    pub video_bitrate: u64,
    /// VBV max rate, bits/s (default 110 % of the bitrate).
    pub max_rate: u64,
    /// VBV buffer, bits (default twice the bitrate).
    pub buf_size: u64,
    /// Video codec.
    pub codec: VideoCodec,
    /// x264 preset (default `veryfast`).
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

    /// Sets the x264 preset.
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

    fn validate(&self, field: &str) -> Result<()> {
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
    /// Keep rungs taller than the source (upscaling) instead of leaving them out.
    pub keep_taller_rungs: bool,
}

impl AbrProfile {
    /// A profile over these variants with default segmenting.
    pub fn new(variants: Vec<VariantProfile>) -> Self {
        Self {
            variants,
            segment_duration: Duration::from_secs(2),
            live_window: 6,
            keep_taller_rungs: false,
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
    pub fn from_rungs<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let variants = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                VariantProfile::standard(n.as_ref()).ok_or_else(|| {
                    Error::config(
                        format!("profile.variants[{i}]"),
                        format!(
                            "unknown rung {:?}; standard rungs are 1080p, 720p, 480p, 360p, 240p",
                            n.as_ref()
                        ),
                    )
                })
            })
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

    /// Keeps (upscales) rungs taller than the source.
    pub fn with_keep_taller_rungs(mut self, keep: bool) -> Self {
        self.keep_taller_rungs = keep;
        self
    }

    /// Sets the preset of every variant.
    pub fn with_preset(mut self, preset: &str) -> Self {
        for v in &mut self.variants {
            v.preset = preset.to_owned();
        }
        self
    }

    fn validate(&self) -> Result<()> {
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
        Ok(())
    }
}

impl Default for AbrProfile {
    fn default() -> Self {
        Self::standard()
    }
}

/// Kind of hardware device a stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HwKind {
    /// NVIDIA CUDA (NVDEC/NVENC); the device is a GPU index such as `0`.
    Cuda,
    /// VA-API; the device is a DRM render node such as `/dev/dri/renderD128`.
    Vaapi,
    /// Intel Quick Sync; the device is a DRM render node.
    Qsv,
}

/// A hardware device for decoding/encoding (validated now; used by the hardware path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwDevice {
    /// The kind of device.
    pub kind: HwKind,
    /// Which device of that kind.
    pub device: String,
}

impl HwDevice {
    fn validate(&self) -> Result<()> {
        let ok = match self.kind {
            HwKind::Cuda => {
                !self.device.is_empty()
                    && self.device.len() <= 3
                    && self.device.bytes().all(|b| b.is_ascii_digit())
            }
            HwKind::Vaapi | HwKind::Qsv => {
                self.device.starts_with("/dev/dri/")
                    && !self.device.contains("..")
                    && self.device.len() <= 64
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(
                "hw_device.device",
                format!("{:?} is not a valid {:?} device (a GPU index for CUDA, /dev/dri/... otherwise)", self.device, self.kind),
            ))
        }
    }
}

/// When a stream reconnects to its source after a recoverable source error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reconnect {
    /// Network sources reconnect (an unexpected end of a live source included); files and
    /// `lavfi:` sources do not: a file that ends is simply finished.
    #[default]
    Auto,
    /// Reconnect on every recoverable source error.
    Always,
    /// Never reconnect: the first source error fails the stream.
    Never,
}

/// How a stream recovers from recoverable errors.
///
/// Reconnects back off exponentially (`initial_backoff`, doubling up to `max_backoff`, with
/// `jitter` as a fraction of random spread), bounded by `max_attempts` per outage and by
/// `max_outage` of total time per outage. When either bound is reached the stream fails
/// with the last error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecoveryPolicy {
    /// When to reconnect.
    pub reconnect: Reconnect,
    /// Reconnect attempts per outage (default 5).
    pub max_attempts: u32,
    /// First backoff (default 500 ms).
    pub initial_backoff: Duration,
    /// Longest backoff (default 8 s).
    pub max_backoff: Duration,
    /// Longest an outage may last before the stream fails (default 60 s).
    pub max_outage: Duration,
    /// Random spread of each backoff, as a fraction of it (default 0.2).
    pub jitter: f64,
    /// May a hardware failure fall back to the CPU (default true)?
    pub hardware_fallback: bool,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            reconnect: Reconnect::Auto,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_outage: Duration::from_secs(60),
            jitter: 0.2,
            hardware_fallback: true,
        }
    }
}

impl RecoveryPolicy {
    /// Never reconnect, never fall back: every error fails the stream.
    pub fn none() -> Self {
        Self {
            reconnect: Reconnect::Never,
            hardware_fallback: false,
            ..Self::default()
        }
    }

    /// Sets when to reconnect.
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the attempts per outage.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the backoff range.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Sets the longest outage.
    pub fn with_max_outage(mut self, max: Duration) -> Self {
        self.max_outage = max;
        self
    }

    /// Allows or forbids falling back from a hardware device to the CPU.
    pub fn with_hardware_fallback(mut self, allowed: bool) -> Self {
        self.hardware_fallback = allowed;
        self
    }

    /// The backoff before reconnect attempt `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    fn validate(&self) -> Result<()> {
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return Err(Error::config(
                "recovery.initial_backoff",
                "must be positive and at most max_backoff",
            ));
        }
        if self.max_backoff > Duration::from_secs(600) {
            return Err(Error::config("recovery.max_backoff", "at most 600 s"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config(
                "recovery.jitter",
                format!("{} is outside 0..=1", self.jitter),
            ));
        }
        if self.max_attempts > 10_000 {
            return Err(Error::config("recovery.max_attempts", "at most 10000"));
        }
        Ok(())
    }
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

/// A validated stream configuration. Build one with [`StreamConfig::builder`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    id: String,
    source: String,
    output_dir: PathBuf,
    profile: AbrProfile,
    hw_device: Option<HwDevice>,
    input_options: Vec<(String, String)>,
    io_timeout: Duration,
    playlist_mode: PlaylistMode,
    recovery: RecoveryPolicy,
    panic_after_frames: Option<u64>,
    hardware_loss_after_frames: Option<u64>,
}

impl StreamConfig {
    /// Starts a configuration: a stream id (`[A-Za-z0-9_-]{1,64}`), a source (path, URL or
    /// `lavfi:<graph>`), and the directory the ladder is written to.
    pub fn builder(
        id: impl Into<String>,
        source: impl Into<String>,
        output_dir: impl Into<PathBuf>,
    ) -> StreamConfigBuilder {
        StreamConfigBuilder {
            config: StreamConfig {
                id: id.into(),
                source: source.into(),
                output_dir: output_dir.into(),
                profile: AbrProfile::standard(),
                hw_device: None,
                input_options: Vec::new(),
                io_timeout: Duration::from_secs(5),
                playlist_mode: PlaylistMode::Auto,
                recovery: RecoveryPolicy::default(),
                panic_after_frames: None,
                hardware_loss_after_frames: None,
            },
        }
    }

    /// The stream id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The source as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The output directory.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// The ladder.
    pub fn profile(&self) -> &AbrProfile {
        &self.profile
    }

    /// The hardware device, if one was asked for.
    pub fn hw_device(&self) -> Option<&HwDevice> {
        self.hw_device.as_ref()
    }

    /// Options passed to the demuxer/protocol when the source is opened.
    pub fn input_options(&self) -> &[(String, String)] {
        &self.input_options
    }

    /// How long one open or read may block before it is cut off.
    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// The playlist mode as configured.
    pub fn playlist_mode(&self) -> PlaylistMode {
        self.playlist_mode
    }

    /// The recovery policy.
    pub fn recovery(&self) -> &RecoveryPolicy {
        &self.recovery
    }

    /// True when the source is reached over a network (anything with a `scheme://` other
    /// than `file:`), as opposed to a local file or a `lavfi:` graph.
    pub fn is_network_source(&self) -> bool {
        match self.source.split_once("://") {
            Some((scheme, _)) => {
                scheme != "file"
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+')
            }
            None => false,
        }
    }

    pub(crate) fn panic_after_frames(&self) -> Option<u64> {
        self.panic_after_frames
    }

    pub(crate) fn hardware_loss_after_frames(&self) -> Option<u64> {
        self.hardware_loss_after_frames
    }
}

/// Builder for [`StreamConfig`]; `build` validates everything.
#[derive(Debug, Clone)]
pub struct StreamConfigBuilder {
    config: StreamConfig,
}

impl StreamConfigBuilder {
    /// Sets the ladder (default: the standard ladder).
    pub fn profile(mut self, profile: AbrProfile) -> Self {
        self.config.profile = profile;
        self
    }

    /// Asks for a hardware device.
    pub fn hw_device(mut self, kind: HwKind, device: impl Into<String>) -> Self {
        self.config.hw_device = Some(HwDevice {
            kind,
            device: device.into(),
        });
        self
    }

    /// Adds an option for the demuxer/protocol (e.g. `("rtsp_transport", "tcp")`).
    pub fn input_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.input_options.push((key.into(), value.into()));
        self
    }

    /// Sets the open/read timeout (default 5 s; a source silent this long is stalled).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.config.io_timeout = timeout;
        self
    }

    /// Sets the playlist mode (default [`PlaylistMode::Auto`]).
    pub fn playlist_mode(mut self, mode: PlaylistMode) -> Self {
        self.config.playlist_mode = mode;
        self
    }

    /// Sets the recovery policy (default: reconnect network sources, allow CPU fallback).
    pub fn recovery(mut self, policy: RecoveryPolicy) -> Self {
        self.config.recovery = policy;
        self
    }

    /// Fault injection for tests of the panic net: the first variant's thread panics
    /// after encoding this many frames. Not for production use.
    #[doc(hidden)]
    pub fn inject_panic_after_frames(mut self, frames: u64) -> Self {
        self.config.panic_after_frames = Some(frames);
        self
    }

    /// Fault injection for tests of hardware recovery: the decoder reports a lost device
    /// after this many frames. Not for production use.
    #[doc(hidden)]
    pub fn inject_hardware_loss_after_frames(mut self, frames: u64) -> Self {
        self.config.hardware_loss_after_frames = Some(frames);
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<StreamConfig> {
        let c = self.config;
        validate_name("id", &c.id)?;
        if c.source.trim().is_empty() {
            return Err(Error::config("source", "empty"));
        }
        if c.source.contains('\0') {
            return Err(Error::config("source", "contains a NUL byte"));
        }
        if c.source.len() > 8192 {
            return Err(Error::config("source", "longer than 8192 bytes"));
        }
        if let Some(graph) = c.source.strip_prefix("lavfi:") {
            check_lavfi(graph)?;
        }
        if c.output_dir.as_os_str().is_empty() {
            return Err(Error::config("output_dir", "empty"));
        }
        if c.output_dir.to_string_lossy().contains('\0') {
            return Err(Error::config("output_dir", "contains a NUL byte"));
        }
        c.profile.validate()?;
        c.recovery.validate()?;
        if let Some(hw) = &c.hw_device {
            hw.validate()?;
        }
        for (i, (k, v)) in c.input_options.iter().enumerate() {
            if k.is_empty() || k.contains('\0') || v.contains('\0') {
                return Err(Error::config(
                    format!("input_options[{i}]"),
                    "empty key or NUL byte",
                ));
            }
        }
        if c.io_timeout < Duration::from_millis(100) || c.io_timeout > Duration::from_secs(600) {
            return Err(Error::config(
                "io_timeout",
                format!("{:?} is outside 100 ms..=600 s", c.io_timeout),
            ));
        }
        Ok(c)
    }
}

/// Filters a `lavfi:` source may use: generators and plain transforms. Filters that read or
/// write files (`movie`, `subtitles`, stats files), open sockets or load code are refused:
/// a `lavfi:` source is test media, not a way around the protocol allow-list.
const LAVFI_FILTERS: [&str; 48] = [
    "testsrc",
    "testsrc2",
    "smptebars",
    "smptehdbars",
    "rgbtestsrc",
    "yuvtestsrc",
    "pal75bars",
    "pal100bars",
    "colorspectrum",
    "color",
    "nullsrc",
    "mandelbrot",
    "life",
    "cellauto",
    "gradients",
    "sine",
    "anoisesrc",
    "anullsrc",
    "aevalsrc",
    "realtime",
    "arealtime",
    "format",
    "aformat",
    "scale",
    "fps",
    "setpts",
    "asetpts",
    "setsar",
    "setdar",
    "trim",
    "atrim",
    "volume",
    "aresample",
    "pad",
    "crop",
    "hflip",
    "vflip",
    "rotate",
    "null",
    "anull",
    "noise",
    "drawbox",
    "drawgrid",
    "loop",
    "aloop",
    "tpad",
    "apad",
    "hue",
];

fn check_lavfi(graph: &str) -> Result<()> {
    for chain in graph.split(';') {
        for filter in chain.split(',') {
            // Drop link labels ("[out0]") and instance names ("name@id").
            let mut name = String::new();
            let mut in_label = false;
            for ch in filter.chars() {
                match ch {
                    '[' => in_label = true,
                    ']' => in_label = false,
                    _ if !in_label => name.push(ch),
                    _ => {}
                }
            }
            let name = name.trim();
            let name = name.split(['=', '@']).next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            if !LAVFI_FILTERS.contains(&name) {
                return Err(Error::config(
                    "source",
                    format!("lavfi filter {name:?} is not allowed (test sources and plain transforms only)"),
                ));
            }
        }
    }
    Ok(())
}

/// Ids and variant names become directory names: `[A-Za-z0-9_-]{1,64}`, nothing else.
fn validate_name(field: &str, name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{name:?} must match [A-Za-z0-9_-]{{1,64}}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(profile: AbrProfile) -> Result<StreamConfig> {
        StreamConfig::builder("s", "in.mp4", "out")
            .profile(profile)
            .build()
    }

    fn field_of(r: Result<StreamConfig>) -> String {
        match r {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn standard_ladder_is_valid() {
        let c = build(AbrProfile::standard()).unwrap();
        let names: Vec<_> = c
            .profile()
            .variants
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["1080p", "720p", "480p", "360p", "240p"]);
        assert_eq!(c.profile().variants[1].video_bitrate, 2_800_000);
        assert_eq!(c.profile().segment_duration, Duration::from_secs(2));
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field_of(build(AbrProfile::new(vec![]))), "profile.variants");
        let dup = AbrProfile::new(vec![
            VariantProfile::new("a", 360, 1_000_000),
            VariantProfile::new("a", 240, 500_000),
        ]);
        assert_eq!(field_of(build(dup)), "profile.variants[1].name");
        let zero = AbrProfile::new(vec![VariantProfile::new("a", 360, 0)]);
        assert_eq!(field_of(build(zero)), "profile.variants[0].video_bitrate");
        let tall = AbrProfile::new(vec![VariantProfile::new("a", 100_000, 1_000_000)]);
        assert_eq!(field_of(build(tall)), "profile.variants[0].height");
        let traversal = AbrProfile::new(vec![VariantProfile::new("../x", 360, 1_000_000)]);
        assert_eq!(field_of(build(traversal)), "profile.variants[0].name");
        let percent = AbrProfile::new(vec![VariantProfile::new("v%d", 360, 1_000_000)]);
        assert_eq!(field_of(build(percent)), "profile.variants[0].name");
        let preset = AbrProfile::standard().with_preset("warp");
        assert_eq!(field_of(build(preset)), "profile.variants[0].preset");
        let seg = AbrProfile::standard().with_segment_duration(Duration::ZERO);
        assert_eq!(field_of(build(seg)), "profile.segment_duration");
        assert_eq!(
            field_of(StreamConfig::builder("a/b", "x", "o").build()),
            "id"
        );
        assert_eq!(field_of(StreamConfig::builder("", "x", "o").build()), "id");
        assert_eq!(
            field_of(StreamConfig::builder("x".repeat(65), "x", "o").build()),
            "id"
        );
        assert_eq!(
            field_of(StreamConfig::builder("a", "", "o").build()),
            "source"
        );
        let hw = StreamConfig::builder("a", "x", "o")
            .hw_device(HwKind::Vaapi, "/etc/passwd")
            .build();
        assert_eq!(field_of(hw), "hw_device.device");
        assert_eq!(
            field_of(build(AbrProfile::new(vec![
                VariantProfile::new(
                    "a", 360, 1_000_000
                );
                9
            ]))),
            "profile.variants"
        );
    }

    #[test]
    fn lavfi_sources_are_test_media_only() {
        let ok = |src: &str| StreamConfig::builder("a", src, "o").build().is_ok();
        assert!(ok(
            "lavfi:testsrc2=size=1280x720:rate=30;sine=frequency=440"
        ));
        assert!(ok(
            "lavfi:testsrc2=size=320x180:rate=15,realtime[out0];sine[out1]"
        ));
        assert!(!ok("lavfi:movie=/etc/passwd"));
        assert!(!ok("lavfi:testsrc2;amovie=/tmp/x.wav"));
        assert!(!ok("lavfi:testsrc2,drawtext=textfile=/etc/shadow"));
        assert!(!ok("lavfi:testsrc2,psnr=stats_file=/tmp/owned"));
        let odd = AbrProfile::new(vec![VariantProfile::new("a", 361, 1_000_000)]);
        assert_eq!(field_of(build(odd)), "profile.variants[0].height");
    }

    #[test]
    fn rungs_by_name() {
        let p = AbrProfile::from_rungs(&["720p", "360p"]).unwrap();
        assert_eq!(p.variants.len(), 2);
        assert!(AbrProfile::from_rungs(&["720p", "999p"]).is_err());
    }
}
