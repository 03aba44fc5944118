//! FFmpeg's log (`av_log`), routed to the `log` crate unless the application opts out.
//!
//! `av_log_set_callback` sets one callback for the whole process, so routing is a
//! process-wide choice, made by [`route_ffmpeg_logs`]: on by default, the callback is
//! installed when the first stream (or probe) opens anything in FFmpeg; turned off before
//! that, it is never installed and FFmpeg's log stays where it was (FFmpeg's default
//! callback, printing to stderr, or the application's own). Once installed it is never
//! swapped out from under threads that may be logging: turning routing off then makes it
//! hand every line to FFmpeg's default callback, and turning it on routes again.
//!
//! The callback's last parameter is C's `va_list`, whose Rust type depends on the target
//! ([`VaList`]).

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use ffmpeg_sys_next as sys;

/// The type of a `va_list` *parameter* as the bindings declare it on this target. C's
/// `va_list` is an array of one `__va_list_tag` on x86_64 (System V), s390x and 32-bit
/// PowerPC, and an array parameter is a pointer to its first element, so bindgen declares
/// `*mut __va_list_tag` there. Elsewhere (aarch64's `struct __va_list`, passed by value;
/// 32-bit ARM's struct; the plain pointers of i686, riscv64, powerpc64, Windows) the
/// parameter is `va_list` itself. The type is checked against the bindings wherever the
/// crate compiles: [`log_callback`] is passed to `av_log_set_callback` and its argument to
/// `av_log_format_line2` and `av_log_default_callback`.
#[cfg(any(
    all(target_arch = "x86_64", not(target_os = "windows")),
    target_arch = "s390x",
    target_arch = "powerpc"
))]
type VaList = *mut sys::__va_list_tag;
/// See the other definition: `va_list` is not an array on this target.
#[cfg(not(any(
    all(target_arch = "x86_64", not(target_os = "windows")),
    target_arch = "s390x",
    target_arch = "powerpc"
)))]
type VaList = sys::va_list;

/// Routing chosen by the application (on by default).
static ROUTING: AtomicBool = AtomicBool::new(true);
/// Our callback is FFmpeg's (installed once, never removed).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Chooses whether FFmpeg's log lines go to the [`log`](https://docs.rs/log) crate (target
/// `ffmpeg`, URLs redacted, FFmpeg's `info` as `debug`; verbose and debug lines dropped) —
/// the default — or stay out of `streamvisor`'s hands.
///
/// **Process-wide**: FFmpeg has one log callback per process. Call this before the first
/// stream starts (or [`Manager::probe`](crate::Manager::probe)): with `false` then,
/// `streamvisor` never installs its callback, so FFmpeg's default one (stderr, at
/// `av_log_set_level`'s level) or one the application installed itself stays in place.
/// Turned off later, the installed callback hands every line to FFmpeg's default callback
/// instead (it is not swapped out under threads that may be logging); turned on again, it
/// routes again (or, never installed yet, is installed when the next stream opens its
/// source). With routing off, an error for a picture size FFmpeg refused names FFmpeg's
/// failure rather than the size (the size is read from FFmpeg's log line).
///
/// ```
/// // An application with its own av_log callback (or happy with FFmpeg's stderr output):
/// streamvisor::route_ffmpeg_logs(false);
/// ```
pub fn route_ffmpeg_logs(on: bool) {
    ROUTING.store(on, Ordering::SeqCst);
}

/// Installs the callback if routing is on and it is not installed yet (from `ffi::init`,
/// before FFmpeg is used for anything that logs).
pub(super) fn install_if_routed() {
    if !ROUTING.load(Ordering::SeqCst) || INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // Only the first caller with routing on gets here.
    // SAFETY: sets FFmpeg's global log callback to a function valid for the process's life that never unwinds.
    unsafe { sys::av_log_set_callback(Some(log_callback)) };
}

thread_local! {
    /// The last picture size an FFmpeg size check refused on this thread (see
    /// [`take_refused_picture`]).
    static REFUSED_PICTURE: std::cell::Cell<Option<(u32, u32)>> = const { std::cell::Cell::new(None) };
}

/// The picture size that FFmpeg's own size check (`av_image_check_size`) last refused on
/// this thread, if any, and forgets it. FFmpeg reports such a refusal only in its log (a
/// demuxer then fails with an unrelated code): this is how the error can name the size.
pub fn take_refused_picture() -> Option<(u32, u32)> {
    REFUSED_PICTURE.with(std::cell::Cell::take)
}

/// `Picture size 65535x65535 is invalid` (libavutil/imgutils.c) → (65535, 65535).
fn refused_picture(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("Picture size ").nth(1)?;
    let (size, _) = rest.split_once(" is invalid")?;
    let (w, h) = size.split_once('x')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// FFmpeg log lines to the `log` facade (target `ffmpeg`), with every URL in them redacted
/// (FFmpeg echoes URLs, e.g. `Opening 'https://...?token=...' for reading`); with routing
/// turned off, to FFmpeg's default callback untouched. Never unwinds into C: everything
/// that runs Rust code (the logger's `enabled` check, formatting, the logger itself) is
/// inside `catch_unwind`, so a panicking logger loses a line, not the process.
unsafe extern "C" fn log_callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: VaList) {
    if !ROUTING.load(Ordering::Relaxed) {
        // SAFETY: FFmpeg's own callback, with the arguments FFmpeg gave this call, unused here.
        unsafe { sys::av_log_default_callback(avcl, level, fmt, vl) };
        return;
    }
    let lvl = match level {
        l if l <= sys::AV_LOG_ERROR as c_int => log::Level::Error,
        l if l <= sys::AV_LOG_WARNING as c_int => log::Level::Warn,
        l if l <= sys::AV_LOG_INFO as c_int => log::Level::Debug,
        _ => return,
    };
    let forward = move || {
        let is_error = lvl == log::Level::Error;
        if !is_error && !log::log_enabled!(target: "ffmpeg", lvl) {
            return;
        }
        let mut line = [0 as c_char; 1024];
        let mut prefix: c_int = 1;
        // SAFETY: FFmpeg passes a valid format string and va_list for this call, used once here; the buffer is valid for its length and av_log_format_line2 NUL-terminates it.
        let text = unsafe {
            sys::av_log_format_line2(
                avcl,
                level,
                fmt,
                vl,
                line.as_mut_ptr(),
                line.len() as c_int,
                &mut prefix,
            );
            CStr::from_ptr(line.as_ptr()).to_string_lossy()
        };
        if is_error {
            if let Some(size) = refused_picture(&text) {
                REFUSED_PICTURE.with(|r| r.set(Some(size)));
            }
            super::open_guard::note_logged_refusal(&text);
        }
        log::log!(target: "ffmpeg", lvl, "{}", crate::redact::redact_text(text.trim_end()));
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(forward));
}
