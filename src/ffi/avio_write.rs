//! A custom output: an `AVIOContext` whose writes go to a Rust [`io::Write`] instead of
//! one of FFmpeg's protocols, so a muxer can write into any store (a file, an upload
//! buffer). [`WriteIo`] owns the context, its buffer and the writer its callback reaches
//! through the context's `opaque`.

use std::io::{self, Write};
use std::os::raw::{c_int, c_void};
use std::panic::AssertUnwindSafe;

use ffmpeg_sys_next as sys;

use super::avio_owner::{AvioOwner, Callbacks};
use super::AvError;

/// What the callback reaches through `opaque`.
struct WriteState {
    out: Box<dyn Write + Send>,
    written: u64,
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
        let io = AvioOwner::new(state, Callbacks::Write(write_callback))?;
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
/// keeps its own error for the caller), or `AVERROR_EXIT` when the writer says
/// `Interrupted`. Never unwinds into C.
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
        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => sys::AVERROR_EXIT,
        _ => sys::AVERROR(libc::EIO),
    }
}

/// `write_all`, except that `Interrupted` is an answer (the writer was cancelled), not a
/// reason to try again for ever.
fn write_whole(out: &mut dyn Write, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match out.write(data)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => data = &data[n..],
        }
    }
    Ok(())
}
