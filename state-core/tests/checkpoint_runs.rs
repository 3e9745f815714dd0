//! Layout v2 checkpoints (sorted runs from the change log and slices of a
//! snapshot): whatever the writes, the budget and the failed commits, every
//! retained checkpoint restores to exactly the state at its barrier.

mod common;

use checkpoint_store::fault::{Action, Fault, FaultStore, Op as FaultOp};
use checkpoint_store::object_store::memory::InMemory;
use checkpoint_store::object_store::path::Path as ObjectPath;
use checkpoint_store::object_store::ObjectStore;
use common::{contents, descriptors, Contents, V};
use proptest::prelude::*;
use state_core::checkpoint::{io_runtime, CheckpointLayout, RunOptions};
use state_core::runs::{layout_of, RunKind};
use state_core::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn v(n: u8) -> V {
    V {
        n: i64::from(n),
        s: "x".repeat(usize::from(n % 7)),
    }
}

#[derive(Debug, Clone)]
enum Step {
    ValuePut(u8, u8),
    ValueClear(u8),
    ListAdd(u8, u8),
    ListUpdate(u8, Vec<u8>),
    ListClear(u8),
    MapPut(u8, u8, u8),
    MapRemove(u8, u8),
    MapRemoveRange(u8, u8, u8),
    MapRemoveBelow(u8, u8),
    MapClear(u8),
    Timer(u8, u8),
    TimerDelete(u8, u8),
    Fire(u8),
    Batch(Vec<(u8, u8, bool)>),
    Bulk(u8, u16),
    Checkpoint { fail: bool },
}

fn step() -> impl Strategy<Value = Step> {
    let k = 0u8..6;
    prop_oneof![
        3 => (k.clone(), any::<u8>()).prop_map(|(k, n)| Step::ValuePut(k, n)),
        1 => k.clone().prop_map(Step::ValueClear),
        3 => (k.clone(), any::<u8>()).prop_map(|(k, n)| Step::ListAdd(k, n)),
        1 => (k.clone(), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(k, v)| Step::ListUpdate(k, v)),
        1 => k.clone().prop_map(Step::ListClear),
        4 => (k.clone(), 0u8..8, any::<u8>()).prop_map(|(k, u, n)| Step::MapPut(k, u, n)),
        1 => (k.clone(), 0u8..8).prop_map(|(k, u)| Step::MapRemove(k, u)),
        1 => (k.clone(), 0u8..8, 0u8..8).prop_map(|(k, a, b)| Step::MapRemoveRange(k, a, b)),
        1 => (k.clone(), 0u8..8).prop_map(|(k, u)| Step::MapRemoveBelow(k, u)),
        1 => k.clone().prop_map(Step::MapClear),
        2 => (k.clone(), 0u8..20).prop_map(|(k, t)| Step::Timer(k, t)),
        1 => (k.clone(), 0u8..20).prop_map(|(k, t)| Step::TimerDelete(k, t)),
        1 => (0u8..20).prop_map(Step::Fire),
        2 => prop::collection::vec((k.clone(), 0u8..8, any::<bool>()), 1..6).prop_map(Step::Batch),
        1 => (any::<u8>(), 50u16..400).prop_map(|(seed, n)| Step::Bulk(seed, n)),
        3 => prop::bool::weighted(0.25).prop_map(|fail| Step::Checkpoint { fail }),
    ]
}

