//! Avro object container files (Avro 1.x spec, "Object Container Files")
//! holding savepoint entries, written and read without building generic
//! Avro values: an entry's value is already Avro binary under the state's
//! schema, and a nested record's encoding is just its bytes in place.

use super::error::{Result, SavepointError};
use crate::descriptor::StateKind;
use apache_avro::{Codec, ZstandardSettings};
use schema_registry::{AvroSchema, Resolver};
use std::sync::Arc;

pub const MAGIC: &[u8; 4] = b"Obj\x01";
const SYNC_LEN: usize = 16;
/// zstd level of data blocks: level 1 is several times faster than the
/// default and within a few percent of its ratio on state values.
const ZSTD_LEVEL: u8 = 1;
/// Uncompressed bytes gathered before a block is compressed and written.
pub const BLOCK_BYTES: usize = 1 << 20;
/// Refuse blocks (and headers) claiming more than this: a hostile length
/// must not become an allocation.
const MAX_BLOCK_BYTES: u64 = 256 << 20;

pub const ENTRY_RECORD: &str = "streamstate_savepoint_entry_v1";
pub const TIMER_RECORD: &str = "streamstate_savepoint_timer_v1";

/// One entry of a state, its value(s) as Avro binary under the state's
/// current schema in the savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key_group: u16,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
    pub user_key: Vec<u8>,
    /// When the entry expires; for a list, when its last element does
    /// (`None` if any element never expires).
    pub expiry_ms: Option<i64>,
    pub value: EntryValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryValue {
    /// Value and map state: one value.
    Single(Vec<u8>),
    /// List state: the elements in order, each with its own expiry.
    List(Vec<ListElement>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListElement {
    pub expiry_ms: Option<i64>,
    pub value: Vec<u8>,
}

impl Entry {
    /// The state-core store key of the entry (docs/state-format.md): its
    /// byte order is the order of entries in a savepoint.
    pub fn encode_store_key(&self, out: &mut Vec<u8>) -> crate::Result<()> {
        crate::keys::encode_prefix(out, self.key_group, &self.key, &self.namespace)?;
        out.extend_from_slice(&self.user_key);
        Ok(())
    }
}

/// The container schema of a state's files.
pub fn entry_schema_json(kind: StateKind, value_schema_json: &str) -> String {
    let value = match kind {
        StateKind::List => format!(
            r#"{{"name":"element_expiry_ms","type":{{"type":"array","items":["null","long"]}}}},{{"name":"value","type":{{"type":"array","items":{value_schema_json}}}}}"#
        ),
        _ => format!(r#"{{"name":"value","type":{value_schema_json}}}"#),
    };
    format!(
        r#"{{"type":"record","name":"{ENTRY_RECORD}","fields":[{{"name":"key_group","type":"int"}},{{"name":"key","type":"bytes"}},{{"name":"namespace","type":"bytes"}},{{"name":"user_key","type":"bytes"}},{{"name":"expiry_ms","type":["null","long"]}},{value}]}}"#
    )
}

pub fn timer_schema_json() -> String {
    format!(
        r#"{{"type":"record","name":"{TIMER_RECORD}","fields":[{{"name":"key_group","type":"int"}},{{"name":"key","type":"bytes"}},{{"name":"timestamp","type":"long"}},{{"name":"payload","type":"bytes","default":""}}]}}"#
    )
}

// ---- Avro binary primitives ----

pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn put_opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(2);
            put_long(out, v);
        }
    }
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn long(&mut self) -> std::result::Result<i64, String> {
        let mut z: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if shift >= 64 {
                return Err("varint longer than 10 bytes".into());
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| format!("{n} bytes announced, {} left", self.buf.len() - self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn bytes(&mut self) -> std::result::Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
        self.take(n)
    }

    fn opt_long(&mut self) -> std::result::Result<Option<i64>, String> {
        match self.long()? {
            0 => Ok(None),
            1 => Ok(Some(self.long()?)),
            b => Err(format!("union branch {b} of [\"null\",\"long\"]")),
        }
    }

    fn key_group(&mut self) -> std::result::Result<u16, String> {
        let kg = self.long()?;
        u16::try_from(kg).map_err(|_| format!("key group {kg} out of range"))
    }

    /// Reads an Avro array's items, calling `item` for each.
    fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        loop {
            let mut n = self.long()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                n = n.checked_neg().ok_or("bad array block count")?;
                self.long()?; // block size in bytes, not needed
            }
            for _ in 0..n {
                item(self)?;
            }
        }
    }
}

// ---- entries ----

