//! JSON lines shared by the examples: one object per line on stdout, for state changes,
//! stats snapshots, admission decisions and final summaries. Each object is the crate's own
//! serialization (its `serde` feature) of the event with an `"event"` key put first: no
//! field is mapped by hand here, so every field the crate adds shows up. Durations are
//! seconds, times of day seconds since the Unix epoch. Printed from hook threads; each line
//! is written whole (one `println!`), so lines from different streams never interleave.

#![allow(dead_code)] // each example uses the part it needs

use std::time::Duration;

use serde_json::{Map, Value};
use streamvisor::manager::AdmissionEvent;
use streamvisor::{Hooks, OutputEvent, StateEvent, StatsEvent, StreamReport};

/// Hooks printing `{"event":"state",...}`, `{"event":"stats",...}` and
/// `{"event":"input_switched",...}` lines (a source with backups changed input).
pub fn hooks() -> Hooks {
    Hooks::new()
        .on_state_change(|ev: &StateEvent| println!("{}", state(ev)))
        .on_stats(Duration::from_secs(1), |ev: &StatsEvent| {
            println!("{}", stats(ev))
        })
        .on_output(|ev: &OutputEvent| {
            if matches!(ev, OutputEvent::InputSwitched { .. }) {
                println!("{}", line("input_switched", serde_json::to_value(ev)));
            }
        })
}

/// `{"event":"state","stream":ID,"from":STATE,"to":STATE,"error":ERROR|null,"at":SECS}`
pub fn state(ev: &StateEvent) -> Value {
    line("state", serde_json::to_value(ev))
}

/// `{"event":"stats","stream":ID,"state":STATE,"stats":{...}}`
pub fn stats(ev: &StatsEvent) -> Value {
    line("stats", serde_json::to_value(ev))
}

/// `{"event":"admission","stream":ID,"admitted":BOOL,"queued":BOOL,"reason":REFUSAL|null,...}`
pub fn admission(ev: &AdmissionEvent) -> Value {
    line("admission", serde_json::to_value(ev))
}

/// `{"event":"summary","id":ID,"state":STATE,"error":ERROR|null,"stats":{...},...}`
pub fn summary(r: &StreamReport) -> Value {
    line("summary", serde_json::to_value(r))
}

/// The object with `"event": event` first.
fn line(event: &str, body: serde_json::Result<Value>) -> Value {
    let mut out = Map::new();
    out.insert("event".into(), event.into());
    match body.expect("the crate's events serialize") {
        Value::Object(fields) => out.extend(fields),
        other => {
            out.insert("value".into(), other);
        }
    }
    Value::Object(out)
}
