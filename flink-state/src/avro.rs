//! Avro values as Flink's AvroSerializer writes them. It drives Avro's
//! DatumWriter with its own DataOutputEncoder, which is NOT Avro's binary
//! encoding: int/long/float/double are fixed-width big-endian, strings and
//! bytes an i32 length, enum and union indexes an i32, arrays and maps in
//! blocks of varint counts. Values are printed as Avro JSON.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::json::Json;
use serde_json::Value;
use std::collections::HashMap;

/// Deeper schemas or values are refused (hostile recursion).
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum AvroType {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record {
        name: String,
        fields: Vec<(String, usize)>,
    },
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Fixed {
        name: String,
        size: usize,
    },
}

/// A parsed schema: types in an arena so that named types can recur.
#[derive(Clone, Debug, PartialEq)]
pub struct AvroSchema {
    pub json: String,
    types: Vec<AvroType>,
    root: usize,
}

struct Builder {
    types: Vec<AvroType>,
    named: HashMap<String, usize>,
}

impl AvroSchema {
    pub fn parse(json: &str) -> Result<AvroSchema> {
        let v: Value = serde_json::from_str(json).map_err(|e| FlinkError::Schema(e.to_string()))?;
        let mut b = Builder {
            types: Vec::new(),
            named: HashMap::new(),
        };
        let root = b.build(&v, "", 0)?;
        Ok(AvroSchema {
            json: json.to_string(),
            types: b.types,
            root,
        })
    }

    /// Decodes one value written by Flink's AvroSerializer.
    pub fn decode(&self, r: &mut Reader) -> Result<Json> {
        self.value(self.root, r, 0)
    }

    fn ty(&self, i: usize) -> Result<&AvroType> {
        self.types
            .get(i)
            .ok_or_else(|| FlinkError::Schema(format!("type #{i} missing")))
    }

    fn value(&self, t: usize, r: &mut Reader, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            return Err(FlinkError::malformed(
                "avro value",
                r.pos(),
                "nested too deep",
            ));
        }
        Ok(match self.ty(t)? {
            AvroType::Null => Json::Null,
            AvroType::Boolean => Json::Bool(r.bool("avro boolean")?),
            AvroType::Int => Json::Int(r.i32("avro int")? as i64),
            AvroType::Long => Json::Int(r.i64("avro long")?),
            AvroType::Float => Json::Float(f32::from_bits(r.u32("avro float")?) as f64),
            AvroType::Double => Json::Float(f64::from_bits(r.i64("avro double")? as u64)),
            AvroType::String => Json::Str(utf8(r, "avro string")?),
            AvroType::Bytes => {
                let n = r.count(1, "avro bytes")?;
                Json::Str(latin1(r.bytes(n, "avro bytes")?))
            }
            AvroType::Fixed { size, .. } => Json::Str(latin1(r.bytes(*size, "avro fixed")?)),
            AvroType::Enum { symbols, .. } => {
                let at = r.pos();
                let i = r.i32("avro enum index")?;
                let s = usize::try_from(i).ok().and_then(|i| symbols.get(i));
                Json::Str(
                    s.ok_or_else(|| FlinkError::malformed("avro enum", at, format!("index {i}")))?
                        .clone(),
                )
            }
            AvroType::Record { fields, .. } => {
                let mut out = Vec::with_capacity(fields.len());
                for (name, ft) in fields {
                    out.push((name.clone(), self.value(*ft, r, depth + 1)?));
                }
                Json::Obj(out)
            }
            AvroType::Array(item) => {
                let mut items = Vec::new();
                self.blocks(r, |r| {
                    items.push(self.value(*item, r, depth + 1)?);
                    Ok(())
                })?;
                Json::Arr(items)
            }
            AvroType::Map(vt) => {
                let mut entries = Vec::new();
                self.blocks(r, |r| {
                    let k = utf8(r, "avro map key")?;
                    entries.push((k, self.value(*vt, r, depth + 1)?));
                    Ok(())
                })?;
                Json::Obj(entries)
            }
            AvroType::Union(branches) => self.union(branches, r, depth)?,
        })
    }

    /// Avro JSON of a union: null as null, any other branch as
    /// `{"<type name>": value}`.
    fn union(&self, branches: &[usize], r: &mut Reader, depth: usize) -> Result<Json> {
        let at = r.pos();
        let i = r.i32("avro union index")?;
        let b = usize::try_from(i).ok().and_then(|i| branches.get(i));
        let b = *b.ok_or_else(|| FlinkError::malformed("avro union", at, format!("branch {i}")))?;
        let v = self.value(b, r, depth + 1)?;
        Ok(match self.ty(b)? {
            AvroType::Null => Json::Null,
            t => Json::Obj(vec![(type_name(t), v)]),
        })
    }

    /// Array and map items come in blocks: a varint count > 0 starts a
    /// block, 0 ends the list. Each item takes at least one byte.
    fn blocks(
        &self,
        r: &mut Reader,
        mut item: impl FnMut(&mut Reader) -> Result<()>,
    ) -> Result<()> {
        loop {
            let at = r.pos();
            let n = r.varint("avro block count")? as usize;
            if n == 0 {
                return Ok(());
            }
            r.check_count(n as i64, 1, at, "avro block count")?;
            for _ in 0..n {
                item(r)?;
            }
        }
    }
}

