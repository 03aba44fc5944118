//! HLS output: each variant's segments and media playlist ([`SegmentWriter`]), the master
//! playlist ([`MasterPlaylist`]), and the output directory they share. Every playlist is
//! written to a temporary file and renamed into place, so a reader never sees one
//! half-written.

mod codecs;
mod fmp4;
mod master;
mod media;
mod output_file;
mod resume;

pub(crate) use codecs::{h264 as h264_codec_string, AAC_LC};
pub(crate) use fmp4::FMP4_TIME_OFFSET;
pub(crate) use master::{
    replace_counted, AudioGroup, MasterEntry, MasterPlaylist, MeasuredBitrate,
};
pub(crate) use media::{MediaOutput, SegmentDone, SegmentWriter};
pub(crate) use resume::{init_name, OutputStart};

use std::io;
use std::path::{Path, PathBuf};

use crate::config::VideoCodec;
use crate::error::Error;
use crate::ffi::AvError;

/// The RFC 6381 codec string of a video encoder's output, from its global header; `None`
/// when the header does not say.
pub(crate) fn video_codec_string(codec: VideoCodec, extradata: &[u8]) -> Option<String> {
    match codec {
        VideoCodec::H264 => codecs::h264(extradata),
        VideoCodec::Hevc => codecs::hevc(extradata),
        VideoCodec::Av1 => codecs::av1(extradata),
    }
}

/// Name of the master playlist in the output directory.
pub(crate) const MASTER_PLAYLIST: &str = "master.m3u8";
/// Name of each variant's media playlist inside its directory.
pub(crate) const MEDIA_PLAYLIST: &str = "index.m3u8";

/// Why a segment writer failed: the muxer (FFmpeg) or the playlist (the OS).
#[derive(Debug)]
pub(crate) enum OutputError {
    /// FFmpeg failed writing a segment.
    Mux(PathBuf, AvError),
    /// Writing a playlist or removing an old segment failed.
    Io(PathBuf, io::Error),
}

/// Removes the master playlist of `dir`, if there is one.
pub(crate) fn remove_master(dir: &Path) -> Result<(), Error> {
    remove_if_exists(&dir.join(MASTER_PLAYLIST))
}

/// Creates the output directories and decides, per variant, where its output starts: an
/// earlier live run is carried on (its master stays until this run rewrites it), anything
/// else starts over (the earlier master, playlists and segments removed) with segment
/// numbers that continue past the earlier ones. Only our own file names are touched.
pub(crate) fn prepare_output<'a>(
    dir: &Path,
    variants: impl IntoIterator<Item = &'a str>,
    live: bool,
    container: crate::config::Container,
) -> Result<Vec<OutputStart>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, e))?;
    if !live {
        remove_master(dir)?;
    }
    variants
        .into_iter()
        .map(|name| {
            let vdir = dir.join(name);
            std::fs::create_dir_all(&vdir).map_err(|e| Error::output(&vdir, e))?;
            resume::start_in(&vdir, live, container).map_err(|e| Error::output(&vdir, e))
        })
        .collect()
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // Something on the way is a file, not a directory: name the directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            Err(Error::output(path.parent().unwrap_or(path), e))
        }
        Err(e) => Err(Error::output(path, e)),
    }
}
