//! Configuring a stream: the validated [`StreamConfig`] and its [`StreamConfigBuilder`],
//! what it reads ([`Source`], with a [`SourceHint`] of its size; a `lavfi:` test graph as
//! a [`GeneratedGraph`]), the ladder it writes ([`AbrProfile`] of [`VariantProfile`]s,
//! [`VideoCodec`], [`Container`], [`PlaylistMode`] and the limits [`MAX_VARIANTS`],
//! [`MAX_HEIGHT`], [`MAX_VIDEO_BITRATE`]), a hardware device to decode on ([`HwDevice`],
//! [`HwKind`]), how it recovers ([`RecoveryPolicy`], [`Reconnect`], [`Backoff`]) or a
//! manager restarts it ([`RestartPolicy`]), and what a live output does while its source is
//! gone ([`InputLoss`], [`Filler`], [`FillPicture`], [`Slate`]). Everything is validated when the config is
//! built, with an error naming the field.
//!
//! The types an application uses every day ([`StreamConfig`], [`StreamConfigBuilder`],
//! [`Source`], [`AbrProfile`], [`VariantProfile`], [`VideoCodec`], [`Container`],
//! [`RecoveryPolicy`]) are also at the crate root.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod codec;
mod generated;
mod hw;
mod input_loss;
mod input_options;
mod ladder;
pub(crate) mod local;
pub(crate) mod network;
mod reader;
mod recovery;
pub(crate) mod source;
#[cfg(feature = "serde")]
mod spec;
mod trust;
mod validate;
pub(crate) use validate::validate_name;

pub(crate) use generated::is_allowed_filter;
pub use generated::{GeneratedFilter, GeneratedGraph};
pub use hw::{HwDevice, HwKind};
pub use input_loss::{FillPicture, Filler, InputLoss, Slate};
pub use ladder::{
    AbrProfile, Container, PlaylistMode, VariantProfile, VideoCodec, MAX_HEIGHT, MAX_VARIANTS,
    MAX_VIDEO_BITRATE,
};
pub(crate) use reader::{AppReader, Opening, ReaderSource};
pub(crate) use recovery::BackoffTimer;
pub use recovery::{Backoff, Reconnect, RecoveryPolicy, RestartPolicy};
pub use source::Source;
pub(crate) use source::{SourceKind, READER_LABEL};

use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::sink::{FsSink, SegmentSink};
use std::sync::Arc;

/// A validated stream configuration. Build one with [`StreamConfig::builder`].
///
/// Its `Debug` masks secrets: the source goes through [`redact_url`](crate::redact_url)
/// (a reader is never shown, only described), and input options whose key looks secret
/// (or carries `headers`/`cookies`) show `***`.
#[derive(Clone)]
pub struct StreamConfig {
    id: String,
    source: Source,
    /// A `lavfi:` source's graph, parsed when the config was built.
    generated: Option<GeneratedGraph>,
    allow_generated: bool,
    allow_devices: bool,
    /// The directory local sources must be in (canonical once built); `None`: local files
    /// are refused.
    local_root: Option<PathBuf>,
    /// Refuse loopback, private and link-local addresses on every outbound open.
    deny_private: bool,
    /// Non-public addresses reachable all the same (the application's own origins).
    allowed_addresses: Vec<std::net::IpAddr>,
    /// The source's forced format is a device (found when the config was built).
    device_format: bool,
    output_dir: PathBuf,
    profile: AbrProfile,
    hw_device: Option<HwDevice>,
    input_options: Vec<(String, String)>,
    io_timeout: Duration,
    playlist_mode: PlaylistMode,
    recovery: RecoveryPolicy,
    /// What a live output does while its source delivers no media.
    input_loss: InputLoss,
    /// With backups: how long the primary must be healthy again before the stream switches
    /// back to it.
    switch_back_after: Duration,
    source_hint: Option<SourceHint>,
    /// Place in a manager's admission queue: higher first, equal ones first come first.
    priority: i32,
    /// Cores this stream's encoders may use (set by a manager from the stream's share of
    /// the pool); `None`: the whole machine.
    core_share: Option<usize>,
    /// Hooks a manager attaches to the stream it starts from this config (every run,
    /// restarts too): [`Manager::create_stream_with`](crate::Manager::create_stream_with).
    attached_hooks: Hooks,
    /// Where the files go: an [`FsSink`] under `output_dir` unless the application set one.
    sink: Arc<dyn SegmentSink>,
    /// The application set the sink (so `sync_output` leaves it alone).
    own_sink: bool,
    /// The sink's identity, asked once when the config is built (the application's code:
    /// a manager compares it under its lock, where no application code may run).
    output_identity: Option<String>,
    #[cfg(feature = "fault-injection")]
    faults: Faults,
}