/// Avro binary encoding (the standard one), for transcoding.
pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

impl AvroSchema {
    /// Rewrites one value from Flink's encoding into standard Avro binary
    /// under the same schema (what Avro tools and this toolkit read).
    pub fn transcode(&self, r: &mut Reader, out: &mut Vec<u8>) -> Result<()> {
        self.transcode_at(self.root, r, out, 0)
    }

    fn transcode_at(
        &self,
        t: usize,
        r: &mut Reader,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(FlinkError::malformed(
                "avro value",
                r.pos(),
                "nested too deep",
            ));
        }
        match self.ty(t)? {
            AvroType::Null => {}
            AvroType::Boolean => out.push(r.bool("avro boolean")? as u8),
            AvroType::Int => put_long(out, r.i32("avro int")? as i64),
            AvroType::Long => put_long(out, r.i64("avro long")?),
            AvroType::Float => out.extend(f32::from_bits(r.u32("avro float")?).to_le_bytes()),
            AvroType::Double => {
                out.extend(f64::from_bits(r.i64("avro double")? as u64).to_le_bytes())
            }
            AvroType::String | AvroType::Bytes => {
                let n = r.count(1, "avro bytes")?;
                put_long(out, n as i64);
                out.extend_from_slice(r.bytes(n, "avro bytes")?);
            }
            AvroType::Fixed { size, .. } => out.extend_from_slice(r.bytes(*size, "avro fixed")?),
            AvroType::Enum { .. } => put_long(out, r.i32("avro enum index")? as i64),
            AvroType::Record { fields, .. } => {
                for (_, ft) in fields {
                    self.transcode_at(*ft, r, out, depth + 1)?;
                }
            }
            AvroType::Array(item) => {
                self.transcode_blocks(r, out, |r, out| self.transcode_at(*item, r, out, depth + 1))?
            }
            AvroType::Map(vt) => self.transcode_blocks(r, out, |r, out| {
                let n = r.count(1, "avro map key")?;
                put_long(out, n as i64);
                out.extend_from_slice(r.bytes(n, "avro map key")?);
                self.transcode_at(*vt, r, out, depth + 1)
            })?,
            AvroType::Union(branches) => {
                let at = r.pos();
                let i = r.i32("avro union index")?;
                let b = usize::try_from(i).ok().and_then(|i| branches.get(i));
                let b = *b.ok_or_else(|| {
                    FlinkError::malformed("avro union", at, format!("branch {i}"))
                })?;
                put_long(out, i as i64);
                self.transcode_at(b, r, out, depth + 1)?;
            }
        }
        Ok(())
    }

    fn transcode_blocks(
        &self,
        r: &mut Reader,
        out: &mut Vec<u8>,
        mut item: impl FnMut(&mut Reader, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        loop {
            let at = r.pos();
            let n = r.varint("avro block count")? as usize;
            put_long(out, n as i64);
            if n == 0 {
                return Ok(());
            }
            r.check_count(n as i64, 1, at, "avro block count")?;
            for _ in 0..n {
                item(r, out)?;
            }
        }
    }
}

fn type_name(t: &AvroType) -> String {
    match t {
        AvroType::Null => "null".into(),
        AvroType::Boolean => "boolean".into(),
        AvroType::Int => "int".into(),
        AvroType::Long => "long".into(),
        AvroType::Float => "float".into(),
        AvroType::Double => "double".into(),
        AvroType::Bytes => "bytes".into(),
        AvroType::String => "string".into(),
        AvroType::Array(_) => "array".into(),
        AvroType::Map(_) => "map".into(),
        AvroType::Union(_) => "union".into(),
        AvroType::Record { name, .. }
        | AvroType::Enum { name, .. }
        | AvroType::Fixed { name, .. } => name.clone(),
    }
}

fn utf8(r: &mut Reader, what: &'static str) -> Result<String> {
    let n = r.count(1, what)?;
    let at = r.pos();
    let b = r.bytes(n, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| FlinkError::malformed(what, at, "invalid UTF-8"))
}

/// Avro JSON writes bytes as a string of code points 0-255.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

impl Builder {
    fn push(&mut self, t: AvroType) -> usize {
        self.types.push(t);
        self.types.len() - 1
    }

