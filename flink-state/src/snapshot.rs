//! A Flink savepoint or checkpoint opened for reading: its `_metadata`,
//! the state headers of its operators, and dumps of their entries, key
//! group by key group so that memory stays bounded.

use crate::entry::EntryDecoder;
use crate::error::{FlinkError, Result};
use crate::header::{KeyedHeader, OperatorHeader, StateMeta};
use crate::json::Json;
use crate::keygroup::{self, HeapEntry};
use crate::lsm::LsmScanner;
use crate::metadata::{
    DistributionMode, KeyGroupRange, KeyedHandle, Metadata, OperatorState, OperatorStateHandle,
    StreamHandle,
};
use crate::record::{keyed_line, operator_line, present_whole, timer_line, LineBuilder};
use crate::storage::{resolve, stream_bytes, stream_range, Storage};
use crate::value::decode;
use std::collections::BTreeMap;

/// Key groups are read in windows of about this many bytes (a larger key
/// group is read alone): the memory bound of a dump.
const READ_WINDOW: u64 = 4 << 20;

/// (key group, start, end) of each key group's bytes in a stream.
type Blocks = Vec<(i32, u64, u64)>;
/// A key-groups stream's header, whether it is in the heap layout, its blocks.
type KeyGroupStream = (KeyedHeader, bool, Blocks);
/// Receives (header, state index, composite key, value) from `scan_raw`.
pub type RawSink<'a> = dyn FnMut(&KeyedHeader, usize, &[u8], &[u8]) -> Result<()> + 'a;

pub struct FlinkSnapshot<'s> {
    pub storage: &'s dyn Storage,
    /// The snapshot's folder inside the storage ("" for its root).
    pub base: String,
    pub metadata: Metadata,
    pub metadata_size: u64,
}

#[derive(Default)]
pub struct DumpOptions<'a> {
    /// Only this state (by name); timers by their full name or service name.
    pub state: Option<String>,
    /// Needed for native savepoints and incremental checkpoints.
    pub lsm: Option<&'a dyn LsmScanner>,
    /// Recompute the key group of every String key (verify).
    pub check_key_groups: bool,
    /// Read only this key group of key-group streams (a point lookup:
    /// `get` computes it from the key). Native snapshots are scanned whole.
    pub key_group: Option<i32>,
}

#[derive(Debug, Default)]
pub struct DumpReport {
    pub lines: u64,
    pub entries: u64,
    pub per_state: BTreeMap<String, u64>,
    pub per_key_group: BTreeMap<i32, u64>,
    /// Errors that left the rest readable (unknown serializers).
    pub errors: Vec<FlinkError>,
}

/// Where an error happened, for messages: the file of the stream.
fn file_label(base: &str, h: &StreamHandle) -> String {
    match h {
        StreamHandle::Inline { name, .. } => format!(
            "_metadata (inlined stream {})",
            name.rsplit('/').next().unwrap_or(name)
        ),
        _ => resolve(base, h).unwrap_or_default(),
    }
}

impl<'s> FlinkSnapshot<'s> {
    pub fn open(storage: &'s dyn Storage, base: &str) -> Result<Self> {
        let path = if base.is_empty() {
            "_metadata".to_string()
        } else {
            format!("{}/_metadata", base.trim_end_matches('/'))
        };
        let bytes = storage.read(&path)?;
        let metadata = Metadata::parse(&bytes).map_err(|e| e.in_file(&path))?;
        Ok(FlinkSnapshot {
            storage,
            base: base.trim_end_matches('/').to_string(),
            metadata,
            metadata_size: bytes.len() as u64,
        })
    }

