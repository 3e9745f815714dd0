//! Operations that read one savepoint and write another (migrate, compact,
//! rescale), and the read-only checks (verify, diff, deep inspection).
//! Each streams entries: memory does not grow with the savepoint's size.

use super::avro::{Entry, EntryValue};
use super::create::list_expiry;
use super::error::{Result, SavepointError};
use super::meta::{Layout, SavepointMeta, SourceInfo};
use super::read::{parse_schema, Savepoint};
use super::restore::to_raw;
use super::write::{SavepointWriter, WriteOptions};
use crate::checkpoint::io_runtime;
use crate::descriptor::StateKind;
use crate::envelope::{self, Envelope};
use crate::keygroup::{key_group_of, KeyGroupRange};
use crate::options::StoreOptions;
use crate::store::StateStore;
use crate::timers::Timer;
use schema_registry::{check_compatibility, AvroSchema, Incompatibility, Resolver};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------- migrate

/// A top-level field difference between the old and the new schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    /// `added` (with a default: `defaulted`), `removed`, `type_changed`.
    pub change: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Json>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    pub state: String,
    pub compatible: bool,
    /// Every reason the new schema cannot read the old one (field path, rule).
    pub incompatibilities: Vec<Incompatibility>,
    pub fields: Vec<FieldChange>,
    /// Values per schema version before the migration (a savepoint holds
    /// every value of a state in one schema: its current one).
    pub values_by_version: BTreeMap<String, u64>,
    pub dry_run: bool,
    /// Values rewritten (0 on a dry run or a refusal).
    pub rewritten: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Checks that `new_schema_json` can read `state`'s values, then (unless
/// `dry_run` or incompatible) writes `dst_url`: the same savepoint with
/// every value of the state rewritten to the new schema. An incompatible
/// change is reported (`compatible: false`), nothing is written.
pub fn migrate(
    src_url: &str,
    state: &str,
    new_schema_json: &str,
    dst_url: &str,
    dry_run: bool,
    opts: WriteOptions,
) -> Result<MigrationReport> {
    let sp = Savepoint::open(io_runtime()?, src_url)?;
    let section = sp.meta().state(state)?.clone();
    let new = AvroSchema::parse(new_schema_json).map_err(|e| SavepointError::InvalidSchema {
        reason: e.to_string(),
    })?;
    let old = parse_schema(&section)?;
    let incompatibilities = check_compatibility(&new, &old);
    let mut report = MigrationReport {
        state: state.to_string(),
        compatible: incompatibilities.is_empty(),
        incompatibilities,
        fields: field_changes(&old, &new),
        values_by_version: BTreeMap::from([(
            format!("v{}", section.schema_history.len().max(1)),
            section.entries,
        )]),
        dry_run,
        rewritten: 0,
        target: None,
    };
    if !report.compatible || dry_run {
        return Ok(report);
    }
    let resolver = Resolver::compile(&old, &new).map_err(|e| SavepointError::Incompatible {
        state: state.to_string(),
        reasons: vec![e.to_string()],
    })?;
    let mut w = writer_like(&sp, dst_url, opts)?;
    let mut rewritten = 0u64;
    for s in &sp.meta().states {
        let entries = sp.entries(s.name(), None)?;
        if s.name() != state {
            w.write_state(
                s.descriptor.clone(),
                s.schema.clone(),
                s.schema_history.clone(),
                entries,
            )?;
            continue;
        }
        let mut history = s.schema_history.clone();
        history.push(new.json().to_string());
        let mut descriptor = s.descriptor.clone();
        descriptor.value_schema = new.json().to_string();
        let resolver = &resolver;
        let file = sp.describe(&format!("states/{state}"));
        let counter = &mut rewritten;
        let rewritten_entries = entries.map(|e| {
            let mut e = e?;
            rewrite_values(&mut e, |v| {
                let mut out = Vec::with_capacity(v.len() + 8);
                resolver.resolve_bytes(v, &mut out).map_err(|r| {
                    SavepointError::corrupt(&file, format!("value does not decode: {r}"))
                })?;
                Ok(out)
            })?;
            *counter += 1;
            Ok(e)
        });
        w.write_state(
            descriptor,
            new.json().to_string(),
            history,
            rewritten_entries,
        )?;
    }
    copy_timers(&sp, &mut w)?;
    let mut source = SourceInfo::savepoint(sp.location(), "migrate");
    source.checkpoint_id = sp.meta().source.checkpoint_id;
    w.finish(source, sp.meta().user.clone())?;
    report.rewritten = rewritten;
    report.target = Some(super::meta::redact(dst_url));
    Ok(report)
}

