//! Reads back a live manifest an earlier run of the stream left, so that a restarted run
//! carries it on: the same `availabilityStartTime`, the earlier Periods kept (their
//! segments expire as the window slides on), a new Period for the new run. Only what
//! [`render`](super::model::render) writes is understood: a manifest that is not a live one
//! of ours (static, another layout, templates we do not write) reads as `None`, and the new
//! run starts the manifest afresh.

use std::time::SystemTime;

use roxmltree::{Document, Node};

use super::model::{AdaptationSet, Content, Media, Period, Representation, Segment};
use crate::output::naming::{parse_init, DASH_SEGMENT_TEMPLATE};
use crate::output::xs;

/// What a live manifest says that a new run continues.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EarlierRuns {
    /// `MPD@availabilityStartTime`: the new run keeps it.
    pub(crate) availability_start: SystemTime,
    /// Its Periods, in order, each with what it still lists.
    pub(crate) periods: Vec<Period>,
}

/// The earlier runs a live manifest of ours lists; `None` for anything else.
pub(crate) fn earlier_runs(xml: &str) -> Option<EarlierRuns> {
    let doc = Document::parse(xml).ok()?;
    let mpd = doc.root_element();
    if !mpd.has_tag_name("MPD") || mpd.attribute("type") != Some("dynamic") {
        return None;
    }
    let availability_start = xs::parse_date_time(mpd.attribute("availabilityStartTime")?)?;
    let periods = children(mpd, "Period")
        .map(period)
        .collect::<Option<Vec<_>>>()?;
    let ordered = periods
        .windows(2)
        .all(|w| w[0].id < w[1].id && w[0].start <= w[1].start);
    (!periods.is_empty() && ordered).then_some(EarlierRuns {
        availability_start,
        periods,
    })
}

/// The element children of `node` named `name`.
fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |c| c.has_tag_name(name))
}

/// Attribute `key` of `node` parsed as a `T`.
fn number<T: std::str::FromStr>(node: Node<'_, '_>, key: &str) -> Option<T> {
    node.attribute(key)?.parse().ok()
}

fn period(node: Node<'_, '_>) -> Option<Period> {
    let adaptation_sets = children(node, "AdaptationSet")
        .map(adaptation_set)
        .collect::<Option<Vec<_>>>()?;
    Some(Period {
        id: number(node, "id")?,
        start: xs::parse_duration(node.attribute("start")?)?,
        adaptation_sets,
    })
}

fn adaptation_set(node: Node<'_, '_>) -> Option<AdaptationSet> {
    let content = match node.attribute("contentType")? {
        "video" => Content::Video,
        "audio" => Content::Audio,
        _ => return None,
    };
    let representations = children(node, "Representation")
        .map(|r| representation(r, content))
        .collect::<Option<Vec<_>>>()?;
    Some(AdaptationSet {
        content,
        lang: node.attribute("lang").map(str::to_owned),
        representations,
    })
}

fn representation(node: Node<'_, '_>, content: Content) -> Option<Representation> {
    let media = match content {
        Content::Video => Media::Video {
            width: number(node, "width")?,
            height: number(node, "height")?,
            frame_rate: node.attribute("frameRate").map_or(Some(0.0), frame_rate)?,
        },
        Content::Audio => Media::Audio {
            sample_rate: number(node, "audioSamplingRate")?,
            channels: number(children(node, "AudioChannelConfiguration").next()?, "value")?,
        },
    };
    let template = children(node, "SegmentTemplate").next()?;
    let (dir, init) = template.attribute("initialization")?.rsplit_once('/')?;
    let media_path = template.attribute("media")?;
    if media_path
        .strip_suffix(DASH_SEGMENT_TEMPLATE)?
        .strip_suffix('/')?
        != dir
    {
        return None;
    }
    let timeline = children(template, "SegmentTimeline").next()?;
    let first_number: u64 = number(template, "startNumber")?;
    let init = parse_init(init)?;
    let mut listed = segments(timeline, first_number, init)?;
    // A low-latency manifest lists the segment being written last: it may never have been
    // finished (the run stopped), so a run carrying the manifest on leaves it out.
    if template.attribute("availabilityTimeComplete") == Some("false") {
        listed.pop();
    }
    Some(Representation {
        id: node.attribute("id")?.to_owned(),
        dir: url_path_decoded(dir)?,
        codecs: node.attribute("codecs")?.to_owned(),
        bandwidth: number(node, "bandwidth")?,
        media,
        timescale: number(template, "timescale").filter(|&t: &u32| t > 0)?,
        presentation_time_offset: number(template, "presentationTimeOffset")?,
        segments: listed,
    })
}