    pub fn kind(&self) -> &'static str {
        let native = self
            .metadata
            .operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .any(|s| matches!(s.managed_keyed, Some(KeyedHandle::Incremental { .. })));
        match (
            self.metadata.is_savepoint || !self.metadata.format_type.is_empty(),
            native,
        ) {
            (true, false) => "canonical savepoint",
            (true, true) => "native savepoint",
            (false, true) => "incremental checkpoint",
            (false, false) => "full checkpoint",
        }
    }

    /// The keyed-state header of the first subtask that has one.
    pub fn keyed_header(&self, op: &OperatorState) -> Result<Option<KeyedHeader>> {
        let Some(h) = op.subtasks.iter().find_map(|s| s.managed_keyed.as_ref()) else {
            return Ok(None);
        };
        self.header_of(h).map(Some)
    }

    fn header_of(&self, h: &KeyedHandle) -> Result<KeyedHeader> {
        let (stream, end) = match h {
            KeyedHandle::KeyGroups {
                offsets, delegate, ..
            } => {
                let end = keygroup::header_end(offsets);
                (
                    delegate,
                    end.map(|e| e as u64).unwrap_or_else(|| delegate.size()),
                )
            }
            KeyedHandle::Incremental { meta, .. } => (meta, meta.size()),
        };
        let label = file_label(&self.base, stream);
        let bytes = stream_range(self.storage, &self.base, stream, 0, end)
            .map_err(|e| e.in_file(&label))?;
        let known_end = matches!(h, KeyedHandle::Incremental { .. }) || keygroup_has_data(h);
        KeyedHeader::parse(&bytes, known_end.then_some(end as usize)).map_err(|e| e.in_file(&label))
    }

    pub fn operator_header(&self, op: &OperatorState) -> Result<Option<OperatorHeader>> {
        let Some(h) = op.subtasks.iter().find_map(|s| s.managed_operator.as_ref()) else {
            return Ok(None);
        };
        let label = file_label(&self.base, &h.delegate);
        let bytes =
            stream_bytes(self.storage, &self.base, &h.delegate).map_err(|e| e.in_file(&label))?;
        OperatorHeader::parse(&bytes)
            .map(Some)
            .map_err(|e| e.in_file(&label))
    }

    /// Dumps an operator's states as JSON lines into `sink`.
    pub fn dump(
        &self,
        op: &OperatorState,
        opts: &DumpOptions,
        sink: &mut dyn FnMut(&Json) -> Result<()>,
    ) -> Result<DumpReport> {
        let mut report = DumpReport::default();
        let mut ctx = Ctx {
            op,
            opts,
            sink,
            report: &mut report,
            label: op.label(),
        };
        for sub in &op.subtasks {
            if let Some(h) = &sub.managed_operator {
                self.dump_operator_state(h, &mut ctx)?;
            }
            match &sub.managed_keyed {
                Some(KeyedHandle::KeyGroups {
                    range,
                    offsets,
                    delegate,
                    savepoint,
                }) => self.dump_key_groups(*range, offsets, delegate, *savepoint, &mut ctx)?,
                Some(h @ KeyedHandle::Incremental { .. }) => self.dump_native(h, &mut ctx)?,
                None => {}
            }
        }
        if let Some(sel) = &opts.state {
            if report.per_state.is_empty() && report.errors.is_empty() {
                self.check_state_exists(op, sel)?;
            }
        }
        Ok(report)
    }

    fn check_state_exists(&self, op: &OperatorState, sel: &str) -> Result<()> {
        let mut names = Vec::new();
        if let Some(h) = self.keyed_header(op)? {
            names.extend(h.states.iter().map(|s| s.name.clone()));
        }
        if let Some(h) = self.operator_header(op)? {
            names.extend(h.states.iter().chain(&h.broadcast).map(|s| s.name.clone()));
        }
        if names.iter().any(|n| state_matches(n, sel)) {
            return Ok(()); // there, but empty
        }
        Err(FlinkError::NoSuchState {
            operator: op.label(),
            state: sel.to_string(),
            known: names.join(", "),
        })
    }

    fn dump_operator_state(&self, h: &OperatorStateHandle, ctx: &mut Ctx) -> Result<()> {
        let label = file_label(&self.base, &h.delegate);
        let bytes =
            stream_bytes(self.storage, &self.base, &h.delegate).map_err(|e| e.in_file(&label))?;
        let header = OperatorHeader::parse(&bytes).map_err(|e| e.in_file(&label))?;
        for entry in &h.states {
            if !ctx.wants(&entry.name) {
                continue;
            }
            let meta = header
                .states
                .iter()
                .chain(&header.broadcast)
                .find(|m| m.name == entry.name);
            let Some(ser) = meta.and_then(StateMeta::value_serializer) else {
                continue;
            };
            let mode = match entry.mode {
                DistributionMode::SplitDistribute => "SPLIT_DISTRIBUTE",
                DistributionMode::Union => "UNION",
                DistributionMode::Broadcast => "BROADCAST",
            };
            for &off in &entry.offsets {
                let rest = bytes.get(off.max(0) as usize..).unwrap_or(&[]);
                let data = if header.compressed {
                    std::borrow::Cow::Owned(keygroup::decompress_from_chunk(rest)?)
                } else {
                    std::borrow::Cow::Borrowed(rest)
                };
                let v = decode(ser, &mut crate::bytes::Reader::new(&data))
                    .map_err(|e| e.in_file(&label))?;
                ctx.emit(
                    &entry.name,
                    None,
                    operator_line(&ctx.label, &entry.name, mode, v),
                )?;
            }
        }
        Ok(())
    }

    /// The header, layout (heap or not) and key-group blocks of a
    /// key-groups stream; None when no key group has data.
    fn key_group_stream(
        &self,
        range: KeyGroupRange,
        offsets: &[i64],
        delegate: &StreamHandle,
        savepoint: bool,
    ) -> Result<Option<KeyGroupStream>> {
        let label = file_label(&self.base, delegate);
        let size = match delegate {
            StreamHandle::Inline { data, .. } => data.len() as u64,
            _ => self
                .storage
                .size(&resolve(&self.base, delegate).unwrap_or_default())
                .map_err(|e| e.in_file(&label))?,
        };
        let blocks = keygroup::blocks(range.start, offsets, size);
        if blocks.is_empty() {
            return Ok(None);
        }
        let header = self.header_of(&KeyedHandle::KeyGroups {
            range,
            offsets: offsets.to_vec(),
            delegate: delegate.clone(),
            savepoint,
        })?;
        let heap = !savepoint && self.is_heap(range, offsets, delegate, &blocks)?;
        Ok(Some((header, heap, blocks)))
    }

    /// Reads the blocks in windows of about READ_WINDOW bytes and hands
    /// each key group's bytes to `f`; errors name the file and key group.
    fn for_each_block(
        &self,
        delegate: &StreamHandle,
        blocks: &[(i32, u64, u64)],
        f: &mut dyn FnMut(i32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let label = file_label(&self.base, delegate);
        for window in windows(blocks) {
            let (Some(first), Some(last)) = (window.first(), window.last()) else {
                continue;
            };
            let bytes = stream_range(self.storage, &self.base, delegate, first.1, last.2)
                .map_err(|e| e.in_file(&label))?;
            for &(kg, start, end) in window {
                let block = bytes
                    .get((start - first.1) as usize..(end - first.1) as usize)
                    .unwrap_or(&[]);
                f(kg, block).map_err(|e| match e {
                    FlinkError::Malformed { .. } | FlinkError::Truncated { .. } => {
                        let detail = format!("key group {kg}: {e}");
                        FlinkError::malformed("key group", start as usize, detail).in_file(&label)
                    }
                    e => e.in_file(&label),
                })?;
            }
        }
        Ok(())
    }

    fn dump_key_groups(
        &self,
        range: KeyGroupRange,
        offsets: &[i64],
        delegate: &StreamHandle,
        savepoint: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some((header, heap, blocks)) =
            self.key_group_stream(range, offsets, delegate, savepoint)?
        else {
            return Ok(());
        };
        let decoders = self.decoders(&header, ctx);
        let blocks: Blocks = match ctx.opts.key_group {
            Some(want) => blocks.into_iter().filter(|b| b.0 == want).collect(),
            None => blocks,
        };
        self.for_each_block(delegate, &blocks, &mut |kg, block| {
            if heap {
                self.heap_block(&header, kg, block, ctx)
            } else {
                self.canonical_block(&header, &decoders, kg, block, ctx)
            }
        })
    }

    /// Every entry of an operator's keyed state in RocksDB layout (raw
    /// composite key and value), state by state as stored: for `convert`.
    /// Heap-layout checkpoints hold whole values instead and are refused.
    pub fn scan_raw(
        &self,
        op: &OperatorState,
        lsm: Option<&dyn LsmScanner>,
        f: &mut RawSink,
    ) -> Result<()> {
        for sub in &op.subtasks {
            match &sub.managed_keyed {
                Some(KeyedHandle::KeyGroups {
                    range,
                    offsets,
                    delegate,
                    savepoint,
                }) => {
                    let Some((header, heap, blocks)) =
                        self.key_group_stream(*range, offsets, delegate, *savepoint)?
                    else {
                        continue;
                    };
                    if heap {
                        return Err(FlinkError::Unsupported(
                            "converting a heap-backend checkpoint (take a savepoint)".into(),
                        ));
                    }
                    self.for_each_block(delegate, &blocks, &mut |_, block| {
                        let data = if header.compressed {
                            std::borrow::Cow::Owned(keygroup::decompress(block)?)
                        } else {
                            std::borrow::Cow::Borrowed(block)
                        };
                        keygroup::for_each_entry(&data, |id, k, v| f(&header, id as usize, k, v))
                    })?;
                }
                Some(h @ KeyedHandle::Incremental { .. }) => {
                    let lsm = lsm.ok_or_else(|| {
                        FlinkError::Unsupported("native snapshot without a RocksDB reader".into())
                    })?;
                    let header = self.header_of(h)?;
                    let dir = self.restore_files(h)?;
                    for (i, state) in header.states.iter().enumerate() {
                        lsm.scan(dir.path(), &state.name, &mut |k, v| f(&header, i, k, v))
                            .map_err(|e| self.name_native_file(h, e))?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    fn is_heap(
        &self,
        range: KeyGroupRange,
        offsets: &[i64],
        delegate: &StreamHandle,
        blocks: &[(i32, u64, u64)],
    ) -> Result<bool> {
        let mut words = Vec::new();
        for &(kg, start, _) in blocks.iter().take(2) {
            let b = stream_range(self.storage, &self.base, delegate, start, start + 4)?;
            let w = b
                .get(..4)
                .map_or(-1, |w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            words.push((kg, w));
        }
        Ok(keygroup::looks_like_heap(range.start, offsets, &words))
    }

    /// One decoder per state (an error naming the class for unknown ones,
    /// recorded once in the report).
    fn decoders<'h>(
        &self,
        header: &'h KeyedHeader,
        ctx: &mut Ctx,
    ) -> Vec<Option<EntryDecoder<'h>>> {
        header
            .states
            .iter()
            .map(|s| {
                if !ctx.wants(&s.name) {
                    return None;
                }
                match EntryDecoder::new(&header.key, s, ctx.op.max_parallelism) {
                    Ok(d) => Some(d),
                    Err(class) => {
                        ctx.unknown(&s.name, &class);
                        None
                    }
                }
            })
            .collect()
    }

    fn canonical_block(
        &self,
        header: &KeyedHeader,
        decoders: &[Option<EntryDecoder>],
        kg: i32,
        block: &[u8],
        ctx: &mut Ctx,
    ) -> Result<()> {
        let data = if header.compressed {
            std::borrow::Cow::Owned(keygroup::decompress(block)?)
        } else {
            std::borrow::Cow::Borrowed(block)
        };
        let mut builder = LineBuilder::new(&ctx.label);
        let mut out = Vec::new();
        keygroup::for_each_entry(&data, |id, k, v| {
            let state = header.states.get(id as usize).ok_or_else(|| {
                FlinkError::malformed("state id", 0, format!("{id} of {}", header.states.len()))
            })?;
            let Some(Some(dec)) = decoders.get(id as usize) else {
                return Ok(());
            };
            let (prefix, d) = dec.decode(k, v)?;
            if prefix != kg as u32 {
                return Err(FlinkError::malformed(
                    "key group prefix",
                    0,
                    format!("entry of key group {prefix} in key group {kg}"),
                ));
            }
            ctx.check_key_group(&d, kg)?;
            builder.push(state, d, &mut out);
            for (name, line) in out.drain(..) {
                ctx.emit(&name, Some(kg), line)?;
            }
            Ok(())
        })?;
        builder.flush(&mut out);
        for (name, line) in out {
            ctx.emit(&name, Some(kg), line)?;
        }
        Ok(())
    }

    fn heap_block(&self, header: &KeyedHeader, kg: i32, block: &[u8], ctx: &mut Ctx) -> Result<()> {
        keygroup::for_each_heap_entry(header, kg, block, |e| {
            let (state, line) = match e {
                HeapEntry::Keyed {
                    state,
                    key,
                    namespace,
                    value,
                } => {
                    let s = &header.states[state];
                    let (value, ttl) = present_whole(&s.kind, value);
                    (
                        s,
                        keyed_line(&ctx.label, &s.name, key, namespace, value, ttl),
                    )
                }
                HeapEntry::Timer {
                    state,
                    key,
                    namespace,
                    timestamp,
                } => {
                    let s = &header.states[state];
                    (
                        s,
                        timer_line(&ctx.label, &s.name, key, namespace, timestamp),
                    )
                }
            };
            if ctx.wants(&state.name) {
                ctx.emit(&state.name, Some(kg), line)?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            FlinkError::UnknownSerializer { state, class, .. } => FlinkError::UnknownSerializer {
                operator: ctx.label.clone(),
                state,
                class,
            },
            e => e,
        })
    }

    fn dump_native(&self, h: &KeyedHandle, ctx: &mut Ctx) -> Result<()> {
        let Some(lsm) = ctx.opts.lsm else {
            return Err(FlinkError::Unsupported("native savepoints and incremental checkpoints need a RocksDB reader (use the savepoint command)".into()));
        };
        let header = self.header_of(h)?;
        let dir = self.restore_files(h)?;
        let decoders = self.decoders(&header, ctx);
        for (state, dec) in header.states.iter().zip(&decoders) {
            let Some(dec) = dec else { continue };
            let mut builder = LineBuilder::new(&ctx.label);
            let mut out = Vec::new();
            lsm.scan(dir.path(), &state.name, &mut |k, v| {
                let (kg, d) = dec
                    .decode(k, v)
                    .map_err(|e| e.in_file(&format!("column family {}", state.name)))?;
                ctx.check_key_group(&d, kg as i32)?;
                builder.push(state, d, &mut out);
                for (name, line) in out.drain(..) {
                    ctx.emit(&name, Some(kg as i32), line)?;
                }
                Ok(())
            })
            .map_err(|e| self.name_native_file(h, e))?;
            builder.flush(&mut out);
            for (name, line) in out {
                ctx.emit(&name, None, line)?;
            }
        }
        Ok(())
    }
}

impl FlinkSnapshot<'_> {
    /// An LSM reader's error names a Flink local file (`000034.sst`):
    /// name the snapshot's file instead.
    fn name_native_file(&self, h: &KeyedHandle, e: FlinkError) -> FlinkError {
        let KeyedHandle::Incremental {
            shared, private, ..
        } = h
        else {
            return e;
        };
        match e {
            FlinkError::File { file, source } => {
                let found = shared.iter().chain(private).find(|(n, _)| *n == file);
                let file = found.map_or(file, |(n, sh)| {
                    format!("{} (RocksDB file {n})", file_label(&self.base, sh))
                });
                FlinkError::File { file, source }
            }
            e => e,
        }
    }

    /// Writes a native handle's RocksDB files under their Flink names into
    /// a temporary folder, for the LSM reader.
    fn restore_files(&self, h: &KeyedHandle) -> Result<tempfile::TempDir> {
        let KeyedHandle::Incremental {
            shared, private, ..
        } = h
        else {
            return Err(FlinkError::Unsupported("not a native handle".into()));
        };
        let dir = tempfile::tempdir().map_err(|e| FlinkError::Io {
            path: "temporary folder".into(),
            source: e,
        })?;
        for (name, sh) in shared.iter().chain(private) {
            let label = file_label(&self.base, sh);
            let bytes =
                stream_bytes(self.storage, &self.base, sh).map_err(|e| e.in_file(&label))?;
            let local = dir.path().join(name.rsplit('/').next().unwrap_or(name));
            std::fs::write(&local, &bytes).map_err(|e| FlinkError::Io {
                path: local.display().to_string(),
                source: e,
            })?;
        }
        Ok(dir)
    }
}

fn keygroup_has_data(h: &KeyedHandle) -> bool {
    matches!(h, KeyedHandle::KeyGroups { offsets, .. } if keygroup::header_end(offsets).is_some())
}

/// Consecutive key groups grouped into reads of about READ_WINDOW bytes.
fn windows(blocks: &[(i32, u64, u64)]) -> Vec<&[(i32, u64, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..blocks.len() {
        let span = blocks[i].2.saturating_sub(blocks[start].1);
        if i > start && span > READ_WINDOW {
            out.push(&blocks[start..i]);
            start = i;
        }
    }
    if start < blocks.len() {
        out.push(&blocks[start..]);
    }
    out
}

pub fn state_matches(name: &str, sel: &str) -> bool {
    name == sel
        || name
            .strip_prefix("_timer_state/")
            .is_some_and(|t| t == sel || t.split_once('_').is_some_and(|(_, svc)| svc == sel))
}

struct Ctx<'a, 'o> {
    op: &'a OperatorState,
    opts: &'a DumpOptions<'o>,
    sink: &'a mut dyn FnMut(&Json) -> Result<()>,
    report: &'a mut DumpReport,
    label: String,
}

impl Ctx<'_, '_> {
    fn wants(&self, state: &str) -> bool {
        self.opts
            .state
            .as_deref()
            .is_none_or(|s| state_matches(state, s))
    }

    fn unknown(&mut self, state: &str, class: &str) {
        self.report.errors.push(FlinkError::UnknownSerializer {
            operator: self.label.clone(),
            state: state.to_string(),
            class: class.to_string(),
        });
    }

    /// Counts lines per state and key group, and prints the line.
    fn emit(&mut self, state: &str, kg: Option<i32>, line: Json) -> Result<()> {
        *self.report.per_state.entry(state.to_string()).or_default() += 1;
        if let Some(kg) = kg {
            *self.report.per_key_group.entry(kg).or_default() += 1;
        }
        self.report.lines += 1;
        (self.sink)(&line)
    }

    fn check_key_group(&mut self, d: &crate::entry::Decoded, kg: i32) -> Result<()> {
        self.report.entries += 1;
        if !self.opts.check_key_groups {
            return Ok(());
        }
        let key = match d {
            crate::entry::Decoded::Keyed { key, .. } | crate::entry::Decoded::Timer { key, .. } => {
                key
            }
        };
        if let Json::Str(k) = key {
            let expected = keygroup::key_group_of_string(k, self.op.max_parallelism);
            if expected != kg {
                return Err(FlinkError::malformed(
                    "key",
                    0,
                    format!("key {k:?} belongs to key group {expected}, found in {kg}"),
                ));
            }
        }
        Ok(())
    }
}
