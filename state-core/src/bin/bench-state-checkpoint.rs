//! Checkpoints of a ~1 GB state (written by this benchmark) to a local-folder
//! object store: synchronous pause, bytes uploaded against bytes of state
//! changed, upload and restore throughput next to a plain file copy of the
//! same bytes, and peak RSS, in one run.
//!
//! `cargo run --release -p state-core --bin bench-state-checkpoint [-- ENTRIES [DIR]]`
//! (default 4 000 000 entries of ~230 bytes, DIR a temporary folder).
//! Env: ROUNDS (incremental checkpoints, 12), L0_TRIGGER (RocksDB L0
//! compaction trigger), MULTIPART_THRESHOLD (bytes above which SSTs are
//! uploaded in parts; 16 MiB), HASH_MEMTABLE (0: plain skip lists),
//! WRITE_BUFFER_MB (memtable size per column family), PACE_MS (spread each
//! round's writes over this long instead of one burst before the checkpoint),
//! LAYOUT (`runs`, the default, or `files` for the v1 layout: a RocksDB
//! checkpoint), UPLOAD_RATIO (runs: upload budget per changed byte, 1.4).

use rand::{Rng, SeedableRng};
use state_core::checkpoint::{io_runtime, open_job, CheckpointLayout, RunOptions};
use state_core::*;
use std::path::Path;
use std::time::Instant;

const SCHEMA: &str = r#"{"type":"record","name":"Blob","fields":[{"name":"data","type":"bytes"}]}"#;

/// The payload is incompressible, so bytes on disk follow bytes written.
struct BlobCodec;

impl ValueCodec for BlobCodec {
    type Value = Vec<u8>;

    fn encode(&self, v: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
        let mut n = ((v.len() as i64) << 1) as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(v);
        Ok(())
    }

