//! The input-loss filler's pictures: an application's still image decoded once (any image
//! FFmpeg decodes) and fitted into the source's picture, or black in the source's geometry.
//! Both are made once per outage from the last real frame's geometry; the rungs scale them
//! like any frame (once: a repeated picture is not scaled again).

use std::io::{Cursor, Read, Seek, SeekFrom};

use crate::config::FillPicture;
use crate::error::Error;
use crate::ffi::{
    ByteSource, CustomIo, Dictionary, FilterInput, Frame, InputContext, Interrupt, IoFailure,
    Packet, Rational, Step, VideoFilter,
};

/// An image's bytes as a custom input.
struct ImageBytes(Cursor<Vec<u8>>);

impl ByteSource for ImageBytes {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoFailure> {
        Ok(self.0.read(buf)?)
    }

    fn seek(&mut self, to: SeekFrom) -> Result<u64, IoFailure> {
        Ok(self.0.seek(to)?)
    }

    fn size(&mut self) -> Result<u64, IoFailure> {
        Ok(self.0.get_ref().len() as u64)
    }
}

/// Decodes the first picture of an image's bytes.
pub(crate) fn decode_still(bytes: &[u8]) -> Result<Frame, Error> {
    let refused = |why: String| Error::InvalidInput {
        url: "the input-loss filler's slate image".into(),
        reason: why,
        code: None,
    };
    let interrupt = Interrupt::new();
    let io = CustomIo::new(
        Box::new(ImageBytes(Cursor::new(bytes.to_vec()))),
        true,
        interrupt.clone(),
    )
    .map_err(|e| refused(format!("reading it: {e}")))?;
    let (mut input, _) = InputContext::open_custom(io, None, Dictionary::new(), interrupt)
        .map_err(|(e, _)| refused(format!("it is no image FFmpeg reads: {e}")))?;
    input
        .find_stream_info(super::session::MAX_PIXELS)
        .map_err(|e| refused(format!("reading it: {e}")))?;
    let index = input
        .best_video()
        .ok_or_else(|| refused("it holds no picture".into()))?;
    let mut decoder = input
        .open_decoder(index, Dictionary::new(), None)
        .map_err(|e| refused(format!("no decoder for it: {e}")))?;
    let (mut pkt, mut frame) = (Packet::new(), Frame::new());
    loop {
        let more = matches!(input.read(&mut pkt), Ok(Step::Ready(())));
        if more && pkt.stream_index() != index as i32 {
            continue;
        }
        let sent = decoder.send_packet(more.then_some(&pkt));
        sent.map_err(|e| refused(format!("decoding it: {e}")))?;
        match decoder.receive_frame(&mut frame) {
            Ok(Step::Ready(())) => return Ok(frame),
            Ok(Step::Again) if more => continue,
            Ok(_) => return Err(refused("it decodes to no picture".into())),
            Err(e) => return Err(refused(format!("decoding it: {e}"))),
        }
    }
}

/// The picture shown after the last frame was repeated long enough, in the geometry of
/// `last` (the source's last real frame): black, or the slate fitted in with black bars.
pub(crate) fn fill_picture(
    picture: &FillPicture,
    slate: Option<&Frame>,
    last: &Frame,
) -> Result<Frame, Error> {
    let (w, h) = (last.width(), last.height());
    let err = |e| Error::codec("video filter (input-loss filler)", e);
    match (picture, slate) {
        (FillPicture::Slate(_), Some(image)) => {
            let (scale, pad) = boxed_into(w, h);
            let steps = [
                ("scale", scale.as_str()),
                ("pad", pad.as_str()),
                ("setsar", "1"),
                ("format", "yuv420p"),
            ];
            run_once(image, &steps).map_err(err)
        }
        _ => {
            let steps = [
                ("format", "yuv420p"),
                ("drawbox", "x=0:y=0:w=iw:h=ih:color=black:t=fill"),
            ];
            run_once(last, &steps).map_err(err)
        }
    }
}

/// Pictures of another shape than the stream's first (a backup source with another
/// aspect ratio) fitted into its size: scaled to fit and letterboxed or pillarboxed with
/// black, so every rung keeps its size and nothing is stretched. A picture of the same
/// shape passes as it is (the rungs scale it).
#[derive(Default)]
pub(crate) struct Fit {
    /// The stream's first picture's size and display aspect ratio.
    target: Option<((i32, i32), f64)>,
    chain: Option<VideoFilter>,
}

