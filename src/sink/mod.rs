//! Where a stream's files go. The pipeline writes segments, init segments, playlists and
//! manifests through a [`SegmentSink`]: the local filesystem ([`FsSink`]) by default, or
//! any other store an application implements (object storage, an HTTP origin). Every path
//! a sink sees is relative to the stream's output root and `/`-separated
//! (`720p/seg_00003.m4s`, `master.m3u8`); the sink decides what it is relative to.
//!
//! The pipeline's promises to a sink: a segment is finished ([`SinkFile::finish`]) before
//! any playlist or manifest that lists it is replaced; a playlist is only ever replaced
//! whole ([`SegmentSink::replace`]); a segment is deleted only after the playlists stopped
//! listing it (and the time a client may still fetch it has passed). All calls for one
//! variant come from that variant's thread, in order; different variants call
//! concurrently, so a sink is `Send + Sync`.

mod fs;
mod http;
mod http_url;

pub use fs::FsSink;
pub use http::{content_type, HttpError, HttpSink};

use std::fmt;
use std::io;

/// A store for a stream's output files. See the [module docs](self) for the order of calls.
pub trait SegmentSink: Send + Sync + fmt::Debug {
    /// Starts a new file at `path` (relative, `/`-separated). The file becomes visible at
    /// [`SinkFile::finish`]; dropping it unfinished discards it.
    ///
    /// # Errors
    /// The store could not start the file.
    fn create(&self, path: &str) -> io::Result<Box<dyn SinkFile>>;

    /// Replaces the file at `path` with `contents` atomically: a reader sees the old file or
    /// the new one, never a part.
    ///
    /// # Errors
    /// The store could not write it (the old file, if any, stays).
    fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()>;

    /// Deletes the file at `path`; a missing file is not an error.
    ///
    /// # Errors
    /// The store could not delete it.
    fn delete(&self, path: &str) -> io::Result<()>;

    /// Where `path` is, for messages: a local path, or a URL with its secrets redacted.
    fn location(&self, path: &str) -> String;
}

/// A file being written to a [`SegmentSink`].
pub trait SinkFile: io::Write + Send {
    /// The file is complete: make it visible (close it, or upload it). Returns its size.
    ///
    /// # Errors
    /// The store could not complete it; nothing is visible then.
    fn finish(self: Box<Self>) -> io::Result<u64>;
}
