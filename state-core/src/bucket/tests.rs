//! A bucketed state against a model (a map from `(key, user key)` to the
//! newest put, dropped by the same expiry rule), through memory budgets
//! small enough to spill at every check, checkpoint cuts, written runs and
//! restores from them.

use super::*;
use crate::codec::RawBytes;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Key = [u8; 2];
type Uk = [u8; 9];
type State = BucketedState<Key, Uk, RawBytes>;

const WIDTH: i64 = 100;
const RETENTION: i64 = 250;

fn opts(budget: usize) -> BucketOptions {
    BucketOptions {
        width_ms: WIDTH,
        retention_ms: RETENTION,
        memory_budget: budget,
        max_parallelism: 8,
        schema_version: 1,
    }
}

fn uk(ts: i64, id: u8) -> Uk {
    let mut u = [0u8; 9];
    u[..8].copy_from_slice(&crate::keys::ordered_i64(ts));
    u[8] = id;
    u
}

#[derive(Debug, Clone)]
enum Op {
    Put { key: u8, ts: i64, id: u8, value: u8 },
    Probe { key: u8, lo: i64, span: i64 },
    Expire(i64),
    Cut,
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..6, 0i64..1000, 0u8..4, any::<u8>())
            .prop_map(|(key, ts, id, value)| Op::Put { key, ts, id, value }),
        4 => (0u8..6, -50i64..1000, 0i64..400).prop_map(|(key, lo, span)| Op::Probe { key, lo, span }),
        1 => (0i64..1400).prop_map(Op::Expire),
        1 => Just(Op::Cut),
        1 => Just(Op::Restore),
    ]
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<(Key, Uk), (i64, Vec<u8>)>,
    watermark: i64,
}

impl Model {
    fn expire(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
        let wm = self.watermark;
        // Same rule as the state: a bucket goes when its last time plus
        // the retention is at or below the watermark.
        self.entries.retain(|_, (ts, _)| {
            let last = ts.div_euclid(WIDTH) * WIDTH + WIDTH - 1;
            last + RETENTION > wm
        });
    }

    fn probe(&self, key: Key, lo: i64, hi: i64) -> Vec<(Uk, i64, Vec<u8>)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|((k, _), (ts, _))| *k == key && *ts >= lo && *ts <= hi)
            .map(|((_, u), (ts, v))| (*u, *ts, v.clone()))
            .collect();
        out.sort();
        out
    }
}

/// Writes the runs of every live part, as a checkpoint's upload does.
fn checkpoint(state: &mut State) -> Vec<RunInfo> {
    let cut = state.cut();
    cut.parts
        .iter()
        .map(|p| p.run().expect("run written").info().clone())
        .collect()
}

fn restore(dir: &Path, state: &mut State, budget: usize) -> State {
    let runs = checkpoint(state);
    // A restore downloads the runs into a folder of its own.
    let into = dir.join(format!("restored-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&into).unwrap();
    for r in &runs {
        std::fs::copy(dir.join("live").join(&r.file), into.join(&r.file)).unwrap();
    }
    let restored = open_runs(&into, &runs).expect("runs open");
    let mut s = State::open("s", &dir.join("live"), RawBytes, opts(budget), restored).unwrap();
    s.expire(state.watermark);
    s
}

fn run_ops(ops: Vec<Op>, budget: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut state = State::open(
        "s",
        &dir.path().join("live"),
        RawBytes,
        opts(budget),
        vec![],
    )
    .unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Put { key, ts, id, value } => {
                let k = [key, 0];
                // Puts behind the watermark would be late: the operator
                // never makes them, and their bucket may be gone.
                if ts < model.watermark {
                    continue;
                }
                let v = vec![value; 1 + usize::from(value % 7)];
                state.insert(k, uk(ts, id), ts, v.clone()).unwrap();
                model.entries.insert((k, uk(ts, id)), (ts, v));
            }
            Op::Probe { key, lo, span } => {
                let k = [key, 0];
                let mut got = Vec::new();
                state
                    .probe(&k, lo, lo + span, |u, ts, v| got.push((*u, ts, v.clone())))
                    .unwrap();
                got.sort();
                assert_eq!(
                    got,
                    model.probe(k, lo, lo + span),
                    "probe {key} {lo}..={}",
                    lo + span
                );
            }
            Op::Expire(wm) => {
                state.expire(wm);
                model.expire(wm);
            }
            Op::Cut => {
                checkpoint(&mut state);
            }
            Op::Restore => {
                let dir_path = dir.path().to_path_buf();
                state = restore(&dir_path, &mut state, budget);
            }
        }
    }
    // Every entry, through a full scan as well.
    let mut all = BTreeMap::new();
    state
        .for_each(|k, u, ts, v| {
            all.insert((*k, *u), (ts, v.clone()));
            Ok(())
        })
        .unwrap();
    all.retain(|_, (ts, _)| {
        let last = ts.div_euclid(WIDTH) * WIDTH + WIDTH - 1;
        last + RETENTION > model.watermark
    });
    assert_eq!(all, model.entries);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_the_model_in_memory(ops in prop::collection::vec(op(), 1..300)) {
        run_ops(ops, 1 << 30);
    }

    #[test]
    fn matches_the_model_when_every_check_spills(ops in prop::collection::vec(op(), 1..300)) {
        run_ops(ops, 1);
    }
}