impl Fit {
    /// `frame`, fitted into the first picture's shape when its own differs by over 1 %.
    pub fn apply(&mut self, frame: Frame) -> Result<Frame, crate::ffi::AvError> {
        let size = (frame.width(), frame.height());
        let aspect = display_aspect(&frame);
        let ((w, h), target) = *self.target.get_or_insert((size, aspect));
        if (aspect / target - 1.0).abs() <= 0.01 {
            return Ok(frame);
        }
        if !self.chain.as_ref().is_some_and(|c| c.accepts(&frame)) {
            let (scale, pad) = boxed_into(w, h);
            let steps = [
                ("scale", scale.as_str()),
                ("pad", pad.as_str()),
                ("setsar", "1"),
            ];
            self.chain = Some(VideoFilter::new(filter_input(&frame), &steps, 1)?);
        }
        self.chain.as_mut().expect("made above").filter(&frame)
    }
}

/// The `scale` and `pad` options that fit a picture into `w`x`h` (its aspect kept) and
/// box it in with black.
fn boxed_into(w: i32, h: i32) -> (String, String) {
    (
        format!("w={w}:h={h}:force_original_aspect_ratio=decrease"),
        format!("w={w}:h={h}:x=(ow-iw)/2:y=(oh-ih)/2:color=black"),
    )
}

/// Width over height as shown (the sample aspect ratio applied).
fn display_aspect(frame: &Frame) -> f64 {
    let sar = frame.sample_aspect_ratio();
    let sar = if sar.is_valid() && sar.num > 0 {
        sar.as_f64()
    } else {
        1.0
    };
    f64::from(frame.width().max(1)) * sar / f64::from(frame.height().max(1))
}

fn filter_input(frame: &Frame) -> FilterInput {
    FilterInput {
        width: frame.width(),
        height: frame.height(),
        pix_fmt: frame.format(),
        time_base: Rational::new(1, 90_000),
        sample_aspect_ratio: frame.sample_aspect_ratio(),
    }
}

/// One frame through a chain made for it.
fn run_once(frame: &Frame, steps: &[(&str, &str)]) -> Result<Frame, crate::ffi::AvError> {
    VideoFilter::new(filter_input(frame), steps, 1)?.filter(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64x48 PNG made by the FFmpeg CLI.
    fn png() -> Vec<u8> {
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=s=64x48",
                "-frames:v",
                "1",
            ])
            .args(["-f", "image2pipe", "-c:v", "png", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn a_slate_is_decoded_and_fitted_into_the_sources_picture() {
        let image = decode_still(&png()).expect("a PNG decodes");
        assert_eq!((image.width(), image.height()), (64, 48));
        // A 4:3 image in a 16:9 picture: pillarboxed, at the picture's size.
        let last = Frame::alloc_video(320, 180, crate::ffi::PIX_FMT_YUV420P).unwrap();
        let slate = crate::config::Slate::from_bytes(png());
        let fitted = fill_picture(&FillPicture::Slate(slate), Some(&image), &last).unwrap();
        assert_eq!((fitted.width(), fitted.height()), (320, 180));
        let black = fill_picture(&FillPicture::Black, None, &last).unwrap();
        assert_eq!((black.width(), black.height()), (320, 180));
    }

    #[test]
    fn a_picture_of_another_shape_is_fitted_into_the_first_ones_size() {
        let yuv = crate::ffi::PIX_FMT_YUV420P;
        let mut fit = Fit::default();
        let first = fit
            .apply(Frame::alloc_video(320, 180, yuv).unwrap())
            .unwrap();
        assert_eq!((first.width(), first.height()), (320, 180));
        // The same shape passes as it is (the rungs scale it); another is boxed in.
        let same = fit
            .apply(Frame::alloc_video(640, 360, yuv).unwrap())
            .unwrap();
        assert_eq!((same.width(), same.height()), (640, 360));
        let boxed = fit
            .apply(Frame::alloc_video(480, 360, yuv).unwrap())
            .unwrap();
        assert_eq!((boxed.width(), boxed.height()), (320, 180));
    }

    #[test]
    fn bytes_that_are_no_image_are_refused_with_a_reason() {
        let Err(e) = decode_still(b"not an image at all") else {
            panic!("text decoded as a picture");
        };
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        assert!(e.to_string().contains("slate"), "{e}");
    }
}
