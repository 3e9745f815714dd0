//! Checkpoint layout v2: the state as an ordered list of sorted runs.
//!
//! A v2 checkpoint holds no RocksDB directory. It lists *runs*: SST files
//! written by `state-core` itself (`SstFileWriter`), never by the local LSM's
//! flushes or compactions, so local compactions are never uploaded. Restore
//! creates an empty database and ingests the runs oldest first; a newer run
//! shadows an older one where they overlap. Two kinds of run:
//!
//! - a **delta**: every write between two checkpoint barriers, sorted and
//!   collapsed from the change log ([`crate::changes`]): puts, point and
//!   range tombstones, merge operands;
//! - a **slice**: the whole state inside one key range at a barrier, read
//!   from a RocksDB snapshot, with a range tombstone over the range so it
//!   shadows everything older there.
//!
//! Slices sweep the key space round-robin, a budgeted amount per checkpoint,
//! so the uploads stay proportional to what changed. Once the slices taken
//! since a delta cover the whole key space, the delta (and every slice they
//! shadow) is dead and leaves the manifest; GC deletes it later.
//!
//! Byte layouts and the manifest document: `docs/checkpoint-runs.md`.

use crate::changes::{parse_log, Change, Op};
use crate::error::{Result, StateError};
use crate::store::StoreInner;
use rocksdb::{DBCompressionType, Options, ReadOptions, SstFileWriter, DB};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

/// Version of the `layout` document of a v2 checkpoint.
pub const RUNS_LAYOUT_VERSION: u32 = 2;

/// Every key of every column family sorts below this: state keys start
/// with a key group (< 0x80), metadata keys are ASCII, and timer keys with
/// an 8-byte ordered timestamp then a key group.
const KEY_END: [u8; 16] = [0xff; 16];

/// A point in the sweep: a column family (by name) and a key in it.
/// Positions order by name, then key; the empty name is the start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    pub cf: String,
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
}

impl Pos {
    pub fn start() -> Pos {
        Pos {
            cf: String::new(),
            key: Vec::new(),
        }
    }
}

/// The runs of a checkpoint, oldest first, and where the sweep goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLayout {
    pub version: u32,
    pub runs: Vec<Run>,
    pub cursor: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The barrier (checkpoint sequence of the writer) it was taken at.
    pub barrier: u64,
    #[serde(flatten)]
    pub kind: RunKind,
    pub files: Vec<RunFile>,
    /// Logical bytes (keys and values) it holds.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunKind {
    Delta,
    /// The state in `[from, to)` (`to: None`: to the end of the key space).
    Slice {
        from: Pos,
        to: Option<Pos>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// File name in the checkpoint's manifest.
    pub name: String,
    /// Column family it is ingested into.
    pub cf: String,
}

/// Names the files a writer creates: `run-<epoch>-<label>-<n>.sst`, where
/// the label is the barrier (or `s<k>` for the k-th segment of the change
/// log sealed between barriers); unique in a job's log because epochs are.
pub(crate) struct FileNamer {
    pub dir: PathBuf,
    pub epoch: u64,
    pub barrier: u64,
    pub label: String,
    pub next: u32,
    /// Size at which a slice starts a new file: big slices (a job's first
    /// checkpoint holds the whole state) upload and ingest in parallel.
    pub slice_file_bytes: u64,
}

/// Label of the files of the k-th log segment sealed between barriers.
fn segment_label(k: u64) -> String {
    format!("s{k}")
}

/// Whether `name` is a file of a log segment sealed between barriers (it
/// belongs to the sealer until a barrier takes it).
pub(crate) fn is_segment_file(name: &str) -> bool {
    name.strip_prefix("run-")
        .and_then(|rest| rest.split('-').nth(1))
        .is_some_and(|label| label.starts_with('s'))
}

impl FileNamer {
    fn next(&mut self, cf: &str) -> RunFile {
        let name = format!("run-{}-{}-{}.sst", self.epoch, self.label, self.next);
        self.next += 1;
        RunFile {
            name,
            cf: cf.to_string(),
        }
    }

    fn path(&self, f: &RunFile) -> PathBuf {
        self.dir.join(&f.name)
    }
}

fn sst_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_compression_options(-14, 1, 0, 0);
    o
}

