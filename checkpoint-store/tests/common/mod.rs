#![allow(dead_code)]
//! Test helpers: fake local checkpoint directories and fast options.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use checkpoint_store::object_store::memory::InMemory;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::ObjectStore;
use checkpoint_store::{CheckpointMeta, JobStore, JobStoreOptions, LocalFile, RetryConfig};

pub fn fast_opts() -> JobStoreOptions {
    JobStoreOptions {
        retry: RetryConfig {
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        gc_after_commit: false,
        fsync_restore: false,
        ..Default::default()
    }
}

pub fn memory_job(opts: JobStoreOptions) -> (Arc<dyn ObjectStore>, JobStore) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let job = JobStore::from_store(Arc::clone(&store), ObjPath::from("jobs/j1"), opts);
    (store, job)
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes shared files `<n>.sst` for each seed, and private CURRENT/MANIFEST.
pub fn make_dir(dir: &Path, seeds: &[u64], size: usize, tag: &str) -> Vec<LocalFile> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    for &s in seeds {
        let name = format!("{s:06}.sst");
        let p = dir.join(&name);
        if !p.exists() {
            std::fs::write(&p, bytes(s, size)).unwrap();
        }
        files.push(LocalFile::shared(name));
    }
    std::fs::write(dir.join("CURRENT"), format!("MANIFEST-{tag}\n")).unwrap();
    std::fs::write(
        dir.join("MANIFEST-000001"),
        format!("manifest of {tag} {seeds:?}").repeat(50),
    )
    .unwrap();
    files.push(LocalFile::private("CURRENT"));
    files.push(LocalFile::private("MANIFEST-000001"));
    files
}

pub fn meta(user: serde_json::Value) -> CheckpointMeta {
    CheckpointMeta {
        id: 0,
        parent: None,
        key_group_range: (0, 127),
        max_parallelism: 128,
        states: serde_json::json!({"counts": {"type": "value"}}),
        user,
    }
}

/// Asserts two directories hold the same files with the same bytes.
pub fn assert_same_dir(a: &Path, b: &Path) {
    let list = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(a), list(b));
    for name in list(a) {
        assert_eq!(
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
            "{name}"
        );
    }
}

/// Names in `parent` that look like restore leftovers.
pub fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".restoring-") || n.contains(".old-"))
        .collect()
}

pub async fn object_keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    use futures::TryStreamExt;
    let mut v: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}
