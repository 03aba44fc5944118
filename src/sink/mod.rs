//! Where a stream's files go. The pipeline writes segments, init segments, playlists and
//! manifests through a [`SegmentSink`]: the local filesystem ([`FsSink`]) by default, or
//! any other store an application implements (object storage, an HTTP origin). Every path
//! a sink sees is relative to the stream's output root and `/`-separated
//! (`720p/seg_00003.m4s`, `master.m3u8`); the sink decides what it is relative to.
//!
//! Beyond writing, a sink may read files back, list a directory and say who it is: a
//! live stream restarted into a sink that can [`read`](SegmentSink::read) carries its
//! playlists on (numbering continues after one discontinuity); one that cannot starts
//! afresh. These methods have default implementations ("cannot"), so an application's
//! sink needs only the four writing methods.
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

    /// [`replace`](Self::replace) for a file rewritten several times a second (a
    /// Low-Latency HLS playlist after each part): atomic as `replace`, but a store may skip
    /// making each version durable (the next one follows within a part duration, and the
    /// playlist written when a segment completes is replaced durably). The default is
    /// `replace`.
    ///
    /// # Errors
    /// As [`replace`](Self::replace).
    fn replace_often(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        self.replace(path, contents)
    }

    /// Deletes the file at `path`; a missing file is not an error.
    ///
    /// # Errors
    /// The store could not delete it.
    fn delete(&self, path: &str) -> io::Result<()>;

    /// Where `path` is, for messages: a local path, or a URL with its secrets redacted.
    fn location(&self, path: &str) -> String;

    /// Reads back the whole file at `path`: a missing file is an error of kind
    /// [`NotFound`](io::ErrorKind::NotFound). Used when a stream starts, to carry an
    /// earlier live run's playlist on and to clean up after an earlier run.
    ///
    /// The default cannot read ([`Unsupported`](io::ErrorKind::Unsupported)): every run
    /// into this sink then starts its playlists afresh, at sequence 0.
    ///
    /// # Errors
    /// The file is missing, or the store could not read it.
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        Err(cannot("read files back", path))
    }

    /// The names of the files directly inside the directory `dir` (`""`: the root). Lets a
    /// restart also remove files an earlier run wrote but never listed (a crash between a
    /// segment and its playlist); without it (the default,
    /// [`Unsupported`](io::ErrorKind::Unsupported)) such files are left, and the next file
    /// numbers continue past every listed one. A missing directory lists nothing.
    ///
    /// # Errors
    /// The store could not list it.
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        Err(cannot("list a directory", dir))
    }

    /// Makes sure the directory `dir` (`""`: the root) can hold files, where the store has
    /// directories; called once per rendition before its first file, so an unwritable
    /// output fails the start rather than the first segment. The default does nothing.
    ///
    /// # Errors
    /// The directory cannot be made.
    fn create_dir(&self, dir: &str) -> io::Result<()> {
        let _ = dir;
        Ok(())
    }

    /// Who this sink writes to, in a form that is safe to show (no secrets): two sinks with
    /// the same identity write the same files, so a [`Manager`](crate::Manager) runs at most
    /// one stream into it at a time. `None` (the default): no such check.
    fn identity(&self) -> Option<String> {
        None
    }
}

/// The error of a sink that cannot do `what` (the trait's defaults).
fn cannot(what: &str, path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this sink cannot {what} ({path:?})"),
    )
}

/// A file being written to a [`SegmentSink`].
pub trait SinkFile: io::Write + Send {
    /// The file is complete: make it visible (close it, or upload it). Returns its size.
    ///
    /// # Errors
    /// The store could not complete it; nothing is visible then.
    fn finish(self: Box<Self>) -> io::Result<u64>;
}
