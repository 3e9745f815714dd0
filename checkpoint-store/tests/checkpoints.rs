//! Commit, restore, incremental upload, fencing and validation on memory and
//! local-folder stores.

mod common;

use std::sync::Arc;

use checkpoint_store::metrics::MetricsStore;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutPayload};
use checkpoint_store::{
    CheckpointError, CheckpointStatus, ErrorKind, FileKind, JobStore, LocalFile,
};
use common::*;

#[tokio::test]
async fn commit_and_restore_round_trip_on_memory_and_local_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let local_url = tmp.path().join("store").to_str().unwrap().to_string();
    for url in ["memory://roundtrip", local_url.as_str()] {
        let job = JobStore::open(url, fast_opts()).await.unwrap();
        let w = job.claim_epoch().await.unwrap();
        let src = tmp.path().join(format!("src-{}", url.len()));
        let files = make_dir(&src, &[1, 2, 3], 100_000, "a");
        let m = w
            .commit_checkpoint(&src, &files, meta(serde_json::json!({"offset": 42})))
            .await
            .unwrap();
        assert_eq!(m.files.len(), 5);
        assert_eq!(m.user["offset"], 42);
        assert_eq!(m.epoch, w.epoch());

        // Reopen by URL: the same named memory store, the same folder.
        let job2 = JobStore::open(url, fast_opts()).await.unwrap();
        let latest = job2.latest().await.unwrap().unwrap();
        assert_eq!(latest, m);
        let dest = tmp.path().join(format!("restored-{}", url.len()));
        let r = job2.restore(m.id, &dest).await.unwrap();
        assert_eq!(r, m);
        assert_same_dir(&src, &dest);
        assert!(leftovers(tmp.path()).is_empty());
    }
}

#[tokio::test]
async fn second_checkpoint_uploads_only_new_files_even_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = memory_job(fast_opts());
    let metrics = MetricsStore::new(Arc::clone(&store));
    let counters = metrics.counters();
    let job = JobStore::from_store(Arc::new(metrics), ObjPath::from("j"), fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d1 = tmp.path().join("c1");
    let f1 = make_dir(&d1, &[1, 2, 3, 4], 50_000, "1");
    let m1 = w
        .commit_checkpoint(&d1, &f1, meta(serde_json::json!(1)))
        .await
        .unwrap();
    assert!(m1.uploaded_bytes >= 200_000);

    // Same writer, one new file.
    let d2 = tmp.path().join("c2");
    let f2 = make_dir(&d2, &[1, 2, 3, 4, 5], 50_000, "2");
    let before = counters.snapshot();
    let m2 = w
        .commit_checkpoint(&d2, &f2, meta(serde_json::json!(2)))
        .await
        .unwrap();
    let put = counters.snapshot().since(&before).put_bytes;
    assert_eq!(
        m2.files
            .iter()
            .filter(|f| f.kind == FileKind::Private)
            .count(),
        2
    );
    assert!((50_000..60_000).contains(&put), "uploaded {put}");
    assert!((50_000..60_000).contains(&m2.uploaded_bytes));

    // A restarted writer learns what is there from the manifests.
    let w2 = job.claim_epoch().await.unwrap();
    assert!(w2.epoch() > w.epoch());
    let d3 = tmp.path().join("c3");
    let f3 = make_dir(&d3, &[2, 3, 4, 5, 6], 50_000, "3");
    let before = counters.snapshot();
    let m3 = w2
        .commit_checkpoint(&d3, &f3, meta(serde_json::json!(3)))
        .await
        .unwrap();
    let put = counters.snapshot().since(&before).put_bytes;
    assert!(put < 60_000, "uploaded {put}");
    // Shared objects are content-addressed: same bytes, same object.
    let obj = |m: &checkpoint_store::Manifest, n: &str| {
        m.files.iter().find(|f| f.name == n).unwrap().object.clone()
    };
    assert_eq!(obj(&m1, "000002.sst"), obj(&m3, "000002.sst"));
    let dest = tmp.path().join("r3");
    job.restore(m3.id, &dest).await.unwrap();
    assert_same_dir(&d3, &dest);
}

#[tokio::test]
async fn restore_reuses_local_files_with_same_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = memory_job(fast_opts());
    let metrics = MetricsStore::new(store);
    let counters = metrics.counters();
    let job = JobStore::from_store(Arc::new(metrics), ObjPath::from("j"), fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let src = tmp.path().join("src");
    let files = make_dir(&src, &[1, 2, 3], 30_000, "x");
    let m = w
        .commit_checkpoint(&src, &files, meta(serde_json::json!({})))
        .await
        .unwrap();
    let dest = tmp.path().join("dest");
    job.restore(m.id, &dest).await.unwrap();
    // Damage one local file: only it must be downloaded again.
    std::fs::write(dest.join("000002.sst"), b"junk").unwrap();
    let before = counters.snapshot();
    job.restore(m.id, &dest).await.unwrap();
    let gets = counters.snapshot().since(&before).get_requests;
    // The manifest plus one shared file.
    assert_eq!(gets, 2);
    assert_same_dir(&src, &dest);
    assert!(leftovers(tmp.path()).is_empty());
}

