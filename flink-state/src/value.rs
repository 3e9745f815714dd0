//! Decoding one serialized value with the serializer its snapshot names,
//! into JSON. These are the "nested" forms (a List is i32 n + elements);
//! the RocksDB state forms (delimited lists, per-entry maps) are in `entry`.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::json::Json;
use crate::serializer::{Serializer, SqlType};

const MAX_DEPTH: usize = 32;

pub fn decode(s: &Serializer, r: &mut Reader) -> Result<Json> {
    decode_at(s, r, 0)
}

fn decode_at(s: &Serializer, r: &mut Reader, depth: usize) -> Result<Json> {
    if depth > MAX_DEPTH {
        return Err(FlinkError::malformed("value", r.pos(), "nested too deep"));
    }
    Ok(match s {
        Serializer::String => r.string_value("string")?.map_or(Json::Null, Json::Str),
        Serializer::Long => Json::Int(r.i64("long")?),
        Serializer::Int => Json::Int(r.i32("int")? as i64),
        Serializer::Short => Json::Int(r.i16("short")? as i64),
        Serializer::Byte => Json::Int(r.u8("byte")? as i8 as i64),
        Serializer::Boolean => Json::Bool(r.bool("boolean")?),
        Serializer::Float => Json::Float(f32::from_bits(r.u32("float")?) as f64),
        Serializer::Double => Json::Float(f64::from_bits(r.i64("double")? as u64)),
        Serializer::Char => Json::Str(
            char::from_u32(r.u16("char")? as u32)
                .unwrap_or('\u{fffd}')
                .to_string(),
        ),
        Serializer::Bytes => {
            let n = r.count(1, "byte array")?;
            Json::Str(
                r.bytes(n, "byte array")?
                    .iter()
                    .map(|&b| b as char)
                    .collect(),
            )
        }
        Serializer::VoidNamespace => {
            r.u8("void namespace")?;
            Json::str("VoidNamespace")
        }
        Serializer::TimeWindow => {
            let start = r.i64("window start")?;
            Json::obj(vec![
                ("start", Json::Int(start)),
                ("end", Json::Int(r.i64("window end")?)),
            ])
        }
        Serializer::List(e) => {
            let n = r.count(1, "list length")?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_at(e, r, depth + 1)?);
            }
            Json::Arr(items)
        }
        Serializer::Map(k, v) => {
            let n = r.count(2, "map size")?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let key = decode_at(k, r, depth + 1)?;
                let val = if r.bool("map value null flag")? {
                    Json::Null
                } else {
                    decode_at(v, r, depth + 1)?
                };
                entries.push(Json::Arr(vec![key, val]));
            }
            Json::Arr(entries)
        }
        Serializer::Ttl(u) => {
            let ts = r.i64("ttl timestamp")?;
            ttl(decode_at(u, r, depth + 1)?, ts)
        }
        Serializer::Timer { key, namespace } => {
            let ts = r.i64("timer timestamp")? ^ i64::MIN;
            let k = decode_at(key, r, depth + 1)?;
            let ns = decode_at(namespace, r, depth + 1)?;
            Json::obj(vec![
                ("timestamp", Json::Int(ts)),
                ("key", k),
                ("namespace", ns),
            ])
        }
        Serializer::Avro(schema) => schema.decode(r)?,
        Serializer::Tuple(fields) => {
            let mut items = Vec::with_capacity(fields.len());
            for f in fields {
                items.push(decode_at(f, r, depth + 1)?);
            }
            Json::Arr(items)
        }
        Serializer::RowData(types) => {
            let n = r.count(1, "row length")?;
            let at = r.pos();
            row_data(types, r.bytes(n, "row")?).map_err(|e| shift(e, at))?
        }
        Serializer::StringData => {
            let n = r.count(1, "string data")?;
            let at = r.pos();
            let b = r.bytes(n, "string data")?;
            Json::Str(
                String::from_utf8(b.to_vec())
                    .map_err(|_| FlinkError::malformed("string data", at, "invalid UTF-8"))?,
            )
        }
        Serializer::TimestampData(p) => {
            let millis = r.i64("timestamp millis")?;
            if *p > 3 {
                let nanos = r.i32("timestamp nanos")?;
                Json::obj(vec![
                    ("millis", Json::Int(millis)),
                    ("nano_of_milli", Json::Int(nanos as i64)),
                ])
            } else {
                Json::Int(millis)
            }
        }
        Serializer::DecimalData { precision, scale } => {
            if *precision <= 18 {
                decimal(r.i64("decimal")?, *scale as i64)
            } else {
                let n = r.count(1, "decimal bytes")?;
                Json::Str(format!(
                    "<unscaled 0x{}e-{scale}>",
                    r.bytes(n, "decimal bytes")?
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                ))
            }
        }
        Serializer::Unknown(c) => {
            return Err(FlinkError::Unsupported(format!("values of serializer {c}")))
        }
    })
}

