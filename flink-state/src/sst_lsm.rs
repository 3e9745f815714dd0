//! [`LsmScanner`] in pure Rust: the SSTs of one RocksDB instance merged
//! per column family (newest sequence number wins, list merge operands
//! joined with ',' oldest first as Flink's StringAppendTESTOperator does,
//! deletions dropped). No MANIFEST is needed: a snapshot's handle lists
//! exactly the live SSTs, and each names its column family.

use crate::error::{FlinkError, Result};
use crate::lsm::{EntrySink, LsmScanner};
use crate::sst::{EntryKind, SstEntry, SstFile};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::path::Path;

const DELIMITER: u8 = b',';

#[derive(Default)]
pub struct SstLsm;

/// The next entry of one file, ordered for a min-heap on (key asc, seq desc).
struct Head {
    entry: SstEntry,
    file: usize,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        (&self.entry.key, Reverse(self.entry.seq)).cmp(&(&o.entry.key, Reverse(o.entry.seq)))
    }
}

fn io(path: &Path, e: std::io::Error) -> FlinkError {
    FlinkError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// The SST files of `dir` that belong to `column_family`.
fn files_of(dir: &Path, column_family: &str) -> Result<Vec<(String, SstFile)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let p = e.map_err(|e| io(dir, e))?.path();
        if p.extension().is_some_and(|x| x == "sst") {
            let file = std::fs::File::open(&p).map_err(|e| io(&p, e))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let f = SstFile::open(Box::new(file)).map_err(|e| e.in_file(&name))?;
            if f.column_family == column_family {
                files.push((name, f));
            }
        }
    }
    Ok(files)
}

/// Resolves the versions of one key, newest first, to its live value.
fn resolve(versions: &[SstEntry]) -> Option<Vec<u8>> {
    let mut operands: Vec<&[u8]> = Vec::new();
    let mut base: Option<&[u8]> = None;
    for v in versions {
        match v.kind {
            EntryKind::Merge => operands.push(&v.value),
            EntryKind::Put => {
                base = Some(&v.value);
                break;
            }
            EntryKind::Delete => break,
        }
    }
    if base.is_none() && operands.is_empty() {
        return None;
    }
    let mut out = base.map(<[u8]>::to_vec).unwrap_or_default();
    for (i, op) in operands.iter().rev().enumerate() {
        if base.is_some() || i > 0 {
            out.push(DELIMITER);
        }
        out.extend_from_slice(op);
    }
    Some(out)
}

impl LsmScanner for SstLsm {
    fn scan(&self, dir: &Path, column_family: &str, f: &mut EntrySink) -> Result<()> {
        let files = files_of(dir, column_family)?;
        // Errors name the file (its Flink local name, e.g. 000034.sst).
        let mut iters: Vec<_> = files
            .iter()
            .map(|(name, f)| f.entries().map(move |e| e.map_err(|e| e.in_file(name))))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, it) in iters.iter_mut().enumerate() {
            if let Some(e) = it.next() {
                heap.push(Reverse(Head { entry: e?, file: i }));
            }
        }
        let mut versions: Vec<SstEntry> = Vec::new();
        while let Some(Reverse(Head { entry, file })) = heap.pop() {
            if let Some(next) = iters.get_mut(file).and_then(Iterator::next) {
                heap.push(Reverse(Head { entry: next?, file }));
            }
            if versions.first().is_some_and(|v| v.key != entry.key) {
                if let Some(v) = resolve(&versions) {
                    f(&versions[0].key, &v)?;
                }
                versions.clear();
            }
            versions.push(entry);
        }
        if let Some(v) = (!versions.is_empty()).then(|| resolve(&versions)).flatten() {
            f(&versions[0].key, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64, kind: EntryKind, v: &str) -> SstEntry {
        SstEntry {
            key: b"k".to_vec(),
            seq,
            kind,
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn merge_operands_join_oldest_first_and_deletes_hide() {
        let v = [
            e(9, EntryKind::Merge, "c"),
            e(8, EntryKind::Merge, "b"),
            e(5, EntryKind::Put, "a"),
        ];
        assert_eq!(resolve(&v).unwrap(), b"a,b,c");
        let v = [e(9, EntryKind::Merge, "c"), e(8, EntryKind::Merge, "b")];
        assert_eq!(resolve(&v).unwrap(), b"b,c");
        let v = [e(9, EntryKind::Delete, ""), e(8, EntryKind::Put, "b")];
        assert_eq!(resolve(&v), None);
        let v = [e(9, EntryKind::Put, "new"), e(8, EntryKind::Put, "old")];
        assert_eq!(resolve(&v).unwrap(), b"new");
    }
}