pub fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    put_long(out, i64::from(e.key_group));
    put_bytes(out, &e.key);
    put_bytes(out, &e.namespace);
    put_bytes(out, &e.user_key);
    put_opt_long(out, e.expiry_ms);
    match &e.value {
        EntryValue::Single(v) => out.extend_from_slice(v),
        EntryValue::List(items) => {
            put_array_header(out, items.len());
            for el in items {
                put_opt_long(out, el.expiry_ms);
            }
            if !items.is_empty() {
                out.push(0);
            }
            put_array_header(out, items.len());
            for el in items {
                out.extend_from_slice(&el.value);
            }
            if !items.is_empty() {
                out.push(0);
            }
        }
    }
}

fn put_array_header(out: &mut Vec<u8>, n: usize) {
    put_long(out, n as i64);
}

/// Decodes entries of one state; the resolver is the value schema's own
/// plan, used to find where each value ends (and to check it).
pub struct EntryDecoder {
    kind: StateKind,
    plan: Arc<Resolver>,
}

impl EntryDecoder {
    pub fn new(kind: StateKind, schema: &AvroSchema) -> std::result::Result<Self, String> {
        let plan = schema.plain_resolver().map_err(|e| e.to_string())?;
        Ok(EntryDecoder { kind, plan })
    }

    pub fn decode(&self, c: &mut Cursor<'_>) -> std::result::Result<Entry, String> {
        let key_group = c.key_group()?;
        let key = c.bytes()?.to_vec();
        let namespace = c.bytes()?.to_vec();
        let user_key = c.bytes()?.to_vec();
        let expiry_ms = c.opt_long()?;
        let value = match self.kind {
            StateKind::List => {
                let mut expiries = Vec::new();
                c.array(|c| {
                    expiries.push(c.opt_long()?);
                    Ok(())
                })?;
                let mut items = Vec::with_capacity(expiries.len());
                let mut i = 0;
                c.array(|c| {
                    let value = self.value(c)?;
                    let expiry_ms = *expiries.get(i).ok_or("more list values than expiries")?;
                    i += 1;
                    items.push(ListElement { expiry_ms, value });
                    Ok(())
                })?;
                if items.len() != expiries.len() {
                    return Err(format!(
                        "{} list values but {} expiries",
                        items.len(),
                        expiries.len()
                    ));
                }
                EntryValue::List(items)
            }
            _ => EntryValue::Single(self.value(c)?),
        };
        Ok(Entry {
            key_group,
            key,
            namespace,
            user_key,
            expiry_ms,
            value,
        })
    }

