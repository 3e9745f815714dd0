//! Reading a savepoint: the metadata, then data files one at a time
//! (verified against their size and checksum before any byte is decoded),
//! entries streamed in key order.

use super::avro::{self, ContainerHeader, Cursor, Entry, EntryDecoder, TimerRecord};
use super::error::{Result, SavepointError};
use super::location::Location;
use super::meta::{checksum_hex, FileMeta, SavepointMeta, StateSection, METADATA_NAME};
use crate::keygroup::KeyGroupRange;
use schema_registry::AvroSchema;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::runtime::Runtime;

/// An opened savepoint: its location and validated metadata.
#[derive(Clone)]
pub struct Savepoint {
    rt: Arc<Runtime>,
    loc: Location,
    meta: SavepointMeta,
}

impl std::fmt::Debug for Savepoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Savepoint({})", self.loc.display)
    }
}

impl Savepoint {
    /// Opens the savepoint at `url`: refused when `_metadata.json` is
    /// absent ("not a savepoint"), unreadable or of an unknown version.
    pub fn open(rt: Arc<Runtime>, url: &str) -> Result<Savepoint> {
        let loc = rt.block_on(Location::open(url, true))?;
        let bytes = rt.block_on(loc.get_opt(METADATA_NAME))?.ok_or_else(|| {
            SavepointError::NotASavepoint {
                location: loc.display.clone(),
            }
        })?;
        let meta = SavepointMeta::parse(&bytes, &loc.describe(METADATA_NAME))?;
        Ok(Savepoint { rt, loc, meta })
    }

    pub fn meta(&self) -> &SavepointMeta {
        &self.meta
    }

