//! `_metadata.json` parsing and validation: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = state_core::savepoint::fuzzing::parse_metadata(data);
});
