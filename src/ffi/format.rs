//! `AVFormatContext` owners: an input (demuxer) with a cancellable interrupt callback, and
//! an output (muxer) whose file can be swapped between segments.

use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_sys_next as sys;

use super::avio::CustomIo;
use super::open_guard::{guarded_io_open, GuardedCall, OpenGuard};
use super::{check, cstring, step, AvError, CodecContext, Dictionary, Packet, Rational, Step};

/// Cancels blocking FFmpeg I/O: FFmpeg polls it through `AVIOInterruptCB` while it waits.
///
/// It trips when [`Interrupt::interrupt`] was called (stop or abort) or when an armed
/// deadline passes (an I/O timeout), so no read or connect waits longer than we allow.
#[derive(Debug)]
pub struct Interrupt {
    base: Instant,
    interrupted: AtomicBool,
    /// Milliseconds after `base` at which I/O gives up; 0 = no deadline.
    deadline_ms: AtomicU64,
    timed_out: AtomicBool,
}

impl Interrupt {
    /// A fresh, untripped interrupt.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            interrupted: AtomicBool::new(false),
            deadline_ms: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        })
    }

    /// Makes every blocking FFmpeg call on inputs using this interrupt return promptly.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
    }

    /// True once [`Interrupt::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Gives the next blocking operation `timeout` before it is cut off.
    pub fn arm(&self, timeout: Duration) {
        let at = self.base.elapsed() + timeout;
        self.timed_out.store(false, Ordering::Relaxed);
        self.deadline_ms
            .store((at.as_millis() as u64).max(1), Ordering::Relaxed);
    }

    /// Makes an armed deadline pass now (a watchdog cutting a read that makes no progress).
    pub fn expire(&self) {
        if self.deadline_ms.load(Ordering::Relaxed) != 0 {
            self.deadline_ms.store(1, Ordering::Relaxed);
        }
    }

    /// Removes the deadline.
    pub fn disarm(&self) {
        self.deadline_ms.store(0, Ordering::Relaxed);
    }

    /// True when the last armed deadline tripped.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub(super) fn should_abort(&self) -> bool {
        if self.is_interrupted() {
            return true;
        }
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        if deadline != 0 && self.base.elapsed().as_millis() as u64 >= deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// The `AVIOInterruptCB` function. Never unwinds into C: atomics only, under `catch_unwind`.
pub(super) unsafe extern "C" fn interrupt_callback(opaque: *mut c_void) -> c_int {
    if opaque.is_null() {
        return 0;
    }
    // SAFETY: opaque is `Arc::as_ptr` of an Interrupt that the InputContext or OutputContext keeps alive for as long as FFmpeg can call back (until the context is freed).
    let state = unsafe { &*(opaque as *const Interrupt) };
    std::panic::catch_unwind(|| c_int::from(state.should_abort())).unwrap_or(1)
}

/// What the pipeline needs to know about one elementary stream of an input.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Index in the container.
    pub index: usize,
    /// Codec name (e.g. `h264`), or `none`.
    pub codec_name: String,
    /// Time base of the stream's timestamps.
    pub time_base: Rational,
    /// FFmpeg's best guess of the frame rate (video); 0/0 when unknown.
    pub frame_rate: Rational,
    /// Width in pixels (video).
    pub width: i32,
    /// Height in pixels (video).
    pub height: i32,
    /// Sample aspect ratio (video); 0/1 when unknown.
    pub sample_aspect_ratio: Rational,
    /// Sample rate (audio).
    pub sample_rate: i32,
    /// The stream's display matrix (`AV_PKT_DATA_DISPLAYMATRIX` side data, as phones write
    /// it into MP4/MOV): how the stored picture is rotated and flipped for display; `None`
    /// when the stream has none.
    pub display_matrix: Option<[i32; 9]>,
}

/// An opened input (`avformat_open_input` + `avformat_find_stream_info`).
pub struct InputContext {
    ptr: NonNull<sys::AVFormatContext>,
    /// Keeps the callback's opaque pointer valid for the context's whole life.
    _interrupt: Arc<Interrupt>,
    /// The custom input the context reads from (its `pb`), freed after the context.
    custom_io: Option<CustomIo>,
    /// The check of every URL the context opens (its `opaque`), freed after the context.
    guard: Option<Arc<OpenGuard>>,
}

// SAFETY: a demuxer context has no thread affinity; this owner is its only handle, and the interrupt it points at is Sync (atomics only); the custom input is Send.
unsafe impl Send for InputContext {}

/// A failed [`InputContext::open_custom`]: the error, and the custom input handed back (to
/// read what its source reported).
pub type CustomOpenError = (AvError, CustomIo);

