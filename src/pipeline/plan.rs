//! The ladder as it will run on this source: which rungs (those larger than the source left
//! out), their picture sizes (the named size on the upright picture's short side, the long
//! side from its display aspect), frame rates, encoder settings and threads.

use super::upright::Orientation;
use crate::config::{StreamConfig, VariantProfile, VideoCodec};
use crate::ffi::{Rational, StreamInfo, VideoEncoderSettings, PIX_FMT_YUV420P};
use crate::stats::{PlannedLadder, PlannedRung};

use crate::output::{MasterEntry, MEDIA_PLAYLIST};

/// Frame rate assumed when the source does not say.
const FALLBACK_FPS: f64 = 30.0;

/// One rung as it will run.
#[derive(Debug, Clone)]
pub(crate) struct RungPlan<'a> {
    pub profile: &'a VariantProfile,
    pub width: i32,
    pub height: i32,
    pub frame_rate: f64,
    /// x264 threads for this rung (see [`encoder_threads`]).
    pub threads: i32,
}

impl RungPlan<'_> {
    /// The video encoder's settings. Keyframes come from the timeline's forced frames
    /// (segment boundaries), never from the encoder's own GOP logic or scene cuts, which
    /// would break alignment across variants; SVT-AV1, which cannot force one, gets a GOP of
    /// exactly one segment instead (see [`VideoCodec::Av1`]).
    pub fn encoder_settings(
        &self,
        time_base: Rational,
        segment_secs: f64,
        global_header: bool,
        low_latency: bool,
    ) -> VideoEncoderSettings {
        let vp = self.profile;
        let frames_per_segment = (segment_secs * self.frame_rate).round().max(1.0) as i32;
        let preset = vp.codec.encoder_preset(&vp.preset);
        // Low latency: no frame waits for a later one (no B-frames, no lookahead); x264 and
        // x265 take their `zerolatency` tune, SVT-AV1 its low-delay prediction structure.
        let (x264, x265, svt) = if low_latency {
            (
                "scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:sync-lookahead=0",
                ":bframes=0:rc-lookahead=0",
                ":pred-struct=1",
            )
        } else {
            ("scenecut=0:open-gop=0", "", "")
        };
        let (gop_size, options) = match vp.codec {
            VideoCodec::H264 => (
                frames_per_segment * 4,
                vec![
                    ("preset".into(), preset),
                    ("forced-idr".into(), "1".into()),
                    ("x264-params".into(), x264.into()),
                ],
            ),
            // x265 logs to stderr itself: only errors.
            VideoCodec::Hevc => (
                frames_per_segment * 4,
                vec![
                    ("preset".into(), preset),
                    ("forced-idr".into(), "1".into()),
                    (
                        "x265-params".into(),
                        format!(
                            "scenecut=0:open-gop=0:log-level=error:pools={}:frame-threads={}{x265}",
                            self.threads,
                            self.threads.clamp(1, 4)
                        ),
                    ),
                ],
            ),
            VideoCodec::Av1 => (
                frames_per_segment,
                vec![
                    ("preset".into(), preset),
                    (
                        "svtav1-params".into(),
                        format!("scd=0:lp={}{svt}", self.threads),
                    ),
                ],
            ),
        };
        VideoEncoderSettings {
            codec: vp.codec.encoder_name().to_owned(),
            width: self.width,
            height: self.height,
            pix_fmt: PIX_FMT_YUV420P,
            time_base,
            frame_rate: rational_fps(self.frame_rate),
            bit_rate: vp.video_bitrate as i64,
            max_rate: vp.max_rate as i64,
            buf_size: vp.buf_size as i64,
            gop_size,
            threads: self.threads,
            global_header,
            options,
        }
    }

    /// The rung's master playlist entry, priced from its configured rates until measured:
    /// with its muxed audio (MPEG-TS), or playing with an audio group (fMP4), whose rate
    /// the master adds itself.
    pub fn master_entry(&self, muxed_audio: bool, audio_group: Option<usize>) -> MasterEntry {
        let vp = self.profile;
        let audio_bps = if muxed_audio { vp.audio_bitrate } else { 0 };
        MasterEntry {
            uri: format!("{}/{MEDIA_PLAYLIST}", vp.name),
            bandwidth: vp.max_rate + audio_bps,
            average_bandwidth: vp.video_bitrate + audio_bps,
            width: self.width as u32,
            height: self.height as u32,
            codecs: String::new(),
            frame_rate: self.frame_rate,
            muxed_audio,
            audio_group,
        }
    }
}

