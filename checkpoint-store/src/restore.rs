//! Restore: download a checkpoint into a sibling temp directory, verify every
//! file, then rename it into place, so `local_dir` is never half-restored.

use std::path::{Path as FsPath, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

use crate::download::{self, Expected, Sink};
use crate::error::{CheckpointError, ErrorKind};
use crate::job::JobStore;
use crate::manifest::{Manifest, ManifestFile};
use crate::retry::with_retry;
use crate::transfer;

impl JobStore {
    /// Restores checkpoint `id` into `local_dir` (replacing it whole on
    /// success; untouched on failure). Files already in `local_dir` with the
    /// same size and checksum are reused instead of downloaded.
    pub async fn restore(&self, id: u64, local_dir: &FsPath) -> Result<Manifest, CheckpointError> {
        let manifest = self.manifest(id).await?;
        let (parent, base) = split(local_dir)?;
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| CheckpointError::io("create_dir", &parent, e))?;
        let tmp = parent.join(format!("{base}.restoring-{:016x}", rand::random::<u64>()));
        tokio::fs::create_dir(&tmp)
            .await
            .map_err(|e| CheckpointError::io("create_dir", &tmp, e))?;
        let fsync = self.opts.fsync_restore;
        let mut filled = self.fill(&manifest, local_dir, &tmp).await;
        if filled.is_ok() && fsync {
            filled = sync_dir(&tmp).await;
        }
        let swapped = match filled {
            Ok(()) => swap_into_place(&tmp, local_dir, &parent, &base).await,
            Err(e) => Err(e),
        };
        if let Err(e) = swapped {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
        if fsync {
            // Makes the rename durable: a crash now keeps the new directory.
            sync_dir(&parent).await?;
        }
        Ok(manifest)
    }

    async fn fill(
        &self,
        manifest: &Manifest,
        old_dir: &FsPath,
        tmp: &FsPath,
    ) -> Result<(), CheckpointError> {
        // After the first error no new file starts, but files in flight
        // run to the end: their blocking writes must not recreate files in
        // `tmp` while the caller removes it.
        let failed = AtomicBool::new(false);
        let failed = &failed;
        let results: Vec<Result<(), CheckpointError>> =
            futures::stream::iter(manifest.files.iter())
                .map(|f| async move {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let result = self.fill_one(manifest.id, f, old_dir, tmp).await;
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    result
                })
                .buffer_unordered(self.opts.download_parallelism.max(1))
                .collect()
                .await;
        results.into_iter().collect()
    }

    async fn fill_one(
        &self,
        id: u64,
        f: &ManifestFile,
        old_dir: &FsPath,
        tmp: &FsPath,
    ) -> Result<(), CheckpointError> {
        let dest = tmp.join(&f.name);
        if reuse_local(&old_dir.join(&f.name), &dest, f).await? {
            return Ok(());
        }
        with_retry(
            &self.opts.retry,
            |e: &CheckpointError| e.kind() == ErrorKind::Retryable,
            || self.download_file(id, f, &dest),
        )
        .await
    }

    /// Downloads one file of checkpoint `id` into `dest`, verifying its
    /// size and checksum, with the job's retries and `fsync_restore`: for a
    /// caller that consumes a checkpoint's files as they arrive (state-core
    /// ingests sorted runs in order while later ones download).
    pub async fn fetch_file(
        &self,
        id: u64,
        f: &ManifestFile,
        dest: &FsPath,
    ) -> Result<(), CheckpointError> {
        with_retry(
            &self.opts.retry,
            |e: &CheckpointError| e.kind() == ErrorKind::Retryable,
            || self.download_file(id, f, dest),
        )
        .await
    }

    async fn download_file(
        &self,
        id: u64,
        f: &ManifestFile,
        dest: &FsPath,
    ) -> Result<(), CheckpointError> {
        let expected = Expected {
            id,
            name: f.name.clone(),
            size: f.size,
            checksum: f.checksum.clone(),
            compression: f.compression,
        };
        let sink = Sink {
            fsync: self.opts.fsync_restore,
            link_local: self.opts.link_local_objects,
        };
        let location = self.path(&f.object);
        download::download(&self.store, &location, dest, &expected, sink).await
    }
}

fn split(local_dir: &FsPath) -> Result<(PathBuf, String), CheckpointError> {
    let base = local_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            CheckpointError::InvalidInput(format!(
                "restore target {} has no file name",
                local_dir.display()
            ))
        })?
        .to_string();
    let parent = match local_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, base))
}

/// Hard-links (or copies) an existing local file with the right size and
/// checksum. Ok(false) if there is none.
async fn reuse_local(
    existing: &FsPath,
    dest: &FsPath,
    f: &ManifestFile,
) -> Result<bool, CheckpointError> {
    match tokio::fs::metadata(existing).await {
        Ok(m) if m.is_file() && m.len() == f.size => {}
        _ => return Ok(false),
    }
    let (checksum, size) = match transfer::hash_file(existing).await {
        Ok(v) => v,
        Err(_) => return Ok(false),
    };
    if size != f.size || checksum != f.checksum {
        return Ok(false);
    }
    if tokio::fs::hard_link(existing, dest).await.is_err() {
        tokio::fs::copy(existing, dest)
            .await
            .map_err(|e| CheckpointError::io("copy", dest, e))?;
    }
    Ok(true)
}

/// Replaces `local_dir` by `tmp`: the old directory is moved aside first, so
/// at every instant `local_dir` is absent, the old whole or the new whole.
async fn swap_into_place(
    tmp: &FsPath,
    local_dir: &FsPath,
    parent: &FsPath,
    base: &str,
) -> Result<(), CheckpointError> {
    let old = parent.join(format!("{base}.old-{:016x}", rand::random::<u64>()));
    let had_old = match tokio::fs::rename(local_dir, &old).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(CheckpointError::io("rename", local_dir, e)),
    };
    if let Err(e) = tokio::fs::rename(tmp, local_dir).await {
        if had_old {
            let _ = tokio::fs::rename(&old, local_dir).await;
        }
        return Err(CheckpointError::io("rename", tmp, e));
    }
    if had_old {
        if let Err(e) = tokio::fs::remove_dir_all(&old).await {
            tracing::warn!(path = %old.display(), error = %e, "could not remove the replaced directory");
        }
    }
    Ok(())
}

/// fsyncs a directory, making the names in it durable.
async fn sync_dir(dir: &FsPath) -> Result<(), CheckpointError> {
    let path = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&path)?.sync_all())
        .await
        .map_err(|e| CheckpointError::Task(format!("fsync task: {e}")))?
        .map_err(|e| CheckpointError::io("fsync", dir, e))
}
