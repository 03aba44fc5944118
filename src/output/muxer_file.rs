//! The file a muxer is writing, in a [`SegmentSink`]: opened with the sink, written by the
//! muxer through a custom output, finished (made visible) or discarded.

use std::io::{self, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::OutputError;
use crate::ffi::OutputContext;
use crate::panic::panic_message;
use crate::sink::{SegmentSink, SinkFile};

/// The sink's file and the first error it gave, shared between the muxer's writer and
/// the [`MuxerFile`] that finishes it (both on the rendition's thread: never contended).
#[derive(Default)]
struct Shared {
    file: Option<Box<dyn SinkFile>>,
    /// A Low-Latency HLS part being written: the same bytes go into it too.
    part: Option<Box<dyn SinkFile>>,
    error: Option<io::Error>,
}

/// What the muxer writes into.
struct SharedWriter(Arc<Mutex<Shared>>);

impl SharedWriter {
    /// Runs `op` on the sink's file, or with `part` on the part being written (an
    /// application's code: its panic is caught here and becomes an error that says so,
    /// with its message); the first error is kept for [`MuxerFile::finish`], a copy of it
    /// returned to the muxer. `Interrupted` is not kept: the muxer's writer tries it again.
    /// A part that is not open takes nothing.
    fn on_file<T: Default>(
        &self,
        part: bool,
        op: impl FnOnce(&mut dyn SinkFile) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut g = self.0.lock();
        let file = if part {
            g.part.as_mut()
        } else {
            g.file.as_mut()
        };
        let Some(file) = file else {
            return if part {
                Ok(T::default())
            } else {
                Err(io::ErrorKind::BrokenPipe.into())
            };
        };
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| op(&mut **file))).unwrap_or_else(|p| {
                let why = panic_message(&*p);
                Err(io::Error::other(format!("the sink's file panicked: {why}")))
            });
        match result {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let again = io::Error::new(e.kind(), e.to_string());
                g.error.get_or_insert(e);
                Err(again)
            }
            other => other,
        }
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.on_file(false, |f| f.write(buf))?;
        // A Low-Latency HLS part being written gets the same bytes.
        self.on_file(true, |p| p.write_all(&buf[..n]))?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing to flush once the file is finished or discarded.
        if self.0.lock().file.is_none() {
            return Ok(());
        }
        self.on_file(false, |f| f.flush())
    }
}

/// A file open in a sink with a muxer writing into it.
pub(crate) struct MuxerFile {
    shared: Arc<Mutex<Shared>>,
    /// Where it is, for messages.
    pub location: PathBuf,
}

impl MuxerFile {
    /// Creates `rel` in the sink and makes it the muxer's output.
    pub fn open(
        sink: &dyn SegmentSink,
        muxer: &mut OutputContext,
        rel: String,
    ) -> Result<Self, OutputError> {
        let location = PathBuf::from(sink.location(&rel));
        let file = sink
            .create(&rel)
            .map_err(|e| OutputError::Io(location.clone(), e))?;
        let shared = Arc::new(Mutex::new(Shared {
            file: Some(file),
            part: None,
            error: None,
        }));
        muxer
            .open_writer(Box::new(SharedWriter(shared.clone())))
            .map_err(|e| OutputError::Mux(location.clone(), e))?;
        Ok(Self { shared, location })
    }

    /// Flushes what the muxer buffered, detaches it and finishes the file in the sink (an
    /// upload happens here); returns its size. The sink's own error wins over FFmpeg's.
    pub fn finish(self, muxer: &mut OutputContext) -> Result<u64, OutputError> {
        let closed = muxer.close_writer();
        let (file, error) = {
            let mut g = self.shared.lock();
            (g.file.take(), g.error.take())
        };
        if let Some(e) = error {
            return Err(OutputError::Io(self.location, e));
        }
        closed.map_err(|e| OutputError::Mux(self.location.clone(), e))?;
        let file = file.ok_or_else(|| {
            OutputError::Io(self.location.clone(), io::ErrorKind::BrokenPipe.into())
        })?;
        file.finish().map_err(|e| OutputError::Io(self.location, e))
    }

    /// The sink's error that made a muxer call fail, if it was the sink's (taken: the
    /// caller reports it instead of FFmpeg's bare `EIO`).
    pub fn take_error(&self) -> Option<io::Error> {
        self.shared.lock().error.take()
    }

    /// Detaches the muxer and drops the file unfinished (the sink discards it), and a part
    /// being written with it.
    pub fn discard(self, muxer: &mut OutputContext) {
        let _ = muxer.close_writer();
        let mut g = self.shared.lock();
        drop(g.file.take());
        drop(g.part.take());
    }

    /// Creates `rel` in the sink as a Low-Latency HLS part: what the muxer writes from now
    /// on goes into it as well, until [`Self::finish_part`].
    pub fn start_part(&self, sink: &dyn SegmentSink, rel: &str) -> Result<(), OutputError> {
        let part = sink
            .create(rel)
            .map_err(|e| OutputError::Io(PathBuf::from(sink.location(rel)), e))?;
        self.shared.lock().part = Some(part);
        Ok(())
    }

    /// Finishes the part being written (the caller flushed the muxer's chunk into it);
    /// returns its size. The sink's error (on the part or the segment) wins.
    pub fn finish_part(&self, location: PathBuf) -> Result<u64, OutputError> {
        let (part, error) = {
            let mut g = self.shared.lock();
            (g.part.take(), g.error.take())
        };
        if let Some(e) = error {
            return Err(OutputError::Io(location, e));
        }
        match part {
            Some(p) => p.finish().map_err(|e| OutputError::Io(location, e)),
            None => Ok(0),
        }
    }
}
