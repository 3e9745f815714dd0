//! A job's root in a store: reading the checkpoint log.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::CheckpointError;
use crate::manifest::{abs, chk_dir, manifest_key, parse_chk_dir, Manifest, Record};
use crate::retry::{RetryConfig, RetryStore};

/// Tuning of a job store.
#[derive(Debug, Clone)]
pub struct JobStoreOptions {
    /// Checkpoints kept by retention (at least 1).
    pub retain: usize,
    /// Files uploaded at once.
    pub upload_parallelism: usize,
    /// Files downloaded at once on restore.
    pub download_parallelism: usize,
    /// Shared files larger than this use a multipart upload, streamed from disk.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (S3 needs at least 5 MiB).
    pub part_size: usize,
    pub retry: RetryConfig,
    /// Unreferenced objects and incomplete checkpoint directories younger
    /// than this are left alone; must exceed the longest checkpoint upload.
    pub gc_grace: Duration,
    /// Run GC after each successful commit.
    pub gc_after_commit: bool,
    /// zstd level of private files.
    pub zstd_level: i32,
    /// Make a restore durable: `sync_data` of every restored file and an
    /// fsync of the new directory before it is renamed into place, and of
    /// its parent after.
    pub fsync_restore: bool,
    /// On a local-folder store, restore files as hard links to the stored
    /// objects instead of copies (no data copied; checksums are still
    /// verified). Only safe if restored files are never modified in place
    /// (RocksDB never modifies an SST, it only deletes it): a write into a
    /// restored file would change the stored object. Falls back to a copy
    /// across file systems. Off by default.
    pub link_local_objects: bool,
}

impl Default for JobStoreOptions {
    fn default() -> Self {
        Self {
            retain: 3,
            upload_parallelism: 8,
            download_parallelism: 8,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            retry: RetryConfig::default(),
            gc_grace: Duration::from_secs(3600),
            gc_after_commit: true,
            zstd_level: 3,
            fsync_restore: true,
            link_local_objects: false,
        }
    }
}

/// State of one `chk-<N>` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    Complete,
    /// A fence record written by `claim_epoch`.
    Fence,
    /// Files but no `_manifest`: a failed, abandoned or in-flight checkpoint.
    Incomplete,
    /// The `_manifest` exists but cannot be read or parsed.
    Unreadable(String),
}

/// One entry of [`JobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub id: u64,
    pub status: CheckpointStatus,
    pub epoch: Option<u64>,
    pub parent: Option<u64>,
    /// From the manifest, or the newest object of an incomplete directory.
    pub created_ms: u64,
    pub total_bytes: u64,
    pub uploaded_bytes: u64,
}

/// A job's root: `<prefix>/checkpoints/...`, `<prefix>/savepoints/...`.
#[derive(Debug, Clone)]
pub struct JobStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    pub(crate) opts: Arc<JobStoreOptions>,
}

/// What reading `chk-<N>/_manifest` gave.
#[derive(Debug)]
pub(crate) enum Slot {
    Missing,
    Record(Box<Record>),
    Unreadable(CheckpointError),
}

impl JobStore {
    /// Opens the job at `url` (see [`crate::open_store`]).
    pub async fn open(url: &str, opts: JobStoreOptions) -> Result<JobStore, CheckpointError> {
        let (store, prefix) = crate::open::open_store(url).await?;
        Ok(Self::from_store(store, prefix, opts))
    }

