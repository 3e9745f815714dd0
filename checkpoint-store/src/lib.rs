//! The object-store half of checkpoints: incremental, content-addressed
//! upload of a local checkpoint directory, a fenced commit log of manifests,
//! verified restore, retention and garbage collection. Knows nothing of
//! RocksDB: it moves named files and opaque JSON metadata.
//!
//! The layout and formats are documented in `docs/checkpoint-format.md`.

mod download;
mod error;
pub mod fault;
mod gc;
mod job;
mod manifest;
pub mod metrics;
mod open;
mod restore;
mod retry;
mod transfer;
mod writer;

pub use error::{is_retryable, store_error_kind, CheckpointError, ErrorKind, StoreError};
pub use gc::{GcPolicy, GcReport};
pub use job::{CheckpointInfo, CheckpointStatus, JobStore, JobStoreOptions};
pub use manifest::{
    validate_file_name, validate_object_key, AdoptedFrom, Compression, Fence, FileKind, Manifest,
    ManifestFile, Record, FORMAT_VERSION, MANIFEST_NAME, SAVEPOINT_MANIFEST_NAME,
};
pub use open::open_store;
pub use retry::{with_retry, RetryConfig, RetryStore};
pub use writer::{CheckpointMeta, LocalFile, Writer};

pub use object_store;
