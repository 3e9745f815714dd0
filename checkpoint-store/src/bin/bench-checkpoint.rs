//! Checkpoint upload and restore throughput against plain baselines measured
//! in the same run, incremental bytes, peak RSS.
//!
//! `bench-checkpoint [total_mib=1024] [file_mib=64] [work_dir=/var/tmp/bench-checkpoint-<pid>] [rounds=3] [phases=upload,restore]`
//!
//! `-` keeps an argument's default.
//!
//! The state is `total_mib` of shared files of `file_mib` each plus a few
//! small shared files (1 MiB) and the private RocksDB files. Upload is
//! compared with (a) a sequential `std::fs::copy` of the files into another
//! folder and (b) plain `object_store` puts (read whole file + `put`, same
//! parallelism) into a `LocalFileSystem`; restore with the same two
//! baselines in the other direction, with and without an fsync of every
//! file. Every variant runs once per round, the order rotating each round,
//! and medians are reported: on a shared machine one write-heavy phase
//! slows the next (ext4 writeback, inode allocation after mass deletes),
//! which a single ordered run mistakes for a property of the code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use checkpoint_store::metrics::MetricsStore;
use checkpoint_store::object_store::local::LocalFileSystem;
use checkpoint_store::object_store::path::Path as ObjPath;
use checkpoint_store::object_store::{ObjectStore, PutPayload};
use checkpoint_store::{CheckpointMeta, FileKind, JobStore, JobStoreOptions, LocalFile};
use futures::{StreamExt, TryStreamExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PARALLELISM: usize = 8;
/// Small shared files next to the large ones (1 MiB each).
const SMALL_FILES: usize = 8;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).filter(|s| !s.is_empty() && *s != "-");
    let total_mib: usize = arg(1).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let file_mib: usize = arg(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let work = match arg(3) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("/var/tmp").join(format!("bench-checkpoint-{}", std::process::id())),
    };
    let rounds: usize = arg(4).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let phases = arg(5).map_or("upload,restore", |s| s.as_str());
    let phases = Phases {
        upload: phases.contains("upload"),
        restore: phases.contains("restore"),
    };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run(&work, total_mib, file_mib.max(1), rounds.max(1), phases).await;
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!("peak RSS (VmHWM): {} MiB", peak_rss_kib() / 1024);
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Phases {
    upload: bool,
    restore: bool,
}

async fn run(
    work: &Path,
    total_mib: usize,
    file_mib: usize,
    rounds: usize,
    phases: Phases,
) -> Result<(), BoxError> {
    let n_large = (total_mib / file_mib).max(1);
    let state = work.join("state");
    let files = write_state(&state, n_large, file_mib << 20)?;
    let total_bytes = dir_bytes(&state, &files)?;
    println!(
        "state: {n_large} shared files x {file_mib} MiB + {SMALL_FILES} x 1 MiB + {} private, {:.1} MiB, {rounds} rounds, parallelism {PARALLELISM}",
        files.iter().filter(|f| f.kind == FileKind::Private).count(),
        mib(total_bytes)
    );
    let opts = JobStoreOptions {
        gc_after_commit: false,
        upload_parallelism: PARALLELISM,
        download_parallelism: PARALLELISM,
        ..Default::default()
    };

    if phases.upload {
        upload_rounds(work, &state, &files, &opts, rounds, total_bytes).await?;
    }
    if phases.restore {
        restore_rounds(
            work,
            &state,
            &files,
            &opts,
            rounds,
            total_bytes,
            n_large,
            file_mib,
        )
        .await?;
    }
    Ok(())
}

async fn upload_rounds(
    work: &Path,
    state: &Path,
    files: &[LocalFile],
    opts: &JobStoreOptions,
    rounds: usize,
    total_bytes: u64,
) -> Result<(), BoxError> {
    let mut table = Table::new(&UPLOADS, rounds);
    for round in 0..rounds {
        for v in table.order(round) {
            let dir = work.join("upload-target");
            std::fs::create_dir_all(&dir)?;
            settle();
            let (wall, cpu) = upload_variant(v, state, files, &dir, opts).await?;
            table.push(v, wall, cpu);
            settle();
            std::fs::remove_dir_all(&dir)?;
        }
    }
    table.print("upload", total_bytes, &[Variant::Copy, Variant::PlainPut]);
    Ok(())
}

