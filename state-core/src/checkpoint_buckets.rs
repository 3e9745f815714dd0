//! Bucketed state in checkpoints: the runs of every live part, uploaded
//! once each (content-addressed shared files, reused by later checkpoints
//! while they live), listed in the manifest's `states` document under
//! `buckets` (`docs/bucket-format.md`).

use crate::bucket::{open_runs, BucketCut, RunFile, RunInfo};
use crate::error::{Result, StateError};
use crate::keygroup::KeyGroupRange;
use crate::store::StateStore;
use checkpoint_store::{JobStore, Manifest, ManifestFile};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Key of the bucket document in a manifest's `states`.
pub const BUCKETS_KEY: &str = "buckets";
/// Version of [`BucketsDoc`]; a reader refuses a newer one.
pub const BUCKETS_FORMAT_VERSION: u32 = 1;

/// The bucketed states of a checkpoint: per state, its runs, oldest first
/// within each bucket (a later run's entry replaces an earlier one's).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BucketsDoc {
    pub format_version: u32,
    pub states: BTreeMap<String, Vec<RunInfo>>,
}

/// Runs restored from a checkpoint, by state name.
pub type RestoredRuns = HashMap<String, Vec<Arc<RunFile>>>;

/// Writes the runs of every part of `cuts` not yet on disk, hard-links each
/// into `dir` (where the checkpoint's files are uploaded from) and returns
/// the document listing them. Parts shared between cuts (runs restored into
/// several instances) are listed once.
pub(crate) fn link_runs(cuts: &[BucketCut], dir: &Path) -> Result<BucketsDoc> {
    std::fs::create_dir_all(dir).map_err(StateError::io(format!("creating {}", dir.display())))?;
    let mut doc = BucketsDoc {
        format_version: BUCKETS_FORMAT_VERSION,
        states: BTreeMap::new(),
    };
    let mut seen = HashSet::new();
    for cut in cuts {
        for part in &cut.parts {
            let run = part.run()?;
            let info = run.info().clone();
            if !seen.insert(info.file.clone()) {
                continue;
            }
            let link = dir.join(&info.file);
            match std::fs::hard_link(run.path(), &link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(StateError::Io {
                        context: format!("linking {} into {}", run.path().display(), dir.display()),
                        source: e,
                    })
                }
            }
            doc.states.entry(cut.state.clone()).or_default().push(info);
        }
    }
    Ok(doc)
}

impl BucketsDoc {
    pub fn files(&self) -> impl Iterator<Item = &RunInfo> {
        self.states.values().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.states.values().all(|r| r.is_empty())
    }
}

/// The bucket document of a checkpoint, if it has bucketed state.
pub fn buckets_of(manifest: &Manifest) -> Result<Option<BucketsDoc>> {
    let Some(doc) = manifest.states.get(BUCKETS_KEY) else {
        return Ok(None);
    };
    let corrupt = |reason: String| StateError::Corrupt {
        state: format!("checkpoint {}", manifest.id),
        what: "bucket document",
        reason,
    };
    let doc: BucketsDoc =
        serde_json::from_value(doc.clone()).map_err(|e| corrupt(e.to_string()))?;
    if doc.format_version > BUCKETS_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format {} is newer than this release reads ({BUCKETS_FORMAT_VERSION})",
            doc.format_version
        )));
    }
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    if let Some(r) = doc.files().find(|r| !listed.contains(r.file.as_str())) {
        return Err(corrupt(format!(
            "run {} is not among the checkpoint's files",
            r.file
        )));
    }
    Ok(Some(doc))
}

/// Downloads (verified) and opens the runs of `manifest`'s bucketed states
/// into `dir`. A checkpoint without them gives an empty map.
pub fn restore_runs(
    runtime: &tokio::runtime::Runtime,
    job: &JobStore,
    manifest: &Manifest,
    dir: &Path,
) -> Result<RestoredRuns> {
    let Some(doc) = buckets_of(manifest)? else {
        return Ok(RestoredRuns::new());
    };
    std::fs::create_dir_all(dir).map_err(StateError::io(format!("creating {}", dir.display())))?;
    let by_name: HashMap<&str, &ManifestFile> = manifest
        .files
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    runtime.block_on(async {
        let fetches = doc
            .files()
            .filter_map(|r| by_name.get(r.file.as_str()))
            .map(|mf| {
                let dest = dir.join(&mf.name);
                async move { job.fetch_file(manifest.id, mf, &dest).await }
            });
        futures::future::try_join_all(fetches).await
    })?;
    let mut out = RestoredRuns::new();
    for (state, runs) in &doc.states {
        out.insert(state.clone(), open_runs(dir, runs)?);
    }
    Ok(out)
}

/// Writes restored runs into the map states of the same names, for the
/// key groups the store owns: how tools (savepoints, dump, verify) see a
/// bucketed state. Later runs overwrite earlier ones.
pub fn materialize_runs(
    store: &StateStore,
    runs: &RestoredRuns,
    range: KeyGroupRange,
) -> Result<u64> {
    let mut writer = store.raw_writer();
    let mut n = 0u64;
    for (state, files) in runs {
        for run in files {
            let mut failed = None;
            run.for_each(|e| {
                if !range.contains(e.key_group) {
                    return Ok(());
                }
                n += 1;
                if let Err(err) = writer.put_run_entry(state, e) {
                    failed = Some(err);
                    return Err(crate::bucket::BucketError::Callback("stopped".into()));
                }
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or_else(|| StateError::from(e)))?;
        }
    }
    writer.commit()?;
    Ok(n)
}