/// What will run, for the lifecycle (and the manager's pricing): the source's upright size,
/// the rungs as they run.
pub(crate) fn summary(video: &StreamInfo, audio: bool, rungs: &[RungPlan]) -> PlannedLadder {
    let ((w, h), _) = upright(video);
    PlannedLadder {
        source_width: w.max(0) as u32,
        source_height: h.max(0) as u32,
        source_fps: source_fps(video),
        audio,
        rungs: rungs.iter().map(planned_rung).collect(),
        memory_estimate: memory_of(f64::from(video.width) * f64::from(video.height), rungs),
    }
}

/// The memory model ([`stream_memory`](super::stream_memory)) for these rungs.
fn memory_of(decode_pixels: f64, rungs: &[RungPlan]) -> u64 {
    let each = rungs.iter().map(|r| {
        (
            f64::from(r.width) * f64::from(r.height),
            r.profile.preset.as_str(),
            r.profile.codec,
        )
    });
    super::stream_memory(decode_pixels, each)
}

fn planned_rung(r: &RungPlan) -> PlannedRung {
    PlannedRung {
        name: r.profile.name.clone(),
        width: r.width.max(0) as u32,
        height: r.height.max(0) as u32,
        frame_rate: r.frame_rate,
    }
}

/// The source's frame rate, or [`FALLBACK_FPS`] when it does not say.
pub(crate) fn source_fps(video: &StreamInfo) -> f64 {
    if video.frame_rate.is_valid() {
        video.frame_rate.as_f64()
    } else {
        FALLBACK_FPS
    }
}

/// The rungs that run on a source with this video, sized for its upright picture (its
/// display matrix applied, see [`Orientation`]): see [`plan_for`].
pub(crate) fn plan<'a>(config: &'a StreamConfig, video: &StreamInfo) -> Vec<RungPlan<'a>> {
    let (size, sar) = upright(video);
    plan_for(config, size, sar, source_fps(video))
}

/// The source's upright picture: its size and sample aspect ratio once its display matrix
/// is applied (a quarter turn swaps the sides), as every rung receives it.
pub(crate) fn upright(video: &StreamInfo) -> ((i32, i32), Rational) {
    let o = Orientation::of(video);
    let size = o.upright_size((video.width, video.height));
    (size, o.upright_sar(video.sample_aspect_ratio))
}

/// The ladder that would run on a source the config declares ([`StreamConfig::source_hint`],
/// its upright size), for pricing before the source is opened; `None` without a hint.
pub(crate) fn planned_from_hint(config: &StreamConfig) -> Option<PlannedLadder> {
    let hint = config.source_hint()?;
    let (w, h) = (hint.width as i32, hint.height as i32);
    let rungs = plan_for(config, (w, h), Rational::new(1, 1), hint.frame_rate);
    Some(PlannedLadder {
        source_width: hint.width,
        source_height: hint.height,
        source_fps: hint.frame_rate,
        audio: true,
        rungs: rungs.iter().map(planned_rung).collect(),
        memory_estimate: memory_of(f64::from(hint.width) * f64::from(hint.height), &rungs),
    })
}

