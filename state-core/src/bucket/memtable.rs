//! The in-memory part of a bucket: entries per key, sorted by user key.

use super::run::{RunEntry, RunInfo, RunWriter};
use super::{BucketError, BucketKey, HeapSize};
use crate::codec::ValueCodec;
use crate::envelope;
use crate::keygroup::key_group_of;
use rustc_hash::FxHashMap;
use std::path::Path;

pub struct Item<U, V> {
    pub ts: i64,
    pub user_key: U,
    pub value: V,
}

/// Rough bytes a key's vector and hash slot cost besides the items.
const KEY_OVERHEAD: usize = 64;

/// A part's table: per key, its items in user-key (time) order.
pub type Table<K, U, V> = FxHashMap<K, Vec<Item<U, V>>>;

pub(crate) struct MemPart<K, U, V> {
    pub map: Table<K, U, V>,
    pub entries: usize,
    pub bytes: usize,
}

impl<K: BucketKey, U: BucketKey, V: HeapSize> MemPart<K, U, V> {
    pub fn new() -> Self {
        Self::with_map(FxHashMap::default())
    }

    /// A part reusing the (cleared) table of an expired one: a bucket's
    /// table grows to about a bucket's keys, and growing it again for every
    /// bucket (rehashes, fresh pages zeroed by the kernel) cost a fifth of
    /// the job's CPU on a dense workload.
    pub fn with_map(mut map: Table<K, U, V>) -> Self {
        map.clear();
        MemPart {
            map,
            entries: 0,
            bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds an entry; one with the same user key is replaced, as a map
    /// state's put does. Returns the change in bytes held.
    pub fn insert(&mut self, key: K, user_key: U, ts: i64, value: V) -> isize {
        let size = entry_bytes::<U, V>(&value);
        let mut added = size as isize;
        let list = self.map.entry(key).or_insert_with(|| {
            added += KEY_OVERHEAD as isize;
            Vec::with_capacity(1)
        });
        // Events arrive nearly in order: the search usually ends at the tail.
        let at = if list.last().is_none_or(|i| i.user_key < user_key) {
            list.len()
        } else {
            list.partition_point(|i| i.user_key < user_key)
        };
        let item = Item {
            ts,
            user_key,
            value,
        };
        match list.get_mut(at) {
            Some(old) if old.user_key == item.user_key => {
                added -= entry_bytes::<U, V>(&old.value) as isize;
                *old = item;
            }
            _ => {
                list.insert(at, item);
                self.entries += 1;
            }
        }
        self.bytes = (self.bytes as isize + added).max(0) as usize;
        added
    }

    pub fn get(&self, key: &K) -> &[Item<U, V>] {
        self.map.get(key).map_or(&[], |v| &v[..])
    }

    /// Writes every entry, in run order, to a new run at `path`.
    pub fn write_run<C: ValueCodec<Value = V>>(
        &self,
        path: &Path,
        bucket_start: i64,
        codec: &C,
        schema_version: u16,
        max_parallelism: u16,
        state: &str,
    ) -> Result<RunInfo, BucketError> {
        let mut keys: Vec<(u16, &K)> = self
            .map
            .keys()
            .map(|k| (key_group_of(k.as_ref(), max_parallelism), k))
            .collect();
        keys.sort_unstable_by(|a, b| (a.0, a.1.as_ref()).cmp(&(b.0, b.1.as_ref())));
        let mut w = RunWriter::create(path, bucket_start)?;
        let mut value = Vec::with_capacity(256);
        let result = (|| {
            for (kg, key) in keys {
                for item in self.get(key) {
                    value.clear();
                    envelope::write_header(&mut value, schema_version, None);
                    codec
                        .encode(&item.value, &mut value)
                        .map_err(|reason| BucketError::Codec {
                            state: state.to_string(),
                            reason,
                        })?;
                    w.add(&RunEntry {
                        key_group: kg,
                        key: key.as_ref(),
                        user_key: item.user_key.as_ref(),
                        ts: item.ts,
                        value: &value,
                    })?;
                }
            }
            w.finish()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }
}

fn entry_bytes<U, V: HeapSize>(value: &V) -> usize {
    std::mem::size_of::<Item<U, V>>() + value.heap_bytes()
}