fn run_error(context: String) -> impl FnOnce(rocksdb::Error) -> StateError {
    move |source| StateError::RocksDb { context, source }
}

fn check_key(cf: &str, key: &[u8]) -> Result<()> {
    if key >= &KEY_END[..] {
        return Err(StateError::Corrupt {
            state: cf.to_string(),
            what: "key",
            reason: format!("{} bytes sorting above the key space's end", key.len()),
        });
    }
    Ok(())
}

/// One SST file being written for a column family.
struct RunWriter<'o> {
    sst: SstFileWriter<'o>,
    file: RunFile,
    path: PathBuf,
    entries: u64,
}

impl<'o> RunWriter<'o> {
    fn open(opts: &'o Options, namer: &mut FileNamer, cf: &str) -> Result<Self> {
        let file = namer.next(cf);
        let path = namer.path(&file);
        let sst = SstFileWriter::create(opts);
        sst.open(&path)
            .map_err(run_error(format!("creating {}", path.display())))?;
        Ok(RunWriter {
            sst,
            file,
            path,
            entries: 0,
        })
    }

    fn finish(mut self) -> Result<Option<RunFile>> {
        if self.entries == 0 {
            // An opened writer with nothing in it: no run file, and no
            // empty file left behind.
            drop(self.sst);
            let _ = std::fs::remove_file(&self.path);
            return Ok(None);
        }
        self.sst
            .finish()
            .map_err(run_error(format!("finishing {}", self.path.display())))?;
        Ok(Some(self.file))
    }

    fn err(&self) -> impl FnOnce(rocksdb::Error) -> StateError + '_ {
        // Formats only on error: this runs for every entry written.
        move |source| StateError::RocksDb {
            context: format!("writing {}", self.path.display()),
            source,
        }
    }
}

/// Sorts a change log into one delta run: per column family, the final
/// effect of the writes on each key, plus the range tombstones.
pub(crate) fn seal_delta(
    log: &[u8],
    cf_names: &HashMap<u32, String>,
    namer: &mut FileNamer,
) -> Result<Option<Run>> {
    let mut changes = parse_log(log).map_err(|reason| StateError::Corrupt {
        state: "change log".into(),
        what: "write batch",
        reason,
    })?;
    // Column families by name, so that runs list them in a stable order.
    let mut ids: Vec<(&String, u32)> = Vec::new();
    for c in &changes {
        if !ids.iter().any(|&(_, id)| id == c.cf) {
            let name = cf_names.get(&c.cf).ok_or_else(|| StateError::Corrupt {
                state: "change log".into(),
                what: "column family",
                reason: format!("unknown column family id {}", c.cf),
            })?;
            ids.push((name, c.cf));
        }
    }
    ids.sort();
    // Column family ids are small: a table, not a search per comparison.
    let len = ids
        .iter()
        .map(|&(_, id)| id as usize + 1)
        .max()
        .unwrap_or(0);
    let mut ranks = vec![usize::MAX; len];
    for (rank, &(_, id)) in ids.iter().enumerate() {
        ranks[id as usize] = rank;
    }
    let rank = |cf: u32| ranks.get(cf as usize).copied().unwrap_or(usize::MAX);
    // One sort: column family, key, then log position. Range deletes sort
    // by their start key among the points.
    changes.sort_unstable_by(|a, b| {
        rank(a.cf)
            .cmp(&rank(b.cf))
            .then_with(|| a.key.cmp(b.key))
            .then(a.seq.cmp(&b.seq))
    });
    let opts = sst_options();
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut rest = changes.as_slice();
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|c| c.cf == first.cf).count();
        let (of_cf, after) = rest.split_at(n);
        rest = after;
        let cf = cf_names
            .get(&first.cf)
            .map(String::as_str)
            .unwrap_or_default();
        let mut w = RunWriter::open(&opts, namer, cf)?;
        bytes += write_delta_cf(&mut w, cf, of_cf)?;
        files.extend(w.finish()?);
    }
    Ok((!files.is_empty()).then_some(Run {
        barrier: namer.barrier,
        kind: RunKind::Delta,
        files,
        bytes,
    }))
}

