//! `AVFilterGraph` owner for a fixed chain of one-in, one-out video filters fed a frame at a
//! time: `buffer` → the chain (e.g. `transpose`, `hflip`, `vflip`) → `buffersink`. Made for
//! one input geometry; a frame of another size or pixel format needs a new chain.

use std::ffi::CString;
use std::ptr::{self, NonNull};

use ffmpeg_sys_next as sys;

use super::filter::FilterGraph;
use super::{check, cstring, step, AvError, Frame, Rational, Step};

/// What the chain is fed: the pictures' geometry, and their timestamps' time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterInput {
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// Pixel format, as FFmpeg's integer.
    pub pix_fmt: i32,
    /// Time base of the frames' timestamps (must be valid).
    pub time_base: Rational,
    /// Sample aspect ratio (0/1 when unknown).
    pub sample_aspect_ratio: Rational,
}

/// A configured filter graph with its source and sink (the graph's owner frees all three).
pub struct VideoFilter {
    /// The `buffer` filter: owned by the graph, valid while it lives.
    src: NonNull<sys::AVFilterContext>,
    /// The `buffersink` filter: owned by the graph, valid while it lives.
    sink: NonNull<sys::AVFilterContext>,
    input: FilterInput,
    /// Owns (and frees) the graph the two pointers point into; declared last, so it is
    /// dropped after them.
    _graph: FilterGraph,
}

// SAFETY: the graph owner is Send, and src and sink point into that graph, which nothing else can reach: moving the whole to another thread is sound.
unsafe impl Send for VideoFilter {}

impl VideoFilter {
    /// Builds `buffer → steps → buffersink` for frames of `input`. Each step is a filter
    /// name and its options (`"dir=clock"`, or `""`); every filter runs on `threads`
    /// threads. libavfilter inserts a pixel format conversion where a filter does not take
    /// the input's format.
    pub fn new(input: FilterInput, steps: &[(&str, &str)], threads: i32) -> Result<Self, AvError> {
        super::init();
        // From here the owner frees the graph (and every filter made in it) on any error.
        let graph = FilterGraph::alloc()?;
        // SAFETY: the graph is ours and no filter was created yet; nb_threads is a plain field read when filters are initialised.
        unsafe { (*graph.ptr.as_ptr()).nb_threads = threads.max(1) };
        let tb = input.time_base;
        let sar = if input.sample_aspect_ratio.is_valid() {
            input.sample_aspect_ratio
        } else {
            Rational::new(0, 1)
        };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            input.width, input.height, input.pix_fmt, tb.num, tb.den, sar.num, sar.den
        );
        let src = create(&graph, "buffer", "in", &args)?;
        let sink = create(&graph, "buffersink", "out", "")?;
        let mut last = src;
        for (i, (name, options)) in steps.iter().enumerate() {
            let next = create(&graph, name, &format!("step{i}"), options)?;
            link(last, next)?;
            last = next;
        }
        link(last, sink)?;
        // SAFETY: the graph is ours and every filter in it is linked; a NULL log context is allowed.
        let ret = unsafe { sys::avfilter_graph_config(graph.ptr.as_ptr(), ptr::null_mut()) };
        check(ret, "avfilter_graph_config")?;
        Ok(Self {
            src,
            sink,
            input,
            _graph: graph,
        })
    }

    /// True when this chain takes frames of this geometry and pixel format.
    pub fn accepts(&self, frame: &Frame) -> bool {
        (frame.width(), frame.height(), frame.format())
            == (self.input.width, self.input.height, self.input.pix_fmt)
    }

    /// Filters one frame through the chain, which must be one-in, one-out (as `transpose`,
    /// `hflip` and `vflip` are, holding nothing back): the frame that comes out, with the
    /// input's properties (timestamps, picture type). An `EAGAIN` error if the chain held
    /// the frame back after all.
    pub fn filter(&mut self, frame: &Frame) -> Result<Frame, AvError> {
        self.push(frame)?;
        let mut out = Frame::new();
        match self.pull(&mut out)? {
            Step::Ready(()) => Ok(out),
            Step::Again | Step::Eof => Err(AvError::new(
                sys::AVERROR(libc::EAGAIN),
                "av_buffersink_get_frame",
            )),
        }
    }

    /// Feeds a frame (a new reference to its buffers; the caller keeps its own).
    fn push(&mut self, frame: &Frame) -> Result<(), AvError> {
        assert!(
            self.accepts(frame),
            "filter fed a frame of another geometry"
        );
        let flags = sys::AV_BUFFERSRC_FLAG_KEEP_REF as i32;
        // SAFETY: src is the graph's buffer filter (alive with the owner) and the frame is valid; KEEP_REF makes FFmpeg take its own reference and leave ours alone.
        let ret = unsafe {
            sys::av_buffersrc_add_frame_flags(self.src.as_ptr(), frame.as_ptr() as *mut _, flags)
        };
        check(ret, "av_buffersrc_add_frame_flags")?;
        Ok(())
    }

    /// Takes the next filtered frame into `out` (unreferenced first): `Again` when the
    /// chain needs more input.
    fn pull(&mut self, out: &mut Frame) -> Result<Step<()>, AvError> {
        // SAFETY: sink is the graph's buffersink (alive with the owner) and out a valid frame, which is emptied before FFmpeg moves a reference into it.
        let ret = unsafe {
            sys::av_frame_unref(out.as_mut_ptr());
            sys::av_buffersink_get_frame(self.sink.as_ptr(), out.as_mut_ptr())
        };
        step(ret, "av_buffersink_get_frame")
    }
}

