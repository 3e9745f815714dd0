//! Entry files (Avro container, zstd blocks, entry records, list values):
//! errors, never panics. The first byte picks list or map state.
#![no_main]
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = r#"{"type":"record","name":"V","fields":[{"name":"a","type":"long"},{"name":"s","type":["null","string"]}]}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = state_core::savepoint::fuzzing::decode_entries(SCHEMA, mode & 1 == 1, rest);
});
