//! Where each rendition's output starts when the sink already holds an earlier run's, read
//! through the sink alone (so it works the same on a directory and an HTTP origin): a live
//! playlist is carried on (same URIs, MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE go on
//! increasing, the first new segment starts a discontinuity, the earlier run's init segment
//! stays for its segments); a finished one is replaced. Either way segment file numbers
//! continue past every earlier one, so no URI is ever reused for different content.
//!
//! What the sink can do decides how much is known: with [`read`](SegmentSink::read) the
//! earlier playlist is the record; with [`list`](SegmentSink::list) too, files a crash left
//! written but never listed are found (numbers skip them; they are deleted). A sink that
//! cannot read starts every run afresh.

use std::collections::BTreeSet;
use std::io;

use super::naming::{
    in_rendition, parse_init, parse_part, parse_segment, MASTER_PLAYLIST, MEDIA_PLAYLIST,
};
use super::naming::{init_name, segment_name};
use super::playlist::MediaPlaylist;
use crate::config::Container;
use crate::error::Error;
use crate::sink::SegmentSink;

/// How a rendition's playlist starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct OutputStart {
    /// The media sequence number of the first segment this run writes.
    pub next_sequence: u64,
    /// The file number of that segment: past every earlier segment file known.
    pub next_file: u64,
    /// The live playlist an earlier run left, carried on.
    pub carried: Option<MediaPlaylist>,
}

/// Makes the output's directories and decides, per rendition, where its output starts: an
/// earlier live run is carried on (its master stays until this run rewrites it), anything
/// else starts over (the earlier master, playlists and segments removed) with numbers that
/// continue past the earlier ones. Only our own file names are touched.
pub(crate) fn prepare<'a>(
    sink: &dyn SegmentSink,
    renditions: impl IntoIterator<Item = &'a str>,
    live: bool,
    container: Container,
) -> Result<Vec<OutputStart>, Error> {
    let failed = |at: &str, e| Error::output(sink.location(at), e);
    sink.create_dir("").map_err(|e| failed("", e))?;
    if !live {
        sink.delete(MASTER_PLAYLIST)
            .or_else(cannot_is_fine)
            .map_err(|e| failed(MASTER_PLAYLIST, e))?;
    }
    renditions
        .into_iter()
        .map(|name| {
            sink.create_dir(name).map_err(|e| failed(name, e))?;
            start_in(sink, name, live, container).map_err(|e| failed(name, e))
        })
        .collect()
}

