//! Operating a fleet: cancelling jobs (running or queued), draining a node past its deadline
//! (its on-demand job handed back, rerun elsewhere), and a node that was only paused
//! (SIGSTOP past its lease) gives its live stream up without clobbering the new owner's
//! playlist, seen by an origin that checks the fencing token.

use std::time::{Duration, Instant};

use crate::common::{paced_source, serial, submit_vod, wait_final, wait_for, Redis, Worker};
use crate::fencing::FencingOrigin;
use crate::live::{check_continued, wait_takeover, LiveFleet, Origin};

#[test]
fn a_cancelled_job_ends_cancelled_whether_running_or_queued() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let args = [
        "--max-concurrent",
        "1",
        "--allow-lavfi",
        "--out",
        out.to_str().unwrap(),
    ];
    let _worker = Worker::start(&redis, "a", tmp.path(), &args);
    let mut client = redis.client();
    submit_vod(&mut client, "long", &paced_source(60), &["240p"]);
    submit_vod(&mut client, "waiting", &paced_source(2), &["240p"]);
    wait_for("the long job to run", Duration::from_secs(20), || {
        (client.status("long").ok()?.state == "Running").then_some(())
    });
    assert!(client.cancel("waiting").unwrap());
    assert!(client.cancel("long").unwrap());
    let long = wait_final(&mut client, "long", Duration::from_secs(20));
    assert_eq!(long.state, "cancelled", "{long:?}");
    assert_eq!(
        long.report.as_ref().unwrap()["state"],
        "Stopped",
        "{long:?}"
    );
    // Stopped gracefully: its playlists are finished.
    let playlist = std::fs::read_to_string(out.join("long/240p/index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let waiting = wait_final(&mut client, "waiting", Duration::from_secs(20));
    assert_eq!((waiting.state.as_str(), waiting.attempts), ("cancelled", 0));
    assert!(!client.cancel("long").unwrap());
}

#[test]
fn a_paused_node_gives_its_live_stream_up_without_clobbering_the_new_owner() {
    let _serial = serial();
    // The origin checks fencing tokens: a write from the old owner would be refused there.
    let mut fleet = LiveFleet::start_with("paused", Origin::Fencing(FencingOrigin::start()));
    let owner = fleet.owner("paused");
    let playlist = fleet.playlist("paused");
    // Only slow, not dead: paused past its lease, then running again.
    fleet.workers[owner].signal("STOP");
    let takeover = wait_takeover(&playlist, Instant::now());
    eprintln!(
        "takeover from a paused node: {:.2} s",
        takeover.as_secs_f64()
    );
    fleet.workers[owner].signal("CONT");
    let old = &fleet.workers[owner];
    wait_for(
        "the paused node to give up",
        Duration::from_secs(10),
        || {
            let log = old.log();
            (log.contains("lease lost") || log.contains("lease taken by another node"))
                .then_some(())
        },
    );
    check_continued(&playlist);
    let st = fleet.client.status("paused").unwrap();
    assert_eq!(st.node, fleet.workers[1 - owner].name, "{st:?}");
    assert_eq!((st.epoch, st.failures), (2, 0), "{st:?}");
    assert!(!st.is_final(), "{st:?}");
    // The new owner writes with the new token; the paused one stopped writing on its own
    // (its lease clock ran out while it was paused): at most a write already past the
    // check when it was paused reaches the origin, which refuses it.
    let Origin::Fencing(origin) = &fleet.origin else {
        unreachable!()
    };
    let seen = origin.seen();
    eprintln!("fencing origin: {seen:?}");
    assert_eq!(seen.highest.get("paused"), Some(&2), "{seen:?}");
    assert!(seen.accepted.get(&2).is_some_and(|n| *n > 0), "{seen:?}");
    assert!(seen.refused.get(&1).copied().unwrap_or(0) <= 1, "{seen:?}");
}

#[test]
fn a_drained_node_hands_back_an_on_demand_job_it_cannot_finish_in_time() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let drainy = ["--allow-lavfi", "--drain-secs", "1", "--out", out_arg];
    let mut a = Worker::start(&redis, "a", tmp.path(), &drainy);
    let mut client = redis.client();
    submit_vod(&mut client, "long", &paced_source(8), &["240p"]);
    wait_for("the job to run on a", Duration::from_secs(20), || {
        (client.status("long").ok()?.state == "Running").then_some(())
    });
    let _b = Worker::start(
        &redis,
        "b",
        tmp.path(),
        &["--allow-lavfi", "--out", out_arg],
    );
    a.term();
    // Past its drain deadline it hands the job back and exits; b runs it from the start.
    assert!(a.wait(Duration::from_secs(15)).success());
    let st = wait_final(&mut client, "long", Duration::from_secs(40));
    assert_eq!(st.state, "completed", "{st:?}");
    assert_eq!(st.node, "b", "{st:?}");
    assert_eq!(
        (st.attempts, st.failures, st.completions),
        (2, 0, 1),
        "{st:?}"
    );
    let playlist = std::fs::read_to_string(out.join("long/240p/index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
}
