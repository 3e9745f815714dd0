//! Checkpoint upload/restore throughput against plain baselines measured in
//! the same run, incremental bytes, peak RSS.
//!
//! `bench-checkpoint [total_mib=1024] [file_kib=1024] [work_dir] [rounds=3]`
//!
//! Restore is measured in `rounds` interleaved rounds (the order of the
//! variants rotates each round) and reported as medians: on a shared
//! machine one write-heavy phase slows the next (ext4 writeback, inode
//! allocation after mass deletes), which a single ordered run mistakes for
//! a property of the code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use checkpoint_store::metrics::MetricsStore;
use checkpoint_store::object_store::local::LocalFileSystem;
use checkpoint_store::object_store::memory::InMemory;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutPayload};
use checkpoint_store::{CheckpointMeta, JobStore, JobStoreOptions, LocalFile};
use futures::{StreamExt, TryStreamExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PARALLELISM: usize = 8;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let total_mib: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let file_kib: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let work = match args.get(3).filter(|s| !s.is_empty() && *s != "-") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("bench-checkpoint-{}", std::process::id())),
    };
    let rounds: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run(&work, total_mib, file_kib, rounds.max(1)).await;
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);
    Ok(())
}

async fn run(
    work: &Path,
    total_mib: usize,
    file_kib: usize,
    rounds: usize,
) -> Result<(), BoxError> {
    let n_files = total_mib * 1024 / file_kib;
    let state = work.join("state");
    let files = write_state(&state, n_files, file_kib * 1024, 0)?;
    let total_bytes: u64 = dir_bytes(&state, &files)?;
    println!(
        "state: {} shared files x {} KiB + {} private, {:.1} MiB",
        n_files,
        file_kib,
        files.len() - n_files,
        total_bytes as f64 / (1 << 20) as f64
    );

    // Baseline 1: plain sequential std::fs::copy.
    let copy_dir = work.join("copy");
    settle();
    let t = Instant::now();
    std::fs::create_dir_all(&copy_dir)?;
    for f in &files {
        std::fs::copy(state.join(&f.name), copy_dir.join(&f.name))?;
    }
    let fs_copy = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&copy_dir)?;

    for kind in ["local", "memory"] {
        let store_root = work.join(format!("store-{kind}"));
        let make = |sub: &str| -> Result<Arc<dyn ObjectStore>, BoxError> {
            Ok(match kind {
                "local" => {
                    let d = store_root.join(sub);
                    std::fs::create_dir_all(&d)?;
                    Arc::new(LocalFileSystem::new_with_prefix(d)?)
                }
                _ => Arc::new(InMemory::new()),
            })
        };
        println!("\n== {kind} store ==");
        // Baseline 2: plain object_store puts of the same files, same parallelism.
        let plain = make("plain")?;
        settle();
        let t = Instant::now();
        plain_put(&plain, &state, &files).await?;
        let put_s = t.elapsed().as_secs_f64();

        let metrics = MetricsStore::new(make("job")?);
        let counters = metrics.counters();
        let opts = JobStoreOptions {
            gc_after_commit: false,
            fsync_restore: false,
            upload_parallelism: PARALLELISM,
            download_parallelism: PARALLELISM,
            ..Default::default()
        };
        let job = JobStore::from_store(Arc::new(metrics), ObjPath::from("job"), opts);
        let writer = job.claim_epoch().await?;
        settle();
        let t = Instant::now();
        let m1 = writer.commit_checkpoint(&state, &files, meta()).await?;
        let up_s = t.elapsed().as_secs_f64();
        let mbps = |s: f64| total_bytes as f64 / (1 << 20) as f64 / s;
        println!(
            "upload:  checkpoint {:.0} MiB/s | fs::copy {:.0} MiB/s (ratio {:.2}) | plain put {:.0} MiB/s (ratio {:.2})",
            mbps(up_s),
            mbps(fs_copy),
            fs_copy / up_s,
            mbps(put_s),
            put_s / up_s
        );

        restore_rounds(work, kind, &plain, &job, m1.id, &files, total_bytes, rounds).await?;
        drop(plain);

        // Second checkpoint: 95% of the files kept (hard links), 5% new.
        let next = work.join(format!("state2-{kind}"));
        let (files2, new_bytes) = next_state(&state, &next, &files, n_files, file_kib * 1024)?;
        let before = counters.snapshot();
        let t = Instant::now();
        let m2 = writer.commit_checkpoint(&next, &files2, meta()).await?;
        let inc_s = t.elapsed().as_secs_f64();
        let uploaded = counters.snapshot().since(&before).put_bytes;
        println!(
            "incremental: {:.1} MiB new, {:.1} MiB uploaded (ratio {:.3}; manifest says {:.1} MiB) in {:.2} s",
            new_bytes as f64 / (1 << 20) as f64,
            uploaded as f64 / (1 << 20) as f64,
            uploaded as f64 / new_bytes as f64,
            m2.uploaded_bytes as f64 / (1 << 20) as f64,
            inc_s
        );
        std::fs::remove_dir_all(&next)?;
        let _ = std::fs::remove_dir_all(&store_root);
    }
    Ok(())
}

