//! Uploads into a local-folder store: a bare folder takes the copy path,
//! a wrapped one (faults, metrics) keeps every request on the ObjectStore
//! path; both store the same objects.

mod common;

use std::path::Path;
use std::sync::Arc;

use checkpoint_store::fault::{Action, Fault, FaultStore, Op};
use checkpoint_store::metrics::MetricsStore;
use checkpoint_store::object_store::local::LocalFileSystem;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::ObjectStore;
use checkpoint_store::{FileKind, JobStore};
use common::*;

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn bare_folder_stores_what_the_object_store_path_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = make_dir(&src, &[1, 2, 3], 3 << 20, "a");
    let bare_dir = tmp.path().join("bare");
    let bare = JobStore::open(bare_dir.to_str().unwrap(), fast_opts())
        .await
        .unwrap();
    let m = bare
        .claim_epoch()
        .await
        .unwrap()
        .commit_checkpoint(&src, &files, meta(serde_json::json!(1)))
        .await
        .unwrap();
    assert!(m.uploaded_bytes >= 9 << 20, "{}", m.uploaded_bytes);

    let wrapped_dir = tmp.path().join("wrapped");
    std::fs::create_dir_all(&wrapped_dir).unwrap();
    let local: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&wrapped_dir).unwrap());
    let metrics = MetricsStore::new(local);
    let counters = metrics.counters();
    let wrapped = JobStore::from_store(Arc::new(metrics), ObjPath::default(), fast_opts());
    let m2 = wrapped
        .claim_epoch()
        .await
        .unwrap()
        .commit_checkpoint(&src, &files, meta(serde_json::json!(1)))
        .await
        .unwrap();
    // The wrapper saw the shared files go through it.
    assert!(counters.snapshot().put_bytes >= 9 << 20);

    let objects = |m: &checkpoint_store::Manifest| {
        let mut v: Vec<_> = m
            .files
            .iter()
            .map(|f| (f.object.clone(), f.checksum.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(objects(&m), objects(&m2));
    // Same files on disk, no staging names left, same bytes.
    assert_eq!(tree(&bare_dir), tree(&wrapped_dir));
    assert!(tree(&bare_dir).iter().all(|n| !n.contains('#')));
    for f in m.files.iter().filter(|f| f.kind == FileKind::Shared) {
        assert_eq!(
            std::fs::read(bare_dir.join(&f.object)).unwrap(),
            std::fs::read(src.join(&f.name)).unwrap()
        );
    }
    let dest = tmp.path().join("restored");
    bare.restore(m.id, &dest).await.unwrap();
    assert_same_dir(&src, &dest);
}

#[tokio::test]
async fn bare_folder_never_overwrites_an_existing_object() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = make_dir(&src, &[4, 5], 100_000, "a");
    // Learn the object names from a first job, then plant a marker at one
    // of them in a second job's folder.
    let first = JobStore::open(tmp.path().join("first").to_str().unwrap(), fast_opts())
        .await
        .unwrap();
    let m = first
        .claim_epoch()
        .await
        .unwrap()
        .commit_checkpoint(&src, &files, meta(serde_json::json!(0)))
        .await
        .unwrap();
    let shared = m.files.iter().find(|f| f.kind == FileKind::Shared).unwrap();
    let second_dir = tmp.path().join("second");
    let planted = second_dir.join(&shared.object);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, b"already here").unwrap();

    let second = JobStore::open(second_dir.to_str().unwrap(), fast_opts())
        .await
        .unwrap();
    let m2 = second
        .claim_epoch()
        .await
        .unwrap()
        .commit_checkpoint(&src, &files, meta(serde_json::json!(0)))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&planted).unwrap(), b"already here");
    assert!(m2.uploaded_bytes < m.uploaded_bytes);
}

#[tokio::test]
async fn faults_on_a_wrapped_local_folder_still_hit_shared_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = make_dir(&src, &[1, 2], 2 << 20, "a");
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(&dir).unwrap();
    let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap());
    let fault = FaultStore::new(local);
    fault.add(Fault::new(Op::Put, "shared/", None, Action::FailPermanent));
    let job = JobStore::from_store(Arc::new(fault.clone()), ObjPath::default(), fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let err = w
        .commit_checkpoint(&src, &files, meta(serde_json::json!(0)))
        .await
        .unwrap_err();
    assert!(fault.injected() > 0, "{err}");
    assert!(job.latest().await.unwrap().is_none());
    assert!(
        !tree(&dir).iter().any(|n| n.contains("shared")),
        "{:?}",
        tree(&dir)
    );
}
