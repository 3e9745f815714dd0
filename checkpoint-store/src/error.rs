//! Typed errors. `kind()` tells the caller what to do (retry, stop, alert).

use std::path::PathBuf;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient (network, throttling, timeout): the same call may succeed later.
    Retryable,
    /// Another writer claimed a newer epoch: this writer must stop writing.
    Fenced,
    /// Stored data is damaged or inconsistent (checksum, size, unparsable manifest).
    Corrupt,
    /// The checkpoint or object does not exist.
    NotFound,
    /// The caller passed something invalid (bad URL, bad file name, wrong id).
    InvalidInput,
    /// Local file system error.
    Io,
    /// The store refused or does not support an operation (permissions, config).
    Store,
}

/// Errors from opening a store URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot create local store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot configure object store for `{url}`: {source}")]
    Configure {
        url: String,
        source: object_store::Error,
    },
}

/// Every error of this crate's checkpoint operations.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Open(#[from] StoreError),
    #[error("object store {op} of `{path}` failed: {source}")]
    Store {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
    #[error("writer with epoch {epoch} is fenced: record `{path}` was written by epoch {by_epoch}; stop writing")]
    Fenced {
        epoch: u64,
        by_epoch: u64,
        path: String,
    },
    #[error("checkpoint {id} not found under `{prefix}`")]
    CheckpointNotFound { id: u64, prefix: String },
    #[error("record `{path}` is a fence record of epoch {epoch}, not a checkpoint")]
    NotACheckpoint { path: String, epoch: u64 },
    #[error("object `{path}` referenced by checkpoint {id} is missing")]
    MissingObject { id: u64, path: String },
    #[error("manifest `{path}` is corrupt: {reason}")]
    CorruptManifest { path: String, reason: String },
    #[error("manifest `{path}` has unknown format_version {found} (this build reads {supported})")]
    UnknownFormatVersion {
        path: String,
        found: u64,
        supported: u32,
    },
    #[error("manifest `{path}` names an unsafe {what} `{value}`: {reason}")]
    UnsafeName {
        path: String,
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("file `{file}` of checkpoint {id} is corrupt: {reason}")]
    CorruptFile {
        id: u64,
        file: String,
        reason: String,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("local file {path}: {op} failed: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "local file {path} changed while it was being uploaded (checksum {expected} then {found})"
    )]
    FileChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("max parallelism {given} differs from {stored} of checkpoint {id}")]
    MaxParallelismMismatch { given: u16, stored: u16, id: u64 },
    #[error("background task failed: {0}")]
    Task(String),
}

impl CheckpointError {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Open(_) => ErrorKind::InvalidInput,
            Self::Store { source, .. } => store_error_kind(source),
            Self::Fenced { .. } => ErrorKind::Fenced,
            Self::CheckpointNotFound { .. } | Self::NotACheckpoint { .. } => ErrorKind::NotFound,
            Self::MissingObject { .. }
            | Self::CorruptManifest { .. }
            | Self::UnknownFormatVersion { .. }
            | Self::UnsafeName { .. }
            | Self::CorruptFile { .. } => ErrorKind::Corrupt,
            Self::InvalidInput(_) | Self::MaxParallelismMismatch { .. } => ErrorKind::InvalidInput,
            Self::Io { .. } => ErrorKind::Io,
            Self::FileChanged { .. } => ErrorKind::InvalidInput,
            Self::Task(_) => ErrorKind::Retryable,
        }
    }

    pub(crate) fn store(
        op: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Self::Store {
            op,
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Classifies an object_store error. Only `Generic` (network, 5xx after the
/// client's own retries, timeouts) is worth retrying; the rest are answers.
pub fn store_error_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        E::Generic { .. } | E::JoinError { .. } => ErrorKind::Retryable,
        E::NotFound { .. } => ErrorKind::NotFound,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
        _ => ErrorKind::Store,
    }
}

/// True if retrying the same request may succeed.
pub fn is_retryable(e: &object_store::Error) -> bool {
    store_error_kind(e) == ErrorKind::Retryable
}
