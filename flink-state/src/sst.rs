//! A reader of RocksDB block-based table files (SSTs) as Flink's FRocksDB
//! writes them (format_version 2-6, binary-search index, snappy or no
//! compression, bytewise keys): the entries of one file in order, with
//! sequence number and type. Layout notes: docs/flink-format.md, "SST files".

use crate::error::{FlinkError, Result};

const MAGIC: u64 = 0x88e2_41b7_85f4_cff7;
const FOOTER_LEN: usize = 53;
const TRAILER_LEN: usize = 5;
const EXTENDED_MAGIC: [u8; 4] = [0x3e, 0x00, 0x7a, 0x00];

/// An entry's type, from the low byte of its internal key's trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Delete,
    Put,
    Merge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstEntry {
    pub key: Vec<u8>,
    pub seq: u64,
    pub kind: EntryKind,
    pub value: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handle {
    offset: u64,
    size: u64,
}

/// Positional reads of a file's bytes: an SST is read block by block, so
/// memory stays one block per open file (plus its index).
pub trait ReadAt {
    fn size(&self) -> u64;
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| bad("offset"))?;
        let end = start
            .checked_add(len)
            .ok_or_else(|| bad("offset overflow"))?;
        self.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| bad(format!("{len} bytes at {start} past the end of the file")))
    }
}

impl ReadAt for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if offset.saturating_add(len as u64) > self.size() {
            return Err(bad(format!(
                "{len} bytes at {offset} past the end of the file"
            )));
        }
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)
            .map_err(|e| bad(format!("reading at {offset}: {e}")))?;
        Ok(buf)
    }
}

/// (name, value) of each table property, and the index handle (format 6).
type Properties = (Vec<(String, Vec<u8>)>, Option<Handle>);

pub struct SstFile {
    src: Box<dyn ReadAt>,
    pub column_family: String,
    pub merge_operator: String,
    checksum_type: u8,
    /// Format 6 mixes the block offset into each checksum (0 = off).
    base_context: u32,
    data_blocks: Vec<Handle>,
}

fn bad(detail: impl Into<String>) -> FlinkError {
    FlinkError::Lsm(detail.into())
}

/// A little-endian base-128 varint (RocksDB's, up to 64 bits).
fn varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*pos)
            .ok_or_else(|| bad("varint past the end of a block"))?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("varint longer than 10 bytes"))
}

