//! A custom input: an `AVIOContext` whose reads (and seeks) are served by Rust code, a
//! [`ByteSource`], instead of one of FFmpeg's protocols. [`CustomIo`] owns the context, its
//! buffer and the source the callbacks reach through the context's `opaque`; and the lookup
//! that says what kind of input format a short name is ([`input_format_kind`]).

use std::io::{self, SeekFrom};
use std::os::raw::{c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ffmpeg_sys_next as sys;

use super::avio_owner::{AvioOwner, Callbacks, OpaqueState};
use super::format::Interrupt;
use super::{cstring, AvError};

/// Why a [`ByteSource`] call failed.
#[derive(Debug, Clone)]
pub enum IoFailure {
    /// An I/O error, as the source reported it (kept whole, shared: it becomes the source
    /// of the stream's error). [`io::ErrorKind::Interrupted`] means "nothing yet": the call
    /// is made again once the interrupt has been checked.
    Io(Arc<io::Error>),
    /// The source panicked; the payload's text.
    Panicked(String),
}

impl IoFailure {
    /// The AVERROR FFmpeg is given for this failure: the OS error's, else `EIO` (or
    /// `AVERROR_EXTERNAL` for a panic).
    pub fn code(&self) -> c_int {
        match self {
            IoFailure::Io(e) => match e.raw_os_error() {
                Some(errno @ 1..=4095) => sys::AVERROR(errno),
                _ => sys::AVERROR(libc::EIO),
            },
            IoFailure::Panicked(_) => sys::AVERROR_EXTERNAL,
        }
    }

    fn is_retry(&self) -> bool {
        matches!(self, IoFailure::Io(e) if e.kind() == io::ErrorKind::Interrupted)
    }
}

impl From<io::Error> for IoFailure {
    fn from(e: io::Error) -> Self {
        IoFailure::Io(Arc::new(e))
    }
}

/// What a custom input reads from. Called on the thread that drives the demuxer, from
/// inside FFmpeg's calls, under `catch_unwind`.
pub trait ByteSource: Send {
    /// Reads up to `buf.len()` bytes; `Ok(0)` is the end of the input.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoFailure>;
    /// Moves the read position (seekable sources only); returns the new position.
    fn seek(&mut self, to: SeekFrom) -> Result<u64, IoFailure>;
    /// The input's size in bytes (seekable sources only), the position left as it was.
    fn size(&mut self) -> Result<u64, IoFailure>;
}

// SAFETY: `read_callback` and `seek_callback` take their opaque as a `*mut IoState`, and
// nothing else.
unsafe impl OpaqueState for IoState {
    const CALLBACKS: Callbacks = Callbacks::Read(read_callback, seek_callback);
}

/// What the callbacks reach through `opaque`: the source and what they learnt.
struct IoState {
    source: Box<dyn ByteSource>,
    seekable: bool,
    interrupt: Arc<Interrupt>,
    /// The first failure the source reported (the root cause of what FFmpeg says next).
    failure: Option<IoFailure>,
    /// FFmpeg asked a source that cannot seek to seek.
    seek_refused: bool,
    /// A call was cut by the interrupt's deadline (no data in time). Kept: FFmpeg keeps the
    /// error in the context and later reads fail without calling back.
    timed_out: bool,
}

impl IoState {
    /// True when the interrupt trips (stop, abort, the deadline): the call gives up.
    fn cut(&mut self) -> bool {
        if !self.interrupt.should_abort() {
            return false;
        }
        self.timed_out |= self.interrupt.timed_out() && !self.interrupt.is_interrupted();
        true
    }

    fn fail(&mut self, failure: IoFailure) -> c_int {
        let code = failure.code();
        self.failure.get_or_insert(failure);
        code
    }

    fn read(&mut self, buf: &mut [u8]) -> c_int {
        loop {
            if self.cut() {
                return sys::AVERROR_EXIT;
            }
            match self.source.read(buf) {
                Ok(0) => return sys::AVERROR_EOF,
                // A count beyond the buffer would make FFmpeg read past it: refused.
                Ok(n) => match c_int::try_from(n).ok().filter(|_| n <= buf.len()) {
                    Some(n) => return n,
                    None => {
                        let e = io::Error::other(format!("read {n} bytes into {}", buf.len()));
                        return self.fail(e.into());
                    }
                },
                Err(f) if f.is_retry() => continue,
                Err(f) => return self.fail(f),
            }
        }
    }

    fn seek(&mut self, offset: i64, whence: c_int) -> i64 {
        let whence = whence & !sys::AVSEEK_FORCE;
        if whence == sys::AVSEEK_SIZE {
            // An unknown size is no failure: FFmpeg reads on without it.
            let size = self.seekable.then(|| self.source.size().ok()).flatten();
            return size.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
        }
        if !self.seekable {
            // `avio_size` asks for the end when AVSEEK_SIZE fails: that is no need to seek.
            self.seek_refused |= whence != libc::SEEK_END;
            return i64::from(sys::AVERROR(libc::ESPIPE));
        }
        let to = match (whence, u64::try_from(offset)) {
            (libc::SEEK_SET, Ok(o)) => SeekFrom::Start(o),
            (libc::SEEK_CUR, _) => SeekFrom::Current(offset),
            (libc::SEEK_END, _) => SeekFrom::End(offset),
            _ => return i64::from(sys::AVERROR(libc::EINVAL)),
        };
        loop {
            if self.cut() {
                return i64::from(sys::AVERROR_EXIT);
            }
            match self.source.seek(to) {
                Ok(pos) => {
                    return i64::try_from(pos).unwrap_or(i64::from(sys::AVERROR(libc::EOVERFLOW)))
                }
                Err(f) if f.is_retry() => continue,
                Err(f) => return i64::from(self.fail(f)),
            }
        }
    }
}

/// An `AVIOContext` reading from a [`ByteSource`]: the context, its `av_malloc`ed buffer
/// and the state its callbacks use, freed together ([`AvioOwner`]).
pub struct CustomIo {
    io: AvioOwner<IoState>,
}

impl CustomIo {
    /// A context reading from `source`; with `seekable`, FFmpeg may seek it. Every read
    /// and seek first checks `interrupt` (and fails with `AVERROR_EXIT` once it trips).
    pub fn new(
        source: Box<dyn ByteSource>,
        seekable: bool,
        interrupt: Arc<Interrupt>,
    ) -> Result<Self, AvError> {
        let state = IoState {
            source,
            seekable,
            interrupt,
            failure: None,
            seek_refused: false,
            timed_out: false,
        };
        // A seek callback is installed even for a source that cannot seek, so that FFmpeg's
        // need of one is known (the context is marked non-seekable below).
        let io = AvioOwner::new(state)?;
        // SAFETY: the context was just allocated and is ours; `seekable` is a plain field.
        unsafe {
            (*io.as_ptr()).seekable = if seekable {
                sys::AVIO_SEEKABLE_NORMAL
            } else {
                0
            }
        };
        Ok(Self { io })
    }

    /// The context, for an `AVFormatContext`'s `pb`.
    pub(super) fn as_ptr(&self) -> *mut sys::AVIOContext {
        self.io.as_ptr()
    }

    fn state(&mut self) -> &mut IoState {
        self.io.state()
    }

    /// The first failure the source reported, taken.
    pub fn take_failure(&mut self) -> Option<IoFailure> {
        self.state().failure.take()
    }

    /// True when FFmpeg needed to seek a source that cannot seek.
    pub fn seek_refused(&mut self) -> bool {
        self.state().seek_refused
    }

    /// True once a read or seek was cut by the interrupt's deadline.
    pub fn timed_out(&mut self) -> bool {
        self.state().timed_out
    }
}

/// The `read_packet` callback: the source's bytes, `AVERROR_EOF` at its end, the failure's
/// code otherwise. Never unwinds into C.
unsafe extern "C" fn read_callback(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    let Ok(len) = usize::try_from(size) else {
        return sys::AVERROR(libc::EINVAL);
    };
    if opaque.is_null() || buf.is_null() {
        return sys::AVERROR(libc::EINVAL);
    }
    // SAFETY: opaque is the IoState of the CustomIo whose context calls us; it lives until that context is freed, and FFmpeg calls back only from inside a call on that context, while nothing else touches the state.
    let state = unsafe { &mut *opaque.cast::<IoState>() };
    // SAFETY: FFmpeg hands us its buffer, valid for `size` bytes, for the duration of the call.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| state.read(out)));
    result.unwrap_or_else(|p| state.fail(IoFailure::Panicked(panic_text(&*p))))
}

/// The `seek` callback (`AVSEEK_SIZE` included). Never unwinds into C.
unsafe extern "C" fn seek_callback(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    if opaque.is_null() {
        return i64::from(sys::AVERROR(libc::EINVAL));
    }
    // SAFETY: as in read_callback: the state of the CustomIo whose context calls us.
    let state = unsafe { &mut *opaque.cast::<IoState>() };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| state.seek(offset, whence)));
    result.unwrap_or_else(|p| i64::from(state.fail(IoFailure::Panicked(panic_text(&*p)))))
}

