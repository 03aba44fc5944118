//! Jobs that cannot run: one that fails on three nodes lands in the dead-letter stream with
//! its errors; a malformed or untrusted one is refused with a typed error recorded on the
//! job, and the node carries on.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use redis::Commands;
use streamvisor_fleet::{FleetError, JobKind, JobRefusal, Keys};

use crate::common::{
    config, paced_source, serial, submit_vod, wait_final, wait_for, Redis, Worker,
};

#[test]
fn a_job_failing_on_three_nodes_lands_in_the_dead_letter_stream() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let junk = media.join("junk.mp4");
    std::fs::write(&junk, b"this is not media\n".repeat(100)).unwrap();
    let out = tmp.path().join("out");
    let args = [
        "--local-files-under",
        media.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let _workers: Vec<Worker> = ["a", "b", "c"]
        .iter()
        .map(|n| Worker::start(&redis, n, tmp.path(), &args))
        .collect();
    // Every node publishes its figures before the job comes (a failed job goes to a node
    // that has not failed it while one is alive).
    std::thread::sleep(Duration::from_millis(1500));
    let mut client = redis.client();
    submit_vod(&mut client, "junk", junk.to_str().unwrap(), &["240p"]);
    let st = wait_final(&mut client, "junk", Duration::from_secs(60));
    assert_eq!(st.state, "failed", "{st:?}");
    assert_eq!((st.attempts, st.failures), (3, 3), "{st:?}");
    let errors = st.errors.as_array().unwrap();
    let nodes: BTreeSet<&str> = errors.iter().filter_map(|e| e["node"].as_str()).collect();
    assert_eq!(nodes.len(), 3, "{st:?}");
    assert!(errors.iter().all(|e| e["error"].is_string()), "{st:?}");
    assert_eq!(client.dead_letters().unwrap(), vec!["junk".to_owned()]);
}

#[test]
fn a_malformed_or_untrusted_job_is_refused_with_a_typed_error() {
    let _serial = serial();
    let redis = Redis::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let worker = Worker::start(&redis, "a", tmp.path(), &["--out", out.to_str().unwrap()]);
    let mut client = redis.client();
    // Refused by the client: a bad id, a duplicate.
    let bad = client.submit("bad id!", JobKind::Vod, &config("x", &["240p"]));
    assert!(matches!(
        bad,
        Err(FleetError::Refused {
            refusal: JobRefusal::BadId(_),
            ..
        })
    ));
    submit_vod(&mut client, "passwd", "/etc/passwd", &["240p"]);
    let dup = client.submit("passwd", JobKind::Vod, &config("x", &["240p"]));
    assert!(matches!(
        dup,
        Err(FleetError::Refused {
            refusal: JobRefusal::Duplicate,
            ..
        })
    ));
    // A config that tries to opt itself into generated sources (no such field in the form).
    let mut opt_in = config(&paced_source(1), &["240p"]);
    opt_in["allow_generated_sources"] = true.into();
    client.submit("optin", JobKind::Vod, &opt_in).unwrap();
    // A generated source on a node that does not allow them.
    submit_vod(&mut client, "lavfi", &paced_source(1), &["240p"]);
    // Garbage written straight into Redis.
    let keys = Keys::default();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    raw_job(&mut conn, &keys, "garbage", "vod", "{not json");
    raw_job(&mut conn, &keys, "nokind", "sideways", "{}");
    let _: String = conn.xadd(keys.jobs(), "*", &[("no-id", "x")]).unwrap();
    let expected = [
        ("passwd", "InvalidConfig", "local files are refused"),
        ("optin", "InvalidConfig", "allow_generated_sources"),
        ("lavfi", "InvalidConfig", "generated"),
        ("garbage", "Malformed", "config"),
        ("nokind", "Malformed", "no kind"),
    ];
    for (id, kind, says) in expected {
        let st = wait_final(&mut client, id, Duration::from_secs(20));
        assert_eq!(st.state, "refused", "{st:?}");
        let error = st.error.clone().unwrap_or_default();
        assert_eq!(error["kind"], kind, "{st:?}");
        assert!(
            error["reason"].as_str().unwrap_or("").contains(says),
            "{st:?}"
        );
        assert_eq!(st.attempts, 0, "{st:?}");
    }
    // Every entry was read (the one without an id too) and nothing is left pending.
    wait_for(
        "every entry read, none pending",
        Duration::from_secs(10),
        || {
            let text = client.render_metrics().ok()?;
            let read = text.contains("sv_fleet_jobs_unread 0\n");
            (read && text.contains("sv_fleet_jobs_pending 0\n")).then_some(())
        },
    );
    // The worker's own status command: one JSON object.
    let status = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["status", "--redis", &redis.url(), "--id", "passwd"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for field in ["id", "state", "node", "attempts"] {
        assert!(json.get(field).is_some(), "{json}");
    }
    assert_eq!(json["node"], worker.name.as_str());
}

/// A job written straight into Redis, past the client's checks: its entry and its record.
fn raw_job(conn: &mut redis::Connection, keys: &Keys, id: &str, kind: &str, config: &str) {
    let entry: String = conn.xadd(keys.jobs(), "*", &[("id", id)]).unwrap();
    let fields = [
        ("id", id),
        ("kind", kind),
        ("config", config),
        ("state", "queued"),
        ("entry", entry.as_str()),
    ];
    let () = conn.hset_multiple(keys.job(id), &fields).unwrap();
}
