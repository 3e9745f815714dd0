//! Checkpoints of a [`StateStore`] to an object store, and restore.
//!
//! The operator-blocking part is short and independent of state size:
//! flush the memtables and hard-link the live files into a staging
//! directory (RocksDB's checkpoint). The upload of what is new runs on a
//! background runtime; the caller learns when checkpoint N is durable from
//! [`Checkpointer::try_completed`] / [`Checkpointer::wait_next`], which is
//! when a transactional sink may publish what it wrote before N.

use crate::error::{Result, StateError};
use crate::keygroup::KeyGroupRange;
use crate::options::StoreOptions;
use crate::store::StateStore;
use checkpoint_store::{
    CheckpointMeta, FileKind, JobStore, JobStoreOptions, LocalFile, Manifest, Writer,
};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Format version of the `states` document a checkpoint manifest carries.
pub const STATES_FORMAT_VERSION: u32 = 1;

/// Result of the synchronous part of a checkpoint.
#[derive(Debug, Clone)]
pub struct TriggeredCheckpoint {
    pub sequence: u64,
    /// How long the operator was blocked.
    pub sync_pause: Duration,
}

/// A checkpoint whose upload finished, successfully or not.
#[derive(Debug)]
pub struct CompletedCheckpoint {
    pub sequence: u64,
    pub sync_pause: Duration,
    pub upload_time: Duration,
    pub result: Result<Manifest>,
    /// Logical bytes of state written since the previous checkpoint.
    pub changed_bytes: u64,
}

/// Takes checkpoints of stores into one job's checkpoint log.
pub struct Checkpointer {
    runtime: Arc<tokio::runtime::Runtime>,
    job: JobStore,
    writer: Arc<Writer>,
    staging: PathBuf,
    next_sequence: u64,
    in_flight: usize,
    max_in_flight: usize,
    tx: mpsc::Sender<CompletedCheckpoint>,
    rx: mpsc::Receiver<CompletedCheckpoint>,
    /// `bytes_written` of the store at the previous trigger.
    written_at_last: u64,
    /// The last checkpoint committed to the job's log: the parent of the next.
    last_committed: Option<u64>,
}

/// A runtime for object-store I/O that does not compete with the operator
/// for more than a couple of threads.
pub fn io_runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("state-io")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(StateError::io("starting the I/O runtime"))
}

/// Opens the job store at `url` (a folder, `file://`, `s3://`, `memory://`).
pub fn open_job(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    opts: JobStoreOptions,
) -> Result<JobStore> {
    Ok(runtime.block_on(JobStore::open(url, opts))?)
}

impl Checkpointer {
    /// Claims a new epoch on the job's checkpoint log: from now on an older
    /// writer of the same job can no longer commit. `staging` is a local
    /// directory on the same filesystem as the store (hard links).
    pub fn start(
        runtime: Arc<tokio::runtime::Runtime>,
        job: JobStore,
        staging: impl Into<PathBuf>,
    ) -> Result<Self> {
        let staging = staging.into();
        std::fs::create_dir_all(&staging)
            .map_err(StateError::io(format!("creating {}", staging.display())))?;
        let last_committed = runtime.block_on(job.latest())?.map(|m| m.id);
        let writer = runtime.block_on(job.claim_epoch())?;
        let (tx, rx) = mpsc::channel();
        Ok(Checkpointer {
            runtime,
            job,
            writer: Arc::new(writer),
            staging,
            next_sequence: 1,
            in_flight: 0,
            max_in_flight: 1,
            tx,
            rx,
            written_at_last: 0,
            last_committed,
        })
    }

    pub fn job(&self) -> &JobStore {
        &self.job
    }

    pub fn epoch(&self) -> u64 {
        self.writer.epoch()
    }

    pub fn runtime(&self) -> &Arc<tokio::runtime::Runtime> {
        &self.runtime
    }