/// What a key ends up as after the writes of one delta.
enum Outcome<'a> {
    /// Unknown base (older runs) plus these merge operands, concatenated.
    Operands(Vec<u8>),
    Value(Cow<'a, [u8]>),
    Deleted,
}

/// Writes one column family's changes, sorted by key then log position.
fn write_delta_cf(w: &mut RunWriter<'_>, cf: &str, changes: &[Change<'_>]) -> Result<u64> {
    let mut bytes = 0;
    // Range tombstones do not cover point entries of the same file
    // (SstFileWriter::DeleteRange), so they only act on older runs: the
    // points below already account for the ranges logged among them.
    let mut ranges: Vec<(&[u8], &[u8], u32)> = Vec::new();
    for c in changes {
        check_key(cf, c.key)?;
        if let Op::DeleteRange(end) = c.op {
            ranges.push((c.key, end, c.seq));
            if c.key < end {
                w.sst.delete_range(c.key, end).map_err(w.err())?;
                w.entries += 1;
                bytes += (c.key.len() + end.len()) as u64;
            }
        }
    }
    let mut next_range = 0;
    let mut active: Vec<(&[u8], u32)> = Vec::new();
    let mut covering: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        let key = changes[i].key;
        let mut j = i;
        while j < changes.len() && changes[j].key == key {
            j += 1;
        }
        let group = &changes[i..j];
        i = j;
        if group.iter().all(|c| matches!(c.op, Op::DeleteRange(_))) {
            continue;
        }
        while next_range < ranges.len() && ranges[next_range].0 <= key {
            active.push((ranges[next_range].1, ranges[next_range].2));
            next_range += 1;
        }
        active.retain(|&(hi, _)| hi > key);
        covering.clear();
        covering.extend(active.iter().map(|&(_, seq)| seq));
        covering.sort_unstable();
        bytes += key.len() as u64;
        match fold(group, &covering) {
            Outcome::Value(v) => {
                bytes += v.len() as u64;
                w.sst.put(key, v).map_err(w.err())?;
            }
            Outcome::Operands(v) => {
                bytes += v.len() as u64;
                w.sst.merge(key, v).map_err(w.err())?;
            }
            Outcome::Deleted => w.sst.delete(key).map_err(w.err())?,
        }
        w.entries += 1;
    }
    Ok(bytes)
}

/// The effect of one key's writes (in log order) and of the range deletes
/// covering it (their log positions). Merge operands combine by
/// concatenation: the only merge operator of the store is list append.
fn fold<'a>(writes: &[Change<'a>], covering: &[u32]) -> Outcome<'a> {
    let mut out = Outcome::Operands(Vec::new());
    let mut ranges = covering.iter().peekable();
    for w in writes {
        while ranges.next_if(|&&s| s < w.seq).is_some() {
            out = Outcome::Deleted;
        }
        out = match (&w.op, out) {
            (Op::Put(v), _) => Outcome::Value(Cow::Borrowed(v)),
            (Op::Delete, _) => Outcome::Deleted,
            // A range starting at this key acts through `covering`.
            (Op::DeleteRange(_), o) => o,
            (Op::Merge(m), Outcome::Deleted) => Outcome::Value(Cow::Borrowed(m)),
            (Op::Merge(m), Outcome::Value(v)) => {
                let mut v = v.into_owned();
                v.extend_from_slice(m);
                Outcome::Value(Cow::Owned(v))
            }
            (Op::Merge(m), Outcome::Operands(mut v)) => {
                v.extend_from_slice(m);
                Outcome::Operands(v)
            }
        };
    }
    if ranges.next().is_some() {
        out = Outcome::Deleted;
    }
    out
}

/// Seals segments of a store's change log into delta runs on its own
/// thread, as the writers hand them over between barriers: the log's memory
/// stays bounded whatever a job writes between two checkpoints.
pub(crate) struct Sealer {
    shared: Arc<(Mutex<Sealed>, Condvar)>,
}

#[derive(Default)]
struct Sealed {
    /// Segments sealed so far (their numbers count from 1).
    done: u64,
    /// Runs of the sealed segments not yet taken, with their number.
    runs: Vec<(u64, Result<Option<Run>>)>,
    /// The thread has ended: nothing more will be sealed.
    gone: bool,
}