    fn decode(&self, b: &[u8]) -> Result<Vec<u8>, String> {
        Ok(b.to_vec())
    }
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
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .map(|p| p.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Plain copy of every file under `from` into `to`: the baseline. With
/// `durable`, each copy is synced as a restore does (`fsync_restore`).
fn plain_copy(from: &Path, to: &Path, durable: bool) -> std::io::Result<(u64, f64)> {
    std::fs::create_dir_all(to)?;
    let t = Instant::now();
    let mut bytes = 0;
    for (i, f) in walk(from).iter().enumerate() {
        let target = to.join(format!("{i}"));
        bytes += std::fs::copy(f, &target)?;
        if durable {
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    if durable {
        // A directory sync on ext4 commits the journal, which writes out
        // every dirty page of the file system (the uploads' too): only the
        // durable baseline pays for that, as only restore syncs.
        std::fs::File::open(to)?.sync_all()?;
    }
    Ok((bytes, t.elapsed().as_secs_f64()))
}

/// Commits a round's writes in small batches spread evenly over `pace`.
struct Pacer {
    pace: std::time::Duration,
    ops: u64,
    done: u64,
    started: Instant,
}

impl Pacer {
    const BATCH: u64 = 2_000;

    fn new(pace: std::time::Duration, ops: u64) -> Self {
        Pacer {
            pace,
            ops: ops.max(1),
            done: 0,
            started: Instant::now(),
        }
    }

    fn op(&mut self, batch: &mut StateBatch) -> Result<(), StateError> {
        self.done += 1;
        if self.pace.is_zero() || !self.done.is_multiple_of(Self::BATCH) {
            return Ok(());
        }
        batch.commit()?;
        let due = self.pace.mul_f64(self.done as f64 / self.ops as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
        Ok(())
    }
}

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let entries: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_000_000);
    let rounds: u64 = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(12);
    let mut tuning = RocksTuning::default();
    if let Some(t) = std::env::var("L0_TRIGGER")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        tuning.l0_compaction_trigger = t;
    }
    if let Ok(v) = std::env::var("HASH_MEMTABLE") {
        tuning.hash_memtable = v != "0";
    }
    if let Some(mb) = std::env::var("WRITE_BUFFER_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        tuning.write_buffer_bytes = mb << 20;
    }
    println!(
        "L0 compaction trigger {} (env L0_TRIGGER), hash memtables {} (env HASH_MEMTABLE), \
         write buffer {} MiB (env WRITE_BUFFER_MB), \
         {rounds} incremental checkpoints (env ROUNDS)",
        tuning.l0_compaction_trigger,
        tuning.hash_memtable,
        tuning.write_buffer_bytes >> 20
    );
    // PACE_MS: spread each round's writes over this long, as a running job
    // writes between checkpoints, instead of one burst right before it.
    let pace = std::time::Duration::from_millis(
        std::env::var("PACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    if !pace.is_zero() {
        println!("writes of each round spread over {pace:?} (env PACE_MS)");
    }
    let tmp = tempfile::tempdir_in(args.next().unwrap_or_else(|| "/var/tmp".into()))?;
    let root = tmp.path();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let blob =
        |rng: &mut rand::rngs::StdRng| (0..200).map(|_| rng.gen::<u8>()).collect::<Vec<u8>>();

    let store = StateStore::open(
        root.join("db"),
        StoreOptions::new(vec![StateDescriptor::map("blobs", SCHEMA)]),
    )?;
    let map = store.map_state("blobs", BlobCodec)?;
    let t = Instant::now();
    let mut batch = StateBatch::new(&store);
    for i in 0..entries {
        map.put_in(&mut batch, &key(i / 8), &key(i), &blob(&mut rng))?;
        if batch.len() >= 10_000 {
            batch.commit()?;
        }
    }
    batch.commit()?;
    println!(
        "wrote {entries} entries ({:.0} MiB logical) in {:.1} s",
        store.bytes_written() as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    let rt = io_runtime()?;
    let job_dir = root.join("job");
    let job = open_job(
        &rt,
        job_dir.to_str().ok_or("path")?,
        JobStoreOptions {
            multipart_threshold: std::env::var("MULTIPART_THRESHOLD")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(JobStoreOptions::default().multipart_threshold),
            ..JobStoreOptions::default()
        },
    )?;
    let layout = match std::env::var("LAYOUT").as_deref() {
        Ok("files") => CheckpointLayout::Files,
        Ok("runs") | Err(_) => CheckpointLayout::Runs(RunOptions {
            upload_ratio: std::env::var("UPLOAD_RATIO")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1.4),
            ..RunOptions::default()
        }),
        Ok(other) => return Err(format!("LAYOUT={other}: expected runs or files").into()),
    };
    println!("checkpoint layout {layout:?} (env LAYOUT, UPLOAD_RATIO)");
    let mut cp =
        Checkpointer::start(rt.clone(), job.clone(), root.join("staging"))?.with_layout(layout);

    println!(
        "{:<6} {:>10} {:>12} {:>12} {:>7} {:>9} {:>9} {:>6}",
        "chk", "pause ms", "changed MiB", "uploaded MiB", "ratio", "prepare s", "upload s", "runs"
    );
    let mut ratios = Vec::new();
    let (mut sum_changed, mut sum_uploaded) = (0u64, 0u64);
    let mut first_upload = (0u64, 0f64);
    let mut max_pause = 0f64;
    for round in 0..=rounds {
        if round > 0 {
            // 2% overwritten, 1% new, 0.5% deleted.
            let mut pacer = Pacer::new(pace, entries / 50 + entries / 100 + entries / 200);
            let mut batch = StateBatch::new(&store);
            for _ in 0..entries / 50 {
                let i = rng.gen_range(0..entries);
                map.put_in(&mut batch, &key(i / 8), &key(i), &blob(&mut rng))?;
                pacer.op(&mut batch)?;
            }
            for j in 0..entries / 100 {
                let i = entries + round * entries / 100 + j;
                map.put_in(&mut batch, &key(i / 8), &key(i), &blob(&mut rng))?;
                pacer.op(&mut batch)?;
            }
            for _ in 0..entries / 200 {
                let i = rng.gen_range(0..entries);
                map.remove_in(&mut batch, &key(i / 8), &key(i))?;
                pacer.op(&mut batch)?;
            }
            batch.commit()?;
        }
        let t = cp
            .trigger(&store, serde_json::json!({"round": round}))?
            .ok_or("in flight")?;
        let done = cp.wait_next().ok_or("no checkpoint")?;
        let m = done.result?;
        let ratio = m.uploaded_bytes as f64 / done.changed_bytes.max(1) as f64;
        if round == 0 {
            first_upload = (
                m.uploaded_bytes,
                (done.upload_time - done.prepare_time).as_secs_f64(),
            );
        } else {
            ratios.push(ratio);
            sum_changed += done.changed_bytes;
            sum_uploaded += m.uploaded_bytes;
        }
        max_pause = max_pause.max(t.sync_pause.as_secs_f64() * 1e3);
        let runs = state_core::runs::layout_of(&m.states)
            .ok()
            .flatten()
            .map_or(0, |l| l.runs.len());
        println!(
            "{:<6} {:>10.2} {:>12.1} {:>12.1} {:>7.2} {:>9.2} {:>9.2} {:>6}",
            m.id,
            t.sync_pause.as_secs_f64() * 1e3,
            done.changed_bytes as f64 / 1048576.0,
            m.uploaded_bytes as f64 / 1048576.0,
            ratio,
            done.prepare_time.as_secs_f64(),
            (done.upload_time - done.prepare_time).as_secs_f64(),
            runs
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "incremental checkpoints: median uploaded/changed = {:.2}, max {:.2}, over all of them {:.2} (target <= 1.5); max sync pause {max_pause:.2} ms (target < 20)",
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1],
        sum_uploaded as f64 / sum_changed.max(1) as f64
    );

    // Upload throughput against a plain copy of the same first checkpoint's bytes.
    let shared = job_dir.join("checkpoints/shared");
    let (copy_bytes, copy_secs) = plain_copy(&shared, &root.join("copy-baseline"), false)?;
    let (synced_bytes, synced_secs) =
        plain_copy(&shared, &root.join("copy-baseline-synced"), true)?;
    let synced_rate = synced_bytes as f64 / synced_secs / 1048576.0;
    let up_rate = first_upload.0 as f64 / first_upload.1 / 1048576.0;
    let copy_rate = copy_bytes as f64 / copy_secs / 1048576.0;
    println!(
        "upload (full checkpoint): {up_rate:.0} MiB/s; plain file copy of the shared objects: {copy_rate:.0} MiB/s; ratio {:.2} (target >= 0.8)",
        up_rate / copy_rate
    );

    let t = Instant::now();
    let target = root.join("restored");
    let (restored, m) = restore(
        &rt,
        &job,
        None,
        &target,
        StoreOptions::new(vec![StateDescriptor::map("blobs", SCHEMA)]),
    )?;
    let secs = t.elapsed().as_secs_f64();
    // What the restore downloaded: every file of the checkpoint. A runs
    // restore also ingests them and compacts overlapping runs, so its rate
    // is counted on the downloaded bytes, against copying those bytes.
    let bytes: u64 = m.files.iter().map(|f| f.size).sum();
    let restore_rate = bytes as f64 / secs / 1048576.0;
    println!(
        "restore of checkpoint {} ({:.0} MiB downloaded, every file synced; state on disk after: {:.0} MiB): {restore_rate:.0} MiB/s, {:.2} of a plain copy with a sync per file ({synced_rate:.0} MiB/s; target >= 0.8)",
        m.id,
        bytes as f64 / 1048576.0,
        dir_bytes(&target) as f64 / 1048576.0,
        restore_rate / synced_rate
    );
    let t = Instant::now();
    while restored.compactions_pending() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    println!(
        "background compaction left by the restore: {:.2} s more (restore {secs:.2} s)",
        t.elapsed().as_secs_f64()
    );
    drop(restored);
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
