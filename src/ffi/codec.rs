//! `AVCodecContext` owner: decoders opened from a stream's parameters and encoders opened
//! from settings, driven with the send/receive API and classified results.

use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::{check, cstring, step, AvError, Dictionary, Frame, Packet, Rational, Step};

/// Settings for opening a video encoder.
#[derive(Debug, Clone)]
pub struct VideoEncoderSettings {
    /// Encoder name, e.g. `libx264`.
    pub codec: String,
    /// Output width.
    pub width: i32,
    /// Output height.
    pub height: i32,
    /// Pixel format of the frames fed in.
    pub pix_fmt: i32,
    /// Time base of the frames' pts.
    pub time_base: Rational,
    /// Nominal frame rate (rate control uses it).
    pub frame_rate: Rational,
    /// Target bitrate, bits/s.
    pub bit_rate: i64,
    /// VBV max rate, bits/s.
    pub max_rate: i64,
    /// VBV buffer size, bits.
    pub buf_size: i64,
    /// Longest allowed distance between keyframes, in frames.
    pub gop_size: i32,
    /// Encoder threads (0 = the codec's automatic choice).
    pub threads: i32,
    /// Parameter sets in the extradata, not in the bitstream (MP4 wants them there).
    pub global_header: bool,
    /// Codec private options (`preset`, `x264-params`, ...).
    pub options: Vec<(String, String)>,
}

/// Settings for opening an audio encoder.
#[derive(Debug, Clone)]
pub struct AudioEncoderSettings {
    /// Encoder name, e.g. `aac`.
    pub codec: String,
    /// Sample rate.
    pub sample_rate: i32,
    /// Channel count (default layout for that count).
    pub channels: i32,
    /// Target bitrate, bits/s.
    pub bit_rate: i64,
    /// Codec configuration in the extradata (MP4 wants it there; MPEG-TS takes ADTS).
    pub global_header: bool,
}

/// An opened `AVCodecContext` (decoder or encoder), freed with `avcodec_free_context`.
pub struct CodecContext {
    ptr: NonNull<sys::AVCodecContext>,
}

// SAFETY: a codec context has no thread affinity (its internal worker threads are private to it); this owner is the only handle, so moving it between threads is sound.
unsafe impl Send for CodecContext {}

fn alloc(codec: *const sys::AVCodec, op: &'static str) -> Result<CodecContext, AvError> {
    // SAFETY: codec is a valid registered codec descriptor.
    let raw = unsafe { sys::avcodec_alloc_context3(codec) };
    NonNull::new(raw)
        .map(|ptr| CodecContext { ptr })
        .ok_or(AvError::new(sys::AVERROR(libc::ENOMEM), op))
}

fn find_encoder(name: &str) -> Result<*const sys::AVCodec, AvError> {
    let c = cstring(name, "avcodec_find_encoder_by_name")?;
    // SAFETY: c is a valid C string; the result is a static descriptor or NULL.
    let codec = unsafe { sys::avcodec_find_encoder_by_name(c.as_ptr()) };
    if codec.is_null() {
        Err(AvError::new(
            sys::AVERROR_ENCODER_NOT_FOUND,
            "avcodec_find_encoder_by_name",
        ))
    } else {
        Ok(codec)
    }
}

impl CodecContext {
    pub(super) fn open_decoder(
        par: *const sys::AVCodecParameters,
        pkt_time_base: Rational,
        mut options: Dictionary,
        hw: Option<&super::HwDeviceContext>,
    ) -> Result<Self, AvError> {
        // SAFETY: par belongs to an open input stream and is valid for this call.
        let codec = unsafe { sys::avcodec_find_decoder((*par).codec_id) };
        if codec.is_null() {
            return Err(AvError::new(
                sys::AVERROR_DECODER_NOT_FOUND,
                "avcodec_find_decoder",
            ));
        }
        let ctx = alloc(codec, "avcodec_alloc_context3")?;
        // SAFETY: ctx is freshly allocated for this codec; fields are set before open, as the API requires; options is ours and receives the unconsumed entries.
        unsafe {
            let raw = ctx.ptr.as_ptr();
            check(
                sys::avcodec_parameters_to_context(raw, par),
                "avcodec_parameters_to_context",
            )?;
            (*raw).pkt_timebase = pkt_time_base.to_av();
            (*raw).thread_count = 0;
            (*raw).thread_type = sys::FF_THREAD_FRAME | sys::FF_THREAD_SLICE;
            if let Some(hw) = hw {
                // The decoder keeps its own reference; the default get_format then picks the
                // device's pixel format when the codec has a hwaccel for it.
                (*raw).hw_device_ctx = hw.new_ref()?;
            }
            check(
                sys::avcodec_open2(raw, codec, options.as_mut_ptr()),
                "avcodec_open2",
            )?;
        }
        Ok(ctx)
    }

