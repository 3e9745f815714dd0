//! Apache Flink savepoints and checkpoints in the `savepoint` command.
//! A source whose `_metadata` starts with Flink's magic number (a
//! savepoint folder, a `chk-N` folder, or a job's checkpoint folder
//! holding `chk-N` folders) is read by the `flink-state` crate: ls,
//! inspect, dump, get, verify, and convert to a savepoint of this toolkit.

use crate::cli::{CheckpointArg, Command, DumpFormat};
use crate::commands::{CmdError, Ctx, Outcome};
use crate::flink_rocksdb::FlinkLsm;
use checkpoint_store::object_store::{path::Path as StorePath, ObjectStore};
use flink_state::inspect::{inspect, render_text};
use flink_state::verify::verify;
use flink_state::{
    is_flink_metadata, DirStorage, DumpOptions, FlinkError, FlinkSnapshot, Json, Storage,
};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;
use tokio::runtime::Runtime;

/// The files of a Flink snapshot in an object store (s3://, memory://).
struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    rt: Arc<Runtime>,
}

impl ObjectStorage {
    fn path(&self, rel: &str) -> StorePath {
        rel.split('/')
            .filter(|s| !s.is_empty())
            .fold(self.prefix.clone(), |p, part| p.child(part))
    }

    fn err(&self, rel: &str, e: impl std::fmt::Display) -> FlinkError {
        FlinkError::Io {
            path: rel.to_string(),
            source: std::io::Error::other(e.to_string()),
        }
    }
}

impl Storage for ObjectStorage {
    fn read(&self, rel: &str) -> flink_state::Result<Vec<u8>> {
        let p = self.path(rel);
        let r = self
            .rt
            .block_on(async { self.store.get(&p).await?.bytes().await });
        r.map(|b| b.to_vec()).map_err(|e| self.err(rel, e))
    }

    fn read_range(&self, rel: &str, offset: u64, len: u64) -> flink_state::Result<Vec<u8>> {
        let size = self.size(rel)?;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let p = self.path(rel);
        let r = self.rt.block_on(self.store.get_range(&p, offset..end));
        r.map(|b| b.to_vec()).map_err(|e| self.err(rel, e))
    }

    fn size(&self, rel: &str) -> flink_state::Result<u64> {
        let p = self.path(rel);
        self.rt
            .block_on(self.store.head(&p))
            .map(|m| m.size)
            .map_err(|e| self.err(rel, e))
    }
}

/// A Flink snapshot found at a source: its storage (rooted at the parent
/// of the snapshot folder, so that a checkpoint's `shared/` is reachable)
/// and the snapshot folder inside it.
struct Found {
    storage: Box<dyn Storage>,
    base: String,
    url: String,
    /// The storage's root as given (for full file names in messages).
    root: String,
}

/// (parent, last component) of a folder or URL; a bucket or store root
/// has no parent and is its own root, and so is a `memory://` store (its
/// whole path names the store).
fn split_parent(url: &str) -> (String, String) {
    let t = url.trim_end_matches('/');
    if t.starts_with("memory://") {
        return (t.to_string(), String::new());
    }
    match t.rsplit_once('/') {
        Some((p, _)) if p.ends_with(':') || p.ends_with(":/") => (t.to_string(), String::new()),
        Some(("", last)) => ("/".to_string(), last.to_string()),
        Some((p, last)) => (p.to_string(), last.to_string()),
        None => (".".to_string(), t.to_string()),
    }
}

fn open_storage(url: &str) -> Result<Box<dyn Storage>, CmdError> {
    let local = url
        .strip_prefix("file://")
        .map(str::to_string)
        .or_else(|| (!url.contains("://")).then(|| url.to_string()));
    if let Some(p) = local {
        return Ok(Box::new(DirStorage::new(p)));
    }
    let rt = state_core::checkpoint::io_runtime()?;
    let (store, prefix) = rt.block_on(checkpoint_store::open_store(url))?;
    Ok(Box::new(ObjectStorage { store, prefix, rt }))
}

fn has_flink_metadata(storage: &dyn Storage, rel: &str) -> bool {
    storage
        .read_range(rel, 0, 4)
        .is_ok_and(|b| is_flink_metadata(&b))
}

