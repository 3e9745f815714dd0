//! Byte layout of RocksDB keys (docs/state-format.md, "Keys").
//!
//! ```text
//! [key group: u16 BE][key length: u16 BE][key][namespace length: u16 BE][namespace][user key]
//! ```
//!
//! Key group first, so an instance's key-group range is one contiguous range
//! of RocksDB keys; then the length-prefixed key and namespace, so all entries
//! of one (key, namespace) are contiguous and a map state's user keys are a
//! suffix that sorts by its own bytes. Callers that want user keys iterated in
//! numeric order encode them with [`OrderedKey`].

use crate::error::{Result, StateError};

/// Longest key or namespace accepted, fixed by the u16 length prefix.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

/// Appends the `[kg][len][key][len][ns]` prefix shared by all entries of a
/// (key, namespace).
pub fn encode_prefix(
    out: &mut Vec<u8>,
    key_group: u16,
    key: &[u8],
    namespace: &[u8],
) -> Result<()> {
    check_len(key)?;
    check_len(namespace)?;
    out.reserve(6 + key.len() + namespace.len());
    out.extend_from_slice(&key_group.to_be_bytes());
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(namespace.len() as u16).to_be_bytes());
    out.extend_from_slice(namespace);
    Ok(())
}

fn check_len(bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_KEY_LEN {
        return Err(StateError::KeyTooLong {
            len: bytes.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// A decoded RocksDB key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedKey<'a> {
    pub key_group: u16,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
    pub user_key: &'a [u8],
}

/// Splits a RocksDB key; `None` when the bytes are not a key of this layout.
pub fn decode(raw: &[u8]) -> Option<DecodedKey<'_>> {
    let key_group = u16::from_be_bytes(raw.get(0..2)?.try_into().ok()?);
    let (key, rest) = take_prefixed(raw.get(2..)?)?;
    let (namespace, user_key) = take_prefixed(rest)?;
    Some(DecodedKey {
        key_group,
        key,
        namespace,
        user_key,
    })
}

fn take_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?));
    let body = bytes.get(2..2 + len)?;
    Some((body, &bytes[2 + len..]))
}

/// First RocksDB key of a key group.
pub fn key_group_start(key_group: u16) -> [u8; 2] {
    key_group.to_be_bytes()
}

/// Exclusive upper bound of all keys of key groups `<= key_group`.
pub fn key_group_end_exclusive(key_group: u16) -> Vec<u8> {
    match key_group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        // Key group 65535 cannot exist (max parallelism <= 32768), but stay total.
        None => vec![0xff, 0xff, 0xff],
    }
}

/// The smallest byte string greater than every string that starts with `prefix`.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// Order-preserving encodings for keys and map user keys: the byte order of
/// the encoding is the natural order of the value.
pub trait OrderedKey {
    fn encode_ordered(&self, out: &mut Vec<u8>);
}

impl OrderedKey for u64 {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl OrderedKey for i64 {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ordered_i64(*self));
    }
}

impl OrderedKey for u32 {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl OrderedKey for i32 {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u32) ^ (1 << 31)).to_be_bytes());
    }
}

/// Strings: bytes with 0x00 escaped as 0x00 0xff and a 0x00 0x00 terminator,
/// so a shorter string sorts before its extensions and tuples stay ordered.
impl OrderedKey for str {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        for &b in self.as_bytes() {
            out.push(b);
            if b == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
}

impl OrderedKey for String {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        self.as_str().encode_ordered(out)
    }
}

impl<A: OrderedKey, B: OrderedKey> OrderedKey for (A, B) {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        self.0.encode_ordered(out);
        self.1.encode_ordered(out);
    }
}

impl<A: OrderedKey, B: OrderedKey, C: OrderedKey> OrderedKey for (A, B, C) {
    fn encode_ordered(&self, out: &mut Vec<u8>) {
        self.0.encode_ordered(out);
        self.1.encode_ordered(out);
        self.2.encode_ordered(out);
    }
}

