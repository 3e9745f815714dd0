//! The manifest (format version 1, see docs/checkpoint-format.md), fence
//! records, the object layout of a job, and validation of untrusted input.

use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the commit record inside `checkpoints/chk-<N>/`.
pub const MANIFEST_NAME: &str = "_manifest";

/// Name of a checkpoint-format manifest inside a savepoint that references
/// shared checkpoint objects (GC honours it).
pub const SAVEPOINT_MANIFEST_NAME: &str = "_checkpoint_manifest";

/// How a file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Immutable (SST): content-addressed under `checkpoints/shared/`, reused
    /// by later checkpoints.
    Shared,
    /// Small and per checkpoint (MANIFEST-*, OPTIONS-*, CURRENT): zstd under
    /// `checkpoints/chk-<N>/`.
    Private,
}

/// Compression of the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
}

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name in the local checkpoint directory.
    pub name: String,
    /// Object key relative to the job prefix.
    pub object: String,
    /// Size of the local (uncompressed) file.
    pub size: u64,
    /// xxh3-128 of the local (uncompressed) file bytes, 32 lowercase hex digits.
    pub checksum: String,
    pub kind: FileKind,
    pub compression: Compression,
}

/// Where a checkpoint was adopted from ("claim" mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedFrom {
    /// Display name of the source store and prefix (no credentials).
    pub source: String,
    pub id: u64,
}

/// A committed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub id: u64,
    pub epoch: u64,
    pub parent: Option<u64>,
    pub created_ms: u64,
    pub files: Vec<ManifestFile>,
    /// Inclusive range of key groups held.
    pub key_group_range: (u16, u16),
    pub max_parallelism: u16,
    /// state-core's state descriptors and schema history (opaque here).
    pub states: serde_json::Value,
    /// The caller's metadata: source offsets, watermarks, sink transactions.
    pub user: serde_json::Value,
    /// Sum of `files[].size`.
    pub total_bytes: u64,
    /// Bytes this checkpoint wrote to the store (new shared objects plus its
    /// compressed private files).
    pub uploaded_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<AdoptedFrom>,
}

/// A fence: written by `claim_epoch` at the next log position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub format_version: u32,
    pub epoch: u64,
    pub created_ms: u64,
}

/// What a `_manifest` object holds: a log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Checkpoint(Manifest),
    Fence(Fence),
}

