//! The change log: every write to a store since the last checkpoint, kept as
//! the RocksDB write batches that applied it.
//!
//! A checkpoint of layout v2 (`docs/checkpoint-runs.md`) uploads what
//! changed since the previous one as a sorted run, without flushing the
//! memtables in the operator's pause. The log is what makes that possible:
//! at a barrier it is swapped out (a pointer swap under a lock), and a
//! background thread sorts it into SST files.
//!
//! Every write of the store goes through [`ChangeLog::write`] as one
//! `WriteBatch`, whose serialized form (`WriteBatch::data`, the same bytes
//! RocksDB puts in its WAL) is appended to the log while capture is on.
//! Keeping the batch bytes costs one copy per write; parsing them waits for
//! the background thread.

use crate::error::{Result, StateError};
use rocksdb::{WriteBatch, WriteOptions, DB};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, RwLock};

/// Writes of the store, recorded between two cuts.
pub(crate) struct ChangeLog {
    /// Writers hold it shared; a cut holds it exclusively, so a cut sees
    /// every write either wholly before or wholly after it, in the log and
    /// in the DB alike.
    gate: RwLock<()>,
    capturing: AtomicBool,
    /// Who took the last cut: a log is only a complete record since the
    /// previous cut for the checkpointer that took both.
    last_cut_by: AtomicU64,
    /// Batches written since the store was opened.
    writes: AtomicU64,
    /// Held across the DB write while capturing, so that the log's order is
    /// the DB's order even with several writer threads.
    buf: Mutex<LogBuf>,
    /// Column family id → name, learnt at open (ids are not exposed by the
    /// Rust binding, but every batch record carries one).
    cf_names: HashMap<u32, String>,
}

impl ChangeLog {
    pub fn new(db: &DB, names: &[String]) -> Result<ChangeLog> {
        let mut cf_names = HashMap::new();
        for name in names {
            let Some(cf) = db.cf_handle(name) else {
                continue;
            };
            let mut probe = WriteBatch::default();
            probe.put_cf(cf, b"", b"");
            let mut out = Vec::new();
            parse_batch(probe.data(), 0, &mut out).map_err(|e| corrupt_log(name, &e))?;
            let id = out
                .first()
                .map(|c| c.cf)
                .ok_or_else(|| corrupt_log(name, "empty probe"))?;
            cf_names.insert(id, name.clone());
        }
        Ok(ChangeLog {
            gate: RwLock::new(()),
            capturing: AtomicBool::new(false),
            last_cut_by: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            buf: Mutex::new(LogBuf::default()),
            cf_names,
        })
    }

    pub fn cf_names(&self) -> &HashMap<u32, String> {
        &self.cf_names
    }

    /// Applies `batch` to `db`, recording it if capture is on.
    pub fn write(
        &self,
        db: &DB,
        batch: WriteBatch,
        opts: &WriteOptions,
    ) -> std::result::Result<(), rocksdb::Error> {
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        self.writes.fetch_add(1, Ordering::Relaxed);
        if !self.capturing.load(Ordering::Acquire) {
            return db.write_opt(batch, opts);
        }
        let mut guard = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let LogBuf { bytes, spill, .. } = &mut *guard;
        let mark = bytes.len();
        let data = batch.data();
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(data);
        let result = db.write_opt(batch, opts);
        if result.is_err() {
            // The write did not happen; neither may its record.
            bytes.truncate(mark);
            return result;
        }
        if let Some(sp) = spill {
            if bytes.len() >= sp.threshold {
                // Blocks while the sealer is a segment behind: the log's
                // memory stays bounded by backpressure on the writers.
                match sp.tx.send(std::mem::take(bytes)) {
                    Ok(()) => sp.sent += 1,
                    Err(std::sync::mpsc::SendError(segment)) => {
                        // The sealer is gone, and with it segments it may
                        // not have sealed: keep the log in memory, and make
                        // the next cut incomplete (a full copy).
                        *bytes = segment;
                        *spill = None;
                        guard.broken = true;
                    }
                }
            }
        }
        result
    }