/// Creates filter `filter` named `name` in `graph` with these options.
fn create(
    graph: &FilterGraph,
    filter: &str,
    name: &str,
    options: &str,
) -> Result<NonNull<sys::AVFilterContext>, AvError> {
    const OP: &str = "avfilter_graph_create_filter";
    let filter_name = cstring(filter, OP)?;
    let instance = cstring(name, OP)?;
    let args: Option<CString> = if options.is_empty() {
        None
    } else {
        Some(cstring(options, OP)?)
    };
    // SAFETY: the name is a valid C string; the result is a static descriptor or NULL.
    let def = unsafe { sys::avfilter_get_by_name(filter_name.as_ptr()) };
    if def.is_null() {
        return Err(AvError::new(sys::AVERROR_FILTER_NOT_FOUND, OP));
    }
    let mut ctx: *mut sys::AVFilterContext = ptr::null_mut();
    // SAFETY: the graph is ours, def a valid descriptor, the strings valid C strings (or NULL args) that FFmpeg copies; the new context is owned by the graph and written through a pointer to a live local.
    let ret = unsafe {
        sys::avfilter_graph_create_filter(
            &mut ctx,
            def,
            instance.as_ptr(),
            args.as_ref().map_or(ptr::null(), |a| a.as_ptr()),
            ptr::null_mut(),
            graph.ptr.as_ptr(),
        )
    };
    check(ret, OP)?;
    NonNull::new(ctx).ok_or(AvError::new(sys::AVERROR(libc::ENOMEM), OP))
}