fn rewrite_values(e: &mut Entry, mut f: impl FnMut(&[u8]) -> Result<Vec<u8>>) -> Result<()> {
    match &mut e.value {
        EntryValue::Single(v) => *v = f(v)?,
        EntryValue::List(items) => {
            for i in items {
                i.value = f(&i.value)?;
            }
        }
    }
    Ok(())
}

fn fields_of(schema: &AvroSchema) -> Option<Vec<Json>> {
    let v: Json = serde_json::from_str(schema.json()).ok()?;
    v.get("fields")?.as_array().cloned()
}

/// Top-level field differences of two record schemas (empty otherwise).
fn field_changes(old: &AvroSchema, new: &AvroSchema) -> Vec<FieldChange> {
    let (Some(old), Some(new)) = (fields_of(old), fields_of(new)) else {
        return Vec::new();
    };
    let name = |f: &Json| {
        f.get("name")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out = Vec::new();
    for f in &new {
        match old.iter().find(|o| name(o) == name(f)) {
            None => out.push(FieldChange {
                field: name(f),
                change: if f.get("default").is_some() {
                    "defaulted"
                } else {
                    "added"
                }
                .into(),
                default: f.get("default").cloned(),
            }),
            Some(o) if o.get("type") != f.get("type") => out.push(FieldChange {
                field: name(f),
                change: "type_changed".into(),
                default: None,
            }),
            Some(_) => {}
        }
    }
    for o in &old {
        if !new.iter().any(|f| name(f) == name(o)) {
            out.push(FieldChange {
                field: name(o),
                change: "removed".into(),
                default: None,
            });
        }
    }
    out
}

/// A writer for a savepoint with the same key groups and layout as `sp`.
fn writer_like(sp: &Savepoint, dst_url: &str, mut opts: WriteOptions) -> Result<SavepointWriter> {
    let m = sp.meta();
    if let Some(l) = &m.layout {
        opts.splits = l.ranges.iter().map(|r| r[0]).collect();
    }
    let range = KeyGroupRange::new(m.key_group_range[0], m.key_group_range[1])?;
    let mut w = SavepointWriter::create(
        sp.runtime().clone(),
        dst_url,
        m.max_parallelism,
        range,
        opts,
    )?;
    if let Some(l) = &m.layout {
        w.set_layout(l.clone());
    }
    Ok(w)
}

fn copy_timers(sp: &Savepoint, w: &mut SavepointWriter) -> Result<()> {
    let timers = sp.timers()?;
    w.write_timers(timers.into_iter().map(Ok))
}

// ---------------------------------------------------------------- compact

/// Copies savepoint `src_url` to `dst_url`, dropping entries (and list
/// elements) whose expiry is at or before `drop_expired_at`.
pub fn compact(
    src_url: &str,
    dst_url: &str,
    drop_expired_at: Option<i64>,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let sp = Savepoint::open(io_runtime()?, src_url)?;
    let mut w = writer_like(&sp, dst_url, opts)?;
    for s in &sp.meta().states {
        let entries = sp.entries(s.name(), None)?.filter_map(move |e| match e {
            Ok(e) => drop_expired(e, drop_expired_at).map(Ok),
            Err(e) => Some(Err(e)),
        });
        w.write_state(
            s.descriptor.clone(),
            s.schema.clone(),
            s.schema_history.clone(),
            entries,
        )?;
    }
    copy_timers(&sp, &mut w)?;
    let mut source = SourceInfo::savepoint(sp.location(), "compact");
    source.checkpoint_id = sp.meta().source.checkpoint_id;
    w.finish(source, sp.meta().user.clone())
}

/// Compacts checkpoint `id` (or the latest) of the job at `job_url`
/// straight into a savepoint: values resolved to their state's current
/// schema, expired entries dropped.
pub fn compact_checkpoint(
    job_url: &str,
    id: Option<u64>,
    dst_url: &str,
    work_dir: &Path,
    drop_expired_at: Option<i64>,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let rt = io_runtime()?;
    let job =
        crate::checkpoint::open_job(&rt, job_url, checkpoint_store::JobStoreOptions::default())?;
    super::create::checkpoint_to_savepoint(
        rt,
        &job,
        &super::meta::redact(job_url),
        id,
        dst_url,
        work_dir,
        opts,
        drop_expired_at.or(Some(i64::MIN)),
    )
}

fn drop_expired(mut e: Entry, now: Option<i64>) -> Option<Entry> {
    let Some(now) = now else { return Some(e) };
    let expired = |x: Option<i64>| x.is_some_and(|x| x <= now);
    match &mut e.value {
        EntryValue::Single(_) => (!expired(e.expiry_ms)).then_some(e),
        EntryValue::List(items) => {
            items.retain(|i| !expired(i.expiry_ms));
            if items.is_empty() {
                return None;
            }
            e.expiry_ms = list_expiry(items);
            Some(e)
        }
    }
}

// ---------------------------------------------------------------- rescale

/// Rewrites savepoint `src_url` for `parallelism` instances: one savepoint
/// whose files are split at the instances' key-group boundaries (recorded
/// as `layout`), so each instance reads only its own files. With
/// `max_parallelism`, key groups are recomputed from the key bytes for the
/// new count (the source must hold every key group).
pub fn rescale(
    src_url: &str,
    parallelism: u16,
    max_parallelism: Option<u16>,
    dst_url: &str,
    work_dir: &Path,
    opts: WriteOptions,
) -> Result<SavepointMeta> {
    let sp = Savepoint::open(io_runtime()?, src_url)?;
    let m = sp.meta();
    let new_max = max_parallelism.unwrap_or(m.max_parallelism);
    let ranges = (0..parallelism)
        .map(|i| KeyGroupRange::for_operator(new_max, parallelism, i))
        .collect::<crate::Result<Vec<_>>>()?;
    let layout = Layout {
        parallelism,
        ranges: ranges.iter().map(|r| [r.start, r.end]).collect(),
    };
    let mut opts = opts;
    opts.splits = ranges.iter().map(|r| r.start).collect();
    let source = SourceInfo::savepoint(sp.location(), "rescale");
    if new_max == m.max_parallelism {
        let range = KeyGroupRange::new(m.key_group_range[0], m.key_group_range[1])?;
        let mut w = SavepointWriter::create(sp.runtime().clone(), dst_url, new_max, range, opts)?;
        w.set_layout(layout);
        for s in &m.states {
            let entries = sp.entries(s.name(), None)?;
            w.write_state(
                s.descriptor.clone(),
                s.schema.clone(),
                s.schema_history.clone(),
                entries,
            )?;
        }
        copy_timers(&sp, &mut w)?;
        return w.finish(source, m.user.clone());
    }
    if m.key_group_range != [0, m.max_parallelism - 1] {
        return Err(SavepointError::InvalidInput(format!(
            "changing max parallelism needs every key group; this savepoint holds [{}, {}] of {}",
            m.key_group_range[0], m.key_group_range[1], m.max_parallelism
        )));
    }
    // RocksDB sorts the re-keyed entries for us, in bounded memory.
    std::fs::create_dir_all(work_dir).map_err(SavepointError::io(format!(
        "creating {}",
        work_dir.display()
    )))?;
    let tmp = tempfile::Builder::new()
        .prefix("rescale-")
        .tempdir_in(work_dir)
        .map_err(SavepointError::io("creating a temporary folder"))?;
    let store = rekey(&sp, &tmp.path().join("db"), new_max)?;
    let mut w = SavepointWriter::create(
        sp.runtime().clone(),
        dst_url,
        new_max,
        KeyGroupRange::all(new_max),
        opts,
    )?;
    w.set_layout(layout);
    super::create::write_store_into(&mut w, &store, None, Some(m))?;
    w.finish(source, m.user.clone())
}

fn rekey(sp: &Savepoint, dir: &Path, new_max: u16) -> Result<StateStore> {
    let states = sp
        .meta()
        .states
        .iter()
        .map(|s| {
            let mut d = s.descriptor.clone();
            d.value_schema = s.schema.clone();
            // Nothing may expire while the data is being moved.
            d.ttl = None;
            d
        })
        .collect();
    let store = StateStore::open(dir, StoreOptions::new(states).with_max_parallelism(new_max))?;
    for s in &sp.meta().states {
        let version = store.state_meta(s.name())?.current_version();
        let mut w = store.raw_writer();
        for e in sp.entries(s.name(), None)? {
            let mut e = e?;
            e.key_group = key_group_of(&e.key, new_max);
            w.put(s.name(), &to_raw(e, version))?;
            w.maybe_commit()?;
        }
        w.commit()?;
    }
    let mut w = store.raw_writer();
    for t in sp.timers()? {
        w.put_timer(&Timer {
            timestamp: t.timestamp,
            key_group: key_group_of(&t.key, new_max),
            key: t.key,
            payload: t.payload,
        })?;
    }
    w.commit()?;
    Ok(store)
}

// ---------------------------------------------------------------- verify

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub location: String,
    pub ok: bool,
    pub files_checked: u64,
    pub entries_checked: u64,
    pub timers_checked: u64,
    pub problems: Vec<Problem>,
}

