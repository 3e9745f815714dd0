//! What lives at a location: a savepoint, a job (with checkpoints), or a
//! single checkpoint of a job (`<job>/checkpoints/chk-<N>`).

use super::error::{Result, SavepointError};
use super::location::Location;
use super::meta::{SavepointMeta, METADATA_NAME};
use crate::checkpoint::io_runtime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Savepoint,
    /// A job root; `checkpoint` is set when the URL named one checkpoint.
    Job {
        url: String,
        checkpoint: Option<u64>,
    },
}

/// Looks at `url` (without creating anything) and says what it holds.
pub fn detect(url: &str) -> Result<SourceKind> {
    let rt = io_runtime()?;
    let trimmed = url.trim_end_matches('/');
    if let Some((job, chk)) = trimmed.rsplit_once("/checkpoints/chk-") {
        if let Ok(id) = chk.parse::<u64>() {
            return Ok(SourceKind::Job {
                url: job.to_string(),
                checkpoint: Some(id),
            });
        }
    }
    let loc = rt.block_on(Location::open(url, true))?;
    if rt.block_on(loc.exists(METADATA_NAME))? {
        return Ok(SourceKind::Savepoint);
    }
    if !rt.block_on(loc.list_dirs("checkpoints"))?.is_empty() {
        return Ok(SourceKind::Job {
            url: url.to_string(),
            checkpoint: None,
        });
    }
    Err(SavepointError::NotRecognized {
        location: loc.display.clone(),
    })
}

/// Savepoints kept under `<job>/savepoints/<name>/`, with their metadata
/// (or why it cannot be read).
pub fn job_savepoints(job_url: &str) -> Result<Vec<(String, Result<SavepointMeta>)>> {
    let rt = io_runtime()?;
    let loc = rt.block_on(Location::open(job_url, true))?;
    let mut out = Vec::new();
    for name in rt.block_on(loc.list_dirs("savepoints"))? {
        let rel = format!("savepoints/{name}/{METADATA_NAME}");
        let meta = match rt.block_on(loc.get_opt(&rel)) {
            Ok(Some(b)) => SavepointMeta::parse(&b, &loc.describe(&rel)),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        out.push((name, meta));
    }
    Ok(out)
}
