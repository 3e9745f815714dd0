//! Bucketed state through checkpoints on a local-folder object store: each
//! run is uploaded once and reused while it lives; a job restores the runs
//! as they are, tools see the entries in the map state of the same name;
//! a committed fixture of this format restores forever.

mod common;

use common::{descriptors, Contents, SCHEMA, V};
use state_core::bucket::BucketedState;
use state_core::checkpoint::{io_runtime, open_job};
use state_core::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl HeapSize for V {
    fn heap_bytes(&self) -> usize {
        self.s.capacity()
    }
}

const WIDTH: i64 = 1_000;
const RETENTION: i64 = 2_500;

type Buckets = BucketedState<Vec<u8>, [u8; 16], SerdeAvro<V>>;

fn bucket_opts(budget: usize) -> BucketOptions {
    BucketOptions {
        width_ms: WIDTH,
        retention_ms: RETENTION,
        memory_budget: budget,
        max_parallelism: DEFAULT_MAX_PARALLELISM,
        schema_version: 1,
    }
}

/// The store's states plus the map state `b` that tools see the bucketed
/// state `b` as.
fn store_descriptors() -> Vec<StateDescriptor> {
    let mut d = descriptors();
    d.push(StateDescriptor::map("b", SCHEMA));
    d
}

fn codec() -> SerdeAvro<V> {
    SerdeAvro::new(schema_registry::AvroSchema::parse(SCHEMA).unwrap())
}

fn uk(ts: i64, id: i64) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&keys::ordered_i64(ts));
    u[8..].copy_from_slice(&keys::ordered_i64(id));
    u
}

/// Puts events `from..to` (time `10 * i`) into the buckets and, for the
/// store, into `v`; returns the model of what the buckets hold.
fn write(
    store: &StateStore,
    b: &mut Buckets,
    model: &mut BTreeMap<(Vec<u8>, [u8; 16]), V>,
    from: i64,
    to: i64,
) {
    let v = store.value_state_serde::<V>("v").unwrap();
    for i in from..to {
        let key = format!("key-{}", i % 13).into_bytes();
        let val = V {
            n: i,
            s: "y".repeat((i % 5) as usize),
        };
        let ts = 10 * i;
        b.insert(key.clone(), uk(ts, i), ts, val.clone()).unwrap();
        model.insert((key.clone(), uk(ts, i)), val.clone());
        v.put(&key, &val).unwrap();
    }
}

fn scan(b: &mut Buckets) -> BTreeMap<(Vec<u8>, [u8; 16]), V> {
    let mut out = BTreeMap::new();
    b.for_each(|k, u, _, v| {
        out.insert((k.clone(), *u), v.clone());
        Ok(())
    })
    .unwrap();
    out
}

fn expire_model(model: &mut BTreeMap<(Vec<u8>, [u8; 16]), V>, watermark: i64) {
    model.retain(|(_, u), _| {
        let ts = keys::decode_ordered_i64(&u[..8]).unwrap();
        ts.div_euclid(WIDTH) * WIDTH + WIDTH - 1 + RETENTION > watermark
    });
}

fn checkpoint(cp: &mut Checkpointer, store: &StateStore, b: &mut Buckets, label: &str) -> Manifest {
    let mut cuts = vec![b.cut()];
    cp.trigger_with(store, serde_json::json!({"fixture": label}), &mut cuts)
        .unwrap()
        .unwrap();
    cp.wait_next().unwrap().result.unwrap()
}

