//! The writer: claims an epoch (fencing older writers), uploads a local
//! checkpoint directory incrementally and commits its manifest.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path as FsPath;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::{PutMode, PutOptions, PutPayload};
use tokio::sync::Mutex;

use crate::error::{CheckpointError, ErrorKind};
use crate::gc::GcPolicy;
use crate::job::{JobStore, Slot};
use crate::manifest::{
    manifest_key, private_key, shared_key, validate_file_name, AdoptedFrom, Compression, Fence,
    FileKind, Manifest, ManifestFile, Record, FORMAT_VERSION,
};
use crate::retry::with_retry;
use crate::transfer::{self, FileVersion, LocalFolder};

/// A file of the local checkpoint directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Relative name: one path component.
    pub name: String,
    pub kind: FileKind,
}

impl LocalFile {
    pub fn shared(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: FileKind::Shared,
        }
    }

    pub fn private(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: FileKind::Private,
        }
    }
}

/// What the caller records with a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMeta {
    /// 0 lets the writer assign the next log id; otherwise it must equal
    /// [`Writer::next_id`].
    pub id: u64,
    pub parent: Option<u64>,
    /// Inclusive key-group range.
    pub key_group_range: (u16, u16),
    pub max_parallelism: u16,
    pub states: serde_json::Value,
    pub user: serde_json::Value,
}

/// Identifies a local file version without reading it: a hard link of the
/// same inode in the next local checkpoint has the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    name: String,
    version: FileVersion,
}

#[derive(Debug, Default)]
struct WriterState {
    next_id: u64,
    /// checksum -> (size, number of recent checkpoints referencing it).
    known: HashMap<String, (u64, usize)>,
    /// The last `retain` checkpoints' shared checksums, oldest first.
    recent: VecDeque<(u64, Vec<String>)>,
    hash_cache: HashMap<FileKey, String>,
    max_parallelism: Option<(u64, u16)>,
}

impl WriterState {
    fn remember(&mut self, id: u64, checksums: Vec<(String, u64)>, retain: usize) {
        let mut ids = Vec::with_capacity(checksums.len());
        for (c, size) in checksums {
            self.known.entry(c.clone()).or_insert((size, 0)).1 += 1;
            ids.push(c);
        }
        self.recent.push_back((id, ids));
        while self.recent.len() > retain {
            if let Some((_, old)) = self.recent.pop_front() {
                for c in old {
                    if let Some(entry) = self.known.get_mut(&c) {
                        entry.1 -= 1;
                        if entry.1 == 0 {
                            self.known.remove(&c);
                        }
                    }
                }
            }
        }
    }
}

/// The one writer of a job, holding an epoch.
#[derive(Debug)]
pub struct Writer {
    job: JobStore,
    epoch: u64,
    state: Mutex<WriterState>,
    /// Set on a bare local-folder store: shared files are copied by the
    /// kernel instead of being put through the `ObjectStore` API.
    local: Option<LocalFolder>,
}

