//! A writer of canonical savepoints in Flink's format, for tests, fuzz
//! seeds and benchmarks: synthetic state of any size (the fixtures are
//! small), any max parallelism (two-byte key-group prefixes), snappy
//! compression, and a state whose serializer this reader does not know.

use crate::keygroup::key_group_of_string;
use crate::metadata::MAGIC;
use std::io::Write;
use std::path::Path;

pub const STRING: &str =
    "org.apache.flink.api.common.typeutils.base.StringSerializer$StringSerializerSnapshot";
pub const LONG: &str =
    "org.apache.flink.api.common.typeutils.base.LongSerializer$LongSerializerSnapshot";
pub const VOID: &str =
    "org.apache.flink.runtime.state.VoidNamespaceSerializer$VoidNamespaceSerializerSnapshot";
pub const LIST: &str = "org.apache.flink.api.common.typeutils.base.ListSerializerSnapshot";
pub const MAP: &str = "org.apache.flink.api.common.typeutils.base.MapSerializerSnapshot";
pub const TTL: &str = "org.apache.flink.runtime.state.ttl.TtlStateFactory$TtlSerializerSnapshot";
pub const TIMER: &str = "org.apache.flink.streaming.api.operators.TimerSerializerSnapshot";
pub const KRYO: &str = "org.apache.flink.api.java.typeutils.runtime.kryo.KryoSerializerSnapshot";

/// What to write: `keys` keys `key-00000000`..., each with a count, a TTL
/// title, a 3-element list, a 2-entry map and an event-time timer (and
/// with `kryo_state`, a value whose serializer is Kryo).
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    pub uid: String,
    pub keys: u64,
    pub max_parallelism: i32,
    pub compressed: bool,
    pub kryo_state: bool,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            uid: "synthetic".into(),
            keys: 1000,
            max_parallelism: 128,
            compressed: false,
            kryo_state: false,
        }
    }
}

/// The number of dump lines a spec gives (one per key and state, plus one
/// timer per key).
pub fn expected_lines(spec: &SyntheticSpec) -> u64 {
    spec.keys * if spec.kryo_state { 6 } else { 5 }
}

struct Out(Vec<u8>);

