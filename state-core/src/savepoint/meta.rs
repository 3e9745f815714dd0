//! `_metadata.json`: what a savepoint holds (format version 1,
//! docs/savepoint-format.md). Written last; the savepoint exists iff it does.

use super::error::{Result, SavepointError};
use crate::descriptor::{StateDescriptor, StateKind};
use serde::{Deserialize, Serialize};

pub const SAVEPOINT_FORMAT_VERSION: u32 = 1;
pub const METADATA_NAME: &str = "_metadata.json";
pub const TIMERS_FILE: &str = "timers.avro";

/// Where a savepoint's content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceInfo {
    /// `checkpoint`, `savepoint` or `store`.
    pub kind: String,
    /// Job URL, savepoint URL or local path (never with credentials).
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_id: Option<u64>,
    /// The operation that wrote this savepoint: create, migrate, compact, rescale.
    pub operation: String,
}

impl SourceInfo {
    pub fn checkpoint(job: &str, id: u64) -> Self {
        SourceInfo {
            kind: "checkpoint".into(),
            location: redact(job),
            checkpoint_id: Some(id),
            operation: "create".into(),
        }
    }

    pub fn store(path: &str) -> Self {
        SourceInfo {
            kind: "store".into(),
            location: path.into(),
            checkpoint_id: None,
            operation: "create".into(),
        }
    }

    pub fn savepoint(url: &str, operation: &str) -> Self {
        SourceInfo {
            kind: "savepoint".into(),
            location: redact(url),
            checkpoint_id: None,
            operation: operation.into(),
        }
    }
}

/// Drops a `user:password@` part of a URL.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_string(),
    }
}

/// One data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Relative to the savepoint prefix.
    pub path: String,
    /// Inclusive key groups of the entries it holds.
    pub key_group_range: [u16; 2],
    pub entries: u64,
    pub size: u64,
    /// xxh3-128 of the file bytes, 32 lowercase hex digits.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSection {
    pub descriptor: StateDescriptor,
    /// Schema every value in the files is written with (Avro JSON).
    pub schema: String,
    /// The state's schema history at the source, for provenance.
    pub schema_history: Vec<String>,
    pub entries: u64,
    /// Sum of the files' sizes.
    pub bytes: u64,
    /// Entries with an expiry (any element, for lists).
    pub entries_with_ttl: u64,
    /// Entries per key group, index 0 = `key_group_range[0]`.
    pub key_group_entries: Vec<u64>,
    /// In key-group order, ranges disjoint.
    pub files: Vec<FileMeta>,
}

impl StateSection {
    pub fn name(&self) -> &str {
        &self.descriptor.name
    }