/// Result of uploading one file.
struct Uploaded {
    file: ManifestFile,
    bytes_written: u64,
    cache: Option<(FileKey, String)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl JobStore {
    /// Claims the next epoch: appends a fence record to the log, so any older
    /// writer fails its next commit with [`ErrorKind::Fenced`].
    pub async fn claim_epoch(&self) -> Result<Writer, CheckpointError> {
        if self.opts.retain == 0 {
            return Err(CheckpointError::InvalidInput(
                "retain must be at least 1".into(),
            ));
        }
        loop {
            let ids = self.list_ids().await?;
            let mut top = None;
            for &id in ids.iter().rev() {
                match self.read_slot(id).await? {
                    Slot::Missing => continue,
                    Slot::Record(r) => {
                        top = Some((id, r.epoch()));
                        break;
                    }
                    // The epoch of the log head is unknown: claiming could
                    // reuse an epoch, so refuse.
                    Slot::Unreadable(e) => return Err(e),
                }
            }
            let (fence_id, epoch) = match top {
                Some((id, epoch)) => (id + 1, epoch + 1),
                None => (1, 1),
            };
            let fence = Record::Fence(Fence {
                format_version: FORMAT_VERSION,
                epoch,
                created_ms: now_ms(),
            });
            if self.create_record(fence_id, &fence).await? {
                let local =
                    LocalFolder::detect(&self.store, &self.prefix, &manifest_key(fence_id)).await;
                let writer = Writer {
                    job: self.clone(),
                    epoch,
                    state: Mutex::new(WriterState {
                        next_id: fence_id + 1,
                        ..Default::default()
                    }),
                    local,
                };
                writer.load_recent(&ids).await?;
                tracing::info!(epoch, fence_id, "claimed checkpoint epoch");
                return Ok(writer);
            }
            // Someone appended at fence_id concurrently: look again.
        }
    }

    /// Creates the record at `id`. Ok(false) if a different record is there;
    /// Ok(true) if ours is there (also after an ambiguous retried create).
    async fn create_record(&self, id: u64, record: &Record) -> Result<bool, CheckpointError> {
        let path = self.path(&manifest_key(id));
        let bytes = record.to_json();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes.clone()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self
                    .store
                    .get(&path)
                    .await
                    .map_err(|e| CheckpointError::store("get", &path, e))?
                    .bytes()
                    .await
                    .map_err(|e| CheckpointError::store("get", &path, e))?;
                Ok(existing.as_ref() == bytes.as_slice())
            }
            Err(e) => Err(CheckpointError::store("put", &path, e)),
        }
    }
}

impl Writer {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn job(&self) -> &JobStore {
        &self.job
    }

    /// The id the next commit will get (if no newer writer interferes).
    pub async fn next_id(&self) -> u64 {
        self.state.lock().await.next_id
    }

    /// Learns which shared objects the last `retain` checkpoints reference:
    /// only those are reused, because GC keeps exactly those.
    async fn load_recent(&self, ids: &[u64]) -> Result<(), CheckpointError> {
        let retain = self.job.opts.retain;
        let mut found: Vec<Manifest> = Vec::new();
        let mut counted = 0;
        for &id in ids.iter().rev() {
            if counted == retain {
                break;
            }
            match self.job.read_slot(id).await? {
                Slot::Record(r) => {
                    if let Record::Checkpoint(m) = *r {
                        counted += 1;
                        found.push(m);
                    }
                }
                Slot::Unreadable(_) => counted += 1,
                Slot::Missing => {}
            }
        }
        let mut state = self.state.lock().await;
        if let Some(latest) = found.first() {
            state.max_parallelism = Some((latest.id, latest.max_parallelism));
        }
        for m in found.into_iter().rev() {
            let shared = shared_checksums(&m);
            state.remember(m.id, shared, retain);
        }
        Ok(())
    }

    /// Uploads the files of `local_dir` not yet in the store and commits the
    /// checkpoint. On error nothing becomes visible; on `Fenced` stop writing.
    pub async fn commit_checkpoint(
        &self,
        local_dir: &FsPath,
        files: &[LocalFile],
        meta: CheckpointMeta,
    ) -> Result<Manifest, CheckpointError> {
        self.commit_inner(local_dir, files, meta, None, &[]).await
    }

    /// Like [`Writer::commit_checkpoint`], and the checkpoint also references
    /// `reused`: shared files that a retained checkpoint of this job already
    /// holds (taken from its manifest), so they need no local copy and are
    /// not uploaded again. A file no retained checkpoint holds is refused:
    /// GC may have deleted it.
    pub async fn commit_checkpoint_reusing(
        &self,
        local_dir: &FsPath,
        files: &[LocalFile],
        reused: &[ManifestFile],
        meta: CheckpointMeta,
    ) -> Result<Manifest, CheckpointError> {
        self.commit_inner(local_dir, files, meta, None, reused)
            .await
    }

    /// Fails fast (before uploading private files) if a newer writer already
    /// wrote at `id`.
    async fn check_slot_free(&self, id: u64) -> Result<(), CheckpointError> {
        match self.job.read_slot(id).await? {
            Slot::Record(r) if r.epoch() > self.epoch => Err(self.fenced(id, r.epoch())),
            _ => Ok(()),
        }
    }

