//! State descriptors: what a state is called, what it holds, how long it lives.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    Value,
    List,
    Map,
}

impl StateKind {
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
        }
    }
}

/// How keys (and map user keys) are serialized, so that tools can render and
/// parse them. The store itself only ever sees bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// Opaque bytes, shown as hex.
    #[default]
    Bytes,
    /// UTF-8 text, as is.
    Utf8,
    /// One order-preserving i64 (`keys::ordered_i64`).
    I64,
    /// Two order-preserving i64s, e.g. `(profile_id, title_id)`.
    I64Pair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeDomain {
    /// Expiry measured against the watermark the operator reports.
    EventTime,
    /// Expiry measured against the store's clock (wall time by default).
    ProcessingTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlConfig {
    pub ttl_ms: i64,
    pub time: TimeDomain,
}

/// A declared state. `value_schema` is the Avro schema (JSON) values are
/// written with; reopening with another schema adds a version to the state's
/// history if it can read every earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDescriptor {
    pub name: String,
    pub kind: StateKind,
    #[serde(default)]
    pub key_format: KeyFormat,
    /// Only for map state: how user keys are serialized.
    #[serde(default)]
    pub user_key_format: KeyFormat,
    pub value_schema: String,
    #[serde(default)]
    pub ttl: Option<TtlConfig>,
}

impl StateDescriptor {
    pub fn value(name: impl Into<String>, value_schema: impl Into<String>) -> Self {
        Self::new(name, StateKind::Value, value_schema)
    }

    pub fn list(name: impl Into<String>, value_schema: impl Into<String>) -> Self {
        Self::new(name, StateKind::List, value_schema)
    }

    pub fn map(name: impl Into<String>, value_schema: impl Into<String>) -> Self {
        Self::new(name, StateKind::Map, value_schema)
    }

    fn new(name: impl Into<String>, kind: StateKind, value_schema: impl Into<String>) -> Self {
        StateDescriptor {
            name: name.into(),
            kind,
            key_format: KeyFormat::Bytes,
            user_key_format: KeyFormat::Bytes,
            value_schema: value_schema.into(),
            ttl: None,
        }
    }

    pub fn with_ttl(mut self, ttl_ms: i64, time: TimeDomain) -> Self {
        self.ttl = Some(TtlConfig { ttl_ms, time });
        self
    }

    pub fn with_key_format(mut self, key: KeyFormat) -> Self {
        self.key_format = key;
        self
    }

    pub fn with_user_key_format(mut self, user_key: KeyFormat) -> Self {
        self.user_key_format = user_key;
        self
    }
}

/// What the store persists per state: the descriptor as last declared and
/// every schema version values may have been written with (version `v` is
/// `schemas[v - 1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    pub descriptor: StateDescriptor,
    pub schemas: Vec<String>,
}

impl StateMeta {
    pub fn current_version(&self) -> u16 {
        self.schemas.len() as u16
    }
}
