//! The DASH manifest (`manifest.mpd`) as a model and its rendering, over the very CMAF
//! files the HLS playlists list (`<rendition>/seg_NNNNN.m4s` after the init segment of its
//! run, `<rendition>/init_NNNNN.mp4`; one track per file): no second copy. Plain
//! string building: every attribute value goes through [`attr`], directories through
//! [`url_path`].
//!
//! Timing (ISO/IEC 23009-1 5.3.9.6): one Period per run of the stream (a live stream
//! restarted into the same output adds one; the first starts at `PT0S`); a segment at media
//! time `t` is at presentation time `Period@start + (t - presentationTimeOffset) /
//! timescale` s and, live, at wall-clock time `availabilityStartTime` plus that. So a live
//! stream keeps `availability_start` fixed across renders and across runs, and within a
//! Period its renditions' offsets name one instant.

use std::fmt::{Display, Write as _};
use std::time::SystemTime;

use crate::output::naming::{init_name, DASH_SEGMENT_TEMPLATE};
use crate::output::xs;

/// `MPD@profiles`: the live profile (SegmentTemplate) and DASH-CMAF.
/// The live profile only: the segments are CMAF-shaped (one track, one fragment each) but
/// carry no `cmfc` brand, so the CMAF profile is not claimed.
const PROFILES: &str = "urn:mpeg:dash:profile:isoff-live:2011";
/// `AudioChannelConfiguration` scheme whose value is the channel count.
const CHANNELS: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
/// `UTCTiming` scheme whose value is the server's clock itself: the player fetches nothing.
const UTC_DIRECT: &str = "urn:mpeg:dash:utc:direct:2014";

/// One MPD: its Periods, and how it is played.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manifest {
    /// On demand or live.
    pub(crate) kind: Kind,
    /// In order of time; one per run of the stream.
    pub(crate) periods: Vec<Period>,
    /// `MPD@minBufferTime`, seconds (typically the target segment duration).
    pub(crate) min_buffer_time: f64,
    /// Live with chunks (LL-DASH): segments listed while they are written.
    pub(crate) low_latency: Option<LowLatency>,
}

/// What a low-latency live manifest announces (DASH-IF low-latency modes, chunked CMAF):
/// each representation's newest segment is the one being written, available chunk by chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LowLatency {
    /// `SegmentTemplate@availabilityTimeOffset`, seconds: how long before its end a segment
    /// can be requested (the segment duration less one chunk: its first chunk is out).
    pub(crate) availability_time_offset: f64,
    /// `ServiceDescription`'s `Latency@target`, seconds behind the live edge.
    pub(crate) target_latency: f64,
}

/// One run of the stream: what it carries, from when.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Period {
    /// `Period@id`: 0 for the first run, one more for each later run.
    pub(crate) id: u64,
    /// `Period@start`, seconds of presentation time (live: after `availabilityStartTime`).
    pub(crate) start: f64,
    /// One video set per codec family ([`AdaptationSet::video_by_codec`]), then audio.
    pub(crate) adaptation_sets: Vec<AdaptationSet>,
}

impl Period {
    /// True when no representation has a segment (the Period is left out).
    pub(crate) fn is_empty(&self) -> bool {
        let reps = self.adaptation_sets.iter().flat_map(|s| &s.representations);
        reps.flat_map(|r| &r.segments).next().is_none()
    }

    /// Where its last segment ends, seconds of presentation time; its start when empty.
    pub(crate) fn end(&self) -> f64 {
        let reps = self.adaptation_sets.iter().flat_map(|s| &s.representations);
        let ends = reps.filter_map(|r| {
            let last = r.segments.last()?;
            let ticks = (last.start + last.duration).saturating_sub(r.presentation_time_offset);
            Some(ticks as f64 / f64::from(r.timescale.max(1)))
        });
        self.start + ends.fold(0.0, f64::max)
    }
}

