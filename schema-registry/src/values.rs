//! Builds `apache_avro` values shaped like its own decoder's output, so that
//! values we produce round-trip through `encode_value`.

use apache_avro::types::Value;

use crate::schema::Logical;

pub(crate) fn int_value(v: i32, logical: Option<&Logical>) -> Value {
    match logical {
        Some(Logical::Date) => Value::Date(v),
        Some(Logical::TimeMillis) => Value::TimeMillis(v),
        _ => Value::Int(v),
    }
}

pub(crate) fn long_value(v: i64, logical: Option<&Logical>) -> Value {
    match logical {
        Some(Logical::TimeMicros) => Value::TimeMicros(v),
        Some(Logical::TimestampMillis) => Value::TimestampMillis(v),
        Some(Logical::TimestampMicros) => Value::TimestampMicros(v),
        Some(Logical::TimestampNanos) => Value::TimestampNanos(v),
        Some(Logical::LocalTimestampMillis) => Value::LocalTimestampMillis(v),
        Some(Logical::LocalTimestampMicros) => Value::LocalTimestampMicros(v),
        Some(Logical::LocalTimestampNanos) => Value::LocalTimestampNanos(v),
        _ => Value::Long(v),
    }
}

pub(crate) fn string_value(s: String, logical: Option<&Logical>) -> Result<Value, String> {
    match logical {
        Some(Logical::Uuid) => uuid::Uuid::parse_str(&s)
            .map(Value::Uuid)
            .map_err(|e| format!("{s:?} is not a UUID: {e}")),
        _ => Ok(Value::String(s)),
    }
}

pub(crate) fn bytes_value(b: Vec<u8>, logical: Option<&Logical>) -> Value {
    match logical {
        Some(Logical::Decimal { .. }) => Value::Decimal(apache_avro::Decimal::from(b)),
        _ => Value::Bytes(b),
    }
}

pub(crate) fn fixed_value(
    size: usize,
    b: Vec<u8>,
    logical: Option<&Logical>,
) -> Result<Value, String> {
    Ok(match logical {
        Some(Logical::Decimal { .. }) => Value::Decimal(apache_avro::Decimal::from(b)),
        Some(Logical::Uuid) => Value::Uuid(uuid::Uuid::from_slice(&b).map_err(|e| e.to_string())?),
        Some(Logical::Duration) => {
            let a: [u8; 12] = b
                .as_slice()
                .try_into()
                .map_err(|_| "duration needs 12 bytes".to_string())?;
            Value::Duration(apache_avro::Duration::from(a))
        }
        _ => Value::Fixed(size, b),
    })
}
