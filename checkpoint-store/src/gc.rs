//! Retention and garbage collection. When in doubt it keeps: any manifest it
//! cannot read stops every deletion.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectMeta;

use crate::error::CheckpointError;
use crate::job::{JobStore, JobStoreOptions, Slot};
use crate::manifest::{
    manifest_key, parse_savepoint_manifest, FileKind, Manifest, Record, SAVEPOINT_MANIFEST_NAME,
};

/// What to keep.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Newest complete checkpoints kept (at least 1).
    pub retain: usize,
    /// Unreferenced objects and incomplete directories younger than this stay.
    pub grace: Duration,
}

impl GcPolicy {
    pub fn from_options(opts: &JobStoreOptions) -> Self {
        Self {
            retain: opts.retain,
            grace: opts.gc_grace,
        }
    }
}

/// What a GC run deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub dry_run: bool,
    pub retained: Vec<u64>,
    pub expired_checkpoints: Vec<u64>,
    pub fences: Vec<u64>,
    pub incomplete: Vec<u64>,
    /// Object keys (relative to the job prefix) of shared objects.
    pub shared: Vec<String>,
    /// Objects deleted (or to delete) in all.
    pub objects: usize,
    pub bytes: u64,
    /// Set when GC stopped without deleting anything, and why.
    pub blocked: Option<String>,
}

struct Plan {
    /// Manifests to delete first (they make checkpoints disappear).
    manifests: Vec<Path>,
    /// Everything else, deleted after the manifests.
    objects: Vec<ObjectMeta>,
}

impl JobStore {
    /// Applies retention and collects garbage; `dry_run` only reports.
    pub async fn gc(&self, policy: &GcPolicy, dry_run: bool) -> Result<GcReport, CheckpointError> {
        if policy.retain == 0 {
            return Err(CheckpointError::InvalidInput(
                "gc retain must be at least 1".into(),
            ));
        }
        let cutoff = SystemTime::now()
            .checked_sub(policy.grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = GcReport {
            dry_run,
            ..Default::default()
        };
        let ids = self.list_ids().await?;
        let slots = self.read_slots(&ids).await?;
        let savepoints = match self.savepoint_manifests().await {
            Ok(s) => s,
            Err(reason) => {
                report.blocked = Some(reason);
                return Ok(report);
            }
        };
        if let Some((id, e)) = slots.iter().find_map(|(id, s)| match s {
            Slot::Unreadable(e) => Some((id, e)),
            _ => None,
        }) {
            report.blocked = Some(format!("checkpoint {id}: {e}"));
            tracing::warn!(reason = ?report.blocked, "gc deletes nothing");
            return Ok(report);
        }
        let plan = self
            .plan(&slots, &savepoints, policy, cutoff, &mut report)
            .await?;
        report.objects = plan.manifests.len() + plan.objects.len();
        report.bytes = plan.objects.iter().map(|o| o.size).sum();
        if !dry_run {
            self.delete_all(plan.manifests).await?;
            self.delete_all(plan.objects.into_iter().map(|o| o.location).collect())
                .await?;
        }
        Ok(report)
    }

    async fn plan(
        &self,
        slots: &[(u64, Slot)],
        savepoints: &[Manifest],
        policy: &GcPolicy,
        cutoff: SystemTime,
        report: &mut GcReport,
    ) -> Result<Plan, CheckpointError> {
        let checkpoints: Vec<&Manifest> = slots
            .iter()
            .filter_map(|(_, s)| match s {
                Slot::Record(r) => match r.as_ref() {
                    Record::Checkpoint(m) => Some(m),
                    Record::Fence(_) => None,
                },
                _ => None,
            })
            .collect();
        let keep_from = checkpoints.len().saturating_sub(policy.retain);
        let (expired, retained) = checkpoints.split_at(keep_from);
        report.retained = retained.iter().map(|m| m.id).collect();
        let oldest_retained = retained.first().map(|m| m.id);
        let mut plan = Plan {
            manifests: Vec::new(),
            objects: Vec::new(),
        };
        for m in expired {
            report.expired_checkpoints.push(m.id);
            plan.manifests.push(self.path(&manifest_key(m.id)));
            plan.objects.extend(
                self.list_dir(m.id)
                    .await?
                    .into_iter()
                    .filter(|o| !is_manifest(o)),
            );
        }
        for (id, slot) in slots {
            match slot {
                // Fences below the retained checkpoints carry no information.
                Slot::Record(r)
                    if matches!(r.as_ref(), Record::Fence(_))
                        && oldest_retained.is_some_and(|o| *id < o) =>
                {
                    report.fences.push(*id);
                    plan.objects.extend(self.list_dir(*id).await?);
                }
                Slot::Missing => {
                    let objects = self.list_dir(*id).await?;
                    if !objects.is_empty() && objects.iter().all(|o| older(o, cutoff)) {
                        report.incomplete.push(*id);
                        plan.objects.extend(objects);
                    }
                }
                _ => {}
            }
        }
        let referenced: HashSet<&str> = retained
            .iter()
            .copied()
            .chain(savepoints.iter())
            .flat_map(|m| m.files.iter())
            .filter(|f| f.kind == FileKind::Shared)
            .map(|f| f.object.as_str())
            .collect();
        let shared_dir = self.path("checkpoints/shared");
        let prefix_len = self.prefix.as_ref().len();
        let shared: Vec<ObjectMeta> = self
            .store
            .list(Some(&shared_dir))
            .try_collect()
            .await
            .map_err(|e| CheckpointError::store("list", &shared_dir, e))?;
        for o in shared {
            let key = relative(o.location.as_ref(), prefix_len);
            if !referenced.contains(key) && older(&o, cutoff) {
                report.shared.push(key.to_string());
                plan.objects.push(o);
            }
        }
        Ok(plan)
    }

    /// Checkpoint-format manifests kept inside savepoints. Err(reason) if any
    /// cannot be read: GC must then delete nothing.
    async fn savepoint_manifests(&self) -> Result<Vec<Manifest>, String> {
        let dir = self.path("savepoints");
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| format!("listing {dir}: {e}"))?;
        let wanted: Vec<Path> = objects
            .into_iter()
            .filter(|o| o.location.filename() == Some(SAVEPOINT_MANIFEST_NAME))
            .map(|o| o.location)
            .collect();
        futures::stream::iter(wanted)
            .map(|path| async move {
                let bytes = self
                    .store
                    .get(&path)
                    .await
                    .map_err(|e| format!("reading {path}: {e}"))?
                    .bytes()
                    .await
                    .map_err(|e| format!("reading {path}: {e}"))?;
                parse_savepoint_manifest(&bytes, path.as_ref()).map_err(|e| e.to_string())
            })
            .buffer_unordered(8)
            .try_collect()
            .await
    }

    async fn delete_all(&self, paths: Vec<Path>) -> Result<(), CheckpointError> {
        futures::stream::iter(paths)
            .map(|p| async move {
                match self.store.delete(&p).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(CheckpointError::store("delete", &p, e)),
                }
            })
            .buffer_unordered(self.opts.upload_parallelism.max(1))
            .try_collect()
            .await
    }
}

fn is_manifest(o: &ObjectMeta) -> bool {
    o.location.filename() == Some(crate::manifest::MANIFEST_NAME)
}

fn older(o: &ObjectMeta, cutoff: SystemTime) -> bool {
    SystemTime::from(o.last_modified) < cutoff
}

fn relative(location: &str, prefix_len: usize) -> &str {
    if prefix_len == 0 {
        location
    } else {
        location.get(prefix_len + 1..).unwrap_or(location)
    }
}
