//! A bounds-checked reader over Flink's `java.io.DataOutputStream` bytes.
//!
//! Every read checks the remaining length first and every length read from
//! the input is capped by what remains, so hostile input can neither panic
//! nor make a decoder allocate more than the input's own size.

use crate::error::{FlinkError, Result};

#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes read since `start`.
    pub fn rest_before(&self, start: usize) -> &'a [u8] {
        self.buf.get(start.min(self.pos)..self.pos).unwrap_or(&[])
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(FlinkError::Truncated {
                what,
                offset: self.pos,
                needed: n.saturating_sub(self.remaining()),
            }),
        }
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.bytes(n, what).map(|_| ())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.u8(what)? != 0)
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub fn i32_le(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    pub fn i64_le(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A non-negative i32 count or length that must fit in what remains,
    /// each item taking at least `min_item` bytes: the guard against
    /// hostile lengths making us allocate.
    pub fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize> {
        let at = self.pos;
        let n = self.i32(what)?;
        self.check_count(n as i64, min_item, at, what)
    }

    pub fn check_count(
        &self,
        n: i64,
        min_item: usize,
        at: usize,
        what: &'static str,
    ) -> Result<usize> {
        if n < 0 {
            return Err(FlinkError::malformed(
                what,
                at,
                format!("negative count {n}"),
            ));
        }
        let n = n as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() && min_item > 0 {
            return Err(FlinkError::malformed(
                what,
                at,
                format!("count {n} exceeds the {} bytes left", self.remaining()),
            ));
        }
        Ok(n)
    }

    /// `DataOutput.writeUTF`: u16 length + modified UTF-8.
    pub fn utf(&mut self, what: &'static str) -> Result<String> {
        let n = self.u16(what)? as usize;
        let at = self.pos;
        let b = self.bytes(n, what)?;
        decode_modified_utf8(b)
            .ok_or_else(|| FlinkError::malformed(what, at, "invalid modified UTF-8"))
    }

    /// A 7-bit varint, least significant group first (StringValue lengths,
    /// Avro-in-Flink block counts). Capped at 32 bits.
    pub fn varint(&mut self, what: &'static str) -> Result<u32> {
        let at = self.pos;
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.u8(what)?;
            v |= ((b & 0x7f) as u32).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FlinkError::malformed(
            what,
            at,
            "varint longer than 5 bytes",
        ))
    }

    /// `StringValue.writeString`: varint(len+1) (0 = null), then UTF-16
    /// code units as varints.
    pub fn string_value(&mut self, what: &'static str) -> Result<Option<String>> {
        let at = self.pos;
        let n = self.varint(what)? as usize;
        if n == 0 {
            return Ok(None);
        }
        let n = self.check_count(n as i64 - 1, 1, at, what)?;
        let mut units = Vec::with_capacity(n);
        for _ in 0..n {
            let u = self.varint(what)?;
            units.push(
                u16::try_from(u)
                    .map_err(|_| FlinkError::malformed(what, at, "code unit above 0xFFFF"))?,
            );
        }
        Ok(Some(String::from_utf16_lossy(&units)))
    }
}

/// Java's modified UTF-8 (NUL as C0 80, supplementary characters as CESU-8
/// surrogate pairs): decoded to UTF-16 units, then to a String.
pub fn decode_modified_utf8(b: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(b) {
        if !s.contains('\0') && !b.contains(&0xed) {
            return Some(s.to_string());
        }
    }
    let mut units: Vec<u16> = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let (unit, len) = match c {
            0x00..=0x7f => (c as u16, 1),
            0xc0..=0xdf => {
                let c2 = *b.get(i + 1)?;
                ((((c & 0x1f) as u16) << 6) | (c2 & 0x3f) as u16, 2)
            }
            0xe0..=0xef => {
                let (c2, c3) = (*b.get(i + 1)?, *b.get(i + 2)?);
                (
                    (((c & 0x0f) as u16) << 12) | (((c2 & 0x3f) as u16) << 6) | (c3 & 0x3f) as u16,
                    3,
                )
            }
            _ => return None,
        };
        units.push(unit);
        i += len;
    }
    Some(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_value_of_the_format_notes() {
        let b = [
            0x0b, 0x43, 0x61, 0x66, 0xe9, 0x01, 0x20, 0x63, 0x72, 0xe8, 0x01, 0x6d, 0x65,
        ];
        assert_eq!(
            Reader::new(&b).string_value("s").unwrap().unwrap(),
            "Café crème"
        );
    }

    #[test]
    fn modified_utf8_nul_and_surrogates() {
        // NUL as C0 80, then U+1F3AC as a CESU-8 surrogate pair.
        let b = [0xc0, 0x80, 0xed, 0xa0, 0xbc, 0xed, 0xbe, 0xac];
        assert_eq!(decode_modified_utf8(&b).unwrap(), "\0🎬");
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        let b = [0x7f, 0xff, 0xff, 0xff];
        assert!(Reader::new(&b).count(1, "n").is_err());
        let b = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(Reader::new(&b).string_value("s").is_err());
    }
}
