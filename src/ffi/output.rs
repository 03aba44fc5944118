//! `AVFormatContext` owner for output: a muxer whose output is swapped at each segment
//! cut, written through a custom output ([`WriteIo`]) into whatever store the caller's
//! writer reaches.

use std::os::raw::c_void;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use ffmpeg_sys_next as sys;

use super::avio_write::WriteIo;
use super::format::{interrupt_callback, Interrupt};
use super::{check, cstring, AvError, CodecContext, Packet, Rational};

/// An output muxer context whose file (`pb`) can be closed and reopened, so one muxer
/// writes a run of segments with continuous timestamps (as FFmpeg's own HLS muxer does).
pub struct OutputContext {
    ptr: NonNull<sys::AVFormatContext>,
    /// Polled by FFmpeg's output I/O (the context's interrupt callback points at it); kept
    /// alive here for as long as the context can call it.
    _interrupt: Arc<Interrupt>,
    /// The custom output `pb` points at, while one is open (see [`Self::open_writer`]).
    writer: Option<WriteIo>,
}

// SAFETY: a muxer context has no thread affinity and this owner is its only handle.
unsafe impl Send for OutputContext {}

impl OutputContext {
    /// Allocates a muxer by short name (e.g. `mpegts`) whose I/O gives up once `interrupt`
    /// trips.
    pub fn new(format_name: &str, interrupt: Arc<Interrupt>) -> Result<Self, AvError> {
        super::init();
        let name = cstring(format_name, "avformat_alloc_output_context2")?;
        let mut raw = ptr::null_mut();
        let (fmt, none, no_file) = (name.as_ptr(), ptr::null(), ptr::null());
        // SAFETY: raw receives a new context; the format name is a valid C string.
        let ret = unsafe { sys::avformat_alloc_output_context2(&mut raw, none, fmt, no_file) };
        check(ret, "avformat_alloc_output_context2")?;
        let ptr = NonNull::new(raw).ok_or(AvError::new(
            sys::AVERROR(libc::ENOMEM),
            "avformat_alloc_output_context2",
        ))?;
        let opaque = Arc::as_ptr(&interrupt) as *mut c_void;
        // SAFETY: the context was just allocated and is ours; the opaque points at the Interrupt this owner keeps alive (the Arc field) until the context is freed in Drop.
        unsafe {
            (*ptr.as_ptr()).interrupt_callback = sys::AVIOInterruptCB {
                callback: Some(interrupt_callback),
                opaque,
            };
        }
        Ok(Self {
            ptr,
            _interrupt: interrupt,
            writer: None,
        })
    }

    /// Makes `out` the muxer's output (a custom `AVIOContext`, not seekable): what it
    /// writes goes to `out` until [`Self::close_writer`].
    pub fn open_writer(&mut self, out: Box<dyn std::io::Write + Send>) -> Result<(), AvError> {
        assert!(!self.has_file(), "open_writer with an output already open");
        let io = WriteIo::new(out)?;
        // SAFETY: pb is NULL (asserted); the custom context is owned by self.writer, which is kept until close_writer or Drop has set pb back to NULL; AVFMT_FLAG_CUSTOM_IO tells FFmpeg never to close it.
        unsafe {
            (*self.ptr.as_ptr()).pb = io.as_ptr();
            (*self.ptr.as_ptr()).flags |= sys::AVFMT_FLAG_CUSTOM_IO;
        }
        self.writer = Some(io);
        Ok(())
    }

    /// Flushes everything written into the writer and detaches it (the writer is dropped:
    /// its owner takes what it wrote from where it shares it). Returns the bytes written.
    pub fn close_writer(&mut self) -> Result<u64, AvError> {
        let Some(mut io) = self.writer.take() else {
            return Ok(0);
        };
        let flushed = io.flush();
        // SAFETY: pb points at io's context, which is still alive here; it is unset before io is dropped.
        unsafe { (*self.ptr.as_ptr()).pb = ptr::null_mut() };
        drop(io);
        flushed
    }

    /// Pushes what the writer's buffer holds into it now (a chunk is complete), keeping it
    /// attached.
    pub fn flush_writer(&mut self) -> Result<(), AvError> {
        match self.writer.as_mut() {
            Some(io) => io.flush().map(|_| ()),
            None => Ok(()),
        }
    }

    /// Adds a stream carrying what `encoder` produces; returns its index.
    pub fn add_stream(&mut self, encoder: &CodecContext) -> Result<i32, AvError> {
        // SAFETY: the context is ours; the new stream is owned by it; parameters are copied from an opened encoder.
        unsafe {
            let st = sys::avformat_new_stream(self.ptr.as_ptr(), ptr::null());
            if st.is_null() {
                return Err(AvError::new(
                    sys::AVERROR(libc::ENOMEM),
                    "avformat_new_stream",
                ));
            }
            check(
                sys::avcodec_parameters_from_context((*st).codecpar, encoder.as_ptr()),
                "avcodec_parameters_from_context",
            )?;
            (*st).time_base = encoder.time_base().to_av();
            Ok((*st).index)
        }
    }