    fn build(&mut self, v: &Value, ns: &str, depth: usize) -> Result<usize> {
        if depth > MAX_DEPTH {
            return Err(FlinkError::Schema("schema nested too deep".into()));
        }
        match v {
            Value::String(s) => self.named_or_primitive(s, ns),
            Value::Array(branches) => {
                let mut b = Vec::with_capacity(branches.len());
                for br in branches {
                    b.push(self.build(br, ns, depth + 1)?);
                }
                Ok(self.push(AvroType::Union(b)))
            }
            Value::Object(o) => {
                let ty = o
                    .get("type")
                    .ok_or_else(|| FlinkError::Schema("object without \"type\"".into()))?;
                match ty.as_str() {
                    Some("record") | Some("error") => self.record(o, ns, depth),
                    Some("enum") => {
                        let symbols = o
                            .get("symbols")
                            .and_then(Value::as_array)
                            .ok_or_else(|| FlinkError::Schema("enum without symbols".into()))?;
                        let symbols = symbols
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect();
                        let name = full_name(o, ns)?;
                        let i = self.push(AvroType::Enum {
                            name: name.clone(),
                            symbols,
                        });
                        self.named.insert(name, i);
                        Ok(i)
                    }
                    Some("fixed") => {
                        let size = o
                            .get("size")
                            .and_then(Value::as_u64)
                            .ok_or_else(|| FlinkError::Schema("fixed without size".into()))?;
                        let name = full_name(o, ns)?;
                        let i = self.push(AvroType::Fixed {
                            name: name.clone(),
                            size: size as usize,
                        });
                        self.named.insert(name, i);
                        Ok(i)
                    }
                    Some("array") => {
                        let items = o
                            .get("items")
                            .ok_or_else(|| FlinkError::Schema("array without items".into()))?;
                        let it = self.build(items, ns, depth + 1)?;
                        Ok(self.push(AvroType::Array(it)))
                    }
                    Some("map") => {
                        let values = o
                            .get("values")
                            .ok_or_else(|| FlinkError::Schema("map without values".into()))?;
                        let vt = self.build(values, ns, depth + 1)?;
                        Ok(self.push(AvroType::Map(vt)))
                    }
                    // Logical types and wrapped primitives: the underlying type decides.
                    _ => self.build(ty, ns, depth + 1),
                }
            }
            _ => Err(FlinkError::Schema(format!("not a schema: {v}"))),
        }
    }

    fn named_or_primitive(&mut self, s: &str, ns: &str) -> Result<usize> {
        let prim = match s {
            "null" => AvroType::Null,
            "boolean" => AvroType::Boolean,
            "int" => AvroType::Int,
            "long" => AvroType::Long,
            "float" => AvroType::Float,
            "double" => AvroType::Double,
            "bytes" => AvroType::Bytes,
            "string" => AvroType::String,
            name => {
                let qualified = if name.contains('.') || ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}.{name}")
                };
                return self
                    .named
                    .get(&qualified)
                    .or_else(|| self.named.get(name))
                    .copied()
                    .ok_or_else(|| FlinkError::Schema(format!("unknown type {name:?}")));
            }
        };
        Ok(self.push(prim))
    }

    fn record(
        &mut self,
        o: &serde_json::Map<String, Value>,
        ns: &str,
        depth: usize,
    ) -> Result<usize> {
        let name = full_name(o, ns)?;
        let own_ns = name
            .rsplit_once('.')
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        // Registered before its fields so that a field can refer to it.
        let i = self.push(AvroType::Record {
            name: name.clone(),
            fields: Vec::new(),
        });
        self.named.insert(name.clone(), i);
        let fs = o
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| FlinkError::Schema(format!("record {name} without fields")))?;
        let mut fields = Vec::with_capacity(fs.len());
        for f in fs {
            let fname = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| FlinkError::Schema("field without name".into()))?;
            let ft = f
                .get("type")
                .ok_or_else(|| FlinkError::Schema(format!("field {fname} without type")))?;
            fields.push((fname.to_string(), self.build(ft, &own_ns, depth + 1)?));
        }
        if let Some(AvroType::Record { fields: slot, .. }) = self.types.get_mut(i) {
            *slot = fields;
        }
        Ok(i)
    }
}

fn full_name(o: &serde_json::Map<String, Value>, ns: &str) -> Result<String> {
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| FlinkError::Schema("named type without name".into()))?;
    if name.contains('.') {
        return Ok(name.to_string());
    }
    let ns = o.get("namespace").and_then(Value::as_str).unwrap_or(ns);
    Ok(if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}.{name}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flinks_encoding_not_avro_binary() {
        let s = AvroSchema::parse(
            r#"{"type":"record","name":"I","namespace":"fx","fields":[
            {"name":"id","type":"string"},{"name":"ts","type":"long"},
            {"name":"tags","type":{"type":"array","items":"int"}},
            {"name":"u","type":["null","string"]}]}"#,
        )
        .unwrap();
        let mut b = vec![0, 0, 0, 2, b'a', b'b'];
        b.extend(1_700_000_000_000i64.to_be_bytes());
        b.extend([2, 0, 0, 0, 7, 0, 0, 0, 8, 0]); // one block of two ints, end
        b.extend([0, 0, 0, 1, 0, 0, 0, 1, b'x']); // union branch 1: "x"
        let v = s.decode(&mut Reader::new(&b)).unwrap();
        assert_eq!(
            v.to_line(),
            r#"{"id":"ab","ts":1700000000000,"tags":[7,8],"u":{"string":"x"}}"#
        );
    }

    #[test]
    fn recursive_record_is_bounded() {
        let s = AvroSchema::parse(
            r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
        )
        .unwrap();
        let b: Vec<u8> = std::iter::repeat_n([0u8, 0, 0, 1], 200).flatten().collect();
        assert!(s.decode(&mut Reader::new(&b)).is_err());
    }
}
