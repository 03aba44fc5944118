//! A custom output: an `AVIOContext` whose writes go to a Rust [`io::Write`] instead of
//! one of FFmpeg's protocols, so a muxer can write into any store (a file, an upload
//! buffer). [`WriteIo`] owns the context, its buffer and the writer its callback reaches
//! through the context's `opaque`.

use std::io::{self, Write};
use std::os::raw::{c_int, c_void};
use std::panic::AssertUnwindSafe;

use ffmpeg_sys_next as sys;

use super::avio_owner::{AvioOwner, Callbacks, OpaqueState};
use super::AvError;

/// What the callback reaches through `opaque`.
struct WriteState {
    out: Box<dyn Write + Send>,
    written: u64,
}

// SAFETY: `write_callback` takes its opaque as a `*mut WriteState`, and nothing else.
unsafe impl OpaqueState for WriteState {
    const CALLBACKS: Callbacks = Callbacks::Write(write_callback);
}

/// An `AVIOContext` writing to a `Box<dyn Write>`: the context, its `av_malloc`ed buffer
/// and the writer, freed together ([`AvioOwner`]). Not seekable: muxers that need to seek
/// back (a non-fragmented MP4) refuse it.
pub struct WriteIo {
    io: AvioOwner<WriteState>,
}

impl WriteIo {
    /// A context writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Result<Self, AvError> {
        let state = WriteState { out, written: 0 };
        let io = AvioOwner::new(state)?;
        Ok(Self { io })
    }

    /// The context, for an `AVFormatContext`'s `pb`.
    pub(super) fn as_ptr(&self) -> *mut sys::AVIOContext {
        self.io.as_ptr()
    }

    /// Flushes FFmpeg's buffer into the writer and the writer itself; returns the bytes
    /// written in all.
    pub(super) fn flush(&mut self) -> Result<u64, AvError> {
        let ctx = self.io.as_ptr();
        // SAFETY: the context is ours and valid; avio_flush calls back on this thread only.
        let error = unsafe {
            sys::avio_flush(ctx);
            (*ctx).error
        };
        super::check(error, "avio_write")?;
        let state = self.io.state();
        state
            .out
            .flush()
            .map_err(|_| AvError::new(sys::AVERROR(libc::EIO), "avio_flush"))?;
        Ok(state.written)
    }
}

/// The `write_packet` callback: all of FFmpeg's bytes to the writer, or `EIO` (the writer
/// keeps its own error for the caller). Never unwinds into C.
unsafe extern "C" fn write_callback(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    let Ok(len) = usize::try_from(size) else {
        return sys::AVERROR(libc::EINVAL);
    };
    if opaque.is_null() || (buf.is_null() && len > 0) {
        return sys::AVERROR(libc::EINVAL);
    }
    // SAFETY: opaque is the WriteState of the WriteIo whose context calls us; it lives until that context is freed, and FFmpeg calls back only from inside a call on that context, while nothing else touches the state.
    let state = unsafe { &mut *opaque.cast::<WriteState>() };
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: FFmpeg hands us its buffer, valid for `size` bytes, for the duration of the call.
        unsafe { std::slice::from_raw_parts(buf, len) }
    };
    let wrote = std::panic::catch_unwind(AssertUnwindSafe(|| write_whole(&mut *state.out, data)));
    match wrote {
        Ok(Ok(())) => {
            state.written += len as u64;
            size
        }
        _ => sys::AVERROR(libc::EIO),
    }
}

/// Consecutive `Interrupted` answers after which a writer is taken to have failed.
const MAX_INTERRUPTED: u32 = 1000;

/// `write_all`: `Interrupted` is tried again, as the `io::Write` convention says (a signal
/// cut the call short), but not for ever: a writer that answers nothing else
/// [`MAX_INTERRUPTED`] times in a row has failed.
fn write_whole(out: &mut dyn Write, mut data: &[u8]) -> io::Result<()> {
    let mut interrupted = 0;
    while !data.is_empty() {
        match out.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                interrupted = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < MAX_INTERRUPTED => {
                interrupted += 1;
                std::thread::yield_now();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that answers `Interrupted` to every other call (or to all of them), and
    /// takes 3 bytes at a time otherwise.
    struct Choppy {
        got: Vec<u8>,
        calls: u32,
        always_interrupted: bool,
    }

    impl Write for Choppy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.always_interrupted || self.calls % 2 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn interrupted_writes_are_tried_again_but_not_for_ever() {
        let mut w = Choppy {
            got: Vec::new(),
            calls: 0,
            always_interrupted: false,
        };
        write_whole(&mut w, b"every byte arrives").unwrap();
        assert_eq!(w.got, b"every byte arrives");
        w.always_interrupted = true;
        let e = write_whole(&mut w, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
    }
}
