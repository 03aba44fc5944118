//! `AVFrame` and `AVPacket` owners. Both are reference-counted in FFmpeg: `share` makes a
//! new owner pointing at the same buffers, which is how media crosses threads without copies.

use std::ptr::NonNull;

use ffmpeg_sys_next as sys;

use super::{check, AvError};

/// An owned `AVFrame` (freed with `av_frame_free`).
pub struct Frame {
    ptr: NonNull<sys::AVFrame>,
}

// SAFETY: an AVFrame has no thread affinity; this owner is the only handle to its struct and the buffers it references are refcounted with atomic counts, so moving it is sound.
unsafe impl Send for Frame {}

impl Frame {
    /// An empty frame.
    pub fn new() -> Self {
        // SAFETY: av_frame_alloc has no preconditions; a NULL return means out of memory.
        let ptr = unsafe { sys::av_frame_alloc() };
        Self {
            ptr: NonNull::new(ptr).expect("av_frame_alloc: out of memory"),
        }
    }

    /// A new owner referencing the same buffers (`av_frame_ref`), with its own metadata.
    pub fn share(&self) -> Result<Frame, AvError> {
        let out = Frame::new();
        // SAFETY: both frames are valid; `out` is freshly allocated and empty as required.
        let ret = unsafe { sys::av_frame_ref(out.ptr.as_ptr(), self.ptr.as_ptr()) };
        check(ret, "av_frame_ref")?;
        Ok(out)
    }

    /// Allocates buffers for a video frame of this size and pixel format.
    pub fn alloc_video(width: i32, height: i32, pix_fmt: i32) -> Result<Frame, AvError> {
        let f = Frame::new();
        // SAFETY: the frame is ours and empty; fields are plain ints set before allocation.
        unsafe {
            let raw = f.ptr.as_ptr();
            (*raw).width = width;
            (*raw).height = height;
            (*raw).format = pix_fmt;
            check(sys::av_frame_get_buffer(raw, 0), "av_frame_get_buffer")?;
        }
        Ok(f)
    }

    /// Makes the buffers writable, copying them if someone else (an encoder) holds a reference.
    pub fn make_writable(&mut self) -> Result<(), AvError> {
        // SAFETY: the frame is valid and owned by us.
        let ret = unsafe { sys::av_frame_make_writable(self.ptr.as_ptr()) };
        check(ret, "av_frame_make_writable")?;
        Ok(())
    }

    /// Presentation timestamp, preferring FFmpeg's best-effort estimate.
    pub fn best_effort_pts(&self) -> i64 {
        // SAFETY: reading plain fields of a valid frame.
        unsafe {
            let f = self.ptr.as_ref();
            if f.best_effort_timestamp != super::NO_PTS {
                f.best_effort_timestamp
            } else {
                f.pts
            }
        }
    }

    /// The `pts` field.
    pub fn pts(&self) -> i64 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().pts }
    }

    /// Sets the `pts` field.
    pub fn set_pts(&mut self, pts: i64) {
        // SAFETY: writing a plain field of a frame we own.
        unsafe { self.ptr.as_mut().pts = pts }
    }

    /// Asks the encoder for a keyframe (`AV_PICTURE_TYPE_I`) or lets it choose.
    pub fn set_force_keyframe(&mut self, key: bool) {
        let t = if key {
            sys::AVPictureType::AV_PICTURE_TYPE_I
        } else {
            sys::AVPictureType::AV_PICTURE_TYPE_NONE
        };
        // SAFETY: writing a plain field of a frame we own.
        unsafe { self.ptr.as_mut().pict_type = t }
    }

    /// Width in pixels (video).
    pub fn width(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().width }
    }

    /// Height in pixels (video).
    pub fn height(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().height }
    }

    /// Pixel format (video) or sample format (audio), as FFmpeg's integer.
    pub fn format(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().format }
    }

    /// Sample aspect ratio (video); 0/1 when unknown.
    pub fn sample_aspect_ratio(&self) -> super::Rational {
        // SAFETY: reading a plain field of a valid frame.
        super::Rational::from_av(unsafe { self.ptr.as_ref().sample_aspect_ratio })
    }

    /// Number of audio samples per channel.
    pub fn nb_samples(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().nb_samples }
    }

    /// Sample rate (audio).
    pub fn sample_rate(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().sample_rate }
    }

    /// Channel count (audio).
    pub fn channels(&self) -> i32 {
        // SAFETY: reading a plain field of a valid frame.
        unsafe { self.ptr.as_ref().ch_layout.nb_channels }
    }

    pub(super) fn as_ptr(&self) -> *const sys::AVFrame {
        self.ptr.as_ptr()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut sys::AVFrame {
        self.ptr.as_ptr()
    }
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: we own the frame; av_frame_free unrefs its buffers and frees the struct.
        unsafe { sys::av_frame_free(&mut p) }
    }
}

