//! Against a real S3-compatible server (moto_server in CI): S3_TEST_ENDPOINT,
//! e.g. http://127.0.0.1:5000. Skipped (with a message) when unset.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use checkpoint_store::fault::{Action, Fault, FaultStore, Op};
use checkpoint_store::object_store::aws::AmazonS3Builder;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use checkpoint_store::{ErrorKind, GcPolicy, JobStore};
use common::*;

fn endpoint() -> Option<String> {
    match std::env::var("S3_TEST_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e.trim_end_matches('/').to_string()),
        _ => {
            println!("skipped: S3_TEST_ENDPOINT unset");
            None
        }
    }
}

/// Creates a bucket with a plain `PUT /<bucket>` (moto accepts it unsigned).
fn create_bucket(endpoint: &str, name: &str) {
    let hostport = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).expect("connect to S3_TEST_ENDPOINT");
    write!(s, "PUT /{name} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "create bucket: {resp}"
    );
}

fn unique_bucket(tag: &str) -> String {
    format!("ckpt-{tag}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ std::process::id().rotate_left(16)).wrapping_mul(2654435761)
}

fn s3_store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Arc::new(
        AmazonS3Builder::from_env()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_region(env("AWS_REGION", "us-east-1"))
            .with_access_key_id(env("AWS_ACCESS_KEY_ID", "test"))
            .with_secret_access_key(env("AWS_SECRET_ACCESS_KEY", "test"))
            .with_bucket_name(bucket)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn server_refuses_second_conditional_create() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique_bucket("cond");
    create_bucket(&ep, &bucket);
    let store = s3_store(&ep, &bucket);
    let path = ObjPath::from("checkpoints/chk-1/_manifest");
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(&path, PutPayload::from_static(b"first"), create.clone())
        .await
        .unwrap();
    let err = store
        .put_opts(&path, PutPayload::from_static(b"second"), create)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            checkpoint_store::object_store::Error::AlreadyExists { .. }
        ),
        "{err}"
    );
    let kept = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&kept[..], b"first");
}

#[tokio::test]
async fn commit_restore_fence_and_gc_on_s3() {
    let Some(ep) = endpoint() else { return };
    let bucket = unique_bucket("job");
    create_bucket(&ep, &bucket);
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = fast_opts();
    opts.multipart_threshold = 1 << 20;
    let job = JobStore::from_store(
        s3_store(&ep, &bucket),
        ObjPath::from("jobs/a"),
        opts.clone(),
    );
    let old = job.claim_epoch().await.unwrap();
    let d1 = tmp.path().join("c1");
    let f1 = make_dir(&d1, &[1, 2, 3], 40_000, "1");
    let m1 = old
        .commit_checkpoint(&d1, &f1, meta(serde_json::json!(1)))
        .await
        .unwrap();

    // A second writer claims; the server's conditional create fences the first.
    let _second = job.claim_epoch().await.unwrap();
    let err = old
        .commit_checkpoint(&d1, &f1, meta(serde_json::json!("zombie")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");

    // Same again, but the zombie's look-before-write sees a stale "not
    // found": only the server's If-None-Match refusal can stop it now.
    let fault = FaultStore::new(s3_store(&ep, &bucket));
    let zombie_job = JobStore::from_store(
        Arc::new(fault.clone()),
        ObjPath::from("jobs/a"),
        opts.clone(),
    );
    let zombie = zombie_job.claim_epoch().await.unwrap();
    let _newest = job.claim_epoch().await.unwrap();
    let slot = format!("chk-{}/_manifest", zombie.next_id().await);
    fault.add(Fault::new(Op::Get, &slot, Some(1), Action::NotFound));
    let err = zombie
        .commit_checkpoint(&d1, &f1, meta(serde_json::json!("zombie")))
        .await
        .unwrap_err();
    assert_eq!(fault.injected(), 1);
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    let new = job.claim_epoch().await.unwrap();

    // Incremental on S3, including a multipart (6 MiB) file.
    let d2 = tmp.path().join("c2");
    let mut f2 = make_dir(&d2, &[1, 2, 3, 4], 40_000, "2");
    f2.extend(
        make_dir(&d2, &[50], 6 << 20, "2")
            .into_iter()
            .filter(|f| f.name.ends_with(".sst")),
    );
    let m2 = new
        .commit_checkpoint(&d2, &f2, meta(serde_json::json!(2)))
        .await
        .unwrap();
    assert!(
        m2.uploaded_bytes >= (6 << 20) + 40_000 && m2.uploaded_bytes < (6 << 20) + 50_000,
        "{}",
        m2.uploaded_bytes
    );
    let dest = tmp.path().join("r2");
    job.restore(m2.id, &dest).await.unwrap();
    assert_same_dir(&d2, &dest);

    let d3 = tmp.path().join("c3");
    let f3 = make_dir(&d3, &[4, 5], 40_000, "3");
    let m3 = new
        .commit_checkpoint(&d3, &f3, meta(serde_json::json!(3)))
        .await
        .unwrap();
    let report = job
        .gc(
            &GcPolicy {
                retain: 1,
                grace: std::time::Duration::ZERO,
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(report.retained, vec![m3.id]);
    assert!(report.expired_checkpoints.contains(&m1.id));
    assert_eq!(report.shared.len(), 4, "{report:?}"); // seeds 1, 2, 3, 50
    let dest = tmp.path().join("r3");
    job.restore(m3.id, &dest).await.unwrap();
    assert_same_dir(&d3, &dest);
    assert_eq!(job.latest().await.unwrap().unwrap().id, m3.id);
}

#[tokio::test]
async fn open_by_s3_url_uses_environment() {
    let Some(ep) = endpoint() else { return };
    if std::env::var("AWS_ENDPOINT_URL")
        .map(|v| v.trim_end_matches('/') != ep)
        .unwrap_or(true)
    {
        println!("skipped: AWS_ENDPOINT_URL does not point at S3_TEST_ENDPOINT");
        return;
    }
    let bucket = unique_bucket("url");
    create_bucket(&ep, &bucket);
    let job = JobStore::open(&format!("s3://{bucket}/some/prefix"), fast_opts())
        .await
        .unwrap();
    assert_eq!(job.prefix().as_ref(), "some/prefix");
    let w = job.claim_epoch().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    let m = w
        .commit_checkpoint(
            &d,
            &make_dir(&d, &[1], 1000, "u"),
            meta(serde_json::json!(0)),
        )
        .await
        .unwrap();
    assert_eq!(job.latest().await.unwrap().unwrap(), m);
}
