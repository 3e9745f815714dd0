//! Errors of reading Flink snapshots: every one names where it happened, so
//! that a message read at 3 a.m. says which file, operator or state to look at.

use thiserror::Error;

pub type Result<T, E = FlinkError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum FlinkError {
    /// The bytes end before the structure being read does.
    #[error("truncated: needed {needed} more bytes at offset {offset} while reading {what}")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    /// The bytes are there but do not form what Flink writes.
    #[error("malformed {what} at offset {offset}: {detail}")]
    Malformed {
        what: &'static str,
        offset: usize,
        detail: String,
    },
    #[error("not a Flink _metadata file (magic {found:#010x}, expected 0x4960672d)")]
    NotFlink { found: u32 },
    #[error("unsupported Flink _metadata version {0} (versions 3 to 7 are read)")]
    UnsupportedVersion(i32),
    /// A feature of the format that this reader does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A serializer snapshot class this reader cannot decode.
    #[error("operator {operator}: state {state}: unknown serializer {class}: its values cannot be decoded (every other state stays readable)")]
    UnknownSerializer {
        operator: String,
        state: String,
        class: String,
    },
    #[error("no operator {0:?} (give its uid, name or 32-hex-digit id; `inspect` lists them)")]
    NoSuchOperator(String),
    #[error("operator {operator}: no state {state:?} (states: {known})")]
    NoSuchState {
        operator: String,
        state: String,
        known: String,
    },
    #[error("{file}: {source}")]
    File {
        file: String,
        #[source]
        source: Box<FlinkError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Avro schema: {0}")]
    Schema(String),
    /// Reading the RocksDB files of a native snapshot failed.
    #[error("RocksDB files: {0}")]
    Lsm(String),
}

impl FlinkError {
    /// Wraps an error with the name of the file it was found in (once).
    pub fn in_file(self, file: &str) -> FlinkError {
        match self {
            FlinkError::File { .. } | FlinkError::Io { .. } => self,
            other => FlinkError::File {
                file: file.to_string(),
                source: Box::new(other),
            },
        }
    }

    pub fn malformed(what: &'static str, offset: usize, detail: impl Into<String>) -> Self {
        FlinkError::Malformed {
            what,
            offset,
            detail: detail.into(),
        }
    }
}
