//! Flink's RocksDB files read by RocksDB itself: an [`LsmScanner`] that
//! opens a native snapshot's restored instance read-only (MANIFEST and all)
//! with Flink's string-append merge operator.
//!
//! This workspace's RocksDB build links only the zstd codec, while Flink
//! writes snappy SSTs by default, which flink-state's pure-Rust reader
//! (`SstLsm`) reads. So the command uses [`FlinkLsm`]: the pure reader
//! first, RocksDB when a file's compression is one the pure reader does not
//! decode (zstd, ...) and nothing was read yet.

use flink_state::lsm::EntrySink;
use flink_state::sst_lsm::SstLsm;
use flink_state::{FlinkError, LsmScanner};
use rocksdb::{ColumnFamilyDescriptor, MergeOperands, Options, DB};
use std::path::Path;

/// Flink's merge operator: operands appended with ',' (its name matters
/// only to RocksDB's messages).
fn string_append(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = existing.map(<[u8]>::to_vec);
    for op in operands {
        match out.as_mut() {
            Some(o) => {
                o.push(b',');
                o.extend_from_slice(op);
            }
            None => out = Some(op.to_vec()),
        }
    }
    out
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_merge_operator_associative("StringAppendTESTOperator", string_append);
    o
}

fn lsm_err(e: rocksdb::Error) -> FlinkError {
    FlinkError::Lsm(e.to_string())
}

/// RocksDB opening the instance read-only.
#[derive(Default)]
pub struct RocksLsm;

impl LsmScanner for RocksLsm {
    fn scan(&self, dir: &Path, column_family: &str, f: &mut EntrySink) -> flink_state::Result<()> {
        let cfs = DB::list_cf(&options(), dir).map_err(lsm_err)?;
        if !cfs.iter().any(|c| c == column_family) {
            return Ok(());
        }
        let descriptors = cfs
            .iter()
            .map(|c| ColumnFamilyDescriptor::new(c, options()));
        let db = DB::open_cf_descriptors_read_only(&options(), dir, descriptors, false)
            .map_err(lsm_err)?;
        let cf = db
            .cf_handle(column_family)
            .ok_or_else(|| FlinkError::Lsm(format!("no column family {column_family}")))?;
        let mut it = db.raw_iterator_cf(cf);
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            f(k, v)?;
            it.next();
        }
        it.status().map_err(lsm_err)
    }
}

/// The pure reader, then RocksDB for compressions only RocksDB decodes.
#[derive(Default)]
pub struct FlinkLsm;

fn unsupported_compression(e: &FlinkError) -> bool {
    e.to_string().contains("compression type")
}

impl LsmScanner for FlinkLsm {
    fn scan(&self, dir: &Path, column_family: &str, f: &mut EntrySink) -> flink_state::Result<()> {
        let mut seen = 0u64;
        let r = SstLsm.scan(dir, column_family, &mut |k, v| {
            seen += 1;
            f(k, v)
        });
        match r {
            Err(e) if seen == 0 && unsupported_compression(&e) => {
                RocksLsm.scan(dir, column_family, f)
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::{BlockBasedOptions, DBCompressionType};

    /// A RocksDB instance shaped like Flink's: a value state and a list
    /// state (merge operands over two flushes, a put, a delete).
    fn write_instance(dir: &Path, compression: DBCompressionType, format_version: i32) {
        let mut o = options();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_compression_type(compression);
        let mut t = BlockBasedOptions::default();
        t.set_format_version(format_version);
        o.set_block_based_table_factory(&t);
        let cfs = ["count", "timestamps"].map(|c| ColumnFamilyDescriptor::new(c, o.clone()));
        let db = DB::open_cf_descriptors(&o, dir, cfs).unwrap();
        let (count, ts) = (
            db.cf_handle("count").unwrap(),
            db.cf_handle("timestamps").unwrap(),
        );
        for i in 0u8..50 {
            db.put_cf(count, [1, i], [i; 8]).unwrap();
            db.merge_cf(ts, [1, i], [b'a', i]).unwrap();
        }
        db.flush_cf(count).unwrap();
        db.flush_cf(ts).unwrap();
        for i in 0u8..50 {
            db.put_cf(count, [1, i], [i + 1; 8]).unwrap();
            db.merge_cf(ts, [1, i], [b'b', i]).unwrap();
        }
        db.delete_cf(count, [1, 7]).unwrap();
        db.put_cf(ts, [1, 9], b"p").unwrap();
        db.merge_cf(ts, [1, 9], b"q").unwrap();
        db.flush_cf(count).unwrap();
        db.flush_cf(ts).unwrap();
    }

    fn scan(lsm: &dyn LsmScanner, dir: &Path, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        lsm.scan(dir, cf, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// flink-state's pure SST reader and RocksDB agree on what is live
    /// (format 5 as Flink's FRocksDB writes, and format 6).
    #[test]
    fn pure_reader_agrees_with_rocksdb() {
        for format_version in [5, 6] {
            let dir = tempfile::tempdir().unwrap();
            write_instance(dir.path(), DBCompressionType::None, format_version);
            for cf in ["count", "timestamps"] {
                let ours = scan(&SstLsm, dir.path(), cf);
                let theirs = scan(&RocksLsm, dir.path(), cf);
                assert_eq!(ours, theirs, "{cf}, format_version {format_version}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        write_instance(dir.path(), DBCompressionType::None, 5);
        let count = scan(&SstLsm, dir.path(), "count");
        assert_eq!(count.len(), 49);
        let ts = scan(&SstLsm, dir.path(), "timestamps");
        assert_eq!(ts[3].1, vec![b'a', 3, b',', b'b', 3]);
        assert_eq!(ts[9].1, b"p,q");
    }

    /// zstd SSTs (which the pure reader does not decode) go to RocksDB.
    #[test]
    fn zstd_falls_back_to_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        write_instance(dir.path(), DBCompressionType::Zstd, 5);
        let mut pure = 0;
        let err = SstLsm.scan(dir.path(), "count", &mut |_, _| {
            pure += 1;
            Ok(())
        });
        assert!(err.is_err_and(|e| unsupported_compression(&e)));
        assert_eq!(scan(&FlinkLsm, dir.path(), "count").len(), 49);
    }
}