/// `MPD@type` and the attributes that go with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// On demand (`type="static"`): every segment listed, the whole duration known.
    Static {
        /// `mediaPresentationDuration`, seconds.
        duration: f64,
    },
    /// Live (`type="dynamic"`): a sliding window, re-read every `minimum_update_period`.
    Dynamic {
        /// Wall-clock time of presentation time 0; the same in every render of a stream.
        availability_start: SystemTime,
        /// When this render was made; also the `UTCTiming` value players set their clock to.
        publish_time: SystemTime,
        /// `timeShiftBufferDepth`, seconds: how far back players may seek.
        time_shift_buffer: f64,
        /// `minimumUpdatePeriod`, seconds (typically one segment duration).
        minimum_update_period: f64,
        /// `suggestedPresentationDelay`, seconds behind the live edge.
        suggested_presentation_delay: f64,
    },
}

/// What an adaptation set carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// `video/mp4`.
    Video,
    /// `audio/mp4`.
    Audio,
}

/// Interchangeable representations: one codec family of video, or one audio rendition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdaptationSet {
    /// Video or audio.
    pub(crate) content: Content,
    /// RFC 5646 language tag, e.g. `en`.
    pub(crate) lang: Option<String>,
    /// The renditions; one with no segment yet is left out (and a set left empty).
    pub(crate) representations: Vec<Representation>,
}

impl AdaptationSet {
    /// Video representations, one set per codec family (the 4CC before the first `.`:
    /// `avc1`, `hvc1`, `av01`) in order of first appearance: a player picks a set whose
    /// codec it decodes and switches only within it.
    pub(crate) fn video_by_codec(reps: Vec<Representation>) -> Vec<AdaptationSet> {
        let mut sets: Vec<AdaptationSet> = Vec::new();
        for rep in reps {
            let same = |s: &&mut AdaptationSet| family(&s.representations[0]) == family(&rep);
            match sets.iter_mut().find(same) {
                Some(set) => set.representations.push(rep),
                None => sets.push(AdaptationSet {
                    content: Content::Video,
                    lang: None,
                    representations: vec![rep],
                }),
            }
        }
        sets
    }
}

/// The codec family of a representation: `avc1` of `avc1.64001f`.
fn family(rep: &Representation) -> &str {
    rep.codecs
        .split_once('.')
        .map_or(&rep.codecs, |(family, _)| family)
}

/// What one representation's track is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Media {
    /// A video rung.
    Video {
        /// Pixels.
        width: u32,
        /// Pixels.
        height: u32,
        /// Frames per second (29.97 is written `30000/1001`).
        frame_rate: f64,
    },
    /// An audio rendition.
    Audio {
        /// Hz.
        sample_rate: u32,
        /// Channel count.
        channels: u32,
    },
}

/// One rendition: its directory of CMAF files and the segments its HLS playlist lists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Representation {
    /// `Representation@id`, unique in the MPD.
    pub(crate) id: String,
    /// Directory relative to the MPD, e.g. `720p` or `audio-128k`.
    pub(crate) dir: String,
    /// RFC 6381 codec string, e.g. `avc1.64001f`, `av01.0.05M.08`, `mp4a.40.2`.
    pub(crate) codecs: String,
    /// Peak bits/s.
    pub(crate) bandwidth: u64,
    /// Video or audio attributes.
    pub(crate) media: Media,
    /// Ticks per second of `segments` (the track's `mdhd` timescale).
    pub(crate) timescale: u32,
    /// Media time (ticks) at presentation time 0, e.g. the first segment's start.
    pub(crate) presentation_time_offset: u64,
    /// Segments in listing order, as in the HLS playlist.
    pub(crate) segments: Vec<Segment>,
}

/// One `seg_NNNNN.m4s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The `NNNNN` in its name.
    pub(crate) number: u64,
    /// Earliest presentation time of the segment, ticks (with no B-frames its `tfdt`).
    pub(crate) start: u64,
    /// Ticks.
    pub(crate) duration: u64,
    /// File number of its init segment, `init_NNNNN.mp4` (the HLS `#EXT-X-MAP`).
    pub(crate) init: Option<u64>,
}