/// The segments of a `SegmentTimeline`, numbered from `first_number`; the first `<S>` must
/// say where it starts.
fn segments(timeline: Node<'_, '_>, first_number: u64, init: u64) -> Option<Vec<Segment>> {
    let (mut out, mut next_start, mut next_number) = (Vec::new(), None, first_number);
    for s in children(timeline, "S") {
        let start = match number(s, "t") {
            Some(t) => t,
            None => next_start?,
        };
        let duration: u64 = number(s, "d").filter(|&d| d > 0)?;
        let repeats: u64 = s.attribute("r").map_or(Some(0), |r| r.parse().ok())?;
        // A window holds a few hundred segments at most: a larger count is not ours.
        if repeats > 100_000 {
            return None;
        }
        let mut at = start;
        for _ in 0..=repeats {
            out.push(Segment {
                number: next_number,
                start: at,
                duration,
                init: Some(init),
            });
            next_number = next_number.checked_add(1)?;
            at = at.checked_add(duration)?;
        }
        next_start = Some(at);
    }
    Some(out)
}

/// A `FrameRateType`: `N` or `N/D`.
fn frame_rate(text: &str) -> Option<f64> {
    let (n, d) = text.split_once('/').unwrap_or((text, "1"));
    let (n, d) = (n.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
    (d > 0).then(|| f64::from(n) / f64::from(d))
}

/// A directory as written into the manifest, percent-decoded back; `None` when not UTF-8.
fn url_path_decoded(path: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(path.len());
    let mut rest = path.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(b);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::model::{render, Kind, LowLatency, Manifest};
    use super::*;

    fn rep(id: &str, media: Media, timescale: u32, first: u64, init: u64) -> Representation {
        let seg = u64::from(timescale) * 2;
        let segments = (0..4)
            .map(|i| Segment {
                number: first + i,
                start: 10 * seg + i * seg + u64::from(i == 3),
                duration: if i == 3 { seg / 2 } else { seg },
                init: Some(init),
            })
            .collect();
        Representation {
            id: id.to_owned(),
            dir: id.to_owned(),
            codecs: "avc1.64001f".to_owned(),
            bandwidth: 1_500_000,
            media,
            timescale,
            presentation_time_offset: 10 * seg,
            segments,
        }
    }

    fn live(periods: Vec<Period>) -> Manifest {
        Manifest {
            kind: Kind::Dynamic {
                availability_start: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
                publish_time: UNIX_EPOCH + Duration::from_secs(1_700_000_100),
                time_shift_buffer: 30.0,
                minimum_update_period: 2.0,
                suggested_presentation_delay: 6.0,
            },
            periods,
            min_buffer_time: 4.0,
            low_latency: None,
        }
    }

    fn two_runs() -> Vec<Period> {
        let video = Media::Video {
            width: 1280,
            height: 720,
            frame_rate: 30_000.0 / 1001.0,
        };
        let audio = Media::Audio {
            sample_rate: 48_000,
            channels: 2,
        };
        let period = |id: u64, start: f64, first: u64| Period {
            id,
            start,
            adaptation_sets: vec![
                AdaptationSet {
                    content: Content::Video,
                    lang: None,
                    representations: vec![rep("720p", video.clone(), 90_000, first, first)],
                },
                AdaptationSet {
                    content: Content::Audio,
                    lang: Some("en".to_owned()),
                    representations: vec![rep("audio 128k", audio.clone(), 48_000, first, first)],
                },
            ],
        };
        vec![period(0, 0.0, 3), period(1, 12.5, 7)]
    }

    #[test]
    fn a_live_manifest_reads_back_as_it_was_written() {
        let periods = two_runs();
        let xml = render(&live(periods.clone()));
        let earlier = earlier_runs(&xml).expect("ours");
        assert_eq!(
            earlier.availability_start,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
        );
        assert_eq!(earlier.periods, periods, "{xml}");
    }

    #[test]
    fn a_low_latency_manifest_reads_back_without_the_segment_being_written() {
        let periods = two_runs();
        let mut m = live(periods.clone());
        m.low_latency = Some(LowLatency {
            availability_time_offset: 1.666,
            target_latency: 1.336,
        });
        let xml = render(&m);
        assert!(xml.contains("availabilityTimeComplete=\"false\""), "{xml}");
        let earlier = earlier_runs(&xml).expect("ours");
        // Each representation's newest listed segment may never have been finished.
        let mut expected = periods;
        for p in &mut expected {
            for set in &mut p.adaptation_sets {
                for rep in &mut set.representations {
                    rep.segments.pop();
                }
            }
        }
        assert_eq!(earlier.periods, expected, "{xml}");
    }

    #[test]
    fn what_is_not_a_live_manifest_of_ours_is_none() {
        let xml = render(&live(two_runs()));
        let static_one = xml.replace("type=\"dynamic\"", "type=\"static\"");
        let number_template = xml.replace("seg_$Number%05d$.m4s", "$Number$.m4s");
        let no_start = xml.replace(" t=\"", " x=\"");
        let unordered = xml.replace("id=\"1\" start=\"PT12.5S\"", "id=\"0\" start=\"PT12.5S\"");
        for bad in [
            "",
            "<MPD/>",
            "not xml",
            &static_one,
            &number_template,
            &no_start,
            &unordered,
        ] {
            assert_eq!(earlier_runs(bad), None, "{bad}");
        }
    }
}
