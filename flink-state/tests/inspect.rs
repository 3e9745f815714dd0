//! inspect names every operator and state of every fixture, instantly
//! without --deep, with entry counts with it.

mod common;
use common::*;
use flink_state::inspect::{inspect, render_text};
use flink_state::{DirStorage, FlinkSnapshot};
use std::time::Instant;

/// Operator uids/names and state names as Flink's MetaDump lists them.
fn names_in_metadata_txt(fixture: &str, kind: &str) -> Vec<String> {
    let txt = std::fs::read_to_string(
        fixtures()
            .join(fixture)
            .join(format!("metadata-{kind}.txt")),
    )
    .unwrap();
    let mut names = Vec::new();
    for line in txt.lines() {
        if let Some(rest) = line.trim().strip_prefix("== operator ") {
            names.push(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(i) = line.find("] name=") {
            names.push(
                line[i + 7..]
                    .split(" backendStateType")
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    names
}

#[test]
fn inspect_names_every_operator_and_state() {
    let cases = [
        ("A-p1", "canonical"),
        ("A-p1-noinline", "canonical"),
        ("A-p2", "canonical"),
        ("B-evolved-hashmap-all", "canonical"),
        ("C-sql-interval-join", "canonical"),
    ];
    for (f, kind) in cases {
        let dir = savepoint_dir(f, &format!("savepoint-{kind}"));
        let storage = DirStorage::new(&dir);
        let t = Instant::now();
        let snap = FlinkSnapshot::open(&storage, "").unwrap();
        let text = render_text(&inspect(&snap, false, None));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(ms < 100.0, "{f}: inspect took {ms:.1} ms");
        for name in names_in_metadata_txt(f, kind) {
            assert!(text.contains(&name), "{f}: {name} missing from\n{text}");
        }
    }
}

#[test]
fn native_and_checkpoint_metadata_inspect_without_rocksdb() {
    for f in ["A-p1", "A-p2"] {
        let dir = savepoint_dir(f, "savepoint-native");
        let storage = DirStorage::new(&dir);
        let snap = FlinkSnapshot::open(&storage, "").unwrap();
        let text = render_text(&inspect(&snap, false, None));
        for name in names_in_metadata_txt(f, "native") {
            assert!(text.contains(&name), "{f}: {name} missing from\n{text}");
        }
        let (job, chk) = checkpoint_dir(f);
        let storage = DirStorage::new(&job);
        let snap = FlinkSnapshot::open(&storage, &chk).unwrap();
        assert_eq!(snap.kind(), "incremental checkpoint");
        let text = render_text(&inspect(&snap, false, None));
        for name in names_in_metadata_txt(f, "checkpoint") {
            assert!(text.contains(&name), "{f}: {name} missing from\n{text}");
        }
    }
}

#[test]
fn deep_inspect_counts_entries() {
    let dir = savepoint_dir("A-p2", "savepoint-canonical");
    let storage = DirStorage::new(&dir);
    let snap = FlinkSnapshot::open(&storage, "").unwrap();
    let j = inspect(&snap, true, None);
    let text = render_text(&j);
    assert!(
        text.contains("count") && text.contains("50 entries"),
        "{text}"
    );
    assert!(text.contains("key-group skew: 42 groups used"), "{text}");
    println!("{text}");
}
