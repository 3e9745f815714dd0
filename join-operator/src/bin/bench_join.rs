//! bench-join: the whole job on the medium workload and on the large-state
//! workloads L1 and L2 of `shared/workload.md` (event time 24x denser: the
//! live state is 2x and 9x the default memory budget), next to baselines
//! measured in the same run:
//! - parse: both CSV files through `MergedSources` plus a key hash (the
//!   cheapest the job could ever be), per workload;
//! - raw RocksDB: one WAL-less put per event of the same key and encoded
//!   value bytes (the least state work a job that buffers events in RocksDB
//!   can do), on medium;
//! - the job (`stream-join run`, as a child process so its peak RSS and
//!   `/proc/self/io` are its own), checkpoints every 10 s and every 2 s.
//!
//! Reports events/s and per CPU-second (user + system, all threads: what
//! "per core" means), the ratio to medium, events/s over the last fifth of
//! the input against the first, peak RSS, barrier and store pauses, bytes
//! read per event (the input files excluded), uploaded/changed, and the
//! restore of L2's last checkpoint against a plain copy of its files.
//!
//! `cargo run --release -p join-operator --bin bench-join -- [--workloads medium,l1,l2] [--seed S] [--dir DIR] [--window]`
//! (`--window` adds the previous default, the window in front of RocksDB,
//! on medium; `--restore-only` skips the runs, keeping L2's restore.)

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

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Workload {
    name: &'static str,
    cfg: GenConfig,
}

fn workloads(seed: u64) -> Vec<Workload> {
    let dense = |impressions: u64| GenConfig {
        impressions,
        plays: impressions / 5,
        span_ms: Some(3_600_000),
        ..GenConfig::for_size(Size::Medium, seed)
    };
    let wanted = arg("--workloads").unwrap_or_else(|| "medium,l1,l2".into());
    let mut out = Vec::new();
    for w in wanted.split(',') {
        match w {
            "small" => out.push(Workload {
                name: "small",
                cfg: GenConfig::for_size(Size::Small, seed),
            }),
            "medium" => out.push(Workload {
                name: "medium",
                cfg: GenConfig::for_size(Size::Medium, seed),
            }),
            "l1" => out.push(Workload {
                name: "L1",
                cfg: dense(10_000_000),
            }),
            "l2" => out.push(Workload {
                name: "L2",
                cfg: dense(50_000_000),
            }),
            other => eprintln!("bench-join: unknown workload {other}, skipped"),
        }
    }
    out
}

/// Parse, merge and hash every event: the floor of the job's cost.
fn parse_only(imps: &Path, plays: &Path) -> BenchResult<(u64, f64, f64)> {
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut src =
        MergedSources::open_csv(imps, plays, MergeOffsets::default(), Watermarks::new(5000))?;
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
    std::hint::black_box(acc);
    Ok((
        events,
        events as f64 / t.elapsed().as_secs_f64(),
        events as f64 / (cpu_seconds() - cpu0).max(1e-9),
    ))
}