fn apply(store: &StateStore, s: &Step) {
    let vs = store.value_state_serde::<V>("v").unwrap();
    let ls = store.list_state_serde::<V>("l").unwrap();
    let ms = store.map_state_serde::<V>("m").unwrap();
    let key = |k: u8| format!("key-{k}").into_bytes();
    match s {
        Step::ValuePut(k, n) => vs.put(&key(*k), &v(*n)).unwrap(),
        Step::ValueClear(k) => vs.clear(&key(*k)).unwrap(),
        Step::ListAdd(k, n) => ls.add(&key(*k), &v(*n)).unwrap(),
        Step::ListUpdate(k, ns) => {
            let vals: Vec<V> = ns.iter().map(|n| v(*n)).collect();
            ls.update(&key(*k), &vals).unwrap()
        }
        Step::ListClear(k) => ls.clear(&key(*k)).unwrap(),
        Step::MapPut(k, u, n) => ms.put(&key(*k), &[*u], &v(*n)).unwrap(),
        Step::MapRemove(k, u) => ms.remove(&key(*k), &[*u]).unwrap(),
        Step::MapRemoveRange(k, a, b) => {
            let (lo, hi) = (*a.min(b), *a.max(b));
            ms.remove_range(&key(*k), &[lo], &[hi]).unwrap()
        }
        Step::MapRemoveBelow(k, u) => {
            ms.remove_below(&key(*k), &[*u]).unwrap();
        }
        Step::MapClear(k) => ms.clear(&key(*k)).unwrap(),
        Step::Timer(k, t) => store.timers().register(&key(*k), i64::from(*t)).unwrap(),
        Step::TimerDelete(k, t) => store.timers().delete(&key(*k), i64::from(*t)).unwrap(),
        Step::Fire(t) => {
            let mut out = Vec::new();
            store
                .timers()
                .fire_due(i64::from(*t), 1000, &mut out)
                .unwrap();
        }
        Step::Batch(ops) => {
            let mut batch = StateBatch::new(store);
            for (k, u, put) in ops {
                if *put {
                    ms.put_in(&mut batch, &key(*k), &[*u], &v(*u)).unwrap();
                    store
                        .timers()
                        .register_in(&mut batch, &key(*k), 100 + i64::from(*u), b"p")
                        .unwrap();
                } else {
                    ms.remove_in(&mut batch, &key(*k), &[*u]).unwrap();
                }
            }
            batch.commit().unwrap();
        }
        Step::Bulk(seed, n) => {
            // Enough bytes that slices stop inside a column family.
            for i in 0..*n {
                let k = format!("bulk-{seed}-{}", i % 97).into_bytes();
                vs.put(&k, &v((i % 251) as u8)).unwrap();
            }
        }
        Step::Checkpoint { .. } => unreachable!("handled by the driver"),
    }
}

/// A job under `job/` in `store`.
fn job_on(store: Arc<dyn ObjectStore>, opts: JobStoreOptions) -> JobStore {
    JobStore::from_store(store, ObjectPath::from("job"), opts)
}

fn memory_job(opts: JobStoreOptions) -> JobStore {
    job_on(Arc::new(InMemory::new()), opts)
}

fn open_store(path: &Path) -> StateStore {
    StateStore::open(path, StoreOptions::new(descriptors())).unwrap()
}

fn checkpointer(
    rt: &Arc<tokio::runtime::Runtime>,
    job: &JobStore,
    staging: PathBuf,
    layout: CheckpointLayout,
) -> Checkpointer {
    Checkpointer::start(rt.clone(), job.clone(), staging)
        .unwrap()
        .with_layout(layout)
}

/// Takes a checkpoint of `store` and waits for its commit.
fn checkpoint(cp: &mut Checkpointer, store: &StateStore) -> state_core::Result<Manifest> {
    cp.trigger(store, serde_json::json!({})).unwrap().unwrap();
    cp.wait_next().unwrap().result
}

/// Restores checkpoint `id` (the newest: `None`) of `job` into `dir`.
fn restore_to(
    rt: &tokio::runtime::Runtime,
    job: &JobStore,
    id: Option<u64>,
    dir: &Path,
) -> state_core::Result<(StateStore, Manifest)> {
    restore(rt, job, id, dir, StoreOptions::new(descriptors()))
}

