//! Upright pictures. A phone stores its picture as the sensor saw it and says in the
//! stream's display matrix how to turn it for display (a quarter turn for a portrait clip,
//! sometimes a mirror). That matrix is applied once, to each decoded picture before the
//! fan-out, so every rung scales and encodes an upright picture and no output carries a
//! matrix a player would have to honour.
//!
//! The reading is the FFmpeg CLI's autorotate (`fftools/ffmpeg_filter.c`): the angle from
//! `av_display_rotation_get`, rounded to a whole degree; a quarter turn is a `transpose`
//! (with a flip folded in when the matrix mirrors), a half turn `hflip` and/or `vflip` as
//! the matrix's diagonal says, no turn but a mirrored column a `vflip`. An angle that is not
//! a whole multiple of 90 degrees is left alone (the CLI would rotate the picture inside its
//! own frame with black corners, which no phone asks for): the session logs it once.
//!
//! The filters run in a libavfilter graph (`ffi::VideoFilter`), rebuilt when the decoded
//! size or pixel format changes: FFmpeg's own SIMD transpose for every pixel format the
//! decoder or a hardware download gives (a format `transpose` cannot take, such as 4:2:2,
//! is converted by the conversion libavfilter inserts).

use crate::ffi::{
    display_rotation, AvError, FilterInput, Frame, Rational, StreamInfo, VideoFilter,
};

/// A quarter turn (`transpose`'s directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transpose {
    /// 90 degrees clockwise.
    Clock,
    /// 90 degrees counter-clockwise.
    Cclock,
    /// 90 degrees clockwise, then a vertical flip.
    ClockFlip,
    /// 90 degrees counter-clockwise, then a vertical flip (a transposition).
    CclockFlip,
}

impl Transpose {
    fn option(self) -> &'static str {
        match self {
            Transpose::Clock => "dir=clock",
            Transpose::Cclock => "dir=cclock",
            Transpose::ClockFlip => "dir=clock_flip",
            Transpose::CclockFlip => "dir=cclock_flip",
        }
    }
}

/// How a stored picture is turned upright: a quarter turn (its sides swap) or none, then
/// horizontal and vertical flips. The default leaves it as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Orientation {
    transpose: Option<Transpose>,
    hflip: bool,
    vflip: bool,
}

impl Orientation {
    /// The orientation a stream's display matrix asks for; an angle that is not a whole
    /// multiple of 90 degrees leaves the picture as stored (see [`Orientation::read`]).
    pub fn of(video: &StreamInfo) -> Self {
        Self::read(video).unwrap_or_default()
    }

    /// The orientation a stream's display matrix asks for, or the angle (degrees,
    /// clockwise, in [0, 360)) when it is not a whole multiple of 90.
    pub fn read(video: &StreamInfo) -> Result<Self, f64> {
        video
            .display_matrix
            .as_ref()
            .map_or(Ok(Self::default()), from_matrix)
    }

    /// True when the picture turns a quarter: its width and height swap.
    pub fn swaps_sides(self) -> bool {
        self.transpose.is_some()
    }