/// Flushes dirty pages and lets the file system finish the frees of the
/// previous phase (ext4 with `discard` trims at journal commit), so that one
/// phase's writeback or deletes do not slow the next.
fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = std::process::Command::new("sync").status();
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        id: 0,
        parent: None,
        key_group_range: (0, 127),
        max_parallelism: 128,
        states: serde_json::json!({}),
        user: serde_json::json!({}),
    }
}

fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_state(
    dir: &Path,
    n: usize,
    size: usize,
    seed_base: u64,
) -> Result<Vec<LocalFile>, BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for i in 0..n {
        let name = format!("{:06}.sst", i as u64 + seed_base);
        std::fs::write(dir.join(&name), fill(i as u64 + seed_base + 1, size))?;
        files.push(LocalFile::shared(name));
    }
    for name in ["CURRENT", "MANIFEST-000001", "OPTIONS-000002"] {
        std::fs::write(dir.join(name), format!("{name} of {n} files\n").repeat(200))?;
        files.push(LocalFile::private(name));
    }
    Ok(files)
}

fn next_state(
    from: &Path,
    dir: &Path,
    files: &[LocalFile],
    n: usize,
    size: usize,
) -> Result<(Vec<LocalFile>, u64), BoxError> {
    std::fs::create_dir_all(dir)?;
    let drop = (n / 20).max(1);
    let mut out = Vec::new();
    for f in files.iter().skip(drop) {
        if f.kind == checkpoint_store::FileKind::Shared {
            std::fs::hard_link(from.join(&f.name), dir.join(&f.name))?;
            out.push(f.clone());
        }
    }
    let mut new_bytes = 0;
    for i in 0..drop {
        let name = format!("{:06}.sst", n + i);
        std::fs::write(dir.join(&name), fill((n + i) as u64 + 1_000_000, size))?;
        new_bytes += size as u64;
        out.push(LocalFile::shared(name));
    }
    for f in files
        .iter()
        .filter(|f| f.kind == checkpoint_store::FileKind::Private)
    {
        let body = format!("{} after compaction\n", f.name).repeat(200);
        new_bytes += body.len() as u64;
        std::fs::write(dir.join(&f.name), body)?;
        out.push(f.clone());
    }
    Ok((out, new_bytes))
}

fn dir_bytes(dir: &Path, files: &[LocalFile]) -> Result<u64, BoxError> {
    let mut total = 0;
    for f in files {
        total += std::fs::metadata(dir.join(&f.name))?.len();
    }
    Ok(total)
}

async fn plain_put(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    files: &[LocalFile],
) -> Result<(), BoxError> {
    futures::stream::iter(files)
        .map(|f| async move {
            let bytes = tokio::fs::read(dir.join(&f.name)).await?;
            store
                .put(&ObjPath::from(f.name.as_str()), PutPayload::from(bytes))
                .await?;
            Ok::<_, BoxError>(())
        })
        .buffer_unordered(PARALLELISM)
        .try_collect::<()>()
        .await
}

async fn plain_get(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    files: &[LocalFile],
    fsync: bool,
) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    futures::stream::iter(files)
        .map(|f| async move {
            let bytes = store
                .get(&ObjPath::from(f.name.as_str()))
                .await?
                .bytes()
                .await?;
            let path = dir.join(&f.name);
            tokio::task::spawn_blocking(move || {
                let mut file = std::fs::File::create(&path)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                if fsync {
                    file.sync_data()?;
                }
                Ok::<_, std::io::Error>(())
            })
            .await??;
            Ok::<_, BoxError>(())
        })
        .buffer_unordered(PARALLELISM)
        .try_collect::<()>()
        .await
}

