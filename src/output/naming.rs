//! The one owner of the output's file names: every playlist, segment, init segment and
//! rendition directory is named here, and every name we read back is recognised here.
//!
//! ```text
//! master.m3u8  manifest.mpd
//! <rendition>/index.m3u8
//! <rendition>/seg_00042.ts | <rendition>/seg_00042.m4s   (the file number, not always
//! <rendition>/init_00040.mp4                              the media sequence number)
//! <rendition>/seg_00042.3.m4s                             (Low-Latency HLS: part 3)
//! ```

use crate::config::Container;

/// The master playlist, at the output's root.
pub(crate) const MASTER_PLAYLIST: &str = "master.m3u8";
/// Each rendition's media playlist, inside its directory.
pub(crate) const MEDIA_PLAYLIST: &str = "index.m3u8";
/// The DASH manifest, at the output's root.
pub(crate) const DASH_MANIFEST: &str = "manifest.mpd";

/// The file name of the segment with file number `file`.
pub(crate) fn segment_name(file: u64, container: Container) -> String {
    match container {
        Container::Fmp4 => format!("seg_{file:05}.m4s"),
        Container::MpegTs => format!("seg_{file:05}.ts"),
    }
}

/// The file name of part `part` (0-based) of the fMP4 segment with file number `file`
/// (Low-Latency HLS): `seg_00042.3.m4s`.
pub(crate) fn part_name(file: u64, part: u32) -> String {
    format!("seg_{file:05}.{part}.m4s")
}

/// The segment file number and part of a part file name we wrote, if it is one.
pub(crate) fn parse_part(name: &str) -> Option<(u64, u32)> {
    let stem = name.strip_prefix("seg_")?.strip_suffix(".m4s")?;
    let (file, part) = stem.split_once('.')?;
    Some((number(file)?, u32::try_from(number(part)?).ok()?))
}

/// The DASH `SegmentTemplate@media` pattern of [`segment_name`] (fMP4 only).
pub(crate) const DASH_SEGMENT_TEMPLATE: &str = "seg_$Number%05d$.m4s";

/// The file name of the fMP4 init segment written with the segment `file` (each run of
/// the encoders has its own: a live playlist carried on lists both).
pub(crate) fn init_name(file: u64) -> String {
    format!("init_{file:05}.mp4")
}

/// `file` inside the directory of `rendition`, as the sink names it.
pub(crate) fn in_rendition(rendition: &str, file: &str) -> String {
    format!("{rendition}/{file}")
}

/// The directory (and group) name of the audio rendition of the AAC encoder at
/// `bit_rate`: `audio-128k`, or `audio-96500` for a rate that is not a whole kb/s (two
/// encoders never share a name).
pub(crate) fn audio_rendition(bit_rate: u64) -> String {
    if bit_rate % 1000 == 0 {
        format!("audio-{}k", bit_rate / 1000)
    } else {
        format!("audio-{bit_rate}")
    }
}

/// The file number and container of a segment file name we wrote, if it is one.
pub(crate) fn parse_segment(name: &str) -> Option<(u64, Container)> {
    let stem = name.strip_prefix("seg_")?;
    if let Some(digits) = stem.strip_suffix(".ts") {
        return number(digits).map(|n| (n, Container::MpegTs));
    }
    number(stem.strip_suffix(".m4s")?).map(|n| (n, Container::Fmp4))
}

/// The file number in an init segment name we wrote, if it is one.
pub(crate) fn parse_init(name: &str) -> Option<u64> {
    number(name.strip_prefix("init_")?.strip_suffix(".mp4")?)
}

fn number(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_nothing_else_does() {
        for c in [Container::MpegTs, Container::Fmp4] {
            for n in [0, 7, 99_999, 123_456] {
                assert_eq!(parse_segment(&segment_name(n, c)), Some((n, c)));
                assert_eq!(parse_init(&init_name(n)), Some(n));
            }
        }
        for bad in [
            "seg_.ts",
            "seg_1a.ts",
            "seg_1.mp4",
            "x_00001.ts",
            "seg_-1.ts",
            "",
        ] {
            assert_eq!(parse_segment(bad), None, "{bad}");
        }
        assert_eq!(parse_init("init.mp4"), None);
        assert_eq!(parse_part(&part_name(42, 3)), Some((42, 3)));
        assert_eq!(
            parse_segment(&part_name(42, 3)),
            None,
            "a part is no segment"
        );
        assert_eq!(parse_part(&segment_name(42, Container::Fmp4)), None);
        assert_eq!(parse_part("seg_00042.x.m4s"), None);
        assert_eq!(audio_rendition(128_000), "audio-128k");
        assert_eq!(audio_rendition(96_500), "audio-96500");
        assert_eq!(
            DASH_SEGMENT_TEMPLATE.replace("$Number%05d$", "00042"),
            segment_name(42, Container::Fmp4)
        );
    }
}
