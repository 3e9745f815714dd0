//! Every restore path (streamed from a memory store, copied or hard-linked
//! from a local-folder store; one batch or several) verifies what it writes
//! and leaves the target directory alone on failure.

mod common;

use std::path::Path;
use std::sync::Arc;

use checkpoint_store::object_store::local::LocalFileSystem;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutPayload};
use checkpoint_store::{CheckpointError, ErrorKind, JobStore, JobStoreOptions, Manifest};
use common::*;

/// Larger than one streamed batch (8 MiB), so several blocking writes.
const LARGE: usize = 9 << 20;
const SMALL: usize = 20_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    LocalCopy,
    LocalLink,
}

const KINDS: [Kind; 3] = [Kind::Memory, Kind::LocalCopy, Kind::LocalLink];

fn job(kind: Kind, root: &Path, fsync: bool) -> (Arc<dyn ObjectStore>, JobStore) {
    let opts = JobStoreOptions {
        fsync_restore: fsync,
        link_local_objects: matches!(kind, Kind::LocalLink),
        ..fast_opts()
    };
    match kind {
        Kind::Memory => memory_job(opts),
        Kind::LocalCopy | Kind::LocalLink => {
            let dir = root.join("store");
            std::fs::create_dir_all(&dir).unwrap();
            let store: Arc<dyn ObjectStore> =
                Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
            let job = JobStore::from_store(Arc::clone(&store), ObjPath::from("jobs/j1"), opts);
            (store, job)
        }
    }
}

async fn commit(job: &JobStore, src: &Path, size: usize) -> Manifest {
    let w = job.claim_epoch().await.unwrap();
    let files = make_dir(src, &[1, 2], size, "a");
    w.commit_checkpoint(src, &files, meta(serde_json::json!(0)))
        .await
        .unwrap()
}

fn object_key(m: &Manifest, name: &str) -> String {
    let f = m.files.iter().find(|f| f.name == name).unwrap();
    format!("jobs/j1/{}", f.object)
}

async fn get(store: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    store
        .get(&ObjPath::from(key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store
        .put(&ObjPath::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_path_round_trips_with_and_without_fsync() {
    for kind in KINDS {
        for size in [0, SMALL, LARGE] {
            for fsync in [false, true] {
                let tmp = tempfile::tempdir().unwrap();
                let (_, job) = job(kind, tmp.path(), fsync);
                let src = tmp.path().join("src");
                let m = commit(&job, &src, size).await;
                let dest = tmp.path().join("dest");
                job.restore(m.id, &dest).await.unwrap();
                assert_same_dir(&src, &dest);
                assert!(leftovers(tmp.path()).is_empty(), "{kind:?}");
                // Restoring over the restored directory reuses its files.
                job.restore(m.id, &dest).await.unwrap();
                assert_same_dir(&src, &dest);
            }
        }
    }
}

#[tokio::test]
async fn every_path_refuses_flipped_truncated_and_longer_objects() {
    for kind in KINDS {
        for size in [SMALL, LARGE] {
            let tmp = tempfile::tempdir().unwrap();
            let (store, job) = job(kind, tmp.path(), false);
            let m = commit(&job, &tmp.path().join("src"), size).await;
            let dest = tmp.path().join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::write(dest.join("keep-me"), b"previous state").unwrap();
            let key = object_key(&m, "000002.sst");
            let original = get(&store, &key).await;

            let mut flipped = original.clone();
            flipped[size / 2] ^= 0x01;
            let mut longer = original.clone();
            longer.push(0);
            for (what, bytes) in [
                ("flipped", flipped),
                ("truncated", original[..size - 1].to_vec()),
                ("longer", longer),
            ] {
                put(&store, &key, bytes).await;
                let err = job.restore(m.id, &dest).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Corrupt, "{kind:?} {what}: {err}");
                assert!(
                    matches!(&err, CheckpointError::CorruptFile { file, .. } if file == "000002.sst"),
                    "{kind:?} {what}: {err}"
                );
                assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
                assert!(leftovers(tmp.path()).is_empty(), "{kind:?} {what}");
            }
            // Repaired: the restore works again.
            put(&store, &key, original).await;
            job.restore(m.id, &dest).await.unwrap();
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn local_objects_are_linked_only_when_asked_and_copies_are_independent() {
    use std::os::unix::fs::MetadataExt;
    for kind in [Kind::LocalCopy, Kind::LocalLink] {
        let tmp = tempfile::tempdir().unwrap();
        let (_, job) = job(kind, tmp.path(), false);
        let src = tmp.path().join("src");
        let m = commit(&job, &src, SMALL).await;
        let dest = tmp.path().join("dest");
        job.restore(m.id, &dest).await.unwrap();
        let object = tmp.path().join("store").join(object_key(&m, "000001.sst"));
        let restored = dest.join("000001.sst");
        let same_inode = std::fs::metadata(&object).unwrap().ino()
            == std::fs::metadata(&restored).unwrap().ino();
        assert_eq!(same_inode, matches!(kind, Kind::LocalLink), "{kind:?}");
        // Compressed private files are always written, never linked.
        assert_eq!(std::fs::metadata(dest.join("CURRENT")).unwrap().nlink(), 1);

        if matches!(kind, Kind::LocalCopy) {
            // A copy can be modified without touching the checkpoint.
            std::fs::write(&restored, b"overwritten in place").unwrap();
            let again = tmp.path().join("again");
            job.restore(m.id, &again).await.unwrap();
            assert_same_dir(&src, &again);
        }
        // Deleting a linked restored file (what RocksDB does) leaves the object.
        std::fs::remove_file(&restored).unwrap();
        assert!(object.exists());
    }
}
