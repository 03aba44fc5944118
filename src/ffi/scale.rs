//! `SwsContext` owner: one per variant, converting decoded pictures to its size and format.

use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::{check, pix_fmt_from_i32, AvError, Frame};

/// An owned `SwsContext` for a fixed source and destination geometry.
pub struct Scaler {
    ptr: NonNull<sys::SwsContext>,
    src: (i32, i32, i32),
    dst: (i32, i32, i32),
}

// SAFETY: an SwsContext has no thread affinity; this owner is its only handle.
unsafe impl Send for Scaler {}

impl Scaler {
    /// A bicubic scaler from `src` to `dst`, each `(width, height, pixel format)`.
    pub fn new(src: (i32, i32, i32), dst: (i32, i32, i32)) -> Result<Self, AvError> {
        let einval = || AvError::new(sys::AVERROR(libc::EINVAL), "sws_getContext");
        let sf = pix_fmt_from_i32(src.2).ok_or_else(einval)?;
        let df = pix_fmt_from_i32(dst.2).ok_or_else(einval)?;
        // SAFETY: plain values; NULL filters and params select the defaults.
        let raw = unsafe {
            sys::sws_getContext(
                src.0,
                src.1,
                sf,
                dst.0,
                dst.1,
                df,
                sys::SWS_BICUBIC,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            )
        };
        Ok(Self {
            ptr: NonNull::new(raw).ok_or_else(einval)?,
            src,
            dst,
        })
    }

    /// True when this scaler takes frames of this geometry.
    pub fn accepts(&self, frame: &Frame) -> bool {
        (frame.width(), frame.height(), frame.format()) == self.src
    }

    /// Scales `src` into `dst`, whose buffers must already match the destination geometry.
    pub fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), AvError> {
        assert!(self.accepts(src), "scaler fed a frame of another geometry");
        assert_eq!((dst.width(), dst.height(), dst.format()), self.dst);
        // SAFETY: both frames hold buffers of the geometries this context was made for (asserted above); sws_scale reads src planes and writes dst planes only.
        unsafe {
            let s = &*src.as_ptr();
            let d = &mut *dst.as_mut_ptr();
            check(
                sys::sws_scale(
                    self.ptr.as_ptr(),
                    s.data.as_ptr() as *const *const u8,
                    s.linesize.as_ptr(),
                    0,
                    s.height,
                    d.data.as_ptr(),
                    d.linesize.as_ptr(),
                ),
                "sws_scale",
            )?;
        }
        Ok(())
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        // SAFETY: we own the context and free it exactly once.
        unsafe { sys::sws_freeContext(self.ptr.as_ptr()) }
    }
}
