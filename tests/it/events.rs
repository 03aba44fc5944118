//! Observation without polling: a stream's events as a channel (order, overflow, end), a
//! manager's per-stream hooks and `wait_for`, and progress of on-demand work.

use std::time::Duration;

use streamvisor::{
    event_channel, Manager, New, ResourceCapacity, StateSet, Stream, StreamEvent, StreamState,
};

use crate::common::*;

fn states_in(events: &[StreamEvent]) -> Vec<StreamState> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::State(s) => Some(s.to),
            _ => None,
        })
        .collect()
}

/// A new stream transcoding a fresh `secs`-second 426x240 30 fps file to 240p.
fn file_stream(dir: &std::path::Path, id: &str, secs: u32, audio: bool) -> Stream<New> {
    let input = make_mp4(dir, &format!("{id}.mp4"), "426x240", 30, secs, audio);
    let out = dir.join(id);
    Stream::new(config(id, input.to_str().unwrap(), &out, &["240p"]))
}

#[test]
fn a_streams_events_arrive_in_order_and_the_channel_ends_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut stream = file_stream(dir.path(), "ev", 3, true);
    let events = stream.events_with(1024, Duration::from_millis(50));
    let running = stream.start().unwrap();
    // Iterating ends by itself once the stream is over: no polling, no timeout.
    let seen: Vec<StreamEvent> = events.iter().collect();
    let report = running.wait();
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(
        states_in(&seen),
        [
            StreamState::Starting,
            StreamState::Running,
            StreamState::Stopping,
            StreamState::Stopped
        ]
    );
    assert!(!seen.iter().any(|e| matches!(e, StreamEvent::Lagged(_))));
    let stats: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Stats(s) => Some(s.stats.clone()),
            _ => None,
        })
        .collect();
    let last = stats.last().expect("a final stats event");
    assert_eq!(last.frames_in, 90);
    // On-demand work says how far along it is.
    let duration = last.source_duration.expect("a file has a duration");
    assert!((duration.as_secs_f64() - 3.0).abs() < 0.1, "{duration:?}");
    assert!(last.progress.unwrap() > 0.97, "{:?}", last.progress);
    let mut progress: Vec<f64> = stats.iter().filter_map(|s| s.progress).collect();
    assert!(progress.windows(2).all(|w| w[1] >= w[0]), "{progress:?}");
    progress.dedup();
    assert!(progress.len() > 1, "progress moves: {progress:?}");
}

#[test]
fn a_receiver_that_falls_behind_loses_the_oldest_events_never_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut stream = file_stream(dir.path(), "lag", 2, false);
    // Room for 4 events, stats every 10 ms, and nobody reading until the end.
    let events = stream.events_with(4, Duration::from_millis(10));
    let report = stream.start().unwrap().wait();
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    let seen: Vec<StreamEvent> = events.iter().collect();
    assert!(seen.len() <= 4, "{seen:?}");
    let terminal = seen.iter().rev().find_map(|e| match e {
        StreamEvent::State(s) => Some(s.to),
        _ => None,
    });
    assert_eq!(terminal, Some(StreamState::Stopped), "{seen:?}");
}

#[test]
fn a_manager_delivers_per_stream_events_and_waits_for_states() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_mp4(dir.path(), "in.mp4", "426x240", 30, 2, true);
    let manager = Manager::builder()
        .max_concurrent(1)
        .capacity(ResourceCapacity::new(1e6, 1 << 40))
        .build()
        .unwrap();
    let src = input.to_str().unwrap();
    // The first runs long enough that the second is still queued when it is waited for.
    let long = make_mp4(dir.path(), "long.mp4", "426x240", 30, 8, false);
    let first = config(
        "first",
        long.to_str().unwrap(),
        &dir.path().join("a"),
        &["240p"],
    );
    let second = config("second", src, &dir.path().join("b"), &["240p"]);
    let (hooks, events) = event_channel(256, Duration::from_millis(100));
    manager.create_stream(first).unwrap();
    // The second waits in the queue behind the first; wait_for follows it from there.
    manager.create_stream_with(second, hooks).unwrap();
    assert_eq!(
        manager.wait_for("second", StateSet::TERMINAL, Duration::from_secs(60)),
        Some(StreamState::Stopped)
    );
    let seen: Vec<StreamEvent> = events.iter().collect();
    assert_eq!(
        states_in(&seen),
        [
            StreamState::Starting,
            StreamState::Running,
            StreamState::Stopping,
            StreamState::Stopped
        ]
    );
    assert!(seen.iter().all(|e| match e {
        StreamEvent::State(s) => s.stream == "second",
        StreamEvent::Stats(s) => s.stream == "second",
        _ => true,
    }));
    assert!(manager.wait_idle(Duration::from_secs(30)));
    assert_eq!(
        manager.wait_for("second", StateSet::TERMINAL, Duration::from_millis(10)),
        None,
        "a stream that left the manager"
    );
    assert_eq!(
        manager.wait_for("never", StateSet::RUNNING, Duration::from_millis(10)),
        None
    );
    manager.shutdown(Duration::from_secs(5));
}
