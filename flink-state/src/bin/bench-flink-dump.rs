//! Dump throughput of Flink savepoints: the largest fixture, canonical
//! and native (repeated), and a synthetic canonical savepoint of at least 1 M entries written by
//! the format writer. Prints entries/s, lines/s and peak RSS (VmHWM).
//!
//!   cargo run --release -p flink-state --bin bench-flink-dump [KEYS]

use flink_state::writer::{write_canonical_savepoint, SyntheticSpec};
use flink_state::{DirStorage, DumpOptions, FlinkSnapshot};
use std::path::Path;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// Dumps every operator `rounds` times, each line written as JSON text.
fn dump(dir: &Path, rounds: u32, lsm: Option<&dyn flink_state::LsmScanner>) -> (u64, u64, f64) {
    let storage = DirStorage::new(dir);
    let (mut entries, mut lines, mut bytes) = (0u64, 0u64, 0usize);
    let start = Instant::now();
    for _ in 0..rounds {
        let snap = FlinkSnapshot::open(&storage, "").expect("open");
        for op in &snap.metadata.operators {
            let r = snap
                .dump(
                    op,
                    &DumpOptions {
                        lsm,
                        ..Default::default()
                    },
                    &mut |j| {
                        bytes += j.to_line().len();
                        Ok(())
                    },
                )
                .expect("dump");
            entries += r.entries;
            lines += r.lines;
        }
    }
    std::hint::black_box(bytes);
    (entries, lines, start.elapsed().as_secs_f64())
}

fn report(name: &str, (entries, lines, secs): (u64, u64, f64)) {
    println!(
        "{name}: {entries} entries ({lines} lines) in {secs:.2} s = {:.0} k entries/s, {:.0} k lines/s; peak RSS so far {:.1} MiB",
        entries as f64 / secs / 1e3,
        lines as f64 / secs / 1e3,
        peak_rss_mib()
    );
}

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(250_000);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flink");
    let largest = fixtures.join("A-p1-noinline/savepoint-canonical/savepoint-639eaf-1498e4b5f26e");
    report(
        "fixture A-p1-noinline canonical x200",
        dump(&largest, 200, None),
    );
    let native = fixtures.join("A-p1-noinline/savepoint-native/savepoint-639eaf-1bdc264ad33d");
    let lsm = flink_state::sst_lsm::SstLsm;
    report(
        "fixture A-p1-noinline native (SSTs) x50",
        dump(&native, 50, Some(&lsm)),
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = SyntheticSpec {
        keys,
        ..Default::default()
    };
    let t = Instant::now();
    write_canonical_savepoint(tmp.path(), &spec).expect("write");
    let size: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "synthetic: {keys} keys written in {:.2} s, {:.1} MiB",
        t.elapsed().as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    report("synthetic canonical savepoint", dump(tmp.path(), 1, None));
}
