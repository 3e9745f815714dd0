//! Graceful stop and savepoints: SIGTERM stops the job after a final
//! checkpoint and `--savepoint` writes the final state; a new job started
//! `--from-savepoint` on a fresh checkpoint folder continues exactly there,
//! the committed output is the batch join, and no part file is overwritten.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_savepoint_then_resume_from_it_on_a_fresh_job() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 11, 200_000, 0.0);
    let oracle = input.oracle(0);
    let out = tmp.path().join("out");
    let savepoint = tmp.path().join("sp");
    let first = Job::new(&input, &out, tmp.path().join("ckpt-a").to_str().unwrap())
        .args(&["--checkpoint-interval-events", "20000", "--savepoint"])
        .arg(savepoint.display());

    // Ask for a stop once the first checkpoint is complete.
    let mut child = first.spawn(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.completed_checkpoints().is_empty() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "graceful stop exits 0: {}",
        text(&done.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&done.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["savepoint"],
        savepoint.display().to_string(),
        "{summary}"
    );
    let stopped_early = summary["stopped"] == true;
    assert!(savepoint.join("_metadata.json").exists());
    // Whatever was committed so far is part of the batch join.
    assert_no_extra_or_doubled(&read_committed(&out), &oracle);

    // A new job (fresh checkpoint folder) continues from the savepoint.
    let second = Job::new(&input, &out, tmp.path().join("ckpt-b").to_str().unwrap())
        .args(&["--checkpoint-interval-events", "20000", "--from-savepoint"])
        .arg(savepoint.display());
    let resumed = second.run_ok();
    if stopped_early {
        assert!(
            resumed["events_before_restore"].as_u64() > Some(0),
            "{resumed}"
        );
    }
    assert_exact(&read_committed(&out), &oracle);
    assert_valid(&input, &out, &[]);
}
