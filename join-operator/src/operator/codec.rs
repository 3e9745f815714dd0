//! Avro codecs of the buffered events: hand-written binary encoding of the
//! canonical (v1) schemas, plus compiled resolution to and from the store's
//! current schema when it has evolved.

use crate::event::{Impression, Play};
use schema_registry::{AvroSchema, Resolver};
use state_core::ValueCodec;

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64, String> {
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
            self.pos += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return Err(format!("varint too long at byte {}", self.pos));
            }
        }
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int out of range: {v}"))
    }

    fn string(&mut self) -> Result<&'a str, String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative string length {len}"))?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("string of {len} bytes overruns the value"))?;
        let s = std::str::from_utf8(&self.bytes[self.pos..end]).map_err(|e| e.to_string())?;
        self.pos = end;
        Ok(s)
    }
}

/// Resolution plans between the canonical schema and a store's current one.
struct Evolution {
    to_current: Option<Resolver>,
    from_current: Option<Resolver>,
}

impl Evolution {
    fn new(canonical: &str, current: &AvroSchema) -> Result<Self, String> {
        let canonical = AvroSchema::parse(canonical).map_err(|e| e.to_string())?;
        let plan = |w: &AvroSchema, r: &AvroSchema| -> Result<Option<Resolver>, String> {
            let resolver = Resolver::compile(w, r).map_err(|e| e.to_string())?;
            Ok((!resolver.is_identity()).then_some(resolver))
        };
        Ok(Evolution {
            // Writing: the job's records must be expressible in the current
            // schema (added fields need defaults).
            to_current: plan(&canonical, current)
                .map_err(|e| format!("the job cannot write the current schema: {e}"))?,
            // Reading: the job must find its fields in the current schema.
            from_current: plan(current, &canonical)
                .map_err(|e| format!("the job cannot read the current schema: {e}"))?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), String> {
        match &self.to_current {
            None => {
                write(out);
                Ok(())
            }
            Some(r) => {
                let mut canonical = Vec::with_capacity(64);
                write(&mut canonical);
                r.resolve_bytes(&canonical, out)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn decode<T>(
        &self,
        bytes: &[u8],
        read: impl FnOnce(&mut Reader<'_>) -> Result<T, String>,
    ) -> Result<T, String> {
        match &self.from_current {
            None => read(&mut Reader { bytes, pos: 0 }),
            Some(r) => {
                let mut canonical = Vec::with_capacity(bytes.len());
                r.resolve_bytes(bytes, &mut canonical)
                    .map_err(|e| e.to_string())?;
                read(&mut Reader {
                    bytes: &canonical,
                    pos: 0,
                })
            }
        }
    }
}

pub struct ImpressionCodec(Evolution);

impl ImpressionCodec {
    pub fn new(current: &AvroSchema) -> Result<Self, String> {
        Evolution::new(super::schemas::IMPRESSION_V1, current).map(ImpressionCodec)
    }
}

impl ValueCodec for ImpressionCodec {
    type Value = Impression;

    fn encode(&self, v: &Impression, out: &mut Vec<u8>) -> Result<(), String> {
        self.0.encode(out, |o| {
            for x in [v.impression_id, v.profile_id, v.title_id, v.ts_ms] {
                put_long(o, x);
            }
            put_long(o, i64::from(v.row));
            put_long(o, i64::from(v.rank));
            put_long(o, v.device.len() as i64);
            o.extend_from_slice(v.device.as_bytes());
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Impression, String> {
        self.0.decode(bytes, |r| {
            Ok(Impression {
                impression_id: r.long()?,
                profile_id: r.long()?,
                title_id: r.long()?,
                ts_ms: r.long()?,
                row: r.int()?,
                rank: r.int()?,
                device: r.string()?.to_owned(),
            })
        })
    }
}

pub struct PlayCodec(Evolution);

impl PlayCodec {
    pub fn new(current: &AvroSchema) -> Result<Self, String> {
        Evolution::new(super::schemas::PLAY_V1, current).map(PlayCodec)
    }
}

impl ValueCodec for PlayCodec {
    type Value = Play;

    fn encode(&self, v: &Play, out: &mut Vec<u8>) -> Result<(), String> {
        self.0.encode(out, |o| {
            for x in [v.play_id, v.profile_id, v.title_id, v.ts_ms, v.duration_ms] {
                put_long(o, x);
            }
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Play, String> {
        self.0.decode(bytes, |r| {
            Ok(Play {
                play_id: r.long()?,
                profile_id: r.long()?,
                title_id: r.long()?,
                ts_ms: r.long()?,
                duration_ms: r.long()?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::schemas::IMPRESSION_V1;

    fn imp() -> Impression {
        Impression {
            impression_id: -7,
            profile_id: 1 << 40,
            title_id: 3,
            ts_ms: 1_700_000_000_123,
            row: -2,
            rank: i32::MAX,
            device: "tv".into(),
        }
    }

    #[test]
    fn canonical_encoding_matches_apache_avro() {
        let schema = AvroSchema::parse(IMPRESSION_V1).unwrap();
        let codec = ImpressionCodec::new(&schema).unwrap();
        let mut ours = Vec::new();
        codec.encode(&imp(), &mut ours).unwrap();
        let generic = schema_registry::decode_value(&schema, &ours).unwrap();
        let back = schema_registry::encode_value(&schema, &generic).unwrap();
        assert_eq!(ours, back);
        assert_eq!(codec.decode(&ours).unwrap(), imp());
    }

    #[test]
    fn evolved_schema_round_trips_through_resolution() {
        let v2 = IMPRESSION_V1.replace(
            r#"{"name":"device","type":"string"}]"#,
            r#"{"name":"device","type":"string"},{"name":"page","type":"string","default":"home"}]"#,
        );
        let v2 = AvroSchema::parse(&v2).unwrap();
        let codec = ImpressionCodec::new(&v2).unwrap();
        let mut bytes = Vec::new();
        codec.encode(&imp(), &mut bytes).unwrap();
        let generic = schema_registry::decode_value(&v2, &bytes).unwrap();
        let json = schema_registry::value_to_json(&v2, &generic);
        assert_eq!(json["page"], "home", "default filled when writing v2");
        assert_eq!(codec.decode(&bytes).unwrap(), imp());
    }

    #[test]
    fn garbage_is_an_error() {
        let schema = AvroSchema::parse(IMPRESSION_V1).unwrap();
        let codec = ImpressionCodec::new(&schema).unwrap();
        for bad in [&[][..], &[0xff; 12][..], &[2, 2, 2, 2, 2, 2, 40][..]] {
            assert!(codec.decode(bad).is_err());
        }
    }
}
