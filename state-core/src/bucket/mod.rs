//! Bucketed state: a map state for entries whose life follows from their
//! event time, stored in buckets of event time instead of one key-ordered
//! LSM.
//!
//! A windowed operator buffers events until the watermark passes their
//! time plus a retention (the join: 30 minutes for an impression). The
//! state is ordered by event time twice over: entries arrive at most the
//! out-of-order bound out of order, and they expire in time order. A
//! key-ordered LSM ignores that and pays a random insert, a delete and a
//! probe across every level per event. Here:
//!
//! - **Buckets.** Entry `ts` belongs to bucket `ts div width`. A bucket has
//!   an *active* in-memory part that takes inserts, and *parts* frozen
//!   earlier: in memory until their run is written, then on disk (a
//!   [`RunFile`]: sorted, a sparse index and a key filter kept in memory).
//! - **Expiry** drops whole buckets once the watermark has passed their last
//!   time plus the retention: no tombstones, no timers, no compaction.
//! - **Probes** visit only the buckets overlapping the probe's time range,
//!   and in each the parts whose filter may hold the key: about one block
//!   read per matching run, none for the rest.
//! - **Memory budget.** Past it, parts already on disk give up their memory
//!   (oldest buckets first), then the oldest active parts are frozen and
//!   written. Nothing is ever read back into memory: probes read blocks.
//! - **Checkpoints** ([`BucketedState::cut`], no I/O in the barrier) freeze
//!   the active parts; the checkpoint's upload thread writes their runs and
//!   uploads every run not uploaded before: a run is immutable, so it is
//!   uploaded once (content-addressed) and reused by later checkpoints.
//!
//! There is no per-entry delete: an entry lives until its bucket expires,
//! and a put of the same `(key, user key)` replaces it (the newest part
//! wins in probes and scans).
//!
//! Byte layout of runs: `docs/bucket-format.md`.

mod filter;
mod memtable;
pub mod run;

use crate::codec::ValueCodec;
use crate::envelope::Envelope;
use crate::keygroup::key_group_of;
use filter::key_hash;
use memtable::MemPart;
pub use run::{RunFile, RunInfo};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt bucket run: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}: entries written out of order")]
    Order(PathBuf),
    #[error("bucketed state '{state}': {reason}")]
    Codec { state: String, reason: String },
    /// The caller's callback failed; its error is the source.
    #[error("{0}")]
    Callback(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BucketError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BucketError {
        let path = path.to_path_buf();
        move |source| BucketError::Io { path, source }
    }
}

