//! What can go wrong in the fleet: talking to Redis, a job the fleet refuses, a job that is
//! not there.

use std::fmt;

/// A fleet error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A job was refused before it ran (malformed, untrusted, or a duplicate id).
    #[error("job {id}: {refusal}")]
    Refused {
        /// The job's id.
        id: String,
        /// Why.
        refusal: JobRefusal,
    },
    /// No job with this id.
    #[error("no job {0:?}")]
    UnknownJob(String),
    /// A node could not be set up (its output, its signal handler).
    #[error("node: {0}")]
    Node(String),
}

/// Why a job is refused: recorded on the job (its `error` field) by the node that read it,
/// or returned to the client that submits it. Never retried: another node would refuse it
/// the same way (a fleet's nodes share their operator rules).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "reason")]
#[non_exhaustive]
pub enum JobRefusal {
    /// The job's id is not a valid stream id (`[A-Za-z0-9_-]{1,64}`).
    BadId(String),
    /// The job record is not what a job looks like (no config, not JSON, unknown kind).
    Malformed(String),
    /// The config is invalid or breaks a trust rule (a local file without the operator's
    /// `--local-files-under`, a generated source the node does not allow, ...): the
    /// config builder's own error, naming the field.
    InvalidConfig(String),
    /// A job with this id exists already.
    Duplicate,
}

impl fmt::Display for JobRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobRefusal::BadId(why) => write!(f, "bad id: {why}"),
            JobRefusal::Malformed(why) => write!(f, "malformed job: {why}"),
            JobRefusal::InvalidConfig(why) => write!(f, "refused config: {why}"),
            JobRefusal::Duplicate => f.write_str("a job with this id exists already"),
        }
    }
}

/// A fleet result.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;