/// One `<S>`: `r + 1` segments of `d` ticks, the first at `t` where that must be said (the
/// first run, and after a gap or an overlap).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    /// Start of the first segment, ticks.
    t: Option<u64>,
    /// Duration, ticks.
    d: u64,
    /// Repeats after the first.
    r: u64,
}

/// A `SegmentTimeline`, the number of its first segment and their init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timeline {
    /// `SegmentTemplate@startNumber`.
    start_number: u64,
    /// The init segment of every listed segment ([`Segment::init`]).
    init: Option<u64>,
    /// The `<S>` elements.
    runs: Vec<Run>,
}

impl Timeline {
    /// The timeline of `rep`, `None` when it has no segment. Only the run ending at the
    /// last segment whose numbers are contiguous, whose starts increase and whose init
    /// segment is one is listed: `$Number$` addressing cannot skip numbers, a timeline go
    /// back, nor a template name two init segments, so an earlier run's segments (before a
    /// restart, which the HLS playlist marks with a discontinuity) drop out of the DASH
    /// manifest.
    fn of(rep: &Representation) -> Option<Timeline> {
        let segs = &rep.segments;
        let follows = |a: &Segment, b: &Segment| {
            a.number.checked_add(1) == Some(b.number) && a.start < b.start && a.init == b.init
        };
        let mut first = segs.len().checked_sub(1)?;
        while first > 0 && follows(&segs[first - 1], &segs[first]) {
            first -= 1;
        }
        let (mut runs, mut next) = (Vec::<Run>::new(), None);
        for s in &segs[first..] {
            let contiguous = next == Some(s.start);
            match runs.last_mut() {
                Some(run) if contiguous && run.d == s.duration => run.r += 1,
                _ => runs.push(Run {
                    t: (!contiguous).then_some(s.start),
                    d: s.duration,
                    r: 0,
                }),
            }
            next = s.start.checked_add(s.duration);
        }
        let (start_number, init) = (segs[first].number, segs[first].init);
        Some(Timeline {
            start_number,
            init,
            runs,
        })
    }
}

/// The MPD of `m`, UTF-8 XML.
pub(crate) fn render(m: &Manifest) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let o = &mut out;
    start(o, 0, "MPD");
    attr(o, "xmlns", "urn:mpeg:dash:schema:mpd:2011");
    attr(o, "profiles", PROFILES);
    match &m.kind {
        Kind::Static { duration } => {
            attr(o, "type", "static");
            attr(o, "mediaPresentationDuration", xs::duration(*duration));
        }
        Kind::Dynamic {
            availability_start,
            publish_time,
            time_shift_buffer,
            minimum_update_period,
            suggested_presentation_delay,
        } => {
            attr(o, "type", "dynamic");
            attr(
                o,
                "availabilityStartTime",
                xs::date_time(*availability_start),
            );
            attr(o, "publishTime", xs::date_time(*publish_time));
            attr(
                o,
                "minimumUpdatePeriod",
                xs::duration(*minimum_update_period),
            );
            attr(o, "timeShiftBufferDepth", xs::duration(*time_shift_buffer));
            let delay = xs::duration(*suggested_presentation_delay);
            attr(o, "suggestedPresentationDelay", delay);
        }
    }
    attr(o, "minBufferTime", xs::duration(m.min_buffer_time));
    o.push_str(">\n");
    let low_latency = m
        .low_latency
        .filter(|_| matches!(m.kind, Kind::Dynamic { .. }));
    if let Some(ll) = low_latency {
        write_service_description(o, &ll);
    }
    for period in m.periods.iter().filter(|p| !p.is_empty()) {
        start(o, 1, "Period");
        attr(o, "id", period.id);
        attr(o, "start", xs::duration(period.start));
        o.push_str(">\n");
        for (id, set) in period.adaptation_sets.iter().enumerate() {
            write_set(o, id, set, low_latency.as_ref());
        }
        o.push_str("  </Period>\n");
    }
    if let Kind::Dynamic { publish_time, .. } = &m.kind {
        start(o, 1, "UTCTiming");
        attr(o, "schemeIdUri", UTC_DIRECT);
        attr(o, "value", xs::date_time(*publish_time));
        o.push_str("/>\n");
    }
    o.push_str("</MPD>\n");
    out
}

