//! On-demand jobs across worker processes: each completes exactly once with a valid ladder
//! while a node dies mid-job, and a full fleet queues work instead of refusing it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::{paced_source, probe, serial, submit_vod, wait_final, wait_for, Redis, Worker};

/// Checks one job's finished ladder: every rung's playlist ends, plays `secs` seconds at
/// the rung's height, and its directory holds only what the playlist lists (an earlier,
/// killed run's files were replaced or removed).
fn check_ladder(dir: &Path, rungs: &[(&str, u64)], secs: f64) {
    assert!(
        dir.join("master.m3u8").exists(),
        "{}: no master",
        dir.display()
    );
    for (rung, height) in rungs {
        let playlist = dir.join(rung).join("index.m3u8");
        let text = std::fs::read_to_string(&playlist)
            .unwrap_or_else(|e| panic!("{}: {e}", playlist.display()));
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
        let (_, h, duration) = probe(&playlist);
        assert_eq!(h, *height, "{}", playlist.display());
        assert!(
            (duration - secs).abs() < 0.6,
            "{}: {duration} s, not {secs}",
            playlist.display()
        );
        let listed: BTreeSet<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for file in std::fs::read_dir(dir.join(rung)).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "index.m3u8" || listed.contains(name.as_str()),
                "{rung}/{name} is left over (listed: {listed:?})"
            );
        }
    }
}

#[test]
fn twelve_jobs_complete_exactly_once_while_a_node_is_killed() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let args = ["--max-concurrent", "2", "--allow-lavfi", "--out", out_arg];
    let mut workers: Vec<Worker> = ["a", "b", "c"]
        .iter()
        .map(|n| Worker::start(&redis, n, tmp.path(), &args))
        .collect();
    let mut client = redis.client();
    let ids: Vec<String> = (0..12).map(|i| format!("job{i:02}")).collect();
    for id in &ids {
        submit_vod(&mut client, id, &paced_source(3), &["360p", "240p"]);
    }
    // Node b dies while it runs a job that has written some of its output.
    let victim = wait_for("node b to run a job", Duration::from_secs(30), || {
        let all = client.list().ok()?;
        let job = all
            .into_iter()
            .find(|s| s.node == "b" && s.state == "Running")?;
        Some(job.id)
    });
    std::thread::sleep(Duration::from_millis(1500));
    workers[1].kill9();
    for id in &ids {
        let st = wait_final(&mut client, id, Duration::from_secs(90));
        assert_eq!(st.state, "completed", "{st:?}");
        assert_eq!(st.completions, 1, "{st:?}");
        check_ladder(&out.join(id), &[("360p", 360), ("240p", 240)], 3.0);
    }
    let victim = client.status(&victim).unwrap();
    assert!(victim.attempts >= 2, "{victim:?}");
    assert_ne!(victim.node, "b", "{victim:?}");
    let page = client.render_metrics().unwrap();
    assert!(page.contains("sv_fleet_jobs_pending 0"), "{page}");
    drop(workers);
}

#[test]
fn a_full_fleet_queues_work_instead_of_refusing_it() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    // Room for one 240p job at a time, never for a 360p + 240p ladder.
    let small = [
        "--max-concurrent",
        "1",
        "--compute",
        "6",
        "--allow-lavfi",
        "--out",
        out_arg,
    ];
    let _solo = Worker::start(&redis, "solo", tmp.path(), &small);
    let mut client = redis.client();
    let ids = ["q0", "q1", "q2"];
    for id in ids {
        submit_vod(&mut client, id, &paced_source(2), &["240p"]);
    }
    submit_vod(&mut client, "big", &paced_source(2), &["360p", "240p"]);
    // One runs, the rest wait in the queue (none refused), until each has run.
    let mut most_at_once = 0;
    wait_for("the small jobs to end", Duration::from_secs(60), || {
        let all = client.list().ok()?;
        let active = all
            .iter()
            .filter(|s| !s.is_final() && s.state != "queued")
            .count();
        most_at_once = most_at_once.max(active);
        let small_done = all
            .iter()
            .filter(|s| s.id.starts_with('q') && s.is_final())
            .count();
        (small_done == ids.len()).then_some(())
    });
    assert_eq!(most_at_once, 1);
    for id in ids {
        assert_eq!(client.status(id).unwrap().state, "completed");
    }
    // The big job never fits the small node: read, put back, still queued, not lost.
    wait_for(
        "solo to put the big job back",
        Duration::from_secs(10),
        || {
            let page = client.render_metrics().ok()?;
            let requeued = page
                .lines()
                .find_map(|l| l.strip_prefix("sv_fleet_node_requeued_total{node=\"solo\"} "))
                .and_then(|v| v.parse::<u64>().ok())?;
            (requeued >= 2).then_some(())
        },
    );
    let big = client.status("big").unwrap();
    assert_eq!(big.state, "queued", "{big:?}");
    assert_eq!(big.attempts, 0, "{big:?}");
    // A node with room joins and runs it.
    let _roomy = Worker::start(
        &redis,
        "roomy",
        tmp.path(),
        &["--allow-lavfi", "--out", out_arg],
    );
    let big = wait_final(&mut client, "big", Duration::from_secs(60));
    assert_eq!(big.state, "completed", "{big:?}");
    assert_eq!(big.node, "roomy");
    check_ladder(&out.join("big"), &[("360p", 360), ("240p", 240)], 2.0);
}