/// What a sink that cannot do something (read, list, delete) leaves us: nothing to do.
fn cannot_is_fine(e: io::Error) -> io::Result<()> {
    match e.kind() {
        io::ErrorKind::Unsupported | io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// Reads what the sink holds of rendition `name` and decides where its output starts; for
/// a fresh start, removes the earlier run's playlist and segments.
fn start_in(
    sink: &dyn SegmentSink,
    name: &str,
    live: bool,
    container: Container,
) -> io::Result<OutputStart> {
    let at = |file: &str| in_rendition(name, file);
    let (had_playlist, earlier) = match sink.read(&at(MEDIA_PLAYLIST)) {
        Ok(bytes) => (
            true,
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(MediaPlaylist::parse),
        ),
        Err(e) => {
            cannot_is_fine(e)?;
            (false, None)
        }
    };
    let listed_files = match sink.list(name) {
        Ok(files) => files,
        Err(e) => {
            cannot_is_fine(e)?;
            Vec::new()
        }
    };
    // Parts (Low-Latency HLS) name their segment's file number too: a new run's numbers
    // pass them.
    let on_disk = listed_files.iter().filter_map(|f| {
        parse_segment(f)
            .map(|(n, _)| n)
            .or_else(|| parse_part(f).map(|(n, _)| n))
    });
    let listed = || earlier.iter().flat_map(|p| p.segments());
    // The sequence right after the earlier playlist's last segment.
    let listed_next = listed().last().map_or(0, |s| s.sequence + 1);
    let next_file = on_disk
        .chain(listed().map(|s| s.file))
        .max()
        .map_or(0, |m| m + 1);
    // Every file the earlier playlist names (removed if it is not carried on).
    let earlier_files: Vec<String> = earlier
        .iter()
        .flat_map(|p| {
            let segments = p.segments().map(|s| segment_name(s.file, p.container()));
            segments.chain(p.segments().filter_map(|s| s.init).map(init_name))
        })
        .collect();
    // Only a playlist of this run's container is carried on.
    let carry =
        earlier.filter(|p| live && !p.is_ended() && !p.is_empty() && p.container() == container);
    let kept = |n: u64| carry.iter().flat_map(|p| p.segments()).any(|s| s.file == n);
    let kept_init = |n: u64| carry.as_ref().is_some_and(|p| p.uses_init(n));
    // Files no playlist will list: the earlier run's segments when starting over, any a
    // crash left written but unlisted, init segments no kept segment needs; a set, as the
    // listing and the earlier playlist name the same files.
    let mut gone = BTreeSet::new();
    gone.extend(
        listed_files
            .iter()
            .filter(|f| {
                parse_segment(f).is_some_and(|(n, _)| !kept(n))
                    || parse_init(f).is_some_and(|n| !kept_init(n))
                    // A run lists only its own parts.
                    || parse_part(f).is_some()
            })
            .cloned(),
    );
    if carry.is_none() {
        gone.extend(earlier_files);
        if had_playlist {
            gone.insert(MEDIA_PLAYLIST.to_owned());
        }
    }
    for file in gone {
        sink.delete(&at(&file)).or_else(cannot_is_fine)?;
    }
    Ok(match carry {
        Some(p) => OutputStart {
            next_sequence: listed_next,
            next_file,
            carried: Some(p),
        },
        // A new playlist: its sequence goes on past the earlier one's (a client reloading
        // never sees it go back).
        None => OutputStart {
            next_sequence: next_file.max(listed_next),
            next_file,
            carried: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FsSink;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n\
        #EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:2.000000,\nseg_00007.ts\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:1.500000,\nseg_00008.ts\n";

    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, FsSink) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("v")).unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join("v").join(name), text).unwrap();
        }
        let sink = FsSink::new(d.path(), false);
        (d, sink)
    }

    /// A sink over a directory that reads but cannot list (as nginx's WebDAV without
    /// PROPFIND).
    #[derive(Debug)]
    struct NoList(FsSink);

    impl SegmentSink for NoList {
        fn create(&self, path: &str) -> io::Result<Box<dyn crate::sink::SinkFile>> {
            self.0.create(path)
        }
        fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()> {
            self.0.replace(path, contents)
        }
        fn delete(&self, path: &str) -> io::Result<()> {
            self.0.delete(path)
        }
        fn location(&self, path: &str) -> String {
            self.0.location(path)
        }
        fn read(&self, path: &str) -> io::Result<Vec<u8>> {
            self.0.read(path)
        }
    }

    #[test]
    fn a_live_playlist_is_carried_on_and_numbering_continues() {
        let (d, sink) = dir_with(&[
            (MEDIA_PLAYLIST, LIVE),
            ("seg_00005.ts", ""),
            ("seg_00007.ts", ""),
            ("seg_00008.ts", ""),
            ("seg_00009.ts", ""),
        ]);
        let start = start_in(&sink, "v", true, Container::MpegTs).unwrap();
        let carried = start.carried.as_ref().unwrap();
        let listed: Vec<_> = carried
            .segments()
            .map(|s| (s.sequence, s.file, s.discontinuity))
            .collect();
        assert_eq!(listed, [(7, 7, false), (8, 8, true)]);
        assert!(carried
            .render()
            .contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        // seg_00009.ts is what a crash leaves: written, never listed. The next segment
        // is sequence 9 (right after the last listed), in a file past every one on disk.
        assert_eq!(start.next_sequence, 9);
        assert_eq!(start.next_file, 10, "past every segment file on disk");
        let v = d.path().join("v");
        assert!(v.join("seg_00007.ts").exists());
        assert!(!v.join("seg_00005.ts").exists(), "unlisted: removed");
        assert!(!v.join("seg_00009.ts").exists(), "stray: removed");
        assert!(v.join(MEDIA_PLAYLIST).exists());
    }

    #[test]
    fn without_a_listing_the_playlist_is_the_record() {
        let (d, sink) = dir_with(&[(MEDIA_PLAYLIST, LIVE), ("seg_00008.ts", "")]);
        let sink = NoList(sink);
        let start = start_in(&sink, "v", true, Container::MpegTs).unwrap();
        assert_eq!((start.next_sequence, start.next_file), (9, 9));
        assert!(start.carried.is_some());
        // Started over (a VOD run): the listed segments and the playlist are deleted.
        let start = start_in(&sink, "v", false, Container::MpegTs).unwrap();
        assert!(start.carried.is_none());
        assert_eq!((start.next_sequence, start.next_file), (9, 9));
        assert!(!d.path().join("v/seg_00008.ts").exists());
        assert!(!d.path().join("v").join(MEDIA_PLAYLIST).exists());
    }

    #[test]
    fn sequence_numbers_follow_the_listing_not_the_file_names() {
        // What the run after a crash writes: seg_00010.ts listed as sequence 9. Carried
        // again, every segment keeps the sequence number it was listed with.
        let after_crash = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXTINF:2.0,\nseg_00007.ts\n#EXTINF:2.0,\nseg_00008.ts\n\
            #EXT-X-DISCONTINUITY\n#EXTINF:2.0,\nseg_00010.ts\n";
        let (_d, sink) = dir_with(&[
            (MEDIA_PLAYLIST, after_crash),
            ("seg_00007.ts", ""),
            ("seg_00008.ts", ""),
            ("seg_00010.ts", ""),
        ]);
        let start = start_in(&sink, "v", true, Container::MpegTs).unwrap();
        let carried = start.carried.unwrap();
        let numbers: Vec<_> = carried.segments().map(|s| (s.sequence, s.file)).collect();
        assert_eq!(numbers, [(7, 7), (8, 8), (9, 10)]);
        assert_eq!((start.next_sequence, start.next_file), (10, 11));
        // Started over (a VOD run), the sequence still never goes back.
        let start = start_in(&sink, "v", false, Container::MpegTs).unwrap();
        assert!(start.carried.is_none());
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
            let (d, sink) = dir_with(&[(MEDIA_PLAYLIST, text), ("seg_00008.ts", "")]);
            let start = start_in(&sink, "v", live, Container::MpegTs).unwrap();
            assert!(start.carried.is_none());
            assert_eq!((start.next_sequence, start.next_file), (9, 9), "{text}");
            assert!(!d.path().join("v/seg_00008.ts").exists());
            assert!(!d.path().join("v").join(MEDIA_PLAYLIST).exists());
        }
        // A live MPEG-TS playlist is not carried into an fMP4 run (nor the other way).
        let (d, sink) = dir_with(&[(MEDIA_PLAYLIST, LIVE), ("seg_00008.ts", "")]);
        let start = start_in(&sink, "v", true, Container::Fmp4).unwrap();
        assert!(start.carried.is_none());
        assert_eq!(start.next_file, 9);
        assert!(!d.path().join("v/seg_00008.ts").exists());
        assert!(!d.path().join("v").join(MEDIA_PLAYLIST).exists());
        let empty = FsSink::new(tempfile::tempdir().unwrap().path(), false);
        assert_eq!(
            start_in(&empty, "v", true, Container::MpegTs).unwrap(),
            OutputStart::default()
        );
    }
}
