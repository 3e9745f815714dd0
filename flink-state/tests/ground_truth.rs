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
    assert_matches_ground_truth(&lines, &fixtures().join("B-evolved-hashmap-all/gt-checkpoint.jsonl"));
}
