//! The value envelope (docs/state-format.md, "Values").
//!
//! ```text
//! [format: u8][schema version: u16 BE][expiry ms: i64 BE, iff format bit 7][Avro binary]
//! ```
//!
//! Bits 0..=6 of the format byte are the envelope format version (1); bit 7
//! says an expiry timestamp follows. The schema version indexes the state's
//! schema history, so one store holds values written under several versions.
//! List state values are a sequence of `[length: u32 BE][envelope]` elements
//! (appended by the merge operator).

pub const FORMAT_V1: u8 = 1;
const HAS_EXPIRY: u8 = 0x80;
const VERSION_MASK: u8 = 0x7f;

/// A borrowed, parsed envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub schema_version: u16,
    pub expiry_ms: Option<i64>,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("empty value")]
    Empty,
    #[error("unknown envelope format {0} (this release reads format {FORMAT_V1})")]
    UnknownFormat(u8),
    #[error("truncated envelope: {0} bytes")]
    Truncated(usize),
    #[error("list element length {len} exceeds the {left} bytes left")]
    BadListLength { len: usize, left: usize },
}

impl<'a> Envelope<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<Self, EnvelopeError> {
        let (&format, rest) = raw.split_first().ok_or(EnvelopeError::Empty)?;
        if format & VERSION_MASK != FORMAT_V1 {
            return Err(EnvelopeError::UnknownFormat(format & VERSION_MASK));
        }
        let version = rest.get(..2).ok_or(EnvelopeError::Truncated(raw.len()))?;
        let schema_version = u16::from_be_bytes([version[0], version[1]]);
        let rest = &rest[2..];
        if format & HAS_EXPIRY == 0 {
            return Ok(Envelope {
                schema_version,
                expiry_ms: None,
                payload: rest,
            });
        }
        let expiry: [u8; 8] = rest
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(EnvelopeError::Truncated(raw.len()))?;
        Ok(Envelope {
            schema_version,
            expiry_ms: Some(i64::from_be_bytes(expiry)),
            payload: &rest[8..],
        })
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expiry_ms.is_some_and(|e| e <= now_ms)
    }
}

/// Writes the envelope header; the caller appends the Avro payload.
#[inline]
pub fn write_header(out: &mut Vec<u8>, schema_version: u16, expiry_ms: Option<i64>) {
    match expiry_ms {
        None => {
            out.push(FORMAT_V1);
            out.extend_from_slice(&schema_version.to_be_bytes());
        }
        Some(e) => {
            out.push(FORMAT_V1 | HAS_EXPIRY);
            out.extend_from_slice(&schema_version.to_be_bytes());
            out.extend_from_slice(&e.to_be_bytes());
        }
    }
}

pub fn encode(schema_version: u16, expiry_ms: Option<i64>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + payload.len());
    write_header(&mut out, schema_version, expiry_ms);
    out.extend_from_slice(payload);
    out
}

/// Appends one list element (`[len u32 BE][envelope]`).
pub fn push_list_element(out: &mut Vec<u8>, envelope: &[u8]) {
    out.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
    out.extend_from_slice(envelope);
}

/// Iterates the elements of a list state value.
pub fn list_elements(raw: &[u8]) -> ListElements<'_> {
    ListElements { rest: raw }
}

pub struct ListElements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ListElements<'a> {
    type Item = Result<Envelope<'a>, EnvelopeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(len_bytes) = self.rest.get(..4) else {
            let n = self.rest.len();
            self.rest = &[];
            return Some(Err(EnvelopeError::Truncated(n)));
        };
        let len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let left = self.rest.len() - 4;
        if len > left {
            self.rest = &[];
            return Some(Err(EnvelopeError::BadListLength { len, left }));
        }
        let element = &self.rest[4..4 + len];
        self.rest = &self.rest[4 + len..];
        Some(Envelope::parse(element))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(version in any::<u16>(), expiry in proptest::option::of(any::<i64>()),
                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let raw = encode(version, expiry, &payload);
            let env = Envelope::parse(&raw).unwrap();
            prop_assert_eq!(env.schema_version, version);
            prop_assert_eq!(env.expiry_ms, expiry);
            prop_assert_eq!(env.payload, &payload[..]);
        }

        #[test]
        fn list_round_trip(items in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..16)), 0..10)) {
            let mut raw = Vec::new();
            for (v, p) in &items {
                push_list_element(&mut raw, &encode(*v, None, p));
            }
            let back: Vec<_> = list_elements(&raw).map(|e| e.unwrap()).collect();
            prop_assert_eq!(back.len(), items.len());
            for (e, (v, p)) in back.iter().zip(&items) {
                prop_assert_eq!(e.schema_version, *v);
                prop_assert_eq!(e.payload, &p[..]);
            }
        }

        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = Envelope::parse(&raw);
            let _ = list_elements(&raw).count();
        }
    }

    #[test]
    fn rejects_unknown_format_and_truncation() {
        assert_eq!(Envelope::parse(&[]), Err(EnvelopeError::Empty));
        assert_eq!(
            Envelope::parse(&[2, 0, 1]),
            Err(EnvelopeError::UnknownFormat(2))
        );
        assert_eq!(Envelope::parse(&[1, 0]), Err(EnvelopeError::Truncated(2)));
        assert_eq!(
            Envelope::parse(&[0x81, 0, 1, 0, 0]),
            Err(EnvelopeError::Truncated(5))
        );
    }

    #[test]
    fn expiry() {
        let raw = encode(1, Some(100), b"x");
        let env = Envelope::parse(&raw).unwrap();
        assert!(!env.is_expired(99));
        assert!(env.is_expired(100));
        assert!(!Envelope::parse(&encode(1, None, b"x"))
            .unwrap()
            .is_expired(i64::MAX));
    }
}
