//! A savepoint's (or job's) place in an object store: a folder, `file://`,
//! `s3://bucket/prefix` or `memory://name`, opened through
//! `checkpoint_store::open_store` with retries.

use super::error::{Result, SavepointError};
use super::meta::redact;
use checkpoint_store::object_store::{path::Path, ObjectStore, PutMode, PutOptions, PutPayload};
use checkpoint_store::{RetryConfig, RetryStore};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL as given, credentials removed: for messages and metadata.
    pub display: String,
    /// Set for local folders (so that empty directories can be tidied).
    pub local: Option<PathBuf>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

fn local_path(url: &str) -> Option<PathBuf> {
    if url.starts_with("memory://") || url.starts_with("s3://") {
        return None;
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    (!url.contains("://")).then(|| PathBuf::from(url))
}

impl Location {
    /// Opens `url`. With `must_exist`, a local folder that is not there is
    /// an error instead of being created (reading never creates folders).
    pub async fn open(url: &str, must_exist: bool) -> Result<Location> {
        let local = local_path(url);
        if let Some(p) = &local {
            if must_exist && !p.exists() {
                return Err(SavepointError::Missing {
                    location: url.to_string(),
                });
            }
            if p.exists() && !p.is_dir() {
                return Err(SavepointError::InvalidInput(format!(
                    "{url}: is a file, not a folder"
                )));
            }
        }
        let (store, prefix) = checkpoint_store::open_store(url)
            .await
            .map_err(|e| SavepointError::InvalidInput(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = Arc::new(RetryStore::new(store, quick_retry()));
        Ok(Location {
            store,
            prefix,
            display: redact(url),
            local,
        })
    }

    pub fn path(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.child(part);
        }
        p
    }

    pub fn describe(&self, rel: &str) -> String {
        format!("{}/{rel}", self.display.trim_end_matches('/'))
    }

    pub async fn get(&self, rel: &str) -> Result<bytes::Bytes> {
        let path = self.path(rel);
        let r = self.store.get(&path).await;
        let r = match r {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        r.map_err(|e| match e {
            checkpoint_store::object_store::Error::NotFound { .. } => SavepointError::corrupt(
                self.describe(rel),
                "file listed in the metadata is missing",
            ),
            e => SavepointError::store("get", self.describe(rel), e),
        })
    }

    /// `Some(bytes)` or `None` when absent.
    pub async fn get_opt(&self, rel: &str) -> Result<Option<bytes::Bytes>> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| SavepointError::store("get", self.describe(rel), e)),
            Err(checkpoint_store::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(SavepointError::store("get", self.describe(rel), e)),
        }
    }

    pub async fn exists(&self, rel: &str) -> Result<bool> {
        match self.store.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(checkpoint_store::object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(SavepointError::store("head", self.describe(rel), e)),
        }
    }

    /// Names directly under `rel/` that are folders.
    pub async fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let dir = self.path(rel);
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| SavepointError::store("list", self.describe(rel), e))?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Creates `rel` only if absent (`PutMode::Create`).
    pub async fn put_create(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(rel), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(checkpoint_store::object_store::Error::AlreadyExists { .. }) => {
                Err(SavepointError::TargetExists {
                    location: self.display.clone(),
                })
            }
            Err(e) => Err(SavepointError::store("put", self.describe(rel), e)),
        }
    }

    /// Streams a local file to `rel` (multipart when large).
    pub async fn upload(&self, local: &std::path::Path, rel: &str) -> Result<()> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(SavepointError::io(format!("opening {}", local.display())))?;
        let mut w = checkpoint_store::object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            self.path(rel),
            8 << 20,
        );
        let copied = tokio::io::copy(&mut file, &mut w).await;
        let closed = match copied {
            Ok(_) => w.shutdown().await,
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        };
        closed.map_err(|e| SavepointError::store("upload", self.describe(rel), e))
    }

    pub async fn delete(&self, rel: &str) {
        let _ = self.store.delete(&self.path(rel)).await;
    }

    /// Removes empty folders a failed write left in a local target.
    pub fn tidy_local(&self, rels: &[&str]) {
        if let Some(root) = &self.local {
            for rel in rels {
                let _ = std::fs::remove_dir(root.join(rel));
            }
        }
    }
}

/// Savepoint commands are interactive: a few quick retries, not minutes.
fn quick_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        ..RetryConfig::default()
    }
}
