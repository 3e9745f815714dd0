#![no_main]
//! Every decoder over hostile bytes: must return, never panic or over-allocate.

use libfuzzer_sys::fuzz_target;
use schema_registry::{decode_value, AvroSchema, Resolver};

const WRITER: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"a","type":"int"},{"name":"b","type":["null","string","long"]},
  {"name":"c","type":{"type":"array","items":"null"}},
  {"name":"d","type":{"type":"map","values":{"type":"fixed","name":"F","size":3}}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
  {"name":"f","type":"bytes"},{"name":"next","type":["null","R"]}]}"#;
const READER: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"next","type":["null","R"]},{"name":"a","type":"double"},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["Y","Z"],"default":"Z"}},
  {"name":"f","type":"string"},{"name":"z","type":"int","default":1}]}"#;

/// Incompatible with WRITER: resolved datum by datum (error ops inside).
const PARTIAL: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"b","type":["null","long"]},{"name":"c","type":{"type":"array","items":"int"}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["Y"]}},
  {"name":"next","type":["null","R"]}]}"#;

fuzz_target!(|data: &[u8]| {
    let (Ok(w), Ok(r)) = (AvroSchema::parse(WRITER), AvroSchema::parse(READER)) else { return };
    let _ = decode_value(&w, data);
    if let Ok(res) = Resolver::compile(&w, &r) {
        let _ = res.resolve_value(data);
        let mut out = Vec::new();
        let _ = res.resolve_bytes(data, &mut out);
    }
    if let Ok(p) = AvroSchema::parse(PARTIAL) {
        if let Ok(res) = Resolver::compile_per_datum(&w, &p) {
            let _ = res.resolve_value(data);
            let mut out = Vec::new();
            let _ = res.resolve_bytes(data, &mut out);
        }
    }
});