#[test]
fn a_probe_reads_only_runs_whose_filter_may_hold_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open("s", dir.path(), RawBytes, opts(1 << 30), vec![]).unwrap();
    for key in 0..200u16 {
        s.insert(key.to_be_bytes(), uk(10, 0), 10, vec![1, 2, 3])
            .unwrap();
    }
    let cut = s.cut();
    let run = cut.parts[0].run().unwrap();
    assert_eq!(run.info().entries, 200);
    s.shed_memory_for_tests();
    let mut n = 0;
    for key in 1000..2000u16 {
        s.probe(&key.to_be_bytes(), 0, 99, |_, _, _| n += 1)
            .unwrap();
    }
    assert_eq!(n, 0);
    let st = s.stats();
    assert!(st.filter_skips > 950, "{st:?}");
    s.probe(&5u16.to_be_bytes(), 0, 99, |_, _, v| {
        assert_eq!(v, &vec![1, 2, 3])
    })
    .unwrap();
    assert_eq!(s.stats().run_probes, st.run_probes + 1);
}

#[test]
fn a_flipped_byte_in_a_run_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open("s", dir.path(), RawBytes, opts(1 << 30), vec![]).unwrap();
    for key in 0..300u16 {
        s.insert(key.to_be_bytes(), uk(10, 0), 10, vec![7; 40])
            .unwrap();
    }
    let run = s.cut().parts[0].run().unwrap();
    let mut bytes = std::fs::read(run.path()).unwrap();
    for at in [20, bytes.len() / 2, bytes.len() - 30] {
        bytes[at] ^= 0x10;
        let copy = dir.path().join("copy.run");
        std::fs::write(&copy, &bytes).unwrap();
        let read = RunFile::open(&copy, 0).and_then(|r| r.for_each(|_| Ok(())));
        assert!(read.is_err(), "flip at {at} went unnoticed");
        bytes[at] ^= 0x10;
    }
}

#[test]
fn an_expired_bucket_deletes_its_runs_once_nothing_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open("s", dir.path(), RawBytes, opts(1 << 30), vec![]).unwrap();
    s.insert([1, 0], uk(10, 0), 10, vec![1]).unwrap();
    let cut = s.cut();
    let run = cut.parts[0].run().unwrap();
    let path = run.path().to_path_buf();
    drop(run);
    assert_eq!(s.expire(WIDTH - 1 + RETENTION), 1);
    assert!(path.exists(), "the checkpoint's upload still holds it");
    drop(cut);
    assert!(!path.exists());
}

#[test]
fn decode_block_rejects_garbage_without_panicking() {
    for bytes in [&[0u8, 1, 0xff, 0xff][..], &[0, 0, 5, 1, 2], &[0xff; 40]] {
        assert!(run::decode_block(bytes).is_err());
    }
}
