//! The examples' `--json` lines are the crate's own serialization (feature `serde`): every
//! field of the events and statistics, none mapped by hand.

use std::process::Command;

use serde_json::Value;

use crate::security::example;

/// The JSON lines an example printed, each parsed.
fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn transcode_json_has_every_field_of_the_stats_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example("transcode"))
        .args([
            "lavfi:testsrc2=size=160x90:rate=15:duration=1;sine=duration=1",
            "--allow-lavfi",
            "--json",
            "--ladder",
            "240p",
            "--preset",
            "ultrafast",
            "--out",
        ])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = lines(&out.stdout);
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert!(
        events.contains(&"state") && events.contains(&"stats"),
        "{events:?}"
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["state"], "Stopped");
    assert_eq!(summary["stop_deadline_exceeded"], false);
    let stats = &summary["stats"];
    assert!(stats["audio_frames_in"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["outages"].as_array().unwrap().is_empty(), "{stats}");
    assert!(
        (stats["media_time"].as_f64().unwrap() - 1.0).abs() < 0.1,
        "{stats}"
    );
    assert!(
        stats["time_in_state"]["Running"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert_eq!(stats["variants"][0]["name"], "240p");
    let first = &lines[0];
    assert_eq!(
        (&first["from"], &first["to"]),
        (&"New".into(), &"Starting".into())
    );
    assert!(first["at"].as_f64().unwrap() > 1.6e9, "{first}");
}

#[test]
fn manager_json_has_admissions_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the first still runs when the second asks (they are back to back).
    let src = "lavfi:testsrc2=size=160x90:rate=15:duration=4;sine=duration=4";
    let out = Command::new(example("manager"))
        .args([
            "--max-concurrent",
            "1",
            "--ladder",
            "240p",
            "--json",
            "--allow-lavfi",
        ])
        .arg("--out")
        .arg(dir.path())
        .args([src, src])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second stream was refused");
    let lines = lines(&out.stdout);
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "admission" && l["admitted"] == false)
        .collect();
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert_eq!(refused[0]["reason"]["kind"], "max_concurrent");
    assert_eq!(refused[0]["reason"]["limit"], 1);
    let summaries = lines.iter().filter(|l| l["event"] == "summary").count();
    assert_eq!(summaries, 1, "{lines:?}");
}