    /// Hands segments of the log past `threshold` bytes to a sealer (which
    /// turns them into runs in the background), if `owner` took the last
    /// cut. Segment numbers count from 1 from here on.
    pub fn set_spill(&self, owner: u64, tx: SyncSender<Vec<u8>>, threshold: usize) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.last_cut_by.load(Ordering::Acquire) != owner {
            return;
        }
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.spill = Some(Spill {
            owner,
            tx,
            threshold: threshold.max(1),
            sent: 0,
        });
    }

    /// The cut of a checkpoint by `owner` (non-zero): takes the log recorded
    /// so far, turns capture on, and runs `at_cut` (a snapshot) with no
    /// write in flight. The flag says whether what was taken is every write
    /// since `owner`'s previous cut (false on its first cut, or when another
    /// owner cut in between).
    pub fn cut<T>(&self, owner: u64, at_cut: impl FnOnce() -> T) -> Cut<T> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let log = std::mem::take(&mut buf.bytes);
        let spilled = match &buf.spill {
            Some(s) if s.owner == owner => s.sent,
            Some(_) => {
                // Another checkpointer's sealer: its segments are not this
                // one's to take (this cut is incomplete anyway), and it
                // receives nothing more.
                buf.spill = None;
                0
            }
            None => 0,
        };
        let broken = std::mem::take(&mut buf.broken);
        drop(buf);
        let was_on = self.capturing.swap(true, Ordering::AcqRel);
        let previous = self.last_cut_by.swap(owner, Ordering::AcqRel);
        Cut {
            log,
            complete: was_on && previous == owner && !broken,
            spilled,
            at_cut: at_cut(),
        }
    }

    /// Turns capture off and drops what was recorded, if `owner` took the
    /// last cut: nobody will take the log any more.
    pub fn stop(&self, owner: u64) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.last_cut_by.load(Ordering::Acquire) != owner {
            return;
        }
        self.capturing.store(false, Ordering::Release);
        self.last_cut_by.store(0, Ordering::Release);
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        *buf = LogBuf::default();
    }

    /// Write batches applied since the store was opened (attempted ones
    /// included): zero means the store still holds what it was opened with.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Bytes recorded since the last cut and not yet handed to a sealer.
    pub fn len(&self) -> usize {
        self.buf.lock().map(|b| b.bytes.len()).unwrap_or(0)
    }
}

#[derive(Default)]
struct LogBuf {
    /// `[u32 LE length][write batch bytes]` records, in the order applied.
    bytes: Vec<u8>,
    spill: Option<Spill>,
    /// Segments were handed to a sealer that is gone: the log since the
    /// last cut is not complete.
    broken: bool,
}

struct Spill {
    /// The checkpointer whose sealer receives the segments.
    owner: u64,
    tx: SyncSender<Vec<u8>>,
    threshold: usize,
    /// Segments sent so far.
    sent: u64,
}

/// What a cut takes.
pub(crate) struct Cut<T> {
    /// Writes since the previous cut that were not handed to the sealer.
    pub log: Vec<u8>,
    /// The log (with the segments handed to the sealer before it) is every
    /// write since the owner's previous cut.
    pub complete: bool,
    /// Segments handed to the sealer so far (counted from `set_spill`):
    /// those up to this number precede `log`.
    pub spilled: u64,
    pub at_cut: T,
}

