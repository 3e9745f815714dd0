//! Typed errors of the crate. Every variant says what is wrong and where.

use crate::compat::Incompatibility;

/// A schema that is not valid Avro, with the JSON path of the offending part.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid schema at {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("invalid default at {path}: {reason}")]
    InvalidDefault { path: String, reason: String },
    #[error("referenced schema {subject:?} version {version}: {reason}")]
    Reference {
        subject: String,
        version: u32,
        reason: String,
    },
    #[error("schema rejected by apache-avro: {0}")]
    Avro(String),
}

impl SchemaError {
    pub(crate) fn invalid(path: &str, reason: impl Into<String>) -> Self {
        SchemaError::Invalid {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}

/// Bytes that cannot be decoded with the writer schema (truncated, corrupt, hostile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input ends at byte {offset}: needed {needed} more byte(s)")]
    Truncated { offset: usize, needed: usize },
    #[error("varint at byte {offset} is longer than 10 bytes or overflows 64 bits")]
    BadVarint { offset: usize },
    #[error("int at byte {offset} is out of the 32-bit range: {value}")]
    IntOutOfRange { offset: usize, value: i64 },
    #[error("negative length {len} at byte {offset}")]
    NegativeLength { offset: usize, len: i64 },
    #[error("length {len} at byte {offset} exceeds the {remaining} remaining byte(s)")]
    LengthTooLarge {
        offset: usize,
        len: i64,
        remaining: usize,
    },
    #[error("invalid UTF-8 string at byte {offset}")]
    BadUtf8 { offset: usize },
    #[error("boolean byte {value} at byte {offset} is neither 0 nor 1")]
    BadBoolean { offset: usize, value: u8 },
    #[error("union branch {index} at byte {offset} is out of range (union has {branches})")]
    BadUnionIndex {
        offset: usize,
        index: i64,
        branches: usize,
    },
    #[error("enum index {index} at byte {offset} is out of range ({symbols} symbols)")]
    BadEnumIndex {
        offset: usize,
        index: i64,
        symbols: usize,
    },
    #[error(
        "enum symbol {symbol:?} at byte {offset} is unknown to the reader and it has no default"
    )]
    UnknownEnumSymbol { offset: usize, symbol: String },
    #[error("collection at byte {offset} declares {count} items: more than the limit {limit}")]
    TooManyItems {
        offset: usize,
        count: i64,
        limit: usize,
    },
    #[error("data nests deeper than {limit} levels at byte {offset}")]
    TooDeep { offset: usize, limit: usize },
    #[error("datum at byte {offset} cannot be resolved at {path} of the reader schema: {reason}")]
    Unresolvable {
        offset: usize,
        path: String,
        reason: String,
    },
    #[error("no decoding plan for the schema: {reason}")]
    NoPlan { reason: String },
    #[error("invalid {logical} value at byte {offset}: {reason}")]
    BadLogical {
        offset: usize,
        logical: &'static str,
        reason: String,
    },
}

/// A value that does not fit the schema it is encoded with.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("value does not match the schema: {0}")]
    Avro(String),
}

/// A (writer, reader) pair for which no resolution plan exists.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("reader cannot read writer's data: {}", join(.0))]
    Incompatible(Vec<Incompatibility>),
    #[error("cannot resolve at {path}: {reason}")]
    Unsupported { path: String, reason: String },
}

fn join(items: &[Incompatibility]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