    /// Opens a video encoder.
    pub fn open_video_encoder(s: &VideoEncoderSettings) -> Result<Self, AvError> {
        let codec = find_encoder(&s.codec)?;
        let ctx = alloc(codec, "avcodec_alloc_context3")?;
        let mut opts = Dictionary::new();
        for (k, v) in &s.options {
            opts.set(k, v)?;
        }
        // SAFETY: fresh context for this codec; every field is set before avcodec_open2.
        unsafe {
            let raw = ctx.ptr.as_ptr();
            (*raw).width = s.width;
            (*raw).height = s.height;
            (*raw).pix_fmt = super::pix_fmt_from_i32(s.pix_fmt)
                .ok_or(AvError::new(sys::AVERROR(libc::EINVAL), "pix_fmt"))?;
            (*raw).time_base = s.time_base.to_av();
            (*raw).framerate = s.frame_rate.to_av();
            (*raw).sample_aspect_ratio = sys::AVRational { num: 1, den: 1 };
            (*raw).bit_rate = s.bit_rate;
            (*raw).rc_max_rate = s.max_rate;
            (*raw).rc_buffer_size = i32::try_from(s.buf_size).unwrap_or(i32::MAX);
            (*raw).gop_size = s.gop_size;
            (*raw).thread_count = s.threads;
            if s.global_header {
                (*raw).flags |= sys::AV_CODEC_FLAG_GLOBAL_HEADER as i32;
            }
            check(
                sys::avcodec_open2(raw, codec, opts.as_mut_ptr()),
                "avcodec_open2",
            )?;
        }
        Ok(ctx)
    }

    /// Opens an audio encoder (planar float if the codec takes it, else its first format).
    pub fn open_audio_encoder(s: &AudioEncoderSettings) -> Result<Self, AvError> {
        let codec = find_encoder(&s.codec)?;
        let ctx = alloc(codec, "avcodec_alloc_context3")?;
        // SAFETY: fresh context; fields set before open. sample_fmts is a static list terminated by -1 (or NULL when the codec takes anything).
        unsafe {
            let raw = ctx.ptr.as_ptr();
            let fmts = (*codec).sample_fmts;
            (*raw).sample_fmt = if fmts.is_null() {
                sys::AVSampleFormat::AV_SAMPLE_FMT_FLTP
            } else {
                *fmts
            };
            (*raw).sample_rate = s.sample_rate;
            sys::av_channel_layout_default(&mut (*raw).ch_layout, s.channels);
            (*raw).bit_rate = s.bit_rate;
            (*raw).time_base = sys::AVRational {
                num: 1,
                den: s.sample_rate,
            };
            if s.global_header {
                (*raw).flags |= sys::AV_CODEC_FLAG_GLOBAL_HEADER as i32;
            }
            check(
                sys::avcodec_open2(raw, codec, ptr::null_mut()),
                "avcodec_open2",
            )?;
        }
        Ok(ctx)
    }

    /// Sends a packet to a decoder; `None` starts draining.
    pub fn send_packet(&mut self, pkt: Option<&Packet>) -> Result<Step<()>, AvError> {
        let p = pkt.map_or(ptr::null(), Packet::as_ptr);
        // SAFETY: the decoder is open; p is NULL (drain) or a valid packet it only reads.
        let ret = unsafe { sys::avcodec_send_packet(self.ptr.as_ptr(), p) };
        step(ret, "avcodec_send_packet")
    }

    /// Resets a decoder after draining (or to drop what it holds) so it takes packets again.
    pub fn flush(&mut self) {
        // SAFETY: the codec context is open; flushing only resets its internal state.
        unsafe { sys::avcodec_flush_buffers(self.ptr.as_ptr()) }
    }

    /// Receives a decoded frame into `frame`.
    pub fn receive_frame(&mut self, frame: &mut Frame) -> Result<Step<()>, AvError> {
        // SAFETY: the decoder is open; frame is valid and is unreferenced by the call.
        let ret = unsafe { sys::avcodec_receive_frame(self.ptr.as_ptr(), frame.as_mut_ptr()) };
        step(ret, "avcodec_receive_frame")
    }

