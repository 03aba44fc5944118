//! What a live stream's output does while its source delivers no media: keep going on the
//! wall clock with a filler ([`InputLoss::Fill`], the default), or pause with the source
//! ([`InputLoss::Stop`]). On-demand sources (files) are never filled.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// What a live stream's output does while its source delivers no media.
///
/// With [`Fill`](InputLoss::Fill) (the default) the output never stops: when no frame has
/// arrived for [`Filler::after`], every rendition is fed filler in real time (the last frame
/// repeated, then black or a slate, with silence on every audio rendition) on the same
/// segment boundaries, while the recovery policy reconnects underneath; the next real frame
/// follows at the next frame slot. The output's media time also tracks the wall clock: a
/// source that runs fast or slow is absorbed by dropping or repeating at most one frame per
/// second (counted in the stats). With [`Stop`](InputLoss::Stop) the output pauses with its
/// source and every source frame goes out, none added or dropped.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InputLoss {
    /// Keep the output going on the wall clock with this filler.
    Fill(Filler),
    /// Pause the output while the source is gone (every source frame out, none added).
    Stop,
}

impl Default for InputLoss {
    fn default() -> Self {
        Self::Fill(Filler::default())
    }
}

impl InputLoss {
    /// The filler, when this policy fills.
    pub fn filler(&self) -> Option<&Filler> {
        match self {
            Self::Fill(f) => Some(f),
            Self::Stop => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let Some(f) = self.filler() else {
            return Ok(());
        };
        if !(Duration::from_millis(100)..=Duration::from_secs(30)).contains(&f.after) {
            return Err(Error::config(
                "input_loss.after",
                format!("{:?} is outside 100 ms..=30 s", f.after),
            ));
        }
        if f.repeat_last > Duration::from_secs(24 * 3600) {
            return Err(Error::config("input_loss.repeat_last", "at most 24 h"));
        }
        Ok(())
    }
}

/// The input-loss filler: when it starts, what it shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Filler {
    /// No frame for this long starts the filler (default 1 s; 100 ms to 30 s).
    pub after: Duration,
    /// The last frame is repeated this long from the source's last frame (default 2 s),
    /// then [`then`](Self::then) is shown.
    pub repeat_last: Duration,
    /// What follows the repeated frame (default black).
    pub then: FillPicture,
}

impl Default for Filler {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(1),
            repeat_last: Duration::from_secs(2),
            then: FillPicture::Black,
        }
    }
}

impl Filler {
    /// Starts the filler after `after` without a frame.
    pub fn after(mut self, after: Duration) -> Self {
        self.after = after;
        self
    }

    /// Repeats the last frame for `repeat_last` before [`then`](Self::then).
    pub fn repeat_last(mut self, repeat_last: Duration) -> Self {
        self.repeat_last = repeat_last;
        self
    }

    /// Shows `picture` after the repeated frame.
    pub fn then(mut self, picture: FillPicture) -> Self {
        self.then = picture;
        self
    }
}

/// What the filler shows once the last frame has been repeated long enough.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FillPicture {
    /// A black picture.
    Black,
    /// An application's still image, fitted into the source's picture (letterboxed or
    /// pillarboxed) and scaled per rung like any frame.
    Slate(Slate),
}

/// An application's still image for the filler: any single picture FFmpeg decodes (PNG,
/// JPEG, ...). Set in code only (a config file cannot name one: it would read a local file).
/// It is decoded when a live run starts, before any output: one that does not decode fails
/// the run as [`Error::InvalidInput`].
#[derive(Clone, PartialEq)]
pub struct Slate {
    bytes: Arc<[u8]>,
}

impl Slate {
    /// A slate from an image's bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into().into(),
        }
    }

    /// A slate read from an image file now.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] (`input_loss.slate`) when the file cannot be read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::config(
                "input_loss.slate",
                format!("reading {}: {e}", path.display()),
            )
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Slate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slate({} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_fills_after_a_second_and_bounds_are_named() {
        let d = InputLoss::default();
        assert_eq!(d.filler().map(|f| f.after), Some(Duration::from_secs(1)));
        assert!(d.validate().is_ok());
        assert!(InputLoss::Stop.validate().is_ok());
        let short = InputLoss::Fill(Filler::default().after(Duration::from_millis(10)));
        let e = short.validate().unwrap_err().to_string();
        assert!(e.contains("input_loss.after"), "{e}");
        assert!(Slate::from_file("/nonexistent/slate.png").is_err());
        assert_eq!(
            format!("{:?}", Slate::from_bytes(vec![1, 2])),
            "Slate(2 bytes)"
        );
    }
}
