//! bench-savepoint: savepoint throughput against a raw RocksDB scan of the
//! same state, in one run, and peak RSS at two sizes (it must not grow
//! with the savepoint's size).
//!
//! `cargo run --release -p savepoint-cli --bin bench-savepoint` runs itself
//! at 500 000 and 1 500 000 map entries; `-- N` runs one size.

use state_core::keys::ordered;
use state_core::savepoint::{self as sp, WriteOptions};
use state_core::{KeyFormat, KeyGroupRange, StateDescriptor, StateStore, StoreOptions};
use std::time::Instant;

const SCHEMA: &str = r#"{"type":"record","name":"Impression","fields":[{"name":"ts","type":"long"},{"name":"title","type":"long"},{"name":"device","type":"string"}]}"#;
const SCHEMA2: &str = r#"{"type":"record","name":"Impression","fields":[{"name":"ts","type":"long"},{"name":"title","type":"long"},{"name":"device","type":"string"},{"name":"row","type":"int","default":0}]}"#;

#[derive(serde::Serialize, serde::Deserialize)]
struct Imp {
    ts: i64,
    title: i64,
    device: String,
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        let me = std::env::current_exe()?;
        for n in ["500000", "1500000"] {
            let st = std::process::Command::new(&me).arg(n).status()?;
            if !st.success() {
                return Err(format!("run with {n} entries failed").into());
            }
        }
        return Ok(());
    }
    let n: u64 = args[1].parse()?;
    let dir = tempfile::tempdir()?;
    let desc = StateDescriptor::map("impressions", SCHEMA)
        .with_key_format(KeyFormat::I64Pair)
        .with_user_key_format(KeyFormat::I64);
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(vec![desc]))?;
    let m = store.map_state_serde::<Imp>("impressions")?;
    let t = Instant::now();
    for i in 0..n as i64 {
        let key = ordered(&(i / 8, i % 97));
        m.put(
            &key,
            &ordered(&i),
            &Imp {
                ts: i,
                title: i % 5000,
                device: "tv-living-room".into(),
            },
        )?;
    }
    store.flush()?;
    store.compact()?;
    let load = t.elapsed().as_secs_f64();
    let hwm_load = vm_hwm_kib();

    // Baseline: raw RocksDB iteration of the same state (bytes touched).
    let t = Instant::now();
    let mut raw = 0u64;
    let mut bytes = 0u64;
    for e in store.scan("impressions", KeyGroupRange::all(128))? {
        let e = e?;
        raw += 1;
        bytes += (e.key.len() + e.user_key.len() + e.value.len()) as u64;
    }
    let scan = t.elapsed().as_secs_f64();
    assert_eq!(raw, n);

    let url = dir.path().join("sp").to_string_lossy().into_owned();
    let t = Instant::now();
    let meta = sp::create_from_store(
        &store,
        serde_json::json!({}),
        sp::SourceInfo::store("bench"),
        &url,
        WriteOptions::default(),
    )?;
    let create = t.elapsed().as_secs_f64();
    let sp_bytes: u64 = meta.states.iter().map(|s| s.bytes).sum();

    let rt = state_core::checkpoint::io_runtime()?;
    let savepoint = sp::Savepoint::open(rt, &url)?;
    let t = Instant::now();
    let mut read = 0u64;
    for e in savepoint.entries("impressions", None)? {
        e?;
        read += 1;
    }
    let entries = t.elapsed().as_secs_f64();
    let schema = schema_registry::AvroSchema::parse(&meta.states[0].schema)?;
    let t = Instant::now();
    let mut sink = std::io::sink();
    for e in savepoint.entries("impressions", None)? {
        let e = e?;
        let j = sp::entry_value_json(&schema, state_core::StateKind::Map, &e);
        serde_json::to_writer(&mut sink, &j)?;
    }
    let dump = t.elapsed().as_secs_f64();

    let dst = dir.path().join("sp2").to_string_lossy().into_owned();
    let t = Instant::now();
    let report = sp::migrate(
        &url,
        "impressions",
        SCHEMA2,
        &dst,
        false,
        WriteOptions::default(),
    )?;
    let migrate = t.elapsed().as_secs_f64();
    assert_eq!(report.rewritten, n);

    println!(
        "== {n} map entries (loaded in {load:.1} s, peak RSS after load {} MiB)",
        hwm_load / 1024
    );
    println!(
        "raw RocksDB scan        {:>12.0} entries/s  ({} MiB of keys+values)",
        rate(raw, scan),
        bytes >> 20
    );
    println!("create (savepoint)      {:>12.0} entries/s  = {:.2}x of the raw scan rate; {} MiB of files", rate(n, create), scan / create, sp_bytes >> 20);
    println!(
        "read entries            {:>12.0} entries/s  = {:.2}x",
        rate(read, entries),
        scan / entries
    );
    println!(
        "dump (JSON values)      {:>12.0} entries/s  = {:.2}x",
        rate(n, dump),
        scan / dump
    );
    println!(
        "migrate (resolve+write) {:>12.0} records/s  = {:.2}x",
        rate(n, migrate),
        scan / migrate
    );
    println!(
        "peak RSS (VmHWM)        {:>12} MiB (load alone: {} MiB)",
        vm_hwm_kib() / 1024,
        hwm_load / 1024
    );
    Ok(())
}
