//! `SwrContext` and `AVAudioFifo` owners: audio is converted once to the encoder's format,
//! then cut into the fixed-size frames AAC needs.

use std::os::raw::c_void;
use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::{check, AvError, CodecContext, Frame};

/// Converts decoded audio to an encoder's sample format, rate and channel layout, and
/// buffers the result so it can be handed out in frames of exactly the size wanted.
pub struct Resampler {
    swr: NonNull<sys::SwrContext>,
    fifo: NonNull<sys::AVAudioFifo>,
    out_layout: sys::AVChannelLayout,
    out_fmt: sys::AVSampleFormat,
    out_rate: i32,
    in_key: (i32, i32, i32),
}

// SAFETY: SwrContext and AVAudioFifo have no thread affinity; this owner is their only handle, and the channel layout it stores is a plain native-order mask (no pointers).
unsafe impl Send for Resampler {}

impl Resampler {
    /// A resampler from frames shaped like `first` to what `encoder` takes.
    pub fn new(first: &Frame, encoder: &CodecContext) -> Result<Self, AvError> {
        let mut swr = ptr::null_mut();
        // SAFETY: layouts point at live structs (the frame's and the encoder's); the sample-format integers come from FFmpeg itself (decoder output and encoder ctx). AVChannelLayout is copied with av_channel_layout_copy so ours owns its data.
        unsafe {
            let out_fmt: sys::AVSampleFormat = std::mem::transmute(encoder.sample_format());
            let in_fmt: sys::AVSampleFormat = std::mem::transmute(first.format());
            let mut out_layout: sys::AVChannelLayout = std::mem::zeroed();
            check(
                sys::av_channel_layout_copy(&mut out_layout, encoder.layout_ptr()),
                "av_channel_layout_copy",
            )?;
            let mut in_layout: sys::AVChannelLayout = std::mem::zeroed();
            let src = &(*first.as_ptr()).ch_layout;
            if src.order == sys::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC || src.nb_channels == 0 {
                sys::av_channel_layout_default(&mut in_layout, src.nb_channels.max(1));
            } else {
                check(
                    sys::av_channel_layout_copy(&mut in_layout, src),
                    "av_channel_layout_copy",
                )?;
            }
            let ret = sys::swr_alloc_set_opts2(
                &mut swr,
                &mut out_layout,
                out_fmt,
                encoder.sample_rate(),
                &mut in_layout,
                in_fmt,
                first.sample_rate(),
                0,
                ptr::null_mut(),
            );
            sys::av_channel_layout_uninit(&mut in_layout);
            if ret < 0 {
                sys::av_channel_layout_uninit(&mut out_layout);
                return Err(AvError::new(ret, "swr_alloc_set_opts2"));
            }
            let swr =
                NonNull::new(swr).ok_or(AvError::new(sys::AVERROR(libc::ENOMEM), "swr_alloc"))?;
            let fifo = sys::av_audio_fifo_alloc(out_fmt, out_layout.nb_channels, 4096);
            let Some(fifo) = NonNull::new(fifo) else {
                sys::swr_free(&mut swr.as_ptr());
                sys::av_channel_layout_uninit(&mut out_layout);
                return Err(AvError::new(
                    sys::AVERROR(libc::ENOMEM),
                    "av_audio_fifo_alloc",
                ));
            };
            // From here Drop releases everything.
            let me = Self {
                swr,
                fifo,
                out_layout,
                out_fmt,
                out_rate: encoder.sample_rate(),
                in_key: (first.format(), first.sample_rate(), first.channels()),
            };
            check(sys::swr_init(me.swr.as_ptr()), "swr_init")?;
            Ok(me)
        }
    }

    /// True when this resampler was built for frames shaped like `frame`.
    pub fn accepts(&self, frame: &Frame) -> bool {
        (frame.format(), frame.sample_rate(), frame.channels()) == self.in_key
    }

    /// Converts `input` (or, with `None`, flushes the resampler's delay) into the buffer.
    pub fn push(&mut self, input: Option<&Frame>) -> Result<(), AvError> {
        // SAFETY: swr is initialised; input planes hold nb_samples samples of the format this context was built for; the temporary output frame is allocated for `max_out` samples and only read for the `got` samples swr_convert reports.
        unsafe {
            let (in_data, in_n) = match input {
                Some(f) => (
                    (*f.as_ptr()).extended_data as *mut *const u8,
                    f.nb_samples(),
                ),
                None => (ptr::null_mut(), 0),
            };
            let max_out = sys::swr_get_out_samples(self.swr.as_ptr(), in_n);
            check(max_out, "swr_get_out_samples")?;
            if max_out == 0 {
                return Ok(());
            }
            let mut out = self.alloc_frame(max_out)?;
            let o = &mut *out.as_mut_ptr();
            let got = check(
                sys::swr_convert(self.swr.as_ptr(), o.extended_data, max_out, in_data, in_n),
                "swr_convert",
            )?;
            if got > 0 {
                let w = sys::av_audio_fifo_write(
                    self.fifo.as_ptr(),
                    o.extended_data as *mut *mut c_void,
                    got,
                );
                check(w, "av_audio_fifo_write")?;
            }
        }
        Ok(())
    }

    /// Samples waiting in the buffer.
    pub fn buffered(&self) -> i32 {
        // SAFETY: the fifo is valid and owned by us.
        unsafe { sys::av_audio_fifo_size(self.fifo.as_ptr()) }
    }

    /// Takes up to `n` samples from the buffer as a frame ready for the encoder.
    pub fn pop(&mut self, n: i32) -> Result<Frame, AvError> {
        let n = n.min(self.buffered());
        let mut out = self.alloc_frame(n)?;
        // SAFETY: the frame has room for n samples in the fifo's format and channel count.
        unsafe {
            let o = &mut *out.as_mut_ptr();
            let got =
                sys::av_audio_fifo_read(self.fifo.as_ptr(), o.extended_data as *mut *mut c_void, n);
            o.nb_samples = check(got, "av_audio_fifo_read")?;
        }
        Ok(out)
    }

    fn alloc_frame(&self, nb_samples: i32) -> Result<Frame, AvError> {
        let mut f = Frame::new();
        // SAFETY: the frame is fresh; format, layout, rate and count are set before the buffer allocation, which is what av_frame_get_buffer requires for audio.
        unsafe {
            let raw = &mut *f.as_mut_ptr();
            raw.format = self.out_fmt as i32;
            raw.sample_rate = self.out_rate;
            raw.nb_samples = nb_samples;
            check(
                sys::av_channel_layout_copy(&mut raw.ch_layout, &self.out_layout),
                "av_channel_layout_copy",
            )?;
            check(sys::av_frame_get_buffer(raw, 0), "av_frame_get_buffer")?;
        }
        Ok(f)
    }
}

impl Drop for Resampler {
    fn drop(&mut self) {
        // SAFETY: we own all three and free each exactly once.
        unsafe {
            sys::swr_free(&mut self.swr.as_ptr());
            sys::av_audio_fifo_free(self.fifo.as_ptr());
            sys::av_channel_layout_uninit(&mut self.out_layout);
        }
    }
}
