//! Key-group blocks of a canonical stream (and of full checkpoints): how
//! they are found by offset, decompressed, and walked entry by entry; the
//! heap backend's own checkpoint layout; and Flink's key-group hash.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::header::{KeyedHeader, StateKind};
use crate::json::Json;
use crate::serializer::Serializer;
use crate::value::decode;
use std::io::Read;

const META_DATA_FOLLOWS: u8 = 0x80;
const END_OF_KEY_GROUP: u16 = 0xFFFF;
/// The snappy framing's stream identifier chunk.
const SNAPPY_STREAM_ID: [u8; 10] = [0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'];
/// A decompressed block may be at most this many times its compressed size
/// (snappy's worst case is far below): a bound against decompression bombs.
const MAX_RATIO: usize = 64;

/// (key group, start, end) of every key group with data, in stream order.
/// A savepoint writes 0 for an empty group; a group ends where the next
/// one starts, the last one at the end of the stream.
pub fn blocks(start_kg: i32, offsets: &[i64], stream_len: u64) -> Vec<(i32, u64, u64)> {
    let mut present: Vec<(i32, u64)> = offsets
        .iter()
        .enumerate()
        .filter(|(_, &o)| o > 0)
        .map(|(i, &o)| (start_kg.saturating_add(i as i32), o as u64))
        .collect();
    present.sort_by_key(|&(_, o)| o);
    let mut out = Vec::with_capacity(present.len());
    for (i, &(kg, start)) in present.iter().enumerate() {
        let end = present.get(i + 1).map_or(stream_len, |&(_, o)| o);
        out.push((kg, start, end.max(start)));
    }
    out
}

/// The first key-group offset: where the header ends.
pub fn header_end(offsets: &[i64]) -> Option<usize> {
    offsets
        .iter()
        .filter(|&&o| o > 0)
        .min()
        .map(|&o| o as usize)
}

/// Undoes the snappy framing of a compressed key group.
pub fn decompress(block: &[u8]) -> Result<Vec<u8>> {
    let limit = block
        .len()
        .saturating_mul(MAX_RATIO)
        .saturating_add(1 << 20);
    let mut out = Vec::new();
    snap::read::FrameDecoder::new(block)
        .take(limit as u64)
        .read_to_end(&mut out)
        .map_err(|e| FlinkError::malformed("snappy key group", 0, e.to_string()))?;
    Ok(out)
}

/// Decompresses from a chunk boundary inside a framed stream (operator
/// state offsets point there), by putting the stream identifier back.
pub fn decompress_from_chunk(rest: &[u8]) -> Result<Vec<u8>> {
    let mut framed = SNAPPY_STREAM_ID.to_vec();
    framed.extend_from_slice(rest);
    decompress(&framed)
}

/// Walks the entries of one key group (RocksDB layout): a u16 state id,
/// then key/value pairs; the last pair of a state run has bit 0x80 set in
/// its first key byte and is followed by the next state id or 0xFFFF.
pub fn for_each_entry(
    block: &[u8],
    mut f: impl FnMut(u16, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let mut r = Reader::new(block);
    let mut state = r.u16("state id")?;
    let mut key = Vec::new();
    loop {
        let n = r.count(1, "key length")?;
        key.clear();
        key.extend_from_slice(r.bytes(n, "key")?);
        let n = r.count(0, "value length")?;
        let value = r.bytes(n, "value")?;
        let last = key.first().is_some_and(|b| b & META_DATA_FOLLOWS != 0);
        if let Some(b) = key.first_mut() {
            *b &= !META_DATA_FOLLOWS;
        }
        f(state, &key, value)?;
        if last {
            state = r.u16("next state id")?;
            if state == END_OF_KEY_GROUP {
                break;
            }
        }
    }
    if !r.is_empty() {
        return Err(FlinkError::malformed(
            "key group",
            r.pos(),
            format!("{} bytes after the end mark", r.remaining()),
        ));
    }
    Ok(())
}

/// One entry of a heap checkpoint: a whole value (nested forms) or a timer.
pub enum HeapEntry {
    Keyed {
        state: usize,
        key: Json,
        namespace: Json,
        value: Json,
    },
    Timer {
        state: usize,
        key: Json,
        namespace: Json,
        timestamp: i64,
    },
}

/// A heap (HashMapStateBackend) checkpoint key group: i32 key group, then
/// for every state of the header: u16 state id, i32 count, entries of
/// namespace, key, value (timers: TimerSerializer bytes).
pub fn for_each_heap_entry(
    header: &KeyedHeader,
    kg: i32,
    block: &[u8],
    mut f: impl FnMut(HeapEntry) -> Result<()>,
) -> Result<()> {
    let mut r = Reader::new(block);
    let at = r.pos();
    let found = r.i32("heap key group")?;
    if found != kg {
        return Err(FlinkError::malformed(
            "heap key group",
            at,
            format!("key group {found}, expected {kg}"),
        ));
    }
    let data = if header.compressed {
        decompress(r.rest())?
    } else {
        r.rest().to_vec()
    };
    let mut r = Reader::new(&data);
    for _ in 0..header.states.len() {
        let at = r.pos();
        let id = r.u16("heap state id")? as usize;
        let state = header
            .states
            .get(id)
            .ok_or_else(|| FlinkError::malformed("heap state id", at, format!("{id}")))?;
        let n = r.count(1, "heap entry count")?;
        if let Some(c) = state.unknown_class().or_else(|| header.key.unknown_class()) {
            return Err(FlinkError::UnknownSerializer {
                operator: String::new(),
                state: state.name.clone(),
                class: c.to_string(),
            });
        }
        for _ in 0..n {
            f(heap_entry(header, id, &mut r)?)?;
        }
    }
    Ok(())
}

fn heap_entry(header: &KeyedHeader, id: usize, r: &mut Reader) -> Result<HeapEntry> {
    let state = &header.states[id.min(header.states.len().saturating_sub(1))];
    let value_ser = state
        .value_serializer()
        .unwrap_or(&Serializer::VoidNamespace);
    if state.kind == StateKind::Timers {
        let Serializer::Timer { key, namespace } = value_ser else {
            return Err(FlinkError::malformed(
                "heap timer",
                r.pos(),
                "no TimerSerializer",
            ));
        };
        let timestamp = r.i64("timer timestamp")? ^ i64::MIN;
        let key = decode(key, r)?;
        let namespace = decode(namespace, r)?;
        return Ok(HeapEntry::Timer {
            state: id,
            key,
            namespace,
            timestamp,
        });
    }
    let namespace = decode(
        state
            .namespace_serializer()
            .unwrap_or(&Serializer::VoidNamespace),
        r,
    )?;
    let key = decode(&header.key, r)?;
    let value = decode(value_ser, r)?;
    Ok(HeapEntry::Keyed {
        state: id,
        key,
        namespace,
        value,
    })
}

/// Whether a full checkpoint's stream is in the heap layout: every group
/// has an offset and each block starts with its own key-group number.
pub fn looks_like_heap(start_kg: i32, offsets: &[i64], first_words: &[(i32, i32)]) -> bool {
    !offsets.is_empty()
        && offsets.iter().all(|&o| o > 0)
        && !first_words.is_empty()
        && first_words
            .iter()
            .all(|&(kg, w)| kg - start_kg >= 0 && w == kg)
}

/// Flink's key group of a String key: MathUtils.murmurHash of Java's
/// String.hashCode, modulo max parallelism.
pub fn key_group_of_string(key: &str, max_parallelism: i32) -> i32 {
    let mut h: i32 = 0;
    for u in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    (murmur_hash(h) % max_parallelism.max(1) as u32) as i32
}

/// org.apache.flink.util.MathUtils.murmurHash(int).
fn murmur_hash(code: i32) -> u32 {
    let mut c = (code as u32).wrapping_mul(0xcc9e_2d51);
    c = c.rotate_left(15).wrapping_mul(0x1b87_3593);
    let mut h = c.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    h ^= 4;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    let h = h as i32;
    if h >= 0 {
        h as u32
    } else if h != i32::MIN {
        (-h) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_skip_empty_groups_and_end_at_the_next() {
        let b = blocks(64, &[0, 100, 0, 250], 300);
        assert_eq!(b, vec![(65, 100, 250), (67, 250, 300)]);
        assert_eq!(header_end(&[0, 100, 0, 250]), Some(100));
    }

    #[test]
    fn key_group_of_fixture_key() {
        // FORMAT-NOTES: "user-014" is in key group 1 (max parallelism 128).
        assert_eq!(key_group_of_string("user-014", 128), 1);
    }
}