/// One `AdaptationSet`; nothing when none of its representations has a segment.
fn write_set(o: &mut String, id: usize, set: &AdaptationSet, ll: Option<&LowLatency>) {
    let reps = set.representations.iter();
    let reps: Vec<_> = reps.filter_map(|r| Some((r, Timeline::of(r)?))).collect();
    if reps.is_empty() {
        return;
    }
    let kind = match set.content {
        Content::Video => "video",
        Content::Audio => "audio",
    };
    start(o, 2, "AdaptationSet");
    attr(o, "id", id);
    attr(o, "contentType", kind);
    attr(o, "mimeType", format!("{kind}/mp4"));
    attr(o, "segmentAlignment", "true");
    attr(o, "startWithSAP", 1);
    if let Some(lang) = &set.lang {
        attr(o, "lang", lang);
    }
    let videos = reps.iter().filter_map(|(r, _)| match r.media {
        Media::Video {
            width: w,
            height: h,
            frame_rate: f,
        } => Some((w, h, f)),
        Media::Audio { .. } => None,
    });
    if let Some((w, h, f)) = videos.reduce(|a, b| (a.0.max(b.0), a.1.max(b.1), a.2.max(b.2))) {
        attr(o, "maxWidth", w);
        attr(o, "maxHeight", h);
        if let Some(f) = frame_rate(f) {
            attr(o, "maxFrameRate", f);
        }
    }
    o.push_str(">\n");
    for (rep, timeline) in &reps {
        write_representation(o, rep, timeline, ll);
    }
    o.push_str("    </AdaptationSet>\n");
}

/// One `Representation` with its `SegmentTemplate` and `SegmentTimeline`.
fn write_representation(
    o: &mut String,
    rep: &Representation,
    timeline: &Timeline,
    ll: Option<&LowLatency>,
) {
    start(o, 3, "Representation");
    attr(o, "id", &rep.id);
    attr(o, "bandwidth", rep.bandwidth);
    attr(o, "codecs", &rep.codecs);
    match rep.media {
        Media::Video {
            width,
            height,
            frame_rate: f,
        } => {
            attr(o, "width", width);
            attr(o, "height", height);
            if let Some(f) = frame_rate(f) {
                attr(o, "frameRate", f);
            }
            o.push_str(">\n");
        }
        Media::Audio {
            sample_rate,
            channels,
        } => {
            attr(o, "audioSamplingRate", sample_rate);
            o.push_str(">\n");
            start(o, 4, "AudioChannelConfiguration");
            attr(o, "schemeIdUri", CHANNELS);
            attr(o, "value", channels);
            o.push_str("/>\n");
        }
    }
    let dir = url_path(&rep.dir);
    start(o, 4, "SegmentTemplate");
    attr(o, "timescale", rep.timescale);
    attr(o, "presentationTimeOffset", rep.presentation_time_offset);
    attr(o, "startNumber", timeline.start_number);
    // Every fMP4 segment has its run's init segment; the first run's is number 0.
    let init = init_name(timeline.init.unwrap_or(0));
    attr(o, "initialization", format!("{dir}/{init}"));
    attr(o, "media", format!("{dir}/{DASH_SEGMENT_TEMPLATE}"));
    if let Some(ll) = ll {
        attr(
            o,
            "availabilityTimeOffset",
            seconds(ll.availability_time_offset),
        );
        attr(o, "availabilityTimeComplete", "false");
    }
    o.push_str(">\n          <SegmentTimeline>\n");
    for run in &timeline.runs {
        start(o, 6, "S");
        if let Some(t) = run.t {
            attr(o, "t", t);
        }
        attr(o, "d", run.d);
        if run.r > 0 {
            attr(o, "r", run.r);
        }
        o.push_str("/>\n");
    }
    o.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    o.push_str("      </Representation>\n");
}

