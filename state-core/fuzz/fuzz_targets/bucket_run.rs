//! A bucket run comes from an object store (a checkpoint's shared file):
//! opening it, scanning it and probing it return errors on garbage, never
//! panic and never allocate past what the file's length allows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use state_core::bucket::run::{decode_block, RunFile};

fuzz_target!(|data: &[u8]| {
    let _ = decode_block(data);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("fuzz.run");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(run) = RunFile::open(&path, 0) {
        let _ = run.for_each(|_| Ok(()));
        let mut buf = Vec::new();
        let _ = run.probe(0, 0, b"key", (i64::MIN, i64::MAX), &mut buf, |_| Ok(()));
    }
});