    fn value(&self, c: &mut Cursor<'_>) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let used = self
            .plan
            .resolve_bytes(&c.buf[c.pos..], &mut out)
            .map_err(|e| format!("value: {e}"))?;
        c.pos += used;
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRecord {
    pub key_group: u16,
    pub key: Vec<u8>,
    pub timestamp: i64,
    /// The caller's payload of the timer (see `Timer::payload`).
    pub payload: Vec<u8>,
}

pub fn encode_timer(out: &mut Vec<u8>, t: &TimerRecord) {
    put_long(out, i64::from(t.key_group));
    put_bytes(out, &t.key);
    put_long(out, t.timestamp);
    put_bytes(out, &t.payload);
}

pub fn decode_timer(c: &mut Cursor<'_>) -> std::result::Result<TimerRecord, String> {
    Ok(TimerRecord {
        key_group: c.key_group()?,
        key: c.bytes()?.to_vec(),
        timestamp: c.long()?,
        payload: c.bytes()?.to_vec(),
    })
}

// ---- container ----

fn codec() -> Codec {
    Codec::Zstandard(ZstandardSettings::new(ZSTD_LEVEL))
}

/// Writes one container file to any `Write`, block by block.
pub struct ContainerWriter<W: std::io::Write> {
    out: W,
    sync: [u8; SYNC_LEN],
    block: Vec<u8>,
    count: u64,
    pub records: u64,
    pub bytes_written: u64,
}

impl<W: std::io::Write> ContainerWriter<W> {
    pub fn new(mut out: W, schema_json: &str, sync_seed: &[u8]) -> std::io::Result<Self> {
        let sync = xxhash_rust::xxh3::xxh3_128(sync_seed).to_le_bytes();
        let mut header = Vec::with_capacity(schema_json.len() + 64);
        header.extend_from_slice(MAGIC);
        put_long(&mut header, 2);
        put_bytes(&mut header, b"avro.schema");
        put_bytes(&mut header, schema_json.as_bytes());
        put_bytes(&mut header, b"avro.codec");
        put_bytes(&mut header, b"zstandard");
        put_long(&mut header, 0);
        header.extend_from_slice(&sync);
        out.write_all(&header)?;
        Ok(ContainerWriter {
            out,
            sync,
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
            count: 0,
            records: 0,
            bytes_written: header.len() as u64,
        })
    }

    /// Appends one record; `encode` writes its Avro binary.
    pub fn append(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
        encode(&mut self.block);
        self.count += 1;
        self.records += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.block);
        codec()
            .compress(&mut data)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut head = Vec::with_capacity(20);
        put_long(&mut head, self.count as i64);
        put_long(&mut head, data.len() as i64);
        self.out.write_all(&head)?;
        self.out.write_all(&data)?;
        self.out.write_all(&self.sync)?;
        self.bytes_written += (head.len() + data.len() + SYNC_LEN) as u64;
        self.count = 0;
        data.clear();
        self.block = data;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_block()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The parsed header of a container file.
pub struct ContainerHeader {
    pub schema_json: String,
    pub codec: String,
    pub sync: [u8; SYNC_LEN],
    pub data_start: usize,
}

pub fn read_header(buf: &[u8]) -> std::result::Result<ContainerHeader, String> {
    if buf.get(..4) != Some(&MAGIC[..]) {
        return Err("not an Avro object container file (bad magic)".into());
    }
    let mut c = Cursor::new(buf);
    c.pos = 4;
    let mut schema = None;
    let mut codec = "null".to_string();
    loop {
        let mut n = c.long()?;
        if n == 0 {
            break;
        }
        if n < 0 {
            n = n.checked_neg().ok_or("bad header map count")?;
            c.long()?;
        }
        for _ in 0..n {
            let k = c.bytes()?;
            let v = c.bytes()?;
            match k {
                b"avro.schema" => {
                    schema = Some(String::from_utf8(v.to_vec()).map_err(|_| "schema not UTF-8")?)
                }
                b"avro.codec" => {
                    codec = String::from_utf8(v.to_vec()).map_err(|_| "codec not UTF-8")?
                }
                _ => {}
            }
        }
    }
    let sync: [u8; SYNC_LEN] = c
        .take(SYNC_LEN)?
        .try_into()
        .map_err(|_| "truncated sync marker")?;
    Ok(ContainerHeader {
        schema_json: schema.ok_or("no avro.schema in header")?,
        codec,
        sync,
        data_start: c.pos,
    })
}

/// Reads the block at `*pos` of a file held in memory (`None` at the
/// end): (record count, decompressed bytes).
pub fn next_block(
    buf: &[u8],
    pos: &mut usize,
    header: &ContainerHeader,
) -> Option<std::result::Result<(u64, Vec<u8>), String>> {
    if *pos >= buf.len() {
        return None;
    }
    if header.codec != "zstandard" {
        return Some(Err(format!(
            "codec '{}' (savepoints use zstandard)",
            header.codec
        )));
    }
    let mut c = Cursor::new(buf);
    c.pos = *pos;
    let r = read_block(&mut c, &header.sync);
    // A failed block ends the file: no resynchronisation on damaged data.
    *pos = if r.is_ok() { c.pos } else { buf.len() };
    Some(r)
}

fn read_block(
    c: &mut Cursor<'_>,
    sync: &[u8; SYNC_LEN],
) -> std::result::Result<(u64, Vec<u8>), String> {
    let at = c.pos;
    let count = c.long()?;
    let size = c.long()?;
    if count <= 0 || size < 0 || size as u64 > MAX_BLOCK_BYTES {
        return Err(format!("block at byte {at}: count {count}, size {size}"));
    }
    let data = c
        .take(size as usize)
        .map_err(|e| format!("block at byte {at}: {e}"))?;
    let marker = c
        .take(SYNC_LEN)
        .map_err(|e| format!("block at byte {at}: {e}"))?;
    if marker != sync {
        return Err(format!("block at byte {at}: sync marker mismatch"));
    }
    let mut data = data.to_vec();
    codec()
        .decompress(&mut data)
        .map_err(|e| format!("block at byte {at}: {e}"))?;
    Ok((count as u64, data))
}

pub(crate) fn corrupt(file: &str, reason: impl Into<String>) -> SavepointError {
    SavepointError::corrupt(file, reason)
}

/// Decodes every record of a file held in memory, calling `f` for each.
pub fn for_each_record(
    file: &str,
    buf: &[u8],
    expected_schema: &str,
    mut f: impl FnMut(&mut Cursor<'_>) -> Result<bool>,
) -> Result<()> {
    let header = read_header(buf).map_err(|r| corrupt(file, r))?;
    if header.schema_json != expected_schema {
        return Err(corrupt(file, "file schema differs from the metadata's"));
    }
    let mut pos = header.data_start;
    while let Some(block) = next_block(buf, &mut pos, &header) {
        let (count, data) = block.map_err(|r| corrupt(file, r))?;
        let mut c = Cursor::new(&data);
        for _ in 0..count {
            if !f(&mut c)? {
                return Ok(());
            }
        }
        if !c.is_empty() {
            return Err(corrupt(
                file,
                format!("{} stray bytes after a block's records", data.len() - c.pos),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema() -> AvroSchema {
        AvroSchema::parse(r#"{"type":"record","name":"V","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"}]}"#).unwrap()
    }

    fn value(a: i64, s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_long(&mut out, a);
        put_bytes(&mut out, s.as_bytes());
        out
    }

    fn arb_entry(list: bool) -> impl Strategy<Value = Entry> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..12);
        let el =
            (proptest::option::of(any::<i64>()), any::<i64>(), ".{0,5}").prop_map(|(e, a, s)| {
                ListElement {
                    expiry_ms: e,
                    value: value(a, &s),
                }
            });
        (
            any::<u16>(),
            bytes(),
            bytes(),
            bytes(),
            proptest::option::of(any::<i64>()),
            any::<i64>(),
            ".{0,8}",
            proptest::collection::vec(el, 0..4),
        )
            .prop_map(move |(kg, k, ns, uk, exp, a, s, items)| Entry {
                key_group: kg,
                key: k,
                namespace: ns,
                user_key: uk,
                expiry_ms: exp,
                value: if list {
                    EntryValue::List(items)
                } else {
                    EntryValue::Single(value(a, &s))
                },
            })
    }

    fn round_trip(kind: StateKind, entries: &[Entry]) -> Vec<Entry> {
        let s = schema();
        let json = entry_schema_json(kind, s.json());
        let mut w = ContainerWriter::new(Vec::new(), &json, b"seed").unwrap();
        for e in entries {
            w.append(|out| encode_entry(out, e)).unwrap();
        }
        let buf = w.finish().unwrap();
        let dec = EntryDecoder::new(kind, &s).unwrap();
        let mut back = Vec::new();
        for_each_record("f", &buf, &json, |c| {
            back.push(dec.decode(c).map_err(|r| corrupt("f", r))?);
            Ok(true)
        })
        .unwrap();
        back
    }

    proptest! {
        #[test]
        fn entries_round_trip(entries in proptest::collection::vec(arb_entry(false), 0..20)) {
            prop_assert_eq!(round_trip(StateKind::Map, &entries), entries);
        }

        #[test]
        fn list_entries_round_trip(entries in proptest::collection::vec(arb_entry(true), 0..20)) {
            prop_assert_eq!(round_trip(StateKind::List, &entries), entries);
        }

        #[test]
        fn longs_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            put_long(&mut out, v);
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.long().unwrap(), v);
            prop_assert!(c.is_empty());
        }

        #[test]
        fn hostile_files_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let s = schema();
            let json = entry_schema_json(StateKind::List, s.json());
            let dec = EntryDecoder::new(StateKind::List, &s).unwrap();
            let mut buf = Vec::new();
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&raw);
            let _ = for_each_record("f", &buf, &json, |c| {
                dec.decode(c).map_err(|r| corrupt("f", r))?;
                Ok(true)
            });
        }
    }

    #[test]
    fn apache_avro_reads_our_files() {
        let s = schema();
        let json = entry_schema_json(StateKind::Map, s.json());
        let mut w = ContainerWriter::new(Vec::new(), &json, b"x").unwrap();
        let e = Entry {
            key_group: 7,
            key: b"k".to_vec(),
            namespace: vec![],
            user_key: b"u".to_vec(),
            expiry_ms: Some(42),
            value: EntryValue::Single(value(-3, "hi")),
        };
        for _ in 0..3 {
            w.append(|out| encode_entry(out, &e)).unwrap();
        }
        let buf = w.finish().unwrap();
        let reader = apache_avro::Reader::new(&buf[..]).unwrap();
        let mut n = 0;
        for v in reader {
            let v = v.unwrap();
            let apache_avro::types::Value::Record(fields) = v else {
                panic!("not a record")
            };
            assert_eq!(fields[0].1, apache_avro::types::Value::Int(7));
            let apache_avro::types::Value::Record(inner) = &fields[5].1 else {
                panic!("value not a record")
            };
            assert_eq!(inner[0].1, apache_avro::types::Value::Long(-3));
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
