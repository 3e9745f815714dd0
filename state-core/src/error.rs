//! One error type for the crate, with a coarse [`ErrorKind`] that tells the
//! caller what to do about it (retry, fix the input, stop), in the manner of
//! slatedb: callers branch on the kind, humans read the message.

use std::path::PathBuf;

/// What a caller can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (unknown state, key too long, bad option).
    InvalidInput,
    /// Stored bytes do not decode: corruption or a foreign store.
    Corrupt,
    /// A schema change the stored data cannot be read through.
    Incompatible,
    /// Another process holds the store.
    Locked,
    /// Local or remote I/O failed; the same call may succeed later.
    Io,
    /// Another writer took over this job's checkpoints; this one must stop.
    Fenced,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state '{0}' was never declared in this store")]
    UnknownState(String),
    #[error("state '{name}' is a {actual} state, not a {expected} state")]
    WrongKind {
        name: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error(
        "state '{name}' was declared as a {stored} state before; cannot reopen it as {declared}"
    )]
    KindChanged {
        name: String,
        stored: &'static str,
        declared: &'static str,
    },
    #[error("key group {key_group} is not owned by this instance (it owns {range})")]
    KeyGroupNotOwned {
        key_group: u16,
        range: crate::keygroup::KeyGroupRange,
    },
    #[error("key of {len} bytes is too long (at most {max})")]
    KeyTooLong { len: usize, max: usize },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("{path}: not a state store of this toolkit ({reason})")]
    NotOurs { path: PathBuf, reason: String },
    #[error("{path}: store is locked by another process")]
    Locked { path: PathBuf },
    #[error(
        "{path}: store was created with max_parallelism {stored}, opened with {requested}; \
         max_parallelism is fixed for the life of a store (rescale through a savepoint)"
    )]
    MaxParallelismMismatch {
        path: PathBuf,
        stored: u16,
        requested: u16,
    },
    #[error("state '{state}': schema for value type is not valid Avro: {reason}")]
    InvalidSchema { state: String, reason: String },
    #[error(
        "state '{state}': new schema cannot read values written with schema version {writer_version}: {}",
        reasons.join("; ")
    )]
    IncompatibleSchema {
        state: String,
        writer_version: u16,
        reasons: Vec<String>,
    },
    #[error("state '{state}': value written with unknown schema version {version} (history has {known})")]
    UnknownSchemaVersion {
        state: String,
        version: u16,
        known: usize,
    },
    #[error("state '{state}': corrupt {what}: {reason}")]
    Corrupt {
        state: String,
        what: &'static str,
        reason: String,
    },
    #[error("state '{state}': cannot encode value: {reason}")]
    Encode { state: String, reason: String },
    #[error("rocksdb: {context}: {source}")]
    RocksDb {
        context: String,
        #[source]
        source: rocksdb::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] checkpoint_store::CheckpointError),
    #[error(transparent)]
    Bucket(#[from] crate::bucket::BucketError),
}

impl StateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StateError::UnknownState(_)
            | StateError::WrongKind { .. }
            | StateError::KindChanged { .. }
            | StateError::KeyTooLong { .. }
            | StateError::KeyGroupNotOwned { .. }
            | StateError::InvalidOption(_)
            | StateError::MaxParallelismMismatch { .. }
            | StateError::InvalidSchema { .. }
            | StateError::Encode { .. } => ErrorKind::InvalidInput,
            StateError::NotOurs { .. }
            | StateError::UnknownSchemaVersion { .. }
            | StateError::Corrupt { .. } => ErrorKind::Corrupt,
            StateError::IncompatibleSchema { .. } => ErrorKind::Incompatible,
            StateError::Locked { .. } => ErrorKind::Locked,
            StateError::RocksDb { .. } | StateError::Io { .. } => ErrorKind::Io,
            StateError::Bucket(e) => match e {
                crate::bucket::BucketError::Io { .. } => ErrorKind::Io,
                crate::bucket::BucketError::Codec { .. } => ErrorKind::InvalidInput,
                crate::bucket::BucketError::Callback(_) => ErrorKind::Io,
                _ => ErrorKind::Corrupt,
            },
            StateError::Checkpoint(e) => match e.kind() {
                checkpoint_store::ErrorKind::Fenced => ErrorKind::Fenced,
                checkpoint_store::ErrorKind::Corrupt => ErrorKind::Corrupt,
                checkpoint_store::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                _ => ErrorKind::Io,
            },
        }
    }

    pub(crate) fn rocks(context: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> StateError {
        let context = context.into();
        move |source| StateError::RocksDb { context, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StateError {
        let context = context.into();
        move |source| StateError::Io { context, source }
    }
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;