/// A TTL value as the tool prints it: the value and its last-access time.
pub fn ttl(value: Json, timestamp: i64) -> Json {
    Json::obj(vec![
        ("value", value),
        ("ttl_timestamp", Json::Int(timestamp)),
    ])
}

fn shift(e: FlinkError, by: usize) -> FlinkError {
    match e {
        FlinkError::Truncated {
            what,
            offset,
            needed,
        } => FlinkError::Truncated {
            what,
            offset: offset + by,
            needed,
        },
        FlinkError::Malformed {
            what,
            offset,
            detail,
        } => FlinkError::Malformed {
            what,
            offset: offset + by,
            detail,
        },
        e => e,
    }
}

const ROW_KINDS: [&str; 4] = ["+I", "-U", "+U", "-D"];

/// BinaryRowData: a header byte (RowKind), a null bitset, one 8-byte
/// little-endian slot per field, then the variable-length part.
pub fn row_data(types: &[SqlType], b: &[u8]) -> Result<Json> {
    let arity = types.len();
    let null_bytes = (arity + 63 + 8) / 64 * 8;
    let kind = b
        .first()
        .map(|&k| ROW_KINDS.get(k as usize).copied().unwrap_or("?"))
        .unwrap_or("?");
    let mut out = vec![("_rowKind".to_string(), Json::str(kind))];
    for (i, t) in types.iter().enumerate() {
        let bit = i + 8;
        let null = b
            .get(bit / 8)
            .is_some_and(|byte| byte & (1 << (bit % 8)) != 0);
        let slot_at = null_bytes + i * 8;
        let v = if null {
            Json::Null
        } else {
            row_field(t, b, slot_at)?
        };
        out.push((format!("f{i}"), v));
    }
    Ok(Json::Obj(out))
}

fn row_field(t: &SqlType, b: &[u8], at: usize) -> Result<Json> {
    let mut r = Reader::at(b, at);
    if r.remaining() < 8 || at > b.len() {
        return Err(FlinkError::Truncated {
            what: "row field slot",
            offset: at,
            needed: 8,
        });
    }
    let slot = r.i64_le("row field")?;
    Ok(match t.root.as_str() {
        "VARCHAR" | "CHAR" => {
            Json::Str(String::from_utf8_lossy(var_bytes(b, at, slot)?).into_owned())
        }
        "BINARY" | "VARBINARY" => {
            Json::Str(var_bytes(b, at, slot)?.iter().map(|&c| c as char).collect())
        }
        "BOOLEAN" => Json::Bool(slot & 0xff != 0),
        "TINYINT" => Json::Int(slot as i8 as i64),
        "SMALLINT" => Json::Int(slot as i16 as i64),
        "INTEGER" | "DATE" | "TIME_WITHOUT_TIME_ZONE" | "INTERVAL_YEAR_MONTH" => {
            Json::Int(slot as i32 as i64)
        }
        "FLOAT" => Json::Float(f32::from_bits(slot as u32) as f64),
        "DOUBLE" => Json::Float(f64::from_bits(slot as u64)),
        "BIGINT" | "INTERVAL_DAY_TIME" => Json::Int(slot),
        // Compact timestamps (precision <= 3) are epoch millis in the slot.
        "TIMESTAMP_WITHOUT_TIME_ZONE" | "TIMESTAMP_WITH_LOCAL_TIME_ZONE"
            if t.precision.unwrap_or(3) <= 3 =>
        {
            Json::Int(slot)
        }
        "DECIMAL" if t.precision.unwrap_or(19) <= 18 => decimal(slot, t.scale.unwrap_or(0)),
        other => Json::str(format!("<unsupported SQL type {other}>")),
    })
}

fn decimal(unscaled: i64, scale: i64) -> Json {
    if scale <= 0 {
        return Json::Int(unscaled);
    }
    let s = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{s:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Json::Str(format!(
        "{}{int}.{frac}",
        if unscaled < 0 { "-" } else { "" }
    ))
}

/// A variable-length field: inline in the slot when bit 63 is set (length
/// in bits 56-62), else offset<<32 | length into the row.
fn var_bytes(b: &[u8], at: usize, slot: i64) -> Result<&[u8]> {
    let slot = slot as u64;
    let (start, len) = if slot & (1 << 63) != 0 {
        (at, ((slot >> 56) & 0x7f) as usize)
    } else {
        ((slot >> 32) as usize, (slot & 0xffff_ffff) as usize)
    };
    start
        .checked_add(len)
        .filter(|_| len <= 8 || slot & (1 << 63) == 0)
        .and_then(|e| b.get(start..e))
        .ok_or_else(|| {
            FlinkError::malformed("row variable field", at, format!("{len} bytes at {start}"))
        })
}