    /// The id the next committed checkpoint gets, unless another writer
    /// interferes (then this one is fenced) or an upload fails.
    pub fn next_checkpoint_id(&self) -> Result<u64> {
        Ok(self.runtime.block_on(self.writer.next_id()))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Takes the synchronous part of a checkpoint of `store` and starts its
    /// upload. `user` is the caller's metadata (source offsets, watermarks,
    /// sink transactions) committed atomically with the state. Returns `None`
    /// when the previous checkpoint is still uploading (try again later).
    pub fn trigger(
        &mut self,
        store: &StateStore,
        user: serde_json::Value,
    ) -> Result<Option<TriggeredCheckpoint>> {
        if self.in_flight >= self.max_in_flight {
            return Ok(None);
        }
        let started = Instant::now();
        let sequence = self.next_sequence;
        let dir = self
            .staging
            .join(format!("local-{}-{sequence}", self.writer.epoch()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(StateError::io(format!("clearing {}", dir.display())))?;
        }
        let files = store.local_checkpoint(&dir)?;
        let written = store.bytes_written();
        let changed_bytes = written.saturating_sub(self.written_at_last);
        self.written_at_last = written;
        let meta = CheckpointMeta {
            // The writer assigns the next id of the job's log.
            id: 0,
            parent: self.last_committed,
            key_group_range: (store.key_groups().start, store.key_groups().end),
            max_parallelism: store.max_parallelism(),
            states: {
                let mut doc = store.states_document();
                doc["changed_bytes"] = serde_json::json!(changed_bytes);
                doc
            },
            user,
        };
        let sync_pause = started.elapsed();
        self.next_sequence += 1;
        let writer = self.writer.clone();
        let tx = self.tx.clone();
        let runtime = self.runtime.clone();
        // A plain thread driving the upload with `block_on`: the upload future
        // borrows across its stages, which `spawn`'s 'static bound forbids.
        std::thread::Builder::new()
            .name(format!("checkpoint-{sequence}"))
            .spawn(move || {
                let upload_start = Instant::now();
                let result = runtime
                    .block_on(writer.commit_checkpoint(&dir, &files, meta))
                    .map_err(StateError::from);
                // The staging copy is only hard links; the store keeps its files.
                let _ = std::fs::remove_dir_all(&dir);
                let _ = tx.send(CompletedCheckpoint {
                    sequence,
                    sync_pause,
                    upload_time: upload_start.elapsed(),
                    result,
                    changed_bytes,
                });
            })
            .map_err(StateError::io("starting the upload thread"))?;
        self.in_flight += 1;
        Ok(Some(TriggeredCheckpoint {
            sequence,
            sync_pause,
        }))
    }

    /// Checkpoints that finished since the last call, without blocking.
    pub fn try_completed(&mut self) -> Vec<CompletedCheckpoint> {
        let done: Vec<_> = self.rx.try_iter().collect();
        self.in_flight -= done.len().min(self.in_flight);
        for d in &done {
            self.note_committed(d);
        }
        done
    }

    fn note_committed(&mut self, done: &CompletedCheckpoint) {
        if let Ok(m) = &done.result {
            self.last_committed = Some(m.id);
        }
    }

    /// Blocks until the next in-flight checkpoint finishes; `None` if none is.
    pub fn wait_next(&mut self) -> Option<CompletedCheckpoint> {
        if self.in_flight == 0 {
            return None;
        }
        let done = self.rx.recv().ok()?;
        self.in_flight -= 1;
        self.note_committed(&done);
        Some(done)
    }
}

impl StateStore {
    /// The synchronous part of a checkpoint: flush, then hard-link every
    /// live file into `dir` (which must not exist). Returns the files with
    /// how they are stored: SSTs are immutable and shared between
    /// checkpoints, the rest (MANIFEST, OPTIONS, CURRENT) is private.
    pub fn local_checkpoint(&self, dir: &Path) -> Result<Vec<LocalFile>> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.inner.db)
            .map_err(StateError::rocks("preparing checkpoint"))?;
        // `create_checkpoint` flushes first (log_size_for_flush = 0), which
        // the WAL-less write path needs.
        cp.create_checkpoint(dir)
            .map_err(StateError::rocks(format!(
                "checkpoint into {}",
                dir.display()
            )))?;
        list_checkpoint_files(dir)
    }

    /// The `states` document of a manifest: every state's descriptor and
    /// schema history, so metadata-only tools never open RocksDB.
    pub fn states_document(&self) -> serde_json::Value {
        serde_json::json!({
            "format_version": STATES_FORMAT_VERSION,
            "store_format_version": crate::store::STORE_FORMAT_VERSION,
            "states": self.states(),
        })
    }
}

fn list_checkpoint_files(dir: &Path) -> Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(StateError::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(StateError::io(format!("listing {}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".sst") || name.ends_with(".blob") {
            FileKind::Shared
        } else {
            FileKind::Private
        };
        files.push(LocalFile { name, kind });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads the state descriptors out of a manifest's `states` document.
pub fn states_from_manifest(manifest: &Manifest) -> Result<Vec<crate::descriptor::StateMeta>> {
    let states = manifest
        .states
        .get("states")
        .cloned()
        .ok_or_else(|| corrupt_manifest(manifest.id, "no 'states' list"))?;
    serde_json::from_value(states).map_err(|e| corrupt_manifest(manifest.id, &e.to_string()))
}

fn corrupt_manifest(id: u64, reason: &str) -> StateError {
    StateError::Corrupt {
        state: format!("checkpoint {id}"),
        what: "manifest states",
        reason: reason.to_string(),
    }
}

/// Restores checkpoint `id` (or the latest) of `job` into `local_dir` and
/// opens it with `opts`. Key groups outside `opts.key_groups` are dropped,
/// so an instance of a rescaled job keeps only its own. `local_dir` must not
/// exist or be empty; it is never left half-restored.
pub fn restore(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    id: Option<u64>,
    local_dir: &Path,
    opts: StoreOptions,
) -> Result<(StateStore, Manifest)> {
    let manifest = match id {
        Some(id) => runtime.block_on(job.manifest(id))?,
        None => runtime.block_on(job.latest())?.ok_or_else(|| {
            StateError::InvalidOption(format!("no complete checkpoint under {}", job.prefix()))
        })?,
    };
    if manifest.max_parallelism != opts.max_parallelism {
        return Err(StateError::MaxParallelismMismatch {
            path: local_dir.to_path_buf(),
            stored: manifest.max_parallelism,
            requested: opts.max_parallelism,
        });
    }
    let (start, end) = manifest.key_group_range;
    let held = KeyGroupRange::new(start, end)?;
    let wanted = opts.key_groups;
    if wanted.start < held.start || wanted.end > held.end {
        return Err(StateError::InvalidOption(format!(
            "checkpoint {} holds key groups {held}, cannot restore {wanted} from it alone",
            manifest.id
        )));
    }
    runtime.block_on(job.restore(manifest.id, local_dir))?;
    let store = StateStore::open(local_dir, opts)?;
    if wanted != held {
        store.retain_key_groups(wanted)?;
    }
    Ok((store, manifest))
}