/// Reads every file of the savepoint and checks sizes, checksums, Avro
/// structure, key order, key-group ranges and every count in the metadata.
pub fn verify(url: &str) -> Result<VerifyReport> {
    let rt = io_runtime()?;
    let mut report = VerifyReport {
        location: super::meta::redact(url),
        ok: true,
        files_checked: 0,
        entries_checked: 0,
        timers_checked: 0,
        problems: Vec::new(),
    };
    let sp = match Savepoint::open(rt, url) {
        Ok(sp) => sp,
        Err(e @ (SavepointError::Corrupt { .. } | SavepointError::UnknownFormatVersion { .. })) => {
            report.ok = false;
            report.problems.push(Problem {
                file: super::meta::METADATA_NAME.into(),
                problem: e.to_string(),
            });
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let m = sp.meta();
    for s in &m.states {
        let mut hist = vec![0u64; s.key_group_entries.len()];
        for f in &s.files {
            report.files_checked += 1;
            let range = KeyGroupRange::new(f.key_group_range[0], f.key_group_range[1])?;
            let mut n = 0u64;
            for e in sp.entries(s.name(), Some(range))? {
                match e {
                    Ok(e) => {
                        n += 1;
                        if let Some(h) =
                            hist.get_mut(usize::from(e.key_group - m.key_group_range[0]))
                        {
                            *h += 1;
                        }
                    }
                    Err(e) => {
                        report.problems.push(Problem {
                            file: sp.describe(&f.path),
                            problem: e.to_string(),
                        });
                        break;
                    }
                }
            }
            report.entries_checked += n;
        }
        if report.problems.is_empty() && hist != s.key_group_entries {
            report.problems.push(Problem {
                file: sp.describe(super::meta::METADATA_NAME),
                problem: format!(
                    "state '{}': key-group histogram differs from the files",
                    s.name()
                ),
            });
        }
    }
    report.files_checked += 1;
    match sp.timers() {
        Ok(t) => report.timers_checked = t.len() as u64,
        Err(e) => report.problems.push(Problem {
            file: sp.describe(super::meta::TIMERS_FILE),
            problem: e.to_string(),
        }),
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}

// ---------------------------------------------------------------- diff

#[derive(Debug, Clone, Serialize)]
pub struct KeyDiff {
    /// `added`, `removed` or `changed`.
    pub change: String,
    pub key_group: u16,
    /// Key, user key as hex; rendered by the caller per key format.
    pub key: String,
    pub user_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Json>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct StateDiff {
    pub state: String,
    /// `both`, `only_a`, `only_b`.
    pub presence: String,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// The first differences (at most the limit given).
    pub examples: Vec<KeyDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub states: Vec<StateDiff>,
    pub identical: bool,
}

/// Per state, keys added (in `b` only), removed (in `a` only) and changed
/// (values or expiry differ), with up to `max_examples` examples each
/// state. Streams both savepoints in key order.
pub fn diff(a_url: &str, b_url: &str, max_examples: usize) -> Result<DiffReport> {
    let rt = io_runtime()?;
    let a = Savepoint::open(rt.clone(), a_url)?;
    let b = Savepoint::open(rt, b_url)?;
    if a.meta().max_parallelism != b.meta().max_parallelism {
        return Err(SavepointError::InvalidInput(format!(
            "max parallelism differs ({} vs {}): rescale one first",
            a.meta().max_parallelism,
            b.meta().max_parallelism
        )));
    }
    let mut names: Vec<String> = a
        .meta()
        .states
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    for s in &b.meta().states {
        if !names.iter().any(|n| n == s.name()) {
            names.push(s.name().to_string());
        }
    }
    names.sort();
    let mut states = Vec::new();
    for name in names {
        states.push(diff_state(&a, &b, &name, max_examples)?);
    }
    let identical = states
        .iter()
        .all(|s| s.presence == "both" && s.added + s.removed + s.changed == 0);
    Ok(DiffReport {
        a: a.location().to_string(),
        b: b.location().to_string(),
        states,
        identical,
    })
}

struct Side {
    iter: Option<super::read::EntryIter>,
    schema: Option<AvroSchema>,
    kind: StateKind,
}

fn side(sp: &Savepoint, name: &str) -> Result<Side> {
    match sp.meta().state(name) {
        Ok(s) => Ok(Side {
            iter: Some(sp.entries(name, None)?),
            schema: Some(parse_schema(s)?),
            kind: s.kind(),
        }),
        Err(_) => Ok(Side {
            iter: None,
            schema: None,
            kind: StateKind::Value,
        }),
    }
}

fn diff_state(a: &Savepoint, b: &Savepoint, name: &str, max: usize) -> Result<StateDiff> {
    let mut sa = side(a, name)?;
    let mut sb = side(b, name)?;
    let mut d = StateDiff {
        state: name.to_string(),
        presence: match (&sa.iter, &sb.iter) {
            (Some(_), Some(_)) => "both",
            (Some(_), None) => "only_a",
            _ => "only_b",
        }
        .into(),
        ..Default::default()
    };
    let same_schema = sa.schema == sb.schema;
    let next = |s: &mut Side| -> Result<Option<(Vec<u8>, Entry)>> {
        match s.iter.as_mut().and_then(Iterator::next) {
            None => Ok(None),
            Some(e) => {
                let e = e?;
                let mut k = Vec::new();
                e.encode_store_key(&mut k)?;
                Ok(Some((k, e)))
            }
        }
    };
    let mut ea = next(&mut sa)?;
    let mut eb = next(&mut sb)?;
    loop {
        let ord = match (&ea, &eb) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match ord {
            std::cmp::Ordering::Less => {
                d.removed += 1;
                if let Some((_, e)) = ea.take() {
                    example(&mut d, max, "removed", &e, Some(value_json(&sa, &e)), None);
                }
                ea = next(&mut sa)?;
            }
            std::cmp::Ordering::Greater => {
                d.added += 1;
                if let Some((_, e)) = eb.take() {
                    example(&mut d, max, "added", &e, None, Some(value_json(&sb, &e)));
                }
                eb = next(&mut sb)?;
            }
            std::cmp::Ordering::Equal => {
                if let (Some((_, x)), Some((_, y))) = (ea.take(), eb.take()) {
                    let (jx, jy) = (value_json(&sa, &x), value_json(&sb, &y));
                    let equal = if same_schema {
                        x.value == y.value && x.expiry_ms == y.expiry_ms
                    } else {
                        jx == jy && x.expiry_ms == y.expiry_ms
                    };
                    if equal {
                        d.unchanged += 1;
                    } else {
                        d.changed += 1;
                        example(&mut d, max, "changed", &x, Some(jx), Some(jy));
                    }
                }
                ea = next(&mut sa)?;
                eb = next(&mut sb)?;
            }
        }
    }
    Ok(d)
}

fn example(
    d: &mut StateDiff,
    max: usize,
    change: &str,
    e: &Entry,
    before: Option<Json>,
    after: Option<Json>,
) {
    if d.examples.len() < max {
        d.examples.push(KeyDiff {
            change: change.into(),
            key_group: e.key_group,
            key: hex(&e.key),
            user_key: hex(&e.user_key),
            before,
            after,
        });
    }
}

fn value_json(s: &Side, e: &Entry) -> Json {
    match &s.schema {
        Some(schema) => entry_value_json(schema, s.kind, e),
        None => Json::Null,
    }
}

/// An entry's value (or list) as JSON under `schema`.
pub fn entry_value_json(schema: &AvroSchema, _kind: StateKind, e: &Entry) -> Json {
    let one = |v: &[u8]| match schema_registry::decode_value(schema, v) {
        Ok(v) => schema_registry::value_to_json(schema, &v),
        Err(err) => Json::String(format!("<undecodable: {err}>")),
    };
    match &e.value {
        EntryValue::Single(v) => one(v),
        EntryValue::List(items) => Json::Array(items.iter().map(|i| one(&i.value)).collect()),
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- deep inspection

#[derive(Debug, Clone, Serialize, Default)]
pub struct DeepStateStats {
    pub state: String,
    pub kind: String,
    pub entries: u64,
    /// Values per schema version (`v1`, `v2`, ...) in a store; a
    /// savepoint's values are all in its current schema.
    pub values_by_version: BTreeMap<String, u64>,
    pub with_ttl: u64,
    pub expired: u64,
    pub key_group_entries: Vec<u64>,
}

/// Scans a store: schema versions in use, TTL and expired share at `now`,
/// key-group histogram.
pub fn inspect_store(store: &StateStore, now: i64) -> Result<Vec<DeepStateStats>> {
    let range = store.key_groups();
    let mut out = Vec::new();
    for meta in store.states() {
        let name = meta.descriptor.name.clone();
        let mut st = DeepStateStats {
            state: name.clone(),
            kind: meta.descriptor.kind.name().into(),
            key_group_entries: vec![0; range.len()],
            ..Default::default()
        };
        for raw in store.scan(&name, range)? {
            let raw = raw?;
            st.entries += 1;
            if let Some(h) = st
                .key_group_entries
                .get_mut(usize::from(raw.key_group - range.start))
            {
                *h += 1;
            }
            let envs: Vec<Envelope<'_>> = if meta.descriptor.kind == StateKind::List {
                envelope::list_elements(&raw.value)
                    .filter_map(|e| e.ok())
                    .collect()
            } else {
                Envelope::parse(&raw.value).into_iter().collect()
            };
            let mut ttl = false;
            let mut all_expired = !envs.is_empty();
            for env in &envs {
                *st.values_by_version
                    .entry(format!("v{}", env.schema_version))
                    .or_default() += 1;
                ttl |= env.expiry_ms.is_some();
                all_expired &= env.is_expired(now);
            }
            st.with_ttl += u64::from(ttl);
            st.expired += u64::from(all_expired);
        }
        out.push(st);
    }
    Ok(out)
}

/// Scans a savepoint for the expired share at `now` (everything else is
/// in its metadata).
pub fn inspect_savepoint(url: &str, now: i64) -> Result<Vec<DeepStateStats>> {
    let sp = Savepoint::open(io_runtime()?, url)?;
    let m = sp.meta();
    let mut out = Vec::new();
    for s in &m.states {
        let mut st = DeepStateStats {
            state: s.name().to_string(),
            kind: s.kind().name().into(),
            key_group_entries: s.key_group_entries.clone(),
            with_ttl: s.entries_with_ttl,
            ..Default::default()
        };
        let mut values = 0u64;
        for e in sp.entries(s.name(), None)? {
            let e = e?;
            st.entries += 1;
            values += match &e.value {
                EntryValue::Single(_) => 1,
                EntryValue::List(items) => items.len() as u64,
            };
            st.expired += u64::from(e.expiry_ms.is_some_and(|x| x <= now));
        }
        st.values_by_version
            .insert(format!("v{}", s.schema_history.len().max(1)), values);
        out.push(st);
    }
    Ok(out)
}

/// Checkpoint deep inspection: restore into a temporary folder, scan.
pub fn inspect_checkpoint(
    job_url: &str,
    id: Option<u64>,
    work_dir: &Path,
    now: i64,
) -> Result<(checkpoint_store::Manifest, Vec<DeepStateStats>)> {
    let rt = io_runtime()?;
    let job =
        crate::checkpoint::open_job(&rt, job_url, checkpoint_store::JobStoreOptions::default())?;
    let (store, manifest, _tmp) = super::create::restore_checkpoint(&rt, &job, id, work_dir)?;
    let stats = inspect_store(&store, now)?;
    Ok((manifest, stats))
}
