//! Every canonical savepoint and heap checkpoint of the fixtures dumps to
//! exactly Flink's own dump of it (gt-*.jsonl), entry by entry.

mod common;
use common::*;

fn check_savepoint(fixture: &str) {
    let dir = savepoint_dir(fixture, "savepoint-canonical");
    let lines = dump_all(&dir, "", None);
    assert_matches_ground_truth(&lines, &fixtures().join(fixture).join("gt-canonical.jsonl"));
}

#[test]
fn a_p1_canonical_with_inlined_streams() {
    check_savepoint("A-p1");
}

#[test]
fn a_p1_noinline_canonical_with_file_streams() {
    check_savepoint("A-p1-noinline");
}

#[test]
fn a_p2_canonical_two_subtasks() {
    check_savepoint("A-p2");
}

#[test]
fn b_heap_written_canonical_with_evolved_schema() {
    check_savepoint("B-evolved-hashmap-all");
}

#[test]
fn b_heap_checkpoint() {
    let (job, chk) = checkpoint_dir("B-evolved-hashmap-all");
    let lines = dump_all(&job, &chk, None);
    assert_matches_ground_truth(
        &lines,
        &fixtures().join("B-evolved-hashmap-all/gt-checkpoint.jsonl"),
    );
}

/// The SQL interval join: every input row of the fixture is in the join's
/// RowData map state, under its key and row time.
#[test]
fn c_sql_interval_join_holds_every_input_row() {
    let dir = savepoint_dir("C-sql-interval-join", "savepoint-canonical");
    let lines: Vec<serde_json::Value> = dump_all(&dir, "", None)
        .iter()
        .map(|j| serde_json::from_str(&j.to_line()).unwrap())
        .collect();
    let expected = std::fs::read_to_string(
        fixtures().join("C-sql-interval-join/expected-state-from-inputs.jsonl"),
    )
    .unwrap();
    let mut found = 0;
    for line in expected.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let hit = lines.iter().any(|l| {
            l["state"] == e["state"]
                && l["key"]["f0"] == e["key"]
                && l["value"].as_array().into_iter().flatten().any(|kv| {
                    kv[0] == e["userKey"]
                        && kv[1].as_array().into_iter().flatten().any(|t| {
                            let row = &t[0];
                            (0..4).all(|i| row[format!("f{i}")] == e["row"][i])
                        })
                })
        });
        assert!(hit, "input row not in the state: {line}");
        found += 1;
    }
    assert_eq!(found, 600);
}

/// Native savepoints and incremental checkpoints: RocksDB SSTs read in
/// pure Rust (flink_state::sst_lsm), compared with Flink's dump.
fn check_native(fixture: &str) {
    let lsm = flink_state::sst_lsm::SstLsm;
    let dir = savepoint_dir(fixture, "savepoint-native");
    let lines = dump_all(&dir, "", Some(&lsm));
    assert_matches_ground_truth(&lines, &fixtures().join(fixture).join("gt-native.jsonl"));
    let (job, chk) = checkpoint_dir(fixture);
    let lines = dump_all(&job, &chk, Some(&lsm));
    assert_matches_ground_truth(
        &lines,
        &fixtures().join(fixture).join("gt-checkpoint.jsonl"),
    );
}

#[test]
fn a_p1_native_and_incremental_checkpoint() {
    check_native("A-p1");
}

#[test]
fn a_p1_noinline_native_and_incremental_checkpoint() {
    check_native("A-p1-noinline");
}

#[test]
fn a_p2_native_and_incremental_checkpoint() {
    check_native("A-p2");
}

/// With the job's plan, SQL rows get their field names.
#[test]
fn c_sql_rows_named_from_the_plan() {
    let plan = std::fs::read_to_string(fixtures().join("C-sql-interval-join/plan.txt")).unwrap();
    let names = flink_state::sqlplan::join_names(&plan, "IntervalJoin").unwrap();
    let dir = savepoint_dir("C-sql-interval-join", "savepoint-canonical");
    let mut lines = dump_all(&dir, "", None);
    let right = lines
        .iter_mut()
        .find(|l| l.get("state") == Some(&flink_state::Json::str("IntervalJoinRightCache")))
        .unwrap();
    names.rename_line(right);
    let v: serde_json::Value = serde_json::from_str(&right.to_line()).unwrap();
    assert!(v["key"]["user_id"].is_string(), "{v}");
    let row = &v["value"][0][1][0][0];
    assert!(row["play_id"].as_str().unwrap().starts_with("play-"), "{v}");
    assert!(row["rowtime"].is_i64(), "{v}");
}
