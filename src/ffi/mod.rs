//! The only module that names `ffmpeg_sys_next`.
//!
//! One owner type per FFmpeg allocation: a private `NonNull`, a `Drop` that calls the
//! matching free, and `// SAFETY:` on every unsafe block. Return codes are classified at
//! the call: [`Step::Again`] ("feed more"), [`Step::Eof`] ("drained"), or an [`AvError`]
//! carrying the AVERROR code and the operation that produced it.

mod av_log;
mod avio;
mod avio_owner;
mod avio_write;
mod codec;
mod filter;
mod format;
mod frame;
mod hw;
mod open_guard;
mod output;
mod resample;
mod scale;
mod video_filter;

pub use av_log::{route_ffmpeg_logs, take_refused_picture};
pub use avio::{input_format_kind, ByteSource, CustomIo, InputFormatKind, IoFailure};
pub use codec::{AudioEncoderSettings, CodecContext, VideoEncoderSettings};
pub use filter::{instantiated_filters, FilterInput, VideoFilter};
pub use format::{display_rotation, InputContext, Interrupt, StreamInfo};
pub use frame::{Frame, Packet};
pub use hw::HwDeviceContext;
pub use open_guard::{OpenGuard, OpenVerdict};
pub use output::OutputContext;
pub use resample::Resampler;
pub use scale::Scaler;

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int};
use std::ptr::{self, NonNull};
use std::sync::Once;

use ffmpeg_sys_next as sys;

/// A rational number as FFmpeg uses it (time bases, frame rates, aspect ratios).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    /// Numerator.
    pub num: i32,
    /// Denominator.
    pub den: i32,
}

impl Rational {
    /// `num/den`.
    pub const fn new(num: i32, den: i32) -> Self {
        Self { num, den }
    }

    /// The value as a float; 0 when the denominator is 0 (FFmpeg's "unknown").
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }

    /// True when both parts are positive.
    pub fn is_valid(self) -> bool {
        self.num > 0 && self.den > 0
    }

    fn to_av(self) -> sys::AVRational {
        sys::AVRational {
            num: self.num,
            den: self.den,
        }
    }

    fn from_av(r: sys::AVRational) -> Self {
        Self::new(r.num, r.den)
    }
}

/// `AVERROR_EOF`.
pub const AVERROR_EOF: i32 = sys::AVERROR_EOF;

/// `AVERROR_EXIT`: an interrupt callback cut the call.
pub const AVERROR_EXIT: i32 = sys::AVERROR_EXIT;

/// `AV_NOPTS_VALUE`: a timestamp FFmpeg does not know.
pub const NO_PTS: i64 = sys::AV_NOPTS_VALUE;

/// Rescales a timestamp between time bases (round to nearest); unknown stays unknown.
pub fn rescale(ts: i64, from: Rational, to: Rational) -> i64 {
    if ts == NO_PTS {
        return NO_PTS;
    }
    // SAFETY: pure arithmetic on plain values; no pointers involved.
    unsafe { sys::av_rescale_q(ts, from.to_av(), to.to_av()) }
}

/// An FFmpeg return code that is an error, with the operation that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AvError {
    /// The (negative) AVERROR code.
    pub code: i32,
    /// What was being done, e.g. `"avformat_open_input"`.
    pub op: &'static str,
}

impl AvError {
    pub(crate) fn new(code: c_int, op: &'static str) -> Self {
        Self { code, op }
    }

    /// FFmpeg's text for the code.
    pub fn message(&self) -> String {
        error_string(self.code)
    }

    /// True for `AVERROR_EXIT`: the interrupt callback asked FFmpeg to stop.
    pub fn is_interrupted(&self) -> bool {
        self.code == sys::AVERROR_EXIT
    }

    /// True for `AVERROR_INVALIDDATA`.
    pub fn is_invalid_data(&self) -> bool {
        self.code == sys::AVERROR_INVALIDDATA
    }

    /// True for `AVERROR_DEMUXER_NOT_FOUND` (no input format recognised the data).
    pub fn is_demuxer_not_found(&self) -> bool {
        self.code == sys::AVERROR_DEMUXER_NOT_FOUND
    }

    /// True for `AVERROR_DECODER_NOT_FOUND`.
    pub fn is_decoder_not_found(&self) -> bool {
        self.code == sys::AVERROR_DECODER_NOT_FOUND
    }

    /// True for `AVERROR_ENCODER_NOT_FOUND`.
    pub fn is_encoder_not_found(&self) -> bool {
        self.code == sys::AVERROR_ENCODER_NOT_FOUND
    }

    /// True for FFmpeg's own I/O-side codes: end of file, exit (interrupted), protocol not
    /// found, and the HTTP status errors.
    pub fn is_io_tag(&self) -> bool {
        [
            sys::AVERROR_EOF,
            sys::AVERROR_EXIT,
            sys::AVERROR_PROTOCOL_NOT_FOUND,
            sys::AVERROR_HTTP_BAD_REQUEST,
            sys::AVERROR_HTTP_UNAUTHORIZED,
            sys::AVERROR_HTTP_FORBIDDEN,
            sys::AVERROR_HTTP_NOT_FOUND,
            sys::AVERROR_HTTP_TOO_MANY_REQUESTS,
            sys::AVERROR_HTTP_OTHER_4XX,
            sys::AVERROR_HTTP_SERVER_ERROR,
        ]
        .contains(&self.code)
    }