/// The `chk-N` folders of a job's checkpoint folder, oldest first.
fn checkpoint_dirs(url: &str) -> Vec<String> {
    let mut names = if url.contains("://") && !url.starts_with("file://") {
        store_dirs(url)
    } else {
        let local = url.strip_prefix("file://").unwrap_or(url);
        let Ok(rd) = std::fs::read_dir(local) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    names.retain(|n| flink_state::storage::is_chk_dir(n));
    names.sort_by_key(|n| n[4..].parse::<u64>().unwrap_or(0));
    names
}

/// The folder names right under an object-store URL (none if unreachable).
fn store_dirs(url: &str) -> Vec<String> {
    let Ok(rt) = state_core::checkpoint::io_runtime() else {
        return Vec::new();
    };
    let listed = rt.block_on(async {
        let (store, prefix) = checkpoint_store::open_store(url).await.ok()?;
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        store.list_with_delimiter(prefix.as_ref()).await.ok()
    });
    listed
        .map(|l| {
            l.common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Looks for a Flink snapshot at `url`; None when it is not one.
fn detect(url: &str, chk: Option<&CheckpointArg>) -> Result<Option<Found>, CmdError> {
    let (parent, name) = split_parent(url);
    let storage = open_storage(&parent)?;
    let meta = if name.is_empty() {
        "_metadata".to_string()
    } else {
        format!("{name}/_metadata")
    };
    if has_flink_metadata(storage.as_ref(), &meta) {
        return Ok(Some(Found {
            storage,
            base: name,
            url: url.to_string(),
            root: parent,
        }));
    }
    let dirs = checkpoint_dirs(url);
    let storage = open_storage(url)?;
    let wanted = chk.map(|c| c.checkpoint.as_str()).unwrap_or("latest");
    let pick = if wanted == "latest" {
        dirs.iter()
            .rev()
            .find(|d| has_flink_metadata(storage.as_ref(), &format!("{d}/_metadata")))
            .cloned()
    } else {
        Some(format!("chk-{wanted}"))
            .filter(|d| has_flink_metadata(storage.as_ref(), &format!("{d}/_metadata")))
    };
    Ok(pick.map(|base| Found {
        storage,
        url: format!("{}/{base}", url.trim_end_matches('/')),
        base,
        root: url.to_string(),
    }))
}

/// Runs `cmd` when its source is a Flink snapshot; None otherwise.
pub fn try_run(ctx: &Ctx, cmd: &Command) -> Result<Option<Outcome>, CmdError> {
    Ok(Some(match cmd {
        Command::Ls { job } => {
            let dirs = checkpoint_dirs(job);
            let storage = open_storage(job)?;
            if !dirs
                .iter()
                .any(|d| has_flink_metadata(storage.as_ref(), &format!("{d}/_metadata")))
            {
                return Ok(None);
            }
            ls(storage.as_ref(), &dirs)
        }
        Command::Inspect {
            src,
            checkpoint,
            deep,
            ..
        } => {
            let Some(f) = detect(src, Some(checkpoint))? else {
                return Ok(None);
            };
            let snap = FlinkSnapshot::open(f.storage.as_ref(), &f.base)?;
            let j = inspect(&snap, *deep, Some(&FlinkLsm));
            Outcome {
                json: to_serde(&j),
                table: render_text(&j),
                code: 0,
            }
        }
        Command::Dump {
            src,
            checkpoint,
            state,
            key,
            key_group,
            limit,
            format,
            operator,
            sql_plan,
        } => {
            let Some(f) = detect(src, Some(checkpoint))? else {
                return Ok(None);
            };
            if *format == DumpFormat::Avro {
                return Err(
                    "Flink state dumps as JSON lines; for Avro files use `savepoint convert`"
                        .into(),
                );
            }
            let plan = sql_plan
                .as_ref()
                .map(std::fs::read_to_string)
                .transpose()
                .map_err(|e| format!("cannot read --sql-plan: {e}"))?;
            let filter = Filter {
                key: key.clone(),
                key_group: *key_group,
                user_key: None,
                limit: *limit,
                plan,
            };
            dump(&f, operator.as_deref(), state, &filter)?
        }
        Command::Get {
            src,
            checkpoint,
            state,
            key,
            user_key,
            operator,
        } => {
            let Some(f) = detect(src, Some(checkpoint))? else {
                return Ok(None);
            };
            let filter = Filter {
                key: Some(key.clone()),
                key_group: None,
                user_key: user_key.clone(),
                limit: None,
                plan: None,
            };
            let out = dump(&f, operator.as_deref(), state, &filter)?;
            if out.code == 3 {
                return Err(format!("no entry for key {key:?} in state {state}").into());
            }
            out
        }
        Command::Verify { src, checkpoint } => {
            let Some(f) = detect(src, Some(checkpoint))? else {
                return Ok(None);
            };
            verify_cmd(&f)
        }
        Command::Convert {
            src,
            checkpoint,
            operator,
            to,
        } => {
            let Some(f) = detect(src, Some(checkpoint))? else {
                return Err(format!("{src}: no Flink _metadata found (convert reads Flink savepoints and checkpoints)").into());
            };
            let snap = FlinkSnapshot::open(f.storage.as_ref(), &f.base)?;
            crate::flink_convert::convert(ctx, &snap, &f.url, operator, to)?
        }
        _ => return Ok(None),
    }))
}

fn to_serde(j: &Json) -> serde_json::Value {
    serde_json::from_str(&j.to_line()).unwrap_or(serde_json::Value::Null)
}

fn ls(storage: &dyn Storage, dirs: &[String]) -> Outcome {
    let mut rows = Vec::new();
    let mut table = format!(
        "{:>8}  {:<24}  {:>10}  {:>9}  {}\n",
        "ID", "KIND", "_METADATA", "OPERATORS", "STATUS"
    );
    for d in dirs {
        let (id, row) = match FlinkSnapshot::open(storage, d) {
            Ok(s) => {
                let line = format!(
                    "{:>8}  {:<24}  {:>10}  {:>9}  complete",
                    s.metadata.checkpoint_id,
                    s.kind(),
                    s.metadata_size,
                    s.metadata.operators.len()
                );
                (
                    line,
                    json!({"id": s.metadata.checkpoint_id, "dir": d, "kind": s.kind(), "metadata_bytes": s.metadata_size, "operators": s.metadata.operators.len(), "complete": true}),
                )
            }
            Err(e) => (
                format!(
                    "{:>8}  {:<24}  {:>10}  {:>9}  no readable _metadata: {e}",
                    &d[4..],
                    "-",
                    "-",
                    "-"
                ),
                json!({"dir": d, "complete": false, "error": e.to_string()}),
            ),
        };
        let _ = writeln!(table, "{id}");
        rows.push(row);
    }
    Outcome {
        json: json!({"format": "flink", "checkpoints": rows}),
        table,
        code: 0,
    }
}

struct Filter {
    key: Option<String>,
    key_group: Option<u16>,
    user_key: Option<String>,
    limit: Option<u64>,
    /// EXPLAIN output of a SQL job, for row field names.
    plan: Option<String>,
}

impl Filter {
    fn matches_key(&self, line: &Json, max_parallelism: i32) -> bool {
        let key = line.get("key");
        let text = |k: &Json| match k {
            Json::Str(s) => s.clone(),
            k => k.to_line(),
        };
        if let (Some(want), Some(k)) = (&self.key, key) {
            if text(k) != *want {
                return false;
            }
        }
        if let (Some(kg), Some(Json::Str(k))) = (self.key_group, key) {
            if flink_state::keygroup::key_group_of_string(k, max_parallelism) != i32::from(kg) {
                return false;
            }
        }
        true
    }

    /// `get --user-key`: keep the one map entry.
    fn narrow(&self, line: Json) -> Option<Json> {
        let Some(uk) = &self.user_key else {
            return Some(line);
        };
        let Json::Obj(mut fields) = line else {
            return None;
        };
        let slot = fields.iter_mut().find(|(k, _)| k == "value")?;
        let Json::Arr(entries) = &slot.1 else {
            return None;
        };
        let hit = entries.iter().find(|e| matches!(e, Json::Arr(kv) if kv.first().is_some_and(|k| match k { Json::Str(s) => s == uk, k => k.to_line() == *uk })))?.clone();
        slot.1 = hit;
        Some(Json::Obj(fields))
    }
}

/// Finds the operator: by --operator, else the one holding the state.
fn pick_operator<'a>(
    snap: &'a FlinkSnapshot,
    sel: Option<&str>,
    state: &str,
) -> Result<&'a flink_state::OperatorState, CmdError> {
    if let Some(sel) = sel {
        return Ok(snap.metadata.operator(sel)?);
    }
    let mut holders = Vec::new();
    for op in &snap.metadata.operators {
        let keyed = snap
            .keyed_header(op)
            .ok()
            .flatten()
            .map(|h| {
                h.states
                    .iter()
                    .any(|s| flink_state::snapshot::state_matches(&s.name, state))
            })
            .unwrap_or(false);
        let operator = snap
            .operator_header(op)
            .ok()
            .flatten()
            .map(|h| h.states.iter().any(|s| s.name == state))
            .unwrap_or(false);
        if keyed || operator {
            holders.push(op);
        }
    }
    match holders.as_slice() {
        [one] => Ok(one),
        [] => Err(
            format!("no operator holds a state {state:?} (`savepoint inspect` lists them)").into(),
        ),
        many => Err(format!(
            "several operators hold {state:?}: {}; choose one with --operator",
            many.iter()
                .map(|o| o.label())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into()),
    }
}

/// The one key group to read: --key-group, or the group of a String
/// --key (Flink's murmur hash of String.hashCode), so a lookup reads one
/// key group instead of the whole state. Other key types are scanned.
fn lookup_key_group(
    snap: &FlinkSnapshot,
    op: &flink_state::OperatorState,
    filter: &Filter,
) -> Option<i32> {
    if let Some(kg) = filter.key_group {
        return Some(i32::from(kg));
    }
    let key = filter.key.as_deref()?;
    let header = snap.keyed_header(op).ok().flatten()?;
    matches!(header.key, flink_state::serializer::Serializer::String)
        .then(|| flink_state::keygroup::key_group_of_string(key, op.max_parallelism))
}

/// Streams the state's lines to stdout. Exit code 3 (internal): nothing matched.
fn dump(
    f: &Found,
    operator: Option<&str>,
    state: &str,
    filter: &Filter,
) -> Result<Outcome, CmdError> {
    let snap = FlinkSnapshot::open(f.storage.as_ref(), &f.base)?;
    let op = pick_operator(&snap, operator, state)?;
    let opts = DumpOptions {
        state: Some(state.to_string()),
        lsm: Some(&FlinkLsm),
        check_key_groups: false,
        key_group: lookup_key_group(&snap, op, filter),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let limit = filter.limit.unwrap_or(u64::MAX);
    let node = op.name.split('[').next().unwrap_or("");
    let names = filter
        .plan
        .as_deref()
        .and_then(|p| flink_state::sqlplan::join_names(p, node));
    if filter.plan.is_some() && names.is_none() {
        eprintln!("warning: no plan node {node:?} in --sql-plan: rows keep f0, f1, ...");
    }
    let r = snap.dump(op, &opts, &mut |line| {
        if printed >= limit || !filter.matches_key(line, op.max_parallelism) {
            return Ok(());
        }
        let Some(mut line) = filter.narrow(line.clone()) else {
            return Ok(());
        };
        if let Some(n) = &names {
            n.rename_line(&mut line);
        }
        printed += 1;
        writeln!(out, "{}", line.to_line()).map_err(|e| FlinkError::Io {
            path: "stdout".into(),
            source: e,
        })
    });
    out.flush()?;
    let report = r?;
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e.into());
    }
    Ok(Outcome {
        json: serde_json::Value::Null,
        table: String::new(),
        code: if printed == 0 && filter.key.is_some() {
            3
        } else {
            0
        },
    })
}

fn verify_cmd(f: &Found) -> Outcome {
    let r = verify(f.storage.as_ref(), &f.base, Some(&FlinkLsm));
    let mut table = String::new();
    // Files are named relative to the storage root: print them in full.
    let full = |file: &str| match file {
        "" => "?".to_string(),
        f_ => format!("{}/{f_}", f.root.trim_end_matches('/')),
    };
    for p in &r.problems {
        let _ = writeln!(table, "DAMAGED {}: {}", full(&p.file), p.message);
    }
    for w in &r.warnings {
        let _ = writeln!(table, "warning: {w}");
    }
    let _ = writeln!(
        table,
        "{} files checked, {} entries decoded, {} problems",
        r.files_checked,
        r.entries,
        r.problems.len()
    );
    let problems: Vec<_> = r
        .problems
        .iter()
        .map(|p| json!({"file": full(&p.file), "message": p.message}))
        .collect();
    Outcome {
        json: json!({"format": "flink", "ok": r.problems.is_empty(), "files_checked": r.files_checked, "entries": r.entries, "problems": problems, "warnings": r.warnings}),
        table,
        code: if r.problems.is_empty() { 0 } else { 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint_store::object_store::PutPayload;

    #[test]
    fn parents_of_folders_and_urls() {
        assert_eq!(split_parent("/a/b/chk-5/"), ("/a/b".into(), "chk-5".into()));
        assert_eq!(
            split_parent("s3://bucket/sp"),
            ("s3://bucket".into(), "sp".into())
        );
        assert_eq!(
            split_parent("s3://bucket"),
            ("s3://bucket".into(), String::new())
        );
        assert_eq!(
            split_parent("memory://x/sp"),
            ("memory://x/sp".into(), String::new())
        );
    }

    /// A canonical savepoint in an object store reads like a folder.
    #[test]
    fn savepoint_in_an_object_store() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../flink-state/tests/fixtures/flink/A-p2/savepoint-canonical");
        let dir = std::fs::read_dir(&fixtures)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let rt = state_core::checkpoint::io_runtime().unwrap();
        let (store, _) = rt
            .block_on(checkpoint_store::open_store("memory://flink-sp-test"))
            .unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = StorePath::from(e.file_name().to_string_lossy().as_ref());
            let bytes = std::fs::read(e.path()).unwrap();
            rt.block_on(store.put(&path, PutPayload::from(bytes)))
                .unwrap();
        }
        let found = detect("memory://flink-sp-test", None)
            .unwrap()
            .expect("a Flink savepoint");
        let snap = FlinkSnapshot::open(found.storage.as_ref(), &found.base).unwrap();
        let mut lines = 0;
        for op in &snap.metadata.operators {
            let r = snap
                .dump(op, &DumpOptions::default(), &mut |_| Ok(()))
                .unwrap();
            lines += r.lines;
        }
        assert_eq!(lines, 751);
    }

    fn upload(rt: &Runtime, store: &Arc<dyn ObjectStore>, dir: &std::path::Path, rel: &str) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            if e.path().is_dir() {
                upload(rt, store, &e.path(), &format!("{name}/"));
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                rt.block_on(store.put(&StorePath::from(name.as_str()), PutPayload::from(bytes)))
                    .unwrap();
            }
        }
    }

    /// A job's checkpoint folder in an object store: the newest chk-N is
    /// found by listing, its absolute paths re-rooted, its SSTs read.
    #[test]
    fn incremental_checkpoint_in_an_object_store() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../flink-state/tests/fixtures/flink/A-p1/checkpoints");
        let job = std::fs::read_dir(&fixtures)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let rt = state_core::checkpoint::io_runtime().unwrap();
        let (store, _) = rt
            .block_on(checkpoint_store::open_store("memory://flink-job-test"))
            .unwrap();
        upload(&rt, &store, &job, "");
        assert_eq!(checkpoint_dirs("memory://flink-job-test"), ["chk-5"]);
        let found = detect("memory://flink-job-test", None)
            .unwrap()
            .expect("a Flink checkpoint");
        assert_eq!(found.base, "chk-5");
        let snap = FlinkSnapshot::open(found.storage.as_ref(), &found.base).unwrap();
        let opts = DumpOptions {
            lsm: Some(&crate::flink_rocksdb::FlinkLsm),
            ..Default::default()
        };
        let mut lines = 0;
        for op in &snap.metadata.operators {
            lines += snap.dump(op, &opts, &mut |_| Ok(())).unwrap().lines;
        }
        assert_eq!(lines, 751);
    }
}
