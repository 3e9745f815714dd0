//! Where a snapshot's files are read from, and how the paths written in
//! `_metadata` map onto that place.

use crate::error::{FlinkError, Result};
use crate::metadata::StreamHandle;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Read access to the folder a snapshot lives in (a local folder here;
/// savepoint-cli adds object stores). Paths are '/'-separated and relative
/// to the storage's root.
pub trait Storage {
    fn read(&self, path: &str) -> Result<Vec<u8>>;

    /// `len` bytes at `offset` (fewer at the end of the file).
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let all = self.read(path)?;
        let start = (offset as usize).min(all.len());
        let end = start.saturating_add(len as usize).min(all.len());
        Ok(all.get(start..end).unwrap_or(&[]).to_vec())
    }

    fn size(&self, path: &str) -> Result<u64> {
        Ok(self.read(path)?.len() as u64)
    }
}

/// A local folder.
pub struct DirStorage {
    pub root: PathBuf,
}

impl DirStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStorage { root: root.into() }
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

fn io_err(path: &std::path::Path, source: std::io::Error) -> FlinkError {
    FlinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Storage for DirStorage {
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.full(path);
        std::fs::read(&p).map_err(|e| io_err(&p, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.full(path);
        let mut f = std::fs::File::open(&p).map_err(|e| io_err(&p, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io_err(&p, e))?;
        let mut buf = Vec::new();
        f.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| io_err(&p, e))?;
        Ok(buf)
    }

    fn size(&self, path: &str) -> Result<u64> {
        let p = self.full(path);
        Ok(std::fs::metadata(&p).map_err(|e| io_err(&p, e))?.len())
    }
}

/// The storage path of a handle's file, for a snapshot in folder `base`
/// of the storage. Checkpoints write absolute paths
/// (`file:/data/ckpt/<job>/shared/x`, `.../chk-5/y`): they are re-rooted
/// under the job folder (the parent of `base`) from their last `shared`,
/// `taskowned` or `chk-N` component. Any other absolute path is taken as a
/// file of the snapshot folder itself (a moved savepoint).
pub fn resolve(base: &str, handle: &StreamHandle) -> Option<String> {
    match handle {
        StreamHandle::Inline { .. } => None,
        StreamHandle::Relative { path, .. } => Some(join(base, path)),
        StreamHandle::File { path, .. } => Some(reroot(base, path)),
    }
}

fn join(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

fn parent(base: &str) -> &str {
    base.trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(p, _)| p)
}

pub fn reroot(base: &str, abs: &str) -> String {
    let parts: Vec<&str> = abs
        .split('/')
        .filter(|p| !p.is_empty() && *p != "file:")
        .collect();
    let anchor = parts
        .iter()
        .rposition(|p| *p == "shared" || *p == "taskowned" || is_chk_dir(p));
    match anchor {
        Some(i) => join(parent(base), &parts.get(i..).unwrap_or(&[]).join("/")),
        None => join(base, parts.last().copied().unwrap_or("")),
    }
}

pub fn is_chk_dir(name: &str) -> bool {
    name.strip_prefix("chk-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The newest `chk-N` among folder names.
pub fn latest_checkpoint<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter(|n| is_chk_dir(n))
        .max_by_key(|n| n[4..].parse::<u64>().unwrap_or(0))
}

/// The bytes of a stream: inlined ones borrowed, files read.
pub fn stream_bytes<'h>(
    storage: &dyn Storage,
    base: &str,
    h: &'h StreamHandle,
) -> Result<Cow<'h, [u8]>> {
    match h {
        StreamHandle::Inline { data, .. } => Ok(Cow::Borrowed(data)),
        _ => {
            let p = resolve(base, h).unwrap_or_default();
            Ok(Cow::Owned(storage.read(&p)?))
        }
    }
}

/// A byte range of a stream.
pub fn stream_range<'h>(
    storage: &dyn Storage,
    base: &str,
    h: &'h StreamHandle,
    start: u64,
    end: u64,
) -> Result<Cow<'h, [u8]>> {
    match h {
        StreamHandle::Inline { data, .. } => {
            let s = (start as usize).min(data.len());
            let e = (end as usize).clamp(s, data.len());
            Ok(Cow::Borrowed(data.get(s..e).unwrap_or(&[])))
        }
        _ => {
            let p = resolve(base, h).unwrap_or_default();
            Ok(Cow::Owned(storage.read_range(
                &p,
                start,
                end.saturating_sub(start),
            )?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_paths_are_rerooted_under_the_job_folder() {
        assert_eq!(
            reroot(
                "chk-5",
                "file:/data/flink/ckpt/A/checkpoints/639e/shared/abc"
            ),
            "shared/abc"
        );
        assert_eq!(
            reroot("job/chk-5", "file:/data/x/639e/chk-5/def"),
            "job/chk-5/def"
        );
        assert_eq!(reroot("sp", "file:/elsewhere/savepoint-1/uuid"), "sp/uuid");
        assert_eq!(
            latest_checkpoint(["chk-9", "chk-10", "shared"]),
            Some("chk-10")
        );
    }
}
