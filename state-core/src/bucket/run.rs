//! Bucket runs: immutable sorted files of one event-time bucket's entries,
//! with a sparse index and a key filter (format in `docs/bucket-format.md`).
//!
//! ```text
//! header   "SSBKTRUN" | format u32 LE (1) | 0u32
//! blocks   entries..., crc32c u32 LE of the block's entries     (~4 KiB each)
//!   entry  key group u16 BE | varint key len | key | varint user-key len |
//!          user key | zigzag varint ts | varint value len | value envelope
//! index    varint blocks | per block: key group u16 BE | varint key len |
//!          key | offset u64 LE | length u32 LE; crc32c u32 LE
//! filter   probes u32 LE | bits; crc32c u32 LE
//! footer   index offset u64 | index len u32 | filter offset u64 |
//!          filter len u32 | entries u64 | min ts i64 | max ts i64 |
//!          first key group u16 | last key group u16 | crc32c u32 of the
//!          footer before it | "SSBKTRUN"                  (all LE, 64 bytes)
//! ```
//!
//! Entries sort by `(key group, key, user key)`, as every other state of
//! the store does, so a run splits by key group for rescaling. A probe reads
//! the index and filter (kept in memory) and then only the blocks that can
//! hold the key: one read of about 4 KiB for most keys.

use super::filter::{key_hash, KeyFilter};
use super::BucketError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub const MAGIC: &[u8; 8] = b"SSBKTRUN";
pub const RUN_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: usize = 64;
/// Data block size the writer aims at: about one page-cache read per probe.
pub const BLOCK_BYTES: usize = 4096;
const FILTER_BITS_PER_KEY: usize = 10;
/// Bounds what a hostile length can make a reader allocate.
const MAX_BLOCK_BYTES: u32 = 64 << 20;
const MAX_SECTION_BYTES: u32 = 1 << 30;