/// Restore rounds, then an incremental checkpoint on the restored-from job.
#[allow(clippy::too_many_arguments)]
async fn restore_rounds(
    work: &Path,
    state: &Path,
    files: &[LocalFile],
    opts: &JobStoreOptions,
    rounds: usize,
    total_bytes: u64,
    n_large: usize,
    file_mib: usize,
) -> Result<(), BoxError> {
    // The store restored from: a checkpoint in a local folder, and the same
    // files put plainly (the plain get / copy baselines read those).
    let store_dir = work.join("store");
    let job = JobStore::open(path_str(&store_dir)?, opts.clone()).await?;
    let writer = job.claim_epoch().await?;
    let m1 = writer.commit_checkpoint(state, files, meta()).await?;
    let plain_dir = work.join("plain");
    std::fs::create_dir_all(&plain_dir)?;
    let plain: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&plain_dir)?);
    plain_put(&plain, state, files).await?;

    let mut table = Table::new(&RESTORES, rounds);
    for round in 0..rounds {
        for v in table.order(round) {
            let dir = work.join("restore-target");
            settle();
            let (cpu0, t) = (cpu_seconds(), Instant::now());
            restore_variant(v, &plain, &plain_dir, &job, m1.id, &dir, files).await?;
            table.push(v, t.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            // Written back before the delete: deleting dirty files is cheap,
            // deleting written ones is not (and slows the next phase), so
            // every phase starts after the same kind of delete.
            settle();
            std::fs::remove_dir_all(&dir)?;
        }
    }
    table.print("restore", total_bytes, &[Variant::Copy, Variant::PlainGet]);
    table.print_fsync(total_bytes);

    // Second checkpoint: most files kept (hard links), one large file new.
    let next = work.join("state2");
    let (files2, new_bytes) = next_state(state, &next, files, n_large, file_mib << 20)?;
    let t = Instant::now();
    let m2 = writer.commit_checkpoint(&next, &files2, meta()).await?;
    println!(
        "incremental: {:.1} MiB new, {:.1} MiB uploaded (ratio {:.3}) in {:.2} s",
        mib(new_bytes),
        mib(m2.uploaded_bytes),
        m2.uploaded_bytes as f64 / new_bytes as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One measured way of moving the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Sequential `std::fs::copy` of every file.
    Copy,
    /// The same, with `sync_data` of every file and an fsync of the folder.
    CopyFsync,
    /// Whole-file read + `put` (upload) or `get` + write (restore).
    PlainPut,
    PlainGet,
    PlainGetFsync,
    /// `commit_checkpoint` into a local-folder store opened by path.
    Upload,
    /// `commit_checkpoint` through the generic `ObjectStore` path (the
    /// same folder behind a wrapper, as for S3 or fault injection).
    UploadObjectStore,
    Restore,
    RestoreFsync,
    RestoreLink,
}

const UPLOADS: [Variant; 4] = [
    Variant::Copy,
    Variant::PlainPut,
    Variant::Upload,
    Variant::UploadObjectStore,
];

const RESTORES: [Variant; 7] = [
    Variant::Copy,
    Variant::PlainGet,
    Variant::Restore,
    Variant::CopyFsync,
    Variant::PlainGetFsync,
    Variant::RestoreFsync,
    Variant::RestoreLink,
];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Copy => "std::fs::copy",
            Variant::CopyFsync => "std::fs::copy + fsync",
            Variant::PlainPut => "plain object_store put",
            Variant::PlainGet => "plain object_store get",
            Variant::PlainGetFsync => "plain get + fsync",
            Variant::Upload => "checkpoint (local folder)",
            Variant::UploadObjectStore => "checkpoint (ObjectStore path)",
            Variant::Restore => "restore",
            Variant::RestoreFsync => "restore (fsync_restore, default)",
            Variant::RestoreLink => "restore (link_local_objects)",
        }
    }
}

/// Wall and CPU seconds of every round of every variant.
struct Table {
    variants: Vec<Variant>,
    times: Vec<Vec<(f64, f64)>>,
}

impl Table {
    fn new(variants: &[Variant], rounds: usize) -> Self {
        Self {
            variants: variants.to_vec(),
            times: vec![Vec::with_capacity(rounds); variants.len()],
        }
    }

    /// The variants in the order of `round` (rotated).
    fn order(&self, round: usize) -> Vec<Variant> {
        let n = self.variants.len();
        (0..n).map(|k| self.variants[(k + round) % n]).collect()
    }

    fn push(&mut self, v: Variant, wall: f64, cpu: f64) {
        if let Some(i) = self.variants.iter().position(|x| *x == v) {
            self.times[i].push((wall, cpu));
        }
    }

    /// Median (wall, cpu) seconds of `v`.
    fn median(&self, v: Variant) -> Option<(f64, f64)> {
        let i = self.variants.iter().position(|x| *x == v)?;
        let mut w: Vec<f64> = self.times[i].iter().map(|t| t.0).collect();
        let mut c: Vec<f64> = self.times[i].iter().map(|t| t.1).collect();
        w.sort_by(f64::total_cmp);
        c.sort_by(f64::total_cmp);
        Some((*w.get(w.len() / 2)?, *c.get(c.len() / 2)?))
    }

