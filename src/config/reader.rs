//! An application's reader as a source: one-shot (the first open takes it) or made anew by
//! a factory at every open. The config only holds it; the pipeline reads it.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use parking_lot::Mutex;

/// `Read + Seek + Send`, as one trait object.
pub(crate) trait ReadSeek: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadSeek for T {}

/// An application's reader, ready to be read.
pub(crate) enum AppReader {
    /// Read front to back only.
    Stream(Box<dyn Read + Send>),
    /// Seekable (file-like).
    File(Box<dyn ReadSeek>),
}

impl AppReader {
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            AppReader::Stream(r) => r.read(buf),
            AppReader::File(r) => r.read(buf),
        }
    }

    /// Seeks a seekable reader; an error for the others.
    pub(crate) fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            AppReader::Stream(_) => Err(io::ErrorKind::Unsupported.into()),
            AppReader::File(r) => r.seek(to),
        }
    }

    /// The length of a seekable reader, its position left as it was.
    pub(crate) fn size(&mut self) -> io::Result<u64> {
        let here = self.seek(SeekFrom::Current(0))?;
        let end = self.seek(SeekFrom::End(0))?;
        self.seek(SeekFrom::Start(here))?;
        Ok(end)
    }
}

/// Makes a new reader for each open.
type Factory = dyn Fn() -> io::Result<AppReader> + Send + Sync;

enum Supply {
    /// The reader; `None` once an open took it.
    Once(Mutex<Option<AppReader>>),
    Factory(Box<Factory>),
}

/// A reader source as the config holds it: cheap to clone (clones share the supply, so a
/// one-shot reader is read by one run only, whichever config clone starts it).
#[derive(Clone)]
pub(crate) struct ReaderSource {
    supply: Arc<Supply>,
    seekable: bool,
}

/// What an open of a reader source gets.
pub(crate) enum Opening {
    /// The one-shot reader, taken.
    Ready(AppReader),
    /// A factory source: the reader is made by [`ReaderSource::make`] (on the thread that
    /// will read it, so that a factory that blocks is bounded like a read).
    Make(ReaderSource),
}

impl ReaderSource {
    pub(crate) fn once(reader: AppReader) -> Self {
        let seekable = matches!(reader, AppReader::File(_));
        Self {
            supply: Arc::new(Supply::Once(Mutex::new(Some(reader)))),
            seekable,
        }
    }

    pub(crate) fn factory(make: Box<Factory>) -> Self {
        Self {
            supply: Arc::new(Supply::Factory(make)),
            seekable: false,
        }
    }

    /// True for a reader that can be read once only.
    pub(crate) fn is_one_shot(&self) -> bool {
        matches!(*self.supply, Supply::Once(_))
    }

    /// True when FFmpeg may seek the reader.
    pub(crate) fn is_seekable(&self) -> bool {
        self.seekable
    }

    /// Takes the one-shot reader, or hands the factory on; `None` when the one-shot reader
    /// was already taken by an earlier open.
    pub(crate) fn open(&self) -> Option<Opening> {
        match &*self.supply {
            Supply::Once(slot) => slot.lock().take().map(Opening::Ready),
            Supply::Factory(_) => Some(Opening::Make(self.clone())),
        }
    }

    /// Makes a reader with the factory (an error for a one-shot source).
    pub(crate) fn make(&self) -> io::Result<AppReader> {
        match &*self.supply {
            Supply::Factory(make) => make(),
            Supply::Once(_) => Err(io::Error::other("a one-shot reader has no factory")),
        }
    }
}

/// Never shows the reader itself: only what kind of reader it is.
impl fmt::Debug for ReaderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (self.is_one_shot(), self.seekable) {
            (true, true) => "one-shot, seekable",
            (true, false) => "one-shot",
            (false, _) => "factory",
        };
        f.write_str(kind)
    }
}
