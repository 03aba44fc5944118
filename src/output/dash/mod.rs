//! The DASH manifest over the fMP4 segments: [`model`] is the manifest as data and its
//! rendering (no I/O); [`parse`] reads an earlier run's live manifest back; [`writer`]
//! keeps one stream's manifest up to date as segments land.

mod model;
mod parse;
mod writer;

pub(crate) use model::Media;
pub(crate) use writer::{earlier_runs, DashWriter, OpenedSegment};
