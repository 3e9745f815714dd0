//! bench-ingest: how fast the job's input side is, next to a baseline of the
//! same run. On the generated workload (medium by default):
//! - baseline: count `\n` in both files with memchr (the cost of the bytes);
//! - parse: both files through `CsvSource` plus a hash of each join key;
//! - merged: both through `MergedSources` (merge order + watermarks + late check);
//! - oracle: the batch join with late events, as `validate` runs it.
//!
//! Prints events/s, ratios to the baseline and peak RSS (VmHWM).
//!
//! `cargo run --release -p join-operator --bin bench-ingest -- [--size small|medium|large] [--dir DIR] [--seed S]`

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use join_operator::event::{Event, Impression, Play};
use join_operator::gen::{self, GenConfig, Size};
use join_operator::job::peak_rss_mib;
use join_operator::oracle::{self, OracleConfig};
use join_operator::source::{CsvSource, MergeOffsets, MergedSources, Source, Watermarks};

struct Args {
    size: Size,
    dir: Option<PathBuf>,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        size: Size::Medium,
        dir: None,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--size" => {
                args.size = match value()?.as_str() {
                    "small" => Size::Small,
                    "medium" => Size::Medium,
                    "large" => Size::Large,
                    other => return Err(format!("unknown size {other:?}")),
                }
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn count_lines(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((lines, bytes));
        }
        bytes += n as u64;
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

fn key_hash<E: Event>(e: &E) -> u64 {
    let k = e.key();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&k.profile_id.to_be_bytes());
    bytes[8..].copy_from_slice(&k.title_id.to_be_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

fn parse_all<E: join_operator::event::CsvRecord + Event>(
    path: &Path,
) -> Result<(u64, u64), String> {
    let mut src = CsvSource::<E>::open(path, 0).map_err(|e| e.to_string())?;
    let mut batch = Vec::with_capacity(4096);
    let (mut n, mut acc) = (0u64, 0u64);
    loop {
        batch.clear();
        let got = src
            .next_batch(4096, &mut batch)
            .map_err(|e| e.to_string())?;
        if got == 0 {
            return Ok((n, acc));
        }
        for e in &batch {
            acc = acc.wrapping_add(key_hash(e));
        }
        n += got as u64;
    }
}

fn report(name: &str, events: u64, secs: f64, baseline: Option<f64>) -> f64 {
    let rate = events as f64 / secs;
    let ratio = baseline.map_or(String::new(), |b| {
        format!("  ({:.2}x baseline time)", b / rate)
    });
    println!(
        "{name:<34} {events:>11} events {secs:>8.3} s {:>8.2} M events/s{ratio}  peak RSS {:.0} MiB",
        rate / 1e6,
        peak_rss_mib()
    );
    rate
}

fn run(args: Args) -> Result<(), String> {
    let dir = args.dir.unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("streamstate-bench-{:?}-{}", args.size, args.seed).to_lowercase())
    });
    let (ip, pp) = (dir.join("impressions.csv"), dir.join("plays.csv"));
    if !ip.exists() || !pp.exists() {
        let t = Instant::now();
        let s = gen::generate(&GenConfig::for_size(args.size, args.seed), &dir)
            .map_err(|e| e.to_string())?;
        report(
            "gen (write both files)",
            s.impressions + s.plays,
            t.elapsed().as_secs_f64(),
            None,
        );
    }
    println!("input: {}", dir.display());
    // Twice: the first pass warms the page cache for everything after it.
    let mut baseline = 0.0;
    for pass in 0..2 {
        let t = Instant::now();
        let (li, bi) = count_lines(&ip).map_err(|e| format!("{}: {e}", ip.display()))?;
        let (lp, bp) = count_lines(&pp).map_err(|e| format!("{}: {e}", pp.display()))?;
        let events = li + lp - 2;
        if pass == 1 {
            println!(
                "bytes: {} ({:.1} bytes/event)",
                bi + bp,
                (bi + bp) as f64 / events as f64
            );
            baseline = report(
                "baseline: memchr line count",
                events,
                t.elapsed().as_secs_f64(),
                None,
            );
        }
    }
    let t = Instant::now();
    let (ni, hi) = parse_all::<Impression>(&ip)?;
    let (np, hp) = parse_all::<Play>(&pp)?;
    let parse_rate = report(
        "parse + key hash (CsvSource)",
        ni + np,
        t.elapsed().as_secs_f64(),
        Some(baseline),
    );
    std::hint::black_box(hi ^ hp);

    let t = Instant::now();
    let mut merged =
        MergedSources::open_csv(&ip, &pp, MergeOffsets::default(), Watermarks::new(5000))
            .map_err(|e| e.to_string())?;
    let (mut n, mut late) = (0u64, 0u64);
    while let Some(a) = merged.next_arrival().map_err(|e| e.to_string())? {
        n += 1;
        late += u64::from(a.is_late(0));
    }
    report(
        "merged + watermarks (MergedSources)",
        n,
        t.elapsed().as_secs_f64(),
        Some(baseline),
    );

    let t = Instant::now();
    let r = oracle::run(&ip, &pp, OracleConfig::default()).map_err(|e| e.to_string())?;
    report(
        "oracle (merge + late + batch join)",
        r.impressions + r.plays,
        t.elapsed().as_secs_f64(),
        Some(baseline),
    );
    println!(
        "oracle: {} rows, {} late events ({} counted while merging), {} rows of late events",
        r.expected.len(),
        r.late_events.len(),
        late,
        r.late_rows.len()
    );
    let target = 5e6;
    println!(
        "parse target {:.0} M events/s: {}",
        target / 1e6,
        if parse_rate >= target {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-ingest: {e}");
            ExitCode::from(2)
        }
    }
}