/// The text of a panic payload (`ffi` may not use the crate's panic net).
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// What an input format (demuxer) is, as far as a forced format goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormatKind {
    /// A demuxer reading a byte stream (through a protocol or a custom input).
    Stream,
    /// A demuxer that opens its input itself (`AVFMT_NOFILE`: RTSP, image sequences,
    /// script loaders) rather than reading a byte stream.
    OpensItself,
    /// A libavdevice input: a camera, a sound card, a screen, a frame buffer, `lavfi`.
    Device,
}

/// What the input format FFmpeg knows by the short name `name` is; `None` when it knows
/// none.
pub fn input_format_kind(name: &str) -> Option<InputFormatKind> {
    super::init();
    let c_name = cstring(name, "av_find_input_format").ok()?;
    // SAFETY: c_name is a valid C string; the result is NULL or a static descriptor.
    let fmt = unsafe { sys::av_find_input_format(c_name.as_ptr()) };
    if fmt.is_null() {
        return None;
    }
    // SAFETY: fmt is a static descriptor; its priv_class, when set, is a static AVClass.
    let (flags, category) = unsafe {
        let class = (*fmt).priv_class;
        let category = (!class.is_null()).then(|| (*class).category as i32);
        ((*fmt).flags, category)
    };
    let devices = sys::AVClassCategory::AV_CLASS_CATEGORY_DEVICE_VIDEO_OUTPUT as i32
        ..=sys::AVClassCategory::AV_CLASS_CATEGORY_DEVICE_INPUT as i32;
    if category.is_some_and(|c| devices.contains(&c)) || is_listed_device(fmt) {
        Some(InputFormatKind::Device)
    } else if flags & sys::AVFMT_NOFILE != 0 {
        Some(InputFormatKind::OpensItself)
    } else {
        Some(InputFormatKind::Stream)
    }
}

