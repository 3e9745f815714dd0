//! Fault injection and garbage collection: failed checkpoints stay
//! invisible, restore refuses damage, GC never deletes a referenced object.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use checkpoint_store::fault::{Action, Fault, FaultStore, Op};
use checkpoint_store::object_store::memory::InMemory;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutPayload};
use checkpoint_store::{
    CheckpointStatus, ErrorKind, GcPolicy, JobStore, JobStoreOptions, Manifest,
    SAVEPOINT_MANIFEST_NAME,
};
use common::*;

fn faulty(opts: JobStoreOptions) -> (Arc<dyn ObjectStore>, FaultStore, JobStore) {
    let base: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let fault = FaultStore::new(Arc::clone(&base));
    let job = JobStore::from_store(Arc::new(fault.clone()), ObjPath::from("j"), opts);
    (base, fault, job)
}

fn no_grace() -> GcPolicy {
    GcPolicy {
        retain: 2,
        grace: Duration::ZERO,
    }
}

/// Every object referenced by every complete checkpoint exists.
async fn assert_all_referenced_exist(base: &Arc<dyn ObjectStore>, job: &JobStore) {
    let keys: HashSet<String> = object_keys(base).await.into_iter().collect();
    for info in job.list().await.unwrap() {
        if info.status == CheckpointStatus::Complete {
            let m = job.manifest(info.id).await.unwrap();
            for f in &m.files {
                assert!(
                    keys.contains(&format!("j/{}", f.object)),
                    "checkpoint {} lost {}",
                    m.id,
                    f.object
                );
            }
        }
    }
}

#[tokio::test]
async fn failed_uploads_and_commits_never_become_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fault, job) = faulty(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1, 2, 3, 4], 10_000, "a");
    let good = w
        .commit_checkpoint(&d, &files, meta(serde_json::json!("good")))
        .await
        .unwrap();

    let files2 = make_dir(&d, &[1, 2, 3, 4, 5, 6], 10_000, "b");
    let cases = [
        Fault::new(Op::Put, "shared/", Some(1), Action::FailPermanent),
        Fault::new(Op::Put, "MANIFEST-000001", None, Action::FailPermanent),
        Fault::new(Op::Put, "_manifest", None, Action::FailPermanent),
        Fault::new(
            Op::Put,
            "_manifest",
            None,
            Action::Timeout(Duration::from_millis(5)),
        ),
    ];
    for case in cases {
        fault.clear();
        fault.add(case.clone());
        let err = w
            .commit_checkpoint(&d, &files2, meta(serde_json::json!("bad")))
            .await
            .unwrap_err();
        assert!(fault.injected() > 0);
        assert_ne!(err.kind(), ErrorKind::Fenced, "{case:?}: {err}");
        let latest = job.latest().await.unwrap().unwrap();
        assert_eq!(latest, good, "{case:?}");
    }
    fault.clear();
    // The writer recovers and the next commit works.
    let m = w
        .commit_checkpoint(&d, &files2, meta(serde_json::json!("after")))
        .await
        .unwrap();
    assert_eq!(job.latest().await.unwrap().unwrap(), m);
    let dest = tmp.path().join("dest");
    job.restore(m.id, &dest).await.unwrap();
    assert_same_dir(&d, &dest);
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fault, job) = faulty(fast_opts());
    fault.add(Fault::new(Op::Put, "shared/", Some(1), Action::Fail));
    fault.add(Fault::new(Op::Put, "_manifest", Some(2), Action::Fail));
    fault.add(Fault::new(Op::Get, "shared/", Some(1), Action::Fail));
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1, 2], 10_000, "a");
    let m = w
        .commit_checkpoint(&d, &files, meta(serde_json::json!(0)))
        .await
        .unwrap();
    let dest = tmp.path().join("dest");
    job.restore(m.id, &dest).await.unwrap();
    assert_eq!(fault.injected(), 3);
    assert_same_dir(&d, &dest);
}

#[tokio::test]
async fn truncated_upload_reported_as_success_is_caught_on_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fault, job) = faulty(fast_opts());
    fault.add(Fault::new(
        Op::Put,
        "shared/",
        Some(2),
        Action::Truncate(100),
    ));
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1, 2, 3], 10_000, "a");
    let m = w
        .commit_checkpoint(&d, &files, meta(serde_json::json!(0)))
        .await
        .unwrap();
    assert_eq!(fault.injected(), 1);
    let dest = tmp.path().join("dest");
    let err = job.restore(m.id, &dest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(!dest.exists());
    assert!(leftovers(tmp.path()).is_empty());
}

