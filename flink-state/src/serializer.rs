//! Serializer snapshots, recognised by Java class name. A snapshot's payload
//! has no length prefix, so a class we do not know stops the parse of the
//! header it is in: `header` then looks for where the next state starts.

use crate::avro::AvroSchema;
use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::javaser::{read_object_stream, JavaValue};

const COMPOSITE_MAGIC: i32 = 911_108;
const NESTED_MAGIC: i32 = 1_333_245;
const MAX_DEPTH: usize = 16;

/// A SQL field type, from the Java-serialized LogicalType.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlType {
    /// `LogicalTypeRoot` constant, e.g. VARCHAR, BIGINT, TIMESTAMP_WITH_LOCAL_TIME_ZONE.
    pub root: String,
    pub precision: Option<i64>,
    pub scale: Option<i64>,
}

/// What a serializer snapshot tells us: how to decode the values.
#[derive(Clone, Debug, PartialEq)]
pub enum Serializer {
    String,
    Long,
    Int,
    Short,
    Byte,
    Boolean,
    Float,
    Double,
    Char,
    Bytes,
    VoidNamespace,
    TimeWindow,
    List(Box<Serializer>),
    Map(Box<Serializer>, Box<Serializer>),
    /// StateTtlConfig: an i64 last-access timestamp, then the user value.
    Ttl(Box<Serializer>),
    Timer {
        key: Box<Serializer>,
        namespace: Box<Serializer>,
    },
    Avro(Box<AvroSchema>),
    Tuple(Vec<Serializer>),
    RowData(Vec<SqlType>),
    StringData,
    /// SQL TIMESTAMP(p): i64 millis, and for p > 3 an i32 nano-of-milli.
    TimestampData(i32),
    /// SQL DECIMAL(p, s): compact (p <= 18) as i64 unscaled, else bytes.
    DecimalData {
        precision: i32,
        scale: i32,
    },
    /// A class this reader cannot decode (Kryo, POJO, a user's own...).
    Unknown(String),
}

impl Serializer {
    /// The byte length of every value, when fixed (Flink's `getLength()`),
    /// which decides the ambiguous-composite-key rule.
    pub fn fixed_len(&self) -> Option<usize> {
        match self {
            Serializer::Long | Serializer::Double => Some(8),
            Serializer::Int | Serializer::Float => Some(4),
            Serializer::Short | Serializer::Char => Some(2),
            Serializer::Byte | Serializer::Boolean => Some(1),
            Serializer::VoidNamespace => Some(1),
            Serializer::TimeWindow => Some(16),
            _ => None,
        }
    }

    /// The first class this reader cannot decode, if any, nested included.
    pub fn unknown_class(&self) -> Option<&str> {
        match self {
            Serializer::Unknown(c) => Some(c),
            Serializer::List(e) | Serializer::Ttl(e) => e.unknown_class(),
            Serializer::Map(k, v)
            | Serializer::Timer {
                key: k,
                namespace: v,
            } => k.unknown_class().or_else(|| v.unknown_class()),
            Serializer::Tuple(fs) => fs.iter().find_map(|f| f.unknown_class()),
            _ => None,
        }
    }