impl InputContext {
    /// Opens `url` (with an optional forced input format such as `lavfi`) and reads its
    /// header; [`InputContext::find_stream_info`] reads further. `options` go to the
    /// demuxer and protocol; keys they did not recognise are returned alongside. With a
    /// `guard`, every URL the context opens (the source itself, and what it names) is
    /// checked by it first.
    pub fn open(
        url: &str,
        format: Option<&str>,
        options: Dictionary,
        interrupt: Arc<Interrupt>,
        guard: Option<Arc<OpenGuard>>,
    ) -> Result<(Self, Vec<String>), AvError> {
        let c_url = cstring(url, "avformat_open_input")?;
        Self::open_with(Some(&c_url), None, format, options, (interrupt, guard)).map_err(|(e, _)| e)
    }

    /// Opens a custom input (its bytes come from `io`'s source), like [`InputContext::open`]
    /// otherwise. The context is told its I/O is custom (`AVFMT_FLAG_CUSTOM_IO`): closing
    /// it leaves `io` alone, which this owner frees after the context.
    pub fn open_custom(
        io: CustomIo,
        format: Option<&str>,
        options: Dictionary,
        interrupt: Arc<Interrupt>,
    ) -> Result<(Self, Vec<String>), CustomOpenError> {
        Self::open_with(None, Some(io), format, options, (interrupt, None))
            .map_err(|(e, io)| (e, io.expect("the custom input is handed back")))
    }

