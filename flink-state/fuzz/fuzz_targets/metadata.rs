#![no_main]
//! `_metadata` of hostile bytes: must return, never panic or over-allocate.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flink_state::fuzzing::metadata(data);
});
