//! An application's reader as the source. The reader runs on a thread of its own
//! (`sv-<id>-reader`), which serves one request at a time (read, seek, size) as FFmpeg
//! needs bytes; the demuxing thread waits for each answer in short slices, checking the
//! stream's interrupt between them (stop, abort, the I/O deadline, a stall report). So a
//! reader that blocks holds only its own thread: the stream stops, stalls or aborts on time
//! and the blocked thread is left behind (its name reported), dropping the reader when its
//! `read` returns.

use std::io::{self, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::control::Signals;
use super::errors::{invalid_input, open_error, stalled};
use crate::config::{AppReader, Opening, ReaderSource, StreamConfig, READER_LABEL};
use crate::error::Error;
use crate::ffi::{ByteSource, CustomIo, Dictionary, InputContext, IoFailure};
use crate::panic::panic_message;

/// How long the demuxing thread waits for an answer before it checks the interrupt again.
const SLICE: Duration = Duration::from_millis(20);

/// How long closing the input waits for the reader's thread to end before leaving it
/// behind (a reader in the middle of a slow read).
const LINGER: Duration = Duration::from_millis(100);

/// What the demuxing thread asks the reader's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Read(usize),
    Seek(SeekFrom),
    Size,
}

/// The answer to a [`Request`].
enum Reply {
    /// The bytes read (none: the end of the input).
    Read(Vec<u8>),
    /// The position after a seek, or the size.
    Position(u64),
    Failed(IoFailure),
}

/// Opens the demuxer on the config's reader: the reader's thread, the custom input over
/// it, and the input context. `options` go to the demuxer.
pub(super) fn open_reader(
    config: &StreamConfig,
    signals: &Signals,
    reader: &ReaderSource,
    options: Dictionary,
) -> Result<(InputContext, Vec<String>), Error> {
    let Some(opening) = reader.open() else {
        return Err(Error::config(
            "source",
            "the one-shot reader was already taken by an earlier open (a run of this config \
             or of a clone, or a reopen after a hardware fallback); a source opened more \
             than once needs Source::reader_factory",
        ));
    };
    let name = format!("sv-{}-reader", config.id());
    let thread = ReaderThread::spawn(opening, name, signals).map_err(|e| Error::Internal {
        message: format!("spawning the reader thread: {e}"),
    })?;
    let interrupt = signals.interrupt();
    let io = CustomIo::new(Box::new(thread), reader.is_seekable(), interrupt.clone())
        .map_err(|e| open_error(config, interrupt, e))?;
    let format = config.input().forced_format();
    InputContext::open_custom(io, format, options, interrupt.clone()).map_err(|(e, mut io)| {
        if interrupt.is_interrupted() {
            return Error::aborted();
        }
        reader_failure(config, &mut io).unwrap_or_else(|| open_error(config, interrupt, e))
    })
}

/// What the reader reported, as the stream's error: its I/O error (kind kept), its panic,
/// its silence past the deadline, or a seek the input needed from a reader that cannot
/// seek. `None` when it reported
/// nothing (FFmpeg's own error is the one to report then).
pub(super) fn reader_failure(config: &StreamConfig, io: &mut CustomIo) -> Option<Error> {
    let Some(failure) = io.take_failure() else {
        if io.timed_out() {
            return Some(stalled(config)); // FFmpeg may report it later as a bare exit
        }
        let why = "the input needs seeking (e.g. an MP4 whose index, the moov box, is at the \
                   end) and this reader cannot seek: give it as Source::reader_seekable, or \
                   move the index to the front (ffmpeg -movflags +faststart)";
        return io
            .seek_refused()
            .then(|| invalid_input(config, why.into(), None));
    };
    let code = failure.code();
    Some(match failure {
        IoFailure::Io(e) => Error::reader_io(READER_LABEL, "reading", code, e),
        IoFailure::Panicked(message) => Error::Panicked {
            message: format!("the source reader panicked: {message}"),
        },
    })
}

/// The demuxing thread's end of the reader's thread: a [`ByteSource`].
struct ReaderThread {
    name: String,
    requests: Option<Sender<Request>>,
    replies: Receiver<Reply>,
    /// The request out (as the demuxer asked it), whose answer has not come yet.
    pending: Option<Request>,
    /// Bytes read beyond what the demuxer's buffer took, served first.
    stash: Vec<u8>,
    stash_at: usize,
    /// Raised when the input closes: a reader returning `Interrupted` is not retried then.
    closed: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ReaderThread {
    fn spawn(opening: Opening, name: String, signals: &Signals) -> io::Result<Self> {
        let (requests, serve_rx) = bounded::<Request>(1);
        let (reply_tx, replies) = bounded::<Reply>(1);
        let closed = Arc::new(AtomicBool::new(false));
        let running = signals.track_helper(name.clone());
        let c = closed.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let _running = running;
                serve(opening, &serve_rx, &reply_tx, &c);
            })?;
        Ok(Self {
            name,
            requests: Some(requests),
            replies,
            pending: None,
            stash: Vec::new(),
            stash_at: 0,
            closed,
            handle: Some(handle),
        })
    }

    /// Asks `asked` (unless it is the request already out) and waits one slice for the
    /// answer: `Interrupted` when it has not come yet (the caller checks the interrupt and
    /// asks again). A different request while one is out waits for that one first.
    fn exchange(&mut self, asked: Request) -> Result<Reply, IoFailure> {
        if let Some(out) = self.pending {
            let same = out == asked || matches!((out, asked), (Request::Read(_), Request::Read(_)));
            if !same {
                let earlier = self.wait()?;
                self.settle(out, earlier)?;
            }
        }
        if self.pending.is_none() {
            let wire = self.on_wire(asked);
            let sent = self.requests.as_ref().map(|tx| tx.try_send(wire));
            if !matches!(sent, Some(Ok(()))) {
                return Err(io::Error::other("the reader's thread is gone").into());
            }
            self.pending = Some(asked);
        }
        self.wait()
    }

    /// The request as sent: a relative seek counts from the reader's position, which is
    /// ahead of the demuxer's by the stash; a seek drops the stash.
    fn on_wire(&mut self, asked: Request) -> Request {
        let Request::Seek(to) = asked else {
            return asked;
        };
        let ahead = (self.stash.len() - self.stash_at) as i64;
        self.stash.clear();
        self.stash_at = 0;
        match to {
            SeekFrom::Current(off) => Request::Seek(SeekFrom::Current(off - ahead)),
            other => Request::Seek(other),
        }
    }

    fn wait(&mut self) -> Result<Reply, IoFailure> {
        match self.replies.recv_timeout(SLICE) {
            Ok(reply) => {
                self.pending = None;
                Ok(reply)
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(io::Error::from(io::ErrorKind::Interrupted).into())
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(io::Error::other("the reader's thread ended").into())
            }
        }
    }

    /// The answer to a request the demuxer moved on from: its bytes are kept for the next
    /// read, its failure reported now.
    fn settle(&mut self, out: Request, reply: Reply) -> Result<(), IoFailure> {
        match (out, reply) {
            (Request::Read(_), Reply::Read(bytes)) => {
                self.stash = bytes;
                self.stash_at = 0;
                Ok(())
            }
            (_, Reply::Failed(f)) => Err(f),
            _ => Ok(()),
        }
    }
}