    /// The create at `id` lost: fenced if a newer epoch wrote there; else it
    /// was an earlier commit of ours (ambiguous failure), move on.
    async fn slot_taken(&self, state: &mut WriterState, id: u64) -> Result<(), CheckpointError> {
        match self.job.read_slot(id).await? {
            Slot::Record(r) if r.epoch() > self.epoch => Err(self.fenced(id, r.epoch())),
            Slot::Unreadable(e) => Err(e),
            _ => {
                state.next_id = id + 1;
                Ok(())
            }
        }
    }

    fn fenced(&self, id: u64, by_epoch: u64) -> CheckpointError {
        tracing::warn!(epoch = self.epoch, by_epoch, id, "writer fenced");
        CheckpointError::Fenced {
            epoch: self.epoch,
            by_epoch,
            path: self.job.path(&manifest_key(id)).to_string(),
        }
    }

    fn after_commit(&self, state: &mut WriterState, manifest: &Manifest, shared: Vec<Uploaded>) {
        state.next_id = manifest.id + 1;
        state.max_parallelism = Some((manifest.id, manifest.max_parallelism));
        for u in shared {
            if let Some((key, checksum)) = u.cache {
                state.hash_cache.insert(key, checksum);
            }
        }
        // Forget cached hashes of files no longer in any local checkpoint is
        // not possible to know here; bound the cache instead.
        if state.hash_cache.len() > 1_000_000 {
            state.hash_cache.clear();
        }
        state.remember(
            manifest.id,
            shared_checksums(manifest),
            self.job.opts.retain,
        );
    }

    async fn gc_after_commit(&self) {
        if !self.job.opts.gc_after_commit {
            return;
        }
        let policy = GcPolicy::from_options(&self.job.opts);
        if let Err(e) = self.job.gc(&policy, false).await {
            tracing::warn!(error = %e, "gc after commit failed; will retry after the next commit");
        }
    }

    async fn upload_shared(
        &self,
        local_dir: &FsPath,
        files: &[LocalFile],
        state: &WriterState,
    ) -> Result<Vec<Uploaded>, CheckpointError> {
        let jobs = files.iter().filter(|f| f.kind == FileKind::Shared);
        futures::stream::iter(jobs)
            .map(|f| {
                let path = local_dir.join(&f.name);
                let name = f.name.clone();
                async move {
                    with_retry(
                        &self.job.opts.retry,
                        |e: &CheckpointError| e.kind() == ErrorKind::Retryable,
                        || self.upload_one_shared(&path, &name, state),
                    )
                    .await
                }
            })
            .buffer_unordered(self.job.opts.upload_parallelism.max(1))
            .try_collect()
            .await
    }

