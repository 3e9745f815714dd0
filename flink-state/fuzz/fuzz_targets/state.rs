#![no_main]
//! State headers, serializer snapshots, key-group blocks (RocksDB and heap
//! layouts), snappy framing and SQL rows of hostile bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flink_state::fuzzing::headers(data);
    let _ = flink_state::fuzzing::key_group(data);
});
