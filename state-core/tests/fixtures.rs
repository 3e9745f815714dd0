//! Checkpoints written by earlier releases, kept in the repository and
//! restored by every release after: a format change that cannot read them
//! fails here. `tests/fixtures/checkpoints/<layout>/` holds a job folder
//! (one checkpoint) written by `regenerate_fixtures` (ignored; run it only
//! to add a fixture of a new layout, never to rewrite an old one).

mod common;

use common::{contents, copy_tree, descriptors, Contents, V};
use state_core::checkpoint::{io_runtime, open_job, CheckpointLayout};
use state_core::*;
use std::path::{Path, PathBuf};

fn fixture_dir(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoints")
        .join(layout)
}

/// The writes behind every fixture, checkpointed after `first` of them and
/// again at the end.
fn write(store: &StateStore, from: i64, to: i64) {
    let v = store.value_state_serde::<V>("v").unwrap();
    let l = store.list_state_serde::<V>("l").unwrap();
    let m = store.map_state_serde::<V>("m").unwrap();
    for i in from..to {
        let key = format!("key-{}", i % 40);
        let val = V {
            n: i,
            s: "x".repeat((i % 9) as usize),
        };
        v.put(key.as_bytes(), &val).unwrap();
        l.add(key.as_bytes(), &val).unwrap();
        m.put(key.as_bytes(), &keys::ordered(&(i % 7)), &val)
            .unwrap();
        if i % 5 == 0 {
            m.remove_range(key.as_bytes(), &keys::ordered(&0i64), &keys::ordered(&3i64))
                .unwrap();
        }
        if i % 11 == 0 {
            l.clear(key.as_bytes()).unwrap();
            v.clear(key.as_bytes()).unwrap();
        }
        store.timers().register(key.as_bytes(), i).unwrap();
    }
}

fn expected() -> Contents {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(descriptors())).unwrap();
    write(&store, 0, 300);
    write(&store, 300, 420);
    contents(&store)
}

fn restores(layout: &str) {
    let tmp = tempfile::tempdir().unwrap();
    // Restore reads only, but a fixture is never opened in place.
    let job_dir = tmp.path().join("job");
    copy_tree(&fixture_dir(layout), &job_dir);
    let rt = io_runtime().unwrap();
    let job = open_job(&rt, job_dir.to_str().unwrap(), JobStoreOptions::default()).unwrap();
    let (store, manifest) = restore(
        &rt,
        &job,
        None,
        &tmp.path().join("restored"),
        StoreOptions::new(descriptors()),
    )
    .unwrap();
    assert_eq!(manifest.user["fixture"], layout);
    assert_eq!(contents(&store), expected(), "fixture {layout}");
}

#[test]
fn a_layout_v1_checkpoint_restores_forever() {
    restores("v1-files");
}

#[test]
fn a_layout_v2_checkpoint_restores_forever() {
    restores("v2-runs");
}

#[test]
#[ignore = "writes the fixtures; run only to add one for a new layout"]
fn regenerate_fixtures() {
    for (name, layout) in [
        ("v1-files", CheckpointLayout::Files),
        ("v2-runs", CheckpointLayout::default()),
    ] {
        let out = fixture_dir(name);
        if out.exists() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store =
            StateStore::open(tmp.path().join("db"), StoreOptions::new(descriptors())).unwrap();
        let rt = io_runtime().unwrap();
        let job = open_job(&rt, out.to_str().unwrap(), JobStoreOptions::default()).unwrap();
        let mut cp = Checkpointer::start(rt.clone(), job, tmp.path().join("staging"))
            .unwrap()
            .with_layout(layout);
        write(&store, 0, 300);
        cp.trigger(&store, serde_json::json!({"fixture": name}))
            .unwrap()
            .unwrap();
        cp.wait_next().unwrap().result.unwrap();
        write(&store, 300, 420);
        cp.trigger(&store, serde_json::json!({"fixture": name}))
            .unwrap()
            .unwrap();
        cp.wait_next().unwrap().result.unwrap();
        assert_eq!(contents(&store), expected());
    }
}