#[tokio::test]
async fn failed_multipart_completion_leaves_no_object() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = fast_opts();
    opts.multipart_threshold = 1 << 20;
    let (base, fault, job) = faulty(opts);
    fault.add(Fault::new(
        Op::CompleteMultipart,
        "shared/",
        None,
        Action::FailPermanent,
    ));
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[9], 6 << 20, "a");
    let err = w
        .commit_checkpoint(&d, &files, meta(serde_json::json!(0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert!(!object_keys(&base)
        .await
        .iter()
        .any(|k| k.contains("shared/")));
    assert!(job.latest().await.unwrap().is_none());
}

#[tokio::test]
async fn gc_applies_retention_and_keeps_every_referenced_object() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _, job) = faulty(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let mut manifests: Vec<Manifest> = Vec::new();
    // Sliding window of files: each checkpoint drops one and adds one.
    for i in 0..5u64 {
        let d = tmp.path().join(format!("c{i}"));
        let seeds: Vec<u64> = (i..i + 3).collect();
        let files = make_dir(&d, &seeds, 5_000, &i.to_string());
        manifests.push(
            w.commit_checkpoint(&d, &files, meta(serde_json::json!(i)))
                .await
                .unwrap(),
        );
    }
    let dry = job.gc(&no_grace(), true).await.unwrap();
    let keys_before = object_keys(&base).await;
    let report = job.gc(&no_grace(), false).await.unwrap();
    assert_eq!(dry.expired_checkpoints, report.expired_checkpoints);
    assert_eq!(dry.shared, report.shared);
    assert_eq!(
        keys_before.len() - object_keys(&base).await.len(),
        report.objects
    );
    assert_eq!(report.retained, vec![manifests[3].id, manifests[4].id]);
    assert_eq!(
        report.expired_checkpoints,
        vec![manifests[0].id, manifests[1].id, manifests[2].id]
    );
    assert_eq!(report.fences, vec![1]);
    // Seeds 0, 1 and 2 are referenced only by expired checkpoints.
    assert_eq!(report.shared.len(), 3);
    assert_all_referenced_exist(&base, &job).await;
    for m in &manifests[3..] {
        let dest = tmp.path().join(format!("r{}", m.id));
        job.restore(m.id, &dest).await.unwrap();
    }
    let err = job.manifest(manifests[0].id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Idempotent.
    let again = job.gc(&no_grace(), false).await.unwrap();
    assert_eq!(again.objects, 0);
}

#[tokio::test]
async fn writer_gc_after_every_commit_never_breaks_a_retained_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = fast_opts();
    opts.retain = 2;
    opts.gc_grace = Duration::ZERO;
    opts.gc_after_commit = true;
    let (base, _, job) = faulty(opts);
    let mut w = job.claim_epoch().await.unwrap();
    // Files come back after leaving retention (a restored old state): the
    // writer must upload them again, not trust a deleted object.
    let pattern: [&[u64]; 8] = [
        &[1, 2],
        &[2, 3],
        &[3, 4],
        &[1, 2],
        &[4, 5],
        &[1, 5],
        &[6],
        &[1, 6],
    ];
    for (i, seeds) in pattern.iter().enumerate() {
        if i == 4 {
            w = job.claim_epoch().await.unwrap();
        }
        let d = tmp.path().join(format!("c{i}"));
        let files = make_dir(&d, seeds, 3_000, &i.to_string());
        let m = w
            .commit_checkpoint(&d, &files, meta(serde_json::json!(i)))
            .await
            .unwrap();
        assert_all_referenced_exist(&base, &job).await;
        let dest = tmp.path().join(format!("r{i}"));
        job.restore(m.id, &dest).await.unwrap();
        assert_same_dir(&d, &dest);
    }
    let complete = job
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status == CheckpointStatus::Complete)
        .count();
    assert_eq!(complete, 2);
}