/// Encodes a value with [`OrderedKey`] into a fresh buffer.
pub fn ordered<K: OrderedKey + ?Sized>(k: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    k.encode_ordered(&mut out);
    out
}

/// Sign-flipped big-endian i64: byte order equals numeric order.
#[inline]
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

#[inline]
pub fn decode_ordered_i64(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full(kg: u16, key: &[u8], ns: &[u8], uk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_prefix(&mut out, kg, key, ns).unwrap();
        out.extend_from_slice(uk);
        out
    }

    proptest! {
        #[test]
        fn keys_round_trip(kg in any::<u16>(), key in proptest::collection::vec(any::<u8>(), 0..40),
                           ns in proptest::collection::vec(any::<u8>(), 0..8),
                           uk in proptest::collection::vec(any::<u8>(), 0..20)) {
            let raw = full(kg, &key, &ns, &uk);
            let d = decode(&raw).unwrap();
            prop_assert_eq!(d.key_group, kg);
            prop_assert_eq!(d.key, &key[..]);
            prop_assert_eq!(d.namespace, &ns[..]);
            prop_assert_eq!(d.user_key, &uk[..]);
        }

        #[test]
        fn key_group_sorts_first(a in any::<u16>(), b in any::<u16>(),
                                 ka in proptest::collection::vec(any::<u8>(), 0..20),
                                 kb in proptest::collection::vec(any::<u8>(), 0..20)) {
            prop_assume!(a != b);
            prop_assert_eq!(full(a, &ka, b"", b"") < full(b, &kb, b"", b""), a < b);
        }

        #[test]
        fn one_key_is_contiguous(kg in any::<u16>(), key in proptest::collection::vec(any::<u8>(), 0..20),
                                 other in proptest::collection::vec(any::<u8>(), 0..20),
                                 uk1 in proptest::collection::vec(any::<u8>(), 0..10),
                                 uk2 in proptest::collection::vec(any::<u8>(), 0..10),
                                 uko in proptest::collection::vec(any::<u8>(), 0..10)) {
            prop_assume!(key != other);
            // No entry of another key falls between two entries of one key.
            let (x, y) = (full(kg, &key, b"", &uk1), full(kg, &key, b"", &uk2));
            let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
            let o = full(kg, &other, b"", &uko);
            prop_assert!(!(lo < o && o < hi));
        }

        #[test]
        fn user_keys_sort_in_value_order(a in any::<i64>(), b in any::<i64>(), kg in any::<u16>()) {
            let ka = full(kg, b"k", b"", &ordered(&a));
            let kb = full(kg, b"k", b"", &ordered(&b));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(decode_ordered_i64(&ordered(&a)), Some(a));
        }

        #[test]
        fn i32_order(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(ordered(&a).cmp(&ordered(&b)), a.cmp(&b));
        }

        #[test]
        fn string_tuple_order(a in ".{0,6}", b in ".{0,6}", x in any::<i64>(), y in any::<i64>()) {
            let ea = ordered(&(a.clone(), x));
            let eb = ordered(&(b.clone(), y));
            prop_assert_eq!(ea.cmp(&eb), (a.as_bytes(), x).cmp(&(b.as_bytes(), y)));
        }

        #[test]
        fn successor_bounds_prefix(p in proptest::collection::vec(any::<u8>(), 1..8), s in proptest::collection::vec(any::<u8>(), 0..8)) {
            if let Some(succ) = prefix_successor(&p) {
                let mut ext = p.clone();
                ext.extend_from_slice(&s);
                prop_assert!(ext < succ);
                prop_assert!(p < succ);
            } else {
                prop_assert!(p.iter().all(|&b| b == 0xff));
            }
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&raw);
        }
    }

    #[test]
    fn too_long_key_is_refused() {
        let mut out = Vec::new();
        let long = vec![0u8; MAX_KEY_LEN + 1];
        let err = encode_prefix(&mut out, 0, &long, b"").unwrap_err();
        assert!(matches!(err, StateError::KeyTooLong { len, .. } if len == MAX_KEY_LEN + 1));
        assert!(out.is_empty(), "nothing written on refusal");
    }
}
