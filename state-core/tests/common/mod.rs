//! What the checkpoint tests share: a record schema with its Rust type,
//! the states declared with it, and a store's contents to compare.
// Each test file uses part of it.
#![allow(dead_code)]

use state_core::*;
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = r#"{"type":"record","name":"V","fields":[{"name":"n","type":"long"},{"name":"s","type":"string"}]}"#;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct V {
    pub n: i64,
    pub s: String,
}

/// A value state `v`, a list state `l` and a map state `m` of `V`.
pub fn descriptors() -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::value("v", SCHEMA),
        StateDescriptor::list("l", SCHEMA),
        StateDescriptor::map("m", SCHEMA),
    ]
}

pub type Entries = BTreeMap<(String, Vec<u8>, Vec<u8>), Vec<u8>>;

/// Every raw entry of `states`, by state, key and user key.
pub fn entries(store: &StateStore, states: &[&str]) -> Entries {
    let mut out = BTreeMap::new();
    for &state in states {
        for e in store.scan(state, store.key_groups()).unwrap() {
            let e = e.unwrap();
            out.insert((state.to_string(), e.key, e.user_key), e.value);
        }
    }
    out
}

pub type Contents = (Entries, Vec<Timer>);

/// The entries of the states of [`descriptors`], and every timer.
pub fn contents(store: &StateStore) -> Contents {
    (
        entries(store, &["v", "l", "m"]),
        store.timers().all().unwrap(),
    )
}

/// Copies a folder tree (fixtures are never opened in place).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
