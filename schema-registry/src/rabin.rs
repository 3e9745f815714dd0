//! CRC-64-AVRO, the Rabin fingerprint of the Avro specification.

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = build_table();

const fn build_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
}

pub(crate) fn fingerprint64(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for b in bytes {
        fp = (fp >> 8) ^ TABLE[((fp ^ u64::from(*b)) & 0xff) as usize];
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_spec_test_vectors() {
        // From Avro's share/test/data/schema-tests.txt (Java longs, signed).
        assert_eq!(fingerprint64(br#""null""#) as i64, 7195948357588979594);
        assert_eq!(fingerprint64(br#""int""#) as i64, 8247732601305521295);
    }
}
