//! Every URL a demuxer opens, seen before it is opened: the source itself and what it names
//! (an HLS or DASH playlist's segments and keys, an image sequence's files). libavformat
//! opens them all through the format context's `io_open` callback; this one asks the
//! application-side check ([`OpenCheck`]) first and records a refusal where it happens, so
//! the stream fails with what was refused and why (the HLS demuxer skips a segment it
//! cannot open and goes on: the refusal would otherwise pass silently).
//!
//! Demuxers that open other files through a context of their own (the concat demuxer's
//! per-file contexts) do not reach this callback; they get the protocol whitelist only.
//! The HLS demuxer refuses some URLs itself before it opens them (a `file:` segment whose
//! extension is not media's), saying so only in a log line: while a guarded context is in
//! a call on this thread, the log callback hands such a line to [`note_logged_refusal`],
//! which records the URL with the rule the check gives it.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ffmpeg_sys_next as sys;
use parking_lot::Mutex;

/// What a check says of a URL: open it as it is, open this instead (e.g. the path with its
/// symbolic links resolved, so what was checked is what is opened), or refuse it (why).
pub enum OpenVerdict {
    /// Open the URL as it was named.
    Open,
    /// Open this URL instead.
    OpenInstead(String),
    /// Do not open it: the rule that refuses it.
    Refuse(String),
}

/// The application side's check of each URL.
pub type OpenCheck = Box<dyn Fn(&str) -> OpenVerdict + Send + Sync>;

/// Explains an allowed open that failed: the rule to record as its refusal (e.g. "it was
/// redirected to ..."), or `None` for an ordinary failure.
pub type OpenFailure = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The libavformat `io_open` callback type.
pub(super) type IoOpen = unsafe extern "C" fn(
    *mut sys::AVFormatContext,
    *mut *mut sys::AVIOContext,
    *const c_char,
    c_int,
    *mut *mut sys::AVDictionary,
) -> c_int;

/// A format context's guard: the check, libavformat's own `io_open` it hands allowed opens
/// to, and the first refusal.
pub struct OpenGuard {
    check: OpenCheck,
    /// Options set on every open (e.g. `max_redirects=0`).
    options: Vec<(CString, CString)>,
    explain: Option<OpenFailure>,
    /// libavformat's `io_open`, set when the guard is installed on a context.
    default_open: Mutex<Option<IoOpen>>,
    refused: AtomicBool,
    refusal: Mutex<Option<(String, String)>>,
}

impl OpenGuard {
    /// A guard asking `check` of every URL.
    pub fn new(check: OpenCheck) -> Self {
        Self {
            check,
            options: Vec::new(),
            explain: None,
            default_open: Mutex::new(None),
            refused: AtomicBool::new(false),
            refusal: Mutex::new(None),
        }
    }

    /// Sets `key=value` on every open this guard lets through (a key or value with a NUL
    /// byte is left out).
    pub fn with_option(mut self, key: &str, value: &str) -> Self {
        if let (Ok(k), Ok(v)) = (CString::new(key), CString::new(value)) {
            self.options.push((k, v));
        }
        self
    }

    /// Asks `explain` about every allowed open that fails: what it says is recorded as the
    /// URL's refusal.
    pub fn with_failure_explained(mut self, explain: OpenFailure) -> Self {
        self.explain = Some(explain);
        self
    }

    /// The first URL refused and the rule that refused it, if any (cheap while none was).
    pub fn refusal(&self) -> Option<(String, String)> {
        if !self.refused.load(Ordering::Acquire) {
            return None;
        }
        self.refusal.lock().clone()
    }

    /// Remembers libavformat's `io_open` (the context's, before ours replaces it).
    pub(super) fn set_default(&self, open: Option<IoOpen>) {
        *self.default_open.lock() = open;
    }

    fn refuse(&self, url: &str, rule: String) {
        let mut first = self.refusal.lock();
        if first.is_none() {
            *first = Some((url.to_owned(), rule));
        }
        self.refused.store(true, Ordering::Release);
    }
}