impl Sealer {
    pub fn spawn(
        dir: PathBuf,
        epoch: u64,
        cf_names: HashMap<u32, String>,
        segments: Receiver<Vec<u8>>,
    ) -> Result<Sealer> {
        let shared: Arc<(Mutex<Sealed>, Condvar)> = Arc::default();
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("change-log-sealer".into())
            .spawn(move || {
                // Tells waiters the thread has ended, even by a panic.
                let _gone = Gone(theirs.clone());
                let mut k = 0u64;
                for segment in segments {
                    k += 1;
                    let mut namer = FileNamer {
                        dir: dir.clone(),
                        epoch,
                        barrier: 0,
                        label: segment_label(k),
                        next: 0,
                        slice_file_bytes: u64::MAX,
                    };
                    let sealed = std::fs::create_dir_all(&dir)
                        .map_err(StateError::io(format!("creating {}", dir.display())))
                        .and_then(|()| seal_delta(&segment, &cf_names, &mut namer));
                    drop(segment);
                    let (lock, cv) = &*theirs;
                    let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
                    st.runs.push((k, sealed));
                    st.done = k;
                    cv.notify_all();
                }
            })
            .map_err(StateError::io("starting the change log sealer"))?;
        Ok(Sealer { shared })
    }

    /// Takes whatever is sealed, without waiting: for a checkpoint that
    /// copies the whole state and needs none of it.
    pub fn drain(&self) -> Vec<Run> {
        let (lock, _) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut st.runs)
            .into_iter()
            .filter_map(|(_, r)| r.ok().flatten())
            .collect()
    }

    /// The runs of segments `..=upto`, in order, once they are sealed.
    /// Segments the thread can no longer seal come back as errors.
    pub fn take_upto(&self, upto: u64) -> Vec<Result<Option<Run>>> {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        while st.done < upto && !st.gone {
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let done = st.done;
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.runs)
            .into_iter()
            .partition(|(k, _)| *k <= upto);
        st.runs = kept;
        let mut out: Vec<Result<Option<Run>>> = taken.into_iter().map(|(_, r)| r).collect();
        for k in done + 1..=upto {
            out.push(Err(StateError::Corrupt {
                state: "change log".into(),
                what: "segment",
                reason: format!("segment {k} was never sealed"),
            }));
        }
        out
    }
}

struct Gone(Arc<(Mutex<Sealed>, Condvar)>);

impl Drop for Gone {
    fn drop(&mut self) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap_or_else(|p| p.into_inner()).gone = true;
        cv.notify_all();
    }
}

/// A RocksDB snapshot that keeps its store alive, so that a background
/// thread can read the state as of a barrier while the operator goes on.
pub(crate) struct OwnedSnapshot {
    // Declared before `store`: dropped first, while the DB is still open.
    snap: rocksdb::SnapshotWithThreadMode<'static, DB>,
    store: Arc<StoreInner>,
}

impl OwnedSnapshot {
    pub fn new(store: &Arc<StoreInner>) -> OwnedSnapshot {
        let snap = store.db.snapshot();
        // SAFETY: the snapshot borrows the DB inside `store`, an `Arc` that
        // this struct holds and drops after the snapshot (field order); the
        // DB is heap-allocated and never moves while the Arc lives.
        let snap = unsafe {
            std::mem::transmute::<
                rocksdb::SnapshotWithThreadMode<'_, DB>,
                rocksdb::SnapshotWithThreadMode<'static, DB>,
            >(snap)
        };
        OwnedSnapshot {
            snap,
            store: store.clone(),
        }
    }

    fn read_options(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snap);
        // A sweep reads each block once: keep it out of the block cache.
        ro.fill_cache(false);
        // Crosses key prefixes: the map states' prefix seek would stop at
        // the first key's prefix.
        ro.set_total_order_seek(true);
        ro
    }

    /// Column families of the store, in sweep order.
    pub fn column_families(&self) -> Vec<String> {
        let mut names: Vec<String> = self.store.all_cf_names();
        names.sort();
        names
    }
}