fn main() -> BenchResult<()> {
    let seed: u64 = arg("--seed").and_then(|s| s.parse().ok()).unwrap_or(42);
    let base = PathBuf::from(arg("--dir").unwrap_or_else(|| "/var/tmp".into()));
    let exe = std::env::current_exe()?;
    let job_bin = exe.with_file_name("stream-join");
    println!(
        "bench-join (seed {seed}); load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    header();
    let mut medium_rate = None;
    for w in workloads(seed) {
        let dir = base.join(format!(
            "streamstate-bench-{}-{seed}",
            w.name.to_lowercase()
        ));
        let (imps, plays) = (dir.join("impressions.csv"), dir.join("plays.csv"));
        if !imps.exists() || !plays.exists() {
            eprintln!("generating {} into {}", w.name, dir.display());
            gen::generate(&w.cfg, &dir)?;
        }
        let (events, parse_s, parse_cpu) = parse_only(&imps, &plays)?;
        row(
            &format!("{} ({events} events): parse + merge + key hash", w.name),
            parse_s,
            parse_cpu,
            parse_cpu,
            "",
        );
        if w.name == "medium" {
            let raw_dir = tempfile::tempdir_in(&base)?;
            let raw = raw_puts(&imps, &plays, raw_dir.path())?;
            row("  raw RocksDB put per event", raw.0, raw.1, parse_cpu, "");
        }
        let mut runs: Vec<(&str, Vec<&str>)> = vec![
            (
                "checkpoints every 10 s",
                vec!["--checkpoint-interval-ms", "10000"],
            ),
            (
                "checkpoints every 2 s",
                vec!["--checkpoint-interval-ms", "2000"],
            ),
        ];
        if flag("--window") && w.name == "medium" {
            runs.push((
                "window in front of RocksDB, 10 s",
                vec![
                    "--join-state",
                    "window",
                    "--checkpoint-interval-ms",
                    "10000",
                ],
            ));
        }
        if flag("--restore-only") {
            runs.clear();
        }
        let mut at_10s = None;
        for (label, extra) in runs {
            let work = tempfile::tempdir_in(&base)?;
            let s = run_job(&job_bin, &imps, &plays, work.path(), events, &extra)?;
            let rate = s.f("events_per_cpu_second");
            if w.name == "medium" && label.contains("10 s") && medium_rate.is_none() {
                medium_rate = Some(rate);
            }
            let vs = match (medium_rate, label.contains("2 s"), at_10s) {
                (_, true, Some(r10)) => format!("{:.2} of 10 s", rate / r10),
                (Some(m), _, _) if w.name != "medium" => format!("{:.2} of medium", rate / m),
                _ => String::new(),
            };
            if label.contains("10 s") && !label.contains("window") {
                at_10s = Some(rate);
            }
            row(
                &format!("  stream-join, {label}"),
                s.f("events_per_second"),
                rate,
                parse_cpu,
                &vs,
            );
            details(&s, events);
        }
        if w.name == "L2" {
            // The last checkpoint of a whole run holds little (the plays
            // outlast the impressions and expire them): restore one taken
            // mid-run, with the state near its peak.
            let work = tempfile::tempdir_in(&base)?;
            crash_after_checkpoints(&job_bin, &imps, &plays, work.path(), 3)?;
            restore_vs_copy(&work.path().join("checkpoints"))?;
        }
    }
    Ok(())
}

/// `stream-join run` on the inputs, writing under `work`.
fn job_command(job_bin: &Path, imps: &Path, plays: &Path, work: &Path) -> Command {
    let mut c = Command::new(job_bin);
    c.args(["run", "--impressions"])
        .arg(imps)
        .arg("--plays")
        .arg(plays)
        .arg("--output")
        .arg(work.join("out"))
        .arg("--checkpoints")
        .arg(work.join("checkpoints"));
    c
}

/// Runs the job until its `n`th checkpoint is committed (the crash drill).
fn crash_after_checkpoints(
    job_bin: &Path,
    imps: &Path,
    plays: &Path,
    work: &Path,
    n: u32,
) -> BenchResult<()> {
    let out = job_command(job_bin, imps, plays, work)
        .args(["--checkpoint-interval-ms", "10000"])
        .args(["--stop-after-checkpoints", &n.to_string()])
        .output()?;
    if out.status.code() != Some(3) {
        return Err(format!("stream-join: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn header() {
    println!(
        "{:<58} {:>11} {:>13} {:>9}  ratio",
        "", "events/s", "events/cpu-s", "vs parse"
    );
}

fn row(label: &str, per_s: f64, per_cpu_s: f64, parse_cpu: f64, vs: &str) {
    println!(
        "{label:<58} {per_s:>11.0} {per_cpu_s:>13.0} {:>9.2}  {vs}",
        per_cpu_s / parse_cpu
    );
}

struct Summary(serde_json::Value);

impl Summary {
    fn f(&self, k: &str) -> f64 {
        self.0[k].as_f64().unwrap_or(0.0)
    }
}

fn run_job(
    job_bin: &Path,
    imps: &Path,
    plays: &Path,
    work: &Path,
    events: u64,
    extra: &[&str],
) -> BenchResult<Summary> {
    let out = job_command(job_bin, imps, plays, work)
        .args(["--expected-events", &events.to_string()])
        .args(extra)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "stream-join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(Summary(serde_json::from_slice(&out.stdout)?))
}

fn details(s: &Summary, events: u64) {
    let fifths: Vec<f64> = s.0["fifth_events_per_second"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let collapse = match (fifths.first(), fifths.last()) {
        (Some(first), Some(last)) => format!("{:.2}", last / first.max(1e-9)),
        _ => "-".into(),
    };
    let state_reads = s.f("read_bytes") - s.f("input_bytes");
    println!(
        "      peak RSS {:.0} MiB; max barrier {:.1} ms, store sync pause {:.2} ms; \
         last/first fifth {collapse} ({})",
        s.f("peak_rss_mib"),
        s.f("max_barrier_pause_ms"),
        s.f("max_sync_pause_ms"),
        fifths
            .iter()
            .map(|f| format!("{:.0}", f))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "      read per event: {:.0} B beyond the input ({:.0} B from the device); \
         uploaded {:.1} MiB / changed {:.1} MiB = {:.2}; checkpoints {}",
        state_reads.max(0.0) / events as f64,
        s.f("storage_read_bytes") / events as f64,
        s.f("uploaded_bytes") / 1048576.0,
        s.f("changed_bytes") / 1048576.0,
        s.f("uploaded_bytes") / s.f("changed_bytes").max(1.0),
        s.0["checkpoints"],
    );
    println!(
        "      rows {}, bucket spills {}, run probes {} (filter skips {}), buckets expired {}",
        s.0["rows"],
        s.0["bucket_spills"],
        s.0["run_probes"],
        s.0["filter_skips"],
        s.0["buckets_expired"]
    );
}

/// Restores the newest checkpoint under `url` (store and bucket runs) and
/// copies the same files with `fs::copy` and a sync per file, as the
/// restore syncs what it downloads.
fn restore_vs_copy(url: &Path) -> BenchResult<()> {
    let runtime = state_core::checkpoint::io_runtime()?;
    let job = state_core::checkpoint::open_job(
        &runtime,
        &url.to_string_lossy(),
        state_core::JobStoreOptions::default(),
    )?;
    let Some(manifest) = runtime.block_on(job.latest())? else {
        return Err("no checkpoint to restore".into());
    };
    let into = tempfile::tempdir_in(url.parent().unwrap_or(Path::new("/var/tmp")))?;
    let (start, end) = manifest.key_group_range;
    // The store records its states: restore needs none declared.
    let opts = state_core::StoreOptions::new(Vec::new())
        .with_max_parallelism(manifest.max_parallelism)
        .with_key_groups(state_core::KeyGroupRange::new(start, end)?);
    let t = Instant::now();
    let (store, _, runs) = state_core::restore_with_buckets(
        &runtime,
        &job,
        Some(manifest.id),
        &into.path().join("state"),
        &into.path().join("buckets"),
        opts,
    )?;
    let restore_s = t.elapsed().as_secs_f64();
    drop((store, runs));
    let copy_dir = tempfile::tempdir_in(url.parent().unwrap_or(Path::new("/var/tmp")))?;
    let t = Instant::now();
    let mut bytes = 0u64;
    for f in &manifest.files {
        let dest = copy_dir.path().join(&f.name);
        bytes += std::fs::copy(url.join(&f.object), &dest)?;
        std::fs::File::open(&dest)?.sync_all()?;
    }
    let copy_s = t.elapsed().as_secs_f64();
    println!(
        "      restore of checkpoint {} ({:.0} MiB): {restore_s:.2} s; plain copy with a sync per file {copy_s:.2} s; speed vs copy {:.2}",
        manifest.id,
        bytes as f64 / 1048576.0,
        copy_s / restore_s.max(1e-9)
    );
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
