//! State operations per second next to raw RocksDB on the same keys and
//! value sizes, in one run, with peak RSS.
//!
//! `cargo run --release -p state-core --bin bench-state [-- N]`

use rocksdb::{Options, WriteOptions, DB};
use state_core::{keys, StateDescriptor, StateStore, StoreOptions, ValueCodec};
use std::ops::Bound;
use std::time::Instant;

const SCHEMA: &str = r#"{"type":"record","name":"Impression","fields":[
    {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},
    {"name":"title_id","type":"long"},{"name":"ts_ms","type":"long"},
    {"name":"row","type":"int"},{"name":"rank","type":"int"},{"name":"device","type":"string"}]}"#;

/// A hand-written codec for the workload record: what a hot path uses.
struct ImpressionCodec;

#[derive(Clone)]
struct Impression {
    id: i64,
    profile: i64,
    title: i64,
    ts: i64,
    row: i32,
    rank: i32,
    device: &'static str,
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_zigzag(b: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut n: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos).ok_or("truncated")?;
        *pos += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
        }
        shift += 7;
        if shift > 63 {
            return Err("varint too long".into());
        }
    }
}

impl ValueCodec for ImpressionCodec {
    type Value = Impression;

    fn encode(&self, v: &Impression, out: &mut Vec<u8>) -> Result<(), String> {
        for x in [
            v.id,
            v.profile,
            v.title,
            v.ts,
            i64::from(v.row),
            i64::from(v.rank),
        ] {
            zigzag(out, x);
        }
        zigzag(out, v.device.len() as i64);
        out.extend_from_slice(v.device.as_bytes());
        Ok(())
    }

    fn decode(&self, b: &[u8]) -> Result<Impression, String> {
        let mut p = 0;
        let id = read_zigzag(b, &mut p)?;
        let profile = read_zigzag(b, &mut p)?;
        let title = read_zigzag(b, &mut p)?;
        let ts = read_zigzag(b, &mut p)?;
        let row = read_zigzag(b, &mut p)? as i32;
        let rank = read_zigzag(b, &mut p)? as i32;
        let len = read_zigzag(b, &mut p)? as usize;
        let device = match b.get(p..p + len) {
            Some(b"tv") => "tv",
            Some(b"web") => "web",
            _ => "mobile",
        };
        Ok(Impression {
            id,
            profile,
            title,
            ts,
            row,
            rank,
            device,
        })
    }
}

fn imp(i: i64) -> Impression {
    Impression {
        id: i,
        profile: i % 100_000,
        title: i % 977,
        ts: 1_700_000_000_000 + i * 13,
        row: (i % 20) as i32,
        rank: (i % 40) as i32,
        device: "tv",
    }
}

fn key(i: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(i % 100_000).to_be_bytes());
    k[8..].copy_from_slice(&(i % 977).to_be_bytes());
    k
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn rate(n: usize, t: Instant) -> f64 {
    n as f64 / t.elapsed().as_secs_f64()
}

struct Row {
    op: &'static str,
    ours: f64,
    raw: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();

    // Raw RocksDB baseline: same key bytes (with the same 22-byte prefix
    // layout), same encoded values, WAL off, same compression.
    let raw_path = dir.path().join("raw");
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_compression_type(rocksdb::DBCompressionType::Zstd);
    o.set_write_buffer_size(32 << 20);
    let raw = DB::open(&o, &raw_path)?;
    let mut wo = WriteOptions::default();
    wo.disable_wal(true);
    let codec = ImpressionCodec;
    let mut encoded = Vec::with_capacity(64);
    let raw_key = |i: i64, uk: i64| {
        let mut k = Vec::with_capacity(40);
        keys::encode_prefix(&mut k, (i % 128) as u16, &key(i), b"").ok();
        k.extend_from_slice(&keys::ordered_i64(uk));
        k
    };

    let store = StateStore::open(
        dir.path().join("ours"),
        StoreOptions::new(vec![
            StateDescriptor::value("last", SCHEMA),
            StateDescriptor::map("buffer", SCHEMA),
            StateDescriptor::list("history", SCHEMA),
        ]),
    )?;
    let value = store.value_state("last", ImpressionCodec)?;
    let map = store.map_state("buffer", ImpressionCodec)?;
    let list = store.list_state("history", ImpressionCodec)?;