fn fixed32(b: &[u8], at: usize) -> Result<u32> {
    let s = b
        .get(at..at.checked_add(4).ok_or_else(|| bad("offset overflow"))?)
        .ok_or_else(|| bad("u32 past the end"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn handle(b: &[u8], pos: &mut usize) -> Result<Handle> {
    Ok(Handle {
        offset: varint(b, pos)?,
        size: varint(b, pos)?,
    })
}

impl SstFile {
    pub fn open(src: Box<dyn ReadAt>) -> Result<SstFile> {
        let n = src.size();
        let at = n
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| bad("shorter than an SST footer"))?;
        let footer = src.read_at(at, FOOTER_LEN)?;
        let footer = footer.as_slice();
        let magic = u64::from_le_bytes(
            footer
                .get(45..53)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("footer"))?,
        );
        if magic != MAGIC {
            return Err(bad(format!("not a block-based SST (magic {magic:#x})")));
        }
        let version = fixed32(footer, 41)?;
        let checksum_type = footer[0];
        let (metaindex, index, base_context) = match version {
            2..=5 => {
                let mut pos = 1;
                (
                    handle(footer, &mut pos)?,
                    Some(handle(footer, &mut pos)?),
                    0,
                )
            }
            // Version 6: the footer gives the metaindex size (the block
            // ends right before the footer) and a per-file checksum
            // context; the index handle moved into the metaindex.
            6 if footer.get(1..5) == Some(&EXTENDED_MAGIC[..]) => {
                let size = u64::from(fixed32(footer, 13)?);
                let offset = at
                    .checked_sub(size + TRAILER_LEN as u64)
                    .ok_or_else(|| bad("metaindex size"))?;
                (Handle { offset, size }, None, fixed32(footer, 9)?)
            }
            v => return Err(bad(format!("SST format_version {v} (2 to 6 are read)"))),
        };
        let mut f = SstFile {
            src,
            column_family: String::new(),
            merge_operator: String::new(),
            checksum_type,
            base_context,
            data_blocks: Vec::new(),
        };
        let (props, meta_index) = f.properties(metaindex)?;
        let index = index.or(meta_index).ok_or_else(|| bad("no index block"))?;
        let prop = |k: &str| {
            props
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        f.column_family = String::from_utf8_lossy(&prop("rocksdb.column.family.name")).into_owned();
        f.merge_operator = String::from_utf8_lossy(&prop("rocksdb.merge.operator")).into_owned();
        let delta = prop("rocksdb.index.value.is.delta.encoded")
            .first()
            .is_some_and(|&b| b != 0);
        f.data_blocks = f.index_handles(index, delta)?;
        Ok(f)
    }

    /// The contents of a block: checksum checked, decompressed.
    fn block(&self, h: Handle) -> Result<Vec<u8>> {
        let start = usize::try_from(h.offset).map_err(|_| bad("block offset"))?;
        let len = usize::try_from(h.size).map_err(|_| bad("block size"))?;
        let bytes = self.src.read_at(
            h.offset,
            len.checked_add(TRAILER_LEN)
                .ok_or_else(|| bad("block size"))?,
        )?;
        let contents = &bytes[..len];
        let kind = bytes[len];
        let stored = fixed32(&bytes, len + 1)?;
        self.check(contents, kind, stored, start)?;
        match kind {
            0 => Ok(contents.to_vec()),
            1 => {
                let n = snap::raw::decompress_len(contents)
                    .map_err(|e| bad(format!("snappy block at {start}: {e}")))?;
                if n > len.saturating_mul(64).saturating_add(1 << 20) {
                    return Err(bad(format!("snappy block at {start} claims {n} bytes")));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(contents)
                    .map_err(|e| bad(format!("snappy block at {start}: {e}")))
            }
            k => Err(bad(format!(
                "block compression type {k} (only none and snappy are read)"
            ))),
        }
    }

    /// Block checksums: crc32c (1) and XXH3 (4) are checked; others are
    /// trusted.
    fn check(&self, contents: &[u8], kind: u8, stored: u32, at: usize) -> Result<()> {
        let computed = match self.checksum_type {
            1 => {
                let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
                crc.rotate_right(15).wrapping_add(0xa282_ead8)
            }
            4 => {
                let v = xxhash_rust::xxh3::xxh3_64(contents) as u32;
                v ^ u32::from(kind).wrapping_mul(0x6b90_83d9)
            }
            _ => return Ok(()),
        };
        if computed.wrapping_add(self.context_modifier(at as u64)) != stored {
            return Err(bad(format!(
                "checksum mismatch in the block at offset {at}"
            )));
        }
        Ok(())
    }

    /// RocksDB's ChecksumModifierForContext (format 6).
    fn context_modifier(&self, offset: u64) -> u32 {
        if self.base_context == 0 {
            return 0;
        }
        self.base_context ^ (offset as u32).wrapping_add((offset >> 32) as u32)
    }

    /// The properties, and the index handle when the metaindex has it.
    fn properties(&self, metaindex: Handle) -> Result<Properties> {
        let meta = self.block(metaindex)?;
        let (mut props, mut index) = (None, None);
        for (k, v) in block_entries(&meta, false)? {
            if k == b"rocksdb.properties" {
                props = Some(handle(&v, &mut 0)?);
            }
            if k == b"rocksdb.index" {
                index = Some(handle(&v, &mut 0)?);
            }
            if k == b"rocksdb.range_del" {
                return Err(bad("range deletions are not read"));
            }
        }
        let block = self.block(props.ok_or_else(|| bad("no properties block"))?)?;
        let props = block_entries(&block, false)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        Ok((props, index))
    }

    /// The data-block handles, in key order. Delta-encoded index values
    /// hold the full handle at restart points and a size delta elsewhere.
    fn index_handles(&self, index: Handle, delta: bool) -> Result<Vec<Handle>> {
        let block = self.block(index)?;
        let mut out: Vec<Handle> = Vec::new();
        for (restart, v) in block_values(&block, delta)? {
            let mut p = 0;
            let h = match out.last() {
                Some(prev) if delta && !restart => {
                    let z = varint(&v, &mut p)?;
                    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                    Handle {
                        offset: prev.offset + prev.size + TRAILER_LEN as u64,
                        size: prev
                            .size
                            .checked_add_signed(d)
                            .ok_or_else(|| bad("index size delta"))?,
                    }
                }
                _ => handle(&v, &mut p)?,
            };
            out.push(h);
        }
        Ok(out)
    }

    /// Every entry of the file in order (user key ascending, newest first).
    pub fn entries(&self) -> impl Iterator<Item = Result<SstEntry>> + '_ {
        self.data_blocks.iter().flat_map(move |&h| {
            let entries = self.block(h).and_then(|b| block_entries(&b, false));
            let items: Vec<Result<SstEntry>> = match entries {
                Ok(es) => es.into_iter().map(|(k, v)| internal_entry(k, v)).collect(),
                Err(e) => vec![Err(e)],
            };
            items
        })
    }
}

fn internal_entry(mut key: Vec<u8>, value: Vec<u8>) -> Result<SstEntry> {
    let n = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| bad("internal key shorter than 8 bytes"))?;
    let trailer = u64::from_le_bytes(key[n..].try_into().map_err(|_| bad("internal key"))?);
    key.truncate(n);
    let kind = match trailer & 0xff {
        0 | 7 => EntryKind::Delete,
        1 => EntryKind::Put,
        2 => EntryKind::Merge,
        t => return Err(bad(format!("entry type {t} is not read"))),
    };
    Ok(SstEntry {
        key,
        seq: trailer >> 8,
        kind,
        value,
    })
}

/// (key, value) of every entry of a block (prefix-compressed keys, then
/// the restart array and its count).
fn block_entries(b: &[u8], delta: bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(walk(b, delta)?
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect())
}

/// (is a restart point, value) of every entry.
fn block_values(b: &[u8], delta: bool) -> Result<Vec<(bool, Vec<u8>)>> {
    Ok(walk(b, delta)?
        .into_iter()
        .map(|(r, _, v)| (r, v))
        .collect())
}

/// (is a restart point, key, value) of one block entry.
type BlockEntry = (bool, Vec<u8>, Vec<u8>);

fn walk(b: &[u8], delta: bool) -> Result<Vec<BlockEntry>> {
    let n = b.len();
    let raw = fixed32(
        b,
        n.checked_sub(4)
            .ok_or_else(|| bad("block shorter than its restart count"))?,
    )?;
    if raw & (1 << 31) != 0 {
        return Err(bad("data blocks with a hash index are not read"));
    }
    let restarts = raw as usize;
    let end = n
        .checked_sub(
            4 + restarts
                .checked_mul(4)
                .ok_or_else(|| bad("restart count"))?,
        )
        .ok_or_else(|| bad("restart array larger than the block"))?;
    let mut points = Vec::with_capacity(restarts);
    for i in 0..restarts {
        points.push(fixed32(b, end + 4 * i)? as usize);
    }
    let body = &b[..end];
    let (mut pos, mut key, mut out) = (0usize, Vec::new(), Vec::new());
    while pos < body.len() {
        let restart = points.binary_search(&pos).is_ok();
        let shared = varint(body, &mut pos)? as usize;
        let non_shared = varint(body, &mut pos)? as usize;
        let vlen = if delta {
            None
        } else {
            Some(varint(body, &mut pos)? as usize)
        };
        if shared > key.len() {
            return Err(bad("shared key prefix longer than the previous key"));
        }
        key.truncate(shared);
        let k = body
            .get(pos..pos.saturating_add(non_shared))
            .ok_or_else(|| bad("key past the end of a block"))?;
        key.extend_from_slice(k);
        pos += non_shared;
        let vend = match vlen {
            Some(l) => pos.checked_add(l).ok_or_else(|| bad("value length"))?,
            None => value_end(body, pos, restart)?,
        };
        let v = body
            .get(pos..vend)
            .ok_or_else(|| bad("value past the end of a block"))?;
        out.push((restart, key.clone(), v.to_vec()));
        pos = vend;
    }
    Ok(out)
}

/// A delta-encoded index value has no length: a full handle (two
/// varints) at restart points, one varint elsewhere.
fn value_end(b: &[u8], mut pos: usize, restart: bool) -> Result<usize> {
    varint(b, &mut pos)?;
    if restart {
        varint(b, &mut pos)?;
    }
    Ok(pos)
}
