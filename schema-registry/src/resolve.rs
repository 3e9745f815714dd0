//! Schema resolution compiled into a plan once per (writer, reader) pair.
//!
//! The plan is a tree of [`Op`]s mirroring the writer's encoding; each op
//! knows what to produce for the reader. Executing it is a single pass over
//! the input. Sub-plans whose output bytes equal their input bytes (same
//! structure, `int`->`long`, `string`<->`bytes`, identity enums) are marked
//! `copy`: they are validated without writing and then copied with one memcpy.
//! What the reader cannot read compiles to an error op (Java's lazy
//! `ErrorAction`), so only the datums that reach it fail.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;

use crate::compat::check_compatibility;
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
    /// The reader cannot read what the writer wrote here: an error for the
    /// datums that reach this op only (Java's lazy `ErrorAction`).
    Error(Arc<Unresolvable>),
}

#[derive(Debug)]
struct Unresolvable {
    /// Location in the reader schema.
    path: String,
    /// Java's message: `Found <writer>, expecting <reader>[, missing required field <f>]`.
    reason: String,
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
    /// Compiles the plan for a pair the compatibility check accepts; fails
    /// with every incompatibility otherwise. For callers that must read every
    /// datum the writer can write (migrations, jobs).
    pub fn compile(writer: &AvroSchema, reader: &AvroSchema) -> Result<Resolver, ResolveError> {
        let found = check_compatibility(reader, writer);
        if !found.is_empty() {
            return Err(ResolveError::Incompatible(found));
        }
        Self::compile_per_datum(writer, reader)
    }