/// Runs `steps`, checkpointing where they say; returns the number of runs
/// of each committed manifest.
fn run(
    steps: &[Step],
    upload_ratio: f64,
    slice_file_bytes: u64,
    log_spill_bytes: usize,
) -> Vec<usize> {
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("db"));
    let faults = FaultStore::new(Arc::new(InMemory::new()));
    let opts = JobStoreOptions {
        retain: 3,
        // GC deletes what no retained checkpoint holds right away: a run
        // reused from an older manifest must never be among it.
        gc_grace: Duration::ZERO,
        ..JobStoreOptions::default()
    };
    let job = job_on(Arc::new(faults.clone()), opts);
    let mut cp = checkpointer(
        &rt,
        &job,
        dir.path().join("staging"),
        CheckpointLayout::Runs(RunOptions {
            upload_ratio,
            slice_file_bytes,
            log_spill_bytes,
            ..RunOptions::default()
        }),
    );
    let mut expected: Vec<(u64, Contents)> = Vec::new();
    let mut run_counts = Vec::new();
    let all = steps
        .iter()
        .chain(std::iter::once(&Step::Checkpoint { fail: false }));
    for s in all {
        let Step::Checkpoint { fail } = s else {
            apply(&store, s);
            continue;
        };
        let at_barrier = contents(&store);
        if *fail {
            faults.add(Fault::new(
                FaultOp::Put,
                "manifest",
                None,
                Action::FailPermanent,
            ));
        }
        cp.trigger(&store, serde_json::json!({})).unwrap().unwrap();
        let done = cp.wait_next().unwrap();
        faults.clear();
        match done.result {
            Ok(m) => {
                assert!(!fail, "a checkpoint whose commit failed became visible");
                let layout = layout_of(&m.states).unwrap().expect("a v2 checkpoint");
                assert!(layout
                    .runs
                    .iter()
                    .any(|r| matches!(r.kind, RunKind::Slice { .. })));
                run_counts.push(layout.runs.len());
                expected.push((m.id, at_barrier));
            }
            Err(e) => assert!(fail, "unexpected failure: {e}"),
        }
    }
    let retained = expected.len().saturating_sub(3);
    for (id, want) in &expected[retained..] {
        let target = dir.path().join(format!("restored-{id}"));
        let (restored, _) = restore_to(&rt, &job, Some(*id), &target).unwrap();
        assert_eq!(&contents(&restored), want, "checkpoint {id}");
    }
    run_counts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_retained_checkpoint_restores_the_state_at_its_barrier(
        steps in prop::collection::vec(step(), 1..60),
        ratio in prop::sample::select(vec![1.0, 1.02, 1.4, 3.0, 100.0]),
        // Small files: slices split inside a column family.
        file_bytes in prop::sample::select(vec![1u64, 2_000, 64 << 20]),
        // Tiny segments: the log spills to the sealer every few writes.
        spill in prop::sample::select(vec![0usize, 1, 500, 32 << 20]),
    ) {
        run(&steps, ratio, file_bytes, spill);
    }
}

#[test]
fn slices_sweep_the_key_space_and_retire_deltas() {
    // Many small checkpoints with a tight budget: the sweep must lap the key
    // space, and the manifest must stop growing once it has.
    let mut steps = vec![Step::Bulk(1, 400), Step::Checkpoint { fail: false }];
    for i in 0..40u8 {
        steps.push(Step::ValuePut(i % 6, i));
        steps.push(Step::MapPut(i % 6, i % 8, i));
        steps.push(Step::ListAdd(i % 6, i));
        steps.push(Step::Checkpoint { fail: i % 9 == 4 });
    }
    let counts = run(&steps, 20.0, 4_000, 300);
    assert!(counts.len() > 30, "{counts:?}");
    let last = *counts.last().unwrap();
    assert!(
        last < counts.len() / 2,
        "deltas must be retired once slices cover them: {counts:?}"
    );
}

