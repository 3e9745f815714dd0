//! Checkpoints of a [`StateStore`] to an object store, and restore.
//!
//! The operator-blocking part is short and independent of state size:
//! flush the memtables and hard-link the live files into a staging
//! directory (RocksDB's checkpoint). The upload of what is new runs on a
//! background runtime; the caller learns when checkpoint N is durable from
//! [`Checkpointer::try_completed`] / [`Checkpointer::wait_next`], which is
//! when a transactional sink may publish what it wrote before N.

use crate::bucket::BucketCut;
use crate::checkpoint_buckets::{
    buckets_of, link_runs, materialize_runs, restore_runs as restore_bucket_runs, RestoredRuns,
    BUCKETS_KEY,
};
use crate::error::{Result, StateError};
use crate::keygroup::KeyGroupRange;
use crate::options::StoreOptions;
use crate::runs::{
    ingest_runs, is_segment_file, layout_of, live_runs, seal_delta, write_slice, FileNamer,
    OwnedSnapshot, Pos, Run, RunKind, RunLayout, Sealer, RUNS_LAYOUT_VERSION,
};
use crate::store::StateStore;
use checkpoint_store::{
    CheckpointMeta, FileKind, JobStore, JobStoreOptions, LocalFile, Manifest, ManifestFile, Writer,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
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
    /// From the end of the pause to the commit (or failure).
    pub upload_time: Duration,
    /// Part of `upload_time` spent writing the checkpoint's files locally
    /// before uploading them (layout v2: sealing the change log and writing
    /// a slice; v1: none).
    pub prepare_time: Duration,
    pub result: Result<Manifest>,
    /// Logical bytes of state written since the previous checkpoint.
    pub changed_bytes: u64,
}

/// How a checkpoint lays the state out in the object store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CheckpointLayout {
    /// v1: a RocksDB checkpoint (flush in the pause, then the live SST
    /// files). Uploads follow the local compactions.
    Files,
    /// v2: sorted runs written from the change log and from a snapshot
    /// (`docs/checkpoint-runs.md`): no flush in the pause, and uploads
    /// proportional to the changes.
    Runs(RunOptions),
}

/// Tuning of layout v2 checkpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOptions {
    /// Each checkpoint uploads about this many times the bytes written since
    /// the previous one: the changes, plus a slice of the state that retires
    /// older changes. Higher: more upload, fewer runs for a restore to read.
    pub upload_ratio: f64,
    /// A slice starts a new file past this size.
    pub slice_file_bytes: u64,
    /// Bound on what a restore reads, in multiples of the state: once the
    /// live deltas exceed `restore_read_limit − 1` times the state, a
    /// checkpoint's slice runs to the end of the key space (an upload of up
    /// to the whole state) so that older deltas retire. Without it a state
    /// that grows ahead of the sweep would never be lapped.
    pub restore_read_limit: f64,
    /// Past this many bytes of writes since the last barrier, the change log
    /// is handed to a background thread that seals it into a run: the
    /// memory the log holds stays near two segments. 0: never.
    pub log_spill_bytes: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            upload_ratio: 1.4,
            slice_file_bytes: 64 << 20,
            restore_read_limit: 3.5,
            log_spill_bytes: 16 << 20,
        }
    }
}

impl Default for CheckpointLayout {
    fn default() -> Self {
        CheckpointLayout::Runs(RunOptions::default())
    }
}

