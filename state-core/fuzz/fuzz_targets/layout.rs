//! The `layout` document of a v2 checkpoint comes from a manifest in an
//! object store: parsing it, and pruning its runs, return errors on
//! garbage, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use state_core::runs::{layout_of, live_runs};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let states = serde_json::json!({ "layout": doc });
    if let Ok(Some(layout)) = layout_of(&states) {
        let _ = live_runs(&layout.runs);
    }
});