    /// The upright picture's size from the stored one.
    pub fn upright_size(self, (w, h): (i32, i32)) -> (i32, i32) {
        if self.swaps_sides() {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// The upright picture's sample aspect ratio from the stored one's (a quarter turn
    /// inverts it; unknown stays unknown).
    pub fn upright_sar(self, sar: Rational) -> Rational {
        if self.swaps_sides() && sar.is_valid() {
            Rational::new(sar.den, sar.num)
        } else {
            sar
        }
    }

    /// The filters, as a log line names them (`transpose=dir=clock`, `hflip,vflip`); empty
    /// when the picture is upright as stored.
    pub fn describe(self) -> String {
        let steps = self.steps().into_iter();
        let each = steps.map(|(name, opts)| {
            if opts.is_empty() {
                name.to_owned()
            } else {
                format!("{name}={opts}")
            }
        });
        each.collect::<Vec<_>>().join(",")
    }

    /// The filters that turn the picture upright, in order (name, options); none when it
    /// already is.
    fn steps(self) -> Vec<(&'static str, &'static str)> {
        let mut steps = Vec::new();
        if let Some(t) = self.transpose {
            steps.push(("transpose", t.option()));
        }
        if self.hflip {
            steps.push(("hflip", ""));
        }
        if self.vflip {
            steps.push(("vflip", ""));
        }
        steps
    }
}

/// The CLI's reading of a display matrix (see the module docs). Matrix entries are 16.16
/// fixed point, row-major: `m[0]`, `m[1]` the first row, `m[3]`, `m[4]` the second.
fn from_matrix(m: &[i32; 9]) -> Result<Orientation, f64> {
    // av_display_rotation_get is counter-clockwise; the CLI turns the picture clockwise by
    // its negation, rounded to a whole degree and brought into [0, 360).
    let mut theta = -display_rotation(m).round();
    theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
    let none = Orientation::default();
    if theta.is_nan() {
        return Ok(none); // a degenerate matrix: nothing to read
    }
    let near = |angle: f64| (theta - angle).abs() < 1.0;
    let quarter = |t| Orientation {
        transpose: Some(t),
        ..none
    };
    Ok(if near(90.0) {
        quarter(if m[3] > 0 {
            Transpose::CclockFlip
        } else {
            Transpose::Clock
        })
    } else if near(180.0) {
        Orientation {
            hflip: m[0] < 0,
            vflip: m[4] < 0,
            ..none
        }
    } else if near(270.0) {
        quarter(if m[3] < 0 {
            Transpose::ClockFlip
        } else {
            Transpose::Cclock
        })
    } else if near(0.0) {
        Orientation {
            vflip: m[4] < 0,
            ..none
        }
    } else {
        return Err(theta);
    })
}

/// Turns decoded pictures upright for one session: the orientation its source asks for, and
/// the filter graph for the current picture geometry (made on the first picture, remade
/// when the size or pixel format changes).
pub(crate) struct Upright {
    orientation: Orientation,
    time_base: Rational,
    filter: Option<VideoFilter>,
}

impl Upright {
    /// Pictures from a stream of this orientation and time base.
    pub fn new(orientation: Orientation, time_base: Rational) -> Self {
        Self {
            orientation,
            time_base: if time_base.is_valid() {
                time_base
            } else {
                Rational::new(1, 90_000)
            },
            filter: None,
        }
    }

    /// The picture upright: itself when it already is, otherwise a new picture with the
    /// same timestamps, made by the filter graph (one thread: the transposition is a
    /// memory-bound copy, cheap beside the decode, and a stream keeps no thread pool for it).
    pub fn apply(&mut self, frame: Frame) -> Result<Frame, AvError> {
        let steps = self.orientation.steps();
        if steps.is_empty() {
            return Ok(frame);
        }
        if !self.filter.as_ref().is_some_and(|f| f.accepts(&frame)) {
            self.filter = None; // the old graph goes first: one at a time
            let input = FilterInput {
                width: frame.width(),
                height: frame.height(),
                pix_fmt: frame.format(),
                time_base: self.time_base,
                sample_aspect_ratio: frame.sample_aspect_ratio(),
            };
            self.filter = Some(VideoFilter::new(input, &steps, 1)?);
        }
        self.filter.as_mut().expect("made above").filter(&frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: i32 = 1 << 16;
    const W: i32 = 1 << 30;

    fn matrix(a: i32, b: i32, c: i32, d: i32) -> [i32; 9] {
        [a, b, 0, c, d, 0, 0, 0, W]
    }

    fn read(a: i32, b: i32, c: i32, d: i32) -> Result<Orientation, f64> {
        from_matrix(&matrix(a, b, c, d))
    }

    fn turn(t: Transpose) -> Orientation {
        Orientation {
            transpose: Some(t),
            ..Orientation::default()
        }
    }

    fn flips(hflip: bool, vflip: bool) -> Orientation {
        Orientation {
            transpose: None,
            hflip,
            vflip,
        }
    }

    #[test]
    fn matrices_read_as_the_cli_reads_them() {
        // What the 5.1 mov muxer writes for `rotate=90` (counter-clockwise 90 in the
        // matrix): the CLI turns it back counter-clockwise. Checked against the CLI's
        // output in tests/it/sources.rs.
        assert_eq!(read(0, -ONE, ONE, 0), Ok(turn(Transpose::Cclock)));
        // A phone's portrait clip (`rotate=270`, rotation -90): clockwise.
        assert_eq!(read(0, ONE, -ONE, 0), Ok(turn(Transpose::Clock)));
        assert_eq!(read(-ONE, 0, 0, -ONE), Ok(flips(true, true)));
        // Mirrors: horizontal, vertical, and a transposition (a quarter turn mirrored).
        assert_eq!(read(-ONE, 0, 0, ONE), Ok(flips(true, false)));
        assert_eq!(read(ONE, 0, 0, -ONE), Ok(flips(false, true)));
        assert_eq!(read(0, ONE, ONE, 0), Ok(turn(Transpose::CclockFlip)));
        assert_eq!(read(0, -ONE, -ONE, 0), Ok(turn(Transpose::ClockFlip)));
        // Identity, and a degenerate matrix: nothing to do.
        assert_eq!(read(ONE, 0, 0, ONE), Ok(Orientation::default()));
        assert_eq!(read(0, 0, 0, 0), Ok(Orientation::default()));
    }

    #[test]
    fn angles_round_to_a_whole_degree_and_odd_ones_are_reported() {
        // 90.4 degrees clockwise rounds to 90.
        let r = (90.4f64).to_radians();
        let (c, s) = ((r.cos() * 65536.0) as i32, (r.sin() * 65536.0) as i32);
        assert_eq!(read(c, s, -s, c), Ok(turn(Transpose::Clock)));
        // 45 degrees is not a quarter turn: reported, and `of` leaves the picture alone.
        let r = (45f64).to_radians();
        let (c, s) = ((r.cos() * 65536.0) as i32, (r.sin() * 65536.0) as i32);
        let angle = read(c, s, -s, c).unwrap_err();
        assert!((angle - 45.0).abs() < 0.5, "{angle}");
    }

    #[test]
    fn a_quarter_turn_swaps_the_sides_and_inverts_the_sample_aspect() {
        let o = turn(Transpose::Clock);
        assert_eq!(o.upright_size((1920, 1080)), (1080, 1920));
        assert_eq!(o.upright_sar(Rational::new(16, 15)), Rational::new(15, 16));
        assert_eq!(o.upright_sar(Rational::new(0, 1)), Rational::new(0, 1));
        let half = flips(true, true);
        assert_eq!(half.upright_size((1920, 1080)), (1920, 1080));
        assert_eq!(o.steps(), [("transpose", "dir=clock")]);
        assert_eq!(half.steps(), [("hflip", ""), ("vflip", "")]);
        assert!(Orientation::default().steps().is_empty());
        assert_eq!(half.describe(), "hflip,vflip");
        assert_eq!(o.describe(), "transpose=dir=clock");
    }
}
