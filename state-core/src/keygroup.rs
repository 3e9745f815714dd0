//! Key groups: the unit of rescaling.
//!
//! A key's group is `xxh3_64(serialized key) % max_parallelism`. xxh3 is a
//! published, seedless, platform-independent hash, so the assignment is
//! stable across releases and machines (it is part of the on-disk format:
//! docs/state-format.md). Operator instances own contiguous ranges computed
//! exactly as Flink's `KeyGroupRangeAssignment` does, so a rescale moves whole
//! key groups and each instance's state is one contiguous range of RocksDB keys.

use crate::error::{Result, StateError};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_PARALLELISM: u16 = 128;
pub const MAX_MAX_PARALLELISM: u16 = 32768;

/// An inclusive range of key groups `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    pub start: u16,
    pub end: u16,
}

impl KeyGroupRange {
    pub fn new(start: u16, end: u16) -> Result<Self> {
        if start > end {
            return Err(StateError::InvalidOption(format!(
                "key-group range [{start}, {end}] is empty"
            )));
        }
        Ok(KeyGroupRange { start, end })
    }

    /// All key groups of a store with this max parallelism.
    pub fn all(max_parallelism: u16) -> Self {
        KeyGroupRange {
            start: 0,
            end: max_parallelism.saturating_sub(1),
        }
    }

    pub fn contains(&self, key_group: u16) -> bool {
        (self.start..=self.end).contains(&key_group)
    }

    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    /// The range that instance `index` of `parallelism` owns, as Flink's
    /// `computeKeyGroupRangeForOperatorIndex`.
    pub fn for_operator(max_parallelism: u16, parallelism: u16, index: u16) -> Result<Self> {
        check_max_parallelism(max_parallelism)?;
        if parallelism == 0 || parallelism > max_parallelism {
            return Err(StateError::InvalidOption(format!(
                "parallelism {parallelism} must be in 1..={max_parallelism} (max parallelism)"
            )));
        }
        if index >= parallelism {
            return Err(StateError::InvalidOption(format!(
                "operator index {index} must be below parallelism {parallelism}"
            )));
        }
        let (m, p, i) = (
            u32::from(max_parallelism),
            u32::from(parallelism),
            u32::from(index),
        );
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m).div_ceil(p) - 1;
        // Both fit: start <= end < max_parallelism <= 32768.
        Ok(KeyGroupRange {
            start: start as u16,
            end: end as u16,
        })
    }
}

impl std::fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.start, self.end)
    }
}

pub fn check_max_parallelism(max_parallelism: u16) -> Result<()> {
    if max_parallelism == 0 || max_parallelism > MAX_MAX_PARALLELISM {
        return Err(StateError::InvalidOption(format!(
            "max_parallelism {max_parallelism} must be in 1..={MAX_MAX_PARALLELISM}"
        )));
    }
    Ok(())
}

/// The key group of a serialized key.
#[inline]
pub fn key_group_of(key: &[u8], max_parallelism: u16) -> u16 {
    let h = xxhash_rust::xxh3::xxh3_64(key);
    (h % u64::from(max_parallelism.max(1))) as u16
}

/// The operator instance that owns a key group, as Flink's
/// `computeOperatorIndexForKeyGroup`.
pub fn operator_for_key_group(max_parallelism: u16, parallelism: u16, key_group: u16) -> u16 {
    (u32::from(key_group) * u32::from(parallelism) / u32::from(max_parallelism.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranges_partition_all_key_groups(maxp in 1u16..=2048, p_seed in 1u16..=2048) {
            let p = 1 + (p_seed - 1) % maxp;
            let mut next = 0u32;
            for i in 0..p {
                let r = KeyGroupRange::for_operator(maxp, p, i).unwrap();
                prop_assert_eq!(u32::from(r.start), next);
                prop_assert!(r.start <= r.end);
                for kg in r.iter() {
                    prop_assert_eq!(operator_for_key_group(maxp, p, kg), i);
                }
                next = u32::from(r.end) + 1;
            }
            prop_assert_eq!(next, u32::from(maxp));
        }

        #[test]
        fn key_group_in_range(key in proptest::collection::vec(any::<u8>(), 0..64), maxp in 1u16..=32768) {
            prop_assert!(key_group_of(&key, maxp) < maxp);
        }
    }

    #[test]
    fn key_group_is_stable() {
        // Pinned values, computed with an independent XXH3 implementation
        // (Python's `xxhash.xxh3_64_intdigest`): the assignment is part of
        // the on-disk format and must never change.
        assert_eq!(key_group_of(b"abc", 128), 80);
        assert_eq!(key_group_of(b"profile-42", 128), 62);
        assert_eq!(key_group_of(b"", 128), 66);
        assert_eq!(key_group_of(b"abc", 32768), 14672);
        assert_eq!(key_group_of(b"profile-42", 32768), 574);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(KeyGroupRange::for_operator(0, 1, 0).is_err());
        assert!(KeyGroupRange::for_operator(128, 0, 0).is_err());
        assert!(KeyGroupRange::for_operator(128, 129, 0).is_err());
        assert!(KeyGroupRange::for_operator(128, 4, 4).is_err());
        assert!(KeyGroupRange::for_operator(32769, 4, 0).is_err());
        assert!(KeyGroupRange::new(5, 4).is_err());
    }

    #[test]
    fn flink_example_ranges() {
        // Flink: maxParallelism 128, parallelism 3 -> [0,42], [43,85], [86,127]
        let r: Vec<_> = (0..3)
            .map(|i| KeyGroupRange::for_operator(128, 3, i).unwrap())
            .collect();
        assert_eq!((r[0].start, r[0].end), (0, 42));
        assert_eq!((r[1].start, r[1].end), (43, 85));
        assert_eq!((r[2].start, r[2].end), (86, 127));
    }
}
