//! One rendition's HLS media playlist as a model: its segments, live window,
//! discontinuities and expiry, with the one [`render`](MediaPlaylist::render) that writes it
//! and the one [`parse`](MediaPlaylist::parse) that reads back what it wrote (to carry a
//! live playlist on after a restart). Nothing here does I/O.
//!
//! A segment's media sequence number and its file number are two things: a carried-on
//! playlist goes on with the sequence right after its last listed segment (RFC 8216
//! §6.2.1: a sequence number always names the same URI), while file numbers skip every file
//! an earlier run wrote (see `resume`).

use std::collections::VecDeque;
use std::fmt::Write as _;

use std::time::SystemTime;

use super::naming::{init_name, parse_init, parse_segment, part_name, segment_name};
use super::xs;
use crate::config::Container;

/// One listed segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedSegment {
    /// Its media sequence number.
    pub sequence: u64,
    /// The number in its file name ([`segment_name`]).
    pub file: u64,
    /// `#EXTINF`, seconds.
    pub duration: f64,
    /// Its size, bytes (0 for a segment read back from an earlier run's playlist).
    pub bytes: u64,
    /// Preceded by `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// File number of its init segment (`#EXT-X-MAP`), in fMP4.
    pub init: Option<u64>,
    /// `#EXT-X-PROGRAM-DATE-TIME`: the wall-clock time its first frame's packet was read.
    pub program_date_time: Option<SystemTime>,
    /// Its Low-Latency HLS parts, while it is among the newest segments (else empty).
    pub parts: Vec<ListedPart>,
}

/// A Low-Latency HLS part: a CMAF chunk of a segment, in a file of its own
/// ([`part_name`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedPart {
    /// Its number in its segment, from 0.
    pub index: u32,
    /// `DURATION`, seconds.
    pub duration: f64,
    /// It starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// A live playlist's parts: the target, and the segment being written.
#[derive(Debug, Clone, PartialEq)]
struct Parts {
    /// `PART-TARGET`, seconds.
    target: f64,
    /// The segment being written: its file number, init segment, whether it starts a
    /// discontinuity, and its parts so far.
    open_file: u64,
    open_init: Option<u64>,
    open_discontinuity: bool,
    open: Vec<ListedPart>,
}

/// Segments (the newest) whose parts stay listed: the parts of the last three target
/// durations at least (RFC 8216bis lets older ones go).
const SEGMENTS_WITH_PARTS: usize = 3;

/// A media playlist.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaPlaylist {
    container: Container,
    /// `#EXT-X-TARGETDURATION`: fixed for the life of the playlist (RFC 8216 does not let
    /// it change); every EXTINF rounds to at most it.
    target: u64,
    /// `Some(n)`: a live sliding window of `n` segments; `None`: every segment stays
    /// (`#EXT-X-PLAYLIST-TYPE:EVENT`).
    window: Option<usize>,
    segments: VecDeque<ListedSegment>,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities that left the window.
    discontinuity_sequence: u64,
    /// `#EXT-X-ENDLIST`.
    ended: bool,
    /// Low-Latency HLS parts, when the live output has them.
    parts: Option<Parts>,
}

impl MediaPlaylist {
    /// An empty playlist of segments of about `segment_secs` (rounded up for the target).
    pub fn new(container: Container, segment_secs: f64, window: Option<usize>) -> Self {
        Self {
            container,
            target: (segment_secs.ceil() as u64).max(1),
            window,
            segments: VecDeque::new(),
            discontinuity_sequence: 0,
            ended: false,
            parts: None,
        }
    }

    /// Lists Low-Latency HLS parts of about `target` seconds.
    pub fn with_parts(mut self, target: f64) -> Self {
        self.parts = Some(Parts {
            target,
            open_file: 0,
            open_init: None,
            open_discontinuity: false,
            open: Vec::new(),
        });
        self
    }

    /// The segment being written (its parts listed as they come): file number, init
    /// segment, whether it starts a discontinuity.
    pub fn open_segment(&mut self, file: u64, init: Option<u64>, discontinuity: bool) {
        if let Some(p) = &mut self.parts {
            p.open_file = file;
            p.open_init = init;
            p.open_discontinuity = discontinuity;
            p.open.clear();
        }
    }

    /// Lists a complete part of the segment being written.
    pub fn push_part(&mut self, part: ListedPart) {
        if let Some(p) = &mut self.parts {
            p.open.push(part);
        }
    }

    /// Carries `earlier` (a live playlist an earlier run left) on: its segments stay listed,
    /// its target duration can only grow, its discontinuity sequence goes on.
    pub fn carry_on(&mut self, earlier: MediaPlaylist) {
        self.target = self.target.max(earlier.target);
        self.discontinuity_sequence = earlier.discontinuity_sequence;
        self.segments = earlier.segments;
    }

    /// The live window, segments (`None`: every segment stays listed).
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    /// The target duration, whole seconds.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// The container its segments are in.
    pub fn container(&self) -> Container {
        self.container
    }