/// Writes the state from `from` on as one slice run, stopping at the first
/// key once `budget` logical bytes are written (`None`: to the end).
pub(crate) fn write_slice(
    snap: &OwnedSnapshot,
    from: &Pos,
    budget: Option<u64>,
    namer: &mut FileNamer,
) -> Result<Run> {
    let opts = sst_options();
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut to = None;
    for cf_name in snap.column_families() {
        if cf_name < from.cf {
            continue;
        }
        let lo = if cf_name == from.cf {
            from.key.clone()
        } else {
            Vec::new()
        };
        let cf = snap.store.cf(&cf_name)?;
        let mut it = snap.store.db.raw_iterator_cf_opt(cf, snap.read_options());
        it.seek(&lo);
        let mut w = RunWriter::open(&opts, namer, &cf_name)?;
        // Each file's range tombstone covers exactly its own key range, so
        // the files of a slice are independent of each other's sequence
        // numbers, and large slices upload and ingest in parallel.
        let mut file_lo = lo;
        let mut stop = None;
        while let Some(key) = it.key() {
            check_key(&cf_name, key)?;
            if budget.is_some_and(|b| bytes >= b) && bytes > 0 {
                stop = Some(key.to_vec());
                break;
            }
            if w.sst.file_size() >= namer.slice_file_bytes {
                w.sst
                    .delete_range(file_lo.as_slice(), key)
                    .map_err(w.err())?;
                w.entries += 1;
                files.extend(w.finish()?);
                w = RunWriter::open(&opts, namer, &cf_name)?;
                file_lo = key.to_vec();
            }
            let value = it.value().unwrap_or_default();
            w.sst.put(key, value).map_err(w.err())?;
            w.entries += 1;
            bytes += (key.len() + value.len()) as u64;
            it.next();
        }
        it.status()
            .map_err(run_error(format!("reading '{cf_name}' at a barrier")))?;
        let hi: &[u8] = stop.as_deref().unwrap_or(&KEY_END);
        if file_lo.as_slice() < hi {
            w.sst
                .delete_range(file_lo.as_slice(), hi)
                .map_err(w.err())?;
            w.entries += 1;
        }
        files.extend(w.finish()?);
        if let Some(key) = stop {
            to = Some(Pos { cf: cf_name, key });
            break;
        }
    }
    Ok(Run {
        barrier: namer.barrier,
        kind: RunKind::Slice {
            from: from.clone(),
            to,
        },
        files,
        bytes,
    })
}

/// The runs still needed, oldest first: a run is dead once slices taken at
/// or after its barrier cover the whole key space.
pub fn live_runs(runs: &[Run]) -> Vec<Run> {
    let Some(oldest) = oldest_needed_slice(runs) else {
        return runs.to_vec();
    };
    let covered_through = runs[oldest].barrier;
    runs.iter()
        .enumerate()
        .filter(|&(i, r)| match r.kind {
            RunKind::Slice { .. } => i >= oldest,
            // Inside the slices from `oldest` on: their snapshots were taken
            // at or after the delta's barrier.
            RunKind::Delta => r.barrier > covered_through,
        })
        .map(|(_, r)| r.clone())
        .collect()
}

/// Index of the newest slice such that it and the slices after it cover
/// the whole key space. Slices sweep the space in order, each starting
/// where the previous one stopped; unwrapping the sweep into laps makes
/// "covers everything" a comparison: `[from, end)` spans a lap or more.
fn oldest_needed_slice(runs: &[Run]) -> Option<usize> {
    let start = Pos::start();
    let mut lap = 0u64;
    let mut unwrapped: Vec<(usize, (u64, &Pos))> = Vec::new();
    let mut end = None;
    for (i, r) in runs.iter().enumerate() {
        let RunKind::Slice { from, to } = &r.kind else {
            continue;
        };
        if !unwrapped.is_empty() && *from == start {
            lap += 1;
        }
        unwrapped.push((i, (lap, from)));
        end = Some(match to {
            Some(p) => (lap, p),
            None => (lap + 1, &start),
        });
    }
    let end = end?;
    unwrapped
        .iter()
        .rev()
        .find(|(_, (lap, from))| (lap + 1, *from) <= end)
        .map(|&(i, _)| i)
}

/// L0 files per column family a restore leaves for the store's background
/// compaction: half the store's L0 slowdown trigger.
const RESTORE_L0_LEFT_TO_BACKGROUND: u64 = 10;