/// The `ServiceDescription` of a low-latency manifest: the latency players aim at, and how
/// much they may speed up or slow down to keep it.
fn write_service_description(o: &mut String, ll: &LowLatency) {
    start(o, 1, "ServiceDescription");
    attr(o, "id", 0);
    o.push_str(">\n");
    let target_ms = (ll.target_latency * 1000.0).round() as u64;
    start(o, 2, "Latency");
    attr(o, "target", target_ms);
    attr(o, "min", target_ms / 2);
    attr(o, "max", target_ms * 2);
    o.push_str("/>\n");
    start(o, 2, "PlaybackRate");
    attr(o, "min", "0.96");
    attr(o, "max", "1.04");
    o.push_str("/>\n  </ServiceDescription>\n");
}

/// Seconds as a decimal to the millisecond, without trailing zeros (`0.666`, `1`).
fn seconds(secs: f64) -> String {
    let text = format!("{:.3}", secs.max(0.0));
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Starts element `name` on its own line, `depth` levels in; attributes and `>` follow.
fn start(o: &mut String, depth: usize, name: &str) {
    o.extend(std::iter::repeat_n("  ", depth));
    o.push('<');
    o.push_str(name);
}

/// Appends ` key="value"`, the value escaped for a double-quoted attribute: markup
/// characters as entities, tab and line breaks as character references (a parser would
/// turn them into spaces), and the characters XML 1.0 forbids (other C0 controls, U+FFFE,
/// U+FFFF) as U+FFFD.
fn attr(o: &mut String, key: &str, value: impl Display) {
    let _ = write!(o, " {key}=\"");
    for c in value.to_string().chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(o, "&#{};", u32::from(c));
            }
            '\0'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o.push('"');
}

