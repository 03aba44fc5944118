//! A job: an id, a kind (live or on-demand) and the serde form of a
//! [`StreamConfig`] (tenant input: the node applies its
//! operator's trust rules when it builds it), and what the fleet records of it.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use streamvisor::{StreamConfig, StreamConfigBuilder};

use crate::error::JobRefusal;

/// What the fleet does when a job's node goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A live stream: one owner at a time; another node takes it over and continues its
    /// playlist (numbering continues, one DISCONTINUITY).
    Live,
    /// An on-demand transcode: run again from the start into the same output.
    Vod,
}

impl JobKind {
    /// The kind's name in Redis (`live`, `vod`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Live => "live",
            JobKind::Vod => "vod",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "live" => Some(JobKind::Live),
            "vod" => Some(JobKind::Vod),
            _ => None,
        }
    }

    /// The kind a source is by nature: network protocols that only carry live media
    /// (rtmp(s), srt, udp, rtp, rtsp, tcp, rist: as the core crate's live sources) are live;
    /// files, `lavfi:` and http(s) on-demand
    /// (an http source's nature is only known when it opens: say `--live` for one).
    pub fn of_source(source: &str) -> Self {
        let scheme = source.split_once("://").map_or("", |(s, _)| s);
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" | "rtmps" | "srt" | "udp" | "rtp" | "rtsp" | "tcp" | "rist" => JobKind::Live,
            _ => JobKind::Vod,
        }
    }
}

/// A job's record, as `status` shows it (one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// The job's id (its stream's id).
    pub id: String,
    /// `queued`, `taken`, a stream state while it runs (`Starting`, `Running`, `Error`,
    /// `Stopping`), or a final one: `completed`, `cancelled`, `refused`, `failed` (in the
    /// dead-letter stream).
    pub state: String,
    /// `live` or `vod`.
    pub kind: String,
    /// The node that runs it or ran it last (empty before any).
    pub node: String,
    /// How many times a node took it (its deliveries).
    pub attempts: u64,
    /// How many of those failed.
    pub failures: u64,
    /// The fencing epoch of its current (or last) owner.
    pub epoch: u64,
    /// How many times it was recorded completed: 0, or 1 (exactly once).
    pub completions: u64,
    /// The error of each failed attempt (node, error).
    pub errors: serde_json::Value,
    /// The refusal, for a refused job.
    pub error: Option<serde_json::Value>,
    /// The report summary of its final run (state, frames, media time, ...).
    pub report: Option<serde_json::Value>,
}

impl JobStatus {
    /// The status from a job's hash; `None` for an empty one (no such job).
    pub(crate) fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        let id = h.get("id")?.clone();
        let text = |k: &str| h.get(k).cloned().unwrap_or_default();
        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let json = |k: &str| h.get(k).and_then(|v| serde_json::from_str(v).ok());
        Some(Self {
            id,
            state: text("state"),
            kind: text("kind"),
            node: text("node"),
            attempts: num("attempts"),
            failures: num("failures"),
            epoch: num("epoch"),
            completions: num("completed"),
            errors: json("errors").unwrap_or(serde_json::Value::Array(Vec::new())),
            error: json("error"),
            report: json("report"),
        })
    }

    /// True for a state a job never leaves.
    pub fn is_final(&self) -> bool {
        is_final(&self.state)
    }
}

/// True for a state a job never leaves.
pub fn is_final(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "cancelled" | "refused")
}

/// True when `id` can name a job (a stream id: `[A-Za-z0-9_-]{1,64}`).
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a node's operator decides for every job it runs (never a job's config).
#[derive(Debug, Clone, Default)]
pub struct TrustRules {
    /// Local files are accepted only inside this directory (`--local-files-under`).
    pub local_files_under: Option<PathBuf>,
    /// Generated (`lavfi:`) sources are accepted (test media of the operator's own).
    pub allow_generated: bool,
}

/// Builds a job's config on a node: the job's id and the node's output directory replace
/// whatever the config says, then the operator's rules apply and the builder validates.
/// A config that is not a JSON object, has unknown fields, or breaks a rule is a typed
/// refusal, never a panic.
pub fn build_config(
    id: &str,
    raw: &str,
    output_dir: PathBuf,
    rules: &TrustRules,
) -> Result<StreamConfigBuilder, JobRefusal> {
    if !valid_id(id) {
        return Err(JobRefusal::BadId(format!(
            "{id:?} must match [A-Za-z0-9_-]{{1,64}}"
        )));
    }
    let mut value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| JobRefusal::Malformed(format!("config: {e}")))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(JobRefusal::Malformed("config: not a JSON object".into()));
    };
    fields.insert("id".into(), id.into());
    let out = output_dir.to_string_lossy().into_owned();
    fields.insert("output_dir".into(), out.into());
    let mut builder = StreamConfigBuilder::deserialize(value)
        .map_err(|e| JobRefusal::InvalidConfig(e.to_string()))?;
    if let Some(dir) = &rules.local_files_under {
        builder = builder.local_files_under(dir);
    }
    builder = builder.allow_generated_sources(rules.allow_generated);
    // Validated here, so a refusal is recorded on the job rather than failing its stream.
    builder
        .clone()
        .build()
        .map_err(|e| JobRefusal::InvalidConfig(e.to_string()))?;
    Ok(builder)
}

/// Validates a built config once more with the node's sink set: the same rules.
pub(crate) fn with_sink(
    builder: StreamConfigBuilder,
    sink: std::sync::Arc<dyn streamvisor::sink::SegmentSink>,
) -> Result<StreamConfig, JobRefusal> {
    builder
        .sink(sink)
        .build()
        .map_err(|e| JobRefusal::InvalidConfig(e.to_string()))
}
