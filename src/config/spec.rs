//! Configurations read from files (feature `serde`). A file is read into a plain *spec*
//! (every field optional but the stream's id, source and output directory; unknown keys
//! refused), and the spec is turned into the value by the same builder and the same
//! validation a program uses: an invalid file is refused with the builder's own error,
//! naming the field (`invalid config: profile.variants[1].height: 361 is odd ...`).
//!
//! Durations are written in their human form (`"5s"`, `"250ms"`, `"1m 30s"`, see
//! `serde_support`); bitrates in bits/s; names as `Display` writes them (`"vod"`,
//! `"cuda"`). A source is a URL (`"source": "rtmp://..."`, or `{"url": ..., "format":
//! "mpegts"}`): an application's reader cannot come from a file. The opt-ins
//! (`allow_generated_sources`, `allow_device_sources`) are not read from files either: a
//! file may come from a tenant; a program that trusts its own file reads a
//! [`StreamConfigBuilder`] and opts in before `build`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::ladder::standard_rung;
use super::{
    AbrProfile, Backoff, Container, Filler, HwDevice, HwKind, InputLoss, PlaylistMode, Reconnect,
    RecoveryPolicy, RestartPolicy, Source, StreamConfig, StreamConfigBuilder, VariantProfile,
    VideoCodec,
};
use crate::error::{Error, Result};
use crate::serde_support::human_opt;

