//! verify: clean fixtures pass; a flipped byte in a keyed-state file or in
//! `_metadata` is found and the file named.

mod common;
use common::*;
use flink_state::verify::verify;
use flink_state::DirStorage;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        std::fs::copy(e.path(), &p).unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&p, perm).unwrap();
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

const KEYED_FILE: &str = "4198412c-6569-4bea-bc70-7bda4e08a4f1";

#[test]
fn every_canonical_fixture_and_the_heap_checkpoint_verify_clean() {
    for f in [
        "A-p1",
        "A-p1-noinline",
        "A-p2",
        "B-evolved-hashmap-all",
        "C-sql-interval-join",
    ] {
        let dir = savepoint_dir(f, "savepoint-canonical");
        let r = verify(&DirStorage::new(&dir), "", None);
        assert!(r.problems.is_empty(), "{f}: {:?}", r.problems);
        assert!(r.entries > 0);
    }
    let (job, chk) = checkpoint_dir("B-evolved-hashmap-all");
    let r = verify(&DirStorage::new(&job), &chk, None);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn flipped_byte_in_a_keyed_state_file_is_found_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &savepoint_dir("A-p1-noinline", "savepoint-canonical"),
        tmp.path(),
    );
    // The length of the first key of key group 1 (header ends at 2834).
    flip(&tmp.path().join(KEYED_FILE), 2834 + 2 + 3);
    let r = verify(&DirStorage::new(tmp.path()), "", None);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].file, KEYED_FILE);
}

#[test]
fn flipped_byte_in_metadata_is_found_and_named() {
    let src = savepoint_dir("A-p1-noinline", "savepoint-canonical");
    let tmp = tempfile::tempdir().unwrap();
    // In the trailer (Java-serialized CheckpointProperties) and in the
    // key-group offsets of the first operator.
    for at in [0x60, 700] {
        let dir = tmp.path().join(format!("at{at}"));
        copy_dir(&src, &dir);
        let len = std::fs::metadata(dir.join("_metadata")).unwrap().len() as usize;
        let pos = if at == 0x60 { len - at } else { at };
        flip(&dir.join("_metadata"), pos);
        let r = verify(&DirStorage::new(&dir), "", None);
        assert!(!r.problems.is_empty(), "flip at {pos} unseen");
        assert!(
            r.problems
                .iter()
                .any(|p| p.file == "_metadata" || p.file == KEYED_FILE),
            "{:?}",
            r.problems
        );
    }
}

/// How many single-byte flips verify sees, sampled over the keyed-state
/// file and `_metadata` (printed; canonical savepoints have no checksums,
/// so flips inside string values cannot be seen).
#[test]
fn detection_rate_of_single_byte_flips() {
    let src = savepoint_dir("A-p1-noinline", "savepoint-canonical");
    let tmp = tempfile::tempdir().unwrap();
    for file in [KEYED_FILE, "_metadata"] {
        let original = std::fs::read(src.join(file)).unwrap();
        let (mut seen, mut total) = (0, 0);
        for at in (0..original.len()).step_by(original.len() / 150 + 1) {
            copy_dir(&src, tmp.path());
            flip(&tmp.path().join(file), at);
            total += 1;
            if !verify(&DirStorage::new(tmp.path()), "", None)
                .problems
                .is_empty()
            {
                seen += 1;
            }
        }
        println!("{file}: {seen} of {total} sampled single-byte flips found");
        assert!(seen * 4 >= total, "{file}: only {seen} of {total}");
    }
}

/// Native savepoints: SST block checksums (XXH3) catch a flipped byte.
#[test]
fn flipped_byte_in_a_native_sst_is_found_and_named() {
    use flink_state::{KeyedHandle, StreamHandle};
    let src = savepoint_dir("A-p1-noinline", "savepoint-native");
    let lsm = flink_state::sst_lsm::SstLsm;
    let clean = verify(&DirStorage::new(&src), "", Some(&lsm));
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    let meta =
        flink_state::Metadata::parse(&std::fs::read(src.join("_metadata")).unwrap()).unwrap();
    let sst = meta
        .operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|s| match &s.managed_keyed {
            Some(KeyedHandle::Incremental { shared, .. }) => Some(shared),
            _ => None,
        })
        .flatten()
        .find_map(|(name, h)| match h {
            StreamHandle::Relative { path, size } if name.ends_with(".sst") && *size > 4000 => {
                Some(path.clone())
            }
            _ => None,
        })
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src, tmp.path());
    flip(&tmp.path().join(&sst), 100);
    let r = verify(&DirStorage::new(tmp.path()), "", Some(&lsm));
    assert!(
        r.problems
            .iter()
            .any(|p| p.file.starts_with(&sst) && p.message.contains("checksum")),
        "{:?}",
        r.problems
    );
}
