//! Savepoints from a live store or a checkpoint.

use super::avro::{Entry, EntryValue, ListElement, TimerRecord};
use super::error::{Result, SavepointError};
use super::meta::{SavepointMeta, SourceInfo};
use super::write::{SavepointWriter, WriteOptions};
use crate::checkpoint::io_runtime;
use crate::descriptor::StateKind;
use crate::envelope::{self, Envelope};
use crate::iter::RawEntry;
use crate::keygroup::KeyGroupRange;
use crate::options::StoreOptions;
use crate::store::{StateInfo, StateStore, TIMERS_CF};
use crate::timers::decode_timer_key;
use checkpoint_store::JobStore;
use std::path::Path;
use std::sync::Arc;

/// Writes a savepoint of every state and timer of `store` (its own
/// key-group range) to `dst_url`, values resolved to each state's current
/// schema. Expired entries are kept (reads hide them) unless
/// `drop_expired_at` says when to drop them.
pub fn create_from_store(
    store: &StateStore,
    user: serde_json::Value,
    source: SourceInfo,
    dst_url: &str,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let rt = io_runtime()?;
    write_store(rt, store, user, source, dst_url, opts, None)
}

pub(crate) fn write_store(
    rt: Arc<tokio::runtime::Runtime>,
    store: &StateStore,
    user: serde_json::Value,
    source: SourceInfo,
    dst_url: &str,
    opts: WriteOptions,
    drop_expired_at: Option<i64>,
) -> Result<SavepointMeta> {
    let range = store.key_groups();
    let mut w = SavepointWriter::create(rt, dst_url, store.max_parallelism(), range, opts)?;
    write_store_into(&mut w, store, drop_expired_at, None)?;
    w.finish(source, user)
}

/// Writes every state and timer of `store`; `origin` (the savepoint a
/// temporary store was loaded from) supplies descriptors and histories.
pub(crate) fn write_store_into(
    w: &mut SavepointWriter,
    store: &StateStore,
    drop_expired_at: Option<i64>,
    origin: Option<&SavepointMeta>,
) -> Result<()> {
    let range = store.key_groups();
    for meta in store.states() {
        let name = meta.descriptor.name.clone();
        let info = store.inner.state(&name)?.clone();
        let schema = info.schemas.current().json().to_string();
        let (descriptor, history) = match origin.and_then(|o| o.state(&name).ok()) {
            Some(s) => (s.descriptor.clone(), s.schema_history.clone()),
            None => (meta.descriptor.clone(), meta.schemas.clone()),
        };
        let entries = store_entries(store, &info, range, drop_expired_at)?;
        w.write_state(descriptor, schema, history, entries)?;
    }
    w.write_timers(store_timers(store, range)?)
}

/// Restores checkpoint `id` (or the latest) of `job` into a temporary
/// folder under `work_dir`, then writes a savepoint of it.
pub fn create_from_checkpoint(
    job: &JobStore,
    id: Option<u64>,
    dst_url: &str,
    work_dir: &Path,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let rt = io_runtime()?;
    checkpoint_to_savepoint(
        rt,
        job,
        job.prefix().as_ref(),
        id,
        dst_url,
        work_dir,
        opts,
        None,
    )
}

/// [`create_from_checkpoint`] for the job at `job_url` (named by its URL,
/// without credentials, in the metadata).
pub fn create_from_job(
    job_url: &str,
    id: Option<u64>,
    dst_url: &str,
    work_dir: &Path,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let rt = io_runtime()?;
    let job =
        crate::checkpoint::open_job(&rt, job_url, checkpoint_store::JobStoreOptions::default())?;
    let name = super::meta::redact(job_url);
    checkpoint_to_savepoint(rt, &job, &name, id, dst_url, work_dir, opts, None)
}

/// [`create_from_checkpoint`] naming the job by its URL in the metadata,
/// optionally dropping entries expired at `drop_expired_at` (compaction).
#[allow(clippy::too_many_arguments)]
pub(crate) fn checkpoint_to_savepoint(
    rt: Arc<tokio::runtime::Runtime>,
    job: &JobStore,
    job_url: &str,
    id: Option<u64>,
    dst_url: &str,
    work_dir: &Path,
    opts: WriteOptions,
    drop_expired_at: Option<i64>,
) -> Result<SavepointMeta> {
    let (store, manifest, _tmp) = restore_checkpoint(&rt, job, id, work_dir)?;
    let mut source = SourceInfo::checkpoint(job_url, manifest.id);
    if drop_expired_at.is_some() {
        source.operation = "compact".into();
    }
    write_store(
        rt,
        &store,
        manifest.user.clone(),
        source,
        dst_url,
        opts,
        drop_expired_at,
    )
}