/// A value written either as a string (its short form) or as a table of fields.
pub(crate) enum StrOrMap<T> {
    Str(String),
    Map(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOrMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrOrMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(StrOrMap::Str(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                m: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(StrOrMap::Map)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// One rung: a standard rung's name (`"720p"`) or its fields.
type RungSpec = StrOrMap<VariantSpec>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantSpec {
    name: String,
    height: u32,
    video_bitrate: u64,
    max_rate: Option<u64>,
    buf_size: Option<u64>,
    codec: Option<VideoCodec>,
    preset: Option<String>,
    max_frame_rate: Option<f64>,
    audio_bitrate: Option<u64>,
}

/// The rung the spec describes (not validated yet); `field` is its place, for the error
/// naming an unknown standard rung.
fn rung(field: &str, spec: RungSpec) -> Result<VariantProfile> {
    let v = match spec {
        StrOrMap::Str(name) => return standard_rung(field, &name),
        StrOrMap::Map(v) => v,
    };
    let mut out = VariantProfile::new(v.name, v.height, v.video_bitrate);
    out.max_rate = v.max_rate.unwrap_or(out.max_rate);
    out.buf_size = v.buf_size.unwrap_or(out.buf_size);
    out.codec = v.codec.unwrap_or(out.codec);
    out.preset = v.preset.unwrap_or(out.preset);
    out.max_frame_rate = v.max_frame_rate.or(out.max_frame_rate);
    out.audio_bitrate = v.audio_bitrate.unwrap_or(out.audio_bitrate);
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    /// Absent: the standard ladder.
    variants: Option<Vec<RungSpec>>,
    #[serde(default, deserialize_with = "human_opt")]
    segment_duration: Option<Duration>,
    live_window: Option<usize>,
    keep_taller_rungs: Option<bool>,
    #[serde(default, deserialize_with = "human_opt")]
    timestamp_jump: Option<Duration>,
    container: Option<Container>,
    dash: Option<bool>,
    #[serde(default, deserialize_with = "human_opt")]
    part_duration: Option<Duration>,
    #[serde(default, deserialize_with = "human_opt")]
    dash_target_latency: Option<Duration>,
}

impl ProfileSpec {
    /// The profile the spec describes (not validated yet).
    fn into_profile(self) -> Result<AbrProfile> {
        let mut p = match self.variants {
            None => AbrProfile::standard(),
            Some(list) => AbrProfile::new(
                list.into_iter()
                    .enumerate()
                    .map(|(i, r)| rung(&format!("profile.variants[{i}]"), r))
                    .collect::<Result<_>>()?,
            ),
        };
        p.segment_duration = self.segment_duration.unwrap_or(p.segment_duration);
        p.live_window = self.live_window.unwrap_or(p.live_window);
        p.keep_taller_rungs = self.keep_taller_rungs.unwrap_or(p.keep_taller_rungs);
        p.timestamp_jump = self.timestamp_jump.unwrap_or(p.timestamp_jump);
        p.container = self.container.unwrap_or(p.container);
        p.dash = self.dash.unwrap_or(p.dash);
        p.part_duration = self.part_duration.or(p.part_duration);
        p.dash_target_latency = self.dash_target_latency.or(p.dash_target_latency);
        Ok(p)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffSpec {
    #[serde(default, deserialize_with = "human_opt")]
    initial: Option<Duration>,
    #[serde(default, deserialize_with = "human_opt")]
    max: Option<Duration>,
    jitter: Option<f64>,
}

impl BackoffSpec {
    fn over(self, mut base: Backoff) -> Backoff {
        base.initial = self.initial.unwrap_or(base.initial);
        base.max = self.max.unwrap_or(base.max);
        base.jitter = self.jitter.unwrap_or(base.jitter);
        base
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverySpec {
    reconnect: Option<Reconnect>,
    max_attempts: Option<u32>,
    backoff: Option<BackoffSpec>,
    #[serde(default, deserialize_with = "human_opt")]
    max_outage: Option<Duration>,
    hardware_fallback: Option<bool>,
}

impl RecoverySpec {
    /// The policy: the defaults, with what the spec says (not validated yet).
    fn into_policy(self) -> RecoveryPolicy {
        let mut p = RecoveryPolicy::default();
        p.reconnect = self.reconnect.unwrap_or(p.reconnect);
        p.max_attempts = self.max_attempts.unwrap_or(p.max_attempts);
        if let Some(b) = self.backoff {
            p.backoff = b.over(p.backoff);
        }
        p.max_outage = self.max_outage.unwrap_or(p.max_outage);
        p.hardware_fallback = self.hardware_fallback.unwrap_or(p.hardware_fallback);
        p
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartSpec {
    enabled: Option<bool>,
    max_restarts: Option<u32>,
    backoff: Option<BackoffSpec>,
}

impl RestartSpec {
    /// The policy: the defaults with what the spec says; `enabled` defaults to true (a
    /// restart table is asking for restarts). Not validated yet.
    fn into_policy(self) -> RestartPolicy {
        let mut p = RestartPolicy::default();
        p.enabled = self.enabled.unwrap_or(true);
        p.max_restarts = self.max_restarts.unwrap_or(p.max_restarts);
        if let Some(b) = self.backoff {
            p.backoff = b.over(p.backoff);
        }
        p
    }
}

/// The input-loss filler's fields (`"input_loss": {"after": "1s", "repeat_last": "2s",
/// "then": "black"}`); a slate comes from code only (it would read a local file).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FillSpec {
    #[serde(default, deserialize_with = "human_opt")]
    after: Option<Duration>,
    #[serde(default, deserialize_with = "human_opt")]
    repeat_last: Option<Duration>,
    then: Option<String>,
}

/// `"stop"`, `"fill"` (the default filler) or the filler's fields.
fn input_loss(spec: StrOrMap<FillSpec>) -> std::result::Result<InputLoss, String> {
    let f = match spec {
        StrOrMap::Str(s) if s == "stop" => return Ok(InputLoss::Stop),
        StrOrMap::Str(s) if s == "fill" => return Ok(InputLoss::default()),
        StrOrMap::Str(s) => {
            let why = format!("{s:?} is neither \"stop\" nor \"fill\"");
            return Err(Error::config("input_loss", why).to_string());
        }
        StrOrMap::Map(f) => f,
    };
    let mut filler = Filler::default();
    filler.after = f.after.unwrap_or(filler.after);
    filler.repeat_last = f.repeat_last.unwrap_or(filler.repeat_last);
    match f.then.as_deref() {
        None | Some("black") => {}
        Some(other) => {
            let why = format!("{other:?}: a file may only say \"black\" (a slate is set in code)");
            return Err(Error::config("input_loss.then", why).to_string());
        }
    }
    Ok(InputLoss::Fill(filler))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HwFields {
    kind: HwKind,
    device: String,
}

fn hw_device(spec: StrOrMap<HwFields>) -> std::result::Result<HwDevice, String> {
    match spec {
        StrOrMap::Str(text) => text
            .parse()
            .map_err(|e: crate::error::ParseError| e.to_string()),
        StrOrMap::Map(f) => Ok(HwDevice::new(f.kind, f.device)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    url: String,
    format: Option<String>,
    /// Backups of a live source: URLs, or `{"url": ..., "format": ...}`.
    #[serde(default)]
    backups: Vec<StrOrMap<BackupFields>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupFields {
    url: String,
    format: Option<String>,
}

/// A URL source with its forced format, if any.
fn url_source(url: String, format: Option<String>) -> Source {
    match format {
        Some(name) => Source::url(url).format(name),
        None => Source::url(url),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HintSpec {
    width: u32,
    height: u32,
    frame_rate: f64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    id: String,
    source: StrOrMap<SourceFields>,
    output_dir: PathBuf,
    profile: Option<ProfileSpec>,
    hw_device: Option<StrOrMap<HwFields>>,
    #[serde(default)]
    input_options: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "human_opt")]
    io_timeout: Option<Duration>,
    playlist_mode: Option<PlaylistMode>,
    recovery: Option<RecoverySpec>,
    input_loss: Option<StrOrMap<FillSpec>>,
    #[serde(default, deserialize_with = "human_opt")]
    switch_back_after: Option<Duration>,
    source_hint: Option<HintSpec>,
    sync_output: Option<bool>,
}

impl ConfigSpec {
    /// The builder the spec describes; `build` validates it.
    fn into_builder(self) -> std::result::Result<StreamConfigBuilder, String> {
        let source = match self.source {
            StrOrMap::Str(url) => Source::url(url),
            StrOrMap::Map(SourceFields {
                url,
                format,
                backups,
            }) => backups.into_iter().fold(url_source(url, format), |s, b| {
                s.backup(match b {
                    StrOrMap::Str(url) => Source::url(url),
                    StrOrMap::Map(BackupFields { url, format }) => url_source(url, format),
                })
            }),
        };
        let mut b = StreamConfig::builder(self.id, source, self.output_dir);
        if let Some(p) = self.profile {
            b = b.profile(p.into_profile().map_err(|e| e.to_string())?);
        }
        if let Some(hw) = self.hw_device {
            let hw = hw_device(hw)?;
            b = b.hw_device(hw.kind, hw.device);
        }
        for (k, v) in self.input_options {
            b = b.input_option(k, v);
        }
        if let Some(sync) = self.sync_output {
            b = b.sync_output(sync);
        }
        if let Some(t) = self.io_timeout {
            b = b.io_timeout(t);
        }
        if let Some(m) = self.playlist_mode {
            b = b.playlist_mode(m);
        }
        if let Some(r) = self.recovery {
            b = b.recovery(r.into_policy());
        }
        if let Some(l) = self.input_loss {
            b = b.input_loss(input_loss(l)?);
        }
        if let Some(d) = self.switch_back_after {
            b = b.switch_back_after(d);
        }
        if let Some(h) = self.source_hint {
            b = b.source_hint(h.width, h.height, h.frame_rate);
        }
        Ok(b)
    }
}

/// A serde error carrying the builder's refusal (`invalid config: <field>: <reason>`).
fn refused<E: de::Error>(e: Error) -> E {
    E::custom(e)
}

/// An unvalidated configuration from a file (feature `serde`): the same fields as
/// [`StreamConfig`]'s, which [`build`](StreamConfigBuilder::build) validates. Read this
/// rather than a `StreamConfig` to get the builder's [`Error`] itself, or to opt in to
/// generated or device sources for a file the program trusts (files cannot opt in).
impl<'de> Deserialize<'de> for StreamConfigBuilder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        ConfigSpec::deserialize(d)?
            .into_builder()
            .map_err(de::Error::custom)
    }
}

/// A validated configuration from a file (feature `serde`): read as a
/// [`StreamConfigBuilder`] and built, so a file is refused exactly as the builder refuses,
/// naming the field.
impl<'de> Deserialize<'de> for StreamConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        StreamConfigBuilder::deserialize(d)?
            .build()
            .map_err(refused)
    }
}

/// A validated ladder (feature `serde`): `variants` (standard names or rung tables; the
/// standard ladder when absent) and the segmenting fields, validated as
/// [`StreamConfigBuilder::build`] does (fields named `profile.*`).
impl<'de> Deserialize<'de> for AbrProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let p = ProfileSpec::deserialize(d)?
            .into_profile()
            .map_err(refused)?;
        p.validate().map_err(refused)?;
        Ok(p)
    }
}

/// A validated rung (feature `serde`): a standard rung's name or its fields (`name`,
/// `height`, `video_bitrate` required), refusals naming `variant.*`.
impl<'de> Deserialize<'de> for VariantProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = rung("variant", RungSpec::deserialize(d)?).map_err(refused)?;
        v.validate("variant").map_err(refused)?;
        Ok(v)
    }
}

/// A validated recovery policy (feature `serde`): the defaults with the fields given,
/// refusals naming `recovery.*`.
impl<'de> Deserialize<'de> for RecoveryPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let p = RecoverySpec::deserialize(d)?.into_policy();
        p.validate().map_err(refused)?;
        Ok(p)
    }
}

/// A validated restart policy (feature `serde`): `enabled` (default true), `max_restarts`,
/// `backoff`; refusals naming `restart.*`.
impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let p = RestartSpec::deserialize(d)?.into_policy();
        p.validate().map_err(refused)?;
        Ok(p)
    }
}

/// A validated device (feature `serde`): `"cuda:0"` or `{"kind": "cuda", "device": "0"}`,
/// refusals naming `hw_device.device`.
impl<'de> Deserialize<'de> for HwDevice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let hw = hw_device(StrOrMap::deserialize(d)?).map_err(de::Error::custom)?;
        hw.validate().map_err(refused)?;
        Ok(hw)
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