fn corrupt_log(what: &str, reason: &str) -> StateError {
    StateError::Corrupt {
        state: what.to_string(),
        what: "change log",
        reason: reason.to_string(),
    }
}

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    /// Position in the log: later writes have larger positions.
    pub seq: u32,
    pub cf: u32,
    pub key: &'a [u8],
    pub op: Op<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    Put(&'a [u8]),
    Delete,
    Merge(&'a [u8]),
    /// Deletes `[key, end)`.
    DeleteRange(&'a [u8]),
}

/// Parses a log taken by [`ChangeLog::cut`] into its writes, in order.
pub(crate) fn parse_log(log: &[u8]) -> std::result::Result<Vec<Change<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = log;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!("truncated record header ({} bytes)", rest.len()));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = rest
            .get(4..4 + len)
            .ok_or_else(|| format!("record of {len} bytes, {} left", rest.len() - 4))?;
        let seq = u32::try_from(out.len()).map_err(|_| "more than 2^32 writes".to_string())?;
        parse_batch(body, seq, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

// Record tags of RocksDB's write batch format (db/dbformat.h, ValueType).
const DELETION: u8 = 0x0;
const VALUE: u8 = 0x1;
const MERGE: u8 = 0x2;
const CF_DELETION: u8 = 0x4;
const CF_VALUE: u8 = 0x5;
const CF_MERGE: u8 = 0x6;
const SINGLE_DELETION: u8 = 0x7;
const CF_SINGLE_DELETION: u8 = 0x8;
const CF_RANGE_DELETION: u8 = 0xE;
const RANGE_DELETION: u8 = 0xF;
/// 8-byte sequence number and 4-byte count before the records.
const BATCH_HEADER: usize = 12;

/// Parses one serialized write batch. Writes get positions from `first_seq`
/// on, in the batch's order.
fn parse_batch<'a>(
    data: &'a [u8],
    first_seq: u32,
    out: &mut Vec<Change<'a>>,
) -> std::result::Result<(), String> {
    let mut r = data
        .get(BATCH_HEADER..)
        .ok_or_else(|| format!("write batch of {} bytes has no header", data.len()))?;
    let mut seq = first_seq;
    while let Some((&tag, rest)) = r.split_first() {
        r = rest;
        let cf = match tag {
            CF_DELETION | CF_VALUE | CF_MERGE | CF_SINGLE_DELETION | CF_RANGE_DELETION => {
                varint32(&mut r)?
            }
            _ => 0,
        };
        let key = slice(&mut r)?;
        let op = match tag {
            VALUE | CF_VALUE => Op::Put(slice(&mut r)?),
            MERGE | CF_MERGE => Op::Merge(slice(&mut r)?),
            DELETION | CF_DELETION | SINGLE_DELETION | CF_SINGLE_DELETION => Op::Delete,
            RANGE_DELETION | CF_RANGE_DELETION => Op::DeleteRange(slice(&mut r)?),
            other => return Err(format!("unsupported write batch record type {other:#x}")),
        };
        out.push(Change { seq, cf, key, op });
        seq = seq
            .checked_add(1)
            .ok_or_else(|| "more than 2^32 writes".to_string())?;
    }
    Ok(())
}

fn varint32(r: &mut &[u8]) -> std::result::Result<u32, String> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&b, rest) = r.split_first().ok_or("truncated varint")?;
        *r = rest;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 5 bytes".into())
}

