//! bench-join: the whole job on the generated workload (medium by default),
//! next to baselines measured in the same run:
//! - parse: both CSV files through `MergedSources` plus a key hash (the
//!   cheapest the job could ever be);
//! - raw RocksDB: one WAL-less put per event of the same key and encoded
//!   value bytes (the least state work a job that buffers events can do);
//! - the job (`stream-join run`, as a child process so its peak RSS is its
//!   own) with `--cleanup timers` and `--cleanup ttl`.
//!
//! Reports events/s, events per CPU-second (user + system, all threads: what
//! "per core" means), peak RSS, state size, checkpoint pause and bytes.
//!
//! `cargo run --release -p join-operator --bin bench-join -- [--size small|medium] [--seed S] [--dir DIR]`

use join_operator::gen::{self, GenConfig, Size};
use join_operator::job::cpu_seconds;
use join_operator::operator::key_bytes;
use join_operator::source::{Arrived, MergeOffsets, MergedSources, Watermarks};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = match arg("--size").as_deref() {
        Some("small") => Size::Small,
        Some("large") => Size::Large,
        _ => Size::Medium,
    };
    let seed: u64 = arg("--seed").and_then(|s| s.parse().ok()).unwrap_or(42);
    let dir =
        PathBuf::from(arg("--dir").unwrap_or_else(|| {
            format!("/var/tmp/streamstate-bench-{size:?}-{seed}").to_lowercase()
        }));
    let imps = dir.join("impressions.csv");
    let plays = dir.join("plays.csv");
    if !imps.exists() || !plays.exists() {
        eprintln!("generating {size:?} workload into {}", dir.display());
        gen::generate(&GenConfig::for_size(size, seed), &dir)?;
    }

    // Baseline 1: parse, merge and hash.
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut src = MergedSources::open_csv(
        &imps,
        &plays,
        MergeOffsets::default(),
        Watermarks::new(5000),
    )?;
    let mut events = 0u64;
    let mut acc = 0u64;
    while let Some(a) = src.next_arrival()? {
        let k = match &a.event {
            Arrived::Impression(i) => key_bytes(i.profile_id, i.title_id),
            Arrived::Play(p) => key_bytes(p.profile_id, p.title_id),
        };
        acc ^= xxhash_rust::xxh3::xxh3_64(&k);
        events += 1;
    }
    let parse = (
        events as f64 / t.elapsed().as_secs_f64(),
        events as f64 / (cpu_seconds() - cpu0).max(1e-9),
    );

    // Baseline 2: raw RocksDB puts of the same events.
    let raw_dir = tempfile::tempdir_in("/var/tmp")?;
    let raw = raw_puts(&imps, &plays, raw_dir.path())?;
    drop(raw_dir);

    println!("bench-join: {events} events ({size:?}, seed {seed}), checksum {acc:x}");
    println!(
        "{:<50} {:>12} {:>14} {:>9} {:>9} {:>10} {:>19} {:>12}",
        "",
        "events/s",
        "events/cpu-s",
        "vs parse",
        "RSS MiB",
        "state MiB",
        "max pause (barrier)",
        "uploaded MiB"
    );
    println!(
        "{:<50} {:>12.0} {:>14.0} {:>9} {:>9} {:>10} {:>19} {:>12}",
        "parse + merge + key hash", parse.0, parse.1, "1.00", "-", "-", "-", "-"
    );
    println!(
        "{:<50} {:>12.0} {:>14.0} {:>9.2} {:>9} {:>10} {:>19} {:>12}",
        "raw RocksDB put per event",
        raw.0,
        raw.1,
        raw.1 / parse.1,
        "-",
        "-",
        "-",
        "-"
    );

    let exe = std::env::current_exe()?;
    let job_bin = exe.with_file_name("stream-join");
    // The previous release (every event through RocksDB) is the last row.
    let runs: [(&str, &[&str]); 6] = [
        ("timers", &[]),
        ("ttl", &[]),
        // Checkpoints during the run, not only the final one: each writes
        // the live window to RocksDB.
        ("timers", &["--checkpoint-interval-ms", "2000"]),
        ("ttl", &["--checkpoint-interval-ms", "2000"]),
        ("timers", &["--window-memory-mb", "0"]),
        ("ttl", &["--window-memory-mb", "0"]),
    ];
    for (cleanup, extra) in runs {
        let work = tempfile::tempdir_in("/var/tmp")?;
        let out = Command::new(&job_bin)
            .args(["run", "--impressions"])
            .arg(&imps)
            .arg("--plays")
            .arg(&plays)
            .arg("--output")
            .arg(work.path().join("out"))
            .arg("--checkpoints")
            .arg(work.path().join("checkpoints"))
            .args(["--cleanup", cleanup])
            .args(extra)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "stream-join failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let s: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<50} {:>12.0} {:>14.0} {:>9.2} {:>9.0} {:>10.1} {:>6.0} ({:>4.0})ms {:>12.1}",
            format!("stream-join --cleanup {cleanup} {}", extra.join(" ")),
            f("events_per_second"),
            f("events_per_cpu_second"),
            f("events_per_cpu_second") / parse.1,
            f("peak_rss_mib"),
            f("state_bytes") / 1048576.0,
            f("max_sync_pause_ms"),
            f("max_barrier_pause_ms"),
            f("uploaded_bytes") / 1048576.0,
        );
        println!(
            "    checkpoints {}, rows {}, window entries persisted {}, spills {}, \
             state changed {:.1} MiB (uploaded/changed {:.2})",
            s["checkpoints"],
            s["rows"],
            s["entries_persisted"],
            s["window_spills"],
            f("changed_bytes") / 1048576.0,
            f("uploaded_bytes") / f("changed_bytes").max(1.0)
        );
    }
    Ok(())
}

/// One put per event into a plain RocksDB (WAL off, zstd), with the job's
/// key layout and a value of the same size as the job's Avro record.
fn raw_puts(
    imps: &Path,
    plays: &Path,
    dir: &Path,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.set_compression_type(rocksdb::DBCompressionType::Zstd);
    let db = rocksdb::DB::open(&o, dir)?;
    let mut wo = rocksdb::WriteOptions::default();
    wo.disable_wal(true);
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut src =
        MergedSources::open_csv(imps, plays, MergeOffsets::default(), Watermarks::new(5000))?;
    let mut n = 0u64;
    let mut batch = rocksdb::WriteBatch::default();
    let mut value = Vec::with_capacity(64);
    while let Some(a) = src.next_arrival()? {
        let (k, ts, id) = match &a.event {
            Arrived::Impression(i) => (
                key_bytes(i.profile_id, i.title_id),
                i.ts_ms,
                i.impression_id,
            ),
            Arrived::Play(p) => (key_bytes(p.profile_id, p.title_id), p.ts_ms, p.play_id),
        };
        let mut key = Vec::with_capacity(40);
        key.extend_from_slice(&((n % 128) as u16).to_be_bytes());
        key.extend_from_slice(&k);
        key.extend_from_slice(&key_bytes(ts, id));
        value.clear();
        value.resize(40, (n & 0xff) as u8);
        batch.put(&key, &value);
        n += 1;
        if n.is_multiple_of(1024) {
            db.write_opt(std::mem::take(&mut batch), &wo)?;
        }
    }
    db.write_opt(batch, &wo)?;
    Ok((
        n as f64 / t.elapsed().as_secs_f64(),
        n as f64 / (cpu_seconds() - cpu0).max(1e-9),
    ))
}
