//! A custom output: an `AVIOContext` whose writes go to a Rust [`io::Write`] instead of
//! one of FFmpeg's protocols, so a muxer can write into any store (a file, an upload
//! buffer). [`WriteIo`] owns the context, its buffer and the writer its callback reaches
//! through the context's `opaque`.

use std::io::{self, Write};
use std::os::raw::{c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;

use ffmpeg_sys_next as sys;

use super::AvError;

/// The size of the buffer FFmpeg writes through (libavformat's own `IO_BUFFER_SIZE`).
const BUFFER_SIZE: usize = 32 * 1024;

/// What the callback reaches through `opaque`.
struct WriteState {
    out: Box<dyn Write + Send>,
    written: u64,
}

/// An `AVIOContext` writing to a `Box<dyn Write>`: the context, its `av_malloc`ed buffer
/// and the writer, freed together (context and buffer exactly once, the writer after them).
/// Not seekable: muxers that need to seek back (a non-fragmented MP4) refuse it.
pub struct WriteIo {
    ctx: NonNull<sys::AVIOContext>,
    /// `Box::into_raw` of the state; `opaque` points here until `Drop`.
    state: NonNull<WriteState>,
}

// SAFETY: the context and the state are reached only through this owner (or, inside FFmpeg calls made through its owner, by the callback on the same thread); the writer is Send.
unsafe impl Send for WriteIo {}

impl WriteIo {
    /// A context writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Result<Self, AvError> {
        let enomem = || AvError::new(sys::AVERROR(libc::ENOMEM), "avio_alloc_context");
        let state = Box::into_raw(Box::new(WriteState { out, written: 0 }));
        // SAFETY: Box::into_raw never returns NULL.
        let state = unsafe { NonNull::new_unchecked(state) };
        // SAFETY: the state came from Box::into_raw above and nothing else holds it.
        let free_state = || drop(unsafe { Box::from_raw(state.as_ptr()) });
        // SAFETY: av_malloc has no preconditions; NULL is handled below.
        let buffer = unsafe { sys::av_malloc(BUFFER_SIZE) }.cast::<u8>();
        if buffer.is_null() {
            free_state();
            return Err(enomem());
        }
        // SAFETY: the buffer is av_malloc'ed with BUFFER_SIZE bytes (the context takes it over); the opaque is the state, which lives until Drop, after the context is freed; the callback matches the signature FFmpeg calls.
        let ctx = unsafe {
            sys::avio_alloc_context(
                buffer,
                BUFFER_SIZE as c_int,
                1,
                state.as_ptr().cast::<c_void>(),
                None,
                Some(write_callback),
                None,
            )
        };
        let Some(ctx) = NonNull::new(ctx) else {
            // SAFETY: the context was not created, so the buffer is still ours alone.
            unsafe { sys::av_free(buffer.cast::<c_void>()) };
            free_state();
            return Err(enomem());
        };
        Ok(Self { ctx, state })
    }

    /// The context, for an `AVFormatContext`'s `pb`.
    pub(super) fn as_ptr(&self) -> *mut sys::AVIOContext {
        self.ctx.as_ptr()
    }

    /// Flushes FFmpeg's buffer into the writer and the writer itself; returns the bytes
    /// written in all.
    pub(super) fn flush(&mut self) -> Result<u64, AvError> {
        // SAFETY: the context is ours and valid; avio_flush calls back on this thread only.
        let error = unsafe {
            sys::avio_flush(self.ctx.as_ptr());
            (*self.ctx.as_ptr()).error
        };
        super::check(error, "avio_write")?;
        // SAFETY: the state is valid until Drop; `&mut self` means no callback is under way.
        let state = unsafe { self.state.as_mut() };
        state
            .out
            .flush()
            .map_err(|_| AvError::new(sys::AVERROR(libc::EIO), "avio_flush"))?;
        Ok(state.written)
    }
}

impl Drop for WriteIo {
    fn drop(&mut self) {
        let mut ctx = self.ctx.as_ptr();
        // SAFETY: we own the context; FFmpeg may have replaced its buffer, so the one it holds now is freed (av_freep NULLs it), then the context itself, exactly once. The state is freed last: no callback can run once the context is gone.
        unsafe {
            sys::av_freep(std::ptr::addr_of_mut!((*ctx).buffer).cast::<c_void>());
            sys::avio_context_free(&mut ctx);
            drop(Box::from_raw(self.state.as_ptr()));
        }
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