fn slice<'a>(r: &mut &'a [u8]) -> std::result::Result<&'a [u8], String> {
    let len = varint32(r)? as usize;
    if r.len() < len {
        return Err(format!("slice of {len} bytes, {} left", r.len()));
    }
    let (s, rest) = r.split_at(len);
    *r = rest;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(names: &[&str]) -> (tempfile::TempDir, DB) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let db = DB::open_cf(&o, dir.path(), names).unwrap();
        (dir, db)
    }

    #[test]
    fn records_every_kind_of_write_with_its_column_family() {
        let (_d, db) = db_with(&["a", "b"]);
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let log = ChangeLog::new(&db, &names).unwrap();
        let wo = WriteOptions::default();
        let (a, b) = (db.cf_handle("a").unwrap(), db.cf_handle("b").unwrap());
        let mut before = WriteBatch::default();
        before.put_cf(a, b"not", b"recorded");
        log.write(&db, before, &wo).unwrap();
        let cut = log.cut(1, || ());
        assert!(cut.log.is_empty() && !cut.complete);
        let mut batch = WriteBatch::default();
        batch.put_cf(a, b"k1", b"v1");
        batch.delete_cf(b, b"k2");
        batch.delete_range_cf(b, b"k3", b"k4");
        log.write(&db, batch, &wo).unwrap();
        let mut batch = WriteBatch::default();
        batch.put_cf(b, vec![7u8; 300], vec![9u8; 70_000]);
        log.write(&db, batch, &wo).unwrap();
        let cut = log.cut(1, || ());
        assert!(cut.complete);
        let changes = parse_log(&cut.log).unwrap();
        let id = |n: &str| {
            *log.cf_names()
                .iter()
                .find(|(_, v)| v.as_str() == n)
                .unwrap()
                .0
        };
        let big_key = vec![7u8; 300];
        let big_value = vec![9u8; 70_000];
        assert_eq!(
            changes,
            vec![
                Change {
                    seq: 0,
                    cf: id("a"),
                    key: b"k1",
                    op: Op::Put(b"v1")
                },
                Change {
                    seq: 1,
                    cf: id("b"),
                    key: b"k2",
                    op: Op::Delete
                },
                Change {
                    seq: 2,
                    cf: id("b"),
                    key: b"k3",
                    op: Op::DeleteRange(b"k4")
                },
                Change {
                    seq: 3,
                    cf: id("b"),
                    key: &big_key,
                    op: Op::Put(&big_value)
                },
            ]
        );
        let mut batch = WriteBatch::default();
        batch.put_cf(a, b"k", b"v");
        log.write(&db, batch, &wo).unwrap();
        assert!(!log.cut(2, || ()).complete, "another owner cut in between");
        log.stop(1);
        log.write(&db, WriteBatch::default(), &wo).unwrap();
        assert!(log.len() > 0, "only the last cutter stops capture");
        log.stop(2);
        assert_eq!(log.len(), 0);
    }

    #[test]
    fn truncated_logs_are_errors_not_panics() {
        let (_d, db) = db_with(&["a"]);
        let log = ChangeLog::new(&db, &["a".to_string()]).unwrap();
        log.cut(1, || ());
        let mut batch = WriteBatch::default();
        batch.put_cf(db.cf_handle("a").unwrap(), b"key", b"value");
        log.write(&db, batch, &WriteOptions::default()).unwrap();
        let taken = log.cut(1, || ()).log;
        for cut in 0..taken.len() {
            assert!(
                parse_log(&taken[..cut]).is_err() || cut == 0,
                "cut at {cut}"
            );
        }
        assert!(parse_log(&taken).is_ok());
    }

    #[test]
    fn segments_past_the_threshold_go_to_the_sealer_in_order() {
        let (_d, db) = db_with(&["a"]);
        let log = ChangeLog::new(&db, &["a".to_string()]).unwrap();
        let cf = db.cf_handle("a").unwrap();
        log.cut(1, || ());
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        log.set_spill(1, tx, 100);
        let put = |i: u32| {
            let mut batch = WriteBatch::default();
            batch.put_cf(cf, i.to_be_bytes(), [0u8; 60]);
            log.write(&db, batch, &WriteOptions::default()).unwrap();
        };
        for i in 0..5 {
            put(i);
        }
        let cut = log.cut(1, || ());
        assert!(cut.complete);
        let segments: Vec<Vec<u8>> = rx.try_iter().collect();
        assert_eq!(cut.spilled, segments.len() as u64);
        assert!(segments.len() >= 2, "{} segments", segments.len());
        let mut keys = Vec::new();
        for seg in segments.iter().chain(std::iter::once(&cut.log)) {
            keys.extend(parse_log(seg).unwrap().into_iter().map(|c| c.key.to_vec()));
        }
        let want: Vec<Vec<u8>> = (0..5u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(keys, want, "every write once, in order");
        drop(rx);
        put(9);
        put(10);
        assert!(
            log.len() > 100,
            "with the sealer gone the log stays in memory"
        );
        assert!(
            !log.cut(1, || ()).complete,
            "segments a gone sealer may have lost make the next cut a full copy"
        );
    }

    #[test]
    fn another_checkpointers_cut_takes_the_spill_away() {
        let (_d, db) = db_with(&["a"]);
        let log = ChangeLog::new(&db, &["a".to_string()]).unwrap();
        let cf = db.cf_handle("a").unwrap();
        log.cut(1, || ());
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        log.set_spill(1, tx, 10);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, b"k", [0u8; 20]);
        log.write(&db, batch, &WriteOptions::default()).unwrap();
        assert_eq!(rx.try_iter().count(), 1);
        let cut = log.cut(2, || ());
        assert!(!cut.complete);
        assert_eq!(cut.spilled, 0, "owner 1's segments are not owner 2's");
        assert!(rx.recv().is_err(), "owner 1's sealer receives nothing more");
    }
}
