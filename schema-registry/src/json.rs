//! Values in the Avro JSON encoding of the specification: unions as
//! `{"branch": value}` (null as plain `null`), bytes and fixed as strings whose
//! code points are the bytes, logical values as their underlying type.
//! Non-finite floats, which JSON cannot hold, become the strings
//! `"NaN"`, `"Infinity"`, `"-Infinity"` (what Jackson-based Java tools print).

use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

use crate::schema::{AvroSchema, Kind, NodeId, Tree};

pub fn value_to_json(schema: &AvroSchema, value: &Value) -> Json {
    convert(&schema.tree, schema.tree.root, value)
}

fn code_points(b: &[u8]) -> Json {
    Json::String(b.iter().map(|c| char::from(*c)).collect())
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn convert(tree: &Tree, id: NodeId, value: &Value) -> Json {
    if let Kind::Union(branches) = &tree.node(id).kind {
        let (i, inner) = match value {
            Value::Union(i, inner) => (*i as usize, inner.as_ref()),
            other => (guess_branch(tree, branches, other), other),
        };
        let Some(b) = branches.get(i) else {
            return Json::Null;
        };
        if matches!(tree.node(*b).kind, Kind::Null) {
            return Json::Null;
        }
        let mut m = Map::new();
        m.insert(tree.branch_name(*b), convert(tree, *b, inner));
        return Json::Object(m);
    }
    match (value, &tree.node(id).kind) {
        (Value::Null, _) => Json::Null,
        (Value::Boolean(b), _) => Json::Bool(*b),
        (Value::Int(v) | Value::Date(v) | Value::TimeMillis(v), _) => Json::from(*v),
        (
            Value::Long(v)
            | Value::TimeMicros(v)
            | Value::TimestampMillis(v)
            | Value::TimestampMicros(v)
            | Value::TimestampNanos(v)
            | Value::LocalTimestampMillis(v)
            | Value::LocalTimestampMicros(v)
            | Value::LocalTimestampNanos(v),
            _,
        ) => Json::from(*v),
        (Value::Float(f), _) => float(f64::from(*f)),
        (Value::Double(f), _) => float(*f),
        (Value::Bytes(b) | Value::Fixed(_, b), _) => code_points(b),
        (Value::String(s), _) => Json::String(s.clone()),
        (Value::Enum(_, s), _) => Json::String(s.clone()),
        (Value::Uuid(u), Kind::Fixed { .. }) => code_points(u.as_bytes()),
        (Value::Uuid(u), _) => Json::String(u.to_string()),
        (Value::Decimal(d), _) => match <Vec<u8>>::try_from(d) {
            Ok(b) => code_points(&b),
            Err(_) => Json::Null,
        },
        (Value::Duration(d), _) => {
            let b: [u8; 12] = (*d).into();
            code_points(&b)
        }
        (Value::BigDecimal(d), _) => Json::String(d.to_string()),
        (Value::Array(items), Kind::Array(item)) => {
            Json::Array(items.iter().map(|v| convert(tree, *item, v)).collect())
        }
        (Value::Map(entries), Kind::Map(vt)) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), convert(tree, *vt, &entries[k])))
                    .collect(),
            )
        }
        (
            Value::Record(fields),
            Kind::Record {
                fields: schema_fields,
                ..
            },
        ) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| {
                    let j = match schema_fields.iter().find(|f| f.name == *name) {
                        Some(f) => convert(tree, f.schema, v),
                        None => Json::Null,
                    };
                    (name.clone(), j)
                })
                .collect(),
        ),
        (Value::Union(_, inner), _) => convert(tree, id, inner),
        // Value shape disagrees with the schema: render it without schema help.
        (Value::Array(items), _) => {
            Json::Array(items.iter().map(|v| convert(tree, id, v)).collect())
        }
        (Value::Map(_) | Value::Record(_), _) => Json::Null,
    }
}

fn guess_branch(tree: &Tree, branches: &[NodeId], value: &Value) -> usize {
    let wanted = match value {
        Value::Null => "NULL",
        Value::Boolean(_) => "BOOLEAN",
        Value::Int(_) | Value::Date(_) | Value::TimeMillis(_) => "INT",
        Value::Float(_) => "FLOAT",
        Value::Double(_) => "DOUBLE",
        Value::Bytes(_) | Value::Decimal(_) | Value::BigDecimal(_) => "BYTES",
        Value::String(_) | Value::Uuid(_) => "STRING",
        Value::Fixed(..) | Value::Duration(_) => "FIXED",
        Value::Enum(..) => "ENUM",
        Value::Array(_) => "ARRAY",
        Value::Map(_) => "MAP",
        Value::Record(_) => "RECORD",
        Value::Union(i, _) => return *i as usize,
        _ => "LONG",
    };
    branches
        .iter()
        .position(|b| tree.type_name(*b) == wanted)
        .unwrap_or(usize::MAX)
}
