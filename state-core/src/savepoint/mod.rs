//! Savepoints: self-contained, portable copies of keyed state
//! (docs/savepoint-format.md, format version 1).
//!
//! A savepoint is a prefix (folder or object-store URL) holding, per state,
//! Avro object container files (zstd) of entries in key order, a timers
//! file, and `_metadata.json`, written last. Every operation that writes
//! produces a new savepoint and never changes its source; the target is
//! whole or absent. All functions are blocking (they run their own I/O
//! runtime) and must not be called from inside an async runtime.

mod avro;
mod create;
mod detect;
mod error;
mod location;
mod meta;
mod ops;
mod read;
mod restore;
mod write;

pub use avro::{entry_schema_json, timer_schema_json, Entry, EntryValue, ListElement, TimerRecord};
pub use create::{create_from_checkpoint, create_from_job, create_from_store};
pub use detect::{detect, job_savepoints, SourceKind};
pub use error::{Result, SavepointError, SavepointErrorKind};
pub use meta::{
    redact, FileMeta, Layout, SavepointMeta, SourceInfo, StateSection, TimersSection,
    METADATA_NAME, SAVEPOINT_FORMAT_VERSION, TIMERS_FILE,
};
pub use ops::{
    compact, compact_checkpoint, diff, entry_value_json, hex, inspect_checkpoint,
    inspect_savepoint, inspect_store, migrate, rescale, verify, DeepStateStats, DiffReport,
    FieldChange, KeyDiff, MigrationReport, Problem, StateDiff, VerifyReport,
};
pub use read::{EntryIter, Savepoint};
pub use restore::restore_into;
pub use write::{Progress, WriteOptions};

/// Decoders exposed for fuzzing: hostile bytes must give errors, never panics.
pub mod fuzzing {
    use super::avro;
    use crate::descriptor::StateKind;

    /// Parses `_metadata.json` bytes.
    pub fn parse_metadata(bytes: &[u8]) -> bool {
        super::meta::SavepointMeta::parse(bytes, "fuzz").is_ok()
    }

    /// Decodes a container file of entries of a list (or map) state whose
    /// values have `schema_json`.
    pub fn decode_entries(schema_json: &str, list: bool, bytes: &[u8]) -> usize {
        let Ok(schema) = schema_registry::AvroSchema::parse(schema_json) else {
            return 0;
        };
        let kind = if list {
            StateKind::List
        } else {
            StateKind::Map
        };
        let Ok(dec) = avro::EntryDecoder::new(kind, &schema) else {
            return 0;
        };
        let file_schema = avro::entry_schema_json(kind, schema.json());
        let mut n = 0;
        let _ = avro::for_each_record("fuzz", bytes, &file_schema, |c| {
            dec.decode(c)
                .map_err(|r| super::SavepointError::corrupt("fuzz", r))?;
            n += 1;
            Ok(true)
        });
        n
    }

    /// Writes entries into a container file (to seed a corpus).
    pub fn encode_entries(schema_json: &str, list: bool, entries: &[avro::Entry]) -> Vec<u8> {
        let kind = if list {
            StateKind::List
        } else {
            StateKind::Map
        };
        let json = avro::entry_schema_json(kind, schema_json);
        let Ok(mut w) = avro::ContainerWriter::new(Vec::new(), &json, b"fuzz") else {
            return Vec::new();
        };
        for e in entries {
            if w.append(|out| avro::encode_entry(out, e)).is_err() {
                return Vec::new();
            }
        }
        w.finish().unwrap_or_default()
    }
}

/// Writes entries of a state as one Avro container file (zstd) with the
/// savepoint's entry schema: `savepoint dump --format avro`.
pub fn write_entries_avro<W: std::io::Write>(
    out: W,
    kind: crate::descriptor::StateKind,
    value_schema_json: &str,
    entries: impl Iterator<Item = Result<Entry>>,
) -> Result<u64> {
    let json = avro::entry_schema_json(kind, value_schema_json);
    let io = |e: std::io::Error| SavepointError::Io {
        context: "writing Avro output".into(),
        source: e,
    };
    let mut w = avro::ContainerWriter::new(out, &json, value_schema_json.as_bytes()).map_err(io)?;
    for e in entries {
        let e = e?;
        w.append(|buf| avro::encode_entry(buf, &e)).map_err(io)?;
    }
    let n = w.records;
    w.finish().map_err(io)?;
    Ok(n)
}
