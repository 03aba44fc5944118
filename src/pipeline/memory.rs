//! What a stream's frames in flight cost in memory: the decoder's reference and threaded
//! frames plus the variant queues (source-sized, shared by every variant), and per rung
//! x264's own frames: its lookahead, its reference frames and one per frame thread, each
//! with the planes x264 keeps beside the picture. The same model prices a stream in a
//! manager's pool and is reported in its statistics.
//!
//! Calibrated against peak RSS (`/usr/bin/time -v`) of the `transcode` example on a 720p30
//! source with a 720p+360p ladder, over a 180p single-rung run as the baseline (libraries
//! and code): ultrafast measured +47 MB (model 52), veryfast +128 MB (model 130), medium
//! +247 MB (model 313). The model errs high, so admission errs on the safe side.
//!
//! Other encoders keep more per frame than x264 at the same speed: measured the same way
//! (a 1080p30 source, 720p+360p at veryfast, fMP4), peak RSS was 248 MB with x264, 381 MB
//! with x265 and 499 MB with SVT-AV1 (preset 10), so their frames count 2x and 3x.

use super::RENDITION_QUEUE;
use crate::config::VideoCodec;

/// Reference frames a decoder may hold (H.264's maximum DPB).
const DECODER_REFERENCES: u64 = 16;
/// Threads a decoder or encoder is assumed to run (frame threads hold a frame each).
const THREADS: u64 = 3;

/// x264's lookahead and reference frames at a preset (its preset tables).
fn x264_frames(preset: &str) -> (u64, u64) {
    match preset {
        "ultrafast" | "superfast" => (0, 1),
        "veryfast" => (10, 1),
        "faster" => (20, 2),
        "fast" => (30, 2),
        "medium" => (40, 3),
        "slow" => (50, 5),
        "slower" => (60, 8),
        _ => (60, 16),
    }
}

/// Bytes x264 keeps per frame of `pixels` at a preset: the 4:2:0 picture with padding and
/// its lowres copy; past ultrafast also the half-pel planes its motion search reads.
fn x264_frame_bytes(pixels: f64, preset: &str) -> f64 {
    let factor = if matches!(preset, "ultrafast") {
        1.25
    } else {
        3.3
    };
    pixels * 1.5 * factor
}

/// How much more an encoder keeps in flight than x264 at the same preset (module docs).
fn codec_factor(codec: VideoCodec) -> f64 {
    codec.traits().memory_weight
}

/// The memory of a stream decoding `decode_pixels`-sized pictures into rungs of
/// `(pixels, preset, codec)`, bytes.
pub(crate) fn stream_memory<'a>(
    decode_pixels: f64,
    rungs: impl IntoIterator<Item = (f64, &'a str, VideoCodec)>,
) -> u64 {
    let source_frames = DECODER_REFERENCES + THREADS + RENDITION_QUEUE as u64;
    let mut bytes = decode_pixels * 1.5 * source_frames as f64;
    for (pixels, preset, codec) in rungs {
        let (lookahead, refs) = x264_frames(preset);
        let frames = lookahead + refs + THREADS + 2;
        // The scaled picture waiting for the encoder, then the encoder's frames.
        let encoder = x264_frame_bytes(pixels, preset) * frames as f64 * codec_factor(codec);
        bytes += pixels * 1.5 + encoder;
    }
    bytes as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const P720: f64 = 1280.0 * 720.0;
    const P360: f64 = 640.0 * 360.0;

    #[test]
    fn the_model_stays_near_what_was_measured_and_errs_high() {
        // Peak RSS growth measured for a 720p source with a 720p+360p ladder (module docs).
        for (preset, measured_mb) in [("ultrafast", 47.0), ("veryfast", 128.0), ("medium", 247.0)] {
            let model = stream_memory(
                P720,
                [
                    (P720, preset, VideoCodec::H264),
                    (P360, preset, VideoCodec::H264),
                ],
            ) as f64
                / 1e6;
            assert!(
                model >= measured_mb && model <= measured_mb * 1.4,
                "{preset}: model {model:.0} MB, measured {measured_mb} MB"
            );
        }
    }

    #[test]
    fn slower_presets_and_bigger_pictures_cost_more() {
        let h264 = VideoCodec::H264;
        let fast = stream_memory(P720, [(P720, "veryfast", h264)]);
        let slow = stream_memory(P720, [(P720, "slower", h264)]);
        assert!(slow > fast);
        assert!(stream_memory(P720, [(P360, "veryfast", h264)]) < fast);
        let hevc = stream_memory(P720, [(P720, "veryfast", VideoCodec::Hevc)]);
        let av1 = stream_memory(P720, [(P720, "veryfast", VideoCodec::Av1)]);
        assert!(fast < hevc && hevc < av1, "{fast} {hevc} {av1}");
        assert!(stream_memory(P360, []) < stream_memory(P720, []));
    }
}
