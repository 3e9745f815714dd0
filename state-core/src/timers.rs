//! Event-time timers, kept in RocksDB so they survive restore.
//!
//! Layout (column family `__timers`, docs/state-format.md "Timers"):
//! `[timestamp: ordered i64][key group: u16 BE][key length: u16 BE][key][payload]`,
//! empty value. The payload is the caller's: what to do when the timer fires
//! (the join puts there the entry the timer expires, so firing deletes it by
//! a point delete instead of a scan).
//! Timestamp first, unlike state: firing "everything up to the watermark" is
//! the hot path and becomes one forward scan; restoring a sub-range filters by
//! the key group that follows (rare).

use crate::batch::StateBatch;
use crate::error::{Result, StateError};
use crate::keygroup::KeyGroupRange;
use crate::keys::{decode_ordered_i64, ordered_i64};
use crate::store::{StateStore, StoreInner, TIMERS_CF};
use rocksdb::ReadOptions;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub timestamp: i64,
    pub key_group: u16,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Registers, deletes and fires timers of one store.
///
/// A service is scoped to a key-group range: each operator instance sharing
/// a store fires only its own timers.
///
/// Fired timers leave tombstones at the front of the column family; a scan
/// from the very start would step over all of them on every call (the
/// classic RocksDB queue problem). So a service remembers the watermark it
/// has fired through and starts scans there; a timer it registers at or
/// below that watermark is moved just above it, so it fires on the next call.
/// Each service has its own mark: use one service per instance.
pub struct TimerService {
    store: Arc<StoreInner>,
    range: KeyGroupRange,
    fired_through: AtomicI64,
}

