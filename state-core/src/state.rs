//! Value, list and map state handles.
//!
//! A handle is bound to one state and a codec; it is cheap to create and
//! keeps the store alive. Every write stamps the state's current schema
//! version (and expiry, with a TTL); every read resolves older versions to
//! the current schema and hides expired entries.

use crate::batch::StateBatch;
use crate::codec::{SerdeAvro, ValueCodec};
use crate::descriptor::StateKind;
use crate::envelope::{self, Envelope};
use crate::error::{Result, StateError};
use crate::keys;
use crate::store::{encode_key, StateInfo, StateStore, StoreInner};
use rocksdb::{ColumnFamily, ReadOptions};
use serde::{de::DeserializeOwned, Serialize};
use std::ops::Bound;
use std::sync::Arc;

struct Handle<C> {
    store: Arc<StoreInner>,
    info: Arc<StateInfo>,
    codec: C,
}

impl<C: ValueCodec> Handle<C> {
    fn new(store: &StateStore, name: &str, kind: StateKind, codec: C) -> Result<Self> {
        let info = store.inner.state(name)?.clone();
        if info.kind() != kind {
            return Err(StateError::WrongKind {
                name: name.to_string(),
                expected: kind.name(),
                actual: info.kind().name(),
            });
        }
        Ok(Handle {
            store: store.inner.clone(),
            info,
            codec,
        })
    }

    fn cf(&self) -> Result<&ColumnFamily> {
        self.store.cf(&self.info.cf)
    }

    fn key(&self, key: &[u8], user_key: &[u8]) -> Result<Vec<u8>> {
        let kg = self.store.owned_key_group(key)?;
        let mut out = Vec::with_capacity(8 + key.len() + user_key.len());
        encode_key(&mut out, kg, key, user_key)?;
        Ok(out)
    }

    fn encode(&self, value: &C::Value) -> Result<Vec<u8>> {
        self.encode_with_expiry(value, self.store.expiry_for(&self.info))
    }

    fn encode_with_expiry(&self, value: &C::Value, expiry: Option<i64>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        envelope::write_header(&mut out, self.info.schemas.current_version(), expiry);
        self.codec
            .encode(value, &mut out)
            .map_err(|reason| StateError::Encode {
                state: self.info.name().to_string(),
                reason,
            })?;
        Ok(out)
    }

    /// Decodes one envelope; `None` when it has expired.
    fn decode(&self, raw: &[u8]) -> Result<Option<C::Value>> {
        let env =
            Envelope::parse(raw).map_err(|e| self.corrupt("value envelope", e.to_string()))?;
        self.decode_envelope(&env)
    }

    fn decode_envelope(&self, env: &Envelope<'_>) -> Result<Option<C::Value>> {
        if self.store.is_expired(&self.info, env) {
            return Ok(None);
        }
        let mut scratch = Vec::new();
        let avro = self
            .info
            .schemas
            .to_current(env.schema_version, env.payload, &mut scratch)?;
        self.codec
            .decode(avro)
            .map(Some)
            .map_err(|reason| self.corrupt("value", reason))
    }

    fn corrupt(&self, what: &'static str, reason: String) -> StateError {
        StateError::Corrupt {
            state: self.info.name().to_string(),
            what,
            reason,
        }
    }

    fn put_raw(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.store.note_written(key.len() + value.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(self.cf()?, key, value);
        self.store.write(batch, "put")
    }

    fn delete_raw(&self, key: &[u8]) -> Result<()> {
        self.store.note_written(key.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(self.cf()?, key);
        self.store.write(batch, "delete")
    }

    fn get_raw(&self, key: &[u8]) -> Result<Option<rocksdb::DBPinnableSlice<'_>>> {
        self.store
            .db
            .get_pinned_cf(self.cf()?, key)
            .map_err(StateError::rocks(format!(
                "get from '{}'",
                self.info.name()
            )))
    }
}

/// One value per key.
pub struct ValueState<C> {
    h: Handle<C>,
}

impl<C: ValueCodec> ValueState<C> {
    pub fn get(&self, key: &[u8]) -> Result<Option<C::Value>> {
        let k = self.h.key(key, b"")?;
        match self.h.get_raw(&k)? {
            Some(raw) => self.h.decode(&raw),
            None => Ok(None),
        }
    }

    pub fn put(&self, key: &[u8], value: &C::Value) -> Result<()> {
        let k = self.h.key(key, b"")?;
        let v = self.h.encode(value)?;
        self.h.put_raw(&k, &v)
    }

