//! Keyed state for stream processing on RocksDB.
//!
//! - [`StateStore`]: value, list and map state per key, laid out by key group
//!   ([`keygroup`]) so an instance's state is one contiguous range and
//!   rescaling moves whole key groups.
//! - Every value carries the version of the Avro schema it was written with
//!   ([`envelope`]); reads resolve older versions to the current schema.
//! - Event-time [`timers`], TTL in event or processing time.
//! - Checkpoints to object stores and restore ([`checkpoint`]).
//!
//! Byte layouts are specified in `docs/state-format.md`.

pub mod batch;
pub mod bucket;
mod changes;
pub mod checkpoint;
pub mod checkpoint_buckets;
pub mod clock;
pub mod codec;
pub mod descriptor;
pub mod envelope;
pub mod error;
pub mod iter;
pub mod keygroup;
pub mod keys;
pub mod options;
pub mod runs;
pub mod savepoint;
pub mod schema;
pub mod state;
pub mod store;
pub mod timers;

pub use checkpoint::{
    restore, restore_with_buckets, Checkpointer, CompletedCheckpoint, TriggeredCheckpoint,
};
pub use checkpoint_store::{JobStore, JobStoreOptions, Manifest};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{AvroValue, RawBytes, SerdeAvro, ValueCodec};
pub use descriptor::{KeyFormat, StateDescriptor, StateKind, StateMeta, TimeDomain, TtlConfig};
pub use error::{ErrorKind, Result, StateError};
pub use iter::{RawEntry, RawWriter, StateScan};
pub use keygroup::{key_group_of, KeyGroupRange, DEFAULT_MAX_PARALLELISM};
pub use options::{RocksTuning, StoreOptions};
pub use state::{ListState, MapState, ValueState};
pub use store::{StateStore, STORE_FORMAT_VERSION};
pub use timers::{Timer, TimerService};

pub use batch::StateBatch;
pub use bucket::{
    BucketCut, BucketError, BucketKey, BucketOptions, BucketStats, BucketedState, HeapSize,
};
pub use savepoint::{Savepoint, SavepointError, SavepointMeta};
