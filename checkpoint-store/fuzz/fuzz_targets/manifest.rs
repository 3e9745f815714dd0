//! A `_manifest` object read from a store is untrusted: parsing and
//! validating it (format version, names leaving the job prefix, sizes) must
//! return an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = checkpoint_store::Record::parse(data, "fuzz/chk-1/_manifest", 1) {
        if let checkpoint_store::Record::Checkpoint(m) = record {
            let _ = m.validate("fuzz/chk-1/_manifest");
        }
    }
});
