//! How the `serde` feature writes and reads what is not plain data, in one place so every
//! type does it the same way:
//!
//! - Durations are **written** as seconds, an `f64` (`"uptime": 12.5`), and **read** from
//!   config files in the human form of the `humantime` crate: `"5s"`, `"250ms"`,
//!   `"1m 30s"`, `"2h"` (a bare number is refused: its unit would be a guess).
//! - Times of day (`SystemTime`) are written as seconds since the Unix epoch, an `f64`.
//! - `time_in_state` is written as a map from the state's name to seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{Deserialize, Deserializer, Error as _};
use serde::ser::{SerializeMap, Serializer};

use crate::state::StreamState;

/// A duration as seconds (`f64`).
pub(crate) fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// An optional duration as seconds (`f64`), or `null`.
pub(crate) fn secs_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A time as seconds since the Unix epoch (`f64`; negative before it).
pub(crate) fn epoch_secs<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    s.serialize_f64(secs)
}

/// An optional time of day as [`epoch_secs`] writes it, or `null`.
pub(crate) fn epoch_secs_opt<S: Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => epoch_secs(t, s),
        None => s.serialize_none(),
    }
}

/// Time in each state as `{"New": 0.0, "Starting": 0.2, ...}`, in the list's order.
pub(crate) fn time_in_state<S: Serializer>(
    list: &[(StreamState, Duration)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(list.len()))?;
    for (state, d) in list {
        map.serialize_entry(state.name(), &d.as_secs_f64())?;
    }
    map.end()
}

/// A duration from its human form (`"5s"`, `"250ms"`, `"1m 30s"`).
pub(crate) fn human<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        D::Error::custom(format!(
            "{text:?} is not a duration such as \"5s\" or \"250ms\": {e}"
        ))
    })
}

/// An optional duration in its human form; `null` is `None` (with `#[serde(default)]`, so
/// is a key left out).
pub(crate) fn human_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Human(#[serde(deserialize_with = "human")] Duration);
    Ok(Option::<Human>::deserialize(d)?.map(|h| h.0))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use crate::error::{Error, Refusal, Shortage};
    use crate::state::StreamState;
    use crate::stats::{Outage, StatsCell};

    #[test]
    fn stats_are_written_with_durations_in_seconds() {
        let cell = StatsCell::default();
        cell.add_variant("360p");
        cell.media_us
            .store(1_500_000, std::sync::atomic::Ordering::Relaxed);
        let mut stats = cell.snapshot(Duration::from_millis(500));
        stats.time_in_state = vec![
            (StreamState::Starting, Duration::from_millis(250)),
            (StreamState::Running, Duration::from_secs(2)),
        ];
        stats.outages = vec![Outage {
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(1500),
            cause: "stalled".into(),
            recovered: true,
            ongoing: false,
        }];
        let v = serde_json::to_value(&stats).unwrap();
        assert_eq!(v["media_time"], json!(1.5));
        assert_eq!(v["uptime"], json!(0.5));
        assert_eq!(v["audio_frames_in"], json!(0));
        assert_eq!(
            v["time_in_state"],
            json!({"Starting": 0.25, "Running": 2.0})
        );
        assert_eq!(
            v["outages"][0],
            json!({"started_at": 1_700_000_000.0, "duration": 1.5, "cause": "stalled",
                   "recovered": true, "ongoing": false})
        );
        assert_eq!(v["variants"][0]["name"], json!("360p"));
        assert_eq!(v["variants"][0]["media_time"], json!(0.0));
    }

    #[test]
    fn errors_and_refusals_are_written_with_their_kind_and_whole_message() {
        let e = Error::output("/o", std::io::Error::from_raw_os_error(libc::ENOSPC));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], json!("Output"));
        assert_eq!(v.get("stream"), None, "the carrier names the stream");
        assert_eq!(v["code"], json!(libc::ENOSPC));
        assert_eq!(v["message"], json!(e.full_message()));
        let config = serde_json::to_value(Error::config("profile.live_window", "0")).unwrap();
        assert_eq!(
            config,
            json!({"kind": "InvalidConfig", "message": "invalid config: profile.live_window: 0",
                   "code": null, "field": "profile.live_window"})
        );
        let refused = Error::Refused {
            reason: Refusal::MaxConcurrent { limit: 2 },
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            json!({"kind": "Refused", "message": "refused: max_concurrent (2) reached",
                   "code": null,
                   "refusal": {"kind": "max_concurrent", "message": "max_concurrent (2) reached",
                               "limit": 2}})
        );
        let short = Refusal::Capacity(Shortage::Compute {
            needed: 90.0,
            free: 30.0,
        });
        assert_eq!(
            serde_json::to_value(&short).unwrap(),
            json!({"kind": "capacity", "message": short.to_string(),
                   "shortage": {"resource": "compute", "needed": 90.0, "free": 30.0}})
        );
        assert_eq!(
            serde_json::to_value(Refusal::MaxConcurrent { limit: 2 }).unwrap()["limit"],
            json!(2)
        );
    }

    #[test]
    fn a_hardware_device_is_written_as_kind_colon_device() {
        let d = crate::config::HwDevice::new(crate::config::HwKind::Cuda, "0");
        assert_eq!(serde_json::to_value(&d).unwrap(), json!("cuda:0"));
        assert_eq!(
            serde_json::to_value(StreamState::Running).unwrap(),
            json!("Running")
        );
    }
}
