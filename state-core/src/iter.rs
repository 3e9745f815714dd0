//! Raw access by key-group range, for checkpoints, savepoints and tools:
//! entries as stored (envelopes untouched), and raw writes that keep them so.

use crate::error::{Result, StateError};
use crate::keygroup::KeyGroupRange;
use crate::keys;
use crate::store::{StateStore, TIMERS_CF};
use crate::timers::{decode_timer_key, Timer};
use rocksdb::{ReadOptions, WriteBatch, DB};

/// One stored RocksDB entry of a state. `value` is the envelope (or, for list
/// state, the sequence of `[len][envelope]` elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub key_group: u16,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
    pub user_key: Vec<u8>,
    pub value: Vec<u8>,
}

pub struct StateScan<'a> {
    it: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
    state: String,
    failed: bool,
}

impl Iterator for StateScan<'_> {
    type Item = Result<RawEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let Some((k, v)) = self.it.item() else {
            return self.it.status().err().map(|e| {
                self.failed = true;
                Err(StateError::RocksDb {
                    context: format!("scan of '{}'", self.state),
                    source: e,
                })
            });
        };
        let entry = match keys::decode(k) {
            Some(d) => Ok(RawEntry {
                key_group: d.key_group,
                key: d.key.to_vec(),
                namespace: d.namespace.to_vec(),
                user_key: d.user_key.to_vec(),
                value: v.to_vec(),
            }),
            None => {
                self.failed = true;
                Err(StateError::Corrupt {
                    state: self.state.clone(),
                    what: "key",
                    reason: format!("{} bytes do not decode", k.len()),
                })
            }
        };
        self.it.next();
        Some(entry)
    }
}

impl StateStore {
    /// Entries of `state` in the key groups of `range`, in key order.
    pub fn scan(&self, state: &str, range: KeyGroupRange) -> Result<StateScan<'_>> {
        let info = self.inner.state(state)?;
        let cf = self.inner.cf(&info.cf)?;
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::key_group_end_exclusive(range.end));
        // A scan of everything should not evict the operator's working set.
        ro.fill_cache(false);
        // Crosses key prefixes: prefix bloom filters must not be used.
        ro.set_total_order_seek(true);
        let mut it = self.inner.db.raw_iterator_cf_opt(cf, ro);
        it.seek(keys::key_group_start(range.start));
        Ok(StateScan {
            it,
            state: state.to_string(),
            failed: false,
        })
    }

    /// Timers whose key group is in `range`, in timestamp order.
    pub fn scan_timers(&self, range: KeyGroupRange) -> Result<Vec<Timer>> {
        Ok(self
            .timers()
            .all()?
            .into_iter()
            .filter(|t| range.contains(t.key_group))
            .collect())
    }

    /// Avro binary of a stored payload under the state's current schema.
    pub fn to_current_avro(
        &self,
        state: &str,
        schema_version: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>> {
        let info = self.inner.state(state)?;
        let mut scratch = Vec::new();
        Ok(info
            .schemas
            .to_current(schema_version, payload, &mut scratch)?
            .to_vec())
    }

    /// Starts a batch of raw writes (restore from a savepoint, migration).
    pub fn raw_writer(&self) -> RawWriter<'_> {
        RawWriter {
            store: self,
            batch: WriteBatch::default(),
        }
    }

    /// Deletes every key group outside `keep` from all states and timers:
    /// what an instance does after restoring a checkpoint taken at another
    /// parallelism.
    pub fn retain_key_groups(&self, keep: KeyGroupRange) -> Result<()> {
        let inner = &self.inner;
        let mut ranges = WriteBatch::default();
        for info in inner.states.values() {
            let cf = inner.cf(&info.cf)?;
            if keep.start > 0 {
                ranges.delete_range_cf(
                    cf,
                    keys::key_group_start(0),
                    keys::key_group_start(keep.start),
                );
            }
            ranges.delete_range_cf(cf, keys::key_group_end_exclusive(keep.end), vec![0xff; 3]);
        }
        inner.write(ranges, "dropping key groups")?;
        let cf = inner.cf(TIMERS_CF)?;
        let mut batch = WriteBatch::default();
        let mut it = inner.db.raw_iterator_cf(cf);
        it.seek_to_first();
        while let Some(k) = it.key() {
            if decode_timer_key(k).is_some_and(|t| !keep.contains(t.key_group)) {
                batch.delete_cf(cf, k);
            }
            it.next();
        }
        it.status().map_err(StateError::rocks("scan timers"))?;
        inner.write(batch, "dropping timers")?;
        self.flush()
    }
}

