//! Fixture locations and ground-truth comparison shared by the tests.
#![allow(dead_code)]

use flink_state::{DirStorage, DumpOptions, FlinkSnapshot, Json, LsmScanner};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flink")
}

/// The single `savepoint-*` folder under `<fixture>/<kind>`.
pub fn savepoint_dir(fixture: &str, kind: &str) -> PathBuf {
    let parent = fixtures().join(fixture).join(kind);
    let mut dirs: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.pop().unwrap()
}

/// (job folder, "chk-N") of a fixture's retained checkpoint.
pub fn checkpoint_dir(fixture: &str) -> (PathBuf, String) {
    let jobs = fixtures().join(fixture).join("checkpoints");
    let job = std::fs::read_dir(&jobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let names: Vec<String> = std::fs::read_dir(&job)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let chk = flink_state::latest_checkpoint(names.iter().map(String::as_str))
        .unwrap()
        .to_string();
    (job, chk)
}

/// Every line of every operator of a snapshot.
pub fn dump_all(root: &Path, base: &str, lsm: Option<&dyn LsmScanner>) -> Vec<Json> {
    let storage = DirStorage::new(root);
    let snap = FlinkSnapshot::open(&storage, base).unwrap();
    let mut lines = Vec::new();
    let opts = DumpOptions {
        lsm,
        check_key_groups: true,
        ..Default::default()
    };
    for op in &snap.metadata.operators {
        let report = snap
            .dump(op, &opts, &mut |j| {
                lines.push(j.clone());
                Ok(())
            })
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    lines
}

/// Our lines, cut down to the fields of the ground truth, equal the
/// ground-truth file entry by entry (as sorted multisets).
pub fn assert_matches_ground_truth(ours: &[Json], gt_file: &Path) {
    let gt_text = std::fs::read_to_string(gt_file).unwrap();
    let mut gt: Vec<String> = gt_text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .to_string()
        })
        .collect();
    let mut mine: Vec<String> = ours
        .iter()
        .map(|j| {
            let mut v: serde_json::Value = serde_json::from_str(&j.to_line()).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("ttl_timestamp");
            o.remove("mode");
            v.to_string()
        })
        .collect();
    gt.sort();
    mine.sort();
    let missing: Vec<_> = gt
        .iter()
        .filter(|l| mine.binary_search(l).is_err())
        .take(3)
        .collect();
    let extra: Vec<_> = mine
        .iter()
        .filter(|l| gt.binary_search(l).is_err())
        .take(3)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && gt.len() == mine.len(),
        "{}: {} lines vs {} in ground truth\nmissing: {missing:#?}\nextra: {extra:#?}",
        gt_file.display(),
        mine.len(),
        gt.len()
    );
}