    /// The listed segments, oldest first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &ListedSegment> + '_ {
        self.segments.iter()
    }

    /// No segment is listed.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The playlist ends with `#EXT-X-ENDLIST`.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Marks the playlist finished (or not).
    pub fn set_ended(&mut self, ended: bool) {
        self.ended = ended;
    }

    /// Lists a segment (with the parts listed for it while it was written). Returns the
    /// part files of the segment whose parts are no longer listed, if any.
    pub fn push(&mut self, mut segment: ListedSegment) -> Vec<String> {
        let Some(p) = &mut self.parts else {
            self.segments.push_back(segment);
            return Vec::new();
        };
        segment.parts = std::mem::take(&mut p.open);
        // The next segment is the one being written now (file numbers go up by one).
        p.open_file = segment.file + 1;
        p.open_discontinuity = false;
        self.segments.push_back(segment);
        let older = self.segments.len().saturating_sub(SEGMENTS_WITH_PARTS + 1);
        let Some(s) = self.segments.get_mut(older).filter(|s| !s.parts.is_empty()) else {
            return Vec::new();
        };
        let parts = std::mem::take(&mut s.parts);
        parts
            .iter()
            .map(|part| part_name(s.file, part.index))
            .collect()
    }

    /// Drops the segments that left the live window (none without one), oldest first.
    pub fn expire(&mut self) -> Vec<ListedSegment> {
        let Some(window) = self.window else {
            return Vec::new();
        };
        let extra = self.segments.len().saturating_sub(window.max(1));
        let gone: Vec<_> = self.segments.drain(..extra).collect();
        self.discontinuity_sequence += gone.iter().filter(|s| s.discontinuity).count() as u64;
        gone
    }

    /// Whether a listed segment uses the init segment `init`.
    pub fn uses_init(&self, init: u64) -> bool {
        self.segments.iter().any(|s| s.init == Some(init))
    }

    /// Peak bitrate of the listed segments, bits/s (0 before the first segment).
    pub fn peak_bitrate(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0.0)
            .map(|s| (s.bytes as f64 * 8.0 / s.duration) as u64)
            .max()
            .unwrap_or(0)
    }

    /// The playlist's text.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(160 + self.segments.len() * 40);
        let version = match self.container {
            Container::Fmp4 => 7,
            Container::MpegTs => 3,
        };
        let first_sequence = self.segments.front().map_or(0, |s| s.sequence);
        let _ = write!(text, "#EXTM3U\n#EXT-X-VERSION:{version}\n");
        let _ = writeln!(text, "#EXT-X-TARGETDURATION:{}", self.target);
        if let Some(p) = self.parts.as_ref().filter(|_| !self.ended) {
            let _ = writeln!(text, "#EXT-X-PART-INF:PART-TARGET={:.5}", p.target);
            // PART-HOLD-BACK: at least three part targets (RFC 8216bis §4.4.3.8).
            let hold_back = 3.0 * p.target;
            let _ = writeln!(text, "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK={hold_back:.5}");
        }
        let _ = writeln!(text, "#EXT-X-MEDIA-SEQUENCE:{first_sequence}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                text,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if self.window.is_none() {
            text.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        text.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut map = None;
        for s in &self.segments {
            if s.discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if s.init != map {
                map = s.init;
                if let Some(init) = s.init {
                    let _ = writeln!(text, "#EXT-X-MAP:URI=\"{}\"", init_name(init));
                }
            }
            if let Some(t) = s.program_date_time {
                let _ = writeln!(text, "#EXT-X-PROGRAM-DATE-TIME:{}", xs::date_time_ms(t));
            }
            if !self.ended {
                render_parts(&mut text, s.file, &s.parts);
            }
            let name = segment_name(s.file, self.container);
            let _ = writeln!(text, "#EXTINF:{:.6},\n{name}", s.duration);
        }
        if self.ended {
            text.push_str("#EXT-X-ENDLIST\n");
        } else if let Some(p) = &self.parts {
            // The segment being written: its parts so far, and the next one's hint.
            if p.open_discontinuity {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if p.open_init != map {
                if let Some(init) = p.open_init {
                    let _ = writeln!(text, "#EXT-X-MAP:URI=\"{}\"", init_name(init));
                }
            }
            render_parts(&mut text, p.open_file, &p.open);
            let next = part_name(p.open_file, p.open.len() as u32);
            let _ = writeln!(text, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{next}\"");
        }
        text
    }

    /// Reads back a playlist [`render`](Self::render) wrote; `None` for anything else (a
    /// tag or URI we do not write, segments of two containers, a number out of place).
    /// A live window is assumed (the caller carries it on under its own window).
    pub fn parse(text: &str) -> Option<MediaPlaylist> {
        let mut p = MediaPlaylist::new(Container::MpegTs, 1.0, None);
        let mut first_sequence = 0;
        let mut duration = None;
        let mut discontinuity = false;
        let mut init = None;
        let mut program_date_time = None;
        let mut container = None;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next()? != "#EXTM3U" {
            return None;
        }
        for line in lines {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                first_sequence = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
                p.discontinuity_sequence = v.parse().ok()?;
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                duration = Some(v.trim_end_matches(',').parse::<f64>().ok()?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=") {
                init = Some(parse_init(v.trim_matches('"'))?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                program_date_time = Some(xs::parse_date_time(v)?);
            } else if line == "#EXT-X-DISCONTINUITY" {
                discontinuity = true;
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if line.starts_with("#EXT-X-VERSION:")
                || line == "#EXT-X-PLAYLIST-TYPE:EVENT"
                || line == "#EXT-X-INDEPENDENT-SEGMENTS"
                // Parts are not carried on: a new run lists its own.
                || line.starts_with("#EXT-X-PART-INF:")
                || line.starts_with("#EXT-X-SERVER-CONTROL:")
                || line.starts_with("#EXT-X-PART:")
                || line.starts_with("#EXT-X-PRELOAD-HINT:")
            {
            } else if line.starts_with('#') {
                return None;
            } else {
                let (file, kind) = parse_segment(line)?;
                if *container.get_or_insert(kind) != kind {
                    return None;
                }
                let sequence = first_sequence + p.segments.len() as u64;
                p.segments.push_back(ListedSegment {
                    sequence,
                    file,
                    duration: duration.take()?,
                    bytes: 0,
                    discontinuity: std::mem::take(&mut discontinuity),
                    program_date_time: program_date_time.take(),
                    parts: Vec::new(),
                    // An fMP4 segment always follows its init segment's EXT-X-MAP.
                    init: match kind {
                        Container::Fmp4 => Some(init?),
                        Container::MpegTs => None,
                    },
                });
            }
        }
        p.container = container.unwrap_or(Container::MpegTs);
        Some(p)
    }
}

/// `#EXT-X-PART` lines for `parts` of the segment numbered `file`.
fn render_parts(text: &mut String, file: u64, parts: &[ListedPart]) {
    for part in parts {
        let _ = write!(
            text,
            "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
            part.duration,
            part_name(file, part.index)
        );
        text.push_str(if part.independent {
            ",INDEPENDENT=YES\n"
        } else {
            "\n"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(sequence: u64, file: u64, discontinuity: bool, init: Option<u64>) -> ListedSegment {
        ListedSegment {
            sequence,
            file,
            duration: 2.0,
            bytes: 0,
            discontinuity,
            init,
            program_date_time: None,
            parts: Vec::new(),
        }
    }

    #[test]
    fn what_render_writes_parse_reads_back() {
        for (container, init) in [(Container::MpegTs, None), (Container::Fmp4, Some(3))] {
            let mut p = MediaPlaylist::new(container, 2.0, Some(3));
            p.push(seg(3, 3, false, init));
            // Program date-times to the millisecond, as written.
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_630_400_250);
            p.push(ListedSegment {
                program_date_time: Some(at),
                ..seg(4, 5, true, init.map(|_| 5))
            });
            let text = p.render();
            assert!(
                text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-12-07T08:00:00.250Z\n#EXTINF"),
                "{text}"
            );
            let back = MediaPlaylist::parse(&text).unwrap();
            assert_eq!(back.container(), container);
            assert_eq!(back.segments, p.segments);
            assert!(!back.is_ended());
            p.set_ended(true);
            assert!(MediaPlaylist::parse(&p.render()).unwrap().is_ended());
        }
    }

    #[test]
    fn the_window_slides_and_counts_the_discontinuities_that_left_it() {
        let mut p = MediaPlaylist::new(Container::MpegTs, 1.5, Some(2));
        assert_eq!(p.target(), 2);
        for n in 0..5 {
            p.push(seg(n, n, n == 1, None));
            p.expire();
        }
        let text = p.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(!text.contains("PLAYLIST-TYPE"), "{text}");
        let back = MediaPlaylist::parse(&text).unwrap();
        assert_eq!(back.discontinuity_sequence, 1);
        let mut vod = MediaPlaylist::new(Container::MpegTs, 2.0, None);
        vod.push(seg(0, 0, false, None));
        assert!(vod.expire().is_empty());
        assert!(vod.render().contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    }

    #[test]
    fn foreign_playlists_are_not_ours() {
        for text in [
            "",
            "#EXTM3U\nhttp://x/y.ts\n",
            "#EXTM3U\n#EXTINF:2.0,\nseg_00001.ts\n#EXTINF:2.0,\nseg_00002.m4s\n",
            "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2.0,\nseg_00001.ts\n",
            "#EXTM3U\nseg_00001.ts\n",
            "#EXTM3U\n#EXTINF:2.0,\nseg_00001.m4s\n",
        ] {
            assert_eq!(MediaPlaylist::parse(text), None, "{text}");
        }
    }
}