/// The rungs that run on an upright source picture of this size and sample aspect: a
/// rung's named size is its short side (its height for a landscape or square source, its
/// width for a portrait one), the long side follows the display aspect
/// ([`SourceShape::rung_size`]). Rungs larger than the source's short side are left out
/// (unless the profile keeps them); if none is left, the smallest runs.
fn plan_for<'a>(
    config: &'a StreamConfig,
    src: (i32, i32),
    sar: Rational,
    src_fps: f64,
) -> Vec<RungPlan<'a>> {
    let profile = config.profile();
    let shape = SourceShape::new(src, sar);
    let make = |v: &'a VariantProfile| {
        let (width, height) = shape.rung_size(v.height);
        RungPlan {
            profile: v,
            width,
            height,
            frame_rate: v.max_frame_rate.map_or(src_fps, |cap| cap.min(src_fps)),
            threads: 1,
        }
    };
    let short = shape.short_side();
    let mut rungs: Vec<RungPlan> = profile
        .variants
        .iter()
        .filter(|v| {
            let keep = profile.keep_taller_rungs || i64::from(v.height) <= short;
            if !keep {
                log::info!(
                    "stream {}: leaving out variant {} ({}p): larger than the source \
                     ({short}p on its short side)",
                    config.id(),
                    v.name,
                    v.height
                );
            }
            keep
        })
        .map(make)
        .collect();
    if rungs.is_empty() {
        let shortest = profile
            .variants
            .iter()
            .min_by_key(|v| v.height)
            .expect("validated non-empty");
        log::info!(
            "stream {}: every rung is larger than the source; keeping {}",
            config.id(),
            shortest.name
        );
        rungs.push(make(shortest));
    }
    let cores = config
        .core_share()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rates: Vec<f64> = rungs
        .iter()
        .map(|p| f64::from(p.width * p.height) * p.frame_rate)
        .collect();
    for (rung, threads) in rungs.iter_mut().zip(encoder_threads(&rates, cores)) {
        rung.threads = threads;
    }
    rungs
}

/// Longest a rung's long side may be, in pixels.
pub(crate) const MAX_RUNG_SIDE: i64 = 8192;
/// Longest a rung's long side may be, as a multiple of its short side (a 4:1 picture;
/// longer sources are squeezed to it rather than making a sliver-thin, huge rung).
pub(crate) const MAX_RUNG_ASPECT: i64 = 4;

/// An upright source picture as rung sizing sees it: its display aspect `dw:dh` and its
/// height. Integer arithmetic in `i128`: no product of an `i32` size and an `i32` aspect can
/// overflow it.
#[derive(Debug, Clone, Copy)]
struct SourceShape {
    dw: i128,
    dh: i128,
    h: i128,
}

impl SourceShape {
    /// The shape of a `w x h` picture whose samples are `sar` wide (unknown: square).
    fn new((w, h): (i32, i32), sar: Rational) -> Self {
        let (num, den) = if sar.is_valid() {
            (i128::from(sar.num), i128::from(sar.den))
        } else {
            (1, 1)
        };
        let (w, h) = (i128::from(w.max(1)), i128::from(h.max(1)));
        Self {
            dw: w * num,
            dh: h * den,
            h,
        }
    }

    /// Displayed taller than wide.
    fn is_portrait(self) -> bool {
        self.dh > self.dw
    }

    /// The short side in pixels, as a rung's named size is compared with it: a landscape
    /// (or square) source's height; a portrait source's width at its display aspect (for
    /// square samples, its width).
    fn short_side(self) -> i64 {
        let short = if self.is_portrait() {
            // w * sar, rounded: the width that shows the picture at its height.
            (self.h * self.dw * 2 + self.dh) / (self.dh * 2)
        } else {
            self.h
        };
        i64::try_from(short).unwrap_or(i64::MAX)
    }

    /// A rung's `(width, height)` for its named size: the named size on the short side;
    /// the long side from the display aspect, rounded to even and capped at
    /// [`MAX_RUNG_ASPECT`] x the short side and [`MAX_RUNG_SIDE`].
    fn rung_size(self, named: u32) -> (i32, i32) {
        let short = i32::try_from(named).unwrap_or(i32::MAX);
        if self.is_portrait() {
            (short, long_side(named, self.dh, self.dw))
        } else {
            (long_side(named, self.dw, self.dh), short)
        }
    }
}

