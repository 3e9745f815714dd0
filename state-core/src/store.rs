//! Opening a store: column families, the persisted store and state metadata,
//! schema reconciliation, and the handles operators use.

use crate::changes::ChangeLog;
use crate::clock::Clock;
use crate::descriptor::{StateKind, StateMeta, TimeDomain};
use crate::envelope::{self, Envelope};
use crate::error::{Result, StateError};
use crate::keygroup::{check_max_parallelism, key_group_of, KeyGroupRange};
use crate::keys;
use crate::options::{RocksTuning, StoreOptions};
use crate::schema::SchemaSet;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options,
    WriteBufferManager, WriteOptions, DB,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) const META_CF: &str = "__meta";
pub(crate) const TIMERS_CF: &str = "__timers";
const STORE_META_KEY: &[u8] = b"store";
const STATE_META_PREFIX: &str = "state/";
const MAGIC: &str = "streamstate-keyed-state";
/// Version of the store layout (keys, envelope, metadata): docs/state-format.md.
pub const STORE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoreMeta {
    magic: String,
    format_version: u32,
    max_parallelism: u16,
}

pub(crate) struct StateInfo {
    pub meta: StateMeta,
    pub schemas: SchemaSet,
    pub cf: String,
}

impl StateInfo {
    pub fn name(&self) -> &str {
        &self.meta.descriptor.name
    }

    pub fn kind(&self) -> StateKind {
        self.meta.descriptor.kind
    }
}

pub(crate) struct StoreInner {
    pub db: DB,
    pub path: PathBuf,
    pub max_parallelism: u16,
    pub key_groups: KeyGroupRange,
    pub states: HashMap<String, Arc<StateInfo>>,
    pub clock: Arc<dyn Clock>,
    /// Event time (the operator's watermark) for event-time TTL; shared with
    /// the compaction filters.
    pub event_time: Arc<AtomicI64>,
    pub write_opts: WriteOptions,
    /// Logical bytes written (keys and values of puts, keys of deletes):
    /// "state changed", against which checkpoint uploads are measured.
    pub bytes_written: AtomicU64,
    /// Every write since the last checkpoint cut (layout v2 checkpoints).
    pub changes: ChangeLog,
}

/// A keyed state store on RocksDB. Cheap to clone; handles keep it alive.
#[derive(Clone)]
pub struct StateStore {
    pub(crate) inner: Arc<StoreInner>,
}

fn cf_name(kind: StateKind, name: &str) -> String {
    format!("{}:{name}", kind.name())
}

fn kind_of_cf(cf: &str) -> Option<StateKind> {
    match cf.split_once(':')?.0 {
        "value" => Some(StateKind::Value),
        "list" => Some(StateKind::List),
        "map" => Some(StateKind::Map),
        _ => None,
    }
}

impl StateStore {
    /// Opens (or creates) the store in `path` with the declared states.
    ///
    /// Refused, with nothing stored changed: a directory that is not a store
    /// of this toolkit, one locked by another process, another max
    /// parallelism, a state redeclared with another kind, a schema that cannot
    /// read every version already stored.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<StateStore> {
        let path = path.as_ref().to_path_buf();
        validate_options(&opts)?;
        let existing = existing_column_families(&path)?;
        let resources = SharedResources::new(&opts.tuning);
        let event_time = Arc::new(AtomicI64::new(i64::MIN));
        let ttl_of: HashMap<String, TimeDomain> = opts
            .states
            .iter()
            .filter_map(|d| d.ttl.map(|t| (cf_name(d.kind, &d.name), t.time)))
            .collect();

        let mut names: Vec<String> = existing.clone();
        for d in &opts.states {
            let cf = cf_name(d.kind, &d.name);
            if !names.contains(&cf) {
                names.push(cf);
            }
        }
        add_fixed_column_families(&mut names);
        let descriptors: Vec<ColumnFamilyDescriptor> = names
            .iter()
            .map(|n| {
                let cf_opts = column_family_options(
                    &opts.tuning,
                    &resources,
                    kind_of_cf(n),
                    ttl_of.get(n).copied(),
                    &event_time,
                    &opts.clock,
                );
                ColumnFamilyDescriptor::new(n.as_str(), cf_opts)
            })
            .collect();
        let db_opts = db_options(&opts.tuning, &resources);
        let mut db = DB::open_cf_descriptors(&db_opts, &path, descriptors)
            .map_err(|e| map_open_error(&path, e))?;
        let created: Vec<String> = names
            .iter()
            .filter(|n| !existing.contains(n))
            .cloned()
            .collect();