    pub fn kind(&self) -> StateKind {
        self.descriptor.kind
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimersSection {
    pub count: u64,
    pub file: FileMeta,
}

/// Instance ranges a savepoint's files were split along (`rescale`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub parallelism: u16,
    pub ranges: Vec<[u16; 2]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointMeta {
    pub format_version: u32,
    pub created_ms: i64,
    pub source: SourceInfo,
    pub max_parallelism: u16,
    pub key_group_range: [u16; 2],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    pub states: Vec<StateSection>,
    pub timers: TimersSection,
    /// The checkpoint's caller metadata (source offsets, watermarks, sinks), as is.
    pub user: serde_json::Value,
}

impl SavepointMeta {
    pub fn state(&self, name: &str) -> Result<&StateSection> {
        self.states
            .iter()
            .find(|s| s.descriptor.name == name)
            .ok_or_else(|| SavepointError::UnknownState {
                state: name.to_string(),
                known: self
                    .states
                    .iter()
                    .map(|s| s.descriptor.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Plain structs of strings, numbers and JSON values always serialize.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and validates metadata read from `file`.
    pub fn parse(bytes: &[u8], file: &str) -> Result<SavepointMeta> {
        let corrupt = |r: String| SavepointError::corrupt(file, r);
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("missing or non-integer format_version".into()))?;
        if version != u64::from(SAVEPOINT_FORMAT_VERSION) {
            return Err(SavepointError::UnknownFormatVersion {
                file: file.to_string(),
                found: version,
                supported: SAVEPOINT_FORMAT_VERSION,
            });
        }
        let meta: SavepointMeta =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        meta.validate().map_err(corrupt)?;
        Ok(meta)
    }

    /// Everything a reader relies on before it touches a data file.
    fn validate(&self) -> std::result::Result<(), String> {
        let [lo, hi] = self.key_group_range;
        if self.max_parallelism == 0 || lo > hi || hi >= self.max_parallelism {
            return Err(format!(
                "key group range [{lo}, {hi}] invalid for max parallelism {}",
                self.max_parallelism
            ));
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.states {
            let name = &s.descriptor.name;
            if name.is_empty() || name.starts_with("__") || name.contains(['/', ':', '\\']) {
                return Err(format!("invalid state name '{name}'"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("state '{name}' listed twice"));
            }
            if s.key_group_entries.len() != usize::from(hi - lo) + 1 {
                return Err(format!(
                    "state '{name}': histogram has {} key groups, range has {}",
                    s.key_group_entries.len(),
                    usize::from(hi - lo) + 1
                ));
            }
            let mut prev_end: Option<u16> = None;
            let mut entries = 0u64;
            let mut bytes = 0u64;
            for f in &s.files {
                check_file(f, &format!("states/{name}/"), [lo, hi])?;
                if prev_end.is_some_and(|p| f.key_group_range[0] <= p) {
                    return Err(format!(
                        "state '{name}': file {} overlaps or is out of order",
                        f.path
                    ));
                }
                prev_end = Some(f.key_group_range[1]);
                entries = entries.saturating_add(f.entries);
                bytes = bytes.saturating_add(f.size);
            }
            if entries != s.entries || bytes != s.bytes {
                return Err(format!(
                    "state '{name}': totals ({} entries, {} bytes) differ from its files' ({entries}, {bytes})",
                    s.entries, s.bytes
                ));
            }
            let hist: u64 = s
                .key_group_entries
                .iter()
                .fold(0u64, |a, b| a.saturating_add(*b));
            if hist != s.entries {
                return Err(format!(
                    "state '{name}': histogram sums to {hist}, state has {} entries",
                    s.entries
                ));
            }
        }
        if self.timers.file.path != TIMERS_FILE {
            return Err(format!("timers file must be {TIMERS_FILE}"));
        }
        check_file(&self.timers.file, "", [lo, hi])?;
        if let Some(layout) = &self.layout {
            if layout.ranges.len() != usize::from(layout.parallelism) {
                return Err("layout: one range per instance expected".into());
            }
        }
        Ok(())
    }
}

fn check_file(f: &FileMeta, dir: &str, [lo, hi]: [u16; 2]) -> std::result::Result<(), String> {
    let rest = f.path.strip_prefix(dir).unwrap_or("");
    let safe = !rest.is_empty()
        && !rest.contains(['/', '\\'])
        && rest != "."
        && rest != ".."
        && !rest.chars().any(char::is_control);
    if !safe {
        return Err(format!("unsafe or misplaced file path '{}'", f.path));
    }
    let [a, b] = f.key_group_range;
    if a > b || a < lo || b > hi {
        return Err(format!(
            "file {}: key groups [{a}, {b}] outside [{lo}, {hi}]",
            f.path
        ));
    }
    if f.checksum.len() != 32
        || !f
            .checksum
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!("file {}: malformed checksum", f.path));
    }
    Ok(())
}

pub fn checksum_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hostile_metadata_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SavepointMeta::parse(&raw, "_metadata.json");
        }

        #[test]
        fn hostile_json_never_panics(s in "\\{\"format_version\":1,.{0,200}\\}") {
            let _ = SavepointMeta::parse(s.as_bytes(), "_metadata.json");
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let err =
            SavepointMeta::parse(br#"{"format_version": 9}"#, "x/_metadata.json").unwrap_err();
        assert!(err.to_string().contains("format_version 9"), "{err}");
    }
}