#[test]
fn a_corrupt_or_failing_run_leaves_nothing_behind() {
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("db"));
    let memory = Arc::new(InMemory::new());
    let faults = FaultStore::new(memory.clone());
    let job = job_on(Arc::new(faults.clone()), JobStoreOptions::default());
    let mut cp = checkpointer(
        &rt,
        &job,
        dir.path().join("staging"),
        CheckpointLayout::default(),
    );
    apply(&store, &Step::Bulk(3, 300));
    checkpoint(&mut cp, &store).unwrap();
    apply(&store, &Step::MapPut(1, 2, 3));
    let m = checkpoint(&mut cp, &store).unwrap();
    let layout = layout_of(&m.states).unwrap().unwrap();
    assert!(layout.runs.len() >= 2, "{layout:?}");
    let restores = dir.path().join("restores");
    std::fs::create_dir_all(&restores).unwrap();
    let leftovers = || std::fs::read_dir(&restores).unwrap().count();

    // A download that keeps failing.
    faults.add(Fault::new(
        FaultOp::Get,
        "shared",
        None,
        Action::FailPermanent,
    ));
    let err = restore_to(&rt, &job, None, &restores.join("a"))
        .err()
        .expect("a failing download fails the restore");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(leftovers(), 0, "nothing left beside the target");
    faults.clear();

    // A run whose bytes changed in the store: its checksum is refused.
    let victim = &m.files[m.files.len() - 1];
    let path = ObjectPath::from(format!("job/{}", victim.object));
    rt.block_on(memory.put(&path, vec![0u8; victim.size as usize].into()))
        .unwrap();
    let err = restore_to(&rt, &job, None, &restores.join("b"))
        .err()
        .expect("a corrupt run fails the restore");
    assert!(err.to_string().contains("checksum"), "{err}");
    assert_eq!(leftovers(), 0, "nothing left beside the target");
}

#[test]
fn two_checkpointers_on_one_store_never_lose_writes() {
    // A fenced writer that still cuts the store's change log (and had a
    // sealer of its own) must not make the new writer's checkpoints miss
    // the writes it took.
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("db"));
    let job = memory_job(JobStoreOptions::default());
    let tiny = CheckpointLayout::Runs(RunOptions {
        log_spill_bytes: 200,
        ..RunOptions::default()
    });
    let start = |name: &str| checkpointer(&rt, &job, dir.path().join(name), tiny);
    let mut old = start("a");
    apply(&store, &Step::Bulk(1, 200));
    checkpoint(&mut old, &store).unwrap();
    apply(&store, &Step::Bulk(2, 200)); // spilled to the old writer's sealer
    let mut new = start("b");
    apply(&store, &Step::Bulk(3, 200));
    checkpoint(&mut new, &store).unwrap();
    apply(&store, &Step::Bulk(4, 200));
    assert!(
        checkpoint(&mut old, &store).is_err(),
        "the old writer is fenced"
    );
    apply(&store, &Step::Bulk(5, 200));
    let m = checkpoint(&mut new, &store).unwrap();
    apply(&store, &Step::Bulk(6, 200));
    let want = contents(&store);
    let last = checkpoint(&mut new, &store).unwrap();
    assert!(last.id > m.id);
    let (restored, _) = restore_to(&rt, &job, None, &dir.path().join("restored")).unwrap();
    assert_eq!(contents(&restored), want);
}

#[test]
fn a_state_growing_ahead_of_the_sweep_keeps_restores_bounded() {
    // New keys every interval and a small upload budget: the sweep alone
    // would never lap the state, and a restore would read every delta ever
    // written. The live deltas stay within the restore read limit.
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("db"));
    let job = memory_job(JobStoreOptions::default());
    let opts = RunOptions {
        upload_ratio: 1.05,
        restore_read_limit: 2.0,
        ..RunOptions::default()
    };
    let mut cp = checkpointer(
        &rt,
        &job,
        dir.path().join("staging"),
        CheckpointLayout::Runs(opts),
    );
    let vs = store.value_state_serde::<V>("v").unwrap();
    let mut last = None;
    for round in 0..60u32 {
        for i in 0..50u32 {
            let key = format!("grow-{round:04}-{i:03}");
            vs.put(key.as_bytes(), &v((i % 200) as u8)).unwrap();
        }
        let m = checkpoint(&mut cp, &store).unwrap();
        let layout = layout_of(&m.states).unwrap().unwrap();
        let (mut deltas, mut slices) = (0u64, 0u64);
        for r in &layout.runs {
            match r.kind {
                RunKind::Delta => deltas += r.bytes,
                RunKind::Slice { .. } => slices += r.bytes,
            }
        }
        // One checkpoint's delta may exceed the limit before the next one
        // catches up.
        let one_delta = 50 * 60;
        assert!(
            deltas <= slices + one_delta,
            "round {round}: {deltas} bytes of deltas live for {slices} of slices"
        );
        last = Some(contents(&store));
    }
    let (restored, _) = restore_to(&rt, &job, None, &dir.path().join("restored")).unwrap();
    assert_eq!(Some(contents(&restored)), last);
}

