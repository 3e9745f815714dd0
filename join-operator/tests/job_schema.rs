//! Schema evolution end to end: a job buffering impressions with v1 of their
//! schema (registered in a folder registry) is crashed after a checkpoint and
//! resumed with v2 (a field added with a default): it goes on, reading the
//! buffered v1 impressions through v2, and commits exactly the batch join. An
//! incompatible v3 is then refused at start, naming the field and the rule,
//! and changes nothing: the job still resumes with v2.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use join_operator::operator::schemas::{IMPRESSION_SUBJECT, IMPRESSION_V1};

const INTERVAL: &str = "4096";

/// v1 with one more field, given as JSON text.
fn v1_plus(field: &str) -> String {
    let end = IMPRESSION_V1.rfind(']').unwrap();
    format!(
        "{},\n  {field}{}",
        &IMPRESSION_V1[..end],
        &IMPRESSION_V1[end..]
    )
}

fn write(dir: &Path, name: &str, json: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, json).unwrap();
    path.to_str().unwrap().to_string()
}

fn registered_versions(registry: &Path) -> Vec<u32> {
    schema_registry::open_registry(registry.to_str().unwrap())
        .unwrap()
        .versions(IMPRESSION_SUBJECT, false)
        .unwrap()
}

/// Asserts the run is refused at start: exit 2, one line naming `field` and
/// the rule, and nothing newly committed or registered.
fn assert_refused(job: &Job, schema: &str, field: &str, rule_words: &[&str], registry: &Path) {
    let before = read_committed(&job.output).rows.len();
    let versions = registered_versions(registry);
    let out = job.output(&["--impression-schema", schema]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused with exit 2: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(field), "names the field {field}: {stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        rule_words.iter().any(|w| lower.contains(w)),
        "names the rule ({rule_words:?}): {stderr}"
    );
    assert_eq!(read_committed(&job.output).rows.len(), before);
    assert_eq!(registered_versions(registry), versions, "v3 not registered");
}

#[test]
fn v1_checkpoint_resumes_with_v2_and_refuses_v3() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 41, 40_000, 0.0);
    let oracle = input.oracle(0);
    let registry = tmp.path().join("registry");
    let v2 = write(
        tmp.path(),
        "v2.avsc",
        &v1_plus(r#"{"name":"page","type":"string","default":"home"}"#),
    );
    let v3_no_default = write(
        tmp.path(),
        "v3.avsc",
        &v1_plus(r#"{"name":"score","type":"double"}"#),
    );
    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&[
        "--checkpoint-interval-events",
        INTERVAL,
        "--registry",
        registry.to_str().unwrap(),
    ]);
    // v1 (the default), crashed once a checkpoint is complete.
    match job.attempt(Crash::AfterNextCheckpoint) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before the crash: {s}"),
    }
    assert_eq!(registered_versions(&registry), [1]);

    // An incompatible v3 is refused before anything runs.
    assert_refused(
        &job,
        &v3_no_default,
        "score",
        &["default", "backward"],
        &registry,
    );

    // v2 resumes from the v1 checkpoint and finishes.
    let summary = job.output(&["--impression-schema", &v2]);
    assert!(summary.status.success(), "{}", text(&summary.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&summary.stdout).lines().last().unwrap()).unwrap();
    assert!(
        summary["restored_from"].is_u64() && summary["events_before_restore"].as_u64() > Some(0),
        "{summary}"
    );
    assert_eq!(registered_versions(&registry), [1, 2]);
    assert_valid(&input, &job.output, &[]);
    assert_exact(&read_committed(&job.output), &oracle);

    // After the v2 run, v3 is still refused (against v2 now).
    assert_refused(
        &job,
        &v3_no_default,
        "score",
        &["default", "backward"],
        &registry,
    );
}

/// A v3 that changes the type of `ts_ms` to string is refused at start, and
/// the message names the field (by its name, not only its position).
#[test]
fn v3_changing_the_type_of_ts_ms_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 43, 40_000, 0.0);
    let registry = tmp.path().join("registry");
    let v3 = IMPRESSION_V1.replace(
        r#"{"name":"ts_ms","type":"long"}"#,
        r#"{"name":"ts_ms","type":"string"}"#,
    );
    assert_ne!(v3, IMPRESSION_V1);
    let v3 = write(tmp.path(), "v3-ts.avsc", &v3);
    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&[
        "--checkpoint-interval-events",
        INTERVAL,
        "--registry",
        registry.to_str().unwrap(),
    ]);
    match job.attempt(Crash::AfterNextCheckpoint) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before the crash: {s}"),
    }
    assert_refused(&job, &v3, "ts_ms", &["type", "backward"], &registry);
}

/// Without a registry the store itself must refuse a state schema that cannot
/// read what the checkpoint holds.
#[test]
fn without_a_registry_the_restored_state_refuses_an_incompatible_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 42, 40_000, 0.0);
    let v3 = write(
        tmp.path(),
        "v3.avsc",
        &v1_plus(r#"{"name":"score","type":"double"}"#),
    );
    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&["--checkpoint-interval-events", INTERVAL]);
    match job.attempt(Crash::AfterNextCheckpoint) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before the crash: {s}"),
    }
    let out = job.output(&["--impression-schema", &v3]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("score"), "names the field: {stderr}");
    // And the job still resumes with its own schema.
    job.run_ok();
    assert_valid(&input, &job.output, &[]);
}