/// True when libavdevice lists `fmt` among its video or audio inputs.
fn is_listed_device(fmt: *const sys::AVInputFormat) -> bool {
    let lists: [unsafe extern "C" fn(*const sys::AVInputFormat) -> *const sys::AVInputFormat; 2] = [
        sys::av_input_video_device_next,
        sys::av_input_audio_device_next,
    ];
    lists.into_iter().any(|next| {
        let mut d = std::ptr::null();
        loop {
            // SAFETY: d is NULL or a descriptor the same iterator returned; results are static.
            d = unsafe { next(d) };
            if d.is_null() {
                return false;
            }
            if std::ptr::eq(d, fmt) {
                return true;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read, Seek};

    use super::*;
    use crate::ffi::{Dictionary, InputContext, Packet, Step};

    /// A WAV file: 8 kHz mono 16-bit, `samples` samples of a ramp.
    fn wav(samples: u32) -> Vec<u8> {
        let data = samples * 2;
        let mut w = Vec::new();
        w.extend(b"RIFF");
        w.extend((36 + data).to_le_bytes());
        w.extend(b"WAVEfmt ");
        w.extend(16u32.to_le_bytes());
        w.extend(1u16.to_le_bytes()); // PCM
        w.extend(1u16.to_le_bytes()); // mono
        w.extend(8000u32.to_le_bytes());
        w.extend(16000u32.to_le_bytes());
        w.extend(2u16.to_le_bytes());
        w.extend(16u16.to_le_bytes());
        w.extend(b"data");
        w.extend(data.to_le_bytes());
        w.extend((0..samples).flat_map(|i| (i as u16).to_le_bytes()));
        w
    }

    /// Bytes in memory that fail (or panic) once the position passes a point.
    struct Memory {
        bytes: Cursor<Vec<u8>>,
        fail_after: Option<u64>,
        panic_after: Option<u64>,
    }

    impl Memory {
        fn new(bytes: Vec<u8>) -> Self {
            Self {
                bytes: Cursor::new(bytes),
                fail_after: None,
                panic_after: None,
            }
        }
    }

    impl ByteSource for Memory {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoFailure> {
            let at = self.bytes.position();
            if self.panic_after.is_some_and(|p| at > p) {
                panic!("the source's own bug");
            }
            if self.fail_after.is_some_and(|p| at > p) {
                let e = io::Error::new(io::ErrorKind::ConnectionReset, "gone");
                return Err(e.into());
            }
            let end = buf.len().min(1000); // small reads: the failure lands mid-stream
            Ok(self.bytes.read(&mut buf[..end])?)
        }

        fn seek(&mut self, to: SeekFrom) -> Result<u64, IoFailure> {
            Ok(self.bytes.seek(to)?)
        }

        fn size(&mut self) -> Result<u64, IoFailure> {
            Ok(self.bytes.get_ref().len() as u64)
        }
    }

    /// What reading a source to its end gave: the bytes in packets, the failure kept,
    /// whether a seek was refused.
    fn read_all(source: Memory, seekable: bool) -> (usize, Option<IoFailure>, bool) {
        let interrupt = Interrupt::new();
        let io = CustomIo::new(Box::new(source), seekable, interrupt.clone()).unwrap();
        let opened = InputContext::open_custom(io, None, Dictionary::new(), interrupt);
        let (mut input, _) = opened.map_err(|(e, _)| e).expect("a WAV opens");
        assert!(input.format_name().contains("wav"));
        let (mut pkt, mut bytes) = (Packet::new(), 0);
        while let Ok(Step::Ready(())) = input.read(&mut pkt) {
            bytes += pkt.size();
        }
        let io = input.custom_io().expect("a custom input");
        assert!(!io.timed_out());
        (bytes, io.take_failure(), io.seek_refused())
    }

    #[test]
    fn a_source_is_read_to_its_end_seekable_or_not() {
        for seekable in [true, false] {
            let (bytes, failure, seek_refused) = read_all(Memory::new(wav(8000)), seekable);
            assert_eq!(bytes, 16000, "seekable: {seekable}");
            assert!(failure.is_none(), "{failure:?}");
            assert!(!seek_refused);
        }
    }

    #[test]
    fn a_failure_and_a_panic_are_kept_as_the_root_cause() {
        let mut failing = Memory::new(wav(8000));
        failing.fail_after = Some(5000);
        let (bytes, failure, _) = read_all(failing, false);
        assert!(bytes < 16000, "{bytes}");
        match failure {
            Some(IoFailure::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                assert_eq!(e.to_string(), "gone");
            }
            other => panic!("{other:?}"),
        }
        let mut panicking = Memory::new(wav(8000));
        panicking.panic_after = Some(5000);
        let (_, failure, _) = read_all(panicking, true);
        assert!(
            matches!(&failure, Some(IoFailure::Panicked(m)) if m == "the source's own bug"),
            "{failure:?}"
        );
    }

    #[test]
    fn an_interrupt_cuts_the_open_and_an_unknown_format_is_refused() {
        let interrupt = Interrupt::new();
        interrupt.interrupt();
        let io = CustomIo::new(Box::new(Memory::new(wav(800))), true, interrupt.clone()).unwrap();
        let Err((e, mut io)) = InputContext::open_custom(io, None, Dictionary::new(), interrupt)
        else {
            panic!("opened although interrupted");
        };
        assert!(e.is_interrupted(), "{e}");
        assert!(io.take_failure().is_none(), "the source was never called");
        let forced = InputContext::open_custom(
            CustomIo::new(Box::new(Memory::new(Vec::new())), false, Interrupt::new()).unwrap(),
            Some("nosuchformat"),
            Dictionary::new(),
            Interrupt::new(),
        );
        assert!(forced.is_err_and(|(e, _)| e.is_demuxer_not_found()));
    }

    #[test]
    fn format_names_are_told_apart() {
        assert_eq!(input_format_kind("mpegts"), Some(InputFormatKind::Stream));
        assert_eq!(input_format_kind("h264"), Some(InputFormatKind::Stream));
        assert_eq!(input_format_kind("lavfi"), Some(InputFormatKind::Device));
        assert_eq!(input_format_kind("v4l2"), Some(InputFormatKind::Device));
        assert_eq!(
            input_format_kind("image2"),
            Some(InputFormatKind::OpensItself)
        );
        assert_eq!(
            input_format_kind("rtsp"),
            Some(InputFormatKind::OpensItself)
        );
        assert_eq!(input_format_kind("nosuchformat"), None);
    }
}
