//! The join job's own state through the `savepoint` command: a checkpoint
//! written by `stream-join` is listed, inspected, turned into a savepoint,
//! dumped, migrated to an evolved impression schema, verified, restored at
//! another parallelism, and the job resumes from the migrated savepoint with
//! exactly the batch join as its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace's binaries sit next to this test's `deps` folder.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --release --workspace)",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).output().expect("spawn")
}

fn ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ids of the complete checkpoints of a job, as `savepoint ls` reports them.
fn complete_checkpoints(job: &str) -> Vec<u64> {
    let ls: serde_json::Value =
        serde_json::from_str(&ok("savepoint", &["ls", job, "--output", "json"])).unwrap();
    ls["checkpoints"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|c| c["complete"] == true)
                .filter_map(|c| c["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

const V2_FIELD: &str = r#"{"name":"page","type":"string","default":"home"}"#;

fn impression_v2() -> String {
    // Version 1 is what the job declares by default; v2 adds a defaulted field.
    r#"{"type":"record","name":"Impression","namespace":"streamstate.workload","fields":[
  {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},
  {"name":"title_id","type":"long"},{"name":"ts_ms","type":"long"},
  {"name":"row","type":"int"},{"name":"rank","type":"int"},
  {"name":"device","type":"string"},"#
        .to_string()
        + V2_FIELD
        + "]}"
}

#[test]
fn job_state_through_the_savepoint_cli_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p).display().to_string();
    ok(
        "stream-join",
        &[
            "gen",
            "--impressions",
            "30000",
            "--seed",
            "5",
            "--out",
            &t("in"),
        ],
    );
    let imps = t("in/impressions.csv");
    let plays = t("in/plays.csv");

    // Crash part way so the job's checkpoints hold buffered state.
    let job = |out: &str, ck: &str, extra: &[&str]| {
        let mut a = vec![
            "run",
            "--impressions",
            &imps,
            "--plays",
            &plays,
            "--output",
            out,
            "--checkpoints",
            ck,
            "--checkpoint-interval-events",
            "5000",
        ];
        a.extend_from_slice(extra);
        run("stream-join", &a)
    };
    // Crash as soon as the first checkpoint (at 5 120 events, with buffered
    // state) is committed. Later ones may be the final checkpoint, taken
    // once the plays, which run past the impressions, have expired them all.
    let crashed = job(&t("out"), &t("ck"), &["--stop-after-checkpoints", "1"]);
    assert_eq!(
        crashed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    assert!(
        !complete_checkpoints(&t("ck")).is_empty(),
        "the crash came after a committed checkpoint"
    );
    let inspect = ok("savepoint", &["inspect", &t("ck"), "--output", "json"]);
    assert!(
        inspect.contains("impressions") && inspect.contains("plays"),
        "{inspect}"
    );

    ok(
        "savepoint",
        &[
            "create",
            &t("ck"),
            "--checkpoint",
            "latest",
            "--to",
            &t("sp1"),
        ],
    );
    ok("savepoint", &["verify", &t("sp1")]);
    let dump = ok(
        "savepoint",
        &["dump", &t("sp1"), "--state", "impressions", "--limit", "3"],
    );
    let first: serde_json::Value =
        serde_json::from_str(dump.lines().next().expect("an entry")).unwrap();
    assert!(first["value"]["impression_id"].is_i64(), "{first}");

    // Migrate the buffered impressions to v2 and resume the job from it.
    std::fs::write(tmp.path().join("v2.avsc"), impression_v2()).unwrap();
    ok(
        "savepoint",
        &[
            "migrate",
            &t("sp1"),
            "--state",
            "impressions",
            "--schema",
            &t("v2.avsc"),
            "--to",
            &t("sp2"),
        ],
    );
    let migrated = ok(
        "savepoint",
        &["dump", &t("sp2"), "--state", "impressions", "--limit", "1"],
    );
    let entry: serde_json::Value = serde_json::from_str(migrated.lines().next().unwrap()).unwrap();
    assert_eq!(entry["value"]["page"], "home", "{entry}");

    // Restore for instance 1 of 2: only its key groups.
    ok(
        "savepoint",
        &[
            "restore",
            &t("sp2"),
            "--to",
            &t("restored"),
            "--parallelism",
            "2",
            "--index",
            "1",
        ],
    );
    assert!(tmp.path().join("restored/CURRENT").exists());

    let resumed = job(
        &t("out"),
        &t("ck2"),
        &[
            "--from-savepoint",
            &t("sp2"),
            "--impression-schema",
            &t("v2.avsc"),
        ],
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&resumed.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert!(
        summary["events_before_restore"].as_u64() > Some(0),
        "{summary}"
    );

    let validate = run(
        "stream-join",
        &[
            "validate",
            "--impressions",
            &imps,
            "--plays",
            &plays,
            "--output",
            &t("out"),
        ],
    );
    assert!(
        validate.status.success(),
        "output after the migrated savepoint equals the batch join: {}",
        String::from_utf8_lossy(&validate.stdout)
    );
}

#[test]
fn claim_rolls_the_job_back_to_a_past_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p).display().to_string();
    ok(
        "stream-join",
        &[
            "gen",
            "--impressions",
            "20000",
            "--seed",
            "9",
            "--out",
            &t("in"),
        ],
    );
    let (imps, plays) = (t("in/impressions.csv"), t("in/plays.csv"));
    let run_job = || {
        run(
            "stream-join",
            &[
                "run",
                "--impressions",
                &imps,
                "--plays",
                &plays,
                "--output",
                &t("out"),
                "--checkpoints",
                &t("ck"),
                "--checkpoint-interval-events",
                "4000",
            ],
        )
    };
    assert!(run_job().status.success());
    let complete = complete_checkpoints(&t("ck"));
    assert!(complete.len() >= 2, "{complete:?}");
    let past = complete[0];

    let claimed = ok(
        "savepoint",
        &[
            "restore",
            &t("ck"),
            "--checkpoint",
            &past.to_string(),
            "--to",
            &t("state"),
            "--claim",
            "--output",
            "json",
        ],
    );
    let claimed: serde_json::Value = serde_json::from_str(&claimed).unwrap();
    let new_id = claimed["from"]["claimed_as"].as_u64().expect("claimed_as");
    assert!(new_id > *complete.last().unwrap(), "{claimed}");

    // The job's next run resumes from the claimed copy of the past checkpoint.
    let rerun = run_job();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&rerun.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["restored_from"], new_id, "{summary}");
    assert!(
        summary["events"].as_u64() > Some(0),
        "events after the past checkpoint are read again: {summary}"
    );

    // A savepoint is never claimed.
    ok("savepoint", &["create", &t("ck"), "--to", &t("sp")]);
    let refused = run(
        "savepoint",
        &["restore", &t("sp"), "--to", &t("state2"), "--claim"],
    );
    assert_eq!(refused.status.code(), Some(2));
}
