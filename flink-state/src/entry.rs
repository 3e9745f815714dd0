//! One state entry in RocksDB's layout (which canonical savepoints and
//! native SSTs share): composite key `[key group][key][namespace][user
//! key]`, values delimited for lists and per entry for maps, timers as
//! sign-flipped timestamps in the key.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::header::{StateKind, StateMeta};
use crate::json::Json;
use crate::serializer::Serializer;
use crate::value::decode;

/// The element delimiter of list state (RocksDB's StringAppendTESTOperator).
const LIST_DELIMITER: u8 = b',';

/// A decoded entry, before map entries of one key are put together.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Keyed {
        key: Json,
        namespace: Json,
        /// The map key, for map state (one entry per map key).
        user_key: Option<Json>,
        value: Json,
        /// TTL last-access timestamps: one for a value, one per element.
        ttl: Option<Json>,
    },
    Timer {
        key: Json,
        namespace: Json,
        timestamp: i64,
    },
}

/// Decodes entries of one state: built once per state, used per entry.
pub struct EntryDecoder<'a> {
    key: &'a Serializer,
    state: &'a StateMeta,
    namespace: &'a Serializer,
    value: &'a Serializer,
    prefix_len: usize,
    ambiguous: bool,
}

/// The key-group prefix takes 1 byte up to max parallelism 128, else 2
/// (CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix).
pub fn key_group_prefix_len(max_parallelism: i32) -> usize {
    if max_parallelism > 128 {
        2
    } else {
        1
    }
}

impl<'a> EntryDecoder<'a> {
    /// Fails with the class name when a serializer is unknown (the caller
    /// adds operator and state).
    pub fn new(
        key: &'a Serializer,
        state: &'a StateMeta,
        max_parallelism: i32,
    ) -> Result<Self, String> {
        if let Some(c) = key.unknown_class().or_else(|| state.unknown_class()) {
            return Err(c.to_string());
        }
        const VOID: &Serializer = &Serializer::VoidNamespace;
        let value = state
            .value_serializer()
            .ok_or_else(|| "(no VALUE_SERIALIZER)".to_string())?;
        let namespace = state.namespace_serializer().unwrap_or(VOID);
        let ambiguous = key.fixed_len().is_none() && namespace.fixed_len().is_none();
        Ok(EntryDecoder {
            key,
            state,
            namespace,
            value,
            prefix_len: key_group_prefix_len(max_parallelism),
            ambiguous,
        })
    }

    /// Decodes one entry; also returns the key group from the prefix.
    pub fn decode(&self, key_bytes: &[u8], value_bytes: &[u8]) -> Result<(u32, Decoded)> {
        let mut r = Reader::new(key_bytes);
        let kg = match self.prefix_len {
            1 => r.u8("key group prefix")? as u32,
            _ => r.u16("key group prefix")? as u32,
        };
        let d = if self.state.kind == StateKind::Timers {
            self.timer(&mut r)?
        } else {
            self.keyed(&mut r, value_bytes)?
        };
        if !r.is_empty() {
            return Err(FlinkError::malformed(
                "state key",
                r.pos(),
                format!("{} bytes left over", r.remaining()),
            ));
        }
        Ok((kg, d))
    }

    fn timer(&self, r: &mut Reader) -> Result<Decoded> {
        let Serializer::Timer { key, namespace } = self.value else {
            return Err(FlinkError::malformed(
                "timer",
                0,
                "timer state without TimerSerializer",
            ));
        };
        let timestamp = r.i64("timer timestamp")? ^ i64::MIN;
        let key = decode(key, r)?;
        let namespace = decode(namespace, r)?;
        Ok(Decoded::Timer {
            key,
            namespace,
            timestamp,
        })
    }

    /// Key and namespace; when both are variable-length Flink writes each
    /// one's byte length after it as a varint (the ambiguous-key rule).
    fn read_part(&self, s: &Serializer, r: &mut Reader) -> Result<Json> {
        let start = r.pos();
        let v = decode(s, r)?;
        let written = r.pos() - start;
        if self.ambiguous {
            let len = r.varint("composite key length")? as usize;
            if len != written {
                return Err(FlinkError::malformed(
                    "composite key length",
                    start,
                    format!("{len}, part is {written} bytes"),
                ));
            }
        }
        Ok(v)
    }

    fn keyed(&self, r: &mut Reader, value_bytes: &[u8]) -> Result<Decoded> {
        let key = self.read_part(self.key, r)?;
        let namespace = self.read_part(self.namespace, r)?;
        let mut vr = Reader::new(value_bytes);
        let (user_key, value, ttl) = match (&self.state.kind, self.value) {
            (StateKind::Map, Serializer::Map(k, v)) => {
                let uk = decode(k, r)?;
                let value = if vr.bool("map value null flag")? {
                    Json::Null
                } else {
                    decode(v, &mut vr)?
                };
                let (value, ttl) = split_ttl(value);
                (Some(uk), value, ttl)
            }
            (StateKind::List, Serializer::List(e)) => {
                let (items, ttl) = delimited_list(e, &mut vr)?;
                (None, items, ttl)
            }
            (_, s) => {
                let (value, ttl) = split_ttl(decode(s, &mut vr)?);
                (None, value, ttl)
            }
        };
        if !vr.is_empty() {
            return Err(FlinkError::malformed(
                "state value",
                vr.pos(),
                format!("{} bytes left over", vr.remaining()),
            ));
        }
        Ok(Decoded::Keyed {
            key,
            namespace,
            user_key,
            value,
            ttl,
        })
    }
}

/// `{"value", "ttl_timestamp"}` (from a TtlSerializer) into its parts.
pub fn split_ttl(v: Json) -> (Json, Option<Json>) {
    match v {
        Json::Obj(mut f) if f.len() == 2 && f[0].0 == "value" && f[1].0 == "ttl_timestamp" => {
            let ts = f.pop().map(|(_, t)| t);
            (f.pop().map(|(_, v)| v).unwrap_or(Json::Null), ts)
        }
        v => (v, None),
    }
}

/// Splits a list of possibly TTL-wrapped elements into values and
/// timestamps (None when no element had one).
pub fn split_ttl_list(items: Vec<Json>) -> (Vec<Json>, Option<Json>) {
    let mut values = Vec::with_capacity(items.len());
    let mut stamps = Vec::new();
    for it in items {
        let (v, t) = split_ttl(it);
        values.push(v);
        stamps.extend(t);
    }
    let ttl = (!stamps.is_empty()).then_some(Json::Arr(stamps));
    (values, ttl)
}

/// List state: elements back to back, separated by one ',' byte.
fn delimited_list(e: &Serializer, r: &mut Reader) -> Result<(Json, Option<Json>)> {
    let mut items = Vec::new();
    while !r.is_empty() {
        if !items.is_empty() {
            let at = r.pos();
            if r.u8("list delimiter")? != LIST_DELIMITER {
                return Err(FlinkError::malformed(
                    "list state",
                    at,
                    "missing ',' between elements",
                ));
            }
        }
        items.push(decode(e, r)?);
    }
    let (values, ttl) = split_ttl_list(items);
    Ok((Json::Arr(values), ttl))
}