/// An owned `AVPacket` (freed with `av_packet_free`).
pub struct Packet {
    ptr: NonNull<sys::AVPacket>,
}

// SAFETY: same reasoning as `Frame`: exclusive owner of the struct, atomic buffer refcounts.
unsafe impl Send for Packet {}

impl Packet {
    /// An empty packet.
    pub fn new() -> Self {
        // SAFETY: av_packet_alloc has no preconditions; NULL means out of memory.
        let ptr = unsafe { sys::av_packet_alloc() };
        Self {
            ptr: NonNull::new(ptr).expect("av_packet_alloc: out of memory"),
        }
    }

    /// A new owner referencing the same data (`av_packet_ref`).
    pub fn share(&self) -> Result<Packet, AvError> {
        let out = Packet::new();
        // SAFETY: both packets are valid; `out` is empty as av_packet_ref requires.
        let ret = unsafe { sys::av_packet_ref(out.ptr.as_ptr(), self.ptr.as_ptr()) };
        check(ret, "av_packet_ref")?;
        Ok(out)
    }

    /// Drops the data, keeping the struct for reuse.
    pub fn unref(&mut self) {
        // SAFETY: the packet is valid; unref resets it to the empty state.
        unsafe { sys::av_packet_unref(self.ptr.as_ptr()) }
    }

    /// Index of the stream this packet belongs to.
    pub fn stream_index(&self) -> i32 {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().stream_index }
    }

    /// Sets the stream index (muxers use it to route the packet).
    pub fn set_stream_index(&mut self, index: i32) {
        // SAFETY: writing a plain field of a packet we own.
        unsafe { self.ptr.as_mut().stream_index = index }
    }

    /// Presentation timestamp.
    pub fn pts(&self) -> i64 {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().pts }
    }

    /// Decoding timestamp.
    pub fn dts(&self) -> i64 {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().dts }
    }

    /// Duration in the packet's time base.
    pub fn duration(&self) -> i64 {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().duration }
    }

    /// Sets the duration (in the packet's time base).
    pub fn set_duration(&mut self, duration: i64) {
        // SAFETY: writing a plain field of a packet we own.
        unsafe { self.ptr.as_mut().duration = duration }
    }

    /// Sets the presentation and decoding timestamps (in the packet's time base).
    pub fn set_timestamps(&mut self, pts: i64, dts: i64) {
        // SAFETY: writing plain fields of a packet we own.
        unsafe {
            let p = self.ptr.as_mut();
            p.pts = pts;
            p.dts = dts;
        }
    }

    /// Size of the payload in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: reading a plain field of a valid packet.
        usize::try_from(unsafe { self.ptr.as_ref().size }).unwrap_or(0)
    }

    /// True when the packet starts a keyframe.
    pub fn is_key(&self) -> bool {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().flags & sys::AV_PKT_FLAG_KEY != 0 }
    }

    /// True when the packet carries new codec extradata (a demuxer saw a new sequence
    /// header: a new encoder behind the same connection, e.g. an RTMP publisher restart).
    pub fn has_new_extradata(&self) -> bool {
        let mut size: usize = 0;
        // The returned pointer is not kept: only whether there is one.
        // SAFETY: the packet is valid; the call looks its side data up and writes the size through a pointer to a live local.
        let data = unsafe {
            sys::av_packet_get_side_data(
                self.ptr.as_ptr(),
                sys::AVPacketSideDataType::AV_PKT_DATA_NEW_EXTRADATA,
                &mut size,
            )
        };
        !data.is_null()
    }

    /// True when the demuxer flagged the packet as corrupt.
    pub fn is_corrupt(&self) -> bool {
        // SAFETY: reading a plain field of a valid packet.
        unsafe { self.ptr.as_ref().flags & sys::AV_PKT_FLAG_CORRUPT != 0 }
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        // SAFETY: data points at `size` valid bytes while the packet holds its reference (borrowed from &self); an empty packet has NULL data and size 0.
        unsafe {
            let p = self.ptr.as_ref();
            if p.data.is_null() || p.size <= 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p.data, p.size as usize)
            }
        }
    }

    /// Converts pts, dts and duration between time bases.
    pub fn rescale_ts(&mut self, from: super::Rational, to: super::Rational) {
        // SAFETY: the packet is valid; av_packet_rescale_ts only rewrites its timestamps.
        unsafe { sys::av_packet_rescale_ts(self.ptr.as_ptr(), from.to_av(), to.to_av()) }
    }

    pub(super) fn as_ptr(&self) -> *const sys::AVPacket {
        self.ptr.as_ptr()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut sys::AVPacket {
        self.ptr.as_ptr()
    }
}

impl Default for Packet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: we own the packet; av_packet_free unrefs its data and frees the struct.
        unsafe { sys::av_packet_free(&mut p) }
    }
}