    pub fn clear(&self, key: &[u8]) -> Result<()> {
        let k = self.h.key(key, b"")?;
        self.h.delete_raw(&k)
    }
}

/// A list of values per key; `add` is a RocksDB merge (no read).
pub struct ListState<C> {
    h: Handle<C>,
}

impl<C: ValueCodec> ListState<C> {
    pub fn get(&self, key: &[u8]) -> Result<Vec<C::Value>> {
        let k = self.h.key(key, b"")?;
        let Some(raw) = self.h.get_raw(&k)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for element in envelope::list_elements(&raw) {
            let env = element.map_err(|e| self.h.corrupt("list element", e.to_string()))?;
            if let Some(v) = self.h.decode_envelope(&env)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub fn add(&self, key: &[u8], value: &C::Value) -> Result<()> {
        let k = self.h.key(key, b"")?;
        let mut operand = Vec::new();
        envelope::push_list_element(&mut operand, &self.h.encode(value)?);
        self.h.store.note_written(k.len() + operand.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.merge_cf(self.h.cf()?, &k, &operand);
        self.h.store.write(batch, "list append")
    }

    /// Replaces the whole list.
    pub fn update(&self, key: &[u8], values: &[C::Value]) -> Result<()> {
        let k = self.h.key(key, b"")?;
        let mut raw = Vec::new();
        for v in values {
            envelope::push_list_element(&mut raw, &self.h.encode(v)?);
        }
        if raw.is_empty() {
            return self.h.delete_raw(&k);
        }
        self.h.put_raw(&k, &raw)
    }

    pub fn clear(&self, key: &[u8]) -> Result<()> {
        let k = self.h.key(key, b"")?;
        self.h.delete_raw(&k)
    }
}

/// A sorted map of user keys to values per key. User keys iterate in byte
/// order: encode them with [`crate::keys::OrderedKey`] to get value order.
pub struct MapState<C> {
    h: Handle<C>,
}

impl<C: ValueCodec> MapState<C> {
    pub fn get(&self, key: &[u8], user_key: &[u8]) -> Result<Option<C::Value>> {
        let k = self.h.key(key, user_key)?;
        match self.h.get_raw(&k)? {
            Some(raw) => self.h.decode(&raw),
            None => Ok(None),
        }
    }

    pub fn put(&self, key: &[u8], user_key: &[u8], value: &C::Value) -> Result<()> {
        let k = self.h.key(key, user_key)?;
        let v = self.h.encode(value)?;
        self.h.put_raw(&k, &v)
    }

    pub fn remove(&self, key: &[u8], user_key: &[u8]) -> Result<()> {
        let k = self.h.key(key, user_key)?;
        self.h.delete_raw(&k)
    }

    /// All live entries of `key` in user-key order.
    pub fn entries(&self, key: &[u8]) -> Result<Vec<(Vec<u8>, C::Value)>> {
        let mut out = Vec::new();
        self.for_each_in_range(key, Bound::Unbounded, Bound::Unbounded, |uk, v| {
            out.push((uk.to_vec(), v));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Entries of `key` whose user key lies in the range, in order.
    pub fn range(
        &self,
        key: &[u8],
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, C::Value)>> {
        let mut out = Vec::new();
        self.for_each_in_range(key, from, to, |uk, v| {
            out.push((uk.to_vec(), v));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits entries of `key` with user key in the range, in order, until
    /// `f` returns `false`. Expired entries are skipped.
    pub fn for_each_in_range<F>(
        &self,
        key: &[u8],
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        mut f: F,
    ) -> Result<()>
    where
        F: FnMut(&[u8], C::Value) -> Result<bool>,
    {
        let prefix = self.h.key(key, b"")?;
        let (lower, upper) = range_bounds(&prefix, from, to);
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        ro.set_iterate_lower_bound(lower.clone());
        if let Some(u) = upper {
            ro.set_iterate_upper_bound(u);
        }
        let mut it = self.h.store.db.raw_iterator_cf_opt(self.h.cf()?, ro);
        it.seek(&lower);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let user_key = &k[prefix.len()..];
            if let Bound::Excluded(ex) = from {
                if user_key == ex {
                    it.next();
                    continue;
                }
            }
            if let Some(value) = self.h.decode(v)? {
                if !f(user_key, value)? {
                    return Ok(());
                }
            }
            it.next();
        }
        it.status().map_err(StateError::rocks(format!(
            "scan of '{}'",
            self.h.info.name()
        )))
    }

    /// Removes every entry of `key` with user key in `[from, to)` with one
    /// range tombstone (no read).
    pub fn remove_range(&self, key: &[u8], from: &[u8], to: &[u8]) -> Result<()> {
        let lo = self.h.key(key, from)?;
        let hi = self.h.key(key, to)?;
        // Counted as changed state: a checkpoint's slice budget follows it.
        self.h.store.note_written(lo.len() + hi.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range_cf(self.h.cf()?, &lo, &hi);
        self.h.store.write(batch, "range delete")
    }

    /// Adds a put to `batch` (visible once the batch is committed).
    pub fn put_in(
        &self,
        batch: &mut StateBatch,
        key: &[u8],
        user_key: &[u8],
        value: &C::Value,
    ) -> Result<()> {
        let k = self.h.key(key, user_key)?;
        let v = self.h.encode(value)?;
        batch.put(self.h.cf()?, &k, &v);
        Ok(())
    }

    /// Adds a put with its own expiry (the state must have a TTL, whose time
    /// domain the expiry is in): for entries whose useful life follows from
    /// their content, such as an event buffered until the watermark passes
    /// its timestamp plus a window.
    pub fn put_expiring_in(
        &self,
        batch: &mut StateBatch,
        key: &[u8],
        user_key: &[u8],
        value: &C::Value,
        expiry_ms: i64,
    ) -> Result<()> {
        if self.h.info.meta.descriptor.ttl.is_none() {
            return Err(StateError::InvalidOption(format!(
                "state '{}' has no TTL: an explicit expiry would never be honoured",
                self.h.info.name()
            )));
        }
        let k = self.h.key(key, user_key)?;
        let v = self.h.encode_with_expiry(value, Some(expiry_ms))?;
        batch.put(self.h.cf()?, &k, &v);
        Ok(())
    }

    /// Adds a point delete to `batch`.
    pub fn remove_in(&self, batch: &mut StateBatch, key: &[u8], user_key: &[u8]) -> Result<()> {
        let k = self.h.key(key, user_key)?;
        batch.delete(self.h.cf()?, &k);
        Ok(())
    }

    /// Removes the entries of `key` whose user key is below `to` (exclusive),
    /// reading them first so that only live keys get point tombstones (range
    /// tombstones pile up when issued per key). Returns how many it removed.
    pub fn remove_below(&self, key: &[u8], to: &[u8]) -> Result<usize> {
        let prefix = self.h.key(key, b"")?;
        let mut upper = prefix.clone();
        upper.extend_from_slice(to);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper);
        let cf = self.h.cf()?;
        let mut it = self.h.store.db.raw_iterator_cf_opt(cf, ro);
        it.seek(&prefix);
        let mut batch = rocksdb::WriteBatch::default();
        let mut removed = 0;
        while let Some(k) = it.key() {
            batch.delete_cf(cf, k);
            removed += 1;
            it.next();
        }
        it.status().map_err(StateError::rocks(format!(
            "scan of '{}'",
            self.h.info.name()
        )))?;
        if removed > 0 {
            self.h.store.note_written(batch.size_in_bytes());
            self.h.store.write(batch, "delete below")?;
        }
        Ok(removed)
    }

    /// Removes all entries of `key`.
    pub fn clear(&self, key: &[u8]) -> Result<()> {
        let prefix = self.h.key(key, b"")?;
        let end = keys::prefix_successor(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
        self.h.store.note_written(prefix.len() + end.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range_cf(self.h.cf()?, &prefix, &end);
        self.h.store.write(batch, "clear")
    }

    pub fn is_empty(&self, key: &[u8]) -> Result<bool> {
        let mut empty = true;
        self.for_each_in_range(key, Bound::Unbounded, Bound::Unbounded, |_, _| {
            empty = false;
            Ok(false)
        })?;
        Ok(empty)
    }
}

/// RocksDB iterate bounds for a user-key range under `prefix`. An excluded
/// lower bound is skipped by the caller (it is at most one key).
fn range_bounds(prefix: &[u8], from: Bound<&[u8]>, to: Bound<&[u8]>) -> (Vec<u8>, Option<Vec<u8>>) {
    let join = |suffix: &[u8]| {
        let mut v = prefix.to_vec();
        v.extend_from_slice(suffix);
        v
    };
    let lower = match from {
        Bound::Included(b) | Bound::Excluded(b) => join(b),
        Bound::Unbounded => prefix.to_vec(),
    };
    let upper = match to {
        Bound::Excluded(b) => Some(join(b)),
        // The smallest key greater than `prefix ++ b` is `prefix ++ b ++ [0]`.
        Bound::Included(b) => {
            let mut v = join(b);
            v.push(0);
            Some(v)
        }
        Bound::Unbounded => keys::prefix_successor(prefix),
    };
    (lower, upper)
}

impl StateStore {
    pub fn value_state<C: ValueCodec>(&self, name: &str, codec: C) -> Result<ValueState<C>> {
        Ok(ValueState {
            h: Handle::new(self, name, StateKind::Value, codec)?,
        })
    }

    pub fn list_state<C: ValueCodec>(&self, name: &str, codec: C) -> Result<ListState<C>> {
        Ok(ListState {
            h: Handle::new(self, name, StateKind::List, codec)?,
        })
    }

    pub fn map_state<C: ValueCodec>(&self, name: &str, codec: C) -> Result<MapState<C>> {
        Ok(MapState {
            h: Handle::new(self, name, StateKind::Map, codec)?,
        })
    }

    /// The state's current schema, for building codecs.
    pub fn current_schema(&self, name: &str) -> Result<schema_registry::AvroSchema> {
        Ok(self.inner.state(name)?.schemas.current().clone())
    }

    pub fn value_state_serde<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<ValueState<SerdeAvro<T>>> {
        self.value_state(name, SerdeAvro::new(self.current_schema(name)?))
    }

    pub fn list_state_serde<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<ListState<SerdeAvro<T>>> {
        self.list_state(name, SerdeAvro::new(self.current_schema(name)?))
    }

    pub fn map_state_serde<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<MapState<SerdeAvro<T>>> {
        self.map_state(name, SerdeAvro::new(self.current_schema(name)?))
    }
}