/// `dir` as a relative URL path, safe in an attribute and a template as it is: bytes other
/// than unreserved ones and `/` percent-encoded (so no `$`, `?`, `#`, `&`, space, quote).
fn url_path(dir: &str) -> String {
    let mut out = String::with_capacity(dir.len());
    for b in dir.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `fps` as a FrameRateType: `N`, `N/1001` or `N/1000`; `None` when not positive.
fn frame_rate(fps: f64) -> Option<String> {
    let ntsc = (fps * 1001.0).round();
    if !(fps.is_finite() && fps > 0.0) {
        None
    } else if (fps - fps.round()).abs() < 1e-3 {
        Some(format!("{:.0}", fps.round()))
    } else if ntsc % 1000.0 == 0.0 && (ntsc / 1001.0 - fps).abs() < 1e-4 {
        Some(format!("{ntsc:.0}/1001"))
    } else {
        Some(format!("{:.0}/1000", (fps * 1000.0).round()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// Segments numbered from `number`, the first at `start` ticks, of `secs` each.
    fn segs(number: u64, mut start: u64, timescale: u32, secs: &[f64]) -> Vec<Segment> {
        let ticks = secs.iter().map(|s| (s * f64::from(timescale)) as u64);
        let segs = ticks.zip(number..).map(|(duration, number)| {
            start += duration;
            (number, start - duration, duration)
        });
        let init = None;
        segs.map(|(number, start, duration)| Segment {
            number,
            start,
            duration,
            init,
        })
        .collect()
    }

    /// A 90 kHz rendition in directory `id`, video at 29.97 fps unless `audio`.
    fn rep(
        id: &str,
        codecs: &str,
        height: u32,
        audio: bool,
        segments: Vec<Segment>,
    ) -> Representation {
        let media = match audio {
            false => Media::Video {
                width: height * 16 / 9,
                height,
                frame_rate: 30_000.0 / 1001.0,
            },
            true => Media::Audio {
                sample_rate: 48_000,
                channels: 2,
            },
        };
        let (id, dir, codecs, bandwidth, timescale) =
            (id.into(), id.into(), codecs.into(), 1000, 90_000);
        Representation {
            id,
            dir,
            codecs,
            bandwidth,
            media,
            timescale,
            presentation_time_offset: 0,
            segments,
        }
    }

    /// avc1 720p + 360p, av01 540p, 48 kHz stereo audio: 2, 2, 2, 1.5 s from number `first`.
    fn ladder(kind: Kind, first: u64) -> Manifest {
        let secs = [2.0, 2.0, 2.0, 1.5];
        let v = segs(first, first * 180_000, 90_000, &secs);
        let mut adaptation_sets = AdaptationSet::video_by_codec(vec![
            rep("720p", "avc1.64001f", 720, false, v.clone()),
            rep("540p", "av01.0.04M.08", 540, false, v.clone()),
            rep("360p", "avc1.64001e", 360, false, v),
        ]);
        let a = segs(first, first * 96_000, 48_000, &secs);
        let audio = Representation {
            timescale: 48_000,
            ..rep("audio-128k", "mp4a.40.2", 0, true, a)
        };
        let (content, lang) = (Content::Audio, Some("en".to_owned()));
        adaptation_sets.push(AdaptationSet {
            content,
            lang,
            representations: vec![audio],
        });
        Manifest {
            kind,
            periods: vec![Period {
                id: 0,
                start: 0.0,
                adaptation_sets,
            }],
            min_buffer_time: 2.0,
            low_latency: None,
        }
    }

    /// Live since 1700000000 s, published 10.5 s later.
    fn live() -> Kind {
        Kind::Dynamic {
            availability_start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            publish_time: UNIX_EPOCH + Duration::from_millis(1_700_000_010_500),
            time_shift_buffer: 30.0,
            minimum_update_period: 2.0,
            suggested_presentation_delay: 6.0,
        }
    }

    /// A start tag: its name and attributes, values as written.
    type Tag<'a> = (&'a str, Vec<(&'a str, &'a str)>);

    /// Asserts `xml` is well-formed in the subset written here (the declaration, then tags
    /// only, balanced, one root; attributes double-quoted, unique, without `<`, with known
    /// entities only) and returns its start tags.
    fn parse(xml: &str) -> Vec<Tag<'_>> {
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        let mut rest = xml.strip_prefix(decl).expect("XML declaration");
        let (mut open, mut tags) = (Vec::new(), Vec::new());
        while let Some(tag) = rest.trim_start().strip_prefix('<') {
            assert!(tags.is_empty() || !open.is_empty(), "a second root");
            let (tag, after) = tag.split_once('>').expect("unclosed tag");
            rest = after;
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "mismatched end tag");
                continue;
            }
            let (tag, empty) = tag.strip_suffix('/').map_or((tag, false), |t| (t, true));
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            let mut seen: Vec<(&str, &str)> = Vec::new();
            while let Some((key, after)) = attrs.split_once("=\"") {
                let (value, after) = after.split_once('"').expect("closing quote");
                assert!(key.chars().all(|c| c.is_ascii_alphabetic()), "name {key:?}");
                assert!(!value.contains('<') && seen.iter().all(|(k, _)| *k != key));
                for entity in value.split('&').skip(1) {
                    let (entity, _) = entity.split_once(';').expect("entity");
                    let known = ["amp", "lt", "gt", "quot", "apos"].contains(&entity);
                    assert!(known || entity[1..].parse::<u8>().is_ok(), "&{entity};");
                }
                seen.push((key, value));
                attrs = after.strip_prefix(' ').unwrap_or(after);
                assert!(
                    after.is_empty() || after.starts_with(' '),
                    "space after {key}"
                );
            }
            assert!(attrs.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()));
            if !empty {
                open.push(name);
            }
            tags.push((name, seen));
        }
        assert!(
            rest.trim().is_empty() && open.is_empty(),
            "text or unclosed {open:?}"
        );
        tags
    }

    /// Attribute `key` of every `name` element, joined by spaces ("-" where absent).
    fn all(tags: &[Tag<'_>], name: &str, key: &str) -> String {
        let tags = tags.iter().filter(|(t, _)| *t == name);
        let values = tags.map(|(_, a)| a.iter().find(|(k, _)| *k == key).map_or("-", |(_, v)| v));
        values.collect::<Vec<_>>().join(" ")
    }

    /// Every `<S>` as `t,d,r` ("-" where absent), joined by spaces.
    fn runs(tags: &[Tag<'_>]) -> String {
        let (t, d, r) = (
            all(tags, "S", "t"),
            all(tags, "S", "d"),
            all(tags, "S", "r"),
        );
        let runs = t.split(' ').zip(d.split(' ')).zip(r.split(' '));
        runs.map(|((t, d), r)| format!("{t},{d},{r}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn static_ladder_of_two_codecs_and_audio() {
        let xml = render(&ladder(Kind::Static { duration: 7.5 }, 0));
        let tags = parse(&xml);
        assert_eq!(all(&tags, "MPD", "type"), "static");
        assert_eq!(all(&tags, "MPD", "mediaPresentationDuration"), "PT7.5S");
        assert_eq!(
            all(&tags, "MPD", "availabilityStartTime") + &all(&tags, "UTCTiming", "value"),
            "-"
        );
        assert_eq!(
            all(&tags, "AdaptationSet", "mimeType"),
            "video/mp4 video/mp4 audio/mp4"
        );
        assert_eq!(all(&tags, "AdaptationSet", "maxHeight"), "720 540 -");
        assert_eq!(
            all(&tags, "AdaptationSet", "maxFrameRate"),
            "30000/1001 30000/1001 -"
        );
        assert_eq!(all(&tags, "AdaptationSet", "lang"), "- - en");
        let codecs = all(&tags, "Representation", "codecs");
        assert_eq!(codecs, "avc1.64001f avc1.64001e av01.0.04M.08 mp4a.40.2");
        assert_eq!(all(&tags, "AudioChannelConfiguration", "value"), "2");
        let init = all(&tags, "SegmentTemplate", "initialization");
        assert_eq!(
            init,
            "720p/init_00000.mp4 360p/init_00000.mp4 540p/init_00000.mp4 audio-128k/init_00000.mp4"
        );
        let media = all(&tags, "SegmentTemplate", "media");
        assert!(
            media.ends_with(" audio-128k/seg_$Number%05d$.m4s"),
            "{media}"
        );
        assert_eq!(
            all(&tags, "SegmentTemplate", "timescale"),
            "90000 90000 90000 48000"
        );
        assert_eq!(all(&tags, "SegmentTemplate", "startNumber"), "0 0 0 0");
        // 2, 2, 2, 1.5 s: one S with r=2, then one S.
        let video = "0,180000,2 -,135000,-";
        assert_eq!(
            runs(&tags),
            format!("{video} {video} {video} 0,96000,2 -,72000,-")
        );
    }

    #[test]
    fn dynamic_ladder_after_a_sliding_window() {
        let mut m = ladder(live(), 7);
        let reps = m.periods[0]
            .adaptation_sets
            .iter_mut()
            .flat_map(|s| &mut s.representations);
        reps.flat_map(|r| &mut r.segments)
            .for_each(|s| s.init = Some(7));
        let xml = render(&m);
        let tags = parse(&xml);
        let mpd = |key| all(&tags, "MPD", key);
        assert_eq!(mpd("type"), "dynamic");
        assert_eq!(mpd("availabilityStartTime"), "2023-11-14T22:13:20Z");
        assert_eq!(mpd("publishTime"), "2023-11-14T22:13:30.5Z");
        let durations = [
            "minimumUpdatePeriod",
            "timeShiftBufferDepth",
            "suggestedPresentationDelay",
        ];
        assert_eq!(durations.map(mpd), ["PT2S", "PT30S", "PT6S"]);
        assert!(mpd("profiles").contains("isoff-live:2011"));
        assert_eq!(
            all(&tags, "Period", "id") + &all(&tags, "Period", "start"),
            "0PT0S"
        );
        assert_eq!(all(&tags, "SegmentTemplate", "startNumber"), "7 7 7 7");
        let init = all(&tags, "SegmentTemplate", "initialization");
        assert!(
            init.starts_with("720p/init_00007.mp4 360p/init_00007.mp4 "),
            "{init}"
        );
        assert!(runs(&tags).starts_with("1260000,180000,2 -,135000,- 1260000,"));
        let utc = "  </Period>\n  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" \
                   value=\"2023-11-14T22:13:30.5Z\"/>\n</MPD>\n";
        assert!(xml.ends_with(utc), "{xml}");
    }

    #[test]
    fn only_the_last_contiguous_run_of_numbers_is_listed() {
        let timeline = |s| Timeline::of(&rep("v", "avc1", 360, false, s));
        let runs = |t: Timeline| t.runs.iter().map(|r| (r.t, r.d, r.r)).collect::<Vec<_>>();
        let mut s = segs(3, 0, 1000, &[2.0, 2.0]);
        s.extend(segs(9, 10_000, 1000, &[2.0, 2.0, 2.0]));
        let listed = timeline(s).expect("segments");
        assert_eq!(
            (listed.start_number, runs(listed)),
            (9, vec![(Some(10_000), 2000, 2)])
        );
        // Contiguous numbers with a gap in time: `t` again after the gap.
        let mut s = segs(0, 0, 1000, &[2.0]);
        s.extend(segs(1, 2500, 1000, &[2.0, 2.0]));
        let listed = runs(timeline(s).expect("segments"));
        assert_eq!(listed, [(Some(0), 2000, 0), (Some(2500), 2000, 1)]);
        // Contiguous numbers, time going back (a restart from 0): the later run only.
        let mut s = segs(0, 90_000, 1000, &[2.0, 2.0]);
        s.extend(segs(2, 0, 1000, &[1.0]));
        assert_eq!(runs(timeline(s).expect("segments")), [(Some(0), 1000, 0)]);
        // Contiguous numbers and times, a new init segment (a restart): the later run only.
        let mut s = segs(0, 0, 1000, &[2.0, 2.0, 2.0]);
        s[2].init = Some(2);
        let listed = timeline(s).expect("segments");
        assert_eq!((listed.start_number, listed.init), (2, Some(2)));
        assert_eq!(timeline(Vec::new()), None);
    }

    #[test]
    fn hostile_ids_directories_and_languages_are_escaped() {
        let mut m = ladder(Kind::Static { duration: 7.5 }, 0);
        let sets = &mut m.periods[0].adaptation_sets;
        let r = &mut sets[0].representations[0];
        (r.id, r.dir) = ("a\"b'c<d>&e\tf\u{1}".into(), "x y/$Number$?#&\"<".into());
        sets[2].lang = Some("en\"><x".into());
        let xml = render(&m);
        let tags = parse(&xml);
        let id = all(&tags, "Representation", "id");
        assert!(
            id.starts_with("a&quot;b&apos;c&lt;d&gt;&amp;e&#9;f\u{FFFD} "),
            "{id}"
        );
        let media = all(&tags, "SegmentTemplate", "media");
        assert!(media.starts_with("x%20y/%24Number%24%3F%23%26%22%3C/seg_$Number%05d$.m4s "));
        assert_eq!(all(&tags, "AdaptationSet", "lang"), "- - en&quot;&gt;&lt;x");
    }

    #[test]
    fn one_set_per_codec_family_and_none_without_segments() {
        let codecs = [
            "hvc1.1.6.L93.B0",
            "avc1.64001f",
            "hvc1.2.4.L120.B0",
            "av01.0.08M.08",
        ];
        let reps = codecs.map(|c| rep(c, c, 360, false, Vec::new()));
        let sets = AdaptationSet::video_by_codec(reps.to_vec());
        let sizes = sets
            .iter()
            .map(|s| (family(&s.representations[0]), s.representations.len()));
        assert_eq!(
            sizes.collect::<Vec<_>>(),
            [("hvc1", 2), ("avc1", 1), ("av01", 1)]
        );
        let period = Period {
            id: 0,
            start: 0.0,
            adaptation_sets: sets,
        };
        let m = Manifest {
            kind: live(),
            periods: vec![period],
            min_buffer_time: 2.0,
            low_latency: None,
        };
        assert!(!render(&m).contains("<Period"));
    }

    #[test]
    fn frame_rates() {
        let rates = [25.0, 23.976, 59.94, 12.5, 0.0].map(|f| frame_rate(f).unwrap_or_default());
        assert_eq!(rates.join(" "), "25 24000/1001 60000/1001 12500/1000 ");
    }
}