    /// A short name for `inspect`.
    pub fn describe(&self) -> String {
        match self {
            Serializer::List(e) => format!("List<{}>", e.describe()),
            Serializer::Map(k, v) => format!("Map<{}, {}>", k.describe(), v.describe()),
            Serializer::Ttl(u) => format!("Ttl<{}>", u.describe()),
            Serializer::Timer { key, namespace } => {
                format!("Timer<{}, {}>", key.describe(), namespace.describe())
            }
            Serializer::Avro(_) => "Avro GenericRecord".into(),
            Serializer::Tuple(fs) => format!(
                "Tuple<{}>",
                fs.iter()
                    .map(|f| f.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Serializer::RowData(ts) => format!(
                "RowData<{}>",
                ts.iter()
                    .map(|t| t.root.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Serializer::Unknown(c) => format!("unknown {c}"),
            other => format!("{other:?}"),
        }
    }
}

/// A top-level snapshot (TypeSerializerSnapshotSerializationUtil): i32 2,
/// then the nested form.
pub fn read_framed(r: &mut Reader) -> Result<Serializer> {
    let at = r.pos();
    let v = r.i32("serializer snapshot proxy version")?;
    if v != 2 {
        return Err(FlinkError::malformed(
            "serializer snapshot",
            at,
            format!("proxy version {v}, expected 2"),
        ));
    }
    read_nested(r, 0)
}

/// UTF class name, i32 version, class-specific payload.
pub fn read_nested(r: &mut Reader, depth: usize) -> Result<Serializer> {
    if depth > MAX_DEPTH {
        return Err(FlinkError::malformed(
            "serializer snapshot",
            r.pos(),
            "nested too deep",
        ));
    }
    let class = r.utf("snapshot class")?;
    let version = r.i32("snapshot version")?;
    let short = class.rsplit('.').next().unwrap_or(&class);
    Ok(match short {
        "StringSerializer$StringSerializerSnapshot" => Serializer::String,
        "LongSerializer$LongSerializerSnapshot" => Serializer::Long,
        "IntSerializer$IntSerializerSnapshot" => Serializer::Int,
        "ShortSerializer$ShortSerializerSnapshot" => Serializer::Short,
        "ByteSerializer$ByteSerializerSnapshot" => Serializer::Byte,
        "BooleanSerializer$BooleanSerializerSnapshot" => Serializer::Boolean,
        "FloatSerializer$FloatSerializerSnapshot" => Serializer::Float,
        "DoubleSerializer$DoubleSerializerSnapshot" => Serializer::Double,
        "CharSerializer$CharSerializerSnapshot" => Serializer::Char,
        "BytePrimitiveArraySerializer$BytePrimitiveArraySerializerSnapshot" => Serializer::Bytes,
        "VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot" => Serializer::VoidNamespace,
        "TimeWindow$Serializer$TimeWindowSerializerSnapshot" => Serializer::TimeWindow,
        "StringDataSerializer$StringDataSerializerSnapshot" => Serializer::StringData,
        "TimestampDataSerializer$TimestampDataSerializerSnapshot" => {
            Serializer::TimestampData(r.i32("timestamp precision")?)
        }
        "DecimalDataSerializer$DecimalSerializerSnapshot"
        | "DecimalDataSerializer$DecimalDataSerializerSnapshot" => {
            let precision = r.i32("decimal precision")?;
            Serializer::DecimalData {
                precision,
                scale: r.i32("decimal scale")?,
            }
        }
        "ListSerializerSnapshot" => composite(r, &class, depth, |mut n| {
            Some(Serializer::List(Box::new(n.pop()?)))
        })?,
        "MapSerializerSnapshot" => composite(r, &class, depth, |mut n| {
            let v = n.pop()?;
            Some(Serializer::Map(Box::new(n.pop()?), Box::new(v)))
        })?,
        "TtlStateFactory$TtlSerializerSnapshot" => composite(r, &class, depth, |mut n| {
            Some(Serializer::Ttl(Box::new(n.pop()?)))
        })?,
        "TimerSerializerSnapshot" => composite(r, &class, depth, |mut n| {
            let namespace = Box::new(n.pop()?);
            Some(Serializer::Timer {
                key: Box::new(n.pop()?),
                namespace,
            })
        })?,
        "TupleSerializerSnapshot" => composite(r, &class, depth, |n| Some(Serializer::Tuple(n)))?,
        "AvroSerializerSnapshot" => read_avro(r, version)?,
        "RowDataSerializer$RowDataSerializerSnapshot" => read_row_data(r, depth)?,
        _ => Serializer::Unknown(class),
    })
}

/// CompositeTypeSerializerSnapshot: magic, outer version, outer payload
/// (empty, or a class name for tuples), then the nested snapshots.
fn composite(
    r: &mut Reader,
    class: &str,
    depth: usize,
    build: impl FnOnce(Vec<Serializer>) -> Option<Serializer>,
) -> Result<Serializer> {
    let at = r.pos();
    if r.i32("composite magic")? != COMPOSITE_MAGIC {
        return Err(FlinkError::malformed(
            "composite snapshot",
            at,
            format!("{class}: bad magic"),
        ));
    }
    r.i32("outer snapshot version")?;
    if r.rest().get(..4) != Some(&NESTED_MAGIC.to_be_bytes()[..]) {
        r.utf("outer snapshot class")?; // TupleSerializerSnapshot's tuple class
    }
    let nested = read_nested_block(r, depth)?;
    build(nested).ok_or_else(|| {
        FlinkError::malformed(
            "composite snapshot",
            at,
            format!("{class}: wrong nested count"),
        )
    })
}

/// NestedSerializersSnapshotDelegate: magic, version 1, count, snapshots.
fn read_nested_block(r: &mut Reader, depth: usize) -> Result<Vec<Serializer>> {
    let at = r.pos();
    if r.i32("nested magic")? != NESTED_MAGIC {
        return Err(FlinkError::malformed("nested snapshots", at, "bad magic"));
    }
    r.i32("nested version")?;
    let n = r.count(6, "nested snapshot count")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(read_nested(r, depth + 1)?);
    }
    Ok(v)
}

/// AvroSerializerSnapshot: v1 UTF schema; v2 UTF type name + UTF schema;
/// v3 the same two as StringValue (schemas may exceed 64 KiB).
fn read_avro(r: &mut Reader, version: i32) -> Result<Serializer> {
    let schema = match version {
        1 => r.utf("avro schema")?,
        2 => {
            r.utf("avro runtime type")?;
            r.utf("avro schema")?
        }
        _ => {
            r.string_value("avro runtime type")?;
            r.string_value("avro schema")?.unwrap_or_default()
        }
    };
    Ok(Serializer::Avro(Box::new(AvroSchema::parse(&schema)?)))
}

/// RowDataSerializerSnapshot: i32 n, n Java-serialized LogicalTypes, then
/// the nested field serializers.
fn read_row_data(r: &mut Reader, depth: usize) -> Result<Serializer> {
    let n = r.count(4, "row field count")?;
    let mut types = Vec::with_capacity(n);
    for _ in 0..n {
        types.push(sql_type(&read_object_stream(r)?));
    }
    read_nested_block(r, depth)?;
    Ok(Serializer::RowData(types))
}

fn sql_type(v: &JavaValue) -> SqlType {
    let int = |name: &str| match v.field(name) {
        Some(JavaValue::Int(i)) => Some(*i),
        _ => None,
    };
    let root = match v.field("typeRoot") {
        Some(JavaValue::Enum { constant, .. }) => constant.clone(),
        _ => v.class().rsplit('.').next().unwrap_or("").to_string(),
    };
    SqlType {
        root,
        precision: int("precision"),
        scale: int("scale"),
    }
}