impl Record {
    pub fn epoch(&self) -> u64 {
        match self {
            Record::Checkpoint(m) => m.epoch,
            Record::Fence(f) => f.epoch,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings/numbers/Values cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and validates a record read from `path`, expected at log id `id`.
    pub fn parse(bytes: &[u8], path: &str, id: u64) -> Result<Record, CheckpointError> {
        let record = Self::parse_unvalidated(bytes, path)?;
        if let Record::Checkpoint(m) = &record {
            if m.id != id {
                return Err(corrupt(
                    path,
                    format!("manifest id {} stored at log id {id}", m.id),
                ));
            }
            m.validate(path)?;
        }
        Ok(record)
    }

    /// Checks the format version, then decodes.
    fn parse_unvalidated(bytes: &[u8], path: &str) -> Result<Record, CheckpointError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(path, format!("not JSON: {e}")))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt(path, "missing or non-integer format_version".into()))?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(CheckpointError::UnknownFormatVersion {
                path: path.to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_value(value).map_err(|e| corrupt(path, e.to_string()))
    }
}

/// Parses a checkpoint-format manifest kept in a savepoint: only its shared
/// references matter (GC keeps them), and they must be well-formed.
pub fn parse_savepoint_manifest(bytes: &[u8], path: &str) -> Result<Manifest, CheckpointError> {
    let m = match Record::parse_unvalidated(bytes, path)? {
        Record::Checkpoint(m) => m,
        Record::Fence(_) => return Err(corrupt(path, "a fence record, not a manifest".into())),
    };
    for f in m.files.iter().filter(|f| f.kind == FileKind::Shared) {
        validate_object_key(&f.object)
            .map_err(|reason| unsafe_name(path, "object key", &f.object, reason))?;
    }
    Ok(m)
}

fn corrupt(path: &str, reason: String) -> CheckpointError {
    CheckpointError::CorruptManifest {
        path: path.to_string(),
        reason,
    }
}

impl Manifest {
    /// Checks everything a reader relies on before touching files.
    pub fn validate(&self, path: &str) -> Result<(), CheckpointError> {
        let corrupt = |reason: String| corrupt(path, reason);
        let (lo, hi) = self.key_group_range;
        if lo > hi || (self.max_parallelism > 0 && hi >= self.max_parallelism) {
            return Err(corrupt(format!(
                "key group range {lo}..={hi} invalid for max parallelism {}",
                self.max_parallelism
            )));
        }
        let mut names = std::collections::HashSet::new();
        let mut total = 0u64;
        for f in &self.files {
            validate_file_name(&f.name)
                .map_err(|reason| unsafe_name(path, "file name", &f.name, reason))?;
            validate_object_key(&f.object)
                .map_err(|reason| unsafe_name(path, "object key", &f.object, reason))?;
            let expected_dir = match f.kind {
                FileKind::Shared => "checkpoints/shared/".to_string(),
                FileKind::Private => format!("{}/", chk_dir(self.id)),
            };
            if !f.object.starts_with(&expected_dir) {
                return Err(unsafe_name(
                    path,
                    "object key",
                    &f.object,
                    "outside the directory of its kind",
                ));
            }
            if !is_checksum(&f.checksum) {
                return Err(corrupt(format!(
                    "file `{}` has malformed checksum `{}`",
                    f.name, f.checksum
                )));
            }
            if !names.insert(f.name.as_str()) {
                return Err(corrupt(format!("file `{}` listed twice", f.name)));
            }
            total = total.saturating_add(f.size);
        }
        if total != self.total_bytes {
            return Err(corrupt(format!(
                "total_bytes {} but files sum to {total}",
                self.total_bytes
            )));
        }
        Ok(())
    }
}

fn unsafe_name(
    path: &str,
    what: &'static str,
    value: &str,
    reason: &'static str,
) -> CheckpointError {
    CheckpointError::UnsafeName {
        path: path.to_string(),
        what,
        value: value.to_string(),
        reason,
    }
}

/// A local file name: one plain path component.
pub fn validate_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name == "." || name == ".." {
        return Err("is a relative directory reference");
    }
    if name.contains('/') || name.contains('\\') {
        return Err("contains a path separator");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("contains a control character");
    }
    if name.len() > 255 {
        return Err("longer than 255 bytes");
    }
    if name == MANIFEST_NAME {
        return Err("reserved name");
    }
    Ok(())
}

/// An object key relative to the job prefix; must stay inside `checkpoints/`.
pub fn validate_object_key(key: &str) -> Result<(), &'static str> {
    if key.starts_with('/') {
        return Err("absolute path");
    }
    if key.contains('\\') || key.chars().any(|c| c.is_control()) {
        return Err("contains a backslash or control character");
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("contains an empty, `.` or `..` component");
    }
    if !key.starts_with("checkpoints/") {
        return Err("outside checkpoints/");
    }
    Path::parse(key).map_err(|_| "not a valid object path")?;
    Ok(())
}

