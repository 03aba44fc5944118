//! The mp4 muxer as CMAF-style output wants it: one fragment per segment, the header as the
//! init segment, every rendition on one media-time offset.

use crate::ffi::{CodecContext, OutputContext};

/// Where the output timeline's zero lies in fMP4 media time (`tfdt`): far enough that no
/// decode time of a B-frame or primed AAC frame is negative. DASH manifests subtract it
/// (`presentationTimeOffset`).
pub(crate) const FMP4_TIME_OFFSET: std::time::Duration = std::time::Duration::from_secs(10);

/// The mp4 muxer set up for CMAF-style output: one fragment per segment, flushed at each
/// cut, the header as the init segment; HEVC tagged `hvc1`.
pub(super) fn configure_fmp4(
    muxer: &mut OutputContext,
    video: Option<(i32, &CodecContext)>,
) -> Result<(), crate::ffi::AvError> {
    // One fragment per segment, flushed at each cut; the init segment is the header.
    let flags = "+frag_custom+empty_moov+default_base_moof+skip_sidx+skip_trailer+frag_discont";
    muxer.set_muxer_option("movflags", flags)?;
    // Without an edit list the first fragment starts at its first decode time (with
    // frag_discont: the packet's own, not zero), so presentation times stay ours.
    muxer.set_muxer_option("use_editlist", "0")?;
    // Each rendition is its own file, so the muxer's own shift of negative times
    // (B-frame decode times, AAC priming) would differ per file and put audio and
    // video apart: every rendition is shifted by the same offset instead.
    // (Without an edit list the mp4 muxer would shift each file to zero by itself.)
    let offset = format!("{}us", FMP4_TIME_OFFSET.as_micros());
    muxer
        .set_format_option("output_ts_offset", &offset)
        .and_then(|()| muxer.set_format_option("avoid_negative_ts", "disabled"))?;
    if let Some((i, v)) = video {
        if v.codec_name() == "hevc" {
            // Apple's players take HEVC in MP4 as hvc1 only (parameter sets in the
            // sample entry).
            muxer.set_codec_tag(i, *b"hvc1");
        }
    }
    Ok(())
}
