//! Everything that turns encoded packets into published files, all through the stream's
//! [`SegmentSink`]: nothing here opens a file itself.
//!
//! - [`naming`]: the one owner of file names.
//! - [`playlist`]: a media playlist as a model, rendered and parsed in one place.
//! - [`segmenter`]: one rendition's muxer, cut into segments (file swapping, keyframe cuts,
//!   the audio grid), listing each in its playlist.
//! - [`resume`]: where a rendition's output starts when an earlier run left some.
//! - [`master`], [`dash`]: the master playlist and the DASH manifest over every rendition,
//!   each written by one thread at a time through [`latest`].
//! - [`publisher`]: what the rendition threads tell the world when a segment is done.
//! - [`deleter`]: deletes of expired files, off the rendition threads, retried with backoff.
//! - [`codecs`]: RFC 6381 codec strings from the encoders' headers.

mod codecs;
mod dash;
mod deleter;
mod latest;
mod master;
mod muxer_file;
pub(crate) mod naming;
mod playlist;
mod publisher;
mod resume;
mod segmenter;
pub(crate) mod xs;

pub(crate) use codecs::{video_codec_string, AAC_LC};
pub(crate) use dash::{earlier_runs as earlier_dash_runs, DashWriter, Media};
pub(crate) use deleter::{delete_queue, DeleteInbox};
pub(crate) use master::{AudioGroup, MasterEntry, MasterPlaylist, MeasuredBitrate};
pub(crate) use naming::{audio_rendition, MEDIA_PLAYLIST};
pub(crate) use publisher::Publisher;
pub(crate) use resume::{prepare, OutputStart};
pub(crate) use segmenter::{MediaOutput, SegmentDone, Segmenter, FMP4_TIME_OFFSET};

use std::io;
use std::path::PathBuf;

use crate::error::Error;
use crate::ffi::AvError;
use crate::sink::SegmentSink;

/// Why a segmenter failed: the muxer (FFmpeg) or the sink.
#[derive(Debug)]
pub(crate) enum OutputError {
    /// FFmpeg failed writing a segment.
    Mux(PathBuf, AvError),
    /// The sink failed writing a segment or a playlist, or deleting an old segment.
    Io(PathBuf, io::Error),
}

impl From<OutputError> for Error {
    fn from(e: OutputError) -> Self {
        match e {
            OutputError::Mux(path, e) => Error::output_av(path, &e),
            OutputError::Io(path, e) => Error::output(path, e),
        }
    }
}

/// Removes the master playlist, if there is one (a run that reached nothing must not leave
/// an earlier run's master claiming a ladder nobody writes). Best effort: a sink that
/// cannot delete leaves it.
pub(crate) fn remove_master(sink: &dyn SegmentSink) {
    if let Err(e) = sink.delete(naming::MASTER_PLAYLIST) {
        log::warn!("removing {}: {e}", sink.location(naming::MASTER_PLAYLIST));
    }
}