pub(crate) fn timer_key(
    timestamp: i64,
    key_group: u16,
    key: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>> {
    if key.len() > crate::keys::MAX_KEY_LEN {
        return Err(StateError::KeyTooLong {
            len: key.len(),
            max: crate::keys::MAX_KEY_LEN,
        });
    }
    let mut out = Vec::with_capacity(12 + key.len() + payload.len());
    out.extend_from_slice(&ordered_i64(timestamp));
    out.extend_from_slice(&key_group.to_be_bytes());
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    Ok(out)
}

pub(crate) fn decode_timer_key(raw: &[u8]) -> Option<Timer> {
    let timestamp = decode_ordered_i64(raw)?;
    let kg = raw.get(8..10)?;
    let len = raw.get(10..12)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let key = raw.get(12..12 + len)?;
    Some(Timer {
        timestamp,
        key_group: u16::from_be_bytes([kg[0], kg[1]]),
        key: key.to_vec(),
        payload: raw[12 + len..].to_vec(),
    })
}

impl TimerService {
    /// Registers a timer for `key` at `timestamp` (idempotent).
    pub fn register(&self, key: &[u8], timestamp: i64) -> Result<()> {
        self.register_with(key, timestamp, b"")
    }

    /// Registers a timer carrying `payload` (a timer is identified by
    /// timestamp, key and payload together).
    pub fn register_with(&self, key: &[u8], timestamp: i64, payload: &[u8]) -> Result<()> {
        let k = self.key_for(key, timestamp, payload)?;
        let cf = self.store.cf(TIMERS_CF)?;
        self.store.note_written(k.len());
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, k, []);
        self.store.write(batch, "register timer")
    }

    /// Registers a timer as part of a batch of writes.
    pub fn register_in(
        &self,
        batch: &mut StateBatch,
        key: &[u8],
        timestamp: i64,
        payload: &[u8],
    ) -> Result<()> {
        let k = self.key_for(key, timestamp, payload)?;
        batch.put(self.store.cf(TIMERS_CF)?, &k, &[]);
        Ok(())
    }

    fn key_for(&self, key: &[u8], timestamp: i64, payload: &[u8]) -> Result<Vec<u8>> {
        let kg = self.owned(key)?;
        let fired = self.fired_through.load(Ordering::Relaxed);
        let timestamp = if timestamp <= fired {
            fired.saturating_add(1)
        } else {
            timestamp
        };
        timer_key(timestamp, kg, key, payload)
    }

    pub fn delete(&self, key: &[u8], timestamp: i64) -> Result<()> {
        self.delete_with(key, timestamp, b"")
    }

    pub fn delete_with(&self, key: &[u8], timestamp: i64, payload: &[u8]) -> Result<()> {
        let kg = self.owned(key)?;
        let cf = self.store.cf(TIMERS_CF)?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(cf, timer_key(timestamp, kg, key, payload)?);
        self.store.write(batch, "delete timer")
    }

    /// Removes and returns up to `limit` timers with timestamp `<= watermark`,
    /// in timestamp order. Bounded so that a watermark jump (end of input)
    /// fires in batches and never stalls a checkpoint.
    pub fn fire_due(&self, watermark: i64, limit: usize, out: &mut Vec<Timer>) -> Result<usize> {
        let upper = (watermark != i64::MAX).then(|| ordered_i64(watermark + 1).to_vec());
        let fired = self.fire_range(upper, limit, out)?;
        if fired < limit {
            // Everything up to the watermark has fired.
            self.fired_through.fetch_max(watermark, Ordering::Relaxed);
        }
        Ok(fired)
    }

    fn fire_range(
        &self,
        upper: Option<Vec<u8>>,
        limit: usize,
        out: &mut Vec<Timer>,
    ) -> Result<usize> {
        let cf = self.store.cf(TIMERS_CF)?;
        let mut ro = ReadOptions::default();
        if let Some(u) = upper {
            ro.set_iterate_upper_bound(u);
        }
        let fired_through = self.fired_through.load(Ordering::Relaxed);
        let lower = (fired_through != i64::MIN)
            .then(|| ordered_i64(fired_through.saturating_add(1)).to_vec());
        if let Some(l) = &lower {
            ro.set_iterate_lower_bound(l.clone());
        }
        let mut it = self.store.db.raw_iterator_cf_opt(cf, ro);
        match &lower {
            Some(l) => it.seek(l),
            None => it.seek_to_first(),
        }
        let mut batch = rocksdb::WriteBatch::default();
        let mut fired = 0;
        while fired < limit {
            let Some(k) = it.key() else { break };
            let timer = decode_timer_key(k).ok_or_else(|| StateError::Corrupt {
                state: TIMERS_CF.into(),
                what: "timer key",
                reason: format!("{} bytes", k.len()),
            })?;
            let mine = self.range.contains(timer.key_group);
            if mine {
                batch.delete_cf(cf, k);
            }
            it.next();
            if mine {
                out.push(timer);
                fired += 1;
            }
        }
        it.status().map_err(StateError::rocks("scan timers"))?;
        if fired > 0 {
            self.store.note_written(batch.size_in_bytes());
            self.store.write(batch, "delete fired timers")?;
        }
        Ok(fired)
    }

    fn owned(&self, key: &[u8]) -> Result<u16> {
        let kg = self.store.owned_key_group(key)?;
        if !self.range.contains(kg) {
            return Err(StateError::KeyGroupNotOwned {
                key_group: kg,
                range: self.range,
            });
        }
        Ok(kg)
    }

    /// Timestamp of the earliest registered timer.
    pub fn next_timestamp(&self) -> Result<Option<i64>> {
        let cf = self.store.cf(TIMERS_CF)?;
        let mut it = self.store.db.raw_iterator_cf(cf);
        it.seek_to_first();
        let next = it.key().and_then(decode_ordered_i64);
        it.status().map_err(StateError::rocks("scan timers"))?;
        Ok(next)
    }

    /// Every timer, in timestamp order (tools, savepoints).
    pub fn all(&self) -> Result<Vec<Timer>> {
        let cf = self.store.cf(TIMERS_CF)?;
        let mut it = self.store.db.raw_iterator_cf(cf);
        it.seek_to_first();
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            if let Some(t) = decode_timer_key(k).filter(|t| self.range.contains(t.key_group)) {
                out.push(t);
            }
            it.next();
        }
        it.status().map_err(StateError::rocks("scan timers"))?;
        Ok(out)
    }
}

impl StateStore {
    /// Timers of all key groups of this store.
    pub fn timers(&self) -> TimerService {
        self.timers_for(self.inner.key_groups)
    }

    /// Timers of one instance's key groups.
    pub fn timers_for(&self, range: KeyGroupRange) -> TimerService {
        TimerService {
            store: self.inner.clone(),
            range,
            fired_through: AtomicI64::new(i64::MIN),
        }
    }
}
