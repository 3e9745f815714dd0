//! Checkpoints of a real RocksDB store to object stores, and restore.

mod common;

use common::{SCHEMA, V};
use state_core::checkpoint::{io_runtime, open_job, CheckpointLayout};
use state_core::*;
use std::collections::BTreeMap;

fn descriptors() -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::value("v", SCHEMA),
        StateDescriptor::map("m", SCHEMA),
    ]
}

fn write_range(store: &StateStore, from: i64, to: i64) {
    let v = store.value_state_serde::<V>("v").unwrap();
    let m = store.map_state_serde::<V>("m").unwrap();
    for i in from..to {
        let key = format!("key-{i}");
        let val = V {
            n: i,
            s: "x".repeat((i % 50) as usize),
        };
        v.put(key.as_bytes(), &val).unwrap();
        m.put(key.as_bytes(), &keys::ordered(&i), &val).unwrap();
        store.timers().register(key.as_bytes(), i).unwrap();
    }
}

fn contents(store: &StateStore) -> common::Entries {
    common::entries(store, &["v", "m"])
}

fn checkpoint_restore_round_trip(url: &str) {
    round_trip_with(url, CheckpointLayout::default());
}

fn round_trip_with(url: &str, layout: CheckpointLayout) {
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(descriptors())).unwrap();
    let job = open_job(&rt, url, JobStoreOptions::default()).unwrap();
    let mut cp = Checkpointer::start(rt.clone(), job.clone(), dir.path().join("staging"))
        .unwrap()
        .with_layout(layout);

    write_range(&store, 0, 5_000);
    let t = cp
        .trigger(&store, serde_json::json!({"offset": 5000}))
        .unwrap()
        .expect("nothing in flight");
    assert!(
        cp.trigger(&store, serde_json::json!({})).unwrap().is_none(),
        "one checkpoint in flight at a time"
    );
    let first = cp.wait_next().unwrap();
    assert_eq!(first.sequence, t.sequence);
    let first = first.result.unwrap();
    let snapshot_1 = contents(&store);

    write_range(&store, 5_000, 5_500);
    cp.trigger(&store, serde_json::json!({"offset": 5500}))
        .unwrap()
        .unwrap();
    let second = cp.wait_next().unwrap().result.unwrap();
    assert!(second.id > first.id);
    assert!(
        second.uploaded_bytes < first.uploaded_bytes,
        "incremental: {} then {}",
        first.uploaded_bytes,
        second.uploaded_bytes
    );
    let snapshot_2 = contents(&store);

    // Restore the latest and an older checkpoint, compare entry by entry.
    for (id, expected, offset) in [
        (None, &snapshot_2, 5500),
        (Some(first.id), &snapshot_1, 5000),
    ] {
        let target = dir.path().join(format!("restored-{id:?}"));
        let (restored, manifest) =
            restore(&rt, &job, id, &target, StoreOptions::new(descriptors())).unwrap();
        assert_eq!(manifest.user["offset"], offset);
        assert_eq!(&contents(&restored), expected);
        assert_eq!(restored.timers().all().unwrap().len(), expected.len() / 2);
        let v = restored.value_state_serde::<V>("v").unwrap();
        assert_eq!(v.get(b"key-42").unwrap().unwrap().n, 42);
    }

    // Restore into one instance's key-group range keeps only that range.
    let range = KeyGroupRange::for_operator(128, 3, 1).unwrap();
    let (sub, _) = restore(
        &rt,
        &job,
        None,
        &dir.path().join("sub"),
        StoreOptions::new(descriptors()).with_key_groups(range),
    )
    .unwrap();
    let sub_contents = contents(&sub);
    let expected: BTreeMap<_, _> = snapshot_2
        .iter()
        .filter(|((_, k, _), _)| range.contains(key_group_of(k, 128)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(sub_contents, expected);
    assert!(sub
        .timers()
        .all()
        .unwrap()
        .iter()
        .all(|t| range.contains(t.key_group)));

    // Another max parallelism is refused, and the target is left absent.
    let bad = dir.path().join("bad");
    let err = restore(
        &rt,
        &job,
        None,
        &bad,
        StoreOptions::new(descriptors()).with_max_parallelism(64),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, StateError::MaxParallelismMismatch { .. }),
        "{err}"
    );
    assert!(!bad.exists());
}

#[test]
fn checkpoint_and_restore_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint_restore_round_trip(dir.path().join("job").to_str().unwrap());
}

#[test]
fn v1_layout_checkpoints_still_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip_with(
        dir.path().join("job").to_str().unwrap(),
        CheckpointLayout::Files,
    );
}

#[test]
fn checkpoint_and_restore_in_memory() {
    checkpoint_restore_round_trip("memory://state-core-checkpoints");
}

#[test]
fn checkpoint_and_restore_on_s3() {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        eprintln!("skipped: S3_TEST_ENDPOINT unset");
        return;
    };
    let bucket = format!("state-core-{}", std::process::id());
    // moto creates buckets with a plain PUT.
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import urllib.request as u; u.urlopen(u.Request('{endpoint}/{bucket}', method='PUT'))"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    checkpoint_restore_round_trip(&format!("s3://{bucket}/jobs/one"));
}

#[test]
fn a_second_writer_fences_the_first() {
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("job");
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(descriptors())).unwrap();
    let job = open_job(&rt, url.to_str().unwrap(), JobStoreOptions::default()).unwrap();
    let mut old = Checkpointer::start(rt.clone(), job.clone(), dir.path().join("s1")).unwrap();
    write_range(&store, 0, 100);
    old.trigger(&store, serde_json::json!({})).unwrap().unwrap();
    old.wait_next().unwrap().result.unwrap();

    let _new = Checkpointer::start(rt.clone(), job.clone(), dir.path().join("s2")).unwrap();
    old.trigger(&store, serde_json::json!({})).unwrap().unwrap();
    let err = old.wait_next().unwrap().result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
}
