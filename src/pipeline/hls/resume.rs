//! Where a variant's output starts when its directory already holds an earlier run's: a
//! live playlist is carried on (same URIs, MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE go on
//! increasing, the first new segment starts a discontinuity), a finished one is replaced;
//! either way segment file numbers continue past every one on disk, so no URI is ever
//! reused for different content in a stream's output directory.
//!
//! A segment's media sequence number and its file number are two things: a carried
//! playlist goes on with the sequence right after its last listed segment (RFC 8216
//! §6.2.1: a sequence number always names the same URI), while the next file number skips
//! every file on disk, such as one a crash left written but never listed (which is deleted).

use std::io;
use std::path::Path;

use super::MEDIA_PLAYLIST;
use crate::config::Container;

/// A segment an earlier run listed in a live playlist, carried into this run's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CarriedSegment {
    /// Its media sequence number, as the earlier playlist listed it.
    pub sequence: u64,
    /// The number in its file name ([`segment_name`]).
    pub file: u64,
    pub duration: f64,
    pub discontinuity: bool,
    /// The file number of its init segment (`#EXT-X-MAP`), in fMP4.
    pub init: Option<u64>,
}

/// How a variant's playlist starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct OutputStart {
    /// The media sequence number of the first segment this run writes.
    pub next_sequence: u64,
    /// The file number of that segment: past every segment file on disk or listed.
    pub next_file: u64,
    /// Segments carried on from an earlier live run, oldest first.
    pub carried: Vec<CarriedSegment>,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE` carried on.
    pub discontinuity_sequence: u64,
}

/// The file name of the segment with file number `file`.
pub(crate) fn segment_name(file: u64, container: Container) -> String {
    match container {
        Container::Fmp4 => format!("seg_{file:05}.m4s"),
        _ => format!("seg_{file:05}.ts"),
    }
}

/// The file name of the fMP4 init segment written with the segment `file` (each run of
/// the encoders has its own: a live playlist carried on lists both).
pub(crate) fn init_name(file: u64) -> String {
    format!("init_{file:05}.mp4")
}

/// The file number in a segment file name we wrote, if it is one.
fn segment_number(name: &str) -> Option<u64> {
    let stem = name.strip_prefix("seg_")?;
    let digits = stem
        .strip_suffix(".ts")
        .or_else(|| stem.strip_suffix(".m4s"))?;
    number(digits)
}

/// The file number in an init segment name we wrote, if it is one.
fn init_number(name: &str) -> Option<u64> {
    number(name.strip_prefix("init_")?.strip_suffix(".mp4")?)
}

fn number(digits: &str) -> Option<u64> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// An earlier run's media playlist, as this crate writes them.
#[derive(Debug, Default)]
struct EarlierPlaylist {
    segments: Vec<CarriedSegment>,
    discontinuity_sequence: u64,
    ended: bool,
}

/// Parses a playlist this crate wrote; `None` for anything else.
fn parse(text: &str) -> Option<EarlierPlaylist> {
    let mut p = EarlierPlaylist::default();
    let mut duration = None;
    let mut discontinuity = false;
    let mut init = None;
    let mut first_sequence = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            first_sequence = v.parse().ok()?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = Some(v.trim_end_matches(',').parse::<f64>().ok()?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().ok()?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=") {
            init = Some(init_number(v.trim_matches('"'))?);
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') {
            p.segments.push(CarriedSegment {
                sequence: first_sequence + p.segments.len() as u64,
                file: segment_number(line)?,
                duration: duration.take()?,
                discontinuity: std::mem::take(&mut discontinuity),
                init,
            });
        }
    }
    Some(p)
}

/// Looks at a variant directory (which exists) and decides where its output starts; for a
/// fresh start, removes the earlier run's playlist and segments.
pub(crate) fn start_in(dir: &Path, live: bool, container: Container) -> io::Result<OutputStart> {
    let mut on_disk = Vec::new();
    let mut inits = Vec::new();
    let mut playlists = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = segment_number(&name) {
            on_disk.push((n, name));
        } else if init_number(&name).is_some() {
            inits.push(name);
        } else if name.starts_with(MEDIA_PLAYLIST) {
            playlists.push(entry.path());
        }
    }
    let earlier = std::fs::read_to_string(dir.join(MEDIA_PLAYLIST))
        .ok()
        .and_then(|t| parse(&t));
    let listed_max = earlier
        .as_ref()
        .and_then(|p| p.segments.iter().map(|s| s.file).max());
    // The sequence right after the earlier playlist's last segment.
    let listed_next = earlier
        .as_ref()
        .and_then(|p| p.segments.last())
        .map_or(0, |s| s.sequence + 1);
    let next_file = on_disk
        .iter()
        .map(|(n, _)| *n)
        .chain(listed_max)
        .max()
        .map_or(0, |m| m + 1);
    // Only a playlist of the same container is carried on (its segments' names and init
    // segments are this run's kind).
    let same_kind = |p: &EarlierPlaylist| {
        let fmp4 = p.segments.iter().all(|s| s.init.is_some());
        let ts = p.segments.iter().all(|s| s.init.is_none());
        if container == Container::Fmp4 {
            fmp4
        } else {
            ts
        }
    };
    let carry = earlier.filter(|p| live && !p.ended && !p.segments.is_empty() && same_kind(p));
    let keep: Vec<u64> = carry
        .as_ref()
        .map(|p| p.segments.iter().map(|s| s.file).collect())
        .unwrap_or_default();
    // Files no playlist will list: earlier runs' expired segments, and any a crash left
    // written but unlisted.
    for (_, name) in on_disk.into_iter().filter(|(n, _)| !keep.contains(n)) {
        remove_if_exists(&dir.join(name))?;
    }
    let kept_inits: Vec<u64> = carry
        .as_ref()
        .map(|p| p.segments.iter().filter_map(|s| s.init).collect())
        .unwrap_or_default();
    for name in inits {
        if !init_number(&name).is_some_and(|n| kept_inits.contains(&n)) {
            remove_if_exists(&dir.join(name))?;
        }
    }
    if carry.is_none() {
        for p in playlists {
            remove_if_exists(&p)?;
        }
    }
    Ok(match carry {
        Some(p) => OutputStart {
            // Right after the last listed segment, whatever its file is called.
            next_sequence: listed_next,
            next_file,
            carried: p.segments,
            discontinuity_sequence: p.discontinuity_sequence,
        },
        // A new playlist: its sequence goes on past the earlier one's (a client reloading
        // never sees it go back).
        None => OutputStart {
            next_sequence: next_file.max(listed_next),
            next_file,
            ..OutputStart::default()
        },
    })
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n\
        #EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:2.000000,\nseg_00007.ts\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:1.500000,\nseg_00008.ts\n";

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn a_live_playlist_is_carried_on_and_numbering_continues() {
        let d = dir_with(&[
            (MEDIA_PLAYLIST, LIVE),
            ("seg_00005.ts", ""),
            ("seg_00007.ts", ""),
            ("seg_00008.ts", ""),
            ("seg_00009.ts", ""),
        ]);
        let start = start_in(d.path(), true, Container::MpegTs).unwrap();
        assert_eq!(start.discontinuity_sequence, 1);
        let carried: Vec<_> = start
            .carried
            .iter()
            .map(|s| (s.sequence, s.file, s.discontinuity))
            .collect();
        assert_eq!(carried, [(7, 7, false), (8, 8, true)]);
        // seg_00009.ts is what a crash leaves: written, never listed. The next segment
        // is sequence 9 (right after the last listed), in a file past every one on disk.
        assert_eq!(
            start.next_sequence, 9,
            "right after the last listed segment"
        );
        assert_eq!(start.next_file, 10, "past every segment file on disk");
        assert!(d.path().join("seg_00007.ts").exists());
        assert!(!d.path().join("seg_00005.ts").exists(), "unlisted: removed");
        assert!(!d.path().join("seg_00009.ts").exists(), "stray: removed");
        assert!(d.path().join(MEDIA_PLAYLIST).exists());
    }

    #[test]
    fn sequence_numbers_follow_the_listing_not_the_file_names() {
        // What the run after a crash writes: seg_00010.ts listed as sequence 9. Carried
        // again, every segment keeps the sequence number it was listed with.
        let after_crash = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXTINF:2.0,\nseg_00007.ts\n#EXTINF:2.0,\nseg_00008.ts\n\
            #EXT-X-DISCONTINUITY\n#EXTINF:2.0,\nseg_00010.ts\n";
        let d = dir_with(&[
            (MEDIA_PLAYLIST, after_crash),
            ("seg_00007.ts", ""),
            ("seg_00008.ts", ""),
            ("seg_00010.ts", ""),
        ]);
        let start = start_in(d.path(), true, Container::MpegTs).unwrap();
        let numbers: Vec<_> = start.carried.iter().map(|s| (s.sequence, s.file)).collect();
        assert_eq!(numbers, [(7, 7), (8, 8), (9, 10)]);
        assert_eq!((start.next_sequence, start.next_file), (10, 11));
        // Started over (a VOD run), the sequence still never goes back.
        let start = start_in(d.path(), false, Container::MpegTs).unwrap();
        assert!(start.carried.is_empty());
        assert_eq!((start.next_sequence, start.next_file), (11, 11));
    }

    #[test]
    fn a_finished_or_foreign_playlist_starts_over_without_reusing_numbers() {
        let ended = format!("{LIVE}#EXT-X-ENDLIST\n");
        for (text, live) in [
            (ended.as_str(), true),
            (LIVE, false),
            ("#EXTM3U\nhttp://x/y.ts\n", true),
        ] {
            let d = dir_with(&[(MEDIA_PLAYLIST, text), ("seg_00008.ts", "")]);
            let start = start_in(d.path(), live, Container::MpegTs).unwrap();
            assert!(start.carried.is_empty());
            assert_eq!((start.next_sequence, start.next_file), (9, 9));
            assert!(!d.path().join(MEDIA_PLAYLIST).exists());
            assert!(!d.path().join("seg_00008.ts").exists());
        }
        // A live MPEG-TS playlist is not carried into an fMP4 run (nor the other way).
        let d = dir_with(&[(MEDIA_PLAYLIST, LIVE), ("seg_00008.ts", "")]);
        let start = start_in(d.path(), true, Container::Fmp4).unwrap();
        assert!(start.carried.is_empty());
        assert_eq!(start.next_file, 9);
        assert!(!d.path().join("seg_00008.ts").exists());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            start_in(empty.path(), true, Container::MpegTs).unwrap(),
            OutputStart::default()
        );
    }
}
