//! Each subcommand: resolve the source, call the library, build a result
//! (JSON for scripts, text for people) and an exit code.

use crate::cli::{CheckpointArg, Command, DumpFormat};
use crate::keys::{parse_key, render_key};
use crate::progress::Bar;
use crate::schema_cmd::OutputFormat;
use serde_json::{json, Value as Json};
use state_core::checkpoint::{io_runtime, open_job, states_from_manifest};
use state_core::savepoint::{self as sp, Entry, EntryValue, Savepoint, SourceKind, WriteOptions};
use state_core::{JobStore, JobStoreOptions, KeyGroupRange, Manifest, StoreOptions};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

pub type CmdError = Box<dyn std::error::Error + Send + Sync>;

/// What a command produced.
pub struct Outcome {
    pub json: Json,
    pub table: String,
    pub code: i32,
}

impl Outcome {
    fn ok(json: Json, table: String) -> Self {
        Outcome {
            json,
            table,
            code: 0,
        }
    }
}

pub struct Ctx {
    pub output: OutputFormat,
    pub work_dir: PathBuf,
}

impl Ctx {
    fn write_opts(&self, what: &str) -> (WriteOptions, Bar) {
        let bar = Bar::new(what);
        let opts = WriteOptions {
            progress: bar.callback(),
            work_dir: Some(self.work_dir.clone()),
            ..WriteOptions::default()
        };
        (opts, bar)
    }
}

/// Where a command reads from.
enum Src {
    Savepoint(String),
    Checkpoint { job: String, id: Option<u64> },
}

fn parse_checkpoint(arg: &str) -> Result<Option<u64>, CmdError> {
    if arg == "latest" {
        return Ok(None);
    }
    arg.parse::<u64>()
        .map(Some)
        .map_err(|_| format!("--checkpoint must be a number or `latest`, got '{arg}'").into())
}

fn resolve(src: &str, chk: &CheckpointArg) -> Result<Src, CmdError> {
    let wanted = parse_checkpoint(&chk.checkpoint)?;
    Ok(match sp::detect(src)? {
        SourceKind::Savepoint => Src::Savepoint(src.to_string()),
        SourceKind::Job { url, checkpoint } => Src::Checkpoint {
            job: url,
            id: checkpoint.or(wanted),
        },
    })
}

/// A savepoint URL for `src`: itself, or a temporary savepoint made from
/// the checkpoint (kept alive by the returned guard).
fn materialize(ctx: &Ctx, src: Src) -> Result<(String, Option<tempfile::TempDir>), CmdError> {
    match src {
        Src::Savepoint(url) => Ok((url, None)),
        Src::Checkpoint { job, id } => {
            let tmp = tmpdir(ctx)?;
            let dst = tmp.path().join("savepoint");
            let dst = dst.to_string_lossy().into_owned();
            let (opts, bar) = ctx.write_opts("reading checkpoint");
            sp::create_from_job(&job, id, &dst, &ctx.work_dir, opts)?;
            bar.finish();
            Ok((dst, Some(tmp)))
        }
    }
}

fn tmpdir(ctx: &Ctx) -> Result<tempfile::TempDir, CmdError> {
    std::fs::create_dir_all(&ctx.work_dir)?;
    Ok(tempfile::Builder::new()
        .prefix("savepoint-cli-")
        .tempdir_in(&ctx.work_dir)?)
}

