//! Records per second for plain decode, resolve-to-value and resolve-to-bytes
//! of the workload's impression record (v1 -> v2: `row` int -> long, a new
//! `country` field with a default), next to apache-avro's generic
//! `from_avro_datum(writer, Some(reader))` measured in the same run.
//!
//! Run: cargo run --release -p schema-registry --bin bench-resolve [-- RECORDS]

#![allow(deprecated)] // apache-avro's `from_avro_datum` is the baseline being measured.

use std::hint::black_box;
use std::time::Instant;

use apache_avro::types::Value;
use schema_registry::{encode_value, AvroSchema, Resolver};

const V1: &str = r#"{"type":"record","name":"Impression","namespace":"streamstate","fields":[
 {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},{"name":"title_id","type":"long"},
 {"name":"ts_ms","type":"long"},{"name":"row","type":"int"},{"name":"rank","type":"int"},{"name":"device","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Impression","namespace":"streamstate","fields":[
 {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},{"name":"title_id","type":"long"},
 {"name":"ts_ms","type":"long"},{"name":"row","type":"long"},{"name":"rank","type":"int"},{"name":"device","type":"string"},
 {"name":"country","type":"string","default":"unknown"}]}"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Deterministic impressions shaped like the workload's generator output.
fn records(n: usize) -> Vec<Value> {
    let devices = ["tv", "mobile", "web", "tablet"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Value::Record(vec![
                ("impression_id".into(), Value::Long(i as i64)),
                ("profile_id".into(), Value::Long((x % 1_000_000) as i64)),
                ("title_id".into(), Value::Long(((x >> 20) % 50_000) as i64)),
                (
                    "ts_ms".into(),
                    Value::Long(1_700_000_000_000 + (i as i64) * 37),
                ),
                ("row".into(), Value::Int(((x >> 40) % 40) as i32)),
                ("rank".into(), Value::Int(((x >> 48) % 75) as i32)),
                (
                    "device".into(),
                    Value::String(devices[(x % 4) as usize].into()),
                ),
            ])
        })
        .collect()
}

fn measure(name: &str, n: usize, rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    let _ = f(); // warm-up
    let start = Instant::now();
    let mut done = 0;
    for _ in 0..rounds {
        done += f();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = done as f64 / secs;
    println!(
        "{name:<34} {rate:>14.0} records/s  ({} records in {secs:.3}s)",
        n * rounds
    );
    rate
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let rounds = 5;
    let w = AvroSchema::parse(V1)?;
    let r = AvroSchema::parse(V2)?;
    let encoded: Vec<Vec<u8>> = records(n)
        .iter()
        .map(|v| encode_value(&w, v))
        .collect::<Result<_, _>>()?;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    println!(
        "impression v1 -> v2, {n} records, {:.1} bytes/record, {rounds} rounds each",
        bytes as f64 / n as f64
    );

    let plain = w.plain_resolver()?;
    let resolver = Resolver::compile(&w, &r)?;
    let mut out = Vec::with_capacity(64);

    let ours_plain = measure("ours: plain decode (value)", n, rounds, || {
        encoded
            .iter()
            .map(|b| black_box(plain.resolve_value(b).map(|_| 1).unwrap_or(0)))
            .sum()
    });
    let ours_value = measure("ours: resolve-to-value", n, rounds, || {
        encoded
            .iter()
            .map(|b| black_box(resolver.resolve_value(b).map(|_| 1).unwrap_or(0)))
            .sum()
    });
    let ours_bytes = measure("ours: resolve-to-bytes", n, rounds, || {
        encoded
            .iter()
            .map(|b| {
                out.clear();
                black_box(resolver.resolve_bytes(b, &mut out).map(|_| 1).unwrap_or(0))
            })
            .sum()
    });
    let theirs_plain = measure("apache-avro: from_avro_datum(w)", n, rounds, || {
        encoded
            .iter()
            .map(|b| {
                black_box(
                    apache_avro::from_avro_datum(w.inner(), &mut &b[..], None)
                        .map(|_| 1)
                        .unwrap_or(0),
                )
            })
            .sum()
    });
    let theirs = measure("apache-avro: from_avro_datum(w, r)", n, rounds, || {
        encoded
            .iter()
            .map(|b| {
                black_box(
                    apache_avro::from_avro_datum(w.inner(), &mut &b[..], Some(r.inner()))
                        .map(|_| 1)
                        .unwrap_or(0),
                )
            })
            .sum()
    });
    println!();
    println!(
        "plain decode       vs apache plain:    {:.2}x",
        ours_plain / theirs_plain
    );
    println!(
        "resolve-to-value   vs apache resolve:  {:.2}x",
        ours_value / theirs
    );
    println!(
        "resolve-to-bytes   vs apache resolve:  {:.2}x  (target >= 3x)",
        ours_bytes / theirs
    );
    println!(
        "resolve-to-bytes   vs our plain decode: {:.2}x",
        ours_bytes / ours_plain
    );
    println!("peak RSS: {} KiB", peak_rss_kib());
    Ok(())
}