    // value put
    let t = Instant::now();
    for i in 0..n as i64 {
        encoded.clear();
        encoded.extend_from_slice(&[1, 0, 1]);
        codec.encode(&imp(i), &mut encoded)?;
        raw.put_opt(raw_key(i, 0), &encoded, &wo)?;
    }
    let raw_put = rate(n, t);
    let t = Instant::now();
    for i in 0..n as i64 {
        value.put(&key(i), &imp(i))?;
    }
    rows.push(Row {
        op: "value put",
        ours: rate(n, t),
        raw: raw_put,
    });

    // value get
    let t = Instant::now();
    let mut found = 0usize;
    for i in 0..n as i64 {
        if let Some(v) = raw.get_pinned(raw_key(i, 0))? {
            found += codec.decode(&v[3..]).map(|x| x.row as usize).unwrap_or(0);
        }
    }
    let raw_get = rate(n, t);
    let t = Instant::now();
    for i in 0..n as i64 {
        if let Some(v) = value.get(&key(i))? {
            found += v.row as usize;
        }
    }
    rows.push(Row {
        op: "value get",
        ours: rate(n, t),
        raw: raw_get,
    });

    // map put: 10 timestamps per key
    let keys_n = (n / 10) as i64;
    let t = Instant::now();
    for i in 0..n as i64 {
        encoded.clear();
        encoded.extend_from_slice(&[1, 0, 1]);
        codec.encode(&imp(i), &mut encoded)?;
        raw.put_opt(raw_key(i % keys_n + 1_000_000, i), &encoded, &wo)?;
    }
    let raw_mput = rate(n, t);
    let t = Instant::now();
    for i in 0..n as i64 {
        map.put(&key(i % keys_n + 1_000_000), &keys::ordered(&i), &imp(i))?;
    }
    rows.push(Row {
        op: "map put",
        ours: rate(n, t),
        raw: raw_mput,
    });

    // map range scan of 10 entries
    let scans = (n / 10).max(1);
    let t = Instant::now();
    for s in 0..scans as i64 {
        let k = s % keys_n + 1_000_000;
        let lo = raw_key(k, i64::MIN);
        let hi = raw_key(k, i64::MAX);
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(hi);
        let mut it = raw.raw_iterator_opt(ro);
        it.seek(&lo);
        while let Some(v) = it.value() {
            found += codec.decode(&v[3..]).map(|x| x.rank as usize).unwrap_or(0);
            it.next();
        }
    }
    let raw_scan = rate(scans, t);
    let t = Instant::now();
    for s in 0..scans as i64 {
        let k = key(s % keys_n + 1_000_000);
        map.for_each_in_range(&k, Bound::Unbounded, Bound::Unbounded, |_, v| {
            found += v.rank as usize;
            Ok(true)
        })?;
    }
    rows.push(Row {
        op: "map scan(10)",
        ours: rate(scans, t),
        raw: raw_scan,
    });

    // list append (merge)
    let mut mo = Options::default();
    mo.create_if_missing(true);
    mo.set_merge_operator_associative("concat", |_k, existing, ops| {
        let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
        for op in ops {
            out.extend_from_slice(op);
        }
        Some(out)
    });
    let raw_list = DB::open(&mo, dir.path().join("raw-list"))?;
    let t = Instant::now();
    for i in 0..n as i64 {
        encoded.clear();
        encoded.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1]);
        codec.encode(&imp(i), &mut encoded)?;
        raw_list.merge_opt(raw_key(i % keys_n, 0), &encoded, &wo)?;
    }
    let raw_append = rate(n, t);
    let t = Instant::now();
    for i in 0..n as i64 {
        list.add(&key(i % keys_n), &imp(i))?;
    }
    rows.push(Row {
        op: "list append",
        ours: rate(n, t),
        raw: raw_append,
    });

    println!("bench-state: {n} operations per row (scan rows: {scans} scans of 10 entries)");
    println!(
        "{:<14} {:>14} {:>14} {:>8}",
        "operation", "state-core/s", "raw rocksdb/s", "ratio"
    );
    for r in &rows {
        println!(
            "{:<14} {:>14.0} {:>14.0} {:>7.0}%",
            r.op,
            r.ours,
            r.raw,
            100.0 * r.ours / r.raw
        );
    }
    println!("peak RSS: {:.0} MiB   (checksum {found})", peak_rss_mib());
    Ok(())
}