#[test]
fn runs_are_uploaded_once_and_restore_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StateStore::open(
        tmp.path().join("db"),
        StoreOptions::new(store_descriptors()),
    )
    .unwrap();
    let rt = io_runtime().unwrap();
    let url = tmp.path().join("job");
    let job = open_job(&rt, url.to_str().unwrap(), JobStoreOptions::default()).unwrap();
    let mut cp = Checkpointer::start(rt.clone(), job.clone(), tmp.path().join("staging")).unwrap();
    // A budget of a few entries: most parts spill to runs between barriers.
    let mut b = Buckets::open(
        "b",
        &tmp.path().join("buckets"),
        codec(),
        bucket_opts(2_000),
        vec![],
    )
    .unwrap();
    let mut model = BTreeMap::new();
    write(&store, &mut b, &mut model, 0, 400);
    let first = checkpoint(&mut cp, &store, &mut b, "t");
    let doc1 = state_core::checkpoint_buckets::buckets_of(&first)
        .unwrap()
        .unwrap();
    write(&store, &mut b, &mut model, 400, 700);
    b.expire(4_000);
    expire_model(&mut model, 4_000);
    let second = checkpoint(&mut cp, &store, &mut b, "t");
    let doc2 = state_core::checkpoint_buckets::buckets_of(&second)
        .unwrap()
        .unwrap();

    // Runs still live were not uploaded again: the second checkpoint's
    // upload is its new runs (plus the store's files), and its manifest
    // points at the first one's objects for the others.
    let objects = |m: &Manifest| -> BTreeMap<String, String> {
        m.files
            .iter()
            .map(|f| (f.name.clone(), f.object.clone()))
            .collect()
    };
    let (o1, o2) = (objects(&first), objects(&second));
    let kept: Vec<_> = doc2.files().filter(|r| o1.contains_key(&r.file)).collect();
    assert!(!kept.is_empty(), "some runs outlive the first checkpoint");
    for r in &kept {
        assert_eq!(o1[&r.file], o2[&r.file], "{} reused", r.file);
    }
    let new_bytes: u64 = doc2
        .files()
        .filter(|r| !o1.contains_key(&r.file))
        .map(|r| r.bytes)
        .sum();
    assert!(second.uploaded_bytes >= new_bytes);
    assert!(second.uploaded_bytes < new_bytes + kept.iter().map(|r| r.bytes).sum::<u64>());
    assert!(doc1.files().count() > 1);

    // A job restores the runs as they are.
    let (_, manifest, runs) = restore_with_buckets(
        &rt,
        &job,
        None,
        &tmp.path().join("r1"),
        &tmp.path().join("r1-buckets"),
        StoreOptions::new(store_descriptors()),
    )
    .unwrap();
    assert_eq!(manifest.id, second.id);
    let restored = runs.get("b").cloned().unwrap_or_default();
    let mut again = Buckets::open(
        "b",
        &tmp.path().join("b2"),
        codec(),
        bucket_opts(2_000),
        restored,
    )
    .unwrap();
    again.expire(4_000);
    assert_eq!(scan(&mut again), model);
    // Probes answer from the runs as they did from memory.
    let mut probed = 0;
    again
        .probe(&b"key-3".to_vec(), 4_000, 7_000, |_, ts, v| {
            assert!((4_000..=7_000).contains(&ts) && v.n * 10 == ts);
            probed += 1;
        })
        .unwrap();
    let expected = model
        .keys()
        .filter(|(k, u)| {
            let ts = keys::decode_ordered_i64(&u[..8]).unwrap();
            k == b"key-3" && (4_000..=7_000).contains(&ts)
        })
        .count();
    assert_eq!(probed, expected);

    // Tools see the entries in the map state `b`.
    let (tools, _) = restore(
        &rt,
        &job,
        None,
        &tmp.path().join("r2"),
        StoreOptions::new(store_descriptors()),
    )
    .unwrap();
    let m = tools.map_state_serde::<V>("b").unwrap();
    for ((key, u), v) in &model {
        assert_eq!(m.get(key, u).unwrap().as_ref(), Some(v));
    }
    let in_map: usize = tools
        .scan("b", KeyGroupRange::all(DEFAULT_MAX_PARALLELISM))
        .unwrap()
        .count();
    assert!(
        in_map >= model.len(),
        "expired buckets may linger, live ones are all there"
    );
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints/v2-buckets")
}

/// Writes the fixture's state: the store's, and the buckets' map view.
fn fixture_state(dir: &Path) -> (StateStore, Buckets) {
    let store = StateStore::open(dir.join("db"), StoreOptions::new(store_descriptors())).unwrap();
    let mut b = Buckets::open(
        "b",
        &dir.join("buckets"),
        codec(),
        bucket_opts(3_000),
        vec![],
    )
    .unwrap();
    let mut model = BTreeMap::new();
    write(&store, &mut b, &mut model, 0, 300);
    (store, b)
}

fn fixture_expected() -> Contents {
    let tmp = tempfile::tempdir().unwrap();
    let (store, mut b) = fixture_state(tmp.path());
    let mut w = store.raw_writer();
    w.put_bucketed(&mut b).unwrap();
    w.commit().unwrap();
    (
        common::entries(&store, &["v", "l", "m", "b"]),
        store.timers().all().unwrap(),
    )
}

#[test]
fn a_bucketed_checkpoint_of_format_1_restores_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let job_dir = tmp.path().join("job");
    common::copy_tree(&fixture_dir(), &job_dir);
    let rt = io_runtime().unwrap();
    let job = open_job(&rt, job_dir.to_str().unwrap(), JobStoreOptions::default()).unwrap();
    let (store, manifest) = restore(
        &rt,
        &job,
        None,
        &tmp.path().join("restored"),
        StoreOptions::new(store_descriptors()),
    )
    .unwrap();
    assert_eq!(manifest.user["fixture"], "v2-buckets");
    let got = (
        common::entries(&store, &["v", "l", "m", "b"]),
        store.timers().all().unwrap(),
    );
    assert_eq!(got, fixture_expected());
}

#[test]
#[ignore = "writes the fixture; run only to add it, never to rewrite it"]
fn regenerate_bucket_fixture() {
    let out = fixture_dir();
    if out.exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, mut b) = fixture_state(tmp.path());
    let rt = io_runtime().unwrap();
    let job = open_job(&rt, out.to_str().unwrap(), JobStoreOptions::default()).unwrap();
    let mut cp = Checkpointer::start(rt.clone(), job, tmp.path().join("staging")).unwrap();
    checkpoint(&mut cp, &store, &mut b, "v2-buckets");
}