#[tokio::test]
async fn older_writer_is_fenced_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, job) = memory_job(fast_opts());
    let old = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1], 1000, "a");
    old.commit_checkpoint(&d, &files, meta(serde_json::json!("old-1")))
        .await
        .unwrap();
    let new = job.claim_epoch().await.unwrap();
    assert_eq!(new.epoch(), old.epoch() + 1);
    let err = old
        .commit_checkpoint(&d, &files, meta(serde_json::json!("old-2")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(err.to_string().contains("fenced"));
    let m = new
        .commit_checkpoint(&d, &files, meta(serde_json::json!("new-1")))
        .await
        .unwrap();
    assert_eq!(job.latest().await.unwrap().unwrap().user, "new-1");
    // And again: the zombie stays fenced.
    assert_eq!(
        old.commit_checkpoint(&d, &files, meta(serde_json::json!("old-3")))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Fenced
    );
    let list = job.list().await.unwrap();
    let statuses: Vec<_> = list.iter().map(|i| (i.id, i.status.clone())).collect();
    assert_eq!(
        statuses,
        vec![
            (1, CheckpointStatus::Fence),
            (2, CheckpointStatus::Complete),
            (3, CheckpointStatus::Fence),
            (4, CheckpointStatus::Complete),
        ]
    );
    assert_eq!(m.id, 4);
    assert!(matches!(
        job.manifest(3).await,
        Err(CheckpointError::NotACheckpoint { .. })
    ));
    assert_eq!(
        job.manifest(9).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn concurrent_claims_get_distinct_epochs() {
    let (_, job) = memory_job(fast_opts());
    let claims = futures::future::join_all((0..8).map(|_| job.claim_epoch())).await;
    let mut epochs: Vec<u64> = claims.into_iter().map(|w| w.unwrap().epoch()).collect();
    epochs.sort();
    epochs.dedup();
    assert_eq!(epochs.len(), 8);
}

#[tokio::test]
async fn bad_caller_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, job) = memory_job(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.path().join("d");
    let files = make_dir(&d, &[1], 1000, "a");
    for bad in ["../x", "a/b", ""] {
        let err = w
            .commit_checkpoint(&d, &[LocalFile::shared(bad)], meta(serde_json::json!(0)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
    let mut m = meta(serde_json::json!(0));
    m.id = 77;
    assert_eq!(
        w.commit_checkpoint(&d, &files, m).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut m = meta(serde_json::json!(0));
    m.id = w.next_id().await;
    w.commit_checkpoint(&d, &files, m).await.unwrap();
    let mut m = meta(serde_json::json!(0));
    m.max_parallelism = 256;
    let err = w.commit_checkpoint(&d, &files, m).await.unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::MaxParallelismMismatch {
            given: 256,
            stored: 128,
            ..
        }
    ));
    // A missing local file names the file.
    let err = w
        .commit_checkpoint(
            &d,
            &[LocalFile::shared("nope.sst")],
            meta(serde_json::json!(0)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("nope.sst"));
    assert_eq!(
        job.list()
            .await
            .unwrap()
            .iter()
            .filter(|i| i.status == CheckpointStatus::Complete)
            .count(),
        1
    );
}

async fn put_raw(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store
        .put(&ObjPath::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

async fn committed(
    tmp: &std::path::Path,
) -> (Arc<dyn ObjectStore>, JobStore, checkpoint_store::Manifest) {
    let (store, job) = memory_job(fast_opts());
    let w = job.claim_epoch().await.unwrap();
    let d = tmp.join("src");
    let files = make_dir(&d, &[1, 2], 20_000, "a");
    let m = w
        .commit_checkpoint(&d, &files, meta(serde_json::json!(0)))
        .await
        .unwrap();
    (store, job, m)
}

#[tokio::test]
async fn restore_refuses_corrupt_objects_and_leaves_local_dir_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, job, m) = committed(tmp.path()).await;
    let dest = tmp.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("keep-me"), b"previous state").unwrap();
    let sst = m.files.iter().find(|f| f.name == "000002.sst").unwrap();
    let key = format!("jobs/j1/{}", sst.object);
    let original = store
        .get(&ObjPath::from(key.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();

    // One flipped bit.
    let mut flipped = original.clone();
    flipped[1234] ^= 0x10;
    put_raw(&store, &key, flipped).await;
    let err = job.restore(m.id, &dest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("000002.sst"), "{err}");
    // Truncated.
    put_raw(&store, &key, original[..1000].to_vec()).await;
    let err = job.restore(m.id, &dest).await.unwrap_err();
    assert!(matches!(err, CheckpointError::CorruptFile { .. }), "{err}");
    // Missing.
    store.delete(&ObjPath::from(key.as_str())).await.unwrap();
    let err = job.restore(m.id, &dest).await.unwrap_err();
    assert!(
        matches!(err, CheckpointError::MissingObject { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&sst.object));

    assert_eq!(
        std::fs::read(dest.join("keep-me")).unwrap(),
        b"previous state"
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    assert!(leftovers(tmp.path()).is_empty());
}

#[tokio::test]
async fn hostile_manifests_are_refused_before_any_file_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, job, m) = committed(tmp.path()).await;
    let key = format!("jobs/j1/checkpoints/chk-{}/_manifest", m.id);
    let mut v: serde_json::Value = serde_json::from_slice(
        &store
            .get(&ObjPath::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let dest = tmp.path().join("dest");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, ErrorKind)> = vec![
        (
            "escape",
            Box::new(|v| {
                v["files"][0]["object"] = "checkpoints/shared/../../../other/x.sst".into()
            }),
            ErrorKind::Corrupt,
        ),
        (
            "absolute name",
            Box::new(|v| v["files"][0]["name"] = "/etc/passwd".into()),
            ErrorKind::Corrupt,
        ),
        (
            "parent name",
            Box::new(|v| v["files"][0]["name"] = "../evil".into()),
            ErrorKind::Corrupt,
        ),
        (
            "version",
            Box::new(|v| v["format_version"] = 2.into()),
            ErrorKind::Corrupt,
        ),
        (
            "garbage",
            Box::new(|v| *v = serde_json::json!({"format_version": 1, "kind": "checkpoint"})),
            ErrorKind::Corrupt,
        ),
    ];
    let good = v.clone();
    for (what, edit, kind) in cases {
        v = good.clone();
        edit(&mut v);
        put_raw(&store, &key, serde_json::to_vec(&v).unwrap()).await;
        let err = job.restore(m.id, &dest).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(!dest.exists(), "{what}");
        assert!(!tmp.path().parent().unwrap().join("evil").exists());
    }
    v = good.clone();
    v["format_version"] = 2.into();
    put_raw(&store, &key, serde_json::to_vec(&v).unwrap()).await;
    let err = job.restore(m.id, &dest).await.unwrap_err();
    assert!(err.to_string().contains("format_version 2"), "{err}");
    // latest() reports the damage instead of silently going back in time.
    assert_eq!(job.latest().await.unwrap_err().kind(), ErrorKind::Corrupt);
    assert!(leftovers(tmp.path()).is_empty());
}

#[tokio::test]
async fn large_files_go_multipart_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = fast_opts();
    opts.multipart_threshold = 1 << 20;
    opts.part_size = 5 << 20;
    for url in [
        "memory://multipart".to_string(),
        tmp.path().join("store").to_str().unwrap().to_string(),
    ] {
        let job = JobStore::open(&url, opts.clone()).await.unwrap();
        let w = job.claim_epoch().await.unwrap();
        let d = tmp.path().join(format!("src{}", url.len()));
        let files = make_dir(&d, &[7], 11 << 20, "big");
        let m = w
            .commit_checkpoint(&d, &files, meta(serde_json::json!(0)))
            .await
            .unwrap();
        assert!(m.uploaded_bytes >= 11 << 20);
        let dest = tmp.path().join(format!("dest{}", url.len()));
        job.restore(m.id, &dest).await.unwrap();
        assert_same_dir(&d, &dest);
        // Second commit of the same large file: nothing uploaded.
        let m2 = w
            .commit_checkpoint(&d, &files, meta(serde_json::json!(1)))
            .await
            .unwrap();
        assert!(m2.uploaded_bytes < 10_000, "{}", m2.uploaded_bytes);
    }
}

#[tokio::test]
async fn adopt_copies_into_the_new_job_and_never_touches_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (src_store, src_job, m) = committed(tmp.path()).await;
    let before = object_keys(&src_store).await;
    let (dst_store, dst_job) = memory_job(fast_opts());
    let w = dst_job.claim_epoch().await.unwrap();
    let adopted = w.adopt(&src_job, m.id, None).await.unwrap();
    assert_eq!(adopted.adopted_from.as_ref().unwrap().id, m.id);
    assert!(
        adopted.uploaded_bytes >= 40_000,
        "claim copies everything once"
    );
    assert_eq!(object_keys(&src_store).await, before);
    assert!(object_keys(&dst_store)
        .await
        .iter()
        .any(|k| k.contains("shared")));
    let dest = tmp.path().join("dest");
    dst_job.restore(adopted.id, &dest).await.unwrap();
    assert_same_dir(&tmp.path().join("src"), &dest);
    // The next checkpoint of the new job is incremental on the adopted files.
    let m2 = w
        .commit_checkpoint(
            &dest,
            &make_dir(&dest, &[1, 2], 20_000, "next"),
            meta(serde_json::json!(0)),
        )
        .await
        .unwrap();
    assert!(m2.uploaded_bytes < 5_000, "{}", m2.uploaded_bytes);
}