/// Restores a checkpoint into a temporary folder (deleted when the
/// returned guard drops), opened with its stored states only.
pub(crate) fn restore_checkpoint(
    rt: &tokio::runtime::Runtime,
    job: &JobStore,
    id: Option<u64>,
    work_dir: &Path,
) -> Result<(StateStore, checkpoint_store::Manifest, tempfile::TempDir)> {
    let manifest = match id {
        Some(id) => rt.block_on(job.manifest(id))?,
        None => rt.block_on(job.latest())?.ok_or_else(|| {
            SavepointError::InvalidInput(format!("no complete checkpoint under {}", job.prefix()))
        })?,
    };
    std::fs::create_dir_all(work_dir).map_err(SavepointError::io(format!(
        "creating {}",
        work_dir.display()
    )))?;
    let tmp = tempfile::Builder::new()
        .prefix("restore-")
        .tempdir_in(work_dir)
        .map_err(SavepointError::io("creating a temporary folder"))?;
    let dir = tmp.path().join("db");
    let (start, end) = manifest.key_group_range;
    let opts = StoreOptions::new(Vec::new())
        .with_max_parallelism(manifest.max_parallelism)
        .with_key_groups(KeyGroupRange::new(start, end)?);
    let (store, manifest) = crate::checkpoint::restore(rt, job, Some(manifest.id), &dir, opts)?;
    Ok((store, manifest, tmp))
}

/// Entries of one state of a store, decoded from their envelopes and
/// resolved to the current schema.
pub(crate) fn store_entries<'a>(
    store: &'a StateStore,
    info: &'a Arc<StateInfo>,
    range: KeyGroupRange,
    drop_expired_at: Option<i64>,
) -> Result<impl Iterator<Item = Result<Entry>> + 'a> {
    let scan = store.scan(info.name(), range)?;
    Ok(scan.filter_map(move |raw| {
        let raw = match raw {
            Ok(r) => r,
            Err(e) => return Some(Err(e.into())),
        };
        match convert(info, raw, drop_expired_at) {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }))
}

fn corrupt(info: &StateInfo, what: &'static str, reason: String) -> SavepointError {
    SavepointError::State(crate::StateError::Corrupt {
        state: info.name().to_string(),
        what,
        reason,
    })
}

/// One stored entry as a savepoint entry; `None` when it expired before
/// `drop_expired_at` (for lists: all its elements did).
pub(crate) fn convert(
    info: &StateInfo,
    raw: RawEntry,
    drop_expired_at: Option<i64>,
) -> Result<Option<Entry>> {
    let mut scratch = Vec::new();
    let expired = |e: Option<i64>| drop_expired_at.is_some_and(|now| e.is_some_and(|e| e <= now));
    let (expiry_ms, value) = if info.kind() == StateKind::List {
        let mut items = Vec::new();
        for el in envelope::list_elements(&raw.value) {
            let env = el.map_err(|e| corrupt(info, "list element", e.to_string()))?;
            if expired(env.expiry_ms) {
                continue;
            }
            let v = info
                .schemas
                .to_current(env.schema_version, env.payload, &mut scratch)?
                .to_vec();
            items.push(ListElement {
                expiry_ms: env.expiry_ms,
                value: v,
            });
        }
        if items.is_empty() {
            return Ok(None);
        }
        (list_expiry(&items), EntryValue::List(items))
    } else {
        let env = Envelope::parse(&raw.value)
            .map_err(|e| corrupt(info, "value envelope", e.to_string()))?;
        if expired(env.expiry_ms) {
            return Ok(None);
        }
        let v = info
            .schemas
            .to_current(env.schema_version, env.payload, &mut scratch)?
            .to_vec();
        (env.expiry_ms, EntryValue::Single(v))
    };
    Ok(Some(Entry {
        key_group: raw.key_group,
        key: raw.key,
        namespace: raw.namespace,
        user_key: raw.user_key,
        expiry_ms,
        value,
    }))
}

/// A list expires with its last element; never if any element never does.
pub(crate) fn list_expiry(items: &[ListElement]) -> Option<i64> {
    let mut max = None;
    for i in items {
        match i.expiry_ms {
            None => return None,
            Some(e) => max = Some(max.map_or(e, |m: i64| m.max(e))),
        }
    }
    max
}

/// Timers of `range`, streamed from the timer column family.
pub(crate) fn store_timers(
    store: &StateStore,
    range: KeyGroupRange,
) -> Result<impl Iterator<Item = Result<TimerRecord>> + '_> {
    let cf = store.inner.cf(TIMERS_CF)?;
    let mut it = store.inner.db.raw_iterator_cf(cf);
    it.seek_to_first();
    let mut done = false;
    Ok(std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        let Some(k) = it.key() else {
            done = true;
            return it
                .status()
                .err()
                .map(|e| Err(SavepointError::InvalidInput(format!("timer scan: {e}"))));
        };
        let t = decode_timer_key(k);
        it.next();
        match t {
            Some(t) if range.contains(t.key_group) => {
                return Some(Ok(TimerRecord {
                    key_group: t.key_group,
                    key: t.key,
                    timestamp: t.timestamp,
                    payload: t.payload,
                }))
            }
            Some(_) => continue,
            None => {
                done = true;
                return Some(Err(SavepointError::corrupt(
                    TIMERS_CF,
                    "timer key does not decode",
                )));
            }
        }
    }))
}
