//! The sink a node writes a job's output through: the node's own sink (a directory, or an
//! HTTP origin that gets the fencing token in an `X-Fencing-Token` header on every request)
//! behind a check of the job's lease before every write. A node that lost its lease (cut off
//! from Redis, paused, or told another epoch owns the job) fails its writes instead of
//! clobbering the new owner's files.
//!
//! What is left open: a write already past the check when the lease lapses (one file, at
//! most one segment duration late), and a process paused between the check and the write.
//! An origin that checks the token closes that: it refuses a write whose token is lower
//! than the highest it has seen for the job. A plain WebDAV origin cannot.

use std::io::{self, Write};
use std::sync::Arc;

use streamvisor::sink::{SegmentSink, SinkFile};

use crate::lease::LeaseClock;

/// The header that carries the writer's fencing token to an HTTP origin.
pub const FENCING_HEADER: &str = "X-Fencing-Token";

/// A sink that refuses writes once the job's lease is no longer the node's.
#[derive(Debug)]
pub struct FencedSink {
    inner: Arc<dyn SegmentSink>,
    lease: Arc<LeaseClock>,
}

impl FencedSink {
    /// `inner` guarded by `lease`.
    pub fn new(inner: Arc<dyn SegmentSink>, lease: Arc<LeaseClock>) -> Self {
        Self { inner, lease }
    }

    fn check(&self, path: &str) -> io::Result<()> {
        if self.lease.is_valid() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("lease lost: not writing {}", self.inner.location(path)),
            ))
        }
    }
}

impl SegmentSink for FencedSink {
    fn create(&self, path: &str) -> io::Result<Box<dyn SinkFile>> {
        self.check(path)?;
        let file = self.inner.create(path)?;
        Ok(Box::new(FencedFile {
            inner: file,
            lease: self.lease.clone(),
            path: self.inner.location(path),
        }))
    }

    fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        self.check(path)?;
        self.inner.replace(path, contents)
    }

    fn replace_often(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        self.check(path)?;
        self.inner.replace_often(path, contents)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        self.check(path)?;
        self.inner.delete(path)
    }

    fn location(&self, path: &str) -> String {
        self.inner.location(path)
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        self.check(dir)?;
        self.inner.create_dir(dir)
    }

    fn identity(&self) -> Option<String> {
        self.inner.identity()
    }
}

/// A file of a fenced sink: checked again when it is finished (made visible).
struct FencedFile {
    inner: Box<dyn SinkFile>,
    lease: Arc<LeaseClock>,
    path: String,
}

impl Write for FencedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SinkFile for FencedFile {
    fn finish(self: Box<Self>) -> io::Result<u64> {
        if !self.lease.is_valid() {
            let why = format!("lease lost: not finishing {}", self.path);
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        }
        self.inner.finish()
    }
}