#[test]
fn continuing_from_a_restored_checkpoint_stays_incremental() {
    let rt = io_runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = memory_job(JobStoreOptions {
        gc_grace: Duration::ZERO,
        ..JobStoreOptions::default()
    });
    let layout = CheckpointLayout::Runs(RunOptions {
        upload_ratio: 3.0,
        ..RunOptions::default()
    });
    let first = open_store(&dir.path().join("a"));
    let mut cp = checkpointer(&rt, &job, dir.path().join("s1"), layout);
    apply(&first, &Step::Bulk(1, 400));
    checkpoint(&mut cp, &first).unwrap();
    for i in 0..5u8 {
        apply(&first, &Step::MapPut(i % 6, i, i));
        apply(&first, &Step::ListAdd(i % 6, i));
        checkpoint(&mut cp, &first).unwrap();
    }
    drop(cp);

    // A restarted job: restore the newest checkpoint and continue its runs.
    let (store, manifest) = restore_to(&rt, &job, None, &dir.path().join("b")).unwrap();
    let mut cp = checkpointer(&rt, &job, dir.path().join("s2"), layout);
    assert!(cp.continue_from(&store, &manifest).unwrap());
    let before = layout_of(&manifest.states).unwrap().unwrap().runs.len();
    for i in 0..30u8 {
        apply(&store, &Step::ValuePut(i % 6, i));
        apply(&store, &Step::MapRemove(i % 6, i % 8));
        apply(&store, &Step::ListAdd(i % 6, i));
        let m = checkpoint(&mut cp, &store).unwrap();
        assert!(
            m.uploaded_bytes < manifest.total_bytes / 2,
            "round {i}: {} uploaded, the whole state is {}",
            m.uploaded_bytes,
            manifest.total_bytes
        );
        if i == 0 {
            let runs = layout_of(&m.states).unwrap().unwrap().runs.len();
            assert!(
                runs > before,
                "the restored runs are continued, not replaced"
            );
        }
        // Every checkpoint restores to the state at its barrier: pruning
        // must order the continued runs before the new ones.
        let (each, _) = restore_to(
            &rt,
            &job,
            Some(m.id),
            &dir.path().join(format!("round-{i}")),
        )
        .unwrap();
        assert_eq!(contents(&each), contents(&store), "round {i}");
    }
    let want = contents(&store);
    let (restored, _) = restore_to(&rt, &job, None, &dir.path().join("c")).unwrap();
    assert_eq!(contents(&restored), want);

    // Not after a write, nor from a checkpoint that is not the newest.
    let newest = rt.block_on(job.latest()).unwrap().unwrap().id;
    let (store, manifest) = restore_to(&rt, &job, Some(newest - 1), &dir.path().join("d")).unwrap();
    let mut cp = checkpointer(&rt, &job, dir.path().join("s3"), layout);
    assert!(
        !cp.continue_from(&store, &manifest).unwrap(),
        "not the newest"
    );
    let (store, manifest) = restore_to(&rt, &job, None, &dir.path().join("e")).unwrap();
    apply(&store, &Step::ValuePut(1, 1));
    let mut cp = checkpointer(&rt, &job, dir.path().join("s4"), layout);
    assert!(
        !cp.continue_from(&store, &manifest).unwrap(),
        "written since"
    );
}