#[tokio::test]
async fn crash_between_upload_and_commit_is_cleaned_after_grace_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, fault, job) = faulty(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let good = w
        .commit_checkpoint(
            &d,
            &make_dir(&d, &[1, 2], 4_000, "a"),
            meta(serde_json::json!(0)),
        )
        .await
        .unwrap();
    // "Crash": everything uploaded, the manifest never written.
    fault.add(Fault::new(
        Op::Put,
        "_manifest",
        None,
        Action::FailPermanent,
    ));
    let files = make_dir(&d, &[1, 2, 3, 4], 4_000, "b");
    w.commit_checkpoint(&d, &files, meta(serde_json::json!(1)))
        .await
        .unwrap_err();
    fault.clear();
    let list = job.list().await.unwrap();
    assert_eq!(list.last().unwrap().status, CheckpointStatus::Incomplete);

    // Within the grace period nothing of the in-flight upload goes (only
    // the claim's fence record, which no longer carries information).
    let keys = object_keys(&base).await;
    let report = job
        .gc(
            &GcPolicy {
                retain: 1,
                grace: Duration::from_secs(3600),
            },
            false,
        )
        .await
        .unwrap();
    assert!(
        report.incomplete.is_empty() && report.shared.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.fences, vec![1]);
    let after = object_keys(&base).await;
    assert_eq!(keys.len() - after.len(), 1);
    assert!(after.iter().filter(|k| k.contains("shared/")).count() == 4);

    let report = job
        .gc(
            &GcPolicy {
                retain: 1,
                grace: Duration::ZERO,
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(report.incomplete, vec![good.id + 1]);
    assert_eq!(report.shared.len(), 2, "{report:?}");
    assert_all_referenced_exist(&base, &job).await;
    job.restore(good.id, &tmp.path().join("r")).await.unwrap();
    assert!(!object_keys(&base)
        .await
        .iter()
        .any(|k| k.contains(&format!("chk-{}/", good.id + 1))));
}

#[tokio::test]
async fn unreadable_manifest_blocks_all_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _, job) = faulty(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    for i in 0..4u64 {
        let d = tmp.path().join(format!("c{i}"));
        w.commit_checkpoint(
            &d,
            &make_dir(&d, &[i], 2_000, "x"),
            meta(serde_json::json!(i)),
        )
        .await
        .unwrap();
    }
    base.put(
        &ObjPath::from("j/checkpoints/chk-3/_manifest"),
        PutPayload::from_static(b"{garbage"),
    )
    .await
    .unwrap();
    let keys = object_keys(&base).await;
    let report = job.gc(&no_grace(), false).await.unwrap();
    assert!(
        report
            .blocked
            .as_deref()
            .unwrap_or("")
            .contains("checkpoint 3"),
        "{report:?}"
    );
    assert_eq!(report.objects, 0);
    assert_eq!(object_keys(&base).await, keys);
    let list = job.list().await.unwrap();
    assert!(matches!(list[2].status, CheckpointStatus::Unreadable(_)));
    // A corrupt savepoint manifest blocks too.
    base.put(
        &ObjPath::from("j/checkpoints/chk-3/_manifest"),
        PutPayload::from_static(b"x"),
    )
    .await
    .unwrap();
    base.delete(&ObjPath::from("j/checkpoints/chk-3/_manifest"))
        .await
        .unwrap();
    base.put(
        &ObjPath::from(format!("j/savepoints/sp1/{SAVEPOINT_MANIFEST_NAME}").as_str()),
        PutPayload::from_static(b"[]"),
    )
    .await
    .unwrap();
    let report = job.gc(&no_grace(), false).await.unwrap();
    assert!(report.blocked.is_some());
    assert_eq!(report.objects, 0);
}

#[tokio::test]
async fn savepoint_references_keep_shared_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _, job) = faulty(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d0 = tmp.path().join("c0");
    let first = w
        .commit_checkpoint(
            &d0,
            &make_dir(&d0, &[100], 2_000, "0"),
            meta(serde_json::json!(0)),
        )
        .await
        .unwrap();
    // A savepoint keeps a copy of the first manifest.
    let mut record = serde_json::to_value(&first).unwrap();
    record["kind"] = "checkpoint".into();
    base.put(
        &ObjPath::from(format!("j/savepoints/sp1/{SAVEPOINT_MANIFEST_NAME}").as_str()),
        PutPayload::from(serde_json::to_vec(&record).unwrap()),
    )
    .await
    .unwrap();
    for i in 1..4u64 {
        let d = tmp.path().join(format!("c{i}"));
        w.commit_checkpoint(
            &d,
            &make_dir(&d, &[i], 2_000, "x"),
            meta(serde_json::json!(i)),
        )
        .await
        .unwrap();
    }
    let report = job.gc(&no_grace(), false).await.unwrap();
    assert!(report.blocked.is_none(), "{report:?}");
    assert!(report.expired_checkpoints.contains(&first.id));
    let sst = &first
        .files
        .iter()
        .find(|f| f.name.ends_with(".sst"))
        .unwrap()
        .object;
    assert!(!report.shared.contains(sst));
    assert!(object_keys(&base).await.contains(&format!("j/{sst}")));
}

#[tokio::test]
async fn conditional_create_fences_a_zombie_even_after_a_stale_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, fault, job) = faulty(fast_opts());
    let zombie = job.claim_epoch().await.unwrap();
    let newer = job.claim_epoch().await.unwrap();
    let slot = format!("chk-{}/_manifest", zombie.next_id().await);
    fault.add(Fault::new(Op::Get, &slot, Some(1), Action::NotFound));
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1], 1_000, "z");
    let err = zombie
        .commit_checkpoint(&d, &files, meta(serde_json::json!("z")))
        .await
        .unwrap_err();
    assert_eq!(fault.injected(), 1);
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(job.latest().await.unwrap().is_none());
    newer
        .commit_checkpoint(&d, &files, meta(serde_json::json!("n")))
        .await
        .unwrap();
}