/// Creates a database in `db_dir` from the runs in `files_dir`, oldest run
/// first, then compacts column families that ingestion left with many
/// overlapping files.
pub(crate) fn ingest_runs(
    db_dir: &Path,
    files_dir: &Path,
    layout: &RunLayout,
    mut arrived: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    let mut cfs: Vec<String> = layout
        .runs
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.cf.clone()))
        .collect();
    cfs.sort();
    cfs.dedup();
    let db = crate::store::open_for_ingest(db_dir, &cfs)?;
    let mut io = rocksdb::IngestExternalFileOptions::default();
    io.set_move_files(true);
    for run in &layout.runs {
        // The files of one run and column family never overlap (a slice
        // splits at keys, a delta has one file): one ingestion each.
        let mut by_cf: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        for f in &run.files {
            arrived(&f.name)?;
            by_cf
                .entry(f.cf.as_str())
                .or_default()
                .push(files_dir.join(&f.name));
        }
        for (name, paths) in by_cf {
            let cf = db.cf_handle(name).ok_or_else(|| StateError::Corrupt {
                state: name.to_string(),
                what: "column family",
                reason: "missing after creation".into(),
            })?;
            db.ingest_external_file_cf_opts(cf, &io, paths)
                .map_err(run_error(format!(
                    "ingesting run {} ({:?}) into '{name}'",
                    run.barrier, run.kind
                )))?;
        }
    }
    // Automatic compaction merged L0 into L1 while runs were ingested (and
    // on down only as levels fill up, never rewriting the bottom level the
    // oldest run went to). Column families still holding many overlapping
    // runs in L0 are finished now: more would slow the store's writes down
    // (RocksDB's L0 slowdown trigger); a few are left to its background.
    while cfs
        .iter()
        .filter_map(|n| db.cf_handle(n))
        .any(|cf| l0_files(&db, cf) > RESTORE_L0_LEFT_TO_BACKGROUND)
    {
        let failed = db
            .property_int_value("rocksdb.background-errors")
            .ok()
            .flatten()
            .unwrap_or(0);
        if failed > 0 {
            return Err(StateError::Corrupt {
                state: db_dir.display().to_string(),
                what: "restore",
                reason: "RocksDB failed merging the ingested runs".into(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    db.flush()
        .map_err(run_error(format!("flushing {}", db_dir.display())))?;
    Ok(())
}

fn l0_files(db: &DB, cf: &rocksdb::ColumnFamily) -> u64 {
    db.property_int_value_cf(cf, "rocksdb.num-files-at-level0")
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Reads the layout document of a v2 checkpoint (`None`: a v1 checkpoint).
pub fn layout_of(states: &serde_json::Value) -> std::result::Result<Option<RunLayout>, String> {
    let Some(doc) = states.get("layout") else {
        return Ok(None);
    };
    let layout: RunLayout = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    if layout.version != RUNS_LAYOUT_VERSION {
        return Err(format!(
            "layout version {} (this release reads {RUNS_LAYOUT_VERSION})",
            layout.version
        ));
    }
    Ok(Some(layout))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(v.len() * 2);
        for b in v {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_files_are_told_from_barrier_files() {
        let mut namer = FileNamer {
            dir: PathBuf::new(),
            epoch: 7,
            barrier: 12,
            label: segment_label(3),
            next: 0,
            slice_file_bytes: 0,
        };
        assert!(is_segment_file(&namer.next("m").name));
        namer.label = 12.to_string();
        assert!(!is_segment_file(&namer.next("m").name));
    }

    #[test]
    fn a_range_tombstone_spares_the_points_of_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let opts = sst_options();
        let path = dir.path().join("f.sst");
        let mut w = SstFileWriter::create(&opts);
        w.open(&path).unwrap();
        w.put(b"k1", b"v1").unwrap();
        w.delete_range(b"a".as_slice(), b"z".as_slice()).unwrap();
        w.finish().unwrap();
        let mut o = Options::default();
        o.create_if_missing(true);
        let db = DB::open(&o, dir.path().join("db")).unwrap();
        db.put(b"k0", b"old").unwrap();
        db.ingest_external_file(vec![&path]).unwrap();
        assert_eq!(db.get(b"k0").unwrap(), None);
        assert_eq!(db.get(b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
    }
}
