//! The `_metadata` file: magic, version (3 to 7), operators, their subtasks
//! and the state handles that point at the bytes (inlined or in files).
//! Layout: docs/flink-format.md, "The _metadata file".

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};

pub const MAGIC: u32 = 0x4960_672D;
const MASTER_STATE_MAGIC: u32 = 0xC96B_1696;

/// Whether `bytes` start like a Flink `_metadata` file.
pub fn is_flink_metadata(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&MAGIC.to_be_bytes()[..])
}

/// Where the bytes of one stream are.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamHandle {
    /// Bytes inlined in `_metadata` (ByteStreamStateHandle); `name` looks
    /// like a path but is only a name.
    Inline { name: String, data: Vec<u8> },
    /// An absolute path (FileStateHandle), e.g. `file:/data/ckpt/job/shared/x`.
    File { path: String, size: i64 },
    /// A file in the snapshot's own directory (RelativeFileStateHandle).
    Relative { path: String, size: i64 },
}

impl StreamHandle {
    pub fn describe(&self) -> String {
        match self {
            StreamHandle::Inline { data, .. } => format!("inline ({} B)", data.len()),
            StreamHandle::File { path, size } => format!("{path} ({size} B)"),
            StreamHandle::Relative { path, size } => format!("{path} ({size} B)"),
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            StreamHandle::Inline { data, .. } => data.len() as u64,
            StreamHandle::File { size, .. } | StreamHandle::Relative { size, .. } => {
                (*size).max(0) as u64
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGroupRange {
    pub start: i32,
    pub count: i32,
}

impl KeyGroupRange {
    pub fn end_inclusive(&self) -> i32 {
        self.start.saturating_add(self.count).saturating_sub(1)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum KeyedHandle {
    /// Canonical savepoint (type 7) or full checkpoint (types 3, 12): one
    /// stream with an offset per key group (0 = no data in a savepoint).
    KeyGroups {
        range: KeyGroupRange,
        offsets: Vec<i64>,
        delegate: StreamHandle,
        savepoint: bool,
    },
    /// Native savepoint or incremental checkpoint (types 5, 11): a RocksDB
    /// instance as files, plus a stream holding only the state header.
    Incremental {
        checkpoint_id: i64,
        backend_id: String,
        range: KeyGroupRange,
        meta: StreamHandle,
        shared: Vec<(String, StreamHandle)>,
        private: Vec<(String, StreamHandle)>,
    },
}

impl KeyedHandle {
    pub fn range(&self) -> KeyGroupRange {
        match self {
            KeyedHandle::KeyGroups { range, .. } | KeyedHandle::Incremental { range, .. } => *range,
        }
    }

    /// Every stream this handle reads, with a label for messages.
    pub fn streams(&self) -> Vec<(String, &StreamHandle)> {
        match self {
            KeyedHandle::KeyGroups { delegate, .. } => vec![("key groups".into(), delegate)],
            KeyedHandle::Incremental {
                meta,
                shared,
                private,
                ..
            } => {
                let mut v = vec![("state header".to_string(), meta)];
                v.extend(shared.iter().chain(private).map(|(n, h)| (n.clone(), h)));
                v
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributionMode {
    SplitDistribute,
    Union,
    Broadcast,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OperatorStateEntry {
    pub name: String,
    pub mode: DistributionMode,
    pub offsets: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OperatorStateHandle {
    pub states: Vec<OperatorStateEntry>,
    pub delegate: StreamHandle,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubtaskState {
    pub index: i32,
    pub finished: bool,
    pub managed_operator: Option<OperatorStateHandle>,
    pub raw_operator: Option<OperatorStateHandle>,
    pub managed_keyed: Option<KeyedHandle>,
    pub raw_keyed: Option<KeyedHandle>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OperatorState {
    pub name: String,
    pub uid: String,
    /// The 16 bytes of the OperatorID as written; `id_hex` is Flink's form.
    pub id: [u8; 16],
    pub parallelism: i32,
    pub max_parallelism: i32,
    pub coordinator: Option<StreamHandle>,
    /// True when the whole operator had finished (no subtask states).
    pub finished: bool,
    pub subtasks: Vec<SubtaskState>,
}

impl OperatorState {
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What a dump calls this operator: its uid, else its id.
    pub fn label(&self) -> String {
        if self.uid.is_empty() {
            self.id_hex()
        } else {
            self.uid.clone()
        }
    }

    pub fn has_keyed_state(&self) -> bool {
        self.subtasks.iter().any(|s| s.managed_keyed.is_some())
    }

    pub fn has_operator_state(&self) -> bool {
        self.subtasks.iter().any(|s| s.managed_operator.is_some())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub version: i32,
    pub checkpoint_id: i64,
    pub master_states: Vec<String>,
    pub operators: Vec<OperatorState>,
    /// Sniffed from the Java-serialized CheckpointProperties trailer:
    /// "CANONICAL", "NATIVE" or "" (a checkpoint, or unknown).
    pub format_type: String,
    pub is_savepoint: bool,
    /// Where the Java-serialized CheckpointProperties start.
    pub trailer_offset: usize,
}

impl Metadata {
    pub fn parse(bytes: &[u8]) -> Result<Metadata> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("magic")?;
        if magic != MAGIC {
            return Err(FlinkError::NotFlink { found: magic });
        }
        let version = r.i32("version")?;
        if !(3..=7).contains(&version) {
            return Err(FlinkError::UnsupportedVersion(version));
        }
        let checkpoint_id = r.i64("checkpoint id")?;
        let master_states = read_master_states(&mut r)?;
        let n = r.count(16, "operator count")?;
        let mut operators = Vec::with_capacity(n);
        for _ in 0..n {
            operators.push(read_operator(&mut r, version)?);
        }
        let trailer_offset = r.pos();
        let trailer = r.rest();
        Ok(Metadata {
            version,
            checkpoint_id,
            master_states,
            operators,
            format_type: sniff_format_type(trailer),
            is_savepoint: contains(trailer, b"SavepointType"),
            trailer_offset,
        })
    }

    /// Finds an operator by uid, name or hex id.
    pub fn operator(&self, sel: &str) -> Result<&OperatorState> {
        let by = |f: &dyn Fn(&OperatorState) -> bool| self.operators.iter().find(|o| f(o));
        by(&|o| !o.uid.is_empty() && o.uid == sel)
            .or_else(|| by(&|o| o.id_hex().eq_ignore_ascii_case(sel)))
            .or_else(|| by(&|o| !o.name.is_empty() && o.name == sel))
            .ok_or_else(|| FlinkError::NoSuchOperator(sel.to_string()))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn sniff_format_type(trailer: &[u8]) -> String {
    ["CANONICAL", "NATIVE"]
        .into_iter()
        .find(|t| contains(trailer, t.as_bytes()))
        .unwrap_or("")
        .to_string()
}

/// Master (coordinator-side) states are length-prefixed: keep their names only.
fn read_master_states(r: &mut Reader) -> Result<Vec<String>> {
    let n = r.count(8, "master state count")?;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.pos();
        if r.u32("master state magic")? != MASTER_STATE_MAGIC {
            return Err(FlinkError::malformed("master state", at, "bad magic"));
        }
        let len = r.count(1, "master state length")?;
        let body = r.bytes(len, "master state")?;
        let mut b = Reader::new(body);
        let _version = b.i32("master state version")?;
        names.push(b.utf("master state name")?);
    }
    Ok(names)
}

fn read_operator(r: &mut Reader, version: i32) -> Result<OperatorState> {
    let (name, uid) = if version >= 5 {
        (r.utf("operator name")?, r.utf("operator uid")?)
    } else {
        (String::new(), String::new())
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(r.bytes(16, "operator id")?);
    let parallelism = r.i32("parallelism")?;
    let max_parallelism = r.i32("max parallelism")?;
    let coordinator = read_stream_handle(r)?;
    let at = r.pos();
    let n = r.i32("subtask count")?;
    let finished = n == -1;
    let n = if finished {
        0
    } else {
        r.check_count(n as i64, 4, at, "subtask count")?
    };
    let mut subtasks = Vec::with_capacity(n);
    for _ in 0..n {
        subtasks.push(read_subtask(r, version)?);
    }
    Ok(OperatorState {
        name,
        uid,
        id,
        parallelism,
        max_parallelism,
        coordinator,
        finished,
        subtasks,
    })
}

fn read_subtask(r: &mut Reader, version: i32) -> Result<SubtaskState> {
    let index = r.i32("subtask index")?;
    if index < 0 {
        // A finished subtask: -(index + 1), no body.
        return Ok(SubtaskState {
            index: -(index.saturating_add(1)),
            finished: true,
            ..Default::default()
        });
    }
    let managed_operator = read_operator_singleton(r)?;
    let raw_operator = read_operator_singleton(r)?;
    let managed_keyed = read_keyed_handle(r)?;
    let raw_keyed = read_keyed_handle(r)?;
    for what in [
        "input channel state handles",
        "result subpartition state handles",
    ] {
        let n = r.i32(what)?;
        if n != 0 {
            return Err(FlinkError::Unsupported(format!(
                "{n} {what} (unaligned checkpoint channel state)"
            )));
        }
    }
    if version >= 7 && r.bool("has ref checkpoint id")? {
        r.i64("ref checkpoint id")?;
    }
    Ok(SubtaskState {
        index,
        finished: false,
        managed_operator,
        raw_operator,
        managed_keyed,
        raw_keyed,
    })
}

fn read_operator_singleton(r: &mut Reader) -> Result<Option<OperatorStateHandle>> {
    let at = r.pos();
    match r.i32("operator state count")? {
        0 => Ok(None),
        1 => read_operator_handle(r),
        n => Err(FlinkError::malformed(
            "operator state",
            at,
            format!("{n} handles, expected 0 or 1"),
        )),
    }
}

fn read_operator_handle(r: &mut Reader) -> Result<Option<OperatorStateHandle>> {
    let at = r.pos();
    match r.u8("operator handle type")? {
        0 => Ok(None),
        4 => {
            let n = r.count(8, "operator state names")?;
            let mut states = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.utf("operator state name")?;
                let mode = match r.u8("distribution mode")? {
                    0 => DistributionMode::SplitDistribute,
                    1 => DistributionMode::Union,
                    2 => DistributionMode::Broadcast,
                    m => {
                        return Err(FlinkError::malformed(
                            "distribution mode",
                            at,
                            format!("{m}"),
                        ))
                    }
                };
                let k = r.count(8, "operator state offsets")?;
                let offsets = (0..k).map(|_| r.i64("offset")).collect::<Result<_>>()?;
                states.push(OperatorStateEntry {
                    name,
                    mode,
                    offsets,
                });
            }
            let delegate = read_stream_handle(r)?
                .ok_or_else(|| FlinkError::malformed("operator state", at, "no delegate stream"))?;
            Ok(Some(OperatorStateHandle { states, delegate }))
        }
        t => Err(FlinkError::malformed(
            "operator state handle",
            at,
            format!("type {t}"),
        )),
    }
}

pub fn read_stream_handle(r: &mut Reader) -> Result<Option<StreamHandle>> {
    let at = r.pos();
    Ok(Some(match r.u8("stream handle type")? {
        0 => return Ok(None),
        1 => {
            let name = r.utf("inline handle name")?;
            let len = r.count(1, "inline handle length")?;
            let data = r.bytes(len, "inline handle bytes")?.to_vec();
            StreamHandle::Inline { name, data }
        }
        2 => {
            let size = r.i64("file size")?;
            StreamHandle::File {
                path: r.utf("file path")?,
                size,
            }
        }
        6 => {
            let path = r.utf("relative path")?;
            StreamHandle::Relative {
                path,
                size: r.i64("file size")?,
            }
        }
        t @ (8..=10 | 13 | 14) => {
            return Err(FlinkError::Unsupported(format!(
                "changelog state handle (type {t})"
            )))
        }
        t => {
            return Err(FlinkError::malformed(
                "stream handle",
                at,
                format!("unknown type {t}"),
            ))
        }
    }))
}

fn read_range(r: &mut Reader) -> Result<KeyGroupRange> {
    let start = r.i32("start key group")?;
    let count = r.i32("key group count")?;
    if start < 0 || count < 0 {
        return Err(FlinkError::malformed(
            "key group range",
            r.pos(),
            format!("{start}+{count}"),
        ));
    }
    Ok(KeyGroupRange { start, count })
}

fn read_keyed_handle(r: &mut Reader) -> Result<Option<KeyedHandle>> {
    let at = r.pos();
    let t = r.u8("keyed handle type")?;
    Ok(Some(match t {
        0 => return Ok(None),
        3 | 7 | 12 => {
            let range = read_range(r)?;
            let n = r.check_count(range.count as i64, 8, at, "key group offsets")?;
            let offsets = (0..n)
                .map(|_| r.i64("key group offset"))
                .collect::<Result<_>>()?;
            let delegate = read_stream_handle(r)?.ok_or_else(|| {
                FlinkError::malformed("key groups handle", at, "no delegate stream")
            })?;
            if t == 12 {
                r.utf("state handle id")?;
            }
            KeyedHandle::KeyGroups {
                range,
                offsets,
                delegate,
                savepoint: t == 7,
            }
        }
        5 | 11 => read_incremental(r, t == 11, at)?,
        t @ (8..=10 | 13 | 14) => {
            return Err(FlinkError::Unsupported(format!(
                "changelog keyed state handle (type {t})"
            )))
        }
        t => {
            return Err(FlinkError::malformed(
                "keyed handle",
                at,
                format!("unknown type {t}"),
            ))
        }
    }))
}

fn read_incremental(r: &mut Reader, v2: bool, at: usize) -> Result<KeyedHandle> {
    let checkpoint_id = r.i64("checkpoint id")?;
    let backend_id = r.utf("backend id")?;
    let range = read_range(r)?;
    if v2 {
        r.i64("checkpointed size")?;
    }
    let meta = read_stream_handle(r)?
        .ok_or_else(|| FlinkError::malformed("incremental handle", at, "no metadata stream"))?;
    let shared = read_named_handles(r, "shared state")?;
    let private = read_named_handles(r, "private state")?;
    if v2 {
        r.utf("state handle id")?;
    }
    Ok(KeyedHandle::Incremental {
        checkpoint_id,
        backend_id,
        range,
        meta,
        shared,
        private,
    })
}

fn read_named_handles(r: &mut Reader, what: &'static str) -> Result<Vec<(String, StreamHandle)>> {
    let n = r.count(3, what)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let at = r.pos();
        let name = r.utf(what)?;
        let h =
            read_stream_handle(r)?.ok_or_else(|| FlinkError::malformed(what, at, "null handle"))?;
        v.push((name, h));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal `_metadata` of `version`: one operator, one subtask with
    /// no state (v5+ add name and uid, v7 a ref-checkpoint flag).
    fn minimal(version: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(MAGIC.to_be_bytes());
        b.extend(version.to_be_bytes());
        b.extend(42i64.to_be_bytes());
        b.extend(0i32.to_be_bytes()); // master states
        b.extend(1i32.to_be_bytes()); // operators
        if version >= 5 {
            for s in ["op", "uid-1"] {
                b.extend((s.len() as u16).to_be_bytes());
                b.extend(s.as_bytes());
            }
        }
        b.extend([7u8; 16]);
        b.extend(2i32.to_be_bytes());
        b.extend(128i32.to_be_bytes());
        b.push(0); // coordinator
        b.extend(2i32.to_be_bytes()); // two subtasks: one running, one finished
        b.extend(0i32.to_be_bytes());
        b.extend([0u8; 8]); // no managed / raw operator state
        b.extend([0u8, 0]); // no managed / raw keyed state
        b.extend([0u8; 8]); // no channel state
        if version >= 7 {
            b.push(1);
            b.extend(41i64.to_be_bytes());
        }
        b.extend((-2i32).to_be_bytes()); // subtask 1, finished
        b
    }

    #[test]
    fn versions_3_to_7() {
        for v in 3..=7 {
            let m = Metadata::parse(&minimal(v)).unwrap_or_else(|e| panic!("v{v}: {e}"));
            assert_eq!((m.version, m.checkpoint_id), (v, 42));
            let op = &m.operators[0];
            assert_eq!(op.uid, if v >= 5 { "uid-1" } else { "" });
            assert_eq!(op.id_hex(), "07".repeat(16));
            assert_eq!(op.subtasks.len(), 2);
            assert!(op.subtasks[1].finished && op.subtasks[1].index == 1);
        }
        assert!(matches!(
            Metadata::parse(&minimal(2)),
            Err(FlinkError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            Metadata::parse(b"PK\x03\x04...."),
            Err(FlinkError::NotFlink { .. })
        ));
    }
}
