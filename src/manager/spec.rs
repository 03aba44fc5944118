//! A manager's settings read from a file (feature `serde`), through the same builder a
//! program uses: a [`ManagerBuilder`] is read (hooks are attached in code afterwards) and
//! [`ManagerBuilder::build`] validates it. Durations in their human form (`"10s"`), as in
//! stream configs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer};

use super::{ManagerBuilder, OverCapacity};
use crate::config::RestartPolicy;
use crate::pool::ResourceCapacity;
use crate::serde_support::human_opt;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CapacitySpec {
    compute: Option<f64>,
    memory: Option<u64>,
    #[serde(default)]
    hw_sessions: BTreeMap<String, u32>,
}

/// A capacity (feature `serde`): `compute` units, `memory` bytes, `hw_sessions` per device
/// (`{"cuda:0": 3}`); a figure left out is this machine's
/// ([`ResourceCapacity::from_machine`]).
impl<'de> Deserialize<'de> for ResourceCapacity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = CapacitySpec::deserialize(d)?;
        let mut c = match (spec.compute, spec.memory) {
            (Some(compute), Some(memory)) => ResourceCapacity::new(compute, memory),
            (compute, memory) => {
                let machine = ResourceCapacity::from_machine();
                ResourceCapacity::new(
                    compute.unwrap_or(machine.compute),
                    memory.unwrap_or(machine.memory),
                )
            }
        };
        c.hw_sessions = spec.hw_sessions;
        Ok(c)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagerSpec {
    max_concurrent: Option<usize>,
    files_over_capacity: Option<OverCapacity>,
    live_over_capacity: Option<OverCapacity>,
    max_queue: Option<usize>,
    #[serde(default, deserialize_with = "human_opt")]
    realtime_window: Option<Duration>,
    capacity: Option<ResourceCapacity>,
    #[serde(default, deserialize_with = "human_opt")]
    monitor_interval: Option<Duration>,
    /// Left out: the default; `"off"`: no watchdog; else a duration.
    stall_timeout: Option<String>,
    restart: Option<RestartPolicy>,
}

/// A manager's settings from a file (feature `serde`): `max_concurrent`,
/// `files_over_capacity` and `live_over_capacity` (`"refuse"`, `"queue"`, or
/// `{"degrade": {"min_rungs": 1, "min_frame_rate": 15.0}}`), `max_queue`,
/// `realtime_window`, `capacity`, `monitor_interval`, `stall_timeout` (a duration, or
/// `"off"`), `restart`; what is left out keeps [`Manager::builder`](super::Manager::builder)'s
/// default. Hooks are attached in code; [`ManagerBuilder::build`] validates.
impl<'de> Deserialize<'de> for ManagerBuilder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = ManagerSpec::deserialize(d)?;
        let mut b = ManagerBuilder::default();
        if let Some(n) = spec.max_concurrent {
            b = b.max_concurrent(n);
        }
        if spec.files_over_capacity.is_some() || spec.live_over_capacity.is_some() {
            let (files, live) = b.over_capacity_policies();
            b = b.over_capacity(
                spec.files_over_capacity.unwrap_or(files),
                spec.live_over_capacity.unwrap_or(live),
            );
        }
        if let Some(n) = spec.max_queue {
            b = b.max_queue(n);
        }
        if let Some(w) = spec.realtime_window {
            b = b.realtime_window(w);
        }
        if let Some(c) = spec.capacity {
            b = b.capacity(c);
        }
        if let Some(i) = spec.monitor_interval {
            b = b.monitor_interval(i);
        }
        match spec.stall_timeout.as_deref() {
            None => {}
            Some("off") => b = b.stall_timeout(None),
            Some(text) => {
                let t = humantime::parse_duration(text).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "stall_timeout: {text:?} is neither \"off\" nor a duration such as \"30s\": {e}"
                    ))
                })?;
                b = b.stall_timeout(Some(t));
            }
        }
        if let Some(r) = spec.restart {
            b = b.restart(r);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managers_settings_go_through_its_builder() {
        let text = r#"
            max_concurrent = 4
            files_over_capacity = { degrade = { min_rungs = 1, min_frame_rate = 15.0 } }
            live_over_capacity = "refuse"
            stall_timeout = "off"
            realtime_window = "20s"
            [capacity]
            compute = 240.0
            memory = 8_589_934_592
            hw_sessions = { "cuda:0" = 3 }
            [restart]
            max_restarts = 2
            backoff = { initial = "1s", max = "10s" }
        "#;
        let b: ManagerBuilder = toml::from_str(text).unwrap();
        let shown = format!("{b:?}");
        for part in [
            "max_concurrent: 4",
            "Degrade { min_rungs: 1, min_frame_rate: 15.0 }",
            "stall_timeout: None",
            "realtime_window: 20s",
            "compute: 240.0",
            "\"cuda:0\": 3",
            "enabled: true",
            "max_restarts: 2",
        ] {
            assert!(shown.contains(part), "{part} not in {shown}");
        }
        let cap: ResourceCapacity =
            serde_json::from_str(r#"{"hw_sessions": {"cuda:0": 1}}"#).unwrap();
        assert_eq!(cap.compute, ResourceCapacity::from_machine().compute);
        let e = toml::from_str::<ManagerBuilder>("stall_timeout = \"never\"").unwrap_err();
        assert!(e.to_string().contains("neither \"off\""), "{e}");
        let queue: OverCapacity = serde_json::from_str(r#""queue""#).unwrap();
        assert_eq!(queue, OverCapacity::Queue);
        let bad = toml::from_str::<ManagerBuilder>("[restart]\nmax_restarts = 20000")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("invalid config: restart.max_restarts: "),
            "{bad}"
        );
    }
}
