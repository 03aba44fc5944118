//! The file a muxer is writing, in a [`SegmentSink`]: opened with the sink, written by the
//! muxer through a custom output, finished (made visible) or discarded.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::OutputError;
use crate::ffi::OutputContext;
use crate::sink::{SegmentSink, SinkFile};

/// The sink's file and the first error it gave, shared between the muxer's writer and
/// the [`MuxerFile`] that finishes it (both on the rendition's thread: never contended).
#[derive(Default)]
struct Shared {
    file: Option<Box<dyn SinkFile>>,
    error: Option<io::Error>,
}

/// What the muxer writes into.
struct SharedWriter(Arc<Mutex<Shared>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock();
        let Some(file) = g.file.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        match file.write(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                g.error.get_or_insert(e);
                Err(again)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut g = self.0.lock();
        match g.file.as_mut().map(|f| f.flush()) {
            Some(Err(e)) => {
                let again = io::Error::new(e.kind(), e.to_string());
                g.error.get_or_insert(e);
                Err(again)
            }
            _ => Ok(()),
        }
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

    /// Detaches the muxer and drops the file unfinished (the sink discards it).
    pub fn discard(self, muxer: &mut OutputContext) {
        let _ = muxer.close_writer();
        drop(self.shared.lock().file.take());
    }
}