    /// Sends a frame to an encoder; `None` starts draining.
    pub fn send_frame(&mut self, frame: Option<&Frame>) -> Result<Step<()>, AvError> {
        let f = frame.map_or(ptr::null(), Frame::as_ptr);
        // SAFETY: the encoder is open; f is NULL (drain) or a valid frame it references/copies.
        let ret = unsafe { sys::avcodec_send_frame(self.ptr.as_ptr(), f) };
        step(ret, "avcodec_send_frame")
    }

    /// Receives an encoded packet into `pkt`.
    pub fn receive_packet(&mut self, pkt: &mut Packet) -> Result<Step<()>, AvError> {
        // SAFETY: the encoder is open; pkt is valid and is unreferenced by the call.
        let ret = unsafe { sys::avcodec_receive_packet(self.ptr.as_ptr(), pkt.as_mut_ptr()) };
        step(ret, "avcodec_receive_packet")
    }

    /// The context's time base.
    pub fn time_base(&self) -> Rational {
        // SAFETY: reading a plain field of a valid context.
        Rational::from_av(unsafe { self.ptr.as_ref().time_base })
    }

    /// Picture size (video) as (width, height): what an opened decoder expects to output.
    pub fn picture_size(&self) -> (i32, i32) {
        // SAFETY: reading plain fields of a valid context.
        unsafe { (self.ptr.as_ref().width, self.ptr.as_ref().height) }
    }

    /// Samples per frame an audio encoder wants (0 = any).
    pub fn frame_size(&self) -> i32 {
        // SAFETY: reading a plain field of a valid context.
        unsafe { self.ptr.as_ref().frame_size }
    }

    /// Sample format (audio), as FFmpeg's integer.
    pub fn sample_format(&self) -> i32 {
        // SAFETY: reading a plain field of a valid context.
        unsafe { self.ptr.as_ref().sample_fmt as i32 }
    }

    /// Sample rate (audio).
    pub fn sample_rate(&self) -> i32 {
        // SAFETY: reading a plain field of a valid context.
        unsafe { self.ptr.as_ref().sample_rate }
    }

    /// Samples an audio encoder puts before the first input sample (AAC's priming), which
    /// its first packet's timestamp starts that much earlier for.
    pub fn initial_padding(&self) -> i32 {
        // SAFETY: reading a plain field of a valid context.
        unsafe { self.ptr.as_ref().initial_padding }
    }

    /// Channels (audio).
    pub fn channels(&self) -> i32 {
        // SAFETY: reading a plain field of a valid context.
        unsafe { self.ptr.as_ref().ch_layout.nb_channels }
    }

    /// The codec's global header (parameter sets, decoder configuration), empty if none.
    pub fn extradata(&self) -> &[u8] {
        // SAFETY: extradata is NULL or extradata_size bytes owned by the context, which outlives the returned borrow.
        unsafe {
            let c = self.ptr.as_ref();
            match (c.extradata.is_null(), usize::try_from(c.extradata_size)) {
                (false, Ok(n)) => std::slice::from_raw_parts(c.extradata, n),
                _ => &[],
            }
        }
    }

    /// A frame of `nb_samples` of silence in this audio encoder's format, rate and layout.
    pub fn silent_frame(&self, nb_samples: i32) -> Result<super::Frame, AvError> {
        let mut f = super::Frame::new();
        // SAFETY: the frame is fresh; format, rate, layout and count are set before the buffer allocation (what av_frame_get_buffer requires for audio), and av_samples_set_silence writes nb_samples of that format into the planes just allocated.
        unsafe {
            let raw = &mut *f.as_mut_ptr();
            let c = self.ptr.as_ref();
            raw.format = c.sample_fmt as i32;
            raw.sample_rate = c.sample_rate;
            raw.nb_samples = nb_samples;
            check(
                sys::av_channel_layout_copy(&mut raw.ch_layout, &c.ch_layout),
                "av_channel_layout_copy",
            )?;
            check(sys::av_frame_get_buffer(raw, 0), "av_frame_get_buffer")?;
            check(
                sys::av_samples_set_silence(
                    raw.extended_data,
                    0,
                    nb_samples,
                    c.ch_layout.nb_channels,
                    c.sample_fmt,
                ),
                "av_samples_set_silence",
            )?;
        }
        Ok(f)
    }

    pub(super) fn as_ptr(&self) -> *const sys::AVCodecContext {
        self.ptr.as_ptr()
    }

    pub(super) fn layout_ptr(&self) -> *const sys::AVChannelLayout {
        // SAFETY: the field lives as long as the context; only its address is taken.
        unsafe { &self.ptr.as_ref().ch_layout }
    }
}

impl Drop for CodecContext {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: we own the context; avcodec_free_context closes and frees it once.
        unsafe { sys::avcodec_free_context(&mut p) }
    }
}
