//! Reading Apache Flink savepoints and checkpoints without a JVM.
//!
//! [`FlinkSnapshot`] opens a snapshot folder through a [`Storage`], parses
//! its `_metadata` ([`Metadata`]), the state headers of each operator
//! ([`KeyedHeader`], [`OperatorHeader`]) and dumps their entries as JSON
//! lines in the shapes of Flink's own dump. Canonical savepoints and full
//! checkpoints (RocksDB layout or heap layout) are read here; native
//! savepoints and incremental checkpoints are RocksDB files, read through
//! an [`LsmScanner`] supplied by the caller, so that this crate stays free
//! of RocksDB. The byte format is described in docs/flink-format.md.

pub mod avro;
pub mod bytes;
pub mod convert;
pub mod entry;
pub mod error;
pub mod fuzzing;
pub mod header;
pub mod inspect;
pub mod javaser;
pub mod json;
pub mod keygroup;
pub mod lsm;
pub mod metadata;
pub mod record;
pub mod serializer;
pub mod snapshot;
pub mod sqlplan;
pub mod sst;
pub mod sst_lsm;
pub mod storage;
pub mod value;
pub mod verify;
pub mod writer;

pub use error::{FlinkError, Result};
pub use header::{KeyedHeader, OperatorHeader, StateKind, StateMeta};
pub use json::Json;
pub use lsm::LsmScanner;
pub use metadata::{is_flink_metadata, KeyedHandle, Metadata, OperatorState, StreamHandle};
pub use snapshot::{DumpOptions, DumpReport, FlinkSnapshot};
pub use storage::{latest_checkpoint, DirStorage, Storage};