fn is_checksum(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `checkpoints/chk-<id>`
pub fn chk_dir(id: u64) -> String {
    format!("checkpoints/chk-{id}")
}

/// `checkpoints/chk-<id>/_manifest`
pub fn manifest_key(id: u64) -> String {
    format!("{}/{MANIFEST_NAME}", chk_dir(id))
}

/// `checkpoints/shared/<hash>.sst`
pub fn shared_key(checksum: &str) -> String {
    format!("checkpoints/shared/{checksum}.sst")
}

/// `checkpoints/chk-<id>/<name>.zst`
pub fn private_key(id: u64, name: &str) -> String {
    format!("{}/{name}.zst", chk_dir(id))
}

/// Parses `chk-<N>` (the last component of a listed directory).
pub fn parse_chk_dir(component: &str) -> Option<u64> {
    let digits = component.strip_prefix("chk-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Joins the job prefix and a relative key.
pub fn abs(prefix: &Path, key: &str) -> Path {
    let mut path = prefix.clone();
    for part in key.split('/').filter(|p| !p.is_empty()) {
        path = path.child(part);
    }
    path
}

/// Hex xxh3-128 of a byte slice.
pub fn checksum_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: 7,
            epoch: 2,
            parent: Some(5),
            created_ms: 1,
            files: vec![
                ManifestFile {
                    name: "000012.sst".into(),
                    object: shared_key(&"a".repeat(32)),
                    size: 10,
                    checksum: "a".repeat(32),
                    kind: FileKind::Shared,
                    compression: Compression::None,
                },
                ManifestFile {
                    name: "CURRENT".into(),
                    object: private_key(7, "CURRENT"),
                    size: 16,
                    checksum: "0".repeat(32),
                    kind: FileKind::Private,
                    compression: Compression::Zstd,
                },
            ],
            key_group_range: (0, 127),
            max_parallelism: 128,
            states: serde_json::json!({"s": 1}),
            user: serde_json::json!({"offsets": [1, 2]}),
            total_bytes: 26,
            uploaded_bytes: 20,
            adopted_from: None,
        }
    }

    fn parse_manifest(m: &Manifest) -> Result<Record, CheckpointError> {
        let bytes = Record::Checkpoint(m.clone()).to_json();
        Record::parse(&bytes, "t/_manifest", m.id)
    }

    #[test]
    fn valid_manifest_round_trips() {
        let m = sample();
        assert_eq!(parse_manifest(&m).unwrap(), Record::Checkpoint(m));
    }

    #[test]
    fn traversal_in_names_and_keys_is_refused() {
        for bad in ["../x", "/etc/passwd", "a/b", ".."] {
            let mut m = sample();
            m.files[0].name = bad.into();
            let e = parse_manifest(&m).unwrap_err();
            assert!(
                matches!(
                    e,
                    CheckpointError::UnsafeName {
                        what: "file name",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        for bad in [
            "checkpoints/shared/../../other-job/x.sst",
            "/checkpoints/shared/x.sst",
            "savepoints/x",
            "checkpoints/chk-6/CURRENT.zst",
        ] {
            let mut m = sample();
            m.files[1].object = bad.into();
            let e = parse_manifest(&m).unwrap_err();
            assert!(
                matches!(
                    e,
                    CheckpointError::UnsafeName {
                        what: "object key",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(bad));
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let mut v = serde_json::to_value(Record::Checkpoint(sample())).unwrap();
        v["format_version"] = 99.into();
        let e = Record::parse(&serde_json::to_vec(&v).unwrap(), "p", 7).unwrap_err();
        assert!(matches!(
            e,
            CheckpointError::UnknownFormatVersion { found: 99, .. }
        ));
        assert!(e.to_string().contains("99"));
    }

    #[test]
    fn garbage_and_wrong_id_are_corrupt() {
        assert!(matches!(
            Record::parse(b"{not json", "p", 1),
            Err(CheckpointError::CorruptManifest { .. })
        ));
        let bytes = Record::Checkpoint(sample()).to_json();
        assert!(matches!(
            Record::parse(&bytes, "p", 8),
            Err(CheckpointError::CorruptManifest { .. })
        ));
        let mut m = sample();
        m.total_bytes = 1;
        assert!(matches!(
            parse_manifest(&m),
            Err(CheckpointError::CorruptManifest { .. })
        ));
    }

    #[test]
    fn fence_round_trips() {
        let f = Record::Fence(Fence {
            format_version: FORMAT_VERSION,
            epoch: 3,
            created_ms: 9,
        });
        assert_eq!(Record::parse(&f.to_json(), "p", 4).unwrap(), f);
    }

    #[test]
    fn chk_dir_parsing() {
        assert_eq!(parse_chk_dir("chk-12"), Some(12));
        assert_eq!(parse_chk_dir("chk-"), None);
        assert_eq!(parse_chk_dir("chk-1a"), None);
        assert_eq!(parse_chk_dir("shared"), None);
    }
}