    pub fn location(&self) -> &str {
        &self.loc.display
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// Fetches a data file and checks its size and checksum.
    pub(crate) fn fetch(&self, f: &FileMeta) -> Result<bytes::Bytes> {
        let name = self.loc.describe(&f.path);
        let bytes = self.rt.block_on(self.loc.get(&f.path))?;
        if bytes.len() as u64 != f.size {
            return Err(SavepointError::corrupt(
                name,
                format!("{} bytes, metadata says {}", bytes.len(), f.size),
            ));
        }
        let sum = checksum_hex(xxhash_rust::xxh3::xxh3_128(&bytes));
        if sum != f.checksum {
            return Err(SavepointError::corrupt(
                name,
                format!("checksum {sum}, metadata says {}", f.checksum),
            ));
        }
        Ok(bytes)
    }

    /// Entries of `state` in the key groups of `range` (all when `None`),
    /// in key order. Memory: one data file and one block at a time.
    pub fn entries(&self, state: &str, range: Option<KeyGroupRange>) -> Result<EntryIter> {
        let section = self.meta.state(state)?;
        let schema = parse_schema(section)?;
        let decoder = EntryDecoder::new(section.kind(), &schema)
            .map_err(|r| SavepointError::InvalidSchema { reason: r })?;
        let files = section
            .files
            .iter()
            .filter(|f| {
                range.is_none_or(|r| {
                    f.key_group_range[0] <= r.end && f.key_group_range[1] >= r.start
                })
            })
            .cloned()
            .collect();
        Ok(EntryIter {
            sp: self.clone(),
            schema_json: avro::entry_schema_json(section.kind(), &section.schema),
            decoder,
            range,
            files,
            cur: None,
            failed: false,
        })
    }

    /// Every timer, in the order stored.
    pub fn timers(&self) -> Result<Vec<TimerRecord>> {
        let f = &self.meta.timers.file;
        let bytes = self.fetch(f)?;
        let name = self.loc.describe(&f.path);
        let mut out = Vec::new();
        avro::for_each_record(&name, &bytes, &avro::timer_schema_json(), |c| {
            out.push(avro::decode_timer(c).map_err(|r| SavepointError::corrupt(&name, r))?);
            Ok(true)
        })?;
        if out.len() as u64 != self.meta.timers.count {
            return Err(SavepointError::corrupt(
                name,
                format!(
                    "{} timers, metadata says {}",
                    out.len(),
                    self.meta.timers.count
                ),
            ));
        }
        Ok(out)
    }

    pub(crate) fn describe(&self, rel: &str) -> String {
        self.loc.describe(rel)
    }
}

pub(crate) fn parse_schema(section: &StateSection) -> Result<AvroSchema> {
    AvroSchema::parse(&section.schema).map_err(|e| SavepointError::InvalidSchema {
        reason: format!("state '{}': {e}", section.name()),
    })
}

struct FileCursor {
    name: String,
    meta: FileMeta,
    buf: bytes::Bytes,
    header: ContainerHeader,
    pos: usize,
    block: Vec<u8>,
    block_pos: usize,
    left_in_block: u64,
    seen: u64,
    /// Encoded store key of the previous entry and scratch for this one.
    last_key: Vec<u8>,
    this_key: Vec<u8>,
}

/// Streaming iterator over a state's entries. A damaged file ends the
/// iteration with an error naming it.
pub struct EntryIter {
    sp: Savepoint,
    schema_json: String,
    decoder: EntryDecoder,
    range: Option<KeyGroupRange>,
    files: VecDeque<FileMeta>,
    cur: Option<FileCursor>,
    failed: bool,
}

impl Iterator for EntryIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        loop {
            match self.step() {
                Ok(Some(e)) => {
                    if self.range.is_none_or(|r| r.contains(e.key_group)) {
                        return Some(Ok(e));
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl EntryIter {
    fn step(&mut self) -> Result<Option<Entry>> {
        loop {
            if self.cur.is_none() {
                let Some(meta) = self.files.pop_front() else {
                    return Ok(None);
                };
                self.cur = Some(self.open_file(meta)?);
            }
            let Some(cur) = self.cur.as_mut() else {
                continue;
            };
            if cur.left_in_block == 0 {
                if cur.block_pos != cur.block.len() {
                    return Err(SavepointError::corrupt(
                        &cur.name,
                        "stray bytes after a block's records",
                    ));
                }
                match avro::next_block(&cur.buf, &mut cur.pos, &cur.header) {
                    Some(Ok((count, data))) => {
                        cur.block = data;
                        cur.block_pos = 0;
                        cur.left_in_block = count;
                        continue;
                    }
                    Some(Err(r)) => return Err(SavepointError::corrupt(&cur.name, r)),
                    None => {
                        if cur.seen != cur.meta.entries {
                            return Err(SavepointError::corrupt(
                                &cur.name,
                                format!("{} entries, metadata says {}", cur.seen, cur.meta.entries),
                            ));
                        }
                        self.cur = None;
                        continue;
                    }
                }
            }
            let mut c = Cursor::new(&cur.block);
            c.pos = cur.block_pos;
            let entry = self
                .decoder
                .decode(&mut c)
                .map_err(|r| SavepointError::corrupt(&cur.name, r))?;
            cur.block_pos = c.pos;
            cur.left_in_block -= 1;
            cur.seen += 1;
            check_order(cur, &entry)?;
            return Ok(Some(entry));
        }
    }

    fn open_file(&self, meta: FileMeta) -> Result<FileCursor> {
        let name = self.sp.describe(&meta.path);
        let buf = self.sp.fetch(&meta)?;
        let header = avro::read_header(&buf).map_err(|r| SavepointError::corrupt(&name, r))?;
        if header.schema_json != self.schema_json {
            return Err(SavepointError::corrupt(
                &name,
                "file schema differs from the metadata's",
            ));
        }
        let pos = header.data_start;
        Ok(FileCursor {
            name,
            meta,
            buf,
            header,
            pos,
            block: Vec::new(),
            block_pos: 0,
            left_in_block: 0,
            seen: 0,
            last_key: Vec::new(),
            this_key: Vec::new(),
        })
    }
}

fn check_order(cur: &mut FileCursor, e: &Entry) -> Result<()> {
    let [lo, hi] = cur.meta.key_group_range;
    if e.key_group < lo || e.key_group > hi {
        return Err(SavepointError::corrupt(
            &cur.name,
            format!(
                "entry of key group {} outside the file's [{lo}, {hi}]",
                e.key_group
            ),
        ));
    }
    cur.this_key.clear();
    e.encode_store_key(&mut cur.this_key)
        .map_err(|r| SavepointError::corrupt(&cur.name, r.to_string()))?;
    if cur.seen > 1 && cur.last_key >= cur.this_key {
        return Err(SavepointError::corrupt(
            &cur.name,
            "entries out of key order or repeated",
        ));
    }
    std::mem::swap(&mut cur.last_key, &mut cur.this_key);
    Ok(())
}
