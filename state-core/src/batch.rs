//! Batched writes across states and timers, applied with one RocksDB write.
//!
//! An operator that buffers the writes of a whole input batch pays the
//! write path's fixed cost (locking, sequence numbers) once. Reads do not see
//! a batch until it is committed: callers commit before reading a key they
//! have written in the pending batch.

use crate::error::Result;
use crate::store::StateStore;
use rocksdb::ColumnFamily;

pub struct StateBatch {
    store: StateStore,
    batch: rocksdb::WriteBatch,
    ops: usize,
}

impl StateBatch {
    pub fn new(store: &StateStore) -> Self {
        StateBatch {
            store: store.clone(),
            batch: rocksdb::WriteBatch::default(),
            ops: 0,
        }
    }

    pub(crate) fn put(&mut self, cf: &ColumnFamily, key: &[u8], value: &[u8]) {
        self.batch.put_cf(cf, key, value);
        self.ops += 1;
    }

    pub(crate) fn delete(&mut self, cf: &ColumnFamily, key: &[u8]) {
        self.batch.delete_cf(cf, key);
        self.ops += 1;
    }

    /// Writes pending in the batch.
    pub fn len(&self) -> usize {
        self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// Applies every pending write at once and empties the batch.
    pub fn commit(&mut self) -> Result<()> {
        if self.ops == 0 {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.ops = 0;
        let inner = &self.store.inner;
        inner.note_written(batch.size_in_bytes());
        inner.write(batch, "batch write")
    }
}