    /// Sets the four-character code a stream is written with (e.g. `hvc1`), before the
    /// header.
    pub fn set_codec_tag(&mut self, index: i32, tag: [u8; 4]) {
        let code = u32::from_le_bytes(tag);
        // SAFETY: callers pass indices returned by add_stream, all < nb_streams; codecpar is the stream's own.
        unsafe {
            let ctx = self.ptr.as_ref();
            assert!((index as u32) < ctx.nb_streams);
            (*(**ctx.streams.add(index as usize)).codecpar).codec_tag = code;
        }
    }

    /// The time base the muxer chose for a stream (valid after the header is written).
    pub fn stream_time_base(&self, index: i32) -> Rational {
        // SAFETY: callers pass indices returned by add_stream, all < nb_streams.
        unsafe {
            let ctx = self.ptr.as_ref();
            assert!((index as u32) < ctx.nb_streams);
            Rational::from_av((**ctx.streams.add(index as usize)).time_base)
        }
    }

    /// Sets an option of the muxer itself (e.g. `mpegts_flags`).
    pub fn set_muxer_option(&mut self, key: &str, value: &str) -> Result<(), AvError> {
        let k = cstring(key, "av_opt_set")?;
        let v = cstring(value, "av_opt_set")?;
        let ctx = self.ptr.as_ptr();
        // SAFETY: priv_data is the muxer's AVClass-enabled private context (or NULL, which av_opt_set rejects with an error code); the strings are valid C strings.
        let ret = unsafe { sys::av_opt_set((*ctx).priv_data, k.as_ptr(), v.as_ptr(), 0) };
        check(ret, "av_opt_set")?;
        Ok(())
    }

    /// Sets an option of the format context itself (e.g. `output_ts_offset`).
    pub fn set_format_option(&mut self, key: &str, value: &str) -> Result<(), AvError> {
        let k = cstring(key, "av_opt_set")?;
        let v = cstring(value, "av_opt_set")?;
        let ctx = self.ptr.as_ptr();
        // SAFETY: an AVFormatContext starts with its AVClass, as av_opt_set requires; the strings are valid C strings.
        let ret = unsafe { sys::av_opt_set(ctx.cast(), k.as_ptr(), v.as_ptr(), 0) };
        check(ret, "av_opt_set")?;
        Ok(())
    }

    /// True while a file is open for writing.
    pub fn has_file(&self) -> bool {
        // SAFETY: reading a plain field of our context.
        !unsafe { self.ptr.as_ref().pb }.is_null()
    }

    /// Writes the container header (the file must be open).
    pub fn write_header(&mut self) -> Result<(), AvError> {
        // SAFETY: the context has its streams and an open pb; NULL options are allowed.
        let ret = unsafe { sys::avformat_write_header(self.ptr.as_ptr(), ptr::null_mut()) };
        check(ret, "avformat_write_header")?;
        Ok(())
    }

    /// Writes one packet as given (the caller interleaves); the packet keeps its data.
    pub fn write_packet(&mut self, pkt: &mut Packet) -> Result<(), AvError> {
        // SAFETY: header written, packet valid with a stream index of this muxer.
        let ret = unsafe { sys::av_write_frame(self.ptr.as_ptr(), pkt.as_mut_ptr()) };
        check(ret, "av_write_frame")?;
        Ok(())
    }

    /// Flushes data the muxer buffered internally into the current file.
    pub fn flush(&mut self) -> Result<(), AvError> {
        // SAFETY: a NULL packet asks a muxer with AVFMT_ALLOW_FLUSH to flush; others ignore it.
        let ret = unsafe { sys::av_write_frame(self.ptr.as_ptr(), ptr::null_mut()) };
        check(ret, "av_write_frame")?;
        Ok(())
    }

    /// Writes the trailer (flushing everything buffered) into the current file.
    pub fn write_trailer(&mut self) -> Result<(), AvError> {
        // SAFETY: the header was written on this context.
        let ret = unsafe { sys::av_write_trailer(self.ptr.as_ptr()) };
        check(ret, "av_write_trailer")?;
        Ok(())
    }
}

impl Drop for OutputContext {
    fn drop(&mut self) {
        // SAFETY: we own the context and its pb (if open); both are freed exactly once here. A custom pb belongs to self.writer (dropped after this body): it is only unset here.
        unsafe {
            if self.writer.is_some() {
                (*self.ptr.as_ptr()).pb = ptr::null_mut();
            }
            if !self.ptr.as_ref().pb.is_null() {
                sys::avio_closep(&mut self.ptr.as_mut().pb);
            }
            sys::avformat_free_context(self.ptr.as_ptr());
        }
    }
}
