//! Schema resolution compiled into a plan once per (writer, reader) pair.
//!
//! The plan is a tree of [`Op`]s mirroring the writer's encoding; each op
//! knows what to produce for the reader. Executing it is a single pass over
//! the input. Sub-plans whose output bytes equal their input bytes (same
//! structure, `int`->`long`, `string`<->`bytes`, identity enums) are marked
//! `copy`: they are validated without writing and then copied with one memcpy.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;

use crate::compat::{check_compatibility, lookup_writer_field, names_match, Checker};
use crate::defaults;
use crate::error::{DecodeError, ResolveError};
use crate::schema::{AvroSchema, Kind, Logical, NodeId, Tree};
use crate::values;
use crate::wire::{self, Cursor};

/// Deepest nesting of data (records in arrays in unions...) we decode.
const MAX_DEPTH: usize = 128;
/// Most items of zero-byte encodings (null, empty records) in one collection block.
const MAX_ZERO_SIZED_ITEMS: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Op {
    Null,
    Boolean,
    Int(Option<Logical>),
    Long(Option<Logical>),
    Float,
    Double,
    Bytes(Option<Logical>),
    Str(Option<Logical>),
    IntToLong(Option<Logical>),
    IntToFloat,
    IntToDouble,
    LongToFloat,
    LongToDouble,
    FloatToDouble,
    StrToBytes(Option<Logical>),
    BytesToStr(Option<Logical>),
    Fixed {
        size: usize,
        logical: Option<Logical>,
    },
    Enum(Arc<EnumPlan>),
    Array {
        item: Box<Op>,
        min_size: usize,
    },
    Map {
        value: Box<Op>,
        min_size: usize,
    },
    Record(usize),
    WriterUnion(Box<[Op]>),
    ReaderUnion {
        index: u32,
        op: Box<Op>,
    },
}

#[derive(Debug)]
struct EnumPlan {
    /// Writer index -> reader index (unknown symbols already mapped to the reader default).
    table: Vec<Option<u32>>,
    writer_symbols: Vec<String>,
    reader_symbols: Vec<String>,
    identity: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Read { op: Op, pos: usize, copy: bool },
    Skip(Op),
}

#[derive(Debug, Clone, Default)]
struct RecordPlan {
    steps: Vec<Step>,
    names: Vec<String>,
    /// Reader position -> default (binary, value) for reader fields the writer lacks.
    defaults: Vec<(usize, Vec<u8>, Value)>,
    /// Writer fields arrive in reader order and no default sits between them,
    /// so bytes can be streamed straight to the output.
    streaming: bool,
    copy: bool,
}

/// A compiled resolution from one writer schema to one reader schema.
#[derive(Debug)]
pub struct Resolver {
    root: Op,
    root_copy: bool,
    records: Vec<RecordPlan>,
    identity: bool,
}

impl Resolver {
    /// Compiles the plan; fails with every incompatibility when the reader cannot read the writer.
    pub fn compile(writer: &AvroSchema, reader: &AvroSchema) -> Result<Resolver, ResolveError> {
        let found = check_compatibility(reader, writer);
        if !found.is_empty() {
            return Err(ResolveError::Incompatible(found));
        }
        let mut c = Compiler {
            w: &writer.tree,
            r: &reader.tree,
            checker: Checker::new(&reader.tree, &writer.tree),
            memo: HashMap::new(),
            records: Vec::new(),
        };
        let root = c.op(writer.tree.root, reader.tree.root, false, "")?;
        let mut records = c.records;
        mark_copies(&mut records);
        let root_copy = is_copy(&root, &records);
        Ok(Resolver {
            root,
            root_copy,
            records,
            identity: writer == reader,
        })
    }