    fn open_with(
        url: Option<&CStr>,
        custom_io: Option<CustomIo>,
        format: Option<&str>,
        mut options: Dictionary,
        (interrupt, guard): (Arc<Interrupt>, Option<Arc<OpenGuard>>),
    ) -> Result<(Self, Vec<String>), (AvError, Option<CustomIo>)> {
        super::init();
        let fmt = match format.map(find_input_format) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Err((e, custom_io)),
            None => ptr::null(),
        };
        // SAFETY: avformat_alloc_context has no preconditions.
        let mut raw = unsafe { sys::avformat_alloc_context() };
        if raw.is_null() {
            let e = AvError::new(sys::AVERROR(libc::ENOMEM), "avformat_alloc_context");
            return Err((e, custom_io));
        }
        let pb = custom_io.as_ref().map_or(ptr::null_mut(), CustomIo::as_ptr);
        let c_url = url.map_or(ptr::null(), CStr::as_ptr);
        // A refusal FFmpeg only logs is recorded in this context's guard.
        let _call = GuardedCall::enter(guard.as_ref());
        // SAFETY: raw is a fresh context; installing the callback before the open means the connect itself is cancellable. The Arc outlives the context (stored in Self, or held by this frame until avformat_open_input has freed the context on failure). A custom pb is set before the open, with AVFMT_FLAG_CUSTOM_IO, so FFmpeg never closes it (on failure either); it outlives the context (stored in Self, or handed back after the context is freed). A NULL url is allowed (custom input). A guard becomes the context's opaque and its io_open wraps the context's own: the Arc outlives the context like the interrupt's.
        let ret = unsafe {
            (*raw).interrupt_callback = sys::AVIOInterruptCB {
                callback: Some(interrupt_callback),
                opaque: Arc::as_ptr(&interrupt) as *mut c_void,
            };
            if !pb.is_null() {
                (*raw).pb = pb;
                (*raw).flags |= sys::AVFMT_FLAG_CUSTOM_IO;
            }
            if let Some(guard) = &guard {
                guard.set_default((*raw).io_open);
                (*raw).opaque = Arc::as_ptr(guard) as *mut c_void;
                (*raw).io_open = Some(guarded_io_open);
            }
            sys::avformat_open_input(&mut raw, c_url, fmt, options.as_mut_ptr())
        };
        // On failure avformat_open_input frees the context and sets raw to NULL.
        if let Err(e) = check(ret, "avformat_open_input") {
            return Err((e, custom_io));
        }
        let ctx = Self {
            ptr: NonNull::new(raw).expect("avformat_open_input succeeded with NULL"),
            _interrupt: interrupt,
            custom_io,
            guard,
        };
        Ok((ctx, options.keys()))
    }

    /// The first URL this context's guard refused and the rule that refused it, if any.
    pub fn refusal(&self) -> Option<(String, String)> {
        self.guard.as_deref().and_then(OpenGuard::refusal)
    }

    /// The custom input this context reads from, if it is one.
    pub fn custom_io(&mut self) -> Option<&mut CustomIo> {
        self.custom_io.as_mut()
    }

    /// Reads (and decodes) the start of the input until every stream's parameters are known.
    /// The probing decoders get `max_pixels` too, so a hostile picture size in a stream
    /// without a container header (MPEG-TS, raw H.264) cannot make them allocate gigabytes.
    pub fn find_stream_info(&mut self, max_pixels: i64) -> Result<(), AvError> {
        let _call = GuardedCall::enter(self.guard.as_ref());
        let mut dicts: Vec<Dictionary> = Vec::with_capacity(self.nb_streams());
        for _ in 0..self.nb_streams() {
            let mut d = Dictionary::new();
            d.set("max_pixels", &max_pixels.to_string())?;
            dicts.push(d);
        }
        let mut ptrs: Vec<*mut sys::AVDictionary> = dicts.iter().map(|d| d.ptr).collect();
        let opts = if ptrs.is_empty() {
            ptr::null_mut()
        } else {
            ptrs.as_mut_ptr()
        };
        // SAFETY: the context is an opened input; opts is NULL or an array of nb_streams dictionaries, which FFmpeg may replace in place (we read the new pointers back).
        let ret = unsafe { sys::avformat_find_stream_info(self.ptr.as_ptr(), opts) };
        for (d, p) in dicts.iter_mut().zip(ptrs) {
            // FFmpeg may have reallocated a dictionary: the owner must free the current one.
            d.ptr = p;
        }
        check(ret, "avformat_find_stream_info")?;
        Ok(())
    }

    /// The demuxer's short name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2` or `hls`.
    pub fn format_name(&self) -> String {
        // SAFETY: an opened input has a static input-format descriptor with a static name.
        unsafe {
            let f = self.ptr.as_ref().iformat;
            if f.is_null() || (*f).name.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*f).name).to_string_lossy().into_owned()
            }
        }
    }

    /// The largest picture any video stream declares so far, as (width, height).
    pub fn largest_declared_picture(&self) -> (i32, i32) {
        (0..self.nb_streams())
            .map(|i| {
                // SAFETY: i < nb_streams; codecpar is valid while the context is open.
                let par = unsafe { &*(*self.stream(i)).codecpar };
                (par.width, par.height)
            })
            .max_by_key(|&(w, h)| i64::from(w) * i64::from(h))
            .unwrap_or((0, 0))
    }

    /// The best stream of a kind (`av_find_best_stream`), if any.
    fn best_stream(&self, kind: sys::AVMediaType) -> Option<usize> {
        // SAFETY: the context is open; no decoder is requested back.
        let r = unsafe {
            sys::av_find_best_stream(self.ptr.as_ptr(), kind, -1, -1, ptr::null_mut(), 0)
        };
        usize::try_from(r).ok()
    }

    /// The best video stream, if any.
    pub fn best_video(&self) -> Option<usize> {
        self.best_stream(sys::AVMediaType::AVMEDIA_TYPE_VIDEO)
    }

    /// The best audio stream, if any.
    pub fn best_audio(&self) -> Option<usize> {
        self.best_stream(sys::AVMediaType::AVMEDIA_TYPE_AUDIO)
    }

    /// Number of streams in the container.
    pub fn nb_streams(&self) -> usize {
        // SAFETY: reading a plain field of an open context.
        unsafe { self.ptr.as_ref().nb_streams as usize }
    }

    fn stream(&self, index: usize) -> *mut sys::AVStream {
        assert!(index < self.nb_streams(), "stream index out of range");
        // SAFETY: index < nb_streams, so the slot holds a valid stream pointer.
        unsafe { *self.ptr.as_ref().streams.add(index) }
    }

    /// Describes one stream.
    pub fn stream_info(&self, index: usize) -> StreamInfo {
        let st = self.stream(index);
        // SAFETY: st and its codecpar are valid while the context is open; the codec name is a static string.
        unsafe {
            let par = &*(*st).codecpar;
            let frame_rate = sys::av_guess_frame_rate(self.ptr.as_ptr(), st, ptr::null_mut());
            let name = sys::avcodec_get_name(par.codec_id);
            StreamInfo {
                index,
                codec_name: if name.is_null() {
                    "none".into()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                },
                time_base: Rational::from_av((*st).time_base),
                frame_rate: Rational::from_av(frame_rate),
                width: par.width,
                height: par.height,
                sample_aspect_ratio: Rational::from_av(par.sample_aspect_ratio),
                sample_rate: par.sample_rate,
                display_matrix: display_matrix(st),
            }
        }
    }

    /// Opens a decoder for a stream. `options` go to the codec (e.g. `max_pixels`); with a
    /// hardware device, FFmpeg decodes on it where the codec supports that.
    pub fn open_decoder(
        &self,
        index: usize,
        options: Dictionary,
        hw: Option<&super::HwDeviceContext>,
    ) -> Result<CodecContext, AvError> {
        let st = self.stream(index);
        // SAFETY: st is a valid stream of this open context; codecpar is valid alongside.
        let (par, tb) = unsafe {
            (
                (*st).codecpar as *const sys::AVCodecParameters,
                (*st).time_base,
            )
        };
        CodecContext::open_decoder(par, Rational::from_av(tb), options, hw)
    }

    /// Tells the demuxer to drop every stream but these (saves reading/parsing work).
    pub fn keep_only(&mut self, keep: &[usize]) {
        for i in 0..self.nb_streams() {
            if !keep.contains(&i) {
                // SAFETY: i < nb_streams; writing the discard field is how callers select streams.
                unsafe { (*self.stream(i)).discard = sys::AVDiscard::AVDISCARD_ALL }
            }
        }
    }

    /// Seeks `index` to the keyframe at or before `ts` (in that stream's time base).
    pub fn seek_before(&mut self, index: usize, ts: i64) -> Result<(), AvError> {
        let (ctx, stream, backward) = (
            self.ptr.as_ptr(),
            index as c_int,
            sys::AVSEEK_FLAG_BACKWARD as c_int,
        );
        // SAFETY: the context is an opened input and index one of its streams.
        let ret = unsafe { sys::av_seek_frame(ctx, stream, ts, backward) };
        check(ret, "av_seek_frame")?;
        Ok(())
    }

    /// Reads the next packet into `pkt` (which is unreferenced first).
    pub fn read(&mut self, pkt: &mut Packet) -> Result<Step<()>, AvError> {
        pkt.unref();
        let _call = GuardedCall::enter(self.guard.as_ref());
        // SAFETY: both the context and the packet are valid and owned by us.
        let ret = unsafe { sys::av_read_frame(self.ptr.as_ptr(), pkt.as_mut_ptr()) };
        step(ret, "av_read_frame")
    }

    /// True when the container knows its duration (a file, not a live feed).
    pub fn has_duration(&self) -> bool {
        self.duration_us().is_some()
    }

    /// The input's duration in microseconds (`AV_TIME_BASE`), when the demuxer knows it.
    pub fn duration_us(&self) -> Option<i64> {
        // SAFETY: reading a plain field of an open context.
        let d = unsafe { self.ptr.as_ref().duration };
        (d != super::NO_PTS && d > 0).then_some(d)
    }
}

