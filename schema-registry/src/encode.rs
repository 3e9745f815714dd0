//! Encoding values with `apache_avro`, whose binary encoder is right.

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::error::EncodeError;
use crate::schema::AvroSchema;

/// Encodes `value` as one Avro binary datum of `schema` (validated first).
pub fn encode_value(schema: &AvroSchema, value: &Value) -> Result<Vec<u8>, EncodeError> {
    let writer = GenericDatumWriter::builder(schema.inner())
        .build()
        .map_err(|e| EncodeError::Avro(e.to_string()))?;
    let mut out = Vec::new();
    writer
        .write_value_ref(&mut out, value)
        .map_err(|e| EncodeError::Avro(e.to_string()))?;
    Ok(out)
}