/// Links `from`'s first output to `to`'s first input.
fn link(
    from: NonNull<sys::AVFilterContext>,
    to: NonNull<sys::AVFilterContext>,
) -> Result<(), AvError> {
    // SAFETY: both contexts belong to the same live graph; pad 0 exists on every filter used here (checked by FFmpeg, which returns an error otherwise).
    let ret = unsafe { sys::avfilter_link(from.as_ptr(), 0, to.as_ptr(), 0) };
    check(ret, "avfilter_link")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sys::AVPixelFormat as F;

    const W: i32 = 16;
    const H: i32 = 8;

    /// A picture whose luma sample at (x, y) is `x + 16 * y` (shifted to the top of 16-bit
    /// samples for P010), chroma mid-grey.
    fn pattern(fmt: F) -> Frame {
        let mut f = Frame::alloc_video(W, H, fmt as i32).unwrap();
        let wide = fmt == F::AV_PIX_FMT_P010LE;
        // SAFETY: the frame was just allocated with these dimensions and format; every write stays within its planes (rows of linesize bytes, H rows of luma, H/2 of chroma for 4:2:0, H for 4:2:2).
        unsafe {
            let raw = &mut *f.as_mut_ptr();
            for y in 0..H as isize {
                let row = raw.data[0].offset(y * raw.linesize[0] as isize);
                for x in 0..W as isize {
                    let v = (x + 16 * y) as u16;
                    if wide {
                        (row as *mut u16).offset(x).write_unaligned(v << 8);
                    } else {
                        row.offset(x).write(v as u8);
                    }
                }
            }
            let chroma_rows = if fmt == F::AV_PIX_FMT_YUV422P {
                H
            } else {
                H / 2
            };
            for p in 1..3 {
                if raw.data[p].is_null() {
                    continue;
                }
                let bytes = raw.linesize[p] as usize * chroma_rows as usize;
                std::ptr::write_bytes(raw.data[p], 0x80, bytes);
            }
        }
        f.set_pts(7);
        f
    }

    /// The luma sample at (x, y), in the pattern's units.
    fn luma(f: &Frame, x: i32, y: i32) -> u16 {
        let wide = f.format() == F::AV_PIX_FMT_P010LE as i32;
        // SAFETY: (x, y) is inside the frame, whose luma plane has height rows of linesize bytes.
        unsafe {
            let raw = &*f.as_ptr();
            let row = raw.data[0].offset(y as isize * raw.linesize[0] as isize);
            if wide {
                (row as *const u16).offset(x as isize).read_unaligned() >> 8
            } else {
                u16::from(row.offset(x as isize).read())
            }
        }
    }

    #[test]
    fn a_quarter_turn_of_decoded_and_downloaded_formats() {
        // yuv420p and 10-bit from software decoders; NV12 and P010 as a CUDA or VAAPI
        // frame is downloaded; 4:2:2, which transpose cannot take, converted first.
        for fmt in [
            F::AV_PIX_FMT_YUV420P,
            F::AV_PIX_FMT_NV12,
            F::AV_PIX_FMT_P010LE,
            F::AV_PIX_FMT_YUV422P,
        ] {
            let input = FilterInput {
                width: W,
                height: H,
                pix_fmt: fmt as i32,
                time_base: Rational::new(1, 25),
                sample_aspect_ratio: Rational::new(1, 1),
            };
            let mut chain = VideoFilter::new(input, &[("transpose", "dir=clock")], 1).unwrap();
            let src = pattern(fmt);
            assert!(chain.accepts(&src));
            for _ in 0..3 {
                let out = chain.filter(&src).unwrap();
                assert_eq!((out.width(), out.height(), out.pts()), (H, W, 7), "{fmt:?}");
                // Clockwise: the upright picture's top row is the stored left column,
                // read bottom to top.
                for (x, y) in [(0, 0), (H - 1, 0), (0, W - 1), (3, 5)] {
                    let expect = (y + 16 * (H - 1 - x)) as u16;
                    assert_eq!(luma(&out, x, y), expect, "{fmt:?} at ({x}, {y})");
                }
            }
            assert!(!chain.accepts(&Frame::alloc_video(W, W, fmt as i32).unwrap()));
        }
    }

    #[test]
    fn an_unknown_filter_is_refused() {
        let input = FilterInput {
            width: W,
            height: H,
            pix_fmt: F::AV_PIX_FMT_YUV420P as i32,
            time_base: Rational::new(1, 25),
            sample_aspect_ratio: Rational::new(0, 1),
        };
        let e = VideoFilter::new(input, &[("no_such_filter", "")], 1)
            .err()
            .unwrap();
        assert_eq!(e.code, sys::AVERROR_FILTER_NOT_FOUND);
        let e = VideoFilter::new(input, &[("transpose", "dir=sideways")], 1)
            .err()
            .unwrap();
        assert!(e.code < 0);
    }
}