/// What an application knows of its source before it is opened: its picture size and
/// frame rate. A manager prices the stream from it at admission (the rungs that will run, at
/// the real aspect and rate) instead of from the config's upper bound.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SourceHint {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
}

/// Faults the tests inject to prove the recovery and panic paths (cargo feature
/// `fault-injection`; absent from the default build).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The first variant's thread panics after encoding this many frames.
    pub panic_after_frames: Option<u64>,
    /// The decoder reports a lost hardware device after this many frames.
    pub hardware_loss_after_frames: Option<u64>,
}

impl StreamConfig {
    /// Starts a configuration: a stream id (`[A-Za-z0-9_-]{1,64}`), a source (a path, URL
    /// or `lavfi:<graph>` as a string, or any [`Source`], e.g. an application's reader),
    /// and the directory the ladder is written to.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamvisor::{AbrProfile, StreamConfig};
    /// # fn main() -> Result<(), streamvisor::Error> {
    /// let config = StreamConfig::builder("cam1", "rtmp://127.0.0.1/live/cam1", "/srv/hls/cam1")
    ///     .profile(AbrProfile::from_rungs(&["720p", "360p"])?)
    ///     .io_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(config.id(), "cam1");
    /// // Invalid input is refused when the config is built, naming the field.
    /// assert!(StreamConfig::builder("bad id!", "in.mp4", "/tmp/o").build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(
        id: impl Into<String>,
        source: impl Into<Source>,
        output_dir: impl Into<PathBuf>,
    ) -> StreamConfigBuilder {
        let output_dir = output_dir.into();
        StreamConfigBuilder {
            config: StreamConfig {
                id: id.into(),
                source: source.into(),
                generated: None,
                allow_generated: false,
                allow_devices: false,
                local_root: None,
                deny_private: false,
                allowed_addresses: Vec::new(),
                device_format: false,
                sink: Arc::new(FsSink::new(&output_dir, true)),
                own_sink: false,
                output_identity: None,
                output_dir,
                profile: AbrProfile::standard(),
                hw_device: None,
                input_options: Vec::new(),
                io_timeout: Duration::from_secs(5),
                playlist_mode: PlaylistMode::Auto,
                recovery: RecoveryPolicy::default(),
                input_loss: InputLoss::default(),
                switch_back_after: Duration::from_secs(5),
                source_hint: None,
                priority: 0,
                core_share: None,
                attached_hooks: Hooks::new(),
                #[cfg(feature = "fault-injection")]
                faults: Faults::default(),
            },
        }
    }

    /// A builder holding this configuration, to change it and build it again (validated
    /// again).
    pub fn to_builder(&self) -> StreamConfigBuilder {
        StreamConfigBuilder {
            config: self.clone(),
        }
    }

    /// The stream id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The source URL as given, secrets included: this is what is opened. Show it with
    /// [`redact_url`](crate::redact_url). For a reader source, the label `<reader>` (see
    /// [`StreamConfig::input`]).
    pub fn source(&self) -> &str {
        self.source.as_url().unwrap_or(READER_LABEL)
    }

    /// The source as given: a URL or a reader, and its forced format.
    pub fn input(&self) -> &Source {
        &self.source
    }

    /// A `lavfi:` source's graph as parsed (and as FFmpeg will get it); `None` for other
    /// sources.
    pub fn generated_graph(&self) -> Option<&GeneratedGraph> {
        self.generated.as_ref()
    }

    /// True when the config opted in to generated (`lavfi:`) sources.
    pub fn allows_generated_sources(&self) -> bool {
        self.allow_generated
    }

    /// True when the config opted in to device input formats.
    pub fn allows_device_sources(&self) -> bool {
        self.allow_devices
    }

    /// True when every outbound connection the source makes must reach a public address
    /// ([`StreamConfigBuilder::deny_private_networks`]).
    pub fn denies_private_networks(&self) -> bool {
        self.deny_private
    }

    /// The non-public addresses the source may reach all the same
    /// ([`StreamConfigBuilder::allow_addresses`]).
    pub fn allowed_addresses(&self) -> &[std::net::IpAddr] {
        &self.allowed_addresses
    }

    /// The directory local sources (and every file they open) must be in, canonical
    /// (symbolic links resolved); `None` when local files are refused.
    pub fn local_files_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
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

    /// Cores the stream's encoders share, when a manager gave it a share of the machine.
    pub(crate) fn core_share(&self) -> Option<usize> {
        self.core_share
    }

    /// The same config with `hooks` added to those a manager attaches to its streams.
    pub(crate) fn with_attached_hooks(mut self, hooks: &Hooks) -> Self {
        self.attached_hooks = std::mem::take(&mut self.attached_hooks).merge(hooks);
        self
    }

    /// The hooks a manager attaches to the streams it starts from this config.
    pub(crate) fn attached_hooks(&self) -> &Hooks {
        &self.attached_hooks
    }

    /// The same config with its encoders held to `cores` cores.
    pub(crate) fn with_core_share(mut self, cores: usize) -> Self {
        self.core_share = Some(cores.max(1));
        self
    }

    /// The stream's priority in a manager's admission queue (default 0).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// What the config declares of the source, if anything.
    pub fn source_hint(&self) -> Option<SourceHint> {
        self.source_hint
    }

    /// The sink the output goes to: the application's, or an [`FsSink`] writing under
    /// the output directory.
    pub fn sink(&self) -> &Arc<dyn SegmentSink> {
        &self.sink
    }

    /// The sink's [`identity`](SegmentSink::identity), as it said when the config was
    /// built: what a manager compares to run one stream at a time per output.
    pub fn output_identity(&self) -> Option<&str> {
        self.output_identity.as_deref()
    }

    /// The recovery policy.
    pub fn recovery(&self) -> &RecoveryPolicy {
        &self.recovery
    }

    /// What a live output does while its source delivers no media (files are never filled).
    pub fn input_loss(&self) -> &InputLoss {
        &self.input_loss
    }

    /// With backup sources: how long the primary must be healthy again before the stream
    /// switches back to it.
    pub fn switch_back_after(&self) -> Duration {
        self.switch_back_after
    }

    /// True when the source is reached over a network (anything with a `scheme://` other
    /// than `file:`), as opposed to a local file, a `lavfi:` graph, a device or a reader.
    pub fn is_network_source(&self) -> bool {
        matches!(self.source_kind(), SourceKind::Network { .. })
    }

    /// True when a [`Reconnect::Auto`] policy reconnects the source: a network source, or a
    /// reader factory (a one-shot reader never is).
    pub(crate) fn reconnects_by_default(&self) -> bool {
        self.is_network_source() || (self.source.is_reader() && self.source.can_reopen())
    }

    /// What the source is (generated graph, file, network URL, device, reader).
    pub(crate) fn source_kind(&self) -> SourceKind<'_> {
        match self.source.as_url() {
            None => SourceKind::Reader,
            Some(_) if self.device_format => SourceKind::Device,
            Some(url) => SourceKind::of(url),
        }
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, &str)> = self
            .input_options
            .iter()
            .map(|(k, v)| {
                let secret = !crate::redact::is_shown_name(k);
                (
                    k.as_str(),
                    if secret {
                        crate::redact::MASK
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        let mut d = f.debug_struct("StreamConfig");
        d.field("id", &self.id)
            .field("source", &self.source)
            .field("allow_generated", &self.allow_generated)
            .field("allow_devices", &self.allow_devices)
            .field("local_root", &self.local_root)
            .field("deny_private_networks", &self.deny_private)
            .field("allowed_addresses", &self.allowed_addresses)
            .field("output_dir", &self.output_dir)
            .field("profile", &self.profile)
            .field("hw_device", &self.hw_device)
            .field("input_options", &options)
            .field("io_timeout", &self.io_timeout)
            .field("playlist_mode", &self.playlist_mode)
            .field("recovery", &self.recovery)
            .field("input_loss", &self.input_loss)
            .field("sink", &self.sink);
        #[cfg(feature = "fault-injection")]
        d.field("faults", &self.faults);
        d.finish()
    }
}

/// Builder for [`StreamConfig`]; `build` validates everything.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
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

    /// Adds an option for the demuxer/protocol (e.g. `("rtsp_transport", "tcp")`). Keys that
    /// would widen what the source may reach are refused by [`build`](Self::build):
    /// `protocol_whitelist`, `protocol_blacklist`, `format_whitelist`, `codec_whitelist`,
    /// `allowed_extensions`, `allowed_segment_extensions`, `extension_picky`,
    /// `seg_format_options`, `safe`, `use_absolute_path`, `enable_drefs`, `graph`, `graph_file`.
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

    /// With backup sources ([`Source::backup`]): how long the primary must have been healthy
    /// again before the stream switches back to it (default 5 s; 0 to 1 h).
    pub fn switch_back_after(mut self, after: Duration) -> Self {
        self.config.switch_back_after = after;
        self
    }

    /// Sets what a live output does while its source delivers no media (default:
    /// [`InputLoss::Fill`] with the default [`Filler`]; [`InputLoss::Stop`] pauses the output
    /// with its source and sends every source frame, none added or dropped).
    pub fn input_loss(mut self, policy: InputLoss) -> Self {
        self.config.input_loss = policy;
        self
    }

    /// The stream's place in a manager's admission queue when it has to wait: streams of a
    /// higher priority start before those of a lower one, streams of the same priority in
    /// the order they came (default 0; negative for background work). A stream of a higher
    /// priority than every waiting one may start at once if it fits.
    pub fn priority(mut self, priority: i32) -> Self {
        self.config.priority = priority;
        self
    }

    /// Declares the source's picture size (upright, as it is shown: after its display
    /// matrix) and frame rate, so that a manager prices the stream exactly at admission (see
    /// [`SourceHint`]). Once the source is opened the price
    /// follows what it really is, whatever the hint said.
    pub fn source_hint(mut self, width: u32, height: u32, frame_rate: f64) -> Self {
        self.config.source_hint = Some(SourceHint {
            width,
            height,
            frame_rate,
        });
        self
    }

    /// Writes the output through `sink` (e.g. [`HttpSink`](crate::sink::HttpSink)) instead of
    /// to files under the output directory, which then only names the output in messages.
    /// A manager runs one stream at a time into a sink of the same
    /// [`identity`](SegmentSink::identity). A live playlist is carried on across runs
    /// through a sink that can [`read`](SegmentSink::read) files back, as on the
    /// filesystem; through one that cannot, each run starts its numbering again.
    pub fn sink(mut self, sink: Arc<dyn SegmentSink>) -> Self {
        self.config.sink = sink;
        self.config.own_sink = true;
        self
    }

    /// Whether the default [`FsSink`] makes every segment and playlist durable (fsync of the
    /// file and its directory) before a playlist lists it (default true; off suits tmpfs
    /// and throwaway output). No effect on a sink set with [`sink`](Self::sink).
    pub fn sync_output(mut self, sync: bool) -> Self {
        if !self.config.own_sink {
            self.config.sink = Arc::new(FsSink::new(&self.config.output_dir, sync));
        }
        self
    }

    /// Fault injection for tests of the panic net: the first variant's thread panics
    /// after encoding this many frames. Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_panic_after_frames(mut self, frames: u64) -> Self {
        self.config.faults.panic_after_frames = Some(frames);
        self
    }

    /// Fault injection for tests of hardware recovery: the decoder reports a lost device
    /// after this many frames. Only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_hardware_loss_after_frames(mut self, frames: u64) -> Self {
        self.config.faults.hardware_loss_after_frames = Some(frames);
        self
    }

    /// Validates and returns the configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamvisor::config::PlaylistMode;
    /// use streamvisor::{AbrProfile, RecoveryPolicy, StreamConfig};
    /// let config = StreamConfig::builder("cam1", "rtmp://127.0.0.1/live/cam1", "/srv/hls/cam1")
    ///     .profile(AbrProfile::from_rungs(&["720p", "360p"])?)
    ///     .playlist_mode(PlaylistMode::Live)
    ///     .recovery(RecoveryPolicy::default().with_max_outage(Duration::from_secs(30)))
    ///     .build()?;
    /// assert_eq!(config.profile().variants.len(), 2);
    ///
    /// let refused = StreamConfig::builder("cam/1", "rtmp://127.0.0.1/live/cam1", "out").build();
    /// assert!(matches!(refused, Err(streamvisor::Error::InvalidConfig { field, .. }) if field == "id"));
    /// # Ok::<(), streamvisor::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field refused, e.g. `id`, `source`
    /// (empty, a NUL byte, a `lavfi:` graph without the opt-in or outside the grammar),
    /// `source.format`, `output_dir`, `profile.variants[1].height`, `recovery.backoff.max`,
    /// `hw_device.device`, `input_options[0]`, `source_hint`, `io_timeout`.
    pub fn build(self) -> Result<StreamConfig> {
        let mut c = self.config;
        validate_name("id", &c.id)?;
        validate::check_source(&mut c)?;
        if c.source.is_reader() && !c.source.backups().is_empty() {
            let why = "a reader source cannot have backups (it cannot be reopened in the \
                       background)";
            return Err(Error::config("source.backups", why));
        }
        if c.switch_back_after > Duration::from_secs(3600) {
            return Err(Error::config("switch_back_after", "at most 1 h"));
        }
        validate::output_dir(&c.output_dir)?;
        c.profile.validate()?;
        c.recovery.validate()?;
        c.input_loss.validate()?;
        if let Some(hw) = &c.hw_device {
            hw.validate()?;
        }
        validate::input_options(&c.input_options)?;
        validate::source_hint(c.source_hint)?;
        validate::io_timeout(c.io_timeout)?;
        c.output_identity = c.sink.identity();
        // Last: the one check that reads the filesystem.
        validate::check_local_source(&mut c)?;
        for i in 0..c.source.backups().len() {
            c.backup_config(i)?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(profile: AbrProfile) -> Result<StreamConfig> {
        StreamConfig::builder("s", "in.mp4", "out")
            .local_files_under("/")
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
    fn lavfi_sources_are_opt_in_and_test_media_only() {
        let ok = |src: &str| {
            StreamConfig::builder("a", src, "o")
                .allow_generated_sources(true)
                .build()
                .is_ok()
        };
        let refused = StreamConfig::builder("a", "lavfi:testsrc2", "o").build();
        match refused {
            Err(Error::InvalidConfig { field, reason }) => {
                assert_eq!(field, "source");
                assert!(reason.contains("allow_generated_sources(true)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(ok(
            "lavfi:testsrc2=size=1280x720:rate=30;sine=frequency=440"
        ));
        assert!(!ok(
            "lavfi:testsrc2=size=320x180:rate=15,realtime[out0];sine[out1]"
        ));
        assert!(!ok("lavfi:movie=/etc/passwd"));
        assert!(!ok("lavfi:testsrc2;amovie=/tmp/x.wav"));
        assert!(!ok("lavfi:testsrc2,drawtext=textfile=/etc/shadow"));
        assert!(!ok("lavfi:testsrc2,psnr=stats_file=/tmp/owned"));
        let c = StreamConfig::builder("a", "lavfi:testsrc2=size=64x64;sine", "o")
            .allow_generated_sources(true)
            .build()
            .unwrap();
        assert_eq!(
            c.generated_graph().unwrap().ffmpeg_graph(),
            "testsrc2=size=64x64[out0];sine[out1]"
        );
        assert!(StreamConfig::builder("a", "in.mp4", "o")
            .local_files_under("/")
            .build()
            .unwrap()
            .generated_graph()
            .is_none());
        let odd = AbrProfile::new(vec![VariantProfile::new("a", 361, 1_000_000)]);
        assert_eq!(field_of(build(odd)), "profile.variants[0].height");
    }

    #[test]
    fn output_dirs_must_be_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"out/\xff\xfe");
        let r = StreamConfig::builder("a", "in.mp4", PathBuf::from(bad)).build();
        assert_eq!(field_of(r), "output_dir");
    }

    #[test]
    fn debug_masks_secrets() {
        let c = StreamConfig::builder("a", "rtmp://u:SECRET1@h/live/SECRET2", "o")
            .input_option("passphrase", "SECRET3")
            .input_option("headers", "Authorization: Bearer SECRET4")
            .input_option("rw_timeout", "1000000")
            .build()
            .unwrap();
        let shown = format!("{c:?} {:?}", StreamConfig::builder("b", c.source(), "o"));
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("rw_timeout") && shown.contains("1000000"));
        assert_eq!(c.source(), "rtmp://u:SECRET1@h/live/SECRET2");
    }

    #[test]
    fn rungs_by_name() {
        let p = AbrProfile::from_rungs(&["720p", "360p"]).unwrap();
        assert_eq!(p.variants.len(), 2);
        assert!(AbrProfile::from_rungs(&["720p", "999p"]).is_err());
    }
}