    /// Writer and reader are the same schema: stored bytes need no resolution.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Decodes one datum written with the writer schema from the front of
    /// `input` and appends its encoding under the reader schema to `out`.
    /// Returns the number of input bytes consumed. On error `out` is restored.
    pub fn resolve_bytes(&self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, DecodeError> {
        let mut cur = Cursor::new(input);
        let mark = out.len();
        let res = if self.root_copy {
            self.run(&self.root, &mut cur, &mut Discard, 0)
                .map(|()| out.extend_from_slice(&input[..cur.pos]))
        } else {
            self.run(&self.root, &mut cur, out, 0)
        };
        match res {
            Ok(()) => Ok(cur.pos),
            Err(e) => {
                out.truncate(mark);
                Err(e)
            }
        }
    }

    /// Decodes one datum written with the writer schema into a value of the reader schema.
    pub fn resolve_value(&self, input: &[u8]) -> Result<Value, DecodeError> {
        self.resolve_value_prefix(input).map(|(v, _)| v)
    }

    /// Like [`Resolver::resolve_value`], also returning the bytes consumed.
    pub fn resolve_value_prefix(&self, input: &[u8]) -> Result<(Value, usize), DecodeError> {
        let mut cur = Cursor::new(input);
        let v = self.value(&self.root, &mut cur, 0)?;
        Ok((v, cur.pos))
    }

    fn run<S: Sink>(
        &self,
        op: &Op,
        cur: &mut Cursor<'_>,
        out: &mut S,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                offset: cur.pos,
                limit: MAX_DEPTH,
            });
        }
        match op {
            Op::Null => {}
            Op::Boolean => {
                let b = cur.read_bool()?;
                out.raw(&[u8::from(b)]);
            }
            Op::Int(_) | Op::IntToLong(_) => {
                let v = cur.read_int()?;
                out.long(i64::from(v));
            }
            Op::Long(_) => {
                let v = cur.read_long()?;
                out.long(v);
            }
            Op::Float => out.raw(cur.read_exact(4)?),
            Op::Double => out.raw(cur.read_exact(8)?),
            Op::IntToFloat => {
                let v = cur.read_int()?;
                out.raw(&(v as f32).to_le_bytes());
            }
            Op::IntToDouble => {
                let v = cur.read_int()?;
                out.raw(&f64::from(v).to_le_bytes());
            }
            Op::LongToFloat => {
                let v = cur.read_long()?;
                out.raw(&(v as f32).to_le_bytes());
            }
            Op::LongToDouble => {
                let v = cur.read_long()?;
                out.raw(&(v as f64).to_le_bytes());
            }
            Op::FloatToDouble => {
                let v = cur.read_f32()?;
                out.raw(&f64::from(v).to_le_bytes());
            }
            Op::Bytes(_) | Op::StrToBytes(_) => {
                let b = cur.read_bytes()?;
                out.bytes(b);
            }
            Op::Str(_) | Op::BytesToStr(_) => {
                let s = cur.read_str()?;
                out.bytes(s.as_bytes());
            }
            Op::Fixed { size, .. } => out.raw(cur.read_exact(*size)?),
            Op::Enum(plan) => {
                let idx = enum_index(plan, cur)?;
                out.long(i64::from(idx));
            }
            Op::Array { item, min_size } => {
                self.run_blocks(cur, out, *min_size, depth, |s, c, o| {
                    s.run(item, c, o, depth + 1)
                })?
            }
            Op::Map { value, min_size } => {
                self.run_blocks(cur, out, min_size + 1, depth, |s, c, o| {
                    let k = c.read_str()?;
                    o.bytes(k.as_bytes());
                    s.run(value, c, o, depth + 1)
                })?
            }
            Op::Record(i) => self.run_record(&self.records[*i], cur, out, depth)?,
            Op::WriterUnion(branches) => {
                let offset = cur.pos;
                let idx = cur.read_long()?;
                let branch = usize::try_from(idx)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or(DecodeError::BadUnionIndex {
                        offset,
                        index: idx,
                        branches: branches.len(),
                    })?;
                self.run(branch, cur, out, depth + 1)?;
            }
            Op::ReaderUnion { index, op } => {
                out.long(i64::from(*index));
                self.run(op, cur, out, depth + 1)?;
            }
        }
        Ok(())
    }

    fn run_blocks<S: Sink>(
        &self,
        cur: &mut Cursor<'_>,
        out: &mut S,
        min_size: usize,
        depth: usize,
        mut item: impl FnMut(&Self, &mut Cursor<'_>, &mut S) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut total = 0usize;
        loop {
            let offset = cur.pos;
            let n = cur.read_block_count(min_size, MAX_ZERO_SIZED_ITEMS)?;
            if n == 0 {
                break;
            }
            total = total.saturating_add(n);
            if min_size == 0 && total > MAX_ZERO_SIZED_ITEMS {
                return Err(DecodeError::TooManyItems {
                    offset,
                    count: total as i64,
                    limit: MAX_ZERO_SIZED_ITEMS,
                });
            }
            if depth > MAX_DEPTH {
                return Err(DecodeError::TooDeep {
                    offset,
                    limit: MAX_DEPTH,
                });
            }
            out.long(n as i64);
            for _ in 0..n {
                item(self, cur, out)?;
            }
        }
        out.long(0);
        Ok(())
    }

    fn run_record<S: Sink>(
        &self,
        plan: &RecordPlan,
        cur: &mut Cursor<'_>,
        out: &mut S,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if !S::WRITES || plan.streaming {
            let mut next_default = 0;
            for step in &plan.steps {
                match step {
                    Step::Skip(op) => self.run(op, cur, &mut Discard, depth + 1)?,
                    Step::Read { op, pos, copy } => {
                        while let Some((dpos, bytes, _)) =
                            plan.defaults.get(next_default).filter(|d| d.0 < *pos)
                        {
                            let _ = dpos;
                            out.raw(bytes);
                            next_default += 1;
                        }
                        if *copy && S::WRITES {
                            let start = cur.pos;
                            self.run(op, cur, &mut Discard, depth + 1)?;
                            out.raw(&cur.buf[start..cur.pos]);
                        } else {
                            self.run(op, cur, out, depth + 1)?;
                        }
                    }
                }
            }
            for (_, bytes, _) in &plan.defaults[next_default..] {
                out.raw(bytes);
            }
            return Ok(());
        }
        // Writer order differs from reader order: assemble per reader field.
        let mut parts: Vec<S> = (0..plan.names.len()).map(|_| out.empty()).collect();
        for step in &plan.steps {
            match step {
                Step::Skip(op) => self.run(op, cur, &mut Discard, depth + 1)?,
                Step::Read { op, pos, .. } => self.run(op, cur, &mut parts[*pos], depth + 1)?,
            }
        }
        for (pos, bytes, _) in &plan.defaults {
            parts[*pos].raw(bytes);
        }
        for p in parts {
            out.append(p);
        }
        Ok(())
    }

    fn value(&self, op: &Op, cur: &mut Cursor<'_>, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                offset: cur.pos,
                limit: MAX_DEPTH,
            });
        }
        let offset = cur.pos;
        Ok(match op {
            Op::Null => Value::Null,
            Op::Boolean => Value::Boolean(cur.read_bool()?),
            Op::Int(l) => values::int_value(cur.read_int()?, l.as_ref()),
            Op::Long(l) => values::long_value(cur.read_long()?, l.as_ref()),
            Op::IntToLong(l) => values::long_value(i64::from(cur.read_int()?), l.as_ref()),
            Op::Float => Value::Float(cur.read_f32()?),
            Op::Double => Value::Double(cur.read_f64()?),
            Op::IntToFloat => Value::Float(cur.read_int()? as f32),
            Op::IntToDouble => Value::Double(f64::from(cur.read_int()?)),
            Op::LongToFloat => Value::Float(cur.read_long()? as f32),
            Op::LongToDouble => Value::Double(cur.read_long()? as f64),
            Op::FloatToDouble => Value::Double(f64::from(cur.read_f32()?)),
            Op::Bytes(l) => values::bytes_value(cur.read_bytes()?.to_vec(), l.as_ref()),
            Op::StrToBytes(l) => {
                values::bytes_value(cur.read_str()?.as_bytes().to_vec(), l.as_ref())
            }
            Op::Str(l) => string(cur.read_str()?, l.as_ref(), offset)?,
            Op::BytesToStr(l) => {
                let b = cur.read_bytes()?;
                let s = std::str::from_utf8(b).map_err(|_| DecodeError::BadUtf8 { offset })?;
                string(s, l.as_ref(), offset)?
            }
            Op::Fixed { size, logical } => {
                let b = cur.read_exact(*size)?.to_vec();
                values::fixed_value(*size, b, logical.as_ref()).map_err(|reason| {
                    DecodeError::BadLogical {
                        offset,
                        logical: "fixed",
                        reason,
                    }
                })?
            }
            Op::Enum(plan) => {
                let idx = enum_index(plan, cur)?;
                Value::Enum(idx, plan.reader_symbols[idx as usize].clone())
            }
            Op::Array { item, min_size } => {
                let mut items = Vec::new();
                self.value_blocks(cur, *min_size, |s, c| {
                    items.push(s.value(item, c, depth + 1)?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            Op::Map { value, min_size } => {
                let mut entries = HashMap::new();
                self.value_blocks(cur, min_size + 1, |s, c| {
                    let k = c.read_str()?.to_string();
                    entries.insert(k, s.value(value, c, depth + 1)?);
                    Ok(())
                })?;
                Value::Map(entries)
            }
            Op::Record(i) => {
                let plan = &self.records[*i];
                if plan.streaming {
                    return self.record_value_in_order(plan, cur, depth);
                }
                let mut slots: Vec<Value> = vec![Value::Null; plan.names.len()];
                for step in &plan.steps {
                    match step {
                        Step::Skip(op) => self.run(op, cur, &mut Discard, depth + 1)?,
                        Step::Read { op, pos, .. } => {
                            slots[*pos] = self.value(op, cur, depth + 1)?
                        }
                    }
                }
                for (pos, _, v) in &plan.defaults {
                    slots[*pos] = v.clone();
                }
                Value::Record(plan.names.iter().cloned().zip(slots).collect())
            }
            Op::WriterUnion(branches) => {
                let idx = cur.read_long()?;
                let branch = usize::try_from(idx)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or(DecodeError::BadUnionIndex {
                        offset,
                        index: idx,
                        branches: branches.len(),
                    })?;
                self.value(branch, cur, depth + 1)?
            }
            Op::ReaderUnion { index, op } => {
                Value::Union(*index, Box::new(self.value(op, cur, depth + 1)?))
            }
        })
    }

    /// Record whose writer fields come in reader order: build the field list directly.
    fn record_value_in_order(
        &self,
        plan: &RecordPlan,
        cur: &mut Cursor<'_>,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        let mut fields: Vec<(String, Value)> = Vec::with_capacity(plan.names.len());
        let mut defaults = plan.defaults.iter().peekable();
        for step in &plan.steps {
            match step {
                Step::Skip(op) => self.run(op, cur, &mut Discard, depth + 1)?,
                Step::Read { op, pos, .. } => {
                    while let Some((dpos, _, v)) = defaults.next_if(|d| d.0 < *pos) {
                        fields.push((plan.names[*dpos].clone(), v.clone()));
                    }
                    fields.push((plan.names[*pos].clone(), self.value(op, cur, depth + 1)?));
                }
            }
        }
        for (dpos, _, v) in defaults {
            fields.push((plan.names[*dpos].clone(), v.clone()));
        }
        Ok(Value::Record(fields))
    }

    fn value_blocks(
        &self,
        cur: &mut Cursor<'_>,
        min_size: usize,
        mut item: impl FnMut(&Self, &mut Cursor<'_>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut total = 0usize;
        loop {
            let offset = cur.pos;
            let n = cur.read_block_count(min_size, MAX_ZERO_SIZED_ITEMS)?;
            if n == 0 {
                return Ok(());
            }
            total = total.saturating_add(n);
            if min_size == 0 && total > MAX_ZERO_SIZED_ITEMS {
                return Err(DecodeError::TooManyItems {
                    offset,
                    count: total as i64,
                    limit: MAX_ZERO_SIZED_ITEMS,
                });
            }
            for _ in 0..n {
                item(self, cur)?;
            }
        }
    }
}

fn string(s: &str, logical: Option<&Logical>, offset: usize) -> Result<Value, DecodeError> {
    values::string_value(s.to_string(), logical).map_err(|reason| DecodeError::BadLogical {
        offset,
        logical: "uuid",
        reason,
    })
}

fn enum_index(plan: &EnumPlan, cur: &mut Cursor<'_>) -> Result<u32, DecodeError> {
    let offset = cur.pos;
    let idx = cur.read_long()?;
    let slot = usize::try_from(idx)
        .ok()
        .and_then(|i| plan.table.get(i))
        .ok_or(DecodeError::BadEnumIndex {
            offset,
            index: idx,
            symbols: plan.table.len(),
        })?;
    slot.ok_or_else(|| DecodeError::UnknownEnumSymbol {
        offset,
        symbol: plan.writer_symbols[idx as usize].clone(),
    })
}

/// Where transcoded bytes go: the output buffer, or nowhere (validation/skip).
trait Sink {
    const WRITES: bool;
    fn raw(&mut self, b: &[u8]);
    fn long(&mut self, v: i64);
    fn bytes(&mut self, b: &[u8]);
    fn empty(&self) -> Self;
    fn append(&mut self, other: Self);
}

impl Sink for Vec<u8> {
    const WRITES: bool = true;
    #[inline]
    fn raw(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn long(&mut self, v: i64) {
        wire::write_long(self, v);
    }
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        wire::write_bytes(self, b);
    }
    fn empty(&self) -> Self {
        Vec::new()
    }
    fn append(&mut self, other: Self) {
        self.extend_from_slice(&other);
    }
}

struct Discard;

impl Sink for Discard {
    const WRITES: bool = false;
    #[inline]
    fn raw(&mut self, _: &[u8]) {}
    #[inline]
    fn long(&mut self, _: i64) {}
    #[inline]
    fn bytes(&mut self, _: &[u8]) {}
    fn empty(&self) -> Self {
        Discard
    }
    fn append(&mut self, _: Self) {}
}

struct Compiler<'a> {
    w: &'a Tree,
    r: &'a Tree,
    checker: Checker<'a>,
    /// (writer node, reader node, skip mode) -> record plan index, so recursion terminates.
    memo: HashMap<(NodeId, NodeId, bool), usize>,
    records: Vec<RecordPlan>,
}

fn unsupported(path: &str, reason: impl Into<String>) -> ResolveError {
    ResolveError::Unsupported {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        },
        reason: reason.into(),
    }
}

impl<'a> Compiler<'a> {
    /// `skip`: compile the writer against itself (fields the reader drops).
    fn op(&mut self, w: NodeId, r: NodeId, skip: bool, path: &str) -> Result<Op, ResolveError> {
        let rt = if skip { self.w } else { self.r };
        let wk = &self.w.node(w).kind;
        let rnode = rt.node(r);
        let lg = rnode.logical.clone();
        if let Kind::Union(wb) = wk {
            let ops = wb
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if skip {
                        let op = self.op(*b, *b, true, path)?;
                        Ok(Op::ReaderUnion {
                            index: i as u32,
                            op: Box::new(op),
                        })
                    } else {
                        self.op(*b, r, false, &format!("{path}/{i}"))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Op::WriterUnion(ops.into_boxed_slice()));
        }
        if let Kind::Union(rb) = &rnode.kind {
            let index = self.select_branch(w, rb).ok_or_else(|| {
                unsupported(path, "no reader union branch matches the writer type")
            })?;
            let op = self.op(w, rb[index], false, path)?;
            return Ok(Op::ReaderUnion {
                index: index as u32,
                op: Box::new(op),
            });
        }
        let op = match (wk, &rnode.kind) {
            (Kind::Null, Kind::Null) => Op::Null,
            (Kind::Boolean, Kind::Boolean) => Op::Boolean,
            (Kind::Int, Kind::Int) => Op::Int(lg),
            (Kind::Long, Kind::Long) => Op::Long(lg),
            (Kind::Float, Kind::Float) => Op::Float,
            (Kind::Double, Kind::Double) => Op::Double,
            (Kind::Bytes, Kind::Bytes) => Op::Bytes(lg),
            (Kind::String, Kind::String) => Op::Str(lg),
            (Kind::Int, Kind::Long) => Op::IntToLong(lg),
            (Kind::Int, Kind::Float) => Op::IntToFloat,
            (Kind::Int, Kind::Double) => Op::IntToDouble,
            (Kind::Long, Kind::Float) => Op::LongToFloat,
            (Kind::Long, Kind::Double) => Op::LongToDouble,
            (Kind::Float, Kind::Double) => Op::FloatToDouble,
            (Kind::String, Kind::Bytes) => Op::StrToBytes(lg),
            (Kind::Bytes, Kind::String) => Op::BytesToStr(lg),
            (Kind::Fixed { size: ws, .. }, Kind::Fixed { size: rs, .. }) if ws == rs => Op::Fixed {
                size: *ws,
                logical: lg,
            },
            (
                Kind::Enum { symbols: ws, .. },
                Kind::Enum {
                    symbols: rs,
                    default,
                    ..
                },
            ) => {
                let fallback = default
                    .as_ref()
                    .and_then(|d| rs.iter().position(|s| s == d));
                let table: Vec<Option<u32>> = ws
                    .iter()
                    .map(|s| {
                        rs.iter()
                            .position(|x| x == s)
                            .or(fallback)
                            .map(|i| i as u32)
                    })
                    .collect();
                let identity = table.iter().enumerate().all(|(i, t)| *t == Some(i as u32));
                Op::Enum(Arc::new(EnumPlan {
                    table,
                    writer_symbols: ws.clone(),
                    reader_symbols: rs.clone(),
                    identity,
                }))
            }
            (Kind::Array(wi), Kind::Array(ri)) => Op::Array {
                item: Box::new(self.op(*wi, *ri, skip, &format!("{path}/items"))?),
                min_size: min_size(self.w, *wi, 0),
            },
            (Kind::Map(wv), Kind::Map(rv)) => Op::Map {
                value: Box::new(self.op(*wv, *rv, skip, &format!("{path}/values"))?),
                min_size: min_size(self.w, *wv, 0),
            },
            (Kind::Record { .. }, Kind::Record { .. }) => {
                Op::Record(self.record(w, r, skip, path)?)
            }
            _ => {
                return Err(unsupported(
                    path,
                    format!(
                        "reader type {} cannot read writer type {}",
                        rt.type_name(r),
                        self.w.type_name(w)
                    ),
                ))
            }
        };
        Ok(op)
    }

    fn record(
        &mut self,
        w: NodeId,
        r: NodeId,
        skip: bool,
        path: &str,
    ) -> Result<usize, ResolveError> {
        if let Some(i) = self.memo.get(&(w, r, skip)) {
            return Ok(*i);
        }
        let idx = self.records.len();
        self.records.push(RecordPlan::default());
        self.memo.insert((w, r, skip), idx);
        let rt = if skip { self.w } else { self.r };
        let (Kind::Record { fields: wf, .. }, Kind::Record { fields: rf, .. }) =
            (&self.w.node(w).kind, &rt.node(r).kind)
        else {
            return Err(unsupported(path, "expected two records"));
        };
        // Reader field position for each writer field.
        let mut target: Vec<Option<usize>> = vec![None; wf.len()];
        let mut defaults = Vec::new();
        for (pos, f) in rf.iter().enumerate() {
            match lookup_writer_field(wf, &f.name, &f.aliases) {
                Some(wi) if target[wi].is_none() => target[wi] = Some(pos),
                Some(_) => {
                    return Err(unsupported(
                        &format!("{path}/fields/{pos}"),
                        format!(
                        "reader field {:?} reads a writer field another reader field already reads",
                        f.name
                    ),
                    ))
                }
                None => {
                    let d = f.default.as_ref().ok_or_else(|| {
                        unsupported(
                            &format!("{path}/fields/{pos}"),
                            format!("reader field {:?} has no default", f.name),
                        )
                    })?;
                    let mut bytes = Vec::new();
                    let bad = |e: crate::error::SchemaError| {
                        unsupported(&format!("{path}/fields/{pos}"), e.to_string())
                    };
                    defaults::encode(rt, f.schema, d, &mut bytes).map_err(bad)?;
                    let value = defaults::value(rt, f.schema, d).map_err(bad)?;
                    defaults.push((pos, bytes, value));
                }
            }
        }
        let mut steps = Vec::with_capacity(wf.len());
        for (wi, f) in wf.iter().enumerate() {
            let fpath = format!("{path}/fields/{wi}/type");
            steps.push(match target[wi] {
                Some(pos) => Step::Read {
                    op: self.op(f.schema, rf[pos].schema, skip, &fpath)?,
                    pos,
                    copy: false,
                },
                None => Step::Skip(self.op(f.schema, f.schema, true, &fpath)?),
            });
        }
        let read_positions: Vec<usize> = target.iter().flatten().copied().collect();
        let streaming = read_positions.windows(2).all(|p| p[0] < p[1]);
        self.records[idx] = RecordPlan {
            steps,
            names: rf.iter().map(|f| f.name.clone()).collect(),
            defaults,
            streaming,
            copy: false,
        };
        Ok(idx)
    }

    /// Java's `Resolver.firstMatchingBranch`, restricted to branches that can read the writer:
    /// same type (named: same full name or reader alias) first, then a structural record or
    /// short-name match, then numeric/string promotion.
    fn select_branch(&mut self, w: NodeId, rb: &[NodeId]) -> Option<usize> {
        let wname = self.w.type_name(w);
        let wnamed = self.w.named(w).cloned();
        let mut structural = None;
        for (j, b) in rb.iter().enumerate() {
            if self.r.type_name(*b) != wname {
                continue;
            }
            if !self.checker.compatible(*b, w) {
                continue;
            }
            match (&wnamed, self.r.named(*b)) {
                (Some(wn), Some(bn)) => {
                    if bn.fullname == wn.fullname || bn.aliases.contains(&wn.fullname) {
                        return Some(j);
                    }
                    if structural.is_none() || names_match(bn, wn) && bn.name == wn.name {
                        structural = structural.or(Some(j));
                    }
                }
                _ => return Some(j),
            }
        }
        if structural.is_some() {
            return structural;
        }
        rb.iter().position(|b| {
            matches!(
                (&self.w.node(w).kind, &self.r.node(*b).kind),
                (Kind::Int, Kind::Long | Kind::Float | Kind::Double)
                    | (Kind::Long, Kind::Float | Kind::Double)
                    | (Kind::Float, Kind::Double)
                    | (Kind::String, Kind::Bytes)
                    | (Kind::Bytes, Kind::String)
            )
        })
    }
}

/// Fewest bytes one value of writer node `id` can take (bounds item counts).
fn min_size(tree: &Tree, id: NodeId, depth: usize) -> usize {
    if depth > 32 {
        return 0;
    }
    match &tree.node(id).kind {
        Kind::Null | Kind::Pending => 0,
        Kind::Float => 4,
        Kind::Double => 8,
        Kind::Fixed { size, .. } => *size,
        Kind::Record { fields, .. } => fields
            .iter()
            .map(|f| min_size(tree, f.schema, depth + 1))
            .fold(0usize, usize::saturating_add),
        _ => 1,
    }
}

/// Greatest fixpoint of "this record's output bytes equal its input bytes",
/// so recursive identity records are copies too.
fn mark_copies(records: &mut [RecordPlan]) {
    for r in records.iter_mut() {
        r.copy = true;
    }
    loop {
        let mut changed = false;
        for i in 0..records.len() {
            let plan = &records[i];
            let copy = plan.defaults.is_empty()
                && plan.streaming
                && plan.steps.iter().enumerate().all(|(wi, s)| match s {
                    Step::Read { op, pos, .. } => *pos == wi && is_copy(op, records),
                    Step::Skip(_) => false,
                })
                && plan.steps.len() == plan.names.len();
            if records[i].copy != copy {
                records[i].copy = copy;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let flags: Vec<Vec<bool>> = records
        .iter()
        .map(|r| {
            r.steps
                .iter()
                .map(|s| matches!(s, Step::Read { op, .. } if is_copy(op, records)))
                .collect()
        })
        .collect();
    for (r, f) in records.iter_mut().zip(flags) {
        for (s, c) in r.steps.iter_mut().zip(f) {
            if let Step::Read { copy, .. } = s {
                *copy = c;
            }
        }
    }
}

fn is_copy(op: &Op, records: &[RecordPlan]) -> bool {
    match op {
        Op::Null
        | Op::Boolean
        | Op::Int(_)
        | Op::Long(_)
        | Op::Float
        | Op::Double
        | Op::Bytes(_)
        | Op::Str(_)
        | Op::IntToLong(_)
        | Op::StrToBytes(_)
        | Op::BytesToStr(_)
        | Op::Fixed { .. } => true,
        Op::IntToFloat
        | Op::IntToDouble
        | Op::LongToFloat
        | Op::LongToDouble
        | Op::FloatToDouble => false,
        Op::Enum(p) => p.identity,
        Op::Array { item, .. } => is_copy(item, records),
        Op::Map { value, .. } => is_copy(value, records),
        Op::Record(i) => records[*i].copy,
        Op::WriterUnion(branches) => branches.iter().enumerate().all(|(i, b)| match b {
            Op::ReaderUnion { index, op } => *index as usize == i && is_copy(op, records),
            _ => false,
        }),
        Op::ReaderUnion { .. } => false,
    }
}

/// Plain decode of one datum: resolution of a schema against itself, compiled
/// once per schema and cached in it.
pub fn decode_value(schema: &AvroSchema, input: &[u8]) -> Result<Value, DecodeError> {
    schema.plain_resolver()?.resolve_value(input)
}
