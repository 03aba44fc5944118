//! The owner both custom I/O contexts are built on: an `AVIOContext`, its `av_malloc`ed
//! buffer, and the state its callbacks reach through `opaque`, freed together (the context
//! and the buffer exactly once, the state after them).

use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;

use ffmpeg_sys_next as sys;

use super::AvError;

/// The size of the buffer FFmpeg reads or writes through (libavformat's `IO_BUFFER_SIZE`).
const BUFFER_SIZE: usize = 32 * 1024;

/// A `read_packet` or `write_packet` callback.
pub(super) type PacketCallback = unsafe extern "C" fn(*mut c_void, *mut u8, c_int) -> c_int;
/// A `seek` callback.
pub(super) type SeekCallback = unsafe extern "C" fn(*mut c_void, i64, c_int) -> i64;

/// The callbacks of a context: reads (and seeks) for an input, writes for an output.
pub(super) enum Callbacks {
    Read(PacketCallback, SeekCallback),
    Write(PacketCallback),
}

/// The state of a custom I/O context, which names its own callbacks: the pairing of a
/// state type with the callbacks that cast `opaque` back to it is made once, here, not at
/// every context built.
///
/// # Safety
/// Every callback in [`CALLBACKS`](Self::CALLBACKS) must take its `opaque` argument as a
/// `*mut Self` (and nothing else), valid for the duration of the call.
pub(super) unsafe trait OpaqueState: Sized {
    /// The callbacks FFmpeg calls with a `*mut Self` as `opaque`.
    const CALLBACKS: Callbacks;
}

/// An `AVIOContext` whose callbacks get `&mut S` through `opaque`.
pub(super) struct AvioOwner<S> {
    ctx: NonNull<sys::AVIOContext>,
    /// `Box::into_raw` of the state; `opaque` points here until `Drop`.
    state: NonNull<S>,
}

// SAFETY: the context and the state are reached only through this owner (or, inside FFmpeg calls made through its owner, by the callbacks on the same thread); the state is Send.
unsafe impl<S: Send> Send for AvioOwner<S> {}

impl<S: OpaqueState> AvioOwner<S> {
    /// A context with `state` behind its callbacks (`S::CALLBACKS`).
    pub fn new(state: S) -> Result<Self, AvError> {
        let enomem = || AvError::new(sys::AVERROR(libc::ENOMEM), "avio_alloc_context");
        let state = Box::into_raw(Box::new(state));
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
        let (write, read, write_cb, seek) = match S::CALLBACKS {
            Callbacks::Read(read, seek) => (0, Some(read), None, Some(seek)),
            Callbacks::Write(write) => (1, None, Some(write), None),
        };
        let opaque = state.as_ptr().cast::<c_void>();
        // SAFETY: the buffer is av_malloc'ed with BUFFER_SIZE bytes (the context takes it over); the opaque is the state, which lives until Drop, after the context is freed; the callbacks take it as the state (the promise of `S`'s `unsafe impl OpaqueState`) and match the signatures FFmpeg calls.
        let ctx = unsafe {
            sys::avio_alloc_context(
                buffer,
                BUFFER_SIZE as c_int,
                write,
                opaque,
                read,
                write_cb,
                seek,
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
}

impl<S> AvioOwner<S> {
    /// The context, for an `AVFormatContext`'s `pb`.
    pub fn as_ptr(&self) -> *mut sys::AVIOContext {
        self.ctx.as_ptr()
    }

    /// The callbacks' state.
    pub fn state(&mut self) -> &mut S {
        // SAFETY: the state is valid until Drop; `&mut self` means no FFmpeg call through this context (so no callback) is under way.
        unsafe { self.state.as_mut() }
    }
}

impl<S> Drop for AvioOwner<S> {
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