/// How one round restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    PlainGet,
    PlainGetFsync,
    Restore,
    RestoreFsync,
    RestoreLink,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::PlainGet => "plain get",
            Variant::PlainGetFsync => "plain get + fsync",
            Variant::Restore => "restore",
            Variant::RestoreFsync => "restore fsync_restore",
            Variant::RestoreLink => "restore link_local_objects",
        }
    }
}

/// Restore variants and their baselines in interleaved rounds; prints the
/// medians and the ratios of each restore to its baseline.
#[allow(clippy::too_many_arguments)]
async fn restore_rounds(
    work: &Path,
    kind: &str,
    plain: &Arc<dyn ObjectStore>,
    job: &JobStore,
    id: u64,
    files: &[LocalFile],
    total_bytes: u64,
    rounds: usize,
) -> Result<(), BoxError> {
    let mut variants = vec![
        Variant::PlainGet,
        Variant::Restore,
        Variant::PlainGetFsync,
        Variant::RestoreFsync,
    ];
    if kind == "local" {
        variants.push(Variant::RestoreLink);
    }
    let mut times: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = (k + round) % variants.len();
            let dir = work.join(format!("restore-{kind}"));
            settle();
            let (cpu0, t) = (cpu_seconds(), Instant::now());
            run_variant(variants[i], plain, job, id, &dir, files).await?;
            let wall = t.elapsed().as_secs_f64();
            times[i].push((wall, cpu_seconds() - cpu0));
            // Written back before the delete: deleting dirty files is cheap,
            // deleting written ones is not (and slows the next phase), so
            // every phase starts after the same kind of delete.
            settle();
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let mib = total_bytes as f64 / (1 << 20) as f64;
    let median = |i: usize| {
        let mut w: Vec<f64> = times[i].iter().map(|t| t.0).collect();
        let mut c: Vec<f64> = times[i].iter().map(|t| t.1).collect();
        w.sort_by(f64::total_cmp);
        c.sort_by(f64::total_cmp);
        (w[w.len() / 2], c[c.len() / 2])
    };
    let index = |v: Variant| variants.iter().position(|x| *x == v).unwrap_or(0);
    for (i, v) in variants.iter().enumerate() {
        let (wall, cpu) = median(i);
        let base = match v {
            Variant::PlainGet | Variant::PlainGetFsync => None,
            Variant::Restore | Variant::RestoreLink => Some(Variant::PlainGet),
            Variant::RestoreFsync => Some(Variant::PlainGetFsync),
        };
        let ratio = base
            .map(|b| {
                let (bw, bc) = median(index(b));
                format!(
                    " | vs {}: {:.2} (cpu {:.2})",
                    b.label(),
                    bw / wall,
                    bc / cpu.max(1e-9)
                )
            })
            .unwrap_or_default();
        let all: Vec<String> = times[i]
            .iter()
            .map(|t| format!("{:.0}", mib / t.0))
            .collect();
        println!(
            "restore: {:<27} {:>6.0} MiB/s cpu {:>5.2} s{ratio}  [rounds: {}]",
            v.label(),
            mib / wall,
            cpu,
            all.join(" ")
        );
    }
    Ok(())
}

async fn run_variant(
    v: Variant,
    plain: &Arc<dyn ObjectStore>,
    job: &JobStore,
    id: u64,
    dir: &Path,
    files: &[LocalFile],
) -> Result<(), BoxError> {
    match v {
        Variant::PlainGet => plain_get(plain, dir, files, false).await,
        Variant::PlainGetFsync => {
            plain_get(plain, dir, files, true).await?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
        Variant::Restore | Variant::RestoreFsync | Variant::RestoreLink => {
            let opts = JobStoreOptions {
                fsync_restore: v == Variant::RestoreFsync,
                link_local_objects: v == Variant::RestoreLink,
                ..job.options().clone()
            };
            let job = JobStore::from_store(Arc::clone(job.store()), job.prefix().clone(), opts);
            job.restore(id, dir).await?;
            Ok(())
        }
    }
}

/// User + system CPU seconds of this process so far (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 per second
    // on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
