#![no_main]
//! Schema parsing and compatibility over arbitrary JSON text.

use libfuzzer_sys::fuzz_target;
use schema_registry::{check_compatibility, AvroSchema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = AvroSchema::parse(text) {
        let _ = s.canonical_form();
        let _ = check_compatibility(&s, &s);
    }
});