/// What a run holds, recorded in checkpoints beside its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub file: String,
    /// First event time of the bucket (inclusive).
    pub bucket_start: i64,
    pub entries: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub first_key_group: u16,
    pub last_key_group: u16,
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads entries out of untrusted bytes: every read is checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn sized(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    fn u16_be(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32_le(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64_le(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64_le(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// One entry as read from a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEntry<'a> {
    pub key_group: u16,
    pub key: &'a [u8],
    pub user_key: &'a [u8],
    pub ts: i64,
    pub value: &'a [u8],
}

fn next_entry<'a>(c: &mut Cursor<'a>) -> Option<RunEntry<'a>> {
    let key_group = c.u16_be()?;
    let key = c.sized()?;
    let user_key = c.sized()?;
    let z = c.varint()?;
    let ts = ((z >> 1) as i64) ^ -((z & 1) as i64);
    let value = c.sized()?;
    Some(RunEntry {
        key_group,
        key,
        user_key,
        ts,
        value,
    })
}

#[derive(Debug, Clone)]
struct BlockRef {
    key_group: u16,
    first_key: Box<[u8]>,
    offset: u64,
    len: u32,
}

/// Writes a run; entries must come in `(key group, key, user key)` order.
pub struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block: Vec<u8>,
    block_first: Option<(u16, Box<[u8]>)>,
    index: Vec<BlockRef>,
    hashes: Vec<u64>,
    last: Option<(u16, Vec<u8>, Vec<u8>)>,
    info: RunInfo,
}

impl RunWriter {
    pub fn create(path: &Path, bucket_start: i64) -> Result<Self, BucketError> {
        let file = File::create(path).map_err(BucketError::io(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&RUN_FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        out.write_all(&header).map_err(BucketError::io(path))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(RunWriter {
            path: path.to_path_buf(),
            out,
            offset: HEADER_LEN,
            block: Vec::with_capacity(BLOCK_BYTES + 512),
            block_first: None,
            index: Vec::new(),
            hashes: Vec::new(),
            last: None,
            info: RunInfo {
                file: file_name,
                bucket_start,
                entries: 0,
                bytes: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                first_key_group: u16::MAX,
                last_key_group: 0,
            },
        })
    }

    pub fn add(&mut self, e: &RunEntry<'_>) -> Result<(), BucketError> {
        let order = (e.key_group, e.key, e.user_key);
        if let Some((kg, k, uk)) = &self.last {
            if (*kg, k.as_slice(), uk.as_slice()) >= order {
                return Err(BucketError::Order(self.path.clone()));
            }
        }
        let new_key = self
            .last
            .as_ref()
            .is_none_or(|(kg, k, _)| *kg != e.key_group || k.as_slice() != e.key);
        if new_key {
            self.hashes.push(key_hash(e.key));
        }
        if self.block_first.is_none() {
            self.block_first = Some((e.key_group, e.key.into()));
        }
        self.block.extend_from_slice(&e.key_group.to_be_bytes());
        put_varint(&mut self.block, e.key.len() as u64);
        self.block.extend_from_slice(e.key);
        put_varint(&mut self.block, e.user_key.len() as u64);
        self.block.extend_from_slice(e.user_key);
        put_varint(&mut self.block, ((e.ts << 1) ^ (e.ts >> 63)) as u64);
        put_varint(&mut self.block, e.value.len() as u64);
        self.block.extend_from_slice(e.value);
        let i = &mut self.info;
        i.entries += 1;
        i.min_ts = i.min_ts.min(e.ts);
        i.max_ts = i.max_ts.max(e.ts);
        i.first_key_group = i.first_key_group.min(e.key_group);
        i.last_key_group = i.last_key_group.max(e.key_group);
        match &mut self.last {
            Some((kg, k, uk)) => {
                *kg = e.key_group;
                k.clear();
                k.extend_from_slice(e.key);
                uk.clear();
                uk.extend_from_slice(e.user_key);
            }
            None => self.last = Some((e.key_group, e.key.to_vec(), e.user_key.to_vec())),
        }
        if self.block.len() >= BLOCK_BYTES {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> Result<(), BucketError> {
        let Some((key_group, first_key)) = self.block_first.take() else {
            return Ok(());
        };
        let crc = crc32c::crc32c(&self.block);
        self.block.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&self.block)
            .map_err(BucketError::io(&self.path))?;
        self.index.push(BlockRef {
            key_group,
            first_key,
            offset: self.offset,
            len: self.block.len() as u32,
        });
        self.offset += self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    fn write_section(&mut self, mut section: Vec<u8>) -> Result<(u64, u32), BucketError> {
        let crc = crc32c::crc32c(&section);
        section.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&section)
            .map_err(BucketError::io(&self.path))?;
        let at = self.offset;
        self.offset += section.len() as u64;
        Ok((at, section.len() as u32))
    }

    /// Completes the file and returns what it holds.
    pub fn finish(mut self) -> Result<RunInfo, BucketError> {
        self.end_block()?;
        let mut index = Vec::new();
        put_varint(&mut index, self.index.len() as u64);
        for b in &self.index {
            index.extend_from_slice(&b.key_group.to_be_bytes());
            put_varint(&mut index, b.first_key.len() as u64);
            index.extend_from_slice(&b.first_key);
            index.extend_from_slice(&b.offset.to_le_bytes());
            index.extend_from_slice(&b.len.to_le_bytes());
        }
        let (index_at, index_len) = self.write_section(index)?;
        let mut filter = Vec::new();
        KeyFilter::build(&self.hashes, FILTER_BITS_PER_KEY).encode(&mut filter);
        let (filter_at, filter_len) = self.write_section(filter)?;
        let i = &self.info;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&index_at.to_le_bytes());
        footer.extend_from_slice(&index_len.to_le_bytes());
        footer.extend_from_slice(&filter_at.to_le_bytes());
        footer.extend_from_slice(&filter_len.to_le_bytes());
        footer.extend_from_slice(&i.entries.to_le_bytes());
        footer.extend_from_slice(&i.min_ts.to_le_bytes());
        footer.extend_from_slice(&i.max_ts.to_le_bytes());
        footer.extend_from_slice(&i.first_key_group.to_le_bytes());
        footer.extend_from_slice(&i.last_key_group.to_le_bytes());
        let crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        self.out
            .write_all(&footer)
            .map_err(BucketError::io(&self.path))?;
        self.offset += footer.len() as u64;
        // Not synced: a run is a local cache. Durability comes from the
        // checkpoint's upload (which syncs its copy); after a crash the local
        // folder is discarded.
        self.out
            .into_inner()
            .map_err(|e| BucketError::io(&self.path)(e.into_error()))?;
        let mut info = self.info;
        info.bytes = self.offset;
        Ok(info)
    }
}

/// An open run: its index and filter in memory, its blocks read on demand.
/// Marked obsolete, the file is deleted when the last handle drops (an
/// upload may still be reading it when the bucket expires).
#[derive(Debug)]
pub struct RunFile {
    path: PathBuf,
    file: File,
    info: RunInfo,
    index: Vec<BlockRef>,
    filter: KeyFilter,
    obsolete: AtomicBool,
}

fn corrupt(path: &Path, what: impl Into<String>) -> BucketError {
    BucketError::Corrupt {
        path: path.to_path_buf(),
        reason: what.into(),
    }
}

impl RunFile {
    /// Opens and checks a run: header, footer, index and filter checksums.
    pub fn open(path: &Path, bucket_start: i64) -> Result<Self, BucketError> {
        let file = File::open(path).map_err(BucketError::io(path))?;
        let len = file.metadata().map_err(BucketError::io(path))?.len();
        if len < HEADER_LEN + FOOTER_LEN as u64 {
            return Err(corrupt(path, format!("{len} bytes: too short for a run")));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(BucketError::io(path))?;
        if &header[..8] != MAGIC {
            return Err(corrupt(path, "not a bucket run (magic)"));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != RUN_FORMAT_VERSION {
            return Err(corrupt(
                path,
                format!("run format {version}; this release reads {RUN_FORMAT_VERSION}"),
            ));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, len - FOOTER_LEN as u64)
            .map_err(BucketError::io(path))?;
        let (body, tail) = footer.split_at(FOOTER_LEN - 12);
        let mut t = Cursor {
            bytes: tail,
            pos: 0,
        };
        let crc = t.u32_le().ok_or_else(|| corrupt(path, "footer"))?;
        if t.take(8) != Some(&MAGIC[..]) || crc32c::crc32c(body) != crc {
            return Err(corrupt(path, "footer checksum or magic"));
        }
        let mut c = Cursor {
            bytes: body,
            pos: 0,
        };
        let bad = || corrupt(path, "footer fields");
        let index_at = c.u64_le().ok_or_else(bad)?;
        let index_len = c.u32_le().ok_or_else(bad)?;
        let filter_at = c.u64_le().ok_or_else(bad)?;
        let filter_len = c.u32_le().ok_or_else(bad)?;
        let entries = c.u64_le().ok_or_else(bad)?;
        let min_ts = c.i64_le().ok_or_else(bad)?;
        let max_ts = c.i64_le().ok_or_else(bad)?;
        let first_key_group =
            u16::from_le_bytes(c.take(2).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let last_key_group =
            u16::from_le_bytes(c.take(2).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let index_bytes = read_section(&file, path, index_at, index_len, len)?;
        let index = parse_index(&index_bytes, len).ok_or_else(|| corrupt(path, "index"))?;
        let filter_bytes = read_section(&file, path, filter_at, filter_len, len)?;
        let filter = KeyFilter::decode(&filter_bytes).ok_or_else(|| corrupt(path, "filter"))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(RunFile {
            path: path.to_path_buf(),
            file,
            info: RunInfo {
                file: file_name,
                bucket_start,
                entries,
                bytes: len,
                min_ts,
                max_ts,
                first_key_group,
                last_key_group,
            },
            index,
            filter,
            obsolete: AtomicBool::new(false),
        })
    }

    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Memory the index and filter hold.
    pub fn heap_bytes(&self) -> usize {
        self.filter.heap_bytes()
            + self
                .index
                .iter()
                .map(|b| std::mem::size_of::<BlockRef>() + b.first_key.len())
                .sum::<usize>()
    }

    /// Deletes the file once no handle is left.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    fn read_block(&self, b: &BlockRef, buf: &mut Vec<u8>) -> Result<(), BucketError> {
        buf.resize(b.len as usize, 0);
        self.file
            .read_exact_at(buf, b.offset)
            .map_err(BucketError::io(&self.path))?;
        let split = buf.len().saturating_sub(4);
        let (data, crc) = buf.split_at(split);
        let crc = crc.try_into().map(u32::from_le_bytes).unwrap_or(0);
        if crc32c::crc32c(data) != crc {
            return Err(corrupt(
                &self.path,
                format!("block at {} fails its checksum", b.offset),
            ));
        }
        buf.truncate(split);
        Ok(())
    }

    /// Calls `f` with every entry of `key` (in `key_group`) whose time is
    /// in `lo..=hi`, in user-key order. `hash` is [`key_hash`] of the key.
    /// Returns whether the filter let the probe read.
    pub fn probe(
        &self,
        hash: u64,
        key_group: u16,
        key: &[u8],
        (lo, hi): (i64, i64),
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&RunEntry<'_>) -> Result<(), BucketError>,
    ) -> Result<bool, BucketError> {
        if hi < self.info.min_ts || lo > self.info.max_ts || !self.filter.may_contain(hash) {
            return Ok(false);
        }
        let target = (key_group, key);
        // The first block whose first key is at or past the key; entries of
        // the key may begin in the block before it.
        let at = self
            .index
            .partition_point(|b| (b.key_group, &b.first_key[..]) < target);
        let mut i = at.saturating_sub(1);
        while let Some(b) = self.index.get(i) {
            if (b.key_group, &b.first_key[..]) > target {
                break;
            }
            self.read_block(b, buf)?;
            let mut c = Cursor { bytes: buf, pos: 0 };
            while !c.done() {
                let e = next_entry(&mut c).ok_or_else(|| {
                    corrupt(&self.path, format!("entry in block at {}", b.offset))
                })?;
                match (e.key_group, e.key).cmp(&target) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Greater => return Ok(true),
                    std::cmp::Ordering::Equal if e.ts >= lo && e.ts <= hi => f(&e)?,
                    std::cmp::Ordering::Equal => {}
                }
            }
            i += 1;
        }
        Ok(true)
    }

    /// Every entry in file order.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&RunEntry<'_>) -> Result<(), BucketError>,
    ) -> Result<(), BucketError> {
        let mut buf = Vec::new();
        for b in &self.index {
            self.read_block(b, &mut buf)?;
            let mut c = Cursor {
                bytes: &buf,
                pos: 0,
            };
            while !c.done() {
                let e = next_entry(&mut c).ok_or_else(|| {
                    corrupt(&self.path, format!("entry in block at {}", b.offset))
                })?;
                f(&e)?;
            }
        }
        Ok(())
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_section(
    file: &File,
    path: &Path,
    at: u64,
    len: u32,
    file_len: u64,
) -> Result<Vec<u8>, BucketError> {
    let end = at.checked_add(u64::from(len));
    if !(4..=MAX_SECTION_BYTES).contains(&len) || end.is_none_or(|e| e > file_len) {
        return Err(corrupt(path, format!("section at {at} of {len} bytes")));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, at)
        .map_err(BucketError::io(path))?;
    let (data, crc) = buf.split_at(buf.len() - 4);
    let crc = crc.try_into().map(u32::from_le_bytes).unwrap_or(0);
    if crc32c::crc32c(data) != crc {
        return Err(corrupt(path, format!("section at {at} fails its checksum")));
    }
    buf.truncate(buf.len() - 4);
    Ok(buf)
}

fn parse_index(bytes: &[u8], file_len: u64) -> Option<Vec<BlockRef>> {
    let mut c = Cursor { bytes, pos: 0 };
    let n = usize::try_from(c.varint()?).ok()?;
    // Each block reference takes at least 15 bytes: bounds the allocation.
    let mut index = Vec::with_capacity(n.min(bytes.len() / 15));
    for _ in 0..n {
        let key_group = c.u16_be()?;
        let first_key = c.sized()?.into();
        let offset = c.u64_le()?;
        let len = c.u32_le()?;
        if !(4..=MAX_BLOCK_BYTES).contains(&len) || offset.checked_add(u64::from(len))? > file_len {
            return None;
        }
        index.push(BlockRef {
            key_group,
            first_key,
            offset,
            len,
        });
    }
    c.done().then_some(index)
}

/// Decodes the entries of one data block's bytes (without its checksum):
/// for the fuzz target and tools that read blocks themselves.
pub fn decode_block(bytes: &[u8]) -> Result<Vec<RunEntry<'_>>, String> {
    let mut c = Cursor { bytes, pos: 0 };
    let mut out = Vec::new();
    while !c.done() {
        out.push(next_entry(&mut c).ok_or_else(|| format!("bad entry at byte {}", c.pos))?);
    }
    Ok(out)
}
