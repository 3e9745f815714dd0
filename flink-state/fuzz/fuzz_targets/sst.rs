#![no_main]
//! RocksDB SST files of hostile bytes (native snapshots).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flink_state::fuzzing::sst(data);
});