    /// True when the code is `AVERROR(errno)` for the given errno.
    pub fn is_errno(&self, errno: i32) -> bool {
        self.code == sys::AVERROR(errno)
    }

    /// The errno behind the code, when it is one (`AVERROR(e)` is `-e` on Linux).
    pub fn errno(&self) -> Option<i32> {
        // FFERRTAG codes are large negative tags; errno values are small.
        (self.code < 0 && self.code > -4096).then_some(-self.code)
    }
}

impl fmt::Display for AvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (AVERROR {})", self.op, self.message(), self.code)
    }
}

impl std::error::Error for AvError {}

/// FFmpeg's description of an AVERROR code.
pub fn error_string(code: i32) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: the buffer is valid for its length and av_strerror always NUL-terminates.
    unsafe {
        sys::av_strerror(code, buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// Result of a send/receive step in FFmpeg's push/pull codec API.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// A value was produced.
    Ready(T),
    /// EAGAIN: feed more input (or drain output) first.
    Again,
    /// EOF: fully drained.
    Eof,
}

/// Classifies a return code: negative codes other than EAGAIN/EOF are errors.
fn step(ret: c_int, op: &'static str) -> Result<Step<()>, AvError> {
    if ret >= 0 {
        Ok(Step::Ready(()))
    } else if ret == sys::AVERROR(libc::EAGAIN) {
        Ok(Step::Again)
    } else if ret == sys::AVERROR_EOF {
        Ok(Step::Eof)
    } else {
        Err(AvError::new(ret, op))
    }
}

/// Classifies a return code where only success or error make sense.
fn check(ret: c_int, op: &'static str) -> Result<c_int, AvError> {
    if ret < 0 {
        Err(AvError::new(ret, op))
    } else {
        Ok(ret)
    }
}

fn cstring(s: &str, op: &'static str) -> Result<CString, AvError> {
    CString::new(s).map_err(|_| AvError::new(sys::AVERROR(libc::EINVAL), op))
}

/// Registers devices (the `lavfi` input) and, unless the application opted out with
/// [`route_ffmpeg_logs`], routes FFmpeg's log to the `log` crate. Idempotent and cheap
/// after the first call.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: registers the device formats in FFmpeg's global registry, once.
        unsafe { sys::avdevice_register_all() };
    });
    av_log::install_if_routed();
}

/// An owned `AVDictionary` of options, freed on drop.
pub struct Dictionary {
    ptr: *mut sys::AVDictionary,
}

impl Dictionary {
    /// An empty dictionary (FFmpeg represents it as NULL).
    pub fn new() -> Self {
        Self {
            ptr: ptr::null_mut(),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), AvError> {
        let k = cstring(key, "av_dict_set")?;
        let v = cstring(value, "av_dict_set")?;
        // SAFETY: ptr is NULL or a dictionary we own; av_dict_set copies key and value.
        let ret = unsafe { sys::av_dict_set(&mut self.ptr, k.as_ptr(), v.as_ptr(), 0) };
        check(ret, "av_dict_set")?;
        Ok(())
    }

    /// Keys FFmpeg left unconsumed after an open call.
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut entry: *const sys::AVDictionaryEntry = ptr::null();
        loop {
            // SAFETY: iterating our own dictionary with an empty key and IGNORE_SUFFIX visits every entry; entries stay valid until the dictionary changes.
            entry = unsafe {
                sys::av_dict_get(
                    self.ptr,
                    c"".as_ptr(),
                    entry,
                    sys::AV_DICT_IGNORE_SUFFIX as c_int,
                )
            };
            let Some(e) = NonNull::new(entry as *mut sys::AVDictionaryEntry) else {
                break;
            };
            // SAFETY: a non-null entry has a NUL-terminated key.
            let key = unsafe { CStr::from_ptr(e.as_ref().key) };
            out.push(key.to_string_lossy().into_owned());
        }
        out
    }

    fn as_mut_ptr(&mut self) -> *mut *mut sys::AVDictionary {
        &mut self.ptr
    }
}

impl Default for Dictionary {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Dictionary {
    fn drop(&mut self) {
        // SAFETY: ptr is NULL or a dictionary we own; av_dict_free accepts both.
        unsafe { sys::av_dict_free(&mut self.ptr) }
    }
}

/// `AV_PIX_FMT_YUV420P`, the format every variant is encoded in.
pub const PIX_FMT_YUV420P: i32 = sys::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;

fn pix_fmt_from_i32(fmt: i32) -> Option<sys::AVPixelFormat> {
    if !(-1..sys::AVPixelFormat::AV_PIX_FMT_NB as i32).contains(&fmt) {
        return None;
    }
    // SAFETY: AVPixelFormat is a C enum with contiguous values from NONE (-1) to NB, and fmt is in that range.
    Some(unsafe { std::mem::transmute::<i32, sys::AVPixelFormat>(fmt) })
}
