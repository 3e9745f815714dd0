//! Errors of savepoint operations: what failed, and on which file or state.

use crate::error::StateError;

/// What a caller (or the CLI's exit code) does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointErrorKind {
    /// The request is wrong: unknown state, bad schema file, target exists.
    InvalidInput,
    /// The location holds no savepoint (or job) at all.
    NotFound,
    /// Stored bytes are damaged: checksum, size, truncation, bad Avro.
    Corrupt,
    /// A schema change the data cannot be read through.
    Incompatible,
    /// The store or local disk failed.
    Io,
}

#[derive(Debug, thiserror::Error)]
pub enum SavepointError {
    #[error("{location}: not a savepoint (no _metadata.json)")]
    NotASavepoint { location: String },
    #[error("{location}: neither a savepoint nor a job with checkpoints")]
    NotRecognized { location: String },
    #[error("{location}: does not exist")]
    Missing { location: String },
    #[error("{location}: a savepoint already exists there; choose another target")]
    TargetExists { location: String },
    #[error("{file}: unknown savepoint format_version {found} (this build reads {supported})")]
    UnknownFormatVersion {
        file: String,
        found: u64,
        supported: u32,
    },
    #[error("{file}: corrupt: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("state '{state}' is not in this savepoint (it has: {known})")]
    UnknownState { state: String, known: String },
    #[error("schema is not valid Avro: {reason}")]
    InvalidSchema { reason: String },
    #[error("state '{state}': new schema cannot read the savepoint's values: {}", reasons.join("; "))]
    Incompatible { state: String, reasons: Vec<String> },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("object store {op} of `{path}` failed: {reason}")]
    Store {
        op: &'static str,
        path: String,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl SavepointError {
    pub fn kind(&self) -> SavepointErrorKind {
        use SavepointErrorKind as K;
        match self {
            SavepointError::NotASavepoint { .. }
            | SavepointError::NotRecognized { .. }
            | SavepointError::Missing { .. } => K::NotFound,
            SavepointError::TargetExists { .. }
            | SavepointError::UnknownState { .. }
            | SavepointError::InvalidSchema { .. }
            | SavepointError::InvalidInput(_) => K::InvalidInput,
            SavepointError::UnknownFormatVersion { .. } | SavepointError::Corrupt { .. } => {
                K::Corrupt
            }
            SavepointError::Incompatible { .. } => K::Incompatible,
            SavepointError::Store { .. } | SavepointError::Io { .. } => K::Io,
            SavepointError::State(e) => match e.kind() {
                crate::ErrorKind::InvalidInput => K::InvalidInput,
                crate::ErrorKind::Corrupt => K::Corrupt,
                crate::ErrorKind::Incompatible => K::Incompatible,
                _ => match e {
                    StateError::Checkpoint(c) => match c.kind() {
                        checkpoint_store::ErrorKind::NotFound => K::NotFound,
                        checkpoint_store::ErrorKind::InvalidInput => K::InvalidInput,
                        checkpoint_store::ErrorKind::Corrupt => K::Corrupt,
                        _ => K::Io,
                    },
                    _ => K::Io,
                },
            },
        }
    }

    pub(crate) fn corrupt(file: impl Into<String>, reason: impl Into<String>) -> Self {
        SavepointError::Corrupt {
            file: file.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| SavepointError::Io { context, source }
    }

    pub(crate) fn store(
        op: &'static str,
        path: impl Into<String>,
        e: impl std::fmt::Display,
    ) -> Self {
        SavepointError::Store {
            op,
            path: path.into(),
            reason: e.to_string(),
        }
    }
}

impl From<checkpoint_store::CheckpointError> for SavepointError {
    fn from(e: checkpoint_store::CheckpointError) -> Self {
        SavepointError::State(StateError::Checkpoint(e))
    }
}

pub type Result<T, E = SavepointError> = std::result::Result<T, E>;