    /// Wraps an existing store (tests, fault injection, metrics). Requests
    /// are retried per `opts.retry`.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        opts: JobStoreOptions,
    ) -> JobStore {
        let store: Arc<dyn ObjectStore> = Arc::new(RetryStore::new(store, opts.retry.clone()));
        JobStore {
            store,
            prefix,
            opts: Arc::new(opts),
        }
    }

    /// The same job with other options (a restore that syncs nothing
    /// itself, a GC with another grace period).
    pub fn with_options(&self, opts: JobStoreOptions) -> JobStore {
        JobStore {
            store: self.store.clone(),
            prefix: self.prefix.clone(),
            opts: Arc::new(opts),
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    pub fn options(&self) -> &JobStoreOptions {
        &self.opts
    }

    pub(crate) fn path(&self, key: &str) -> Path {
        abs(&self.prefix, key)
    }

    /// Ids of all `chk-<N>` directories, ascending.
    pub(crate) async fn list_ids(&self) -> Result<Vec<u64>, CheckpointError> {
        let dir = self.path("checkpoints");
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| CheckpointError::store("list", &dir, e))?;
        let mut ids: Vec<u64> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(parse_chk_dir))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Reads the log record at `id`; only store failures other than
    /// NotFound are errors, a damaged record is `Slot::Unreadable`.
    pub(crate) async fn read_slot(&self, id: u64) -> Result<Slot, CheckpointError> {
        let path = self.path(&manifest_key(id));
        let bytes = match self.store.get(&path).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => Ok(match Record::parse(&bytes, path.as_ref(), id) {
                Ok(r) => Slot::Record(Box::new(r)),
                Err(e) => Slot::Unreadable(e),
            }),
            Err(object_store::Error::NotFound { .. }) => Ok(Slot::Missing),
            Err(e) => Err(CheckpointError::store("get", &path, e)),
        }
    }

    /// Reads many slots with bounded parallelism, in id order.
    pub(crate) async fn read_slots(
        &self,
        ids: &[u64],
    ) -> Result<Vec<(u64, Slot)>, CheckpointError> {
        futures::stream::iter(ids.iter().copied())
            .map(|id| async move { self.read_slot(id).await.map(|s| (id, s)) })
            .buffered(self.opts.download_parallelism.max(1))
            .try_collect()
            .await
    }

    /// All checkpoint directories, with fences and incomplete ones flagged.
    pub async fn list(&self) -> Result<Vec<CheckpointInfo>, CheckpointError> {
        let ids = self.list_ids().await?;
        let slots = self.read_slots(&ids).await?;
        let mut out = Vec::with_capacity(slots.len());
        for (id, slot) in slots {
            let info = match slot {
                Slot::Record(r) => match *r {
                    Record::Checkpoint(m) => CheckpointInfo {
                        id,
                        status: CheckpointStatus::Complete,
                        epoch: Some(m.epoch),
                        parent: m.parent,
                        created_ms: m.created_ms,
                        total_bytes: m.total_bytes,
                        uploaded_bytes: m.uploaded_bytes,
                    },
                    Record::Fence(f) => CheckpointInfo {
                        id,
                        status: CheckpointStatus::Fence,
                        epoch: Some(f.epoch),
                        parent: None,
                        created_ms: f.created_ms,
                        total_bytes: 0,
                        uploaded_bytes: 0,
                    },
                },
                Slot::Missing => match self.incomplete_info(id).await? {
                    Some(info) => info,
                    // An empty directory a local folder keeps after retention
                    // deleted its objects: nothing to show or to collect.
                    None => continue,
                },
                Slot::Unreadable(e) => CheckpointInfo {
                    id,
                    status: CheckpointStatus::Unreadable(e.to_string()),
                    epoch: None,
                    parent: None,
                    created_ms: 0,
                    total_bytes: 0,
                    uploaded_bytes: 0,
                },
            };
            out.push(info);
        }
        Ok(out)
    }

    async fn incomplete_info(&self, id: u64) -> Result<Option<CheckpointInfo>, CheckpointError> {
        let objects = self.list_dir(id).await?;
        if objects.is_empty() {
            return Ok(None);
        }
        let bytes = objects.iter().map(|o| o.size).sum();
        let newest = objects
            .iter()
            .map(|o| o.last_modified.timestamp_millis().max(0) as u64)
            .max()
            .unwrap_or(0);
        Ok(Some(CheckpointInfo {
            id,
            status: CheckpointStatus::Incomplete,
            epoch: None,
            parent: None,
            created_ms: newest,
            total_bytes: bytes,
            uploaded_bytes: bytes,
        }))
    }

    /// Every object under `chk-<id>/`.
    pub(crate) async fn list_dir(
        &self,
        id: u64,
    ) -> Result<Vec<object_store::ObjectMeta>, CheckpointError> {
        let dir = self.path(&chk_dir(id));
        self.store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| CheckpointError::store("list", &dir, e))
    }

    /// The newest complete checkpoint, if any. A damaged newest manifest is
    /// an error rather than a silent fallback to an older checkpoint.
    pub async fn latest(&self) -> Result<Option<Manifest>, CheckpointError> {
        let ids = self.list_ids().await?;
        for id in ids.into_iter().rev() {
            match self.read_slot(id).await? {
                Slot::Record(r) => {
                    if let Record::Checkpoint(m) = *r {
                        return Ok(Some(m));
                    }
                }
                Slot::Missing => {}
                Slot::Unreadable(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The manifest of checkpoint `id`, validated.
    pub async fn manifest(&self, id: u64) -> Result<Manifest, CheckpointError> {
        match self.read_slot(id).await? {
            Slot::Record(r) => match *r {
                Record::Checkpoint(m) => Ok(m),
                Record::Fence(f) => Err(CheckpointError::NotACheckpoint {
                    path: self.path(&manifest_key(id)).to_string(),
                    epoch: f.epoch,
                }),
            },
            Slot::Missing => Err(CheckpointError::CheckpointNotFound {
                id,
                prefix: self.prefix.to_string(),
            }),
            Slot::Unreadable(e) => Err(e),
        }
    }
}
