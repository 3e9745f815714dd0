//! Store URLs: a plain path or `file://` (local folder), `s3://bucket/prefix`,
//! `memory://name` (process-wide in-memory stores for tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::StoreError;

/// Opens the store named by `url` and returns it with the job prefix inside it.
///
/// S3 credentials and endpoint come only from the `AWS_*` environment
/// variables; a URL carrying user info is refused (it would end up in logs).
pub async fn open_store(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), StoreError> {
    if let Some(name) = url.strip_prefix("memory://") {
        return Ok((memory_store(name), Path::default()));
    }
    if url.starts_with("s3://") {
        return open_s3(url);
    }
    let dir = if url.starts_with("file://") {
        let parsed = url::Url::parse(url).map_err(|e| invalid(url, e.to_string()))?;
        parsed
            .to_file_path()
            .map_err(|()| invalid(url, "not a local absolute path".into()))?
    } else if url.contains("://") {
        return Err(invalid(
            url,
            "unsupported scheme (use a path, file://, s3:// or memory://)".into(),
        ));
    } else {
        std::path::PathBuf::from(url)
    };
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|source| StoreError::Configure {
        url: url.to_string(),
        source,
    })?;
    Ok((Arc::new(store), Path::default()))
}

fn open_s3(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), StoreError> {
    let parsed = url::Url::parse(url).map_err(|e| invalid(&redact(url), e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            &redact(url),
            "credentials in the URL are refused; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                .into(),
        ));
    }
    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid(url, "missing bucket".into()))?;
    let prefix = Path::parse(parsed.path().trim_matches('/'))
        .map_err(|e| invalid(url, format!("bad prefix: {e}")))?;
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|source| StoreError::Configure {
            url: url.to_string(),
            source,
        })?;
    Ok((Arc::new(store), prefix))
}

/// The same `memory://name` yields the same store within a process, so a
/// test can "restart" a job on the store it wrote.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    // A poisoned lock only means another test panicked; the map is still valid.
    let mut map = stores.lock().unwrap_or_else(|p| p.into_inner());
    let store = map
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()));
    Arc::clone(store) as Arc<dyn ObjectStore>
}

fn invalid(url: &str, reason: String) -> StoreError {
    StoreError::InvalidUrl {
        url: redact(url),
        reason,
    }
}

/// Drops any `user:password@` part so that it cannot reach an error message.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_user_info() {
        assert_eq!(redact("s3://AKIA:secret@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redact("s3://bucket/p@x"), "s3://bucket/p@x");
    }

    #[tokio::test]
    async fn credentials_in_url_are_refused_and_not_echoed() {
        let err = open_store("s3://AKIA:topsecret@bucket/p")
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(!text.contains("topsecret"), "{text}");
        assert!(!text.contains("AKIA"), "{text}");
    }

    #[tokio::test]
    async fn memory_name_is_shared_within_process() {
        let (a, _) = open_store("memory://open-test").await.unwrap();
        a.put(&Path::from("x"), "1".into()).await.unwrap();
        let (b, _) = open_store("memory://open-test").await.unwrap();
        assert!(b.head(&Path::from("x")).await.is_ok());
        let (c, _) = open_store("memory://other").await.unwrap();
        assert!(c.head(&Path::from("x")).await.is_err());
    }

    #[tokio::test]
    async fn plain_path_creates_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        open_store(sub.to_str().unwrap()).await.unwrap();
        assert!(sub.is_dir());
        let url = format!("file://{}", dir.path().join("c").display());
        open_store(&url).await.unwrap();
        assert!(dir.path().join("c").is_dir());
        assert!(open_store("ftp://x").await.is_err());
    }
}
