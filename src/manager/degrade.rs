//! Degraded admission: the smaller versions of a stream's ladder that `OverCapacity::Degrade`
//! tries, in order, when the pool cannot carry the whole ladder.

use crate::config::{StreamConfig, VariantProfile};

/// What a degraded admission left out.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Degradation {
    /// Rungs dropped, tallest first.
    pub dropped_rungs: Vec<String>,
    /// The frame-rate cap put on every rung, if one was needed.
    pub frame_rate_cap: Option<f64>,
}

/// Frame-rate caps a degraded stream may be given, in the order they are tried.
const DEGRADED_RATES: [f64; 6] = [30.0, 25.0, 20.0, 15.0, 12.0, 10.0];

/// Smaller versions of `config`, in the order a degraded admission tries them.
pub(super) fn degraded(
    config: &StreamConfig,
    min_rungs: usize,
    min_fps: f64,
) -> Vec<(StreamConfig, Degradation)> {
    let mut by_height = config.profile().variants.clone();
    by_height.sort_by_key(|v| std::cmp::Reverse(v.height));
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let rebuild = |keep: Vec<VariantProfile>| {
        let mut profile = config.profile().clone();
        profile.variants = keep;
        config.to_builder().profile(profile).build().ok()
    };
    // The ladder's own order among the rungs that are left.
    let kept_after = |dropped: &[String]| -> Vec<VariantProfile> {
        let rungs = config.profile().variants.iter();
        rungs
            .filter(|v| !dropped.contains(&v.name))
            .cloned()
            .collect()
    };
    let min_rungs = min_rungs.max(1);
    while by_height.len() > min_rungs {
        dropped.push(by_height.remove(0).name);
        if let Some(c) = rebuild(kept_after(&dropped)) {
            let d = Degradation {
                dropped_rungs: dropped.clone(),
                frame_rate_cap: None,
            };
            out.push((c, d));
        }
    }
    let kept = kept_after(&dropped);
    for cap in DEGRADED_RATES.into_iter().filter(|&r| r >= min_fps) {
        let capped = kept
            .iter()
            .map(|v| {
                let fps = v.max_frame_rate.map_or(cap, |c| c.min(cap));
                v.clone().with_max_frame_rate(fps)
            })
            .collect();
        if let Some(c) = rebuild(capped) {
            let d = Degradation {
                dropped_rungs: dropped.clone(),
                frame_rate_cap: Some(cap),
            };
            out.push((c, d));
        }
    }
    out
}
