//! Restoring a savepoint into a RocksDB store for any key-group range.

use super::avro::{Entry, EntryValue};
use super::error::{Result, SavepointError};
use super::meta::SavepointMeta;
use super::read::Savepoint;
use crate::checkpoint::io_runtime;
use crate::envelope;
use crate::iter::RawEntry;
use crate::options::StoreOptions;
use crate::store::StateStore;
use crate::timers::Timer;
use std::path::{Path, PathBuf};

/// Restores the savepoint at `url` into `local_dir` (absent or empty) and
/// opens it with `opts`: only `opts.key_groups` are kept, so an instance of
/// a job at any parallelism takes its own share. Values are written with
/// the savepoint's schema as version 1 of each state; `opts.states` then
/// declare the job's schemas as usual (a declared schema must read the
/// savepoint's). `local_dir` appears whole or not at all.
pub fn restore_into(
    url: &str,
    local_dir: &Path,
    opts: StoreOptions,
) -> Result<(StateStore, SavepointMeta)> {
    let sp = Savepoint::open(io_runtime()?, url)?;
    let store = restore_savepoint(&sp, local_dir, opts)?;
    Ok((store, sp.meta().clone()))
}

pub(crate) fn restore_savepoint(
    sp: &Savepoint,
    local_dir: &Path,
    opts: StoreOptions,
) -> Result<StateStore> {
    let meta = sp.meta();
    if opts.max_parallelism != meta.max_parallelism {
        return Err(SavepointError::InvalidInput(format!(
            "savepoint has max parallelism {}, restore asked for {} (use `savepoint rescale --max-parallelism`)",
            meta.max_parallelism, opts.max_parallelism
        )));
    }
    let want = opts.key_groups;
    let [lo, hi] = meta.key_group_range;
    if want.start < lo || want.end > hi {
        return Err(SavepointError::InvalidInput(format!(
            "savepoint holds key groups [{lo}, {hi}], cannot restore {want} from it"
        )));
    }
    check_target(local_dir)?;
    let staging = staging_dir(local_dir);
    let r = load(sp, &staging, &opts);
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    std::fs::rename(&staging, local_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        SavepointError::Io {
            context: format!("moving the restored store into {}", local_dir.display()),
            source: e,
        }
    })?;
    match StateStore::open(local_dir, opts) {
        Ok(s) => Ok(s),
        Err(e) => {
            let _ = std::fs::remove_dir_all(local_dir);
            Err(e.into())
        }
    }
}

fn check_target(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = dir.is_dir()
        && std::fs::read_dir(dir)
            .map_err(SavepointError::io(format!("reading {}", dir.display())))?
            .next()
            .is_none();
    if !empty {
        return Err(SavepointError::InvalidInput(format!(
            "{} exists and is not an empty folder",
            dir.display()
        )));
    }
    std::fs::remove_dir(dir).map_err(SavepointError::io(format!("replacing {}", dir.display())))
}

fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.with_file_name(format!(".{name}.restoring-{}-{nanos}", std::process::id()))
}

/// Loads the savepoint's entries of `opts.key_groups` into a fresh store
/// at `dir`, declared with the savepoint's schemas.
fn load(sp: &Savepoint, dir: &Path, opts: &StoreOptions) -> Result<()> {
    let meta = sp.meta();
    let states = meta
        .states
        .iter()
        .map(|s| {
            let mut d = s.descriptor.clone();
            d.value_schema = s.schema.clone();
            d
        })
        .collect();
    let mut load_opts = opts.clone();
    load_opts.states = states;
    let store = StateStore::open(dir, load_opts)?;
    let range = opts.key_groups;
    for section in &meta.states {
        let name = section.name();
        let version = store.state_meta(name)?.current_version();
        let mut w = store.raw_writer();
        for e in sp.entries(name, Some(range))? {
            w.put(name, &to_raw(e?, version))?;
            w.maybe_commit()?;
        }
        w.commit()?;
    }
    let mut w = store.raw_writer();
    for t in sp.timers()? {
        if range.contains(t.key_group) {
            w.put_timer(&Timer {
                timestamp: t.timestamp,
                key_group: t.key_group,
                key: t.key,
                payload: t.payload,
            })?;
        }
    }
    w.commit()?;
    store.flush()?;
    Ok(())
}

/// A savepoint entry as stored: envelopes with `version` and the expiry.
pub(crate) fn to_raw(e: Entry, version: u16) -> RawEntry {
    let value = match &e.value {
        EntryValue::Single(v) => envelope::encode(version, e.expiry_ms, v),
        EntryValue::List(items) => {
            let mut out = Vec::new();
            for i in items {
                envelope::push_list_element(
                    &mut out,
                    &envelope::encode(version, i.expiry_ms, &i.value),
                );
            }
            out
        }
    };
    RawEntry {
        key_group: e.key_group,
        key: e.key,
        namespace: e.namespace,
        user_key: e.user_key,
        value,
    }
}
