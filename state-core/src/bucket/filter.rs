//! The key filter of a bucket run: a blocked Bloom filter over the xxh3
//! hash of a key's bytes. All probes of one key fall in one 64-byte block,
//! so a check costs one cache miss however many runs a probe consults (a
//! plain Bloom filter costs one per probe bit). At 10 bits per key about
//! 1.5 % of probes for a key the run does not hold read a block anyway.

const BLOCK_BYTES: usize = 64;
const BLOCK_BITS: u32 = (BLOCK_BYTES * 8) as u32;

/// Probes per key for `bits_per_key` bits: `ln 2 · bits/key`, clamped.
fn probes_for(bits_per_key: usize) -> u32 {
    ((bits_per_key as f64 * 0.69) as u32).clamp(1, 16)
}

#[derive(Debug, Clone)]
pub struct KeyFilter {
    probes: u32,
    bits: Vec<u8>,
}

/// The one hash both the writer and every probe use.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The block of `hash` (from its high half, by multiply-shift) and the bit
/// positions inside it (from its low half, by double hashing).
fn locate(hash: u64, blocks: usize, probes: u32) -> (usize, impl Iterator<Item = u32>) {
    let block = (((hash >> 32) * blocks as u64) >> 32) as usize;
    let h = hash as u32;
    let delta = h.rotate_left(15) | 1;
    let bits = (0..probes).map(move |i| h.wrapping_add(i.wrapping_mul(delta)) % BLOCK_BITS);
    (block, bits)
}

impl KeyFilter {
    /// A filter holding `hashes` (repeats cost nothing extra).
    pub fn build(hashes: &[u64], bits_per_key: usize) -> Self {
        let blocks = (hashes.len() * bits_per_key)
            .div_ceil(BLOCK_BYTES * 8)
            .max(1);
        let mut f = KeyFilter {
            probes: probes_for(bits_per_key),
            bits: vec![0; blocks * BLOCK_BYTES],
        };
        for &h in hashes {
            let (block, bits) = locate(h, blocks, f.probes);
            for bit in bits {
                let at = block * BLOCK_BYTES + (bit / 8) as usize;
                if let Some(b) = f.bits.get_mut(at) {
                    *b |= 1 << (bit % 8);
                }
            }
        }
        f
    }

    /// False: the run certainly does not hold the key.
    pub fn may_contain(&self, hash: u64) -> bool {
        let blocks = self.bits.len() / BLOCK_BYTES;
        let (block, mut bits) = locate(hash, blocks, self.probes);
        let Some(block) = self
            .bits
            .get(block * BLOCK_BYTES..(block + 1) * BLOCK_BYTES)
        else {
            return true;
        };
        bits.all(|bit| block[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.probes.to_le_bytes());
        out.extend_from_slice(&self.bits);
    }

    /// `None` unless the bytes are a whole number of blocks and a sane
    /// probe count.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let probes = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let bits = bytes.get(4..)?.to_vec();
        if bits.is_empty() || bits.len() % BLOCK_BYTES != 0 || probes == 0 || probes > 16 {
            return None;
        }
        Some(KeyFilter { probes, bits })
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_key_and_rejects_most_others() {
        let hashes: Vec<u64> = (0..10_000u64).map(|i| key_hash(&i.to_be_bytes())).collect();
        let f = KeyFilter::build(&hashes, 10);
        assert!(hashes.iter().all(|&h| f.may_contain(h)));
        let false_hits = (10_000..110_000u64)
            .filter(|i| f.may_contain(key_hash(&i.to_be_bytes())))
            .count();
        assert!(false_hits < 2_500, "{false_hits} false hits in 100k");
        let mut bytes = Vec::new();
        f.encode(&mut bytes);
        let g = KeyFilter::decode(&bytes).expect("decodes");
        assert!(hashes.iter().all(|&h| g.may_contain(h)));
        assert!(KeyFilter::decode(&bytes[..bytes.len() - 1]).is_none());
    }
}