    /// Compiles the plan the way the specification and Java's resolving
    /// decoder do, whatever the compatibility check says: what the reader
    /// cannot read (a writer enum symbol it lacks with no enum default, a
    /// writer union branch no reader branch matches, a type mismatch, a
    /// missing field without default) fails only the datums that hold it,
    /// with [`DecodeError::UnknownEnumSymbol`] or [`DecodeError::Unresolvable`].
    /// Fails up front only where Java does too: two writer fields renamed to
    /// one name by the reader's field aliases.
    pub fn compile_per_datum(
        writer: &AvroSchema,
        reader: &AvroSchema,
    ) -> Result<Resolver, ResolveError> {
        // Java's `applyAliases` leaves the writer alone when both schemas are
        // equal: a schema's aliases never rename its own fields.
        let aliases = if writer.json() == reader.json() {
            Aliases::default()
        } else {
            Aliases::of(&reader.tree)
        };
        let mut c = Compiler::new(&writer.tree, &reader.tree, aliases)?;
        let root = c.op(writer.tree.root, reader.tree.root, false, "")?;
        let mut records = c.records;
        mark_copies(&mut records);
        let root_copy = is_copy(&root, &records);
        Ok(Resolver {
            root,
            root_copy,
            records,
            // Same normalized JSON, same encoding (references do not matter).
            identity: writer.json() == reader.json(),
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
            Op::Error(e) => return Err(unresolvable(e, cur.pos)),
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
            Op::Error(e) => return Err(unresolvable(e, offset)),
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

fn unresolvable(e: &Unresolvable, offset: usize) -> DecodeError {
    DecodeError::Unresolvable {
        offset,
        path: e.path.clone(),
        reason: e.reason.clone(),
    }
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
    aliases: Aliases,
    /// (writer node, reader node, skip mode) -> record op (a plan index, or
    /// the error of a reader field the writer lacks), so recursion terminates.
    memo: HashMap<(NodeId, NodeId, bool), Op>,
    /// Java's `hasMatchError` per record pair; `false` while in progress, as
    /// Java's half-built `RecordAdjust` has no error action yet.
    match_error: HashMap<(NodeId, NodeId), bool>,
    records: Vec<RecordPlan>,
}

fn unsupported(path: &str, reason: impl Into<String>) -> ResolveError {
    ResolveError::Unsupported {
        path: root_if_empty(path),
        reason: reason.into(),
    }
}

fn root_if_empty(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    }
}

/// Java's `Schema.applyAliases(writer, reader)`, kept as lookup tables: the
/// reader's aliases rename the writer's named types and record fields before
/// anything is matched.
#[derive(Default)]
struct Aliases {
    /// Alias (full name) -> reader type full name, for every named reader type.
    types: HashMap<String, String>,
    /// Reader record full name (and each of its aliases) -> field alias -> reader field name.
    fields: HashMap<String, HashMap<String, String>>,
}

impl Aliases {
    fn of(r: &Tree) -> Aliases {
        let mut a = Aliases::default();
        for node in &r.nodes {
            let named = match &node.kind {
                Kind::Record { named, .. }
                | Kind::Enum { named, .. }
                | Kind::Fixed { named, .. } => named,
                _ => continue,
            };
            for alias in &named.aliases {
                a.types.insert(alias.clone(), named.fullname.clone());
            }
            if let Kind::Record { fields, .. } = &node.kind {
                let map: HashMap<String, String> = fields
                    .iter()
                    .flat_map(|f| f.aliases.iter().map(|al| (al.clone(), f.name.clone())))
                    .collect();
                // Java registers a record's aliases only when it has field aliases.
                if !map.is_empty() {
                    for alias in &named.aliases {
                        a.fields.insert(alias.clone(), map.clone());
                    }
                    a.fields.insert(named.fullname.clone(), map);
                }
            }
        }
        a
    }

    /// The writer type's full name once the reader's aliases are applied.
    fn type_name<'n>(&'n self, writer_fullname: &'n str) -> &'n str {
        self.types
            .get(writer_fullname)
            .map_or(writer_fullname, String::as_str)
    }

    /// The name a writer record's field takes once the reader's aliases are applied.
    fn field_name<'n>(&'n self, writer_record: &str, field: &'n str) -> &'n str {
        self.fields
            .get(self.type_name(writer_record))
            .and_then(|m| m.get(field))
            .map_or(field, String::as_str)
    }
}

fn short(fullname: &str) -> &str {
    fullname.rsplit_once('.').map_or(fullname, |(_, n)| n)
}

/// Java's `Promote.isValid`: the promotions the specification allows.
fn promotable(w: &Kind, r: &Kind) -> bool {
    matches!(
        (w, r),
        (Kind::Int, Kind::Long | Kind::Float | Kind::Double)
            | (Kind::Long, Kind::Float | Kind::Double)
            | (Kind::Float, Kind::Double)
            | (Kind::String, Kind::Bytes)
            | (Kind::Bytes, Kind::String)
    )
}

impl<'a> Compiler<'a> {
    fn new(w: &'a Tree, r: &'a Tree, aliases: Aliases) -> Result<Self, ResolveError> {
        let c = Compiler {
            w,
            r,
            aliases,
            memo: HashMap::new(),
            match_error: HashMap::new(),
            records: Vec::new(),
        };
        c.check_renamed_fields()?;
        Ok(c)
    }

    /// Java applies the reader's aliases to the whole writer schema up front
    /// and refuses the pair when two fields of one writer record end up with
    /// the same name ("Duplicate field"): no datum can be read then.
    fn check_renamed_fields(&self) -> Result<(), ResolveError> {
        for node in &self.w.nodes {
            let Kind::Record { named, fields } = &node.kind else {
                continue;
            };
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for f in fields {
                let renamed = self.aliases.field_name(&named.fullname, &f.name);
                if let Some(first) = seen.insert(renamed, &f.name) {
                    return Err(unsupported(
                        "/",
                        format!(
                            "writer record {} has fields {first:?} and {:?} that both become field \
                             {renamed:?} through the reader's aliases",
                            named.fullname, f.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The writer node's full name as Java prints it once aliases are applied
    /// (`int`, `array`, `union` for unnamed types).
    fn writer_fullname(&self, w: NodeId) -> String {
        match self.w.named(w) {
            Some(n) => self.aliases.type_name(&n.fullname).to_string(),
            None => self.w.branch_name(w),
        }
    }

    /// Java's lazily raised `ErrorAction`: an op that fails the datums that reach it.
    fn error(&self, w: NodeId, r: NodeId, path: &str, extra: &str) -> Op {
        Op::Error(Arc::new(Unresolvable {
            path: root_if_empty(path),
            reason: format!(
                "Found {}, expecting {}{extra}",
                self.writer_fullname(w),
                self.r.branch_name(r)
            ),
        }))
    }

    /// Writer and reader named types have the same unqualified name once the
    /// reader's aliases rename the writer (Java's `Resolver` for enum and fixed).
    fn same_short_name(&self, w: NodeId, r: NodeId) -> bool {
        match (self.w.named(w), self.r.named(r)) {
            (Some(wn), Some(rn)) => short(self.aliases.type_name(&wn.fullname)) == rn.name,
            _ => true,
        }
    }

    /// `skip`: compile the writer against itself (fields the reader drops).
    fn op(&mut self, w: NodeId, r: NodeId, skip: bool, path: &str) -> Result<Op, ResolveError> {
        if skip {
            return self.skip_op(w, path);
        }
        let wk = &self.w.node(w).kind;
        let rnode = self.r.node(r);
        let lg = rnode.logical.clone();
        if let Kind::Union(wb) = wk {
            // Java's `WriterUnion`: branch to branch when the unions are
            // equivalent, else each writer branch against the whole reader.
            let equiv = match &rnode.kind {
                Kind::Union(rb) => self
                    .union_equiv(w, r, &mut HashMap::new())
                    .then(|| rb.clone()),
                _ => None,
            };
            let mut ops = Vec::with_capacity(wb.len());
            for (i, b) in wb.iter().enumerate() {
                ops.push(match &equiv {
                    Some(rb) => Op::ReaderUnion {
                        index: i as u32,
                        op: Box::new(self.op(*b, rb[i], false, &format!("{path}/{i}"))?),
                    },
                    None => self.op(*b, r, false, path)?,
                });
            }
            return Ok(Op::WriterUnion(ops.into_boxed_slice()));
        }
        if let Kind::Union(rb) = &rnode.kind {
            let Some(index) = self.first_matching_branch(w, rb) else {
                return Ok(self.error(w, r, path, ""));
            };
            let op = self.op(w, rb[index], false, &format!("{path}/{index}"))?;
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
            (Kind::Fixed { size: ws, .. }, Kind::Fixed { size: rs, .. }) => {
                if self.same_short_name(w, r) && ws == rs {
                    Op::Fixed {
                        size: *ws,
                        logical: lg,
                    }
                } else {
                    self.error(w, r, path, "")
                }
            }
            (Kind::Enum { .. }, Kind::Enum { .. }) if !self.same_short_name(w, r) => {
                self.error(w, r, path, "")
            }
            (
                Kind::Enum { symbols: ws, .. },
                Kind::Enum {
                    symbols: rs,
                    default,
                    ..
                },
            ) => enum_op(ws, rs, default.as_deref()),
            (Kind::Array(wi), Kind::Array(ri)) => Op::Array {
                item: Box::new(self.op(*wi, *ri, false, &format!("{path}/items"))?),
                min_size: min_size(self.w, *wi, 0),
            },
            (Kind::Map(wv), Kind::Map(rv)) => Op::Map {
                value: Box::new(self.op(*wv, *rv, false, &format!("{path}/values"))?),
                min_size: min_size(self.w, *wv, 0),
            },
            (Kind::Record { .. }, Kind::Record { .. }) => self.record(w, r, false, path)?,
            _ => self.error(w, r, path, ""),
        };
        Ok(op)
    }

    /// The writer read against itself: every datum is readable.
    fn skip_op(&mut self, w: NodeId, path: &str) -> Result<Op, ResolveError> {
        let lg = self.w.node(w).logical.clone();
        Ok(match &self.w.node(w).kind {
            Kind::Union(wb) => {
                let mut ops = Vec::with_capacity(wb.len());
                for (i, b) in wb.iter().enumerate() {
                    ops.push(Op::ReaderUnion {
                        index: i as u32,
                        op: Box::new(self.skip_op(*b, path)?),
                    });
                }
                Op::WriterUnion(ops.into_boxed_slice())
            }
            Kind::Null => Op::Null,
            Kind::Boolean => Op::Boolean,
            Kind::Int => Op::Int(lg),
            Kind::Long => Op::Long(lg),
            Kind::Float => Op::Float,
            Kind::Double => Op::Double,
            Kind::Bytes => Op::Bytes(lg),
            Kind::String => Op::Str(lg),
            Kind::Fixed { size, .. } => Op::Fixed {
                size: *size,
                logical: lg,
            },
            Kind::Enum { symbols, .. } => enum_op(symbols, symbols, None),
            Kind::Array(wi) => Op::Array {
                item: Box::new(self.skip_op(*wi, &format!("{path}/items"))?),
                min_size: min_size(self.w, *wi, 0),
            },
            Kind::Map(wv) => Op::Map {
                value: Box::new(self.skip_op(*wv, &format!("{path}/values"))?),
                min_size: min_size(self.w, *wv, 0),
            },
            Kind::Record { .. } => self.record(w, w, true, path)?,
            Kind::Pending => return Err(unsupported(path, "unresolved type reference")),
        })
    }

    /// Reader position of each writer field (Java: the writer field renamed
    /// through the reader's aliases, then looked up by name in the reader).
    fn field_targets(&self, w: NodeId, r: NodeId) -> Vec<Option<usize>> {
        let (Kind::Record { named, fields: wf }, Kind::Record { fields: rf, .. }) =
            (&self.w.node(w).kind, &self.r.node(r).kind)
        else {
            return Vec::new();
        };
        wf.iter()
            .map(|f| {
                let name = self.aliases.field_name(&named.fullname, &f.name);
                rf.iter().position(|x| x.name == name)
            })
            .collect()
    }

    /// The last reader field with no default that no writer field fills
    /// (Java names the last one in its message), if any.
    fn missing_required(&self, r: NodeId, targets: &[Option<usize>]) -> Option<String> {
        let Kind::Record { fields: rf, .. } = &self.r.node(r).kind else {
            return None;
        };
        rf.iter()
            .enumerate()
            .rev()
            .find(|(pos, f)| f.default.is_none() && !targets.contains(&Some(*pos)))
            .map(|(_, f)| f.name.clone())
    }

    fn record(&mut self, w: NodeId, r: NodeId, skip: bool, path: &str) -> Result<Op, ResolveError> {
        if let Some(op) = self.memo.get(&(w, r, skip)) {
            return Ok(op.clone());
        }
        let rt = if skip { self.w } else { self.r };
        let (Kind::Record { fields: wf, .. }, Kind::Record { fields: rf, .. }) =
            (&self.w.node(w).kind, &rt.node(r).kind)
        else {
            return Err(unsupported(path, "expected two records"));
        };
        let target: Vec<Option<usize>> = if skip {
            (0..wf.len()).map(Some).collect()
        } else {
            self.field_targets(w, r)
        };
        if !skip {
            // Java's `RecordAdjust`: a reader field with no default that the
            // writer lacks makes every datum of this record unreadable.
            if let Some(field) = self.missing_required(r, &target) {
                let op = self.error(w, r, path, &format!(", missing required field {field}"));
                self.memo.insert((w, r, skip), op.clone());
                return Ok(op);
            }
        }
        let idx = self.records.len();
        self.records.push(RecordPlan::default());
        self.memo.insert((w, r, skip), Op::Record(idx));
        let mut defaults = Vec::new();
        for (pos, f) in rf.iter().enumerate() {
            if target.contains(&Some(pos)) {
                continue;
            }
            let fpath = format!("{path}/fields/{pos}");
            let d = f.default.as_ref().ok_or_else(|| {
                unsupported(&fpath, format!("reader field {:?} has no default", f.name))
            })?;
            let mut bytes = Vec::new();
            let bad = |e: crate::error::SchemaError| unsupported(&fpath, e.to_string());
            defaults::encode(rt, f.schema, d, &mut bytes).map_err(bad)?;
            let value = defaults::value(rt, f.schema, d).map_err(bad)?;
            defaults.push((pos, bytes, value));
        }
        let mut steps = Vec::with_capacity(wf.len());
        for (wi, f) in wf.iter().enumerate() {
            steps.push(match target[wi] {
                Some(pos) => Step::Read {
                    op: self.op(
                        f.schema,
                        rf[pos].schema,
                        skip,
                        &format!("{path}/fields/{pos}/type"),
                    )?,
                    pos,
                    copy: false,
                },
                None => Step::Skip(self.skip_op(f.schema, path)?),
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
        Ok(Op::Record(idx))
    }

    /// Would Java's `Resolver.resolve(w, r)` be an `ErrorAction` at the top
    /// (not deeper inside arrays, maps or record fields)?
    fn is_error_action(&mut self, w: NodeId, r: NodeId) -> bool {
        let (wk, rk) = (&self.w.node(w).kind, &self.r.node(r).kind);
        if matches!(wk, Kind::Union(_)) {
            return false;
        }
        if self.w.type_name(w) == self.r.type_name(r) {
            return match (wk, rk) {
                (Kind::Fixed { size: ws, .. }, Kind::Fixed { size: rs, .. }) => {
                    !self.same_short_name(w, r) || ws != rs
                }
                (Kind::Enum { .. }, Kind::Enum { .. }) => !self.same_short_name(w, r),
                (Kind::Record { .. }, Kind::Record { .. }) => {
                    let targets = self.field_targets(w, r);
                    self.missing_required(r, &targets).is_some()
                }
                _ => false,
            };
        }
        if let Kind::Union(rb) = rk {
            let rb = rb.clone();
            return self.first_matching_branch(w, &rb).is_none();
        }
        !promotable(wk, rk)
    }

    /// Java's `ReaderUnion.hasMatchError(RecordAdjust.resolve(w, b))`: the
    /// record pair is an error, or one of its field actions is (one level only).
    fn has_match_error(&mut self, w: NodeId, r: NodeId) -> bool {
        if let Some(e) = self.match_error.get(&(w, r)) {
            return *e;
        }
        self.match_error.insert((w, r), false);
        let targets = self.field_targets(w, r);
        let mut error = self.missing_required(r, &targets).is_some();
        if !error {
            let pairs: Vec<(NodeId, NodeId)> = match (&self.w.node(w).kind, &self.r.node(r).kind) {
                (Kind::Record { fields: wf, .. }, Kind::Record { fields: rf, .. }) => targets
                    .iter()
                    .enumerate()
                    .filter_map(|(wi, t)| t.map(|pos| (wf[wi].schema, rf[pos].schema)))
                    .collect(),
                _ => Vec::new(),
            };
            error = pairs.into_iter().any(|(a, b)| self.is_error_action(a, b));
        }
        self.match_error.insert((w, r), error);
        error
    }

    /// Java's `Resolver.ReaderUnion.firstMatchingBranch` (bug for bug, as
    /// Java keeps it from 1.8): a branch of the same type (a named one only
    /// with the same full name, or a record whose fields resolve without a
    /// top-level error, preferring the same short name), then the first
    /// promotion. Deeper mismatches stay per-datum errors.
    fn first_matching_branch(&mut self, w: NodeId, rb: &[NodeId]) -> Option<usize> {
        let wtype = self.w.type_name(w);
        let wname = self
            .w
            .named(w)
            .map(|n| self.aliases.type_name(&n.fullname).to_string());
        let mut structure = None;
        for (j, b) in rb.iter().enumerate() {
            if self.r.type_name(*b) != wtype {
                continue;
            }
            let (Some(wname), Some(bn)) = (&wname, self.r.named(*b)) else {
                return Some(j);
            };
            if *wname == bn.fullname {
                return Some(j);
            }
            let record = matches!(self.w.node(w).kind, Kind::Record { .. });
            if record && !self.has_match_error(w, *b) {
                let same_short = short(wname) == bn.name;
                if structure.is_none() || same_short {
                    structure = Some(j);
                }
            }
        }
        if structure.is_some() {
            return structure;
        }
        let wk = &self.w.node(w).kind;
        rb.iter()
            .position(|b| promotable(wk, &self.r.node(*b).kind))
    }

    /// Java's `Resolver.unionEquiv`: same structure and names branch by branch.
    fn union_equiv(
        &self,
        w: NodeId,
        r: NodeId,
        seen: &mut HashMap<(NodeId, NodeId), bool>,
    ) -> bool {
        if self.w.type_name(w) != self.r.type_name(r) || !self.same_short_name(w, r) {
            return false;
        }
        match (&self.w.node(w).kind, &self.r.node(r).kind) {
            (Kind::Array(a), Kind::Array(b)) | (Kind::Map(a), Kind::Map(b)) => {
                self.union_equiv(*a, *b, seen)
            }
            (Kind::Fixed { size: a, .. }, Kind::Fixed { size: b, .. }) => a == b,
            (Kind::Enum { symbols: a, .. }, Kind::Enum { symbols: b, .. }) => a == b,
            (Kind::Union(a), Kind::Union(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| self.union_equiv(*x, *y, seen))
            }
            (Kind::Record { named, fields: a }, Kind::Record { fields: b, .. }) => {
                if let Some(v) = seen.get(&(w, r)) {
                    return *v;
                }
                // Optimistic while in progress, as Java.
                seen.insert((w, r), true);
                let v = a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|(x, y)| {
                        self.aliases.field_name(&named.fullname, &x.name) == y.name
                            && self.union_equiv(x.schema, y.schema, seen)
                    });
                seen.insert((w, r), v);
                v
            }
            _ => true,
        }
    }
}

/// Writer index -> reader index; a writer symbol the reader lacks goes to
/// the reader's default, or stays unmapped: an error only for datums holding it.
fn enum_op(ws: &[String], rs: &[String], default: Option<&str>) -> Op {
    let fallback = default.and_then(|d| rs.iter().position(|s| s == d));
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
        writer_symbols: ws.to_vec(),
        reader_symbols: rs.to_vec(),
        identity,
    }))
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
        Op::ReaderUnion { .. } | Op::Error(_) => false,
    }
}

/// Plain decode of one datum: resolution of a schema against itself, compiled
/// once per schema and cached in it.
pub fn decode_value(schema: &AvroSchema, input: &[u8]) -> Result<Value, DecodeError> {
    schema.plain_resolver()?.resolve_value(input)
}
