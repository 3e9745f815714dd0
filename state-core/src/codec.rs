//! Typed access: a codec turns a Rust value into Avro binary under the
//! state's current schema and back. [`SerdeAvro`] works for any serde type;
//! hot paths implement [`ValueCodec`] by hand (see the join operator).

use schema_registry::AvroSchema;
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;

pub trait ValueCodec: Send + Sync {
    type Value;
    /// Appends the Avro binary encoding of `value` to `out`.
    fn encode(&self, value: &Self::Value, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes Avro binary written under the current schema.
    fn decode(&self, avro: &[u8]) -> Result<Self::Value, String>;
}

/// Any serde type, through `apache-avro`'s generic value model.
pub struct SerdeAvro<T> {
    schema: AvroSchema,
    _marker: PhantomData<fn() -> T>,
}

impl<T> SerdeAvro<T> {
    pub fn new(schema: AvroSchema) -> Self {
        SerdeAvro {
            schema,
            _marker: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> ValueCodec for SerdeAvro<T> {
    type Value = T;

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let v = apache_avro::to_value(value).map_err(|e| e.to_string())?;
        let v = v.resolve(self.schema.inner()).map_err(|e| e.to_string())?;
        let bytes = schema_registry::encode_value(&self.schema, &v).map_err(|e| e.to_string())?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, avro: &[u8]) -> Result<T, String> {
        let v = schema_registry::decode_value(&self.schema, avro).map_err(|e| e.to_string())?;
        apache_avro::from_value(&v).map_err(|e| e.to_string())
    }
}

/// Untyped access for tools: values as `apache_avro` values.
pub struct AvroValue {
    schema: AvroSchema,
}

impl AvroValue {
    pub fn new(schema: AvroSchema) -> Self {
        AvroValue { schema }
    }
}

impl ValueCodec for AvroValue {
    type Value = apache_avro::types::Value;

    fn encode(&self, value: &Self::Value, out: &mut Vec<u8>) -> Result<(), String> {
        let bytes =
            schema_registry::encode_value(&self.schema, value).map_err(|e| e.to_string())?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, avro: &[u8]) -> Result<Self::Value, String> {
        schema_registry::decode_value(&self.schema, avro).map_err(|e| e.to_string())
    }
}

/// Raw Avro binary under the current schema, unchecked: for tools that move
/// bytes (savepoints, migration) without building values.
pub struct RawBytes;

impl ValueCodec for RawBytes {
    type Value = Vec<u8>;

    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, avro: &[u8]) -> Result<Vec<u8>, String> {
        Ok(avro.to_vec())
    }
}
