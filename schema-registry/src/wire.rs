//! Avro binary primitives over untrusted input: every read is bounds-checked
//! and every length is checked against the bytes actually left, so a hostile
//! length never becomes a huge allocation.

use crate::error::DecodeError;

pub(crate) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn read_long(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated {
                    offset: self.pos,
                    needed: 1,
                });
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(DecodeError::BadVarint { offset: start });
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(DecodeError::BadVarint { offset: start });
            }
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    #[inline]
    pub fn read_int(&mut self) -> Result<i32, DecodeError> {
        let offset = self.pos;
        let v = self.read_long()?;
        i32::try_from(v).map_err(|_| DecodeError::IntOutOfRange { offset, value: v })
    }

    #[inline]
    pub fn read_exact(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A length prefix that must fit in what is left of the input.
    #[inline]
    pub fn read_len(&mut self) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let len = self.read_long()?;
        if len < 0 {
            return Err(DecodeError::NegativeLength { offset, len });
        }
        if len as u64 > self.remaining() as u64 {
            return Err(DecodeError::LengthTooLarge {
                offset,
                len,
                remaining: self.remaining(),
            });
        }
        Ok(len as usize)
    }

    #[inline]
    pub fn read_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.read_len()?;
        self.read_exact(n)
    }

    #[inline]
    pub fn read_str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.read_len()?;
        let offset = self.pos;
        let b = self.read_exact(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::BadUtf8 { offset })
    }

    #[inline]
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.read_exact(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadBoolean { offset, value }),
        }
    }

    #[inline]
    pub fn read_f32(&mut self) -> Result<f32, DecodeError> {
        let b = self.read_exact(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.read_exact(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// The item count of the next array/map block (0 ends the collection).
    /// A negative count is followed by the block's byte size, which we ignore.
    pub fn read_block_count(
        &mut self,
        min_item_size: usize,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.read_long()?;
        let count = if count < 0 {
            self.read_len()?;
            count.checked_neg().ok_or(DecodeError::TooManyItems {
                offset,
                count,
                limit,
            })?
        } else {
            count
        };
        // Items of non-zero size cannot outnumber the bytes left; zero-sized
        // ones (null, empty records) are capped so a tiny input cannot make
        // the decoder spin or allocate without bound.
        let bound = self.remaining().checked_div(min_item_size).unwrap_or(limit);
        if count as u64 > bound as u64 {
            return Err(DecodeError::TooManyItems {
                offset,
                count,
                limit: bound,
            });
        }
        Ok(count as usize)
    }
}

#[inline]
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}