impl Drop for InputContext {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: we own the opened context; avformat_close_input closes its I/O (a custom one excepted, flagged AVFMT_FLAG_CUSTOM_IO: the custom_io field frees it after) and frees the context.
        unsafe { sys::avformat_close_input(&mut p) }
    }
}

/// The input format FFmpeg knows by the short name `name`.
fn find_input_format(name: &str) -> Result<*const sys::AVInputFormat, AvError> {
    let c_name = cstring(name, "av_find_input_format")?;
    // SAFETY: c_name is a valid C string; the result is NULL or a static descriptor.
    let f = unsafe { sys::av_find_input_format(c_name.as_ptr()) };
    if f.is_null() {
        Err(AvError::new(
            sys::AVERROR_DEMUXER_NOT_FOUND,
            "av_find_input_format",
        ))
    } else {
        Ok(f)
    }
}

/// The stream's display matrix side data, if it has one of the right size.
fn display_matrix(st: *const sys::AVStream) -> Option<[i32; 9]> {
    let mut size: usize = 0;
    // SAFETY: st is a valid stream of an open context; the call only looks its side data up and writes the size through a pointer to a live local.
    let data = unsafe {
        sys::av_stream_get_side_data(
            st,
            sys::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        )
    };
    if data.is_null() || size < std::mem::size_of::<[i32; 9]>() {
        return None;
    }
    // SAFETY: data points at `size` >= 36 valid bytes owned by the stream, alive during this call; FFmpeg stores the matrix as nine native-endian int32 (read unaligned, as side data carries no alignment promise).
    Some(unsafe { ptr::read_unaligned(data as *const [i32; 9]) })
}

/// FFmpeg's reading of a display matrix (`av_display_rotation_get`): the rotation in
/// degrees, counter-clockwise, in [-180, 180]; NaN for a degenerate matrix.
pub fn display_rotation(matrix: &[i32; 9]) -> f64 {
    // SAFETY: the function reads exactly nine int32 from the pointer, which points at our array.
    unsafe { sys::av_display_rotation_get(matrix.as_ptr()) }
}