    async fn upload_one_shared(
        &self,
        path: &FsPath,
        name: &str,
        state: &WriterState,
    ) -> Result<Uploaded, CheckpointError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| CheckpointError::io("stat", path, e))?;
        let key = file_key(name, &meta);
        let size = meta.len();
        let cached = state.hash_cache.get(&key).cloned();
        let small = size <= self.job.opts.multipart_threshold;
        let mut bytes_written = 0;
        let (checksum, size) = match (cached, &self.local) {
            (Some(c), _) if state.known.contains_key(&c) => (c, size),
            (cached, Some(local)) => {
                let (c, size, written) = copy_local(local, path, &key, cached, state).await?;
                bytes_written = written;
                (c, size)
            }
            (Some(c), None) if !small => {
                bytes_written = self.put_large(path, &c).await?;
                (c, size)
            }
            (_, None) if small => {
                let bytes = transfer::read_file(path).await?;
                let checksum = transfer::hash_bytes(&bytes);
                let size = bytes.len() as u64;
                if !state.known.contains_key(&checksum) {
                    let loc = self.job.path(&shared_key(&checksum));
                    bytes_written = transfer::put_create(&self.job.store, &loc, bytes).await?;
                }
                (checksum, size)
            }
            _ => {
                let (checksum, size) = transfer::hash_file(path).await?;
                if !state.known.contains_key(&checksum) {
                    bytes_written = self.put_large(path, &checksum).await?;
                }
                (checksum, size)
            }
        };
        Ok(Uploaded {
            file: ManifestFile {
                name: name.to_string(),
                object: shared_key(&checksum),
                size,
                checksum: checksum.clone(),
                kind: FileKind::Shared,
                compression: Compression::None,
            },
            bytes_written,
            cache: Some((key, checksum)),
        })
    }

    async fn put_large(&self, path: &FsPath, checksum: &str) -> Result<u64, CheckpointError> {
        let loc = self.job.path(&shared_key(checksum));
        transfer::put_multipart_file(
            &self.job.store,
            &loc,
            path,
            checksum,
            self.job.opts.part_size,
        )
        .await
    }

    async fn upload_private(
        &self,
        local_dir: &FsPath,
        files: &[LocalFile],
        id: u64,
    ) -> Result<Vec<Uploaded>, CheckpointError> {
        let jobs = files.iter().filter(|f| f.kind == FileKind::Private);
        futures::stream::iter(jobs)
            .map(|f| {
                let path = local_dir.join(&f.name);
                async move {
                    with_retry(
                        &self.job.opts.retry,
                        |e: &CheckpointError| e.kind() == ErrorKind::Retryable,
                        || self.upload_one_private(&path, &f.name, id),
                    )
                    .await
                }
            })
            .buffer_unordered(self.job.opts.upload_parallelism.max(1))
            .try_collect()
            .await
    }

    async fn upload_one_private(
        &self,
        path: &FsPath,
        name: &str,
        id: u64,
    ) -> Result<Uploaded, CheckpointError> {
        let bytes = transfer::read_file(path).await?;
        let checksum = transfer::hash_bytes(&bytes);
        let level = self.job.opts.zstd_level;
        let raw = bytes.clone();
        let compressed = tokio::task::spawn_blocking(move || transfer::compress(&raw, level))
            .await
            .map_err(|e| CheckpointError::Task(e.to_string()))??;
        let object = private_key(id, name);
        let loc = self.job.path(&object);
        let written = compressed.len() as u64;
        // Overwrite: chk-<id>/ belongs to this writer until its manifest is
        // created (older epochs never write past the fence, see docs).
        self.job
            .store
            .put(&loc, PutPayload::from(compressed))
            .await
            .map_err(|e| CheckpointError::store("put", &loc, e))?;
        Ok(Uploaded {
            file: ManifestFile {
                name: name.to_string(),
                object,
                size: bytes.len() as u64,
                checksum,
                kind: FileKind::Private,
                compression: Compression::Zstd,
            },
            bytes_written: written,
            cache: None,
        })
    }

    /// Claim mode: takes checkpoint `id` of another job (`source`) into this
    /// job by copying its files into this job's store, and commits it here as
    /// a checkpoint. The source is never modified or deleted.
    pub async fn adopt(
        &self,
        source: &JobStore,
        id: u64,
        user: Option<serde_json::Value>,
    ) -> Result<Manifest, CheckpointError> {
        let src = source.manifest(id).await?;
        let staging =
            std::env::temp_dir().join(format!("ckpt-adopt-{:016x}", rand::random::<u64>()));
        let restore_dir = staging.join("files");
        let result = async {
            source.restore(id, &restore_dir).await?;
            let files: Vec<LocalFile> = src
                .files
                .iter()
                .map(|f| LocalFile {
                    name: f.name.clone(),
                    kind: f.kind,
                })
                .collect();
            let meta = CheckpointMeta {
                id: 0,
                parent: None,
                key_group_range: src.key_group_range,
                max_parallelism: src.max_parallelism,
                states: src.states.clone(),
                user: user.unwrap_or_else(|| src.user.clone()),
            };
            self.commit_inner(
                &restore_dir,
                &files,
                meta,
                Some(AdoptedFrom {
                    source: format!("{}/{}", source.store, source.prefix),
                    id,
                }),
                &[],
            )
            .await
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        result
    }

    async fn commit_inner(
        &self,
        local_dir: &FsPath,
        files: &[LocalFile],
        meta: CheckpointMeta,
        adopted: Option<AdoptedFrom>,
        reused: &[ManifestFile],
    ) -> Result<Manifest, CheckpointError> {
        let mut state = self.state.lock().await;
        check_names(
            files
                .iter()
                .map(|f| f.name.as_str())
                .chain(reused.iter().map(|f| f.name.as_str())),
        )?;
        let reused = check_reused(reused, &state)?;
        if let Some((id, mp)) = state.max_parallelism {
            if mp != meta.max_parallelism {
                return Err(CheckpointError::MaxParallelismMismatch {
                    given: meta.max_parallelism,
                    stored: mp,
                    id,
                });
            }
        }
        if meta.id != 0 && meta.id != state.next_id {
            return Err(CheckpointError::InvalidInput(format!(
                "checkpoint id {} is not the next log id {} of this writer",
                meta.id, state.next_id
            )));
        }
        let mut shared = self.upload_shared(local_dir, files, &state).await?;
        shared.extend(reused);
        loop {
            let id = state.next_id;
            self.check_slot_free(id).await?;
            let private = self.upload_private(local_dir, files, id).await?;
            let mut manifest = build_manifest(id, self.epoch, &meta, &shared, &private);
            manifest.adopted_from = adopted.clone();
            if self
                .job
                .create_record(id, &Record::Checkpoint(manifest.clone()))
                .await?
            {
                self.after_commit(&mut state, &manifest, shared);
                drop(state);
                self.gc_after_commit().await;
                return Ok(manifest);
            }
            self.slot_taken(&mut state, id).await?;
        }
    }
}