/// The long side for a short side of `short` pixels at the aspect `long:short_of`, rounded
/// to the nearest even number, capped (see [`SourceShape::rung_size`]).
fn long_side(short: u32, long: i128, short_of: i128) -> i32 {
    let s = i128::from(short);
    let cap = i128::from(MAX_RUNG_SIDE.min(MAX_RUNG_ASPECT * i64::from(short)));
    let (n, d) = (s * long, short_of.max(1) * 2);
    let half = (n + d / 2) / d;
    let l = (half * 2).clamp(2, (cap - cap % 2).max(2));
    i32::try_from(l).unwrap_or(2)
}

/// x264 threads for each rung: the machine's cores (plus one, to cover I/O waits) shared in
/// proportion to each rung's pixel rate, at least one each. The rungs already run in
/// parallel with each other, so giving every encoder x264's automatic 1.5 x cores
/// oversubscribes the machine; measured on 2 cores this split is ~6 % faster.
fn encoder_threads(pixel_rates: &[f64], cores: usize) -> Vec<i32> {
    let total: f64 = pixel_rates.iter().sum();
    let budget = (cores + 1) as f64;
    pixel_rates
        .iter()
        .map(|r| {
            if total > 0.0 {
                (r / total * budget).round().max(1.0) as i32
            } else {
                1
            }
        })
        .collect()
}

