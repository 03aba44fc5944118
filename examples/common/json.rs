//! JSON lines shared by the examples: one object per line on stdout, for state changes,
//! stats snapshots and final summaries. Printed from hook threads; each line is written
//! whole (one `println!`), so lines from different streams never interleave mid-line.

#![allow(dead_code)] // each example uses the part it needs

use std::time::Duration;

use serde_json::{json, Value};
use streamvisor::{Hooks, StateEvent, StatsEvent, StreamReport, StreamStats};

/// Hooks printing `{"event":"state",...}` and `{"event":"stats",...}` lines.
pub fn hooks() -> Hooks {
    Hooks::new()
        .on_state_change(|ev: &StateEvent| println!("{}", state(ev)))
        .on_stats(Duration::from_secs(1), |ev: &StatsEvent| {
            println!("{}", stats(ev))
        })
}

/// `{"event":"state","stream":ID,"from":STATE,"to":STATE,"error":MSG|null}`
pub fn state(ev: &StateEvent) -> Value {
    json!({
        "event": "state",
        "stream": ev.stream,
        "from": ev.from.name(),
        "to": ev.to.name(),
        "error": ev.error.as_ref().map(|e| e.full_message()),
    })
}

/// `{"event":"stats","stream":ID,"state":STATE,...figures}`
pub fn stats(ev: &StatsEvent) -> Value {
    let mut v = json!({ "event": "stats", "stream": ev.stream, "state": ev.state.name() });
    merge(&mut v, figures(&ev.stats));
    v
}

/// `{"event":"summary","stream":ID,"state":STATE,"error":MSG|null,...figures}`
pub fn summary(r: &StreamReport) -> Value {
    let mut v = json!({
        "event": "summary",
        "stream": r.id,
        "state": r.state.name(),
        "error": r.error.as_ref().map(|e| e.full_message()),
        "aborted": r.aborted,
    });
    merge(&mut v, figures(&r.stats));
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn figures(s: &StreamStats) -> Value {
    json!({
        "frames_in": s.frames_in,
        "packets_in": s.packets_in,
        "corrupt_packets": s.corrupt_packets,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "media_time_s": s.media_time.as_secs_f64(),
        "speed": s.speed,
        "average_bitrate": s.average_bitrate,
        "recent_bitrate": s.recent_bitrate,
        "errors": s.errors,
        "recoveries": s.recoveries,
        "hardware_fallbacks": s.hardware_fallbacks,
        "uptime_s": s.uptime.as_secs_f64(),
        "variants": s.variants.iter().map(|v| json!({
            "name": v.name,
            "frames_out": v.frames_out,
            "frames_dropped": v.frames_dropped,
            "bytes_out": v.bytes_out,
            "segments": v.segments,
            "media_time_s": v.media_time.as_secs_f64(),
            "average_bitrate": v.average_bitrate,
        })).collect::<Vec<_>>(),
    })
}