/// The `io_open` installed on a guarded context: the check, then libavformat's own open
/// (of the URL, or of what the check says to open instead). Never unwinds into C.
pub(super) unsafe extern "C" fn guarded_io_open(
    s: *mut sys::AVFormatContext,
    pb: *mut *mut sys::AVIOContext,
    url: *const c_char,
    flags: c_int,
    options: *mut *mut sys::AVDictionary,
) -> c_int {
    if s.is_null() || url.is_null() {
        return sys::AVERROR(libc::EINVAL);
    }
    // SAFETY: `s` is the context this callback was installed on (or a demuxer's call on its behalf passing it), whose `opaque` is the guard, kept alive by the owner of the context for as long as the context exists.
    let guard = unsafe { (*s).opaque.cast::<OpenGuard>().as_ref() };
    let Some(guard) = guard else {
        return sys::AVERROR(libc::EINVAL);
    };
    // SAFETY: libavformat passes a NUL-terminated URL valid for the call.
    let named = unsafe { CStr::from_ptr(url) }
        .to_string_lossy()
        .into_owned();
    let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| (guard.check)(&named)));
    let instead = match verdict {
        Ok(OpenVerdict::Open) => None,
        Ok(OpenVerdict::OpenInstead(other)) => match CString::new(other) {
            Ok(c) => Some(c),
            Err(_) => return sys::AVERROR(libc::EINVAL),
        },
        Ok(OpenVerdict::Refuse(rule)) => {
            guard.refuse(&named, rule);
            return sys::AVERROR(libc::EACCES);
        }
        Err(_) => return sys::AVERROR(libc::EIO),
    };
    let Some(open) = *guard.default_open.lock() else {
        return sys::AVERROR(libc::ENOSYS);
    };
    let url = instead.as_ref().map_or(url, |c| c.as_ptr());
    // Options of our own: into the caller's dictionary, or one made for this call.
    let mut own: *mut sys::AVDictionary = std::ptr::null_mut();
    let dict = if options.is_null() { &mut own } else { options };
    for (k, v) in &guard.options {
        // SAFETY: `dict` points at a valid (possibly NULL) dictionary pointer, the caller's or `own`; the strings are NUL-terminated and copied by av_dict_set.
        unsafe { sys::av_dict_set(dict, k.as_ptr(), v.as_ptr(), 0) };
    }
    // SAFETY: libavformat's own io_open, called with the arguments it was given (the URL possibly replaced by a NUL-terminated string that lives across the call, the options possibly our own dictionary).
    let ret = unsafe { open(s, pb, url, flags, dict) };
    // SAFETY: `own` is NULL or a dictionary this call made; freed once, here.
    unsafe { sys::av_dict_free(&mut own) };
    if ret < 0 {
        if let Some(explain) = &guard.explain {
            let why = std::panic::catch_unwind(AssertUnwindSafe(|| explain(&named)));
            if let Ok(Some(rule)) = why {
                guard.refuse(&named, rule);
            }
        }
    }
    ret
}

thread_local! {
    /// The guard of the context in a call on this thread (see [`GuardedCall`]).
    static IN_CALL: RefCell<Option<Arc<OpenGuard>>> = const { RefCell::new(None) };
}

/// While alive, the guard is the one a logged refusal on this thread is recorded in.
pub(super) struct GuardedCall {
    previous: Option<Arc<OpenGuard>>,
}

impl GuardedCall {
    /// Enters a call on a context guarded by `guard` (nothing to do without one).
    pub(super) fn enter(guard: Option<&Arc<OpenGuard>>) -> Self {
        let previous = IN_CALL.with(|c| c.replace(guard.cloned()));
        Self { previous }
    }
}

impl Drop for GuardedCall {
    fn drop(&mut self) {
        let previous = self.previous.take();
        IN_CALL.with(|c| *c.borrow_mut() = previous);
    }
}

/// A log line of FFmpeg's that says a demuxer refused a URL itself: the URL is recorded in
/// the guard of the call under way on this thread, with the rule the guard's check gives
/// it (or the demuxer's own, when the check would have let it through).
pub(super) fn note_logged_refusal(line: &str) {
    let Some(url) = refused_in_log(line) else {
        return;
    };
    IN_CALL.with(|c| {
        let current = c.borrow();
        let Some(guard) = current.as_ref() else {
            return;
        };
        let rule = match (guard.check)(url) {
            OpenVerdict::Refuse(rule) => rule,
            _ => "the HLS demuxer reads only media file extensions from a playlist".to_owned(),
        };
        guard.refuse(url, rule);
    });
}

/// The URL of a log line saying the HLS demuxer refused it itself (FFmpeg's wording, and
/// the wording of Debian's security-patched 5.1).
fn refused_in_log(line: &str) -> Option<&str> {
    const EXTENSION: &str = "is not a common multimedia extension, blocked for security";
    const SEGMENT: &str = " is not in allowed_segment_extensions";
    if let Some((before, _)) = line.split_once(EXTENSION) {
        return before.split('\'').nth(1);
    }
    let (before, _) = line.split_once(SEGMENT)?;
    before.rsplit_once("URL ").map(|(_, url)| url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_the_hls_demuxer_only_logs_are_read() {
        let patched = "URL file:///etc/passwd is not in allowed_segment_extensions\n";
        assert_eq!(refused_in_log(patched), Some("file:///etc/passwd"));
        let upstream = "Filename extension of 'file:///etc/x.txt' is not a common multimedia \
                        extension, blocked for security reasons.\n";
        assert_eq!(refused_in_log(upstream), Some("file:///etc/x.txt"));
        assert_eq!(refused_in_log("Opening 'http://h/x.ts' for reading"), None);
    }
}