impl Out {
    fn i16(&mut self, v: i16) {
        self.0.extend(v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend(v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend(v.to_be_bytes());
    }
    fn utf(&mut self, s: &str) {
        self.0.extend((s.len() as u16).to_be_bytes());
        self.0.extend(s.as_bytes());
    }
    fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// StringValue: varint(len+1), UTF-16 units as varints.
    fn sv(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().collect();
        self.varint(units.len() as u32 + 1);
        for u in units {
            self.varint(u as u32);
        }
    }
    /// A nested snapshot: class, version 3, payload.
    fn snap(&mut self, class: &str, payload: impl FnOnce(&mut Out)) {
        self.utf(class);
        self.i32(3);
        payload(self);
    }
    fn composite(&mut self, class: &str, nested: &[&str]) {
        self.snap(class, |o| {
            o.i32(911_108);
            o.i32(1);
            o.i32(1_333_245);
            o.i32(1);
            o.i32(nested.len() as i32);
            for n in nested {
                o.snap(n, |_| {});
            }
        });
    }
}

fn state(
    o: &mut Out,
    name: &str,
    backend_type: i32,
    kind: Option<&str>,
    value: impl FnOnce(&mut Out),
) {
    o.utf(name);
    o.i32(backend_type);
    match kind {
        Some(k) => {
            o.i32(1);
            o.utf("KEYED_STATE_TYPE");
            o.utf(k);
            o.i32(2);
            o.utf("VALUE_SERIALIZER");
            o.i32(2);
            value(o);
            o.utf("NAMESPACE_SERIALIZER");
            o.i32(2);
            o.snap(VOID, |_| {});
        }
        None => {
            o.i32(0);
            o.i32(1);
            o.utf("VALUE_SERIALIZER");
            o.i32(2);
            value(o);
        }
    }
}

fn header(spec: &SyntheticSpec) -> Vec<u8> {
    let mut o = Out(Vec::new());
    o.i32(6);
    o.0.push(spec.compressed as u8);
    o.i32(2);
    o.snap(STRING, |_| {});
    o.i16(if spec.kryo_state { 6 } else { 5 });
    // First, so that every other state is behind the unknown snapshot.
    if spec.kryo_state {
        // Kryo's payload (a class name and registrations) is opaque to us.
        state(&mut o, "opaque", 0, Some("VALUE"), |o| {
            o.snap(KRYO, |o| {
                o.utf("com.example.Opaque");
                o.0.extend([0u8, 0, 0, 0, 0x7f, 0x13, 0x00, 0x01]);
            })
        });
    }
    state(&mut o, "count", 0, Some("VALUE"), |o| o.snap(LONG, |_| {}));
    state(&mut o, "title", 0, Some("VALUE"), |o| {
        o.composite(TTL, &[LONG, STRING])
    });
    state(&mut o, "events", 0, Some("LIST"), |o| {
        o.composite(LIST, &[LONG])
    });
    state(&mut o, "attrs", 0, Some("MAP"), |o| {
        o.composite(MAP, &[LONG, STRING])
    });
    state(&mut o, "_timer_state/event_user-timers", 3, None, |o| {
        o.composite(TIMER, &[STRING, VOID])
    });
    o.0
}

/// (state id, key bytes, value bytes) of one key, in state order.
fn entries_of(spec: &SyntheticSpec, i: u64, key: &str, kg: i32) -> Vec<(u16, Vec<u8>, Vec<u8>)> {
    let mut prefix = Out(Vec::new());
    if spec.max_parallelism > 128 {
        prefix.0.extend((kg as u16).to_be_bytes());
    } else {
        prefix.0.push(kg as u8);
    }
    let composite = |extra: &[u8]| {
        let mut k = Out(prefix.0.clone());
        k.sv(key);
        k.0.push(0); // VoidNamespace
        k.0.extend(extra);
        k.0
    };
    let ts = 1_700_000_000_000 + i as i64;
    let mut title = Out(Vec::new());
    title.i64(ts);
    title.sv(&format!("title {i} ☃"));
    let mut list = Vec::new();
    for j in 0..3i64 {
        if j > 0 {
            list.push(b',');
        }
        list.extend((ts + j).to_be_bytes());
    }
    // With the Kryo state first, every other state id moves up by one.
    let s = spec.kryo_state as u16;
    let mut v = vec![
        (s, composite(&[]), (i as i64).to_be_bytes().to_vec()),
        (1 + s, composite(&[]), title.0),
        (2 + s, composite(&[]), list),
    ];
    for m in 0..2i64 {
        let mut val = Out(vec![0]);
        val.sv(&format!("attr-{m}"));
        v.push((3 + s, composite(&m.to_be_bytes()), val.0));
    }
    let mut timer = Out(prefix.0.clone());
    timer.i64((ts + 3_600_000) ^ i64::MIN);
    timer.sv(key);
    timer.0.push(0);
    v.push((4 + s, timer.0, Vec::new()));
    if spec.kryo_state {
        v.push((0, composite(&[]), vec![1, 2, 3]));
    }
    v
}

/// Writes one key group block: state runs, each ended by the flag on its
/// last key and the next state id (0xFFFF at the end).
fn key_group_block(mut entries: Vec<(u16, Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    entries.sort();
    let mut o = Out(Vec::new());
    for (i, (id, k, v)) in entries.iter().enumerate() {
        if i == 0 {
            o.i16(*id as i16);
        }
        let next = entries.get(i + 1).map(|e| e.0);
        let last = next != Some(*id);
        let mut k = k.clone();
        if last {
            if let Some(b) = k.first_mut() {
                *b |= 0x80;
            }
        }
        o.i32(k.len() as i32);
        o.0.extend(&k);
        o.i32(v.len() as i32);
        o.0.extend(v);
        if last {
            o.i16(next.map_or(-1, |n| n as i16));
        }
    }
    o.0
}

fn compress(block: &[u8]) -> Vec<u8> {
    let mut w = snap::write::FrameEncoder::new(Vec::new());
    let _ = w.write_all(block);
    w.into_inner().unwrap_or_default()
}

/// Writes `_metadata` and one keyed-state file into `dir`. Keys are
/// spread over key groups by Flink's own hash; memory stays one key
/// group's worth of entries.
pub fn write_canonical_savepoint(dir: &Path, spec: &SyntheticSpec) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let maxp = spec.max_parallelism.max(1);
    let mut by_kg: Vec<Vec<u64>> = vec![Vec::new(); maxp as usize];
    for i in 0..spec.keys {
        let kg = key_group_of_string(&format!("key-{i:08}"), maxp);
        by_kg[kg as usize].push(i);
    }
    let file = "keyed-state-0";
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(file))?);
    let h = header(spec);
    f.write_all(&h)?;
    let mut pos = h.len() as i64;
    let mut offsets = vec![0i64; maxp as usize];
    for (kg, keys) in by_kg.iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        let entries = keys
            .iter()
            .flat_map(|&i| entries_of(spec, i, &format!("key-{i:08}"), kg as i32))
            .collect();
        let mut block = key_group_block(entries);
        if spec.compressed {
            block = compress(&block);
        }
        offsets[kg] = pos;
        f.write_all(&block)?;
        pos += block.len() as i64;
    }
    f.flush()?;
    std::fs::write(dir.join("_metadata"), metadata(spec, &offsets, file, pos))
}

fn metadata(spec: &SyntheticSpec, offsets: &[i64], file: &str, size: i64) -> Vec<u8> {
    let mut o = Out(Vec::new());
    o.0.extend(MAGIC.to_be_bytes());
    o.i32(6);
    o.i64(1);
    o.i32(0); // master states
    o.i32(1); // operators
    o.utf(&spec.uid);
    o.utf(&spec.uid);
    o.0.extend([0x5a; 16]);
    o.i32(1);
    o.i32(spec.max_parallelism);
    o.0.push(0); // no coordinator state
    o.i32(1);
    o.i32(0); // subtask 0
    o.i32(0);
    o.i32(0);
    o.0.push(7);
    o.i32(0);
    o.i32(offsets.len() as i32);
    for &off in offsets {
        o.i64(off);
    }
    o.0.push(6);
    o.utf(file);
    o.i64(size);
    o.0.push(0); // raw keyed state
    o.i32(0);
    o.i32(0);
    o.0
}
