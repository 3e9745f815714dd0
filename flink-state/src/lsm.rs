//! Native savepoints and incremental checkpoints are RocksDB instances as
//! files. This crate does not link RocksDB: whoever reads them implements
//! [`LsmScanner`] (savepoint-cli does, through the `rocksdb` crate).

use crate::error::Result;
use std::path::Path;

/// Receives each (key, value) of a scan; an error stops it.
pub type EntrySink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Reads one restored RocksDB instance of a Flink snapshot.
pub trait LsmScanner {
    /// `dir` holds the instance's files under their Flink names (`CURRENT`,
    /// `MANIFEST-*`, `OPTIONS-*`, `*.sst`). Calls `f` for every live entry
    /// of `column_family` (named after the Flink state) in key order, with
    /// the LSM resolved: the newest value per key, list merge operands
    /// joined with ',' in sequence order, deletions dropped. A column
    /// family that is not there has no entries.
    fn scan(&self, dir: &Path, column_family: &str, f: &mut EntrySink) -> Result<()>;
}
