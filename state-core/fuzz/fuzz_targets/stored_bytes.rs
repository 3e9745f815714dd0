//! Keys, value envelopes and list values come from disk or a restored
//! checkpoint: every decoder returns an error on garbage, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use state_core::{envelope, keys};

fuzz_target!(|data: &[u8]| {
    let _ = keys::decode(data);
    let _ = keys::decode_ordered_i64(data);
    let _ = envelope::Envelope::parse(data);
    for element in envelope::list_elements(data) {
        let _ = element;
    }
});
