//! Where a variant's output starts when its directory already holds an earlier run's: a
//! live playlist is carried on (same URIs, MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE go on
//! increasing, the first new segment starts a discontinuity), a finished one is replaced;
//! either way segment numbers continue past every one on disk, so no URI is ever reused for
//! different content in a stream's output directory.

use std::io;
use std::path::Path;

use super::MEDIA_PLAYLIST;

/// A segment an earlier run listed in a live playlist, carried into this run's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CarriedSegment {
    pub sequence: u64,
    pub duration: f64,
    pub discontinuity: bool,
}

/// How a variant's playlist starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct OutputStart {
    /// The first segment number this run writes.
    pub next_sequence: u64,
    /// Segments carried on from an earlier live run, oldest first.
    pub carried: Vec<CarriedSegment>,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE` carried on.
    pub discontinuity_sequence: u64,
}

/// The file name of segment `sequence`.
pub(crate) fn segment_name(sequence: u64) -> String {
    format!("seg_{sequence:05}.ts")
}

/// The sequence number in a segment file name we wrote, if it is one.
fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg_")?.strip_suffix(".ts")?;
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
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = Some(v.trim_end_matches(',').parse::<f64>().ok()?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().ok()?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') {
            p.segments.push(CarriedSegment {
                sequence: segment_number(line)?,
                duration: duration.take()?,
                discontinuity: std::mem::take(&mut discontinuity),
            });
        }
    }
    Some(p)
}

/// Looks at a variant directory (which exists) and decides where its output starts; for a
/// fresh start, removes the earlier run's playlist and segments.
pub(crate) fn start_in(dir: &Path, live: bool) -> io::Result<OutputStart> {
    let mut on_disk = Vec::new();
    let mut playlists = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = segment_number(&name) {
            on_disk.push(n);
        } else if name.starts_with(MEDIA_PLAYLIST) {
            playlists.push(entry.path());
        }
    }
    let earlier = std::fs::read_to_string(dir.join(MEDIA_PLAYLIST))
        .ok()
        .and_then(|t| parse(&t));
    let listed_max = earlier
        .as_ref()
        .and_then(|p| p.segments.iter().map(|s| s.sequence).max());
    let next_sequence = on_disk
        .iter()
        .copied()
        .chain(listed_max)
        .max()
        .map_or(0, |m| m + 1);
    let carry = earlier.filter(|p| live && !p.ended && !p.segments.is_empty());
    let keep: Vec<u64> = carry
        .as_ref()
        .map(|p| p.segments.iter().map(|s| s.sequence).collect())
        .unwrap_or_default();
    for n in on_disk.into_iter().filter(|n| !keep.contains(n)) {
        remove_if_exists(&dir.join(segment_name(n)))?;
    }
    if carry.is_none() {
        for p in playlists {
            remove_if_exists(&p)?;
        }
    }
    Ok(match carry {
        Some(p) => OutputStart {
            next_sequence,
            carried: p.segments,
            discontinuity_sequence: p.discontinuity_sequence,
        },
        None => OutputStart {
            next_sequence,
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
        let start = start_in(d.path(), true).unwrap();
        assert_eq!(start.next_sequence, 10, "past every segment on disk");
        assert_eq!(start.discontinuity_sequence, 1);
        let carried: Vec<_> = start
            .carried
            .iter()
            .map(|s| (s.sequence, s.discontinuity))
            .collect();
        assert_eq!(carried, [(7, false), (8, true)]);
        assert!(d.path().join("seg_00007.ts").exists());
        assert!(!d.path().join("seg_00005.ts").exists(), "unlisted: removed");
        assert!(d.path().join(MEDIA_PLAYLIST).exists());
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
            let start = start_in(d.path(), live).unwrap();
            assert!(start.carried.is_empty());
            assert_eq!(start.next_sequence, 9);
            assert!(!d.path().join(MEDIA_PLAYLIST).exists());
            assert!(!d.path().join("seg_00008.ts").exists());
        }
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            start_in(empty.path(), true).unwrap(),
            OutputStart::default()
        );
    }
}