        match load_metadata(&db, &path, &opts, existing.is_empty()) {
            Ok((states, to_write)) => {
                write_metadata(&db, to_write)?;
                let mut write_opts = WriteOptions::default();
                write_opts.disable_wal(!opts.tuning.wal);
                let changes = ChangeLog::new(&db, &names)?;
                Ok(StateStore {
                    inner: Arc::new(StoreInner {
                        db,
                        path,
                        max_parallelism: opts.max_parallelism,
                        key_groups: opts.key_groups,
                        states,
                        clock: opts.clock.clone(),
                        event_time,
                        write_opts,
                        bytes_written: AtomicU64::new(0),
                        changes,
                    }),
                })
            }
            Err(e) => {
                // Leave the store as it was: drop what this failed open created.
                if !existing.is_empty() {
                    for cf in &created {
                        let _ = db.drop_cf(cf);
                    }
                }
                drop(db);
                if existing.is_empty() {
                    let _ = std::fs::remove_dir_all(&path);
                }
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn max_parallelism(&self) -> u16 {
        self.inner.max_parallelism
    }

    pub fn key_groups(&self) -> KeyGroupRange {
        self.inner.key_groups
    }

    /// The key group a key belongs to in this store.
    pub fn key_group(&self, key: &[u8]) -> u16 {
        key_group_of(key, self.inner.max_parallelism)
    }

    /// Declared and stored states, with their schema histories.
    pub fn states(&self) -> Vec<StateMeta> {
        let mut v: Vec<StateMeta> = self.inner.states.values().map(|s| s.meta.clone()).collect();
        v.sort_by(|a, b| a.descriptor.name.cmp(&b.descriptor.name));
        v
    }

    pub fn state_meta(&self, name: &str) -> Result<StateMeta> {
        Ok(self.inner.state(name)?.meta.clone())
    }

    /// Reports the operator's watermark; event-time TTL expires against it.
    pub fn advance_event_time(&self, watermark_ms: i64) {
        self.inner
            .event_time
            .fetch_max(watermark_ms, Ordering::SeqCst);
    }

    pub fn event_time(&self) -> i64 {
        self.inner.event_time.load(Ordering::SeqCst)
    }

    /// Flushes all memtables to SST files.
    pub fn flush(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = self.inner.all_cfs();
        self.inner
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(StateError::rocks("flush"))
    }

    /// Starts flushing the memtables without waiting. Called shortly before
    /// a checkpoint is due, it leaves the checkpoint's synchronous flush only
    /// what was written since, which keeps the operator's pause short.
    pub fn flush_in_background(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = self.inner.all_cfs();
        let mut fo = rocksdb::FlushOptions::default();
        fo.set_wait(false);
        self.inner
            .db
            .flush_cfs_opt(&cfs, &fo)
            .map_err(StateError::rocks("background flush"))
    }

    /// Runs a full compaction of every state (drops expired entries now).
    pub fn compact(&self) -> Result<()> {
        for cf in self.inner.all_cfs() {
            self.inner
                .db
                .compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Logical bytes written since the store was opened (keys and values of
    /// puts, keys of deletes): what "state changed" means for checkpoints.
    pub fn bytes_written(&self) -> u64 {
        self.inner.bytes_written.load(Ordering::Relaxed)
    }

    /// Whether RocksDB has compactions running or due (after a restore that
    /// left overlapping runs to the background, for instance).
    pub fn compactions_pending(&self) -> bool {
        self.inner.all_cfs().into_iter().any(|cf| {
            [
                "rocksdb.compaction-pending",
                "rocksdb.num-running-compactions",
            ]
            .iter()
            .any(|p| {
                self.inner
                    .db
                    .property_int_value_cf(cf, *p)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
                    > 0
            })
        })
    }

    /// Bytes of writes recorded for the next checkpoint (layout v2): the
    /// memory the change log holds.
    pub fn change_log_bytes(&self) -> usize {
        self.inner.changes.len()
    }

    /// Bytes on disk (SSTs) plus memtables: the size of the state.
    pub fn approximate_size(&self) -> u64 {
        let mut total = 0;
        for cf in self.inner.all_cfs() {
            for prop in [
                "rocksdb.total-sst-files-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                total += self
                    .inner
                    .db
                    .property_int_value_cf(cf, prop)
                    .ok()
                    .flatten()
                    .unwrap_or(0);
            }
        }
        total
    }

    /// RocksDB's own estimate of live keys in a state.
    pub fn estimate_entries(&self, state: &str) -> Result<u64> {
        let info = self.inner.state(state)?;
        let cf = self.inner.cf(&info.cf)?;
        Ok(self
            .inner
            .db
            .property_int_value_cf(cf, "rocksdb.estimate-num-keys")
            .map_err(StateError::rocks("estimate-num-keys"))?
            .unwrap_or(0))
    }
}

impl StoreInner {
    pub fn state(&self, name: &str) -> Result<&Arc<StateInfo>> {
        self.states
            .get(name)
            .ok_or_else(|| StateError::UnknownState(name.to_string()))
    }

    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Corrupt {
            state: name.to_string(),
            what: "column family",
            reason: "missing".into(),
        })
    }

    /// Names of the column families that hold state: states, timers, metadata.
    pub fn all_cf_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.states.values().map(|s| s.cf.clone()).collect();
        names.push(TIMERS_CF.to_string());
        names.push(META_CF.to_string());
        names
    }

    pub fn all_cfs(&self) -> Vec<&ColumnFamily> {
        self.all_cf_names()
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .collect()
    }

    /// Key group of `key`, refused when this instance does not own it.
    pub fn owned_key_group(&self, key: &[u8]) -> Result<u16> {
        let kg = key_group_of(key, self.max_parallelism);
        if !self.key_groups.contains(kg) {
            return Err(StateError::KeyGroupNotOwned {
                key_group: kg,
                range: self.key_groups,
            });
        }
        Ok(kg)
    }

    /// Applies `batch`: every write of the store goes through here, so that
    /// the change log sees it.
    pub fn write(&self, batch: rocksdb::WriteBatch, what: &str) -> Result<()> {
        self.changes
            .write(&self.db, batch, &self.write_opts)
            .map_err(|source| StateError::RocksDb {
                context: what.to_string(),
                source,
            })
    }

    pub fn note_written(&self, bytes: usize) {
        self.bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn now_ms(&self, domain: TimeDomain) -> i64 {
        match domain {
            TimeDomain::EventTime => self.event_time.load(Ordering::Relaxed),
            TimeDomain::ProcessingTime => self.clock.now_ms(),
        }
    }

    /// Expiry to stamp on a value written now, if the state has a TTL.
    /// Before the first watermark event time is unknown (`i64::MIN`): a
    /// value written then gets no expiry rather than one already in the past.
    pub fn expiry_for(&self, info: &StateInfo) -> Option<i64> {
        let ttl = info.meta.descriptor.ttl?;
        let now = self.now_ms(ttl.time);
        (now != i64::MIN).then(|| now.saturating_add(ttl.ttl_ms))
    }

    pub fn is_expired(&self, info: &StateInfo, env: &Envelope<'_>) -> bool {
        match (info.meta.descriptor.ttl, env.expiry_ms) {
            (Some(t), Some(e)) => e <= self.now_ms(t.time),
            _ => false,
        }
    }
}

fn validate_options(opts: &StoreOptions) -> Result<()> {
    check_max_parallelism(opts.max_parallelism)?;
    if opts.key_groups.end >= opts.max_parallelism {
        return Err(StateError::InvalidOption(format!(
            "key-group range {} exceeds max_parallelism {}",
            opts.key_groups, opts.max_parallelism
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for d in &opts.states {
        if d.name.is_empty() || d.name.starts_with("__") || d.name.contains(['/', ':']) {
            return Err(StateError::InvalidOption(format!(
                "state name '{}' must be non-empty, not start with '__', and contain no '/' or ':'",
                d.name
            )));
        }
        if !seen.insert(d.name.as_str()) {
            return Err(StateError::InvalidOption(format!(
                "state '{}' declared twice",
                d.name
            )));
        }
        if let Some(ttl) = d.ttl {
            if ttl.ttl_ms <= 0 {
                return Err(StateError::InvalidOption(format!(
                    "state '{}': TTL must be positive, got {} ms",
                    d.name, ttl.ttl_ms
                )));
            }
        }
        // Parse before touching the disk, so a bad schema creates nothing.
        schema_registry::AvroSchema::parse(&d.value_schema).map_err(|e| {
            StateError::InvalidSchema {
                state: d.name.clone(),
                reason: e.to_string(),
            }
        })?;
    }
    Ok(())
}

fn existing_column_families(path: &Path) -> Result<Vec<String>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    if !path.is_dir() {
        return Err(StateError::NotOurs {
            path: path.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let empty = std::fs::read_dir(path)
        .map_err(StateError::io(format!("reading {}", path.display())))?
        .next()
        .is_none();
    if empty {
        return Ok(Vec::new());
    }
    if !path.join("CURRENT").exists() {
        return Err(StateError::NotOurs {
            path: path.to_path_buf(),
            reason: "directory is not empty and holds no RocksDB database".into(),
        });
    }
    let cfs = DB::list_cf(&Options::default(), path).map_err(|e| map_open_error(path, e))?;
    if !cfs.iter().any(|c| c == META_CF) {
        return Err(StateError::NotOurs {
            path: path.to_path_buf(),
            reason: "a RocksDB database without this toolkit's metadata".into(),
        });
    }
    Ok(cfs)
}

fn map_open_error(path: &Path, e: rocksdb::Error) -> StateError {
    let msg = e.to_string();
    if msg.contains("lock") || msg.contains("LOCK") {
        StateError::Locked {
            path: path.to_path_buf(),
        }
    } else {
        StateError::RocksDb {
            context: format!("opening {}", path.display()),
            source: e,
        }
    }
}

type StateMap = HashMap<String, Arc<StateInfo>>;
/// A metadata key and its JSON value.
type MetaRecord = (Vec<u8>, Vec<u8>);

/// Returns the states to serve and the metadata records to write, reading
/// what is stored and reconciling declared schemas with it. Writes nothing.
fn load_metadata(
    db: &DB,
    path: &Path,
    opts: &StoreOptions,
    fresh: bool,
) -> Result<(StateMap, Vec<MetaRecord>)> {
    let meta_cf = db.cf_handle(META_CF).ok_or_else(|| StateError::NotOurs {
        path: path.to_path_buf(),
        reason: "metadata column family missing".into(),
    })?;
    let mut to_write = Vec::new();
    match db
        .get_cf(meta_cf, STORE_META_KEY)
        .map_err(StateError::rocks("reading store metadata"))?
    {
        Some(raw) => check_store_meta(path, &raw, opts.max_parallelism)?,
        None if fresh => {
            let meta = StoreMeta {
                magic: MAGIC.into(),
                format_version: STORE_FORMAT_VERSION,
                max_parallelism: opts.max_parallelism,
            };
            to_write.push((STORE_META_KEY.to_vec(), to_json(&meta)));
        }
        None => {
            return Err(StateError::NotOurs {
                path: path.to_path_buf(),
                reason: "store metadata record missing".into(),
            })
        }
    }

    let stored = read_state_metas(db, meta_cf)?;
    let mut states = HashMap::new();
    for declared in &opts.states {
        let (schemas, meta) = SchemaSet::reconcile(declared, stored.get(&declared.name))?;
        if stored.get(&declared.name) != Some(&meta) {
            to_write.push((state_meta_key(&declared.name), to_json(&meta)));
        }
        let cf = cf_name(meta.descriptor.kind, &meta.descriptor.name);
        states.insert(
            declared.name.clone(),
            Arc::new(StateInfo { meta, schemas, cf }),
        );
    }
    // States stored but not declared this time stay readable (tools, savepoints).
    for (name, meta) in stored {
        if let std::collections::hash_map::Entry::Vacant(slot) = states.entry(name) {
            let schemas = SchemaSet::compile(&meta)?;
            let cf = cf_name(meta.descriptor.kind, slot.key());
            slot.insert(Arc::new(StateInfo { meta, schemas, cf }));
        }
    }
    Ok((states, to_write))
}

fn check_store_meta(path: &Path, raw: &[u8], requested: u16) -> Result<()> {
    let meta: StoreMeta = serde_json::from_slice(raw).map_err(|e| StateError::NotOurs {
        path: path.to_path_buf(),
        reason: format!("store metadata does not parse: {e}"),
    })?;
    if meta.magic != MAGIC {
        return Err(StateError::NotOurs {
            path: path.to_path_buf(),
            reason: format!("unexpected magic '{}'", meta.magic),
        });
    }
    if meta.format_version > STORE_FORMAT_VERSION {
        return Err(StateError::NotOurs {
            path: path.to_path_buf(),
            reason: format!(
                "store format {} is newer than this release reads ({STORE_FORMAT_VERSION})",
                meta.format_version
            ),
        });
    }
    if meta.max_parallelism != requested {
        return Err(StateError::MaxParallelismMismatch {
            path: path.to_path_buf(),
            stored: meta.max_parallelism,
            requested,
        });
    }
    Ok(())
}

pub(crate) fn read_state_metas(
    db: &DB,
    meta_cf: &ColumnFamily,
) -> Result<BTreeMap<String, StateMeta>> {
    let mut out = BTreeMap::new();
    let iter = db.prefix_iterator_cf(meta_cf, STATE_META_PREFIX.as_bytes());
    for item in iter {
        let (k, v) = item.map_err(StateError::rocks("reading state metadata"))?;
        let Some(name) = k.strip_prefix(STATE_META_PREFIX.as_bytes()) else {
            break;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let meta: StateMeta = serde_json::from_slice(&v).map_err(|e| StateError::Corrupt {
            state: name.clone(),
            what: "state metadata",
            reason: e.to_string(),
        })?;
        out.insert(name, meta);
    }
    Ok(out)
}

fn state_meta_key(name: &str) -> Vec<u8> {
    format!("{STATE_META_PREFIX}{name}").into_bytes()
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Metadata is small and must survive without a WAL: write, then flush.
fn write_metadata(db: &DB, records: Vec<MetaRecord>) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let cf = db.cf_handle(META_CF).ok_or_else(|| StateError::Corrupt {
        state: META_CF.into(),
        what: "column family",
        reason: "missing".into(),
    })?;
    let mut batch = rocksdb::WriteBatch::default();
    for (k, v) in records {
        batch.put_cf(cf, k, v);
    }
    db.write(batch)
        .map_err(StateError::rocks("writing metadata"))?;
    db.flush_cf(cf)
        .map_err(StateError::rocks("flushing metadata"))
}

/// Every store has the metadata and timer column families.
fn add_fixed_column_families(names: &mut Vec<String>) {
    for fixed in [META_CF, TIMERS_CF] {
        if !names.iter().any(|n| n == fixed) {
            names.push(fixed.to_string());
        }
    }
}

/// A fresh database for a restore that ingests runs: the store's column
/// family options (its merge operator compacts list operands), no TTL
/// filter (nothing has expired before the store reopens), and no write
/// stall while files are ingested one run at a time.
pub(crate) fn open_for_ingest(path: &Path, cf_names: &[String]) -> Result<DB> {
    let tuning = RocksTuning::default();
    let resources = SharedResources::new(&tuning);
    let event_time = Arc::new(AtomicI64::new(i64::MIN));
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let mut names: Vec<String> = cf_names.to_vec();
    add_fixed_column_families(&mut names);
    let descriptors: Vec<ColumnFamilyDescriptor> = names
        .iter()
        .map(|n| {
            let mut o = column_family_options(
                &tuning,
                &resources,
                kind_of_cf(n),
                None,
                &event_time,
                &clock,
            );
            // Fixed level sizes: L0 compacts into L1, not into the bottom
            // level where the oldest run (most of the state) was ingested,
            // so merging the newer runs never rewrites it.
            o.set_level_compaction_dynamic_level_bytes(false);
            o.set_level_zero_slowdown_writes_trigger(1 << 20);
            o.set_level_zero_stop_writes_trigger(1 << 20);
            ColumnFamilyDescriptor::new(n.as_str(), o)
        })
        .collect();
    let mut db_opts = db_options(&tuning, &resources);
    // The restore's compaction of overlapping runs is its longest part.
    db_opts.set_max_subcompactions(2);
    DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(|e| map_open_error(path, e))
}

struct SharedResources {
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl SharedResources {
    fn new(t: &RocksTuning) -> Self {
        let cache = Cache::new_lru_cache(t.block_cache_bytes);
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager(t.write_buffer_budget_bytes, false);
        SharedResources {
            cache,
            write_buffers,
        }
    }
}

fn db_options(t: &RocksTuning, r: &SharedResources) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(t.background_jobs);
    o.set_write_buffer_manager(&r.write_buffers);
    // Hash-based memtables do not support concurrent inserts.
    o.set_allow_concurrent_memtable_write(!t.hash_memtable);
    // Keep RocksDB's info logs from growing without bound next to the state.
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(4 << 20);
    o
}

fn column_family_options(
    t: &RocksTuning,
    r: &SharedResources,
    kind: Option<StateKind>,
    ttl: Option<TimeDomain>,
    event_time: &Arc<AtomicI64>,
    clock: &Arc<dyn Clock>,
) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(t.write_buffer_bytes);
    o.set_max_write_buffer_number(t.max_write_buffers);
    o.set_target_file_size_base(t.target_file_size_bytes);
    o.set_level_zero_file_num_compaction_trigger(t.l0_compaction_trigger);
    // Keep writes flowing while L0 holds more files than the trigger.
    o.set_level_zero_slowdown_writes_trigger(t.l0_compaction_trigger.max(4) * 5);
    o.set_level_zero_stop_writes_trigger(t.l0_compaction_trigger.max(4) * 9);
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_compression_options(-14, t.zstd_level, 0, 0);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&r.cache);
    table.set_bloom_filter(t.bloom_bits_per_key, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    o.set_block_based_table_factory(&table);
    if kind == Some(StateKind::List) {
        o.set_merge_operator_associative("streamstate-list-append", list_append);
    }
    if kind == Some(StateKind::Map) {
        // Probes seek within one (key, namespace): prefix bloom filters let a
        // seek skip every SST (and the memtable) that lacks the key, which is
        // most of them for the join's negative probes.
        o.set_prefix_extractor(rocksdb::SliceTransform::create(
            "streamstate-key-prefix",
            key_prefix,
            Some(key_prefix_in_domain),
        ));
        o.set_memtable_prefix_bloom_ratio(0.05);
        if t.hash_memtable {
            o.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
                bucket_count: 1 << 18,
                height: 4,
                branching_factor: 4,
            });
        }
    }
    if let Some(domain) = ttl {
        let event_time = event_time.clone();
        let clock = clock.clone();
        o.set_compaction_filter(
            "streamstate-ttl",
            move |_level, _key: &[u8], value: &[u8]| {
                let now = match domain {
                    TimeDomain::EventTime => event_time.load(Ordering::Relaxed),
                    TimeDomain::ProcessingTime => clock.now_ms(),
                };
                ttl_decision(kind, value, now)
            },
        );
    }
    o
}

/// Drops a value once it has expired; a list only once all its elements have.
/// Anything that does not parse is kept: compaction never loses data it does
/// not understand.
fn ttl_decision(kind: Option<StateKind>, value: &[u8], now: i64) -> rocksdb::CompactionDecision {
    let expired = if kind == Some(StateKind::List) {
        let mut all = true;
        let mut any = false;
        for e in envelope::list_elements(value) {
            any = true;
            match e {
                Ok(env) if env.is_expired(now) => {}
                _ => {
                    all = false;
                    break;
                }
            }
        }
        any && all
    } else {
        Envelope::parse(value).is_ok_and(|env| env.is_expired(now))
    };
    if expired {
        rocksdb::CompactionDecision::Remove
    } else {
        rocksdb::CompactionDecision::Keep
    }
}

/// The `[kg][len][key][len][namespace]` prefix of a state key.
fn key_prefix(raw: &[u8]) -> &[u8] {
    match keys::decode(raw) {
        Some(d) => &raw[..raw.len() - d.user_key.len()],
        None => raw,
    }
}

fn key_prefix_in_domain(raw: &[u8]) -> bool {
    keys::decode(raw).is_some()
}

/// List append: operands are already `[len][envelope]` sequences, so
/// appending is concatenation.
fn list_append(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

pub(crate) fn encode_key(
    out: &mut Vec<u8>,
    key_group: u16,
    key: &[u8],
    user_key: &[u8],
) -> Result<()> {
    out.clear();
    keys::encode_prefix(out, key_group, key, b"")?;
    out.extend_from_slice(user_key);
    Ok(())
}
