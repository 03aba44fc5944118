//! Hardware device contexts (`AVBufferRef` of an `AVHWDeviceContext`) and moving decoded
//! hardware frames to system memory.

use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::{check, cstring, AvError, Frame};

/// An opened hardware device (`av_hwdevice_ctx_create`), unreferenced on drop.
pub struct HwDeviceContext {
    buf: NonNull<sys::AVBufferRef>,
}

// SAFETY: a device context is refcounted with atomic counts and FFmpeg documents device contexts as usable from several threads; this owner holds one reference.
unsafe impl Send for HwDeviceContext {}

impl HwDeviceContext {
    /// Opens a device of FFmpeg type `kind` (`cuda`, `vaapi`, `qsv`) named `device`.
    pub fn open(kind: &str, device: &str) -> Result<Self, AvError> {
        super::init();
        let k = cstring(kind, "av_hwdevice_find_type_by_name")?;
        // SAFETY: k is a valid C string; the lookup reads a static table.
        let ty = unsafe { sys::av_hwdevice_find_type_by_name(k.as_ptr()) };
        if ty == sys::AVHWDeviceType::AV_HWDEVICE_TYPE_NONE {
            return Err(AvError::new(
                sys::AVERROR(libc::ENOSYS),
                "av_hwdevice_find_type_by_name",
            ));
        }
        let d = cstring(device, "av_hwdevice_ctx_create")?;
        let mut buf = ptr::null_mut();
        let (name, no_opts) = (d.as_ptr(), ptr::null_mut());
        // SAFETY: buf receives a new reference on success; the strings are valid; NULL options are allowed.
        let ret = unsafe { sys::av_hwdevice_ctx_create(&mut buf, ty, name, no_opts, 0) };
        check(ret, "av_hwdevice_ctx_create")?;
        Ok(Self {
            buf: NonNull::new(buf).ok_or(AvError::new(
                sys::AVERROR(libc::ENOMEM),
                "av_hwdevice_ctx_create",
            ))?,
        })
    }

    /// A new reference for a codec context to own.
    pub(super) fn new_ref(&self) -> Result<*mut sys::AVBufferRef, AvError> {
        // SAFETY: buf is a valid buffer reference held by self.
        let r = unsafe { sys::av_buffer_ref(self.buf.as_ptr()) };
        if r.is_null() {
            Err(AvError::new(sys::AVERROR(libc::ENOMEM), "av_buffer_ref"))
        } else {
            Ok(r)
        }
    }
}

impl Drop for HwDeviceContext {
    fn drop(&mut self) {
        let mut p = self.buf.as_ptr();
        // SAFETY: we hold exactly one reference and release it once.
        unsafe { sys::av_buffer_unref(&mut p) }
    }
}

impl Frame {
    /// True when the picture lives in a hardware device's memory.
    pub fn is_hardware(&self) -> bool {
        // SAFETY: reading a plain field of a valid frame.
        !unsafe { (*self.as_ptr()).hw_frames_ctx }.is_null()
    }

    /// Copies a hardware frame to system memory (keeping pts and picture type).
    pub fn download(&self) -> Result<Frame, AvError> {
        let mut sw = Frame::new();
        // SAFETY: self is a valid hardware frame; sw is empty, so FFmpeg allocates it in the device's preferred software format; props copies pts and the rest.
        unsafe {
            check(
                sys::av_hwframe_transfer_data(sw.as_mut_ptr(), self.as_ptr(), 0),
                "av_hwframe_transfer_data",
            )?;
            check(
                sys::av_frame_copy_props(sw.as_mut_ptr(), self.as_ptr()),
                "av_frame_copy_props",
            )?;
        }
        Ok(sw)
    }
}