fn rational_fps(fps: f64) -> Rational {
    let r = (fps * 1000.0).round() as i32;
    if r % 1000 == 0 {
        Rational::new(r / 1000, 1)
    } else {
        Rational::new(r, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_threads_follow_pixel_rate() {
        let ladder = [
            1920.0 * 1080.0,
            1280.0 * 720.0,
            854.0 * 480.0,
            640.0 * 360.0,
        ];
        assert_eq!(encoder_threads(&ladder, 2), [2, 1, 1, 1]);
        assert_eq!(encoder_threads(&ladder, 16), [10, 4, 2, 1]);
        assert_eq!(encoder_threads(&[1.0], 2), [3]);
        assert_eq!(encoder_threads(&[0.0, 0.0], 2), [1, 1]);
    }

    fn size(named: u32, src: (i32, i32), sar: Rational) -> (i32, i32) {
        SourceShape::new(src, sar).rung_size(named)
    }

    #[test]
    fn widths_follow_display_aspect_and_are_even() {
        let sq = Rational::new(1, 1);
        assert_eq!(size(720, (1920, 1080), sq), (1280, 720));
        assert_eq!(size(480, (1920, 1080), sq), (854, 480));
        assert_eq!(size(360, (1920, 1080), sq), (640, 360));
        assert_eq!(size(240, (1920, 1080), sq), (426, 240));
        assert_eq!(size(480, (640, 480), sq), (640, 480));
        assert_eq!(size(480, (480, 480), sq), (480, 480));
        // Anamorphic 720x576 with 16:15 SAR displays 4:3.
        assert_eq!(size(576, (720, 576), Rational::new(16, 15)), (768, 576));
    }

    #[test]
    fn a_portrait_source_gets_its_named_size_on_the_short_side() {
        let sq = Rational::new(1, 1);
        assert_eq!(size(720, (1080, 1920), sq), (720, 1280));
        assert_eq!(size(360, (1080, 1920), Rational::new(0, 1)), (360, 640));
        assert_eq!(size(480, (1080, 1920), sq), (480, 854));
        // A 4:3 landscape picture with 3:4 samples displays 1:1: square, landscape rule.
        assert_eq!(size(480, (640, 480), Rational::new(3, 4)), (480, 480));
        // Anamorphic portrait: 576x720 samples 15:16 wide display 540x720.
        assert_eq!(size(540, (576, 720), Rational::new(15, 16)), (540, 720));
        let shape = SourceShape::new((1080, 1920), sq);
        assert_eq!(shape.short_side(), 1080);
        let anamorphic = SourceShape::new((576, 720), Rational::new(15, 16));
        assert_eq!(anamorphic.short_side(), 540);
        assert_eq!(SourceShape::new((1920, 1080), sq).short_side(), 1080);
    }

    #[test]
    fn long_sides_are_capped_without_overflow() {
        // 1000:1 sample aspect: 4x the short side, not an i32 overflow.
        assert_eq!(size(240, (1920, 1080), Rational::new(1000, 1)), (960, 240));
        // 100:1 would be 192000 wide: 8192 at most (4x 4320 is more).
        assert_eq!(
            size(4320, (1920, 1080), Rational::new(100, 1)),
            (8192, 4320)
        );
        let extreme = Rational::new(i32::MAX, 1);
        assert_eq!(size(2160, (i32::MAX, 1), extreme), (8192, 2160));
        // The same caps on a portrait picture's height.
        let thin = Rational::new(1, i32::MAX);
        assert_eq!(size(240, (2, 16384), thin), (240, 960));
        assert_eq!(size(2160, (1, i32::MAX), thin), (2160, 8192));
        assert_eq!(size(2, (16384, 2), Rational::new(1, 1)), (8, 2));
        assert_eq!(size(2, (2, 16384), Rational::new(1, 1)), (2, 8));
        let huge = SourceShape::new((i32::MAX, i32::MAX), Rational::new(1, i32::MAX));
        assert!(huge.short_side() > 0);
    }

    fn video(width: i32, height: i32, matrix: Option<[i32; 9]>) -> StreamInfo {
        StreamInfo {
            index: 0,
            codec_name: "h264".into(),
            time_base: Rational::new(1, 90_000),
            frame_rate: Rational::new(30, 1),
            width,
            height,
            sample_aspect_ratio: Rational::new(1, 1),
            sample_rate: 0,
            display_matrix: matrix,
        }
    }

    /// A phone's portrait clip: stored landscape, turned a quarter for display.
    const PORTRAIT: [i32; 9] = [0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30];

    #[test]
    fn a_rotated_source_is_planned_upright() {
        let config = StreamConfig::builder("s", "in.mp4", "out")
            .local_files_under("/")
            .build()
            .unwrap()
            .with_core_share(1);
        let rotated = video(1280, 720, Some(PORTRAIT));
        let rungs = plan(&config, &rotated);
        let sizes: Vec<_> = rungs.iter().map(|r| (r.width, r.height)).collect();
        // 1080p is larger than the 720-wide upright picture: left out.
        assert_eq!(sizes, [(720, 1280), (480, 854), (360, 640), (240, 426)]);
        let summary = summary(&rotated, false, &rungs);
        assert_eq!((summary.source_width, summary.source_height), (720, 1280));
        assert_eq!(summary.rungs[0].width, 720);
        assert_eq!(summary.rungs[0].height, 1280);
        // Stored portrait, no matrix: the same ladder.
        let stored = plan(&config, &video(720, 1280, None));
        let same: Vec<_> = stored.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(same, sizes);
        // The same clip without its matrix is landscape: 720p is 1280 wide.
        let landscape = plan(&config, &video(1280, 720, None));
        assert_eq!((landscape[0].width, landscape[0].height), (1280, 720));
    }

    #[test]
    fn a_managed_stream_keeps_its_encoders_to_its_share_of_the_cores() {
        let config = StreamConfig::builder("s", "in.mp4", "out")
            .local_files_under("/")
            .build()
            .unwrap()
            .with_core_share(1);
        let rungs = plan(&config, &video(1920, 1080, None));
        assert_eq!(rungs.len(), 5);
        // One core (plus one for I/O waits) shared by five rungs: one thread each, the
        // least an encoder can have.
        assert!(rungs.iter().all(|r| r.threads == 1), "{rungs:?}");
    }

    #[test]
    fn frame_rates_are_exact_rationals_where_they_can_be() {
        assert_eq!(rational_fps(30.0), Rational::new(30, 1));
        assert_eq!(rational_fps(29.97), Rational::new(29970, 1000));
    }
}
