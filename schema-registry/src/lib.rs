//! Versioned Avro schemas, the Java-compatible reader/writer compatibility
//! check, and schema resolution compiled once per (writer, reader) pair.
//!
//! See `docs/schema-registry.md` for the storage layout and the design.

mod compat;
mod defaults;
mod encode;
mod error;
mod json;
mod rabin;
pub mod registry;
mod resolve;
mod schema;
pub mod server;
mod values;
mod wire;

pub use apache_avro;
pub use compat::{check_compatibility, Incompatibility, IncompatibilityKind};
pub use encode::encode_value;
pub use error::{DecodeError, EncodeError, ResolveError, SchemaError};
pub use json::value_to_json;
pub use registry::{
    open_registry, parse_with_references, CompatIssue, CompatibilityLevel, FolderStorage,
    MemoryStorage, Registered, Registry, RegistryError, RemoteRegistry, Role, SchemaRegistry,
    Storage, StorageError, SubjectVersion, VersionSelector,
};
pub use resolve::{decode_value, Resolver};
pub use schema::{AvroSchema, SchemaReference};