/// Keys and user keys of a bucketed state: compared and hashed as bytes.
pub trait BucketKey: AsRef<[u8]> + Clone + Eq + Hash + Ord + Send + Sync + 'static {
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl<const N: usize> BucketKey for [u8; N] {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

impl BucketKey for Vec<u8> {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

/// Heap bytes a value holds besides itself, for the memory budget.
pub trait HeapSize {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl HeapSize for Vec<u8> {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BucketOptions {
    /// Event time per bucket: a probe over a range `r` visits about
    /// `r / width + 1` buckets; expiry frees memory in steps of `width`.
    pub width_ms: i64,
    /// An entry is useless once the watermark reaches `ts + retention_ms`;
    /// its bucket goes when that holds for the bucket's last time.
    pub retention_ms: i64,
    /// Bytes of entries held in memory; past it parts go to disk.
    pub memory_budget: usize,
    pub max_parallelism: u16,
    /// Schema version recorded in every value written (see `envelope`).
    pub schema_version: u16,
}

/// Counters, for the job's summary and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketStats {
    /// Runs written because memory ran out (not at a checkpoint).
    pub spills: u64,
    pub runs_written: u64,
    /// Probes of a run that its filter let through (each reads blocks).
    pub run_probes: u64,
    /// Probes of a run that its filter answered.
    pub filter_skips: u64,
    pub buckets_expired: u64,
}

enum Slot<V> {
    Pending(Arc<V>),
    Written(Arc<RunFile>),
    Failed(String),
}

/// A frozen part: its entries in memory until someone (a spill, or the
/// upload of a checkpoint) writes its run; the first to ask writes it.
struct PartSlot<K, U, C: ValueCodec> {
    state: Arc<str>,
    path: PathBuf,
    bucket_start: i64,
    codec: Arc<C>,
    opts: BucketOptions,
    slot: Mutex<Slot<MemPart<K, U, C::Value>>>,
    /// The bucket expired: a run written after that (for a checkpoint cut
    /// before it) is deleted once the checkpoint lets go of it.
    expired: AtomicBool,
}

/// A part that a checkpoint includes: its run, written on demand.
pub trait PendingRun: Send + Sync {
    fn state(&self) -> &str;
    /// The part's run, written (and synced) first if it is not yet.
    fn run(&self) -> Result<Arc<RunFile>, BucketError>;
}

impl<K, U, C> PendingRun for PartSlot<K, U, C>
where
    K: BucketKey,
    U: BucketKey,
    C: ValueCodec,
    C::Value: HeapSize + Send + Sync,
{
    fn state(&self) -> &str {
        &self.state
    }

    fn run(&self) -> Result<Arc<RunFile>, BucketError> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let mem = match &*slot {
            Slot::Written(run) => return Ok(run.clone()),
            Slot::Failed(reason) => {
                return Err(BucketError::Codec {
                    state: self.state.to_string(),
                    reason: reason.clone(),
                })
            }
            Slot::Pending(mem) => mem.clone(),
        };
        let written = mem
            .write_run(
                &self.path,
                self.bucket_start,
                &*self.codec,
                self.opts.schema_version,
                self.opts.max_parallelism,
                &self.state,
            )
            .and_then(|_| RunFile::open(&self.path, self.bucket_start));
        match written {
            Ok(run) => {
                let run = Arc::new(run);
                if self.expired.load(Ordering::Acquire) {
                    run.mark_obsolete();
                }
                *slot = Slot::Written(run.clone());
                Ok(run)
            }
            Err(e) => {
                *slot = Slot::Failed(e.to_string());
                Err(e)
            }
        }
    }
}

impl<K, U, C: ValueCodec> PartSlot<K, U, C> {
    fn written(&self) -> Option<Arc<RunFile>> {
        match &*self.slot.try_lock().ok()? {
            Slot::Written(run) => Some(run.clone()),
            _ => None,
        }
    }
}

struct Part<K, U, C: ValueCodec> {
    slot: Arc<PartSlot<K, U, C>>,
    /// The entries, while held in memory (probes use them first).
    mem: Option<Arc<MemPart<K, U, C::Value>>>,
    run: Option<Arc<RunFile>>,
}

struct Bucket<K, U, C: ValueCodec> {
    active: MemPart<K, U, C::Value>,
    /// Oldest first: a later part's entry replaces an earlier one's.
    parts: Vec<Part<K, U, C>>,
}

/// What a checkpoint barrier takes from a bucketed state: every part that
/// is live, frozen so that nothing written later changes it.
pub struct BucketCut {
    pub state: String,
    pub parts: Vec<Arc<dyn PendingRun>>,
    /// In-memory bytes of the entries put since the previous cut: the
    /// state this checkpoint changed.
    pub new_bytes: u64,
}

/// The bucketed state of one instance (one thread: no locks on its path).
pub struct BucketedState<K, U, C: ValueCodec> {
    name: Arc<str>,
    dir: PathBuf,
    opts: BucketOptions,
    codec: Arc<C>,
    buckets: BTreeMap<i64, Bucket<K, U, C>>,
    /// Bytes of entries in memory (active parts and parts not yet dropped).
    mem_bytes: usize,
    tag: String,
    next_file: u64,
    watermark: i64,
    /// Bytes frozen into parts since the last cut.
    frozen_since_cut: u64,
    /// The emptied table of an expired part, for the next new one.
    spare: Option<memtable::Table<K, U, C::Value>>,
    buf: Vec<u8>,
    stats: BucketStats,
}

impl<K, U, C> BucketedState<K, U, C>
where
    K: BucketKey,
    U: BucketKey,
    C: ValueCodec + 'static,
    C::Value: HeapSize + Clone + Send + Sync + 'static,
{
    /// A bucketed state writing its runs in `dir`, holding `restored` runs
    /// (from a checkpoint, oldest first within each bucket).
    pub fn open(
        name: &str,
        dir: &Path,
        codec: C,
        opts: BucketOptions,
        restored: Vec<Arc<RunFile>>,
    ) -> Result<Self, BucketError> {
        if opts.width_ms <= 0 {
            return Err(BucketError::Codec {
                state: name.into(),
                reason: format!("bucket width {} ms must be positive", opts.width_ms),
            });
        }
        std::fs::create_dir_all(dir).map_err(BucketError::io(dir))?;
        let codec = Arc::new(codec);
        let mut state = BucketedState {
            name: name.into(),
            dir: dir.to_path_buf(),
            opts,
            codec,
            buckets: BTreeMap::new(),
            mem_bytes: 0,
            tag: format!("{:016x}", rand::random::<u64>()),
            next_file: 0,
            watermark: i64::MIN,
            frozen_since_cut: 0,
            spare: None,
            buf: Vec::new(),
            stats: BucketStats::default(),
        };
        for run in restored {
            let start = run.info().bucket_start;
            let slot = state.new_slot(start, Slot::Written(run.clone()));
            state.bucket(start).parts.push(Part {
                slot,
                mem: None,
                run: Some(run),
            });
        }
        Ok(state)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> BucketStats {
        self.stats
    }

    /// Bytes of entries held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.mem_bytes
    }

    /// Bytes of the indexes and filters of the runs in use.
    pub fn run_index_bytes(&self) -> usize {
        self.runs().map(|r| r.heap_bytes()).sum()
    }

    /// Bytes of the runs in use, on disk.
    pub fn run_bytes(&self) -> u64 {
        self.runs().map(|r| r.info().bytes).sum()
    }

    fn runs(&self) -> impl Iterator<Item = &Arc<RunFile>> {
        self.buckets
            .values()
            .flat_map(|b| b.parts.iter().filter_map(|p| p.run.as_ref()))
    }

    fn bucket_start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.opts.width_ms)
            .saturating_mul(self.opts.width_ms)
    }

    fn bucket(&mut self, start: i64) -> &mut Bucket<K, U, C> {
        let spare = &mut self.spare;
        self.buckets.entry(start).or_insert_with(|| Bucket {
            active: new_part(spare),
            parts: Vec::new(),
        })
    }

    /// Keeps the table of a part that is gone for the next new part.
    fn recycle(&mut self, part: MemPart<K, U, C::Value>) {
        let bigger = self
            .spare
            .as_ref()
            .is_none_or(|s| s.capacity() < part.map.capacity());
        if bigger {
            let mut map = part.map;
            map.clear();
            self.spare = Some(map);
        }
    }

    fn new_slot(
        &mut self,
        start: i64,
        slot: Slot<MemPart<K, U, C::Value>>,
    ) -> Arc<PartSlot<K, U, C>> {
        self.next_file += 1;
        let file = format!("{}-{}-{:08}.run", self.name, self.tag, self.next_file);
        Arc::new(PartSlot {
            state: self.name.clone(),
            path: self.dir.join(file),
            bucket_start: start,
            codec: self.codec.clone(),
            opts: self.opts,
            slot: Mutex::new(slot),
            expired: AtomicBool::new(false),
        })
    }

    /// Puts `value` under `(key, user_key)` at event time `ts`. The user key
    /// must begin with `ts` as [`crate::keys::ordered_i64`] encodes it (so
    /// user-key order is time order, as a map state of events keeps them).
    pub fn insert(
        &mut self,
        key: K,
        user_key: U,
        ts: i64,
        value: C::Value,
    ) -> Result<(), BucketError> {
        if user_key.as_ref().get(..8) != Some(&crate::keys::ordered_i64(ts)[..]) {
            return Err(BucketError::Codec {
                state: self.name.to_string(),
                reason: format!("user key does not begin with its time {ts}"),
            });
        }
        let start = self.bucket_start(ts);
        let added = self.bucket(start).active.insert(key, user_key, ts, value);
        self.mem_bytes = (self.mem_bytes as isize + added).max(0) as usize;
        if self.mem_bytes > self.opts.memory_budget {
            self.shed_memory()?;
        }
        Ok(())
    }

    /// Calls `f` with every entry of `key` with `lo <= ts <= hi`, once per
    /// user key (the newest put), bucket by bucket in time order.
    pub fn probe(
        &mut self,
        key: &K,
        lo: i64,
        hi: i64,
        mut f: impl FnMut(&U, i64, &C::Value),
    ) -> Result<(), BucketError> {
        if lo > hi {
            return Ok(());
        }
        let (first, last) = (self.bucket_start(lo), self.bucket_start(hi));
        let mut hash = None;
        let mut kg = None;
        let mp = self.opts.max_parallelism;
        let (codec, name, buf, stats) = (&*self.codec, &self.name, &mut self.buf, &mut self.stats);
        let mut hits: Vec<Hit<'_, U, C::Value>> = Vec::new();
        for bucket in self.buckets.range(first..=last).map(|(_, b)| b) {
            hits.clear();
            // Newest first: the first copy of a user key seen wins.
            let mut sources = 0;
            let mems = std::iter::once(Some(&bucket.active))
                .chain(bucket.parts.iter().rev().map(|p| p.mem.as_deref()));
            for (rank, (mem, part)) in mems
                .zip(std::iter::once(None).chain(bucket.parts.iter().rev().map(Some)))
                .enumerate()
            {
                let before = hits.len();
                if let Some(mem) = mem {
                    for item in in_range(mem.get(key), lo, hi) {
                        hits.push(Hit {
                            user_key: Held::Mem(&item.user_key),
                            ts: item.ts,
                            value: Held::Mem(&item.value),
                            rank,
                        });
                    }
                } else if let Some(run) = part.and_then(|p| p.run.as_ref()) {
                    let h = *hash.get_or_insert_with(|| key_hash(key.as_ref()));
                    let g = *kg.get_or_insert_with(|| key_group_of(key.as_ref(), mp));
                    let read = run.probe(h, g, key.as_ref(), (lo, hi), buf, |e| {
                        let uk = U::from_bytes(e.user_key).ok_or_else(|| BucketError::Codec {
                            state: name.to_string(),
                            reason: format!("user key of {} bytes", e.user_key.len()),
                        })?;
                        let value = decode_value(codec, name, e.value)?;
                        hits.push(Hit {
                            user_key: Held::Run(uk),
                            ts: e.ts,
                            value: Held::Run(value),
                            rank,
                        });
                        Ok(())
                    })?;
                    if read {
                        stats.run_probes += 1;
                    } else {
                        stats.filter_skips += 1;
                    }
                }
                sources += usize::from(hits.len() > before);
            }
            if sources > 1 {
                // The same user key in several parts: keep the newest copy.
                hits.sort_by(|a, b| (a.user_key.get(), a.rank).cmp(&(b.user_key.get(), b.rank)));
                hits.dedup_by(|later, first| later.user_key.get() == first.user_key.get());
            }
            for hit in &hits {
                f(hit.user_key.get(), hit.ts, hit.value.get());
            }
        }
        Ok(())
    }

    /// Drops the buckets whose every entry the watermark has made useless.
    /// Returns how many entries went.
    pub fn expire(&mut self, watermark: i64) -> u64 {
        if watermark <= self.watermark {
            return 0;
        }
        self.watermark = watermark;
        let mut dropped = 0u64;
        let (width, retention) = (self.opts.width_ms, self.opts.retention_ms);
        while let Some(entry) = self.buckets.first_entry() {
            let last_ts = entry.key().saturating_add(width - 1);
            if last_ts.saturating_add(retention) > watermark {
                break;
            }
            let bucket = entry.remove();
            dropped += bucket.active.entries as u64;
            self.mem_bytes = self.mem_bytes.saturating_sub(bucket.active.bytes);
            self.recycle(bucket.active);
            for part in bucket.parts {
                part.slot.expired.store(true, Ordering::Release);
                if let Some(run) = part.run.or_else(|| part.slot.written()) {
                    dropped += run.info().entries;
                    run.mark_obsolete();
                }
                if let Some(mem) = part.mem {
                    self.mem_bytes = self.mem_bytes.saturating_sub(mem.bytes);
                    if let Ok(mem) = Arc::try_unwrap(mem) {
                        self.recycle(mem);
                    }
                }
            }
            self.stats.buckets_expired += 1;
        }
        dropped
    }

    /// The barrier: freezes every active part (no I/O) and returns the live
    /// parts, whose runs the checkpoint's upload writes.
    pub fn cut(&mut self) -> BucketCut {
        let starts: Vec<i64> = self.buckets.keys().copied().collect();
        for start in starts {
            self.freeze(start);
        }
        let parts = self
            .buckets
            .values()
            .flat_map(|b| b.parts.iter())
            .map(|p| p.slot.clone() as Arc<dyn PendingRun>)
            .collect();
        BucketCut {
            state: self.name.to_string(),
            parts,
            new_bytes: std::mem::take(&mut self.frozen_since_cut),
        }
    }

    /// Turns bucket `start`'s active part into a frozen one.
    fn freeze(&mut self, start: i64) {
        let Some(bucket) = self.buckets.get_mut(&start) else {
            return;
        };
        if bucket.active.is_empty() {
            return;
        }
        let mem = Arc::new(std::mem::replace(
            &mut bucket.active,
            new_part(&mut self.spare),
        ));
        self.frozen_since_cut += mem.bytes as u64;
        let slot = self.new_slot(start, Slot::Pending(mem.clone()));
        self.bucket(start).parts.push(Part {
            slot,
            mem: Some(mem),
            run: None,
        });
    }

    /// Brings memory under the budget: parts whose runs exist give up their
    /// entries first (oldest buckets first), then the oldest active parts
    /// are frozen and written. Stops at 3/4 of the budget so that it does
    /// not run again at the next insert.
    fn shed_memory(&mut self) -> Result<(), BucketError> {
        let target = self.opts.memory_budget / 4 * 3;
        self.drop_written(target);
        if self.mem_bytes <= target {
            return Ok(());
        }
        let starts: Vec<i64> = self.buckets.keys().copied().collect();
        for start in starts {
            if self.mem_bytes <= target {
                break;
            }
            self.freeze(start);
            let Some(bucket) = self.buckets.get_mut(&start) else {
                continue;
            };
            for part in bucket.parts.iter_mut().filter(|p| p.mem.is_some()) {
                let run = part.slot.run()?;
                if let Some(mem) = part.mem.take() {
                    self.mem_bytes = self.mem_bytes.saturating_sub(mem.bytes);
                    self.stats.spills += 1;
                    self.stats.runs_written += 1;
                }
                part.run = Some(run);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    fn shed_memory_for_tests(&mut self) {
        let budget = self.opts.memory_budget;
        self.opts.memory_budget = 0;
        let shed = self.shed_memory();
        self.opts.memory_budget = budget;
        shed.expect("runs written");
    }

    /// Drops the in-memory copy of parts already on disk, oldest first.
    fn drop_written(&mut self, target: usize) {
        for bucket in self.buckets.values_mut() {
            for part in bucket.parts.iter_mut() {
                if self.mem_bytes <= target {
                    return;
                }
                if part.mem.is_none() {
                    continue;
                }
                if let Some(run) = part.slot.written() {
                    if let Some(mem) = part.mem.take() {
                        self.mem_bytes = self.mem_bytes.saturating_sub(mem.bytes);
                    }
                    part.run = Some(run);
                    self.stats.runs_written += 1;
                }
            }
        }
    }

    /// Every live entry as `(key, user key, ts, value)`, newest copy of each
    /// `(key, user key)` last, bucket by bucket: for tools and migration.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(&K, &U, i64, &C::Value) -> Result<(), BucketError>,
    ) -> Result<(), BucketError> {
        for bucket in self.buckets.values() {
            for part in &bucket.parts {
                if let Some(mem) = &part.mem {
                    for_each_mem(mem, &mut f)?;
                } else if let Some(run) = &part.run {
                    run.for_each(|e| {
                        let (key, uk) = match (K::from_bytes(e.key), U::from_bytes(e.user_key)) {
                            (Some(k), Some(u)) => (k, u),
                            _ => {
                                return Err(BucketError::Codec {
                                    state: self.name.to_string(),
                                    reason: "key of an unexpected length".into(),
                                })
                            }
                        };
                        let value = decode_value(&*self.codec, &self.name, e.value)?;
                        f(&key, &uk, e.ts, &value)
                    })?;
                }
            }
            for_each_mem(&bucket.active, &mut f)?;
        }
        Ok(())
    }
}

impl<K, U, C> BucketedState<K, U, C>
where
    K: BucketKey,
    U: BucketKey,
    C: ValueCodec + 'static,
    C::Value: HeapSize + Clone + Send + Sync + 'static,
{
    /// Every live entry with its value envelope, as a run holds it (values
    /// in memory are encoded): what a map state of the same name would hold.
    /// Newest copy of each `(key, user key)` last, bucket by bucket.
    pub fn for_each_encoded(
        &mut self,
        mut f: impl FnMut(&run::RunEntry<'_>) -> Result<(), BucketError>,
    ) -> Result<(), BucketError> {
        let mp = self.opts.max_parallelism;
        let mut value = Vec::new();
        let mut encode = |mem: &MemPart<K, U, C::Value>,
                          f: &mut dyn FnMut(&run::RunEntry<'_>) -> Result<(), BucketError>|
         -> Result<(), BucketError> {
            for (key, items) in &mem.map {
                let key_group = key_group_of(key.as_ref(), mp);
                for item in items {
                    value.clear();
                    crate::envelope::write_header(&mut value, self.opts.schema_version, None);
                    self.codec
                        .encode(&item.value, &mut value)
                        .map_err(|reason| BucketError::Codec {
                            state: self.name.to_string(),
                            reason,
                        })?;
                    f(&run::RunEntry {
                        key_group,
                        key: key.as_ref(),
                        user_key: item.user_key.as_ref(),
                        ts: item.ts,
                        value: &value,
                    })?;
                }
            }
            Ok(())
        };
        for bucket in self.buckets.values() {
            for part in &bucket.parts {
                if let Some(mem) = &part.mem {
                    encode(mem, &mut f)?;
                } else if let Some(run) = &part.run {
                    run.for_each(&mut f)?;
                }
            }
            encode(&bucket.active, &mut f)?;
        }
        Ok(())
    }
}

fn for_each_mem<K: BucketKey, U: BucketKey, V: HeapSize>(
    mem: &MemPart<K, U, V>,
    f: &mut impl FnMut(&K, &U, i64, &V) -> Result<(), BucketError>,
) -> Result<(), BucketError> {
    for (key, items) in &mem.map {
        for item in items {
            f(key, &item.user_key, item.ts, &item.value)?;
        }
    }
    Ok(())
}

fn new_part<K: BucketKey, U: BucketKey, V: HeapSize>(
    spare: &mut Option<memtable::Table<K, U, V>>,
) -> MemPart<K, U, V> {
    spare.take().map_or_else(MemPart::new, MemPart::with_map)
}

/// The items of one key with `lo <= ts <= hi`: user keys begin with the
/// time (checked at insert), so items in user-key order are in time order.
fn in_range<U, V>(items: &[memtable::Item<U, V>], lo: i64, hi: i64) -> &[memtable::Item<U, V>] {
    let from = items.partition_point(|i| i.ts < lo);
    let to = items.partition_point(|i| i.ts <= hi);
    items.get(from..to).unwrap_or(&[])
}

/// A probe's match: borrowed from memory, or decoded from a run.
struct Hit<'a, U, V> {
    user_key: Held<'a, U>,
    ts: i64,
    value: Held<'a, V>,
    /// 0 for the active part, then older parts: lower is newer.
    rank: usize,
}

/// A probe's user key or value: borrowed from a part in memory, or owned
/// after decoding from a run.
enum Held<'a, T> {
    Mem(&'a T),
    Run(T),
}

impl<T> Held<'_, T> {
    fn get(&self) -> &T {
        match self {
            Held::Mem(t) => t,
            Held::Run(t) => t,
        }
    }
}

fn decode_value<C: ValueCodec>(
    codec: &C,
    state: &str,
    raw: &[u8],
) -> Result<C::Value, BucketError> {
    let bad = |reason: String| BucketError::Codec {
        state: state.to_string(),
        reason,
    };
    let env = Envelope::parse(raw).map_err(|e| bad(e.to_string()))?;
    codec.decode(env.payload).map_err(bad)
}

/// Opens the runs a checkpoint lists, downloaded into `dir`.
pub fn open_runs(dir: &Path, runs: &[RunInfo]) -> Result<Vec<Arc<RunFile>>, BucketError> {
    runs.iter()
        .map(|r| RunFile::open(&dir.join(&r.file), r.bucket_start).map(Arc::new))
        .collect()
}

#[cfg(test)]
mod tests;