impl ByteSource for ReaderThread {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoFailure> {
        if self.stash_at == self.stash.len() {
            match self.exchange(Request::Read(buf.len()))? {
                Reply::Read(bytes) => {
                    self.stash = bytes;
                    self.stash_at = 0;
                }
                Reply::Failed(f) => return Err(f),
                Reply::Position(_) => return Err(io::Error::other("no bytes in reply").into()),
            }
        }
        let n = (self.stash.len() - self.stash_at).min(buf.len());
        buf[..n].copy_from_slice(&self.stash[self.stash_at..self.stash_at + n]);
        self.stash_at += n;
        Ok(n)
    }

    fn seek(&mut self, to: SeekFrom) -> Result<u64, IoFailure> {
        match self.exchange(Request::Seek(to))? {
            Reply::Position(p) => Ok(p),
            Reply::Failed(f) => Err(f),
            Reply::Read(_) => Err(io::Error::other("no position in reply").into()),
        }
    }

    fn size(&mut self) -> Result<u64, IoFailure> {
        match self.exchange(Request::Size)? {
            Reply::Position(p) => Ok(p),
            Reply::Failed(f) => Err(f),
            Reply::Read(_) => Err(io::Error::other("no size in reply").into()),
        }
    }
}

impl Drop for ReaderThread {
    /// Closes the request queue: an idle reader's thread ends at once and is joined; one
    /// still in the application's code after [`LINGER`] is left behind (the stream's
    /// report names it while it runs).
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        drop(self.requests.take());
        let deadline = Instant::now() + LINGER;
        loop {
            match self.replies.recv_deadline(deadline) {
                Ok(_) => continue, // a late answer nobody waits for
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(h) = self.handle.take() {
                        let _ = h.join();
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "thread {} is still in the application's reader; left behind (it \
                         drops the reader when the read returns)",
                        self.name
                    );
                    return;
                }
            }
        }
    }
}

/// The reader's thread: makes the reader (a factory source) and answers requests until the
/// queue closes. The reader is dropped here, before the answer queue closes (so a closed
/// queue means the reader is gone). Every call into the application is under
/// `catch_unwind`: a panic is an answer, and every later request gets it too.
fn serve(
    opening: Opening,
    requests: &Receiver<Request>,
    replies: &Sender<Reply>,
    closed: &AtomicBool,
) {
    let mut reader: Result<AppReader, IoFailure> = match opening {
        Opening::Ready(r) => Ok(r),
        Opening::Make(source) => {
            match std::panic::catch_unwind(AssertUnwindSafe(|| source.make())) {
                Ok(made) => made.map_err(IoFailure::from),
                Err(p) => Err(IoFailure::Panicked(panic_message(&*p))),
            }
        }
    };
    for request in requests.iter() {
        let reply = match &mut reader {
            Err(f) => Reply::Failed(f.clone()),
            Ok(r) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| answer(r, request, closed))) {
                    Ok(reply) => reply,
                    Err(p) => Reply::Failed(IoFailure::Panicked(panic_message(&*p))),
                }
            }
        };
        if let Reply::Failed(f @ IoFailure::Panicked(_)) = &reply {
            reader = Err(f.clone());
        }
        if replies.send(reply).is_err() {
            break;
        }
    }
    drop(reader);
}

/// Answers one request; a reader returning `Interrupted` is asked again (unless the input
/// closed meanwhile).
fn answer(reader: &mut AppReader, request: Request, closed: &AtomicBool) -> Reply {
    loop {
        let result = match request {
            Request::Read(len) => {
                let mut buf = vec![0; len];
                reader.read(&mut buf).and_then(|n| {
                    if n > len {
                        return Err(io::Error::other(format!(
                            "the reader returned {n} bytes for a buffer of {len}"
                        )));
                    }
                    buf.truncate(n);
                    Ok(Reply::Read(buf))
                })
            }
            Request::Seek(to) => reader.seek(to).map(Reply::Position),
            Request::Size => reader.size().map(Reply::Position),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !closed.load(Ordering::SeqCst) => {}
            Err(e) => return Reply::Failed(e.into()),
            Ok(reply) => return reply,
        }
    }
}