    fn line(&self, phase: &str, v: Variant, total: u64, bases: &[Variant]) {
        let (Some((wall, cpu)), Some(i)) =
            (self.median(v), self.variants.iter().position(|x| *x == v))
        else {
            return;
        };
        let mut ratios = String::new();
        for &b in bases.iter().filter(|b| **b != v) {
            if let Some((bw, _)) = self.median(b) {
                ratios.push_str(&format!(" | vs {}: {:.2}", b.label(), bw / wall));
            }
        }
        let all: Vec<String> = self.times[i]
            .iter()
            .map(|t| format!("{:.0}", mib(total) / t.0))
            .collect();
        println!(
            "{phase:<8} {:<32} {:>6.0} MiB/s cpu {:>5.2} s{ratios}  [rounds: {}]",
            v.label(),
            mib(total) / wall,
            cpu,
            all.join(" ")
        );
    }

    fn print(&self, phase: &str, total: u64, bases: &[Variant]) {
        for &v in &self.variants {
            if ![
                Variant::CopyFsync,
                Variant::PlainGetFsync,
                Variant::RestoreFsync,
            ]
            .contains(&v)
            {
                self.line(phase, v, total, bases);
            }
        }
    }

    fn print_fsync(&self, total: u64) {
        let bases = [Variant::CopyFsync, Variant::PlainGetFsync];
        for v in [
            Variant::CopyFsync,
            Variant::PlainGetFsync,
            Variant::RestoreFsync,
        ] {
            self.line("restore", v, total, &bases);
        }
    }
}

/// Returns (wall, cpu) seconds of one upload into the empty folder `dir`.
async fn upload_variant(
    v: Variant,
    state: &Path,
    files: &[LocalFile],
    dir: &Path,
    opts: &JobStoreOptions,
) -> Result<(f64, f64), BoxError> {
    let job = match v {
        Variant::Upload => Some(JobStore::open(path_str(dir)?, opts.clone()).await?),
        Variant::UploadObjectStore => {
            let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
            let wrapped = Arc::new(MetricsStore::new(local));
            Some(JobStore::from_store(
                wrapped,
                ObjPath::default(),
                opts.clone(),
            ))
        }
        _ => None,
    };
    let writer = match &job {
        Some(job) => Some(job.claim_epoch().await?),
        None => None,
    };
    let (cpu0, t) = (cpu_seconds(), Instant::now());
    match (v, writer) {
        (Variant::Copy, _) => copy_files(state, dir, files, false)?,
        (Variant::PlainPut, _) => {
            let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
            plain_put(&store, state, files).await?;
        }
        (_, Some(writer)) => {
            writer.commit_checkpoint(state, files, meta()).await?;
        }
        (v, None) => return Err(format!("{v:?} is not an upload").into()),
    }
    Ok((t.elapsed().as_secs_f64(), cpu_seconds() - cpu0))
}

async fn restore_variant(
    v: Variant,
    plain: &Arc<dyn ObjectStore>,
    plain_dir: &Path,
    job: &JobStore,
    id: u64,
    dir: &Path,
    files: &[LocalFile],
) -> Result<(), BoxError> {
    match v {
        Variant::Copy | Variant::CopyFsync => {
            std::fs::create_dir_all(dir)?;
            copy_files(plain_dir, dir, files, v == Variant::CopyFsync)
        }
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
        v => Err(format!("{v:?} is not a restore").into()),
    }
}

fn copy_files(from: &Path, to: &Path, files: &[LocalFile], fsync: bool) -> Result<(), BoxError> {
    for f in files {
        let dest = to.join(&f.name);
        std::fs::copy(from.join(&f.name), &dest)?;
        if fsync {
            std::fs::File::open(&dest)?.sync_data()?;
        }
    }
    if fsync {
        std::fs::File::open(to)?.sync_all()?;
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

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn path_str(p: &Path) -> Result<&str, BoxError> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()).into())
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

fn write_state(dir: &Path, n: usize, size: usize) -> Result<Vec<LocalFile>, BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for i in 0..n + SMALL_FILES {
        let name = format!("{i:06}.sst");
        let len = if i < n { size } else { 1 << 20 };
        std::fs::write(dir.join(&name), fill(i as u64 + 1, len))?;
        files.push(LocalFile::shared(name));
    }
    for name in ["CURRENT", "MANIFEST-000001", "OPTIONS-000002"] {
        std::fs::write(dir.join(name), format!("{name} of {n} files\n").repeat(200))?;
        files.push(LocalFile::private(name));
    }
    Ok(files)
}

/// A next local checkpoint: the first large file dropped (compacted away),
/// one new large file, the others hard links, new private files.
fn next_state(
    from: &Path,
    dir: &Path,
    files: &[LocalFile],
    n: usize,
    size: usize,
) -> Result<(Vec<LocalFile>, u64), BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for f in files.iter().skip(1) {
        if f.kind == FileKind::Shared {
            std::fs::hard_link(from.join(&f.name), dir.join(&f.name))?;
            out.push(f.clone());
        }
    }
    let name = format!("{:06}.sst", n + SMALL_FILES);
    std::fs::write(dir.join(&name), fill(1_000_000, size))?;
    let mut new_bytes = size as u64;
    out.push(LocalFile::shared(name));
    for f in files.iter().filter(|f| f.kind == FileKind::Private) {
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