/// Raw writes, applied together by [`RawWriter::commit`] (or in chunks of
/// ~64 MiB by [`RawWriter::maybe_commit`] for bulk loads).
pub struct RawWriter<'a> {
    store: &'a StateStore,
    batch: WriteBatch,
}

impl RawWriter<'_> {
    pub fn put(&mut self, state: &str, entry: &RawEntry) -> Result<()> {
        let inner = &self.store.inner;
        if !inner.key_groups.contains(entry.key_group) {
            return Err(StateError::KeyGroupNotOwned {
                key_group: entry.key_group,
                range: inner.key_groups,
            });
        }
        let info = inner.state(state)?;
        let cf = inner.cf(&info.cf)?;
        let mut k = Vec::new();
        k.clear();
        keys::encode_prefix(&mut k, entry.key_group, &entry.key, &entry.namespace)?;
        k.extend_from_slice(&entry.user_key);
        self.batch.put_cf(cf, k, &entry.value);
        Ok(())
    }

    /// Puts an entry of a bucket run into the map state `state` (committing
    /// in chunks as [`Self::maybe_commit`] does).
    pub fn put_run_entry(
        &mut self,
        state: &str,
        e: &crate::bucket::run::RunEntry<'_>,
    ) -> Result<()> {
        let entry = RawEntry {
            key_group: e.key_group,
            key: e.key.to_vec(),
            namespace: Vec::new(),
            user_key: e.user_key.to_vec(),
            value: e.value.to_vec(),
        };
        self.put(state, &entry)?;
        self.maybe_commit()
    }

    /// Writes every entry of a bucketed state into the map state of the
    /// same name: how savepoints and tools see a bucketed state (a map
    /// state whose user key orders its entries by time). Returns how many.
    pub fn put_bucketed<K, U, C>(
        &mut self,
        state: &mut crate::bucket::BucketedState<K, U, C>,
    ) -> Result<u64>
    where
        K: crate::bucket::BucketKey,
        U: crate::bucket::BucketKey,
        C: crate::codec::ValueCodec + 'static,
        C::Value: crate::bucket::HeapSize + Clone + Send + Sync + 'static,
    {
        let name = state.name().to_string();
        let mut n = 0u64;
        let written = state.for_each_encoded(|e| {
            n += 1;
            self.put_run_entry(&name, e)
                .map_err(|e| crate::bucket::BucketError::Callback(Box::new(e)))
        });
        match written {
            Ok(()) => Ok(n),
            Err(crate::bucket::BucketError::Callback(e)) => match e.downcast::<StateError>() {
                Ok(e) => Err(*e),
                Err(e) => Err(StateError::InvalidOption(e.to_string())),
            },
            Err(e) => Err(e.into()),
        }
    }

    pub fn put_timer(&mut self, timer: &Timer) -> Result<()> {
        let inner = &self.store.inner;
        if !inner.key_groups.contains(timer.key_group) {
            return Err(StateError::KeyGroupNotOwned {
                key_group: timer.key_group,
                range: inner.key_groups,
            });
        }
        let cf = inner.cf(TIMERS_CF)?;
        let k =
            crate::timers::timer_key(timer.timestamp, timer.key_group, &timer.key, &timer.payload)?;
        self.batch.put_cf(cf, k, []);
        Ok(())
    }

    /// Writes what is pending when it has grown past 64 MiB.
    pub fn maybe_commit(&mut self) -> Result<()> {
        if self.batch.size_in_bytes() >= 64 << 20 {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.store.inner.note_written(batch.size_in_bytes());
        self.store.inner.write(batch, "raw write")
    }

    pub fn commit(mut self) -> Result<()> {
        self.write()
    }
}
