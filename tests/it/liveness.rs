//! Every public call returns within its written bound, whatever a user hook does: `stop`
//! by its deadline + `GRACE`, `abort` and `drop` within `GRACE`. A thread stuck in a hook is
//! left behind, named in the report, and ends by itself once the hook returns.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use streamvisor::{AbrProfile, Hooks, StateEvent, Stream, StreamConfig, StreamState, GRACE};

use crate::common::wait_running;

/// A live-paced source that runs until stopped.
fn endless(id: &str, out: &std::path::Path) -> StreamConfig {
    StreamConfig::builder(
        id,
        "lavfi:testsrc2=size=160x90:rate=15,realtime;sine=frequency=440,arealtime",
        out,
    )
    .allow_generated_sources(true)
    .profile(
        AbrProfile::from_rungs(&["240p"])
            .unwrap()
            .with_preset("ultrafast"),
    )
    .build()
    .unwrap()
}

/// A state hook that blocks on the first event into `blocking_state` until the test sends
/// (or drops) the returned sender; it records every event it sees.
fn blocking_hook(blocking_state: StreamState) -> (Hooks, Sender<()>, Arc<Mutex<Vec<StateEvent>>>) {
    let (release_tx, release_rx): (Sender<()>, Receiver<()>) = bounded(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let hooks = Hooks::new().on_state_change(move |ev| {
        s.lock().unwrap().push(ev.clone());
        if ev.to == blocking_state {
            let _ = release_rx.recv();
        }
    });
    (hooks, release_tx, seen)
}

/// Threads of this process with this name (Linux keeps the first 15 bytes).
fn threads_named(name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// Waits up to 5 s for every thread with this name to end.
fn no_thread_named(name: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if threads_named(name) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_hook_that_blocks_does_not_hold_stop_past_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (hooks, release, seen) = blocking_hook(StreamState::Running);
    let running = Stream::new(endless("blocked-stop", &dir.path().join("o")))
        .with_hooks(hooks)
        .start()
        .unwrap();
    wait_running(&running, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500)); // some media to finish
    let deadline = Duration::from_millis(500);
    let t = Instant::now();
    let report = running.stop(deadline);
    let took = t.elapsed();
    assert!(
        took <= deadline + GRACE + Duration::from_millis(300),
        "stop took {took:?}"
    );
    assert_eq!(report.state, StreamState::Stopped, "{:?}", report.error);
    assert_eq!(report.threads_left_behind, ["sv-blocked-stop-hooks"]);
    // The media finished although the hook never returned.
    let playlist = std::fs::read_to_string(dir.path().join("o/240p/index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    // Released, the hook thread delivers what is left (in order) and ends.
    drop(release);
    let t = Instant::now();
    while seen
        .lock()
        .unwrap()
        .last()
        .is_none_or(|e| !e.to.is_terminal())
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let states: Vec<StreamState> = seen.lock().unwrap().iter().map(|e| e.to).collect();
    assert_eq!(
        states,
        [
            StreamState::Starting,
            StreamState::Running,
            StreamState::Stopping,
            StreamState::Stopped
        ]
    );
}

#[test]
fn drop_and_abort_return_within_the_grace_while_a_hook_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut releases = Vec::new();
    for (i, how) in ["drop", "abort"].into_iter().enumerate() {
        let (hooks, release, _) = blocking_hook(StreamState::Running);
        releases.push(release);
        let out = dir.path().join(format!("o{i}"));
        let running = Stream::new(endless(how, &out))
            .with_hooks(hooks)
            .start()
            .unwrap();
        wait_running(&running, Duration::from_secs(20));
        let t = Instant::now();
        if how == "drop" {
            drop(running);
        } else {
            let report = running.abort();
            assert!(report.aborted);
            assert_eq!(report.threads_left_behind, ["sv-abort-hooks"]);
        }
        let took = t.elapsed();
        assert!(
            took <= GRACE + Duration::from_millis(300),
            "{how} took {took:?}"
        );
        assert_eq!(threads_named(&format!("sv-{how}-hooks")), 1, "left behind");
        assert_eq!(threads_named(&format!("sv-{how}")), 0, "the worker ended");
    }
    // Once their hooks return, the threads left behind end by themselves.
    drop(releases);
    for how in ["drop", "abort"] {
        assert!(no_thread_named(&format!("sv-{how}-hooks")));
    }
}