/// Every name of the checkpoint, local and reused, is a valid file name
/// and appears once.
fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), CheckpointError> {
    let mut seen = HashSet::new();
    for name in names {
        validate_file_name(name).map_err(|reason| {
            CheckpointError::InvalidInput(format!("file name `{name}`: {reason}"))
        })?;
        if !seen.insert(name) {
            return Err(CheckpointError::InvalidInput(format!(
                "file `{name}` listed twice"
            )));
        }
    }
    Ok(())
}

/// Reused files must be shared objects of a retained checkpoint.
fn check_reused(
    reused: &[ManifestFile],
    state: &WriterState,
) -> Result<Vec<Uploaded>, CheckpointError> {
    let mut out = Vec::with_capacity(reused.len());
    for f in reused {
        if f.kind != FileKind::Shared
            || f.object != shared_key(&f.checksum)
            || !state.known.contains_key(&f.checksum)
        {
            return Err(CheckpointError::InvalidInput(format!(
                "reused file `{}` ({}) is not a shared object of a retained checkpoint",
                f.name, f.object
            )));
        }
        out.push(Uploaded {
            file: f.clone(),
            bytes_written: 0,
            cache: None,
        });
    }
    Ok(out)
}

/// The local-folder path: hash (unless cached), then copy if no
/// retained checkpoint has the content. Returns (checksum, size, bytes
/// written).
async fn copy_local(
    local: &LocalFolder,
    path: &FsPath,
    key: &FileKey,
    cached: Option<String>,
    state: &WriterState,
) -> Result<(String, u64, u64), CheckpointError> {
    let (checksum, size) = match cached {
        Some(c) => (c, key.version.size),
        None => transfer::hash_file(path).await?,
    };
    if state.known.contains_key(&checksum) {
        return Ok((checksum, size, 0));
    }
    let dest = local.object_path(&shared_key(&checksum));
    let written = transfer::copy_create(path, dest, &checksum, &key.version).await?;
    Ok((checksum, size, written))
}

fn file_key(name: &str, meta: &std::fs::Metadata) -> FileKey {
    FileKey {
        name: name.to_string(),
        version: FileVersion::of(meta),
    }
}

fn shared_checksums(m: &Manifest) -> Vec<(String, u64)> {
    m.files
        .iter()
        .filter(|f| f.kind == FileKind::Shared)
        .map(|f| (f.checksum.clone(), f.size))
        .collect()
}

fn build_manifest(
    id: u64,
    epoch: u64,
    meta: &CheckpointMeta,
    shared: &[Uploaded],
    private: &[Uploaded],
) -> Manifest {
    let mut files: Vec<ManifestFile> = shared
        .iter()
        .chain(private)
        .map(|u| u.file.clone())
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let uploaded_bytes = shared.iter().chain(private).map(|u| u.bytes_written).sum();
    Manifest {
        format_version: FORMAT_VERSION,
        id,
        epoch,
        parent: meta.parent,
        created_ms: now_ms(),
        total_bytes: files.iter().map(|f| f.size).sum(),
        files,
        key_group_range: meta.key_group_range,
        max_parallelism: meta.max_parallelism,
        states: meta.states.clone(),
        user: meta.user.clone(),
        uploaded_bytes,
        adopted_from: None,
    }
}
