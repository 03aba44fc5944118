//! Errors as JSON (feature `serde`): what a program reading it branches on (`kind`), the
//! text a person reads (`message`, the whole chain: there is no `source()` in JSON), and
//! the figures that come with it. Written only: errors are not read back.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Error, Refusal};

/// `{"kind": "SourceIo", "message": "...", "code": -111}`; `code` is `null` when the error
/// has none. An `InvalidConfig` also has its `field`, a `Refused` its `refusal` (a
/// [`Refusal`] object). The stream is not in the object: the object that carries the error
/// names it (a report's `id`, a state event's `stream`).
impl Serialize for Error {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("kind", &self.kind())?;
        map.serialize_entry("message", &self.full_message())?;
        map.serialize_entry("code", &self.code())?;
        match self {
            Error::InvalidConfig { field, .. } => map.serialize_entry("field", field)?,
            Error::Refused { reason } => map.serialize_entry("refusal", reason)?,
            _ => {}
        }
        map.end()
    }
}

/// `{"kind": "max_concurrent", "message": "max_concurrent (2) reached", "limit": 2}`: the
/// kind in snake case, the message, and the variant's own figures (`limit`, `ahead`,
/// `stream` and `speed`, or `shortage` as a [`Shortage`](super::Shortage) object
/// `{"resource": "compute", "needed": 90.0, "free": 30.0}`).
impl Serialize for Refusal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let kind = match self {
            Refusal::DuplicateId => "duplicate_id",
            Refusal::OutputInUse => "output_in_use",
            Refusal::OutputBusy => "output_busy",
            Refusal::MaxConcurrent { .. } => "max_concurrent",
            Refusal::Capacity(_) => "capacity",
            Refusal::BehindQueue { .. } => "behind_queue",
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::Overloaded { .. } => "overloaded",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::LocalFilesOutside { .. } => "local_files_outside",
        };
        map.serialize_entry("kind", kind)?;
        map.serialize_entry("message", &self.to_string())?;
        match self {
            Refusal::MaxConcurrent { limit } | Refusal::QueueFull { limit } => {
                map.serialize_entry("limit", limit)?;
            }
            Refusal::BehindQueue { ahead } => map.serialize_entry("ahead", ahead)?,
            Refusal::Overloaded { stream, speed } => {
                map.serialize_entry("stream", stream)?;
                map.serialize_entry("speed", speed)?;
            }
            Refusal::Capacity(shortage) => map.serialize_entry("shortage", shortage)?,
            Refusal::LocalFilesOutside { dir } => map.serialize_entry("dir", dir)?,
            Refusal::DuplicateId
            | Refusal::OutputInUse
            | Refusal::OutputBusy
            | Refusal::ShuttingDown => {}
        }
        map.end()
    }
}