/// Runs committed and runs written locally but not yet committed.
struct RunState {
    dir: PathBuf,
    committed: Vec<Run>,
    /// Manifest entries of the committed runs' files, by file name.
    committed_files: HashMap<String, ManifestFile>,
    /// Runs of checkpoints whose commit failed: their files stay local and
    /// go with the next checkpoint, which must include their changes.
    pending: Vec<Run>,
    cursor: Pos,
    /// A change log was lost (an error while sealing it): the next
    /// checkpoint writes the whole state.
    needs_base: bool,
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
    layout: CheckpointLayout,
    /// Identifies this checkpointer's cuts of a store's change log.
    owner: u64,
    runs: Arc<Mutex<RunState>>,
    /// The store whose changes this checkpointer captures (stopped on drop).
    captured: Option<StateStore>,
    /// Seals the change log's segments between barriers (layout v2).
    sealer: Option<Arc<Sealer>>,
    /// Added to sequence numbers to make run barriers: runs continued
    /// from a restored checkpoint keep theirs, and newer ones must be larger.
    barrier_offset: u64,
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
        remove_stale_runs(&staging, writer.epoch());
        let runs = RunState {
            dir: staging.join(format!("runs-{}", writer.epoch())),
            committed: Vec::new(),
            committed_files: HashMap::new(),
            pending: Vec::new(),
            cursor: Pos::start(),
            needs_base: true,
        };
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
            layout: CheckpointLayout::default(),
            owner: rand::random::<u64>() | 1,
            runs: Arc::new(Mutex::new(runs)),
            captured: None,
            sealer: None,
            barrier_offset: 0,
        })
    }

    /// Chooses the layout of the checkpoints to come (default: runs).
    pub fn with_layout(mut self, layout: CheckpointLayout) -> Self {
        self.layout = layout;
        self
    }

    pub fn layout(&self) -> CheckpointLayout {
        self.layout
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
        self.trigger_with(store, user, &mut Vec::new())
    }

    /// [`Self::trigger`] with the barrier's cuts of bucketed states (see
    /// [`crate::bucket`]): their runs are written, if not yet, and uploaded
    /// with the checkpoint, each once over the checkpoints that hold it.
    /// The cuts are taken only when the checkpoint starts (not on `None`).
    pub fn trigger_with(
        &mut self,
        store: &StateStore,
        user: serde_json::Value,
        buckets: &mut Vec<BucketCut>,
    ) -> Result<Option<TriggeredCheckpoint>> {
        if self.in_flight >= self.max_in_flight {
            return Ok(None);
        }
        let buckets = std::mem::take(buckets);
        if let CheckpointLayout::Runs(opts) = self.layout {
            return self.trigger_runs(store, user, opts, buckets).map(Some);
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
        let (mut meta, changed_bytes) = self.capture_meta(store, user, &buckets);
        let sync_pause = started.elapsed();
        self.next_sequence += 1;
        self.spawn_upload(
            sequence,
            sync_pause,
            changed_bytes,
            move |runtime, writer, prepare| {
                let started = Instant::now();
                let mut files = files;
                let linked = link_runs(&buckets, &dir).map(|doc| {
                    files.extend(doc.files().map(|r| LocalFile::shared(r.file.clone())));
                    if !doc.is_empty() {
                        meta.states[BUCKETS_KEY] = serde_json::json!(doc);
                    }
                });
                *prepare = started.elapsed();
                let result = linked.and_then(|()| {
                    runtime
                        .block_on(writer.commit_checkpoint(&dir, &files, meta))
                        .map_err(StateError::from)
                });
                // The staging copy is only hard links; the store keeps its files.
                let _ = std::fs::remove_dir_all(&dir);
                result
            },
        )?;
        Ok(Some(TriggeredCheckpoint {
            sequence,
            sync_pause,
        }))
    }

    /// The checkpoint's metadata: the caller's, the store's, and the bytes
    /// of state changed since the previous checkpoint (also returned).
    fn capture_meta(
        &mut self,
        store: &StateStore,
        user: serde_json::Value,
        buckets: &[BucketCut],
    ) -> (CheckpointMeta, u64) {
        let written = store.bytes_written();
        // Entries put into bucketed state since the previous barrier count
        // as changed state like the store's writes.
        let bucket_bytes: u64 = buckets.iter().map(|c| c.new_bytes).sum();
        let changed_bytes = written.saturating_sub(self.written_at_last) + bucket_bytes;
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
        (meta, changed_bytes)
    }

    /// Runs `upload` (given the I/O runtime, the writer and where to note
    /// the time spent preparing files) on its own thread, and reports it as
    /// checkpoint `sequence`. A plain thread driving the upload with
    /// `block_on`: the upload future borrows across its stages, which
    /// `spawn`'s 'static bound forbids.
    fn spawn_upload(
        &mut self,
        sequence: u64,
        sync_pause: Duration,
        changed_bytes: u64,
        upload: impl FnOnce(&tokio::runtime::Runtime, &Writer, &mut Duration) -> Result<Manifest>
            + Send
            + 'static,
    ) -> Result<()> {
        let writer = self.writer.clone();
        let tx = self.tx.clone();
        let runtime = self.runtime.clone();
        std::thread::Builder::new()
            .name(format!("checkpoint-{sequence}"))
            .spawn(move || {
                let upload_start = Instant::now();
                let mut prepare_time = Duration::ZERO;
                let result = upload(&runtime, &writer, &mut prepare_time);
                let _ = tx.send(CompletedCheckpoint {
                    sequence,
                    sync_pause,
                    upload_time: upload_start.elapsed(),
                    prepare_time,
                    result,
                    changed_bytes,
                });
            })
            .map_err(StateError::io("starting the upload thread"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// The synchronous part of a v2 checkpoint: a cut of the change log and
    /// a snapshot, both under the store's write gate. Sealing the log into
    /// a run, writing a slice from the snapshot and the upload run on a
    /// background thread.
    fn trigger_runs(
        &mut self,
        store: &StateStore,
        user: serde_json::Value,
        opts: RunOptions,
        buckets: Vec<BucketCut>,
    ) -> Result<TriggeredCheckpoint> {
        let started = Instant::now();
        let sequence = self.next_sequence;
        let inner = &store.inner;
        let cut = inner.changes.cut(self.owner, || OwnedSnapshot::new(inner));
        self.ensure_sealer(store, opts)?;
        self.captured = Some(store.clone());
        let (meta, changed_bytes) = self.capture_meta(store, user, &buckets);
        let sync_pause = started.elapsed();
        self.next_sequence += 1;
        let store_changed = changed_bytes - buckets.iter().map(|c| c.new_bytes).sum::<u64>();
        let cut = Cut {
            barrier: sequence + self.barrier_offset,
            epoch: self.writer.epoch(),
            log: cut.log,
            complete: cut.complete,
            spilled: cut.spilled,
            sealer: self.sealer.clone(),
            snapshot: cut.at_cut,
            cf_names: inner.changes.cf_names().clone(),
            // Slices retire the store's deltas: their budget follows the
            // store's changes, not the buckets' (uploaded once each).
            budget: (store_changed as f64 * (opts.upload_ratio - 1.0).max(0.0)) as u64,
            slice_file_bytes: opts.slice_file_bytes,
            restore_read_limit: opts.restore_read_limit,
            changed_bytes: store_changed,
            buckets,
        };
        let runs = self.runs.clone();
        self.spawn_upload(
            sequence,
            sync_pause,
            changed_bytes,
            move |runtime, writer, prepare| commit_runs(runtime, writer, &runs, cut, meta, prepare),
        )
        .map_err(|e| self.log_lost(e))?;
        Ok(TriggeredCheckpoint {
            sequence,
            sync_pause,
        })
    }

    /// Starts the sealer that takes the change log's segments between
    /// barriers, once capture is on (after a cut).
    fn ensure_sealer(&mut self, store: &StateStore, opts: RunOptions) -> Result<()> {
        if self.sealer.is_some() || opts.log_spill_bytes == 0 {
            return Ok(());
        }
        let inner = &store.inner;
        // A rendezvous: a writer that fills a segment while the sealer still
        // works on the previous one waits, so the log holds at most about
        // two segments.
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        let dir = self
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dir
            .clone();
        let sealer = Sealer::spawn(
            dir,
            self.writer.epoch(),
            inner.changes.cf_names().clone(),
            rx,
        )
        .map_err(|e| self.log_lost(e))?;
        self.sealer = Some(Arc::new(sealer));
        inner
            .changes
            .set_spill(self.owner, tx, opts.log_spill_bytes);
        Ok(())
    }

    /// Continues the runs of checkpoint `manifest`, from which `store` was
    /// just restored (and not written to since): the next checkpoint is
    /// incremental, reusing the restored runs, instead of a copy of the
    /// whole state. Returns false, changing nothing, when that does not
    /// hold: a v1 checkpoint or layout, another key-group range, writes
    /// since the restore, or a checkpoint that is not the job's newest (its
    /// files may not be retained). Call it before anything writes to the
    /// store.
    pub fn continue_from(&mut self, store: &StateStore, manifest: &Manifest) -> Result<bool> {
        let CheckpointLayout::Runs(opts) = self.layout else {
            return Ok(false);
        };
        let Some(layout) =
            layout_of(&manifest.states).map_err(|r| corrupt_manifest(manifest.id, &r))?
        else {
            return Ok(false);
        };
        let range = (store.key_groups().start, store.key_groups().end);
        if store.inner.changes.writes() != 0
            || manifest.key_group_range != range
            || manifest.max_parallelism != store.max_parallelism()
            || self.last_committed != Some(manifest.id)
        {
            return Ok(false);
        }
        let files: HashMap<String, ManifestFile> = manifest
            .files
            .iter()
            .map(|f| (f.name.clone(), f.clone()))
            .collect();
        if layout
            .runs
            .iter()
            .flat_map(|r| r.files.iter())
            .any(|f| !files.contains_key(&f.name))
        {
            return Ok(false);
        }
        // Capture starts now, with nothing written since the restore: the
        // next cut is a complete record since the restored checkpoint.
        store.inner.changes.cut(self.owner, || ());
        self.captured = Some(store.clone());
        self.ensure_sealer(store, opts)?;
        // Barriers must keep growing across writers: run pruning compares
        // them.
        self.barrier_offset = layout.runs.iter().map(|r| r.barrier).max().unwrap_or(0);
        self.written_at_last = store.bytes_written();
        let mut st = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        st.committed_files = layout
            .runs
            .iter()
            .flat_map(|r| r.files.iter())
            .filter_map(|f| files.get(&f.name).map(|m| (f.name.clone(), m.clone())))
            .collect();
        if let Some(doc) = buckets_of(manifest)? {
            // Restored runs are committed already: later checkpoints that
            // still hold them reuse them instead of uploading them again.
            for r in doc.files() {
                if let Some(m) = files.get(&r.file) {
                    st.committed_files.insert(r.file.clone(), m.clone());
                }
            }
        }
        st.committed = layout.runs;
        st.cursor = layout.cursor;
        st.pending.clear();
        st.needs_base = false;
        Ok(true)
    }

    /// An error after a cut took the change log: the next checkpoint must
    /// copy the whole state, or it would miss this interval's writes.
    fn log_lost(&self, e: StateError) -> StateError {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .needs_base = true;
        e
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

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Nobody takes the store's change log any more: stop recording it.
        if let Some(store) = &self.captured {
            store.inner.changes.stop(self.owner);
        }
    }
}

/// Logical bytes of the deltas and of the slices among `runs`.
fn live_bytes(runs: &[Run]) -> (u64, u64) {
    runs.iter().fold((0, 0), |(d, s), r| match r.kind {
        RunKind::Delta => (d.saturating_add(r.bytes), s),
        RunKind::Slice { .. } => (d, s.saturating_add(r.bytes)),
    })
}

/// Deletes the files in the run folder that no pending run lists: what a
/// failed seal left half-written or no longer needs.
fn remove_unlisted_runs(st: &RunState) {
    let listed: HashSet<&str> = st
        .pending
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.name.as_str()))
        .collect();
    let Ok(entries) = std::fs::read_dir(&st.dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Sealed log segments of the next barrier are the sealer's.
        if !listed.contains(name.as_str()) && !is_segment_file(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Runs left in `staging` by earlier writers (older epochs: a crashed or
/// stopped job) are never committed by this one.
fn remove_stale_runs(staging: &Path, epoch: u64) {
    let own = format!("runs-{epoch}");
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("runs-") && name != own {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// What a v2 checkpoint's barrier hands to the background thread.
struct Cut {
    barrier: u64,
    epoch: u64,
    log: Vec<u8>,
    /// The log holds every write since this checkpointer's previous cut.
    complete: bool,
    /// Segments of the log handed to the sealer before the cut.
    spilled: u64,
    sealer: Option<Arc<Sealer>>,
    snapshot: OwnedSnapshot,
    cf_names: HashMap<u32, String>,
    /// Logical bytes of state a slice may add to this checkpoint's upload.
    budget: u64,
    slice_file_bytes: u64,
    restore_read_limit: f64,
    changed_bytes: u64,
    /// The barrier's cuts of bucketed states.
    buckets: Vec<BucketCut>,
}

/// Seals the cut into runs, commits the live runs as a checkpoint, and
/// keeps the run state in step with what was committed.
fn commit_runs(
    runtime: &tokio::runtime::Runtime,
    writer: &Writer,
    runs: &Mutex<RunState>,
    mut cut: Cut,
    mut meta: CheckpointMeta,
    prepare_time: &mut Duration,
) -> Result<Manifest> {
    let started = Instant::now();
    let mut st = runs.lock().unwrap_or_else(|p| p.into_inner());
    let bucket_cuts = std::mem::take(&mut cut.buckets);
    let sealed = seal_cut(&mut st, cut);
    let linked = match sealed {
        Ok(_) => link_runs(&bucket_cuts, &st.dir).map(Some),
        Err(_) => Ok(None),
    };
    *prepare_time = started.elapsed();
    let new = match sealed {
        Ok(new) => new,
        Err(e) => {
            // The log is gone: only a whole copy of the state can follow.
            st.needs_base = true;
            remove_unlisted_runs(&st);
            return Err(e);
        }
    };
    let buckets = match linked {
        Ok(doc) => doc.unwrap_or_default(),
        Err(e) => {
            // The sealed runs stay pending and go with the next checkpoint.
            st.pending.extend(new);
            return Err(e);
        }
    };
    let mut candidates: Vec<Run> = st.committed.clone();
    candidates.extend(st.pending.iter().cloned());
    candidates.extend(new);
    let live = live_runs(&candidates);
    let committed_names: HashSet<&str> = st
        .committed
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.name.as_str()))
        .collect();
    let mut reused = Vec::new();
    let mut local = Vec::new();
    for f in live.iter().flat_map(|r| r.files.iter()) {
        match st.committed_files.get(&f.name) {
            Some(m) => reused.push(m.clone()),
            None => local.push(LocalFile::shared(f.name.clone())),
        }
    }
    for r in buckets.files() {
        match st.committed_files.get(&r.file) {
            Some(m) => {
                reused.push(m.clone());
                // Committed before: its link is not needed for the upload.
                let _ = std::fs::remove_file(st.dir.join(&r.file));
            }
            None => local.push(LocalFile::shared(r.file.clone())),
        }
    }
    let live_names: HashSet<&str> = live
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.name.as_str()))
        .chain(buckets.files().map(|r| r.file.as_str()))
        .collect();
    for f in candidates.iter().flat_map(|r| r.files.iter()) {
        if !live_names.contains(f.name.as_str()) && !committed_names.contains(f.name.as_str()) {
            let _ = std::fs::remove_file(st.dir.join(&f.name));
        }
    }
    let layout = RunLayout {
        version: RUNS_LAYOUT_VERSION,
        runs: live.clone(),
        cursor: st.cursor.clone(),
    };
    if !buckets.is_empty() {
        meta.states[BUCKETS_KEY] = serde_json::json!(buckets);
    }
    meta.states["layout"] = match serde_json::to_value(&layout) {
        Ok(doc) => doc,
        Err(e) => {
            st.needs_base = true;
            remove_unlisted_runs(&st);
            return Err(StateError::InvalidOption(format!("layout document: {e}")));
        }
    };
    let result = runtime.block_on(writer.commit_checkpoint_reusing(&st.dir, &local, &reused, meta));
    match result {
        Ok(manifest) => {
            st.committed_files = manifest
                .files
                .iter()
                .filter(|f| live_names.contains(f.name.as_str()))
                .map(|f| (f.name.clone(), f.clone()))
                .collect();
            for f in &local {
                let _ = std::fs::remove_file(st.dir.join(&f.name));
            }
            st.committed = live;
            st.pending.clear();
            Ok(manifest)
        }
        Err(e) => {
            st.pending = live
                .into_iter()
                .filter(|r| {
                    r.files
                        .iter()
                        .all(|f| !st.committed_files.contains_key(&f.name))
                })
                .collect();
            Err(e.into())
        }
    }
}

/// Writes the runs of one barrier: the delta of its change log, and a
/// slice of the state (the whole state when there is no complete base).
fn seal_cut(st: &mut RunState, cut: Cut) -> Result<Vec<Run>> {
    let mut new = Vec::new();
    let sealed = seal_cut_into(st, cut, &mut new);
    if sealed.is_err() {
        for f in new.drain(..).flat_map(|r| r.files) {
            let _ = std::fs::remove_file(st.dir.join(&f.name));
        }
    }
    sealed.map(|()| new)
}

fn seal_cut_into(st: &mut RunState, cut: Cut, new: &mut Vec<Run>) -> Result<()> {
    std::fs::create_dir_all(&st.dir)
        .map_err(StateError::io(format!("creating {}", st.dir.display())))?;
    let mut namer = FileNamer {
        dir: st.dir.clone(),
        epoch: cut.epoch,
        barrier: cut.barrier,
        label: cut.barrier.to_string(),
        next: 0,
        slice_file_bytes: cut.slice_file_bytes,
    };
    let mut full = st.needs_base || !cut.complete;
    // Segments sealed since the previous barrier come first: they hold the
    // interval's earlier writes.
    let spilled = match &cut.sealer {
        Some(s) if !cut.complete => {
            // Segments of an incomplete log: the full copy replaces them.
            for f in s.drain().into_iter().flat_map(|r| r.files) {
                let _ = std::fs::remove_file(st.dir.join(&f.name));
            }
            Vec::new()
        }
        Some(s) => s.take_upto(cut.spilled),
        None => Vec::new(),
    };
    for run in spilled {
        match run {
            Ok(Some(mut r)) => {
                r.barrier = cut.barrier;
                new.push(r);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a change log segment was lost; this checkpoint copies the whole state");
                full = true;
            }
        }
    }
    if !full {
        match seal_delta(&cut.log, &cut.cf_names, &mut namer) {
            Ok(delta) => new.extend(delta),
            Err(e) => {
                tracing::warn!(error = %e, "sealing the change log failed; this checkpoint copies the whole state");
                full = true;
            }
        }
    }
    drop(cut.log);
    if full {
        // The snapshot holds everything: the deltas are not needed.
        for f in new.drain(..).flat_map(|r| r.files) {
            let _ = std::fs::remove_file(st.dir.join(&f.name));
        }
    }
    let mut all: Vec<Run> = st.committed.clone();
    all.extend(st.pending.iter().cloned());
    all.extend(new.iter().cloned());
    let (delta_bytes, slice_bytes) = live_bytes(&live_runs(&all));
    // Restore reads the live slices (about the state) plus the live deltas.
    let catch_up =
        delta_bytes as f64 > (cut.restore_read_limit - 1.0).max(0.0) * slice_bytes.max(1) as f64;
    let slice = if full {
        Some(write_slice(&cut.snapshot, &Pos::start(), None, &mut namer)?)
    } else if catch_up {
        Some(write_slice(&cut.snapshot, &st.cursor, None, &mut namer)?)
    } else if delta_bytes > 0 && cut.changed_bytes > 0 {
        Some(write_slice(
            &cut.snapshot,
            &st.cursor,
            Some(cut.budget.max(1)),
            &mut namer,
        )?)
    } else {
        None
    };
    drop(cut.snapshot);
    if let Some(s) = slice {
        if let RunKind::Slice { to, .. } = &s.kind {
            st.cursor = to.clone().unwrap_or_else(Pos::start);
        }
        new.push(s);
    }
    st.needs_base = false;
    Ok(())
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
///
/// Bucketed states ([`crate::bucket`]) are written into the map states of
/// the same names, so that tools see every entry; a job that keeps them as
/// buckets restores with [`restore_with_buckets`].
pub fn restore(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    id: Option<u64>,
    local_dir: &Path,
    opts: StoreOptions,
) -> Result<(StateStore, Manifest)> {
    let wanted = opts.key_groups;
    let (store, manifest) = restore_store(runtime, job, id, local_dir, opts)?;
    if buckets_of(&manifest)?.is_some() {
        let tmp = sibling(local_dir, "buckets");
        let materialized = restore_bucket_runs(runtime, job, &manifest, &tmp)
            .and_then(|runs| materialize_runs(&store, &runs, wanted));
        let _ = std::fs::remove_dir_all(&tmp);
        materialized?;
    }
    Ok((store, manifest))
}

/// [`restore`], keeping bucketed states as their runs, downloaded into
/// `bucket_dir` and opened, for [`crate::BucketedState::open`].
pub fn restore_with_buckets(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    id: Option<u64>,
    local_dir: &Path,
    bucket_dir: &Path,
    opts: StoreOptions,
) -> Result<(StateStore, Manifest, RestoredRuns)> {
    let (store, manifest) = restore_store(runtime, job, id, local_dir, opts)?;
    let runs = restore_bucket_runs(runtime, job, &manifest, bucket_dir)?;
    Ok((store, manifest, runs))
}

/// A folder beside `dir`, named after it, for transient files.
fn sibling(dir: &Path, what: &str) -> PathBuf {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let parent = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parent.join(format!("{base}.{what}-{:016x}", rand::random::<u64>()))
}

fn restore_store(
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
    let layout = layout_of(&manifest.states).map_err(|r| corrupt_manifest(manifest.id, &r))?;
    match layout {
        None => {
            runtime.block_on(job.restore(manifest.id, local_dir))?;
        }
        Some(layout) => restore_runs(runtime, job, &manifest, &layout, local_dir)?,
    }
    let store = StateStore::open(local_dir, opts)?;
    if wanted != held {
        store.retain_key_groups(wanted)?;
    }
    Ok((store, manifest))
}

/// Downloads the runs (verified, synced per the job's `fsync_restore`),
/// `download_parallelism` files at a time in run order, and ingests each
/// run as soon as it and the runs before it have arrived: merging the
/// first runs overlaps the download of the last ones.
fn fetch_and_ingest(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    manifest: &Manifest,
    layout: &RunLayout,
    files_dir: &Path,
    db_dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(files_dir)
        .map_err(StateError::io(format!("creating {}", files_dir.display())))?;
    let by_name: HashMap<&str, &ManifestFile> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    let permits = Arc::new(tokio::sync::Semaphore::new(
        job.options().download_parallelism.max(1),
    ));
    let mut downloads: HashMap<String, tokio::task::JoinHandle<Result<()>>> = HashMap::new();
    for f in layout.runs.iter().flat_map(|r| r.files.iter()) {
        let Some(&mf) = by_name.get(f.name.as_str()) else {
            continue;
        };
        let (job, mf, id) = (job.clone(), mf.clone(), manifest.id);
        let dest = files_dir.join(&f.name);
        let permits = permits.clone();
        let task = runtime.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| StateError::InvalidOption(format!("download slots: {e}")))?;
            job.fetch_file(id, &mf, &dest)
                .await
                .map_err(StateError::from)
        });
        downloads.insert(f.name.clone(), task);
    }
    let result = ingest_runs(db_dir, files_dir, layout, |name| {
        match downloads.remove(name) {
            Some(task) => runtime.block_on(task).map_err(|e| {
                StateError::InvalidOption(format!("download of {name} stopped: {e}"))
            })?,
            None => Err(corrupt_manifest(
                manifest.id,
                &format!("run file {name} is listed twice or not among the files"),
            )),
        }
    });
    // On failure, stop what is still downloading and wait for it: a write
    // in flight must not recreate a file after the caller removes the folder.
    for (_, task) in downloads.drain() {
        task.abort();
        let _ = runtime.block_on(task);
    }
    result
}

/// Restores a v2 checkpoint: downloads (and verifies) its runs next to
/// `local_dir`, ingests them into a fresh database beside it, then moves the
/// database into place. `local_dir` must not exist or be empty.
fn restore_runs(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    manifest: &Manifest,
    layout: &RunLayout,
    local_dir: &Path,
) -> Result<()> {
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    if layout.runs.is_empty() {
        return Err(corrupt_manifest(manifest.id, "a layout with no runs"));
    }
    let mut seen = HashSet::new();
    if let Some(f) = layout
        .runs
        .iter()
        .flat_map(|r| r.files.iter())
        .find(|f| !seen.insert(f.name.as_str()))
    {
        return Err(corrupt_manifest(
            manifest.id,
            &format!("run file {} listed twice", f.name),
        ));
    }
    if let Some(f) = layout
        .runs
        .iter()
        .flat_map(|r| r.files.iter())
        .find(|f| !listed.contains(f.name.as_str()))
    {
        return Err(corrupt_manifest(
            manifest.id,
            &format!("run file {} is not among the checkpoint's files", f.name),
        ));
    }
    let occupied = std::fs::read_dir(local_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(StateError::InvalidOption(format!(
            "{} is not empty: a checkpoint is restored into a new directory",
            local_dir.display()
        )));
    }
    let base = local_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let parent = local_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tag = format!("{:016x}", rand::random::<u64>());
    let files_dir = parent.join(format!("{base}.runs-{tag}"));
    let db_dir = parent.join(format!("{base}.ingesting-{tag}"));
    let result = (|| {
        let t = Instant::now();
        fetch_and_ingest(runtime, job, manifest, layout, &files_dir, &db_dir)?;
        tracing::info!(
            checkpoint = manifest.id,
            runs = layout.runs.len(),
            ms = t.elapsed().as_millis() as u64,
            "restored runs"
        );
        if local_dir.exists() {
            std::fs::remove_dir(local_dir)
                .map_err(StateError::io(format!("replacing {}", local_dir.display())))?;
        }
        std::fs::rename(&db_dir, local_dir).map_err(StateError::io(format!(
            "moving the restored state to {}",
            local_dir.display()
        )))?;
        if job.options().fsync_restore {
            // Makes the rename durable.
            std::fs::File::open(&parent)
                .and_then(|d| d.sync_all())
                .map_err(StateError::io(format!("syncing {}", parent.display())))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&files_dir);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&db_dir);
    }
    result
}