fn parse_time(s: &str) -> Result<i64, CmdError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("time '{s}' is neither milliseconds nor RFC 3339: {e}"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn time_str(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn bytes_str(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<Outcome, CmdError> {
    // Apache Flink sources are recognised by their _metadata and read by flink-state.
    if let Some(outcome) = crate::flink::try_run(ctx, &cmd)? {
        return Ok(outcome);
    }
    match cmd {
        Command::Ls { job } => ls(&job),
        Command::Inspect {
            src,
            checkpoint,
            deep,
            now,
        } => {
            let now = now
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or_else(now_ms);
            inspect(ctx, resolve(&src, &checkpoint)?, deep, now)
        }
        Command::Dump {
            src,
            checkpoint,
            state,
            key,
            key_group,
            limit,
            format,
            ..
        } => {
            let (url, _guard) = materialize(ctx, resolve(&src, &checkpoint)?)?;
            dump(&url, &state, key.as_deref(), None, key_group, limit, format)
        }
        Command::Get {
            src,
            checkpoint,
            state,
            key,
            user_key,
            ..
        } => {
            let (url, _guard) = materialize(ctx, resolve(&src, &checkpoint)?)?;
            get(&url, &state, &key, user_key.as_deref())
        }
        Command::Create {
            job,
            checkpoint,
            to,
        } => create(ctx, &job, &checkpoint, &to),
        Command::Migrate {
            src,
            checkpoint,
            state,
            schema,
            to,
            dry_run,
        } => {
            let text = std::fs::read_to_string(&schema)
                .map_err(|e| format!("cannot read schema file {}: {e}", schema.display()))?;
            let (url, _guard) = materialize(ctx, resolve(&src, &checkpoint)?)?;
            migrate(ctx, &url, &state, &text, to.as_deref(), dry_run)
        }
        Command::Compact {
            src,
            checkpoint,
            to,
            drop_expired,
            now,
        } => {
            let at = if drop_expired {
                Some(parse_time(now.as_deref().unwrap_or_default())?)
            } else {
                None
            };
            compact(ctx, resolve(&src, &checkpoint)?, &to, at)
        }
        Command::Restore {
            src,
            checkpoint,
            to,
            parallelism,
            index,
            claim,
        } => restore(
            resolve(&src, &checkpoint)?,
            &to,
            parallelism.zip(index),
            claim,
        ),
        Command::Rescale {
            src,
            checkpoint,
            parallelism,
            max_parallelism,
            to,
        } => {
            let (url, _guard) = materialize(ctx, resolve(&src, &checkpoint)?)?;
            let (opts, bar) = ctx.write_opts("rescaling");
            let meta = sp::rescale(&url, parallelism, max_parallelism, &to, &ctx.work_dir, opts)?;
            bar.finish();
            Ok(written("rescaled", &to, &meta))
        }
        Command::Verify { src, checkpoint } => verify(ctx, resolve(&src, &checkpoint)?),
        Command::Diff { a, b, limit } => diff(&a, &b, limit),
        Command::Gc {
            job,
            retain,
            older_than,
            confirm,
        } => gc(&job, retain, older_than.into(), confirm),
        Command::Convert { src, .. } => Err(format!("{src}: not a Flink snapshot").into()),
        Command::Schema(_) => Err("schema commands are dispatched by main".into()),
    }
}

// ------------------------------------------------------------------ ls

fn ls(job: &str) -> Result<Outcome, CmdError> {
    let rt = io_runtime()?;
    match sp::detect(job)? {
        SourceKind::Job { .. } => {}
        SourceKind::Savepoint => {
            return Err(format!("{job} is a savepoint, not a job (use inspect)").into())
        }
    }
    let store = open_job(&rt, job, JobStoreOptions::default())?;
    let list = rt.block_on(store.list())?;
    let mut rows = Vec::new();
    let mut table = format!(
        "{:>6}  {:<20}  {:>10}  {:>12}  {:>6}  {:>5}  {}\n",
        "ID", "TIME", "SIZE", "INCREMENTAL", "PARENT", "EPOCH", "STATUS"
    );
    for c in &list {
        let status = match &c.status {
            checkpoint_store::CheckpointStatus::Complete => "complete".to_string(),
            checkpoint_store::CheckpointStatus::Fence => "fence".to_string(),
            checkpoint_store::CheckpointStatus::Incomplete => "incomplete".to_string(),
            checkpoint_store::CheckpointStatus::Unreadable(r) => format!("unreadable: {r}"),
        };
        rows.push(json!({
            "type": "checkpoint", "id": c.id, "created_ms": c.created_ms, "total_bytes": c.total_bytes,
            "incremental_bytes": c.uploaded_bytes, "parent": c.parent, "epoch": c.epoch,
            "complete": c.status == checkpoint_store::CheckpointStatus::Complete, "status": status,
        }));
        let _ = writeln!(
            table,
            "{:>6}  {:<20}  {:>10}  {:>12}  {:>6}  {:>5}  {}",
            c.id,
            time_str(c.created_ms as i64),
            bytes_str(c.total_bytes),
            bytes_str(c.uploaded_bytes),
            c.parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            c.epoch.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            status
        );
    }
    let mut sps = Vec::new();
    for (name, meta) in sp::job_savepoints(job)? {
        match meta {
            Ok(m) => {
                let bytes: u64 = m.states.iter().map(|s| s.bytes).sum::<u64>() + m.timers.file.size;
                let _ = writeln!(
                    table,
                    "savepoint {name}: {}  {}  from {} {}",
                    time_str(m.created_ms),
                    bytes_str(bytes),
                    m.source.kind,
                    m.source
                        .checkpoint_id
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                );
                sps.push(
                    json!({"type": "savepoint", "name": name, "created_ms": m.created_ms,
                    "total_bytes": bytes, "source": m.source, "complete": true}),
                );
            }
            Err(e) => {
                let _ = writeln!(table, "savepoint {name}: unreadable: {e}");
                sps.push(json!({"type": "savepoint", "name": name, "complete": false, "error": e.to_string()}));
            }
        }
    }
    Ok(Outcome::ok(
        json!({"checkpoints": rows, "savepoints": sps}),
        table,
    ))
}

// ------------------------------------------------------------------ inspect

fn skew(hist: &[u64]) -> Json {
    let n = hist.len().max(1) as f64;
    let total: u64 = hist.iter().sum();
    let mean = total as f64 / n;
    let max = hist.iter().copied().max().unwrap_or(0);
    let min = hist.iter().copied().min().unwrap_or(0);
    let mut top: Vec<(usize, u64)> = hist.iter().copied().enumerate().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(5);
    json!({"key_groups": hist.len(), "min": min, "mean": (mean * 10.0).round() / 10.0, "max": max,
           "skew": if mean > 0.0 { ((max as f64 / mean) * 100.0).round() / 100.0 } else { 0.0 },
           "top": top.iter().map(|(i, c)| json!([i, c])).collect::<Vec<_>>()})
}

fn inspect(ctx: &Ctx, src: Src, deep: bool, now: i64) -> Result<Outcome, CmdError> {
    match src {
        Src::Savepoint(url) => inspect_savepoint(&url, deep, now),
        Src::Checkpoint { job, id } => inspect_checkpoint(ctx, &job, id, deep, now),
    }
}

fn inspect_savepoint(url: &str, deep: bool, now: i64) -> Result<Outcome, CmdError> {
    let s = Savepoint::open(io_runtime()?, url)?;
    let m = s.meta();
    let deep_stats = if deep {
        Some(sp::inspect_savepoint(url, now)?)
    } else {
        None
    };
    let [lo, hi] = m.key_group_range;
    let mut t = format!(
        "savepoint {}\n  created {}  from {} {}{}  ({})\n  max parallelism {}  key groups [{lo}, {hi}]{}\n  timers {}\n",
        s.location(),
        time_str(m.created_ms),
        m.source.kind,
        m.source.location,
        m.source.checkpoint_id.map(|c| format!(" checkpoint {c}")).unwrap_or_default(),
        m.source.operation,
        m.max_parallelism,
        m.layout.as_ref().map(|l| format!("  layout: {} instances", l.parallelism)).unwrap_or_default(),
        m.timers.count
    );
    let mut states = Vec::new();
    for st in &m.states {
        let d = deep_stats
            .as_ref()
            .and_then(|v| v.iter().find(|x| x.state == st.name()));
        let ttl = st
            .descriptor
            .ttl
            .map(|t| json!({"ttl_ms": t.ttl_ms, "time": t.time}));
        let ttl_share = if st.entries > 0 {
            st.entries_with_ttl as f64 / st.entries as f64
        } else {
            0.0
        };
        let mut j = json!({
            "state": st.name(), "kind": st.kind().name(), "entries": st.entries, "bytes": st.bytes,
            "files": st.files.len(), "schema_versions": st.schema_history.len(),
            "values_by_version": {format!("v{}", st.schema_history.len().max(1)): st.entries},
            "ttl": ttl, "ttl_share": ttl_share, "key_group_skew": skew(&st.key_group_entries),
        });
        let _ = write!(
            t,
            "  state {:<20} {:<5}  {:>10} entries  {:>10}  {} files  schema v{} of {}  ttl share {:.1}%",
            st.name(),
            st.kind().name(),
            st.entries,
            bytes_str(st.bytes),
            st.files.len(),
            st.schema_history.len(),
            st.schema_history.len(),
            ttl_share * 100.0
        );
        if let Some(d) = d {
            let share = if d.entries > 0 {
                d.expired as f64 / d.entries as f64
            } else {
                0.0
            };
            j["expired"] = json!(d.expired);
            j["expired_share"] = json!(share);
            j["values_by_version"] = json!(d.values_by_version);
            let _ = write!(t, "  expired {:.1}% at {}", share * 100.0, now);
        }
        let sk = &j["key_group_skew"];
        let _ = writeln!(
            t,
            "\n    key groups: min {} mean {} max {} (skew {}x)",
            sk["min"], sk["mean"], sk["max"], sk["skew"]
        );
        states.push(j);
    }
    let _ = writeln!(
        t,
        "  user metadata (offsets, watermarks, sinks): {}",
        m.user
    );
    let j = json!({"type": "savepoint", "location": s.location(), "format_version": m.format_version,
        "created_ms": m.created_ms, "source": m.source, "max_parallelism": m.max_parallelism,
        "key_group_range": m.key_group_range, "layout": m.layout, "timers": m.timers.count,
        "states": states, "user": m.user});
    Ok(Outcome::ok(j, t))
}

/// The bucketed states of a checkpoint (runs, entries, bytes, buckets and
/// the event time they cover); tools see their entries in the map states of
/// the same names.
fn inspect_buckets(manifest: &Manifest, t: &mut String) -> Result<serde_json::Value, CmdError> {
    let Some(doc) = state_core::checkpoint_buckets::buckets_of(manifest)? else {
        return Ok(serde_json::Value::Null);
    };
    let mut out = serde_json::Map::new();
    for (state, runs) in &doc.states {
        let entries = runs.iter().fold(0u64, |a, r| a.saturating_add(r.entries));
        let bytes = runs.iter().fold(0u64, |a, r| a.saturating_add(r.bytes));
        let buckets: std::collections::BTreeSet<i64> =
            runs.iter().map(|r| r.bucket_start).collect();
        let from = runs.iter().map(|r| r.min_ts).min();
        let to = runs.iter().map(|r| r.max_ts).max();
        let _ = writeln!(
            t,
            "  bucketed state {state}: {} runs in {} buckets, {entries} entries, {}, event time {} .. {}",
            runs.len(),
            buckets.len(),
            bytes_str(bytes),
            from.map(time_str).unwrap_or_else(|| "-".into()),
            to.map(time_str).unwrap_or_else(|| "-".into()),
        );
        out.insert(
            state.clone(),
            json!({"runs": runs.len(), "buckets": buckets.len(), "entries": entries,
                "bytes": bytes, "min_ts": from, "max_ts": to}),
        );
    }
    Ok(serde_json::Value::Object(out))
}

fn inspect_checkpoint(
    ctx: &Ctx,
    job: &str,
    id: Option<u64>,
    deep: bool,
    now: i64,
) -> Result<Outcome, CmdError> {
    let (manifest, stats) = if deep {
        let (m, s) = sp::inspect_checkpoint(job, id, &ctx.work_dir, now)?;
        (m, Some(s))
    } else {
        let rt = io_runtime()?;
        let store = open_job(&rt, job, JobStoreOptions::default())?;
        let m = match id {
            Some(id) => rt.block_on(store.manifest(id))?,
            None => rt
                .block_on(store.latest())?
                .ok_or_else(|| format!("{job}: no complete checkpoint"))?,
        };
        (m, None)
    };
    let metas = states_from_manifest(&manifest)?;
    let mut t = format!(
        "checkpoint {} of {job}\n  created {}  epoch {}  parent {}\n  {} files  {} total  {} uploaded by this checkpoint\n  max parallelism {}  key groups [{}, {}]\n",
        manifest.id,
        time_str(manifest.created_ms as i64),
        manifest.epoch,
        manifest.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        manifest.files.len(),
        bytes_str(manifest.total_bytes),
        bytes_str(manifest.uploaded_bytes),
        manifest.max_parallelism,
        manifest.key_group_range.0,
        manifest.key_group_range.1
    );
    let layout = state_core::runs::layout_of(&manifest.states)
        .map_err(|e| format!("checkpoint {}: layout document: {e}", manifest.id))?;
    let layout_json = match &layout {
        None => {
            let _ = writeln!(t, "  layout v1: a RocksDB checkpoint directory");
            json!({"version": 1})
        }
        Some(l) => {
            let slices = l
                .runs
                .iter()
                .filter(|r| matches!(r.kind, state_core::runs::RunKind::Slice { .. }))
                .count();
            let deltas = l.runs.len() - slices;
            let bytes = l.runs.iter().fold(0u64, |a, r| a.saturating_add(r.bytes));
            let changed = manifest.states["changed_bytes"].as_u64().unwrap_or(0);
            let _ = writeln!(
                t,
                "  layout v2: {} runs ({slices} slices, {deltas} deltas, {} logical)  changed since parent {}",
                l.runs.len(),
                bytes_str(bytes),
                bytes_str(changed)
            );
            json!({"version": 2, "runs": l.runs.len(), "slices": slices, "deltas": deltas,
                "logical_bytes": bytes, "changed_bytes": changed})
        }
    };
    let buckets_json = inspect_buckets(&manifest, &mut t)?;
    let mut states = Vec::new();
    for m in &metas {
        let d = stats
            .as_ref()
            .and_then(|v| v.iter().find(|x| x.state == m.descriptor.name));
        let mut j = json!({"state": m.descriptor.name, "kind": m.descriptor.kind.name(),
            "schema_versions": m.schemas.len(),
            "ttl": m.descriptor.ttl.map(|t| json!({"ttl_ms": t.ttl_ms, "time": t.time}))});
        let _ = write!(
            t,
            "  state {:<20} {:<5}  {} schema version(s)",
            m.descriptor.name,
            m.descriptor.kind.name(),
            m.schemas.len()
        );
        match d {
            Some(d) => {
                let share = |x: u64| {
                    if d.entries > 0 {
                        x as f64 / d.entries as f64
                    } else {
                        0.0
                    }
                };
                j["entries"] = json!(d.entries);
                j["values_by_version"] = json!(d.values_by_version);
                j["ttl_share"] = json!(share(d.with_ttl));
                j["expired"] = json!(d.expired);
                j["expired_share"] = json!(share(d.expired));
                j["key_group_skew"] = skew(&d.key_group_entries);
                let sk = &j["key_group_skew"];
                let _ = writeln!(
                    t,
                    "  {} entries  values by version {}  ttl {:.1}%  expired {:.1}%\n    key groups: min {} mean {} max {} (skew {}x)",
                    d.entries,
                    json!(d.values_by_version),
                    share(d.with_ttl) * 100.0,
                    share(d.expired) * 100.0,
                    sk["min"], sk["mean"], sk["max"], sk["skew"]
                );
            }
            None => {
                let _ = writeln!(
                    t,
                    "  (entry counts, versions in use, expired share: --deep)"
                );
            }
        }
        states.push(j);
    }
    let _ = writeln!(
        t,
        "  user metadata (offsets, watermarks, sinks): {}",
        manifest.user
    );
    let j = json!({"type": "checkpoint", "job": sp::redact(job), "id": manifest.id, "epoch": manifest.epoch,
        "parent": manifest.parent, "created_ms": manifest.created_ms, "files": manifest.files.len(),
        "total_bytes": manifest.total_bytes, "uploaded_bytes": manifest.uploaded_bytes,
        "max_parallelism": manifest.max_parallelism, "key_group_range": [manifest.key_group_range.0, manifest.key_group_range.1],
        "deep": deep, "layout": layout_json, "buckets": buckets_json, "states": states,
        "user": manifest.user});
    Ok(Outcome::ok(j, t))
}

// ------------------------------------------------------------------ dump / get

fn entry_json(section: &sp::StateSection, schema: &schema_registry::AvroSchema, e: &Entry) -> Json {
    let d = &section.descriptor;
    let mut j = json!({
        "key_group": e.key_group,
        "key": render_key(d.key_format, &e.key),
    });
    if !e.namespace.is_empty() {
        j["namespace"] = json!(sp::hex(&e.namespace));
    }
    if d.kind == state_core::StateKind::Map {
        j["user_key"] = render_key(d.user_key_format, &e.user_key);
    }
    j["expiry_ms"] = json!(e.expiry_ms);
    j["value"] = sp::entry_value_json(schema, d.kind, e);
    if let EntryValue::List(items) = &e.value {
        j["element_expiry_ms"] = json!(items.iter().map(|i| i.expiry_ms).collect::<Vec<_>>());
    }
    j
}

#[allow(clippy::too_many_arguments)]
fn dump(
    url: &str,
    state: &str,
    key: Option<&str>,
    user_key: Option<&str>,
    key_group: Option<u16>,
    limit: Option<u64>,
    format: DumpFormat,
) -> Result<Outcome, CmdError> {
    let s = Savepoint::open(io_runtime()?, url)?;
    let section = s.meta().state(state)?.clone();
    let schema = schema_registry::AvroSchema::parse(&section.schema)?;
    let key_bytes = key
        .map(|k| parse_key(section.descriptor.key_format, k))
        .transpose()?;
    let user_key_bytes = user_key
        .map(|k| parse_key(section.descriptor.user_key_format, k))
        .transpose()?;
    let kg = match (&key_bytes, key_group) {
        (Some(k), _) => Some(state_core::key_group_of(k, s.meta().max_parallelism)),
        (None, g) => g,
    };
    if let Some(g) = kg {
        let [lo, hi] = s.meta().key_group_range;
        if g < lo || g > hi {
            return Err(
                format!("key group {g} is not in this savepoint's range [{lo}, {hi}]").into(),
            );
        }
    }
    let range = kg.map(|g| KeyGroupRange { start: g, end: g });
    let limit = limit.unwrap_or(u64::MAX);
    let iter = s
        .entries(state, range)?
        .filter(|e| match e {
            Ok(e) => {
                key_bytes.as_ref().is_none_or(|k| &e.key == k)
                    && user_key_bytes.as_ref().is_none_or(|u| &e.user_key == u)
            }
            Err(_) => true,
        })
        .take(usize::try_from(limit).unwrap_or(usize::MAX));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0u64;
    match format {
        DumpFormat::Avro => {
            n = sp::write_entries_avro(&mut out, section.kind(), &section.schema, iter)?;
        }
        DumpFormat::Json => {
            for e in iter {
                let e = e?;
                serde_json::to_writer(&mut out, &entry_json(&section, &schema, &e))?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
    }
    out.flush()?;
    tracing::info!(entries = n, "dumped");
    // Output already streamed: nothing more to render.
    Ok(Outcome {
        json: Json::Null,
        table: String::new(),
        code: 0,
    })
}

fn get(url: &str, state: &str, key: &str, user_key: Option<&str>) -> Result<Outcome, CmdError> {
    let s = Savepoint::open(io_runtime()?, url)?;
    let section = s.meta().state(state)?.clone();
    let schema = schema_registry::AvroSchema::parse(&section.schema)?;
    let k = parse_key(section.descriptor.key_format, key)?;
    let uk = user_key
        .map(|u| parse_key(section.descriptor.user_key_format, u))
        .transpose()?;
    let g = state_core::key_group_of(&k, s.meta().max_parallelism);
    let mut found = Vec::new();
    for e in s.entries(state, Some(KeyGroupRange { start: g, end: g }))? {
        let e = e?;
        if e.key == k && uk.as_ref().is_none_or(|u| &e.user_key == u) {
            found.push(entry_json(&section, &schema, &e));
        }
    }
    if found.is_empty() {
        return Err(format!("state '{state}' has no entry for key '{key}'").into());
    }
    let table = found.iter().map(|j| format!("{j}\n")).collect::<String>();
    Ok(Outcome::ok(json!(found), table))
}

// ------------------------------------------------------------------ writers

fn written(what: &str, to: &str, m: &sp::SavepointMeta) -> Outcome {
    let entries: u64 = m.states.iter().map(|s| s.entries).sum();
    let bytes: u64 = m.states.iter().map(|s| s.bytes).sum::<u64>() + m.timers.file.size;
    let files: usize = m.states.iter().map(|s| s.files.len()).sum::<usize>() + 1;
    let table = format!(
        "{what} savepoint {}: {} states, {entries} entries, {} timers, {files} files, {}\n",
        sp::redact(to),
        m.states.len(),
        m.timers.count,
        bytes_str(bytes)
    );
    let j = json!({"savepoint": sp::redact(to), "states": m.states.len(), "entries": entries,
        "timers": m.timers.count, "files": files, "bytes": bytes, "source": m.source,
        "max_parallelism": m.max_parallelism, "layout": m.layout});
    Outcome::ok(j, table)
}

fn create(ctx: &Ctx, job: &str, chk: &CheckpointArg, to: &str) -> Result<Outcome, CmdError> {
    let src = resolve(job, chk)?;
    let Src::Checkpoint { job, id } = src else {
        return Err(format!("{job} is a savepoint; create reads a job's checkpoint").into());
    };
    let (opts, bar) = ctx.write_opts("writing savepoint");
    let meta = sp::create_from_job(&job, id, to, &ctx.work_dir, opts)?;
    bar.finish();
    Ok(written("created", to, &meta))
}

fn migrate(
    ctx: &Ctx,
    url: &str,
    state: &str,
    schema: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<Outcome, CmdError> {
    let (opts, bar) = ctx.write_opts("migrating");
    let report = sp::migrate(url, state, schema, to.unwrap_or(""), dry_run, opts)?;
    bar.finish();
    let mut t = String::new();
    if !report.compatible {
        let _ = writeln!(t, "refused: the new schema cannot read state '{state}':");
        for i in &report.incompatibilities {
            let _ = writeln!(t, "  {} at {}: {}", i.kind, i.path, i.message);
        }
        let _ = writeln!(t, "nothing was written");
    } else {
        for f in &report.fields {
            let _ = writeln!(
                t,
                "  field {:<20} {}{}",
                f.field,
                f.change,
                f.default
                    .as_ref()
                    .map(|d| format!(" (default {d})"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            t,
            "  values by version before: {}",
            json!(report.values_by_version)
        );
        if dry_run {
            let _ = writeln!(t, "dry run: compatible, nothing written");
        } else {
            let _ = writeln!(
                t,
                "migrated state '{state}': {} values rewritten into {}",
                report.rewritten,
                report.target.clone().unwrap_or_default()
            );
        }
    }
    let code = if report.compatible { 0 } else { 1 };
    Ok(Outcome {
        json: serde_json::to_value(&report)?,
        table: t,
        code,
    })
}

fn compact(ctx: &Ctx, src: Src, to: &str, at: Option<i64>) -> Result<Outcome, CmdError> {
    let (opts, bar) = ctx.write_opts("compacting");
    let meta = match src {
        Src::Savepoint(url) => sp::compact(&url, to, at, opts)?,
        Src::Checkpoint { job, id } => {
            sp::compact_checkpoint(&job, id, to, &ctx.work_dir, at, opts)?
        }
    };
    bar.finish();
    Ok(written("compacted", to, &meta))
}

fn restore(
    src: Src,
    to: &Path,
    instance: Option<(u16, u16)>,
    claim: bool,
) -> Result<Outcome, CmdError> {
    let rt = io_runtime()?;
    if claim && matches!(src, Src::Savepoint(_)) {
        return Err("--claim takes a job's checkpoint; a savepoint belongs to its user and is never claimed".into());
    }
    let (max_p, range, kind) = match &src {
        Src::Savepoint(url) => {
            let s = Savepoint::open(rt.clone(), url)?;
            let [lo, hi] = s.meta().key_group_range;
            (
                s.meta().max_parallelism,
                KeyGroupRange { start: lo, end: hi },
                "savepoint",
            )
        }
        Src::Checkpoint { job, id } => {
            let store = open_job(&rt, job, JobStoreOptions::default())?;
            let m = match id {
                Some(id) => rt.block_on(store.manifest(*id))?,
                None => rt
                    .block_on(store.latest())?
                    .ok_or_else(|| format!("{job}: no complete checkpoint"))?,
            };
            (
                m.max_parallelism,
                KeyGroupRange {
                    start: m.key_group_range.0,
                    end: m.key_group_range.1,
                },
                "checkpoint",
            )
        }
    };
    let range = match instance {
        Some((p, i)) => KeyGroupRange::for_operator(max_p, p, i)?,
        None => range,
    };
    let opts = StoreOptions::new(Vec::new())
        .with_max_parallelism(max_p)
        .with_key_groups(range);
    let (store, from) = match src {
        Src::Savepoint(url) => {
            let (store, _) = sp::restore_into(&url, to, opts)?;
            (store, json!({"savepoint": sp::redact(&url)}))
        }
        Src::Checkpoint { job, id } => {
            let store = open_job(&rt, &job, JobStoreOptions::default())?;
            let (s, m) = state_core::restore(&rt, &store, id, to, opts)?;
            let mut from = json!({"job": sp::redact(&job), "checkpoint": m.id});
            if claim {
                from["claimed_as"] = json!(claim_checkpoint(&rt, &store, m.id)?);
            }
            (s, from)
        }
    };
    let states: Vec<String> = store
        .states()
        .iter()
        .map(|s| s.descriptor.name.clone())
        .collect();
    drop(store);
    let mut table = format!(
        "restored {kind} into {} (key groups {range}, max parallelism {max_p}; states: {})\n",
        to.display(),
        states.join(", ")
    );
    if let Some(id) = from.get("claimed_as") {
        table.push_str(&format!(
            "claimed: checkpoint {} is now the job's newest checkpoint ({id}) under a new epoch; a writer still running is fenced, and the job's next run resumes from it\n",
            from["checkpoint"]
        ));
    }
    let j = json!({"restored": to.display().to_string(), "from": from, "key_group_range": [range.start, range.end],
        "max_parallelism": max_p, "states": states});
    Ok(Outcome::ok(j, table))
}

/// Claim mode: commits checkpoint `id` again as the job's newest checkpoint
/// under a new epoch. Claiming the epoch fences any writer still running;
/// shared files are content-addressed, so only the small private files are
/// written again. Nothing is deleted: retention and GC then treat the files
/// as the job's own. Returns the new checkpoint's id.
fn claim_checkpoint(
    rt: &tokio::runtime::Runtime,
    job: &JobStore,
    id: u64,
) -> Result<u64, CmdError> {
    let writer = rt.block_on(job.claim_epoch())?;
    let manifest = rt.block_on(writer.adopt(job, id, None))?;
    Ok(manifest.id)
}

// ------------------------------------------------------------------ verify / diff / gc

fn verify(ctx: &Ctx, src: Src) -> Result<Outcome, CmdError> {
    let report = match src {
        Src::Savepoint(url) => sp::verify(&url)?,
        Src::Checkpoint { job, id } => match materialize(
            ctx,
            Src::Checkpoint {
                job: job.clone(),
                id,
            },
        ) {
            // Restoring checks every file's size and checksum, reading every
            // value checks every envelope; then the savepoint itself.
            Ok((url, _guard)) => {
                let mut r = sp::verify(&url)?;
                r.location = sp::redact(&job);
                r
            }
            Err(e) => sp::VerifyReport {
                location: sp::redact(&job),
                ok: false,
                files_checked: 0,
                entries_checked: 0,
                timers_checked: 0,
                problems: vec![sp::Problem {
                    file: job.clone(),
                    problem: e.to_string(),
                }],
            },
        },
    };
    let mut t = String::new();
    if report.ok {
        let _ = writeln!(
            t,
            "ok: {} files, {} entries, {} timers verified in {}",
            report.files_checked, report.entries_checked, report.timers_checked, report.location
        );
    } else {
        let _ = writeln!(
            t,
            "FAILED: {} problem(s) in {}",
            report.problems.len(),
            report.location
        );
        for p in &report.problems {
            let _ = writeln!(t, "  {}: {}", p.file, p.problem);
        }
    }
    let code = if report.ok { 0 } else { 1 };
    Ok(Outcome {
        json: serde_json::to_value(&report)?,
        table: t,
        code,
    })
}

fn diff(a: &str, b: &str, limit: usize) -> Result<Outcome, CmdError> {
    let r = sp::diff(a, b, limit)?;
    let mut t = String::new();
    for s in &r.states {
        let _ = writeln!(
            t,
            "state {:<20} {:<6}  +{} added  -{} removed  ~{} changed  ={} unchanged",
            s.state, s.presence, s.added, s.removed, s.changed, s.unchanged
        );
        for e in &s.examples {
            let _ = writeln!(
                t,
                "  {} kg {} key {}{}  {} -> {}",
                e.change,
                e.key_group,
                e.key,
                if e.user_key.is_empty() {
                    String::new()
                } else {
                    format!(" user key {}", e.user_key)
                },
                e.before
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.after
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    if r.identical {
        let _ = writeln!(t, "identical");
    }
    let code = if r.identical { 0 } else { 1 };
    Ok(Outcome {
        json: serde_json::to_value(&r)?,
        table: t,
        code,
    })
}

fn gc(
    job: &str,
    retain: usize,
    grace: std::time::Duration,
    confirm: bool,
) -> Result<Outcome, CmdError> {
    match sp::detect(job)? {
        SourceKind::Job {
            checkpoint: None, ..
        } => {}
        _ => return Err(format!("{job} is not a job (gc works on a job's checkpoints)").into()),
    }
    let rt = io_runtime()?;
    let store = open_job(&rt, job, JobStoreOptions::default())?;
    let policy = checkpoint_store::GcPolicy { retain, grace };
    let r = rt.block_on(store.gc(&policy, !confirm))?;
    let mut t = String::new();
    if let Some(b) = &r.blocked {
        let _ = writeln!(t, "gc blocked, nothing deleted: {b}");
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let _ = writeln!(
        t,
        "retained checkpoints {:?}\n{verb}: checkpoints {:?}, fences {:?}, incomplete {:?}, {} shared objects; {} objects, {}",
        r.retained,
        r.expired_checkpoints,
        r.fences,
        r.incomplete,
        r.shared.len(),
        r.objects,
        bytes_str(r.bytes)
    );
    if r.dry_run {
        let _ = writeln!(t, "dry run: pass --confirm to delete");
    }
    let j = json!({"dry_run": r.dry_run, "retained": r.retained, "expired_checkpoints": r.expired_checkpoints,
        "fences": r.fences, "incomplete": r.incomplete, "shared": r.shared, "objects": r.objects,
        "bytes": r.bytes, "blocked": r.blocked});
    Ok(Outcome::ok(j, t))
}
