//! The streaming job (`stream-join run`): sources, the join operator on
//! `state-core`, checkpoints to an object store and the transactional sinks,
//! wired so that a killed and restored run commits exactly the rows of an
//! uninterrupted one.
//!
//! Threads: one coordinator reads both CSV files in merge order, computes the
//! watermark and routes events by key group to P worker threads, each owning
//! a key-group range of one shared `StateStore`. A checkpoint is a barrier:
//! the coordinator stops routing, every worker pre-commits its sinks, the
//! store takes its short synchronous checkpoint, routing resumes while the
//! upload runs; when the checkpoint is durable the workers publish the
//! output files of that checkpoint.

use std::path::PathBuf;

use serde::Serialize;

/// `--checkpoint-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    Runs,
    Files,
}

/// Where the join keeps its buffered events (`--join-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JoinStateArg {
    /// Buckets of event time (`state_core::bucket`): in memory up to the
    /// budget, then sorted runs with key filters on local disk; expiry drops
    /// whole buckets; checkpoints upload each run once.
    #[default]
    Buckets,
    /// The window in memory in front of RocksDB map states, written at
    /// every checkpoint barrier (the previous default).
    Window,
}

/// `stream-join run` arguments (the interface of issue 6).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Impressions CSV file.
    #[arg(long)]
    pub impressions: PathBuf,
    /// Plays CSV file.
    #[arg(long)]
    pub plays: PathBuf,
    /// Output folder: committed `*.csv` part files, `late/`, hidden work in progress.
    #[arg(long)]
    pub output: PathBuf,
    /// Object store URL of checkpoints and savepoints: a local folder, `s3://bucket/prefix`, `memory://`.
    #[arg(long, default_value = "./checkpoints")]
    pub checkpoints: String,
    /// Take a checkpoint every N input events (across both streams).
    #[arg(long, value_name = "N")]
    pub checkpoint_interval_events: Option<u64>,
    /// Take a checkpoint every N milliseconds of wall-clock time.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub checkpoint_interval_ms: u64,
    /// Out-of-order bound D of both streams' watermarks.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub out_of_order_ms: i64,
    /// Late events within this bound behind the watermark are still joined.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub allowed_lateness_ms: i64,
    /// Number of instances, each owning a key-group range.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub parallelism: u32,
    /// Run only instance I of P (several processes sharing the object store).
    #[arg(long, value_name = "I")]
    pub index: Option<u32>,
    /// Number of key groups (fixed for the job's life).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_parallelism: u32,
    /// Restore from this checkpoint instead of the latest complete one.
    #[arg(long, value_name = "N", conflicts_with = "from_savepoint")]
    pub from_checkpoint: Option<u64>,
    /// Restore from a savepoint.
    #[arg(long, value_name = "URL")]
    pub from_savepoint: Option<String>,
    /// Schema registry: a folder or an http URL.
    #[arg(long, value_name = "DIR|URL")]
    pub registry: Option<String>,
    /// Avro schema file of the impressions (registered if new).
    #[arg(long, value_name = "FILE")]
    pub impression_schema: Option<PathBuf>,
    /// How buffered events are dropped: event-time timers, or per-entry
    /// event-time expiry dropped by compaction (fewer writes).
    #[arg(long, value_enum, default_value = "timers")]
    pub cleanup: crate::operator::Cleanup,
    /// Memory for the join window kept in front of RocksDB, shared by the
    /// process's workers: events that
    /// expire between two checkpoints never reach RocksDB; at a checkpoint
    /// the live ones are written; past this budget the window is written out
    /// and read back per key. 0: every event goes through RocksDB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub window_memory_mb: usize,
    /// Where the buffered events live: event-time buckets (default: any
    /// state size at the same speed), or the window in front of RocksDB.
    /// `--window-memory-mb 0` sends every event through RocksDB either way.
    #[arg(long, value_enum, default_value = "buckets")]
    pub join_state: JoinStateArg,
    /// What a checkpoint holds: sorted runs from the store's change log (no
    /// flush in the barrier, uploads about 1.4x what changed), or a RocksDB
    /// checkpoint directory (the v1 layout). Restore reads either.
    #[arg(long, value_enum, default_value = "runs")]
    pub checkpoint_layout: LayoutArg,
    /// When the job stops gracefully (end of input, or SIGTERM/SIGINT), write
    /// a savepoint of its final state here (a folder or object-store URL).
    #[arg(long, value_name = "URL")]
    pub savepoint: Option<String>,
    /// Testing: exit abruptly after N events, as if crashed, committing nothing.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_events: Option<u64>,
    /// Benchmarks: the input's event count, to report events/s over each
    /// fifth of it (`fifth_events_per_second`).
    #[arg(long, value_name = "N", hide = true)]
    pub expected_events: Option<u64>,
    /// Crash drill: exit abruptly (code 3) as soon as this run's Nth
    /// checkpoint is committed, before its output files are published; the
    /// next run resumes from it (the README's demo uses it).
    #[arg(long, value_name = "N")]
    pub stop_after_checkpoints: Option<u64>,
}

use crate::event::{CsvRecord, JoinedRow, LateEvent};
use crate::operator::{
    self, schemas, JoinConfig, JoinOperator, OperatorError, OperatorStats, Output,
};
use crate::sink::{self, SinkError, SinkState, TxnSink};
use crate::source::{Arrival, MergeOffsets, MergedSources, SourceError, Watermarks};
use schema_registry::AvroSchema;
use serde::Deserialize;
use state_core::checkpoint::{io_runtime, open_job, CheckpointLayout};
use state_core::{
    Checkpointer, CompletedCheckpoint, JobStoreOptions, KeyGroupRange, StateStore, StoreOptions,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a finished run reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    pub events: u64,
    pub rows: u64,
    pub late_events: u64,
    /// Checkpoints completed by this run.
    pub checkpoints: u64,
    /// The checkpoint this run started from.
    pub restored_from: Option<u64>,
    /// Events of the whole input already processed before this run started.
    pub events_before_restore: u64,
    pub elapsed_ms: u64,
    /// CPU seconds (user + system) of the process.
    pub cpu_seconds: f64,
    pub events_per_second: f64,
    pub events_per_cpu_second: f64,
    pub peak_rss_mib: f64,
    pub state_bytes: u64,
    /// The longest store checkpoint (flush and hard links).
    pub max_sync_pause_ms: f64,
    /// The longest stop of event processing for a checkpoint: the barrier
    /// (workers write their window to the store, sinks pre-commit) plus the
    /// store checkpoint.
    pub max_barrier_pause_ms: f64,
    pub uploaded_bytes: u64,
    /// Bytes of state written to the store between the checkpoints this run
    /// completed (what `uploaded_bytes` compares with).
    pub changed_bytes: u64,
    pub timers_fired: u64,
    pub entries_dropped: u64,
    /// See [`OperatorStats`].
    pub window_expired: u64,
    pub window_spills: u64,
    pub keys_loaded: u64,
    pub entries_persisted: u64,
    pub bucket_spills: u64,
    pub run_probes: u64,
    pub filter_skips: u64,
    pub buckets_expired: u64,
    /// Bytes the process read (`rchar` of /proc/self/io: page cache hits
    /// included), the part of it that was the input files, and the bytes
    /// read from the block device (`read_bytes`).
    pub read_bytes: u64,
    pub input_bytes: u64,
    pub storage_read_bytes: u64,
    /// Events per second over each fifth of the input (`--expected-events`).
    pub fifth_events_per_second: Vec<f64>,
    /// Stopped by SIGTERM/SIGINT before the end of input (after a final
    /// checkpoint): rerun to continue.
    pub stopped: bool,
    /// Where the savepoint of the final state was written (`--savepoint`).
    pub savepoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] state_core::StateError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("schema: {0}")]
    Schema(String),
    #[error("checkpoint {id}: {reason}")]
    CheckpointMeta { id: u64, reason: String },
    #[error(transparent)]
    Savepoint(#[from] state_core::savepoint::SavepointError),
    #[error("worker {0} stopped unexpectedly")]
    WorkerLost(usize),
    #[error(
        "{path} is in use by another stream-join (pid {holder}) on the same output folder; \
         stop it first (its checkpoints are fenced by this run's epoch otherwise)"
    )]
    Locked {
        path: std::path::PathBuf,
        holder: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the job commits with each checkpoint, next to the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobCheckpoint {
    pub format_version: u32,
    pub offsets: MergeOffsets,
    pub watermarks: Watermarks,
    pub parallelism: u32,
    pub sinks: Vec<SinkState>,
    pub late_sinks: Vec<SinkState>,
    pub events: u64,
    pub rows: u64,
    pub late_events: u64,
}

const JOB_CHECKPOINT_FORMAT: u32 = 1;
const ROUTE_BATCH: usize = 1024;
const LATE_HEADER_DIR: &str = "late";

/// Runs the job to the end of its input.
pub fn run(args: &RunArgs) -> Result<RunSummary, JobError> {
    let started = Instant::now();
    let plan = Plan::new(args)?;
    let impression_schema = impression_schema(args)?;
    let runtime = io_runtime()?;
    let job = open_job(
        &runtime,
        &plan.job_url,
        JobStoreOptions {
            retain: 3,
            // Restoring from a local folder hard-links the SSTs instead of
            // copying them: RocksDB never writes into an SST, it only reads
            // and deletes them, so the stored objects stay intact.
            link_local_objects: true,
            ..JobStoreOptions::default()
        },
    )?;

    let work = args.output.join(".job");
    let state_dir = work.join(format!("state-{}", plan.tag));
    let bucket_dir = work.join(format!("buckets-{}", plan.tag));
    std::fs::create_dir_all(&work).map_err(io_err(format!("creating {}", work.display())))?;
    // Held until the process exits: a second process on the same output
    // folder would remove this one's local state under it.
    // Instances of one job (`--index`) share the folder, each its own lock.
    let _lock = lock_work_dir(&work, &plan.tag)?;
    for dir in [&state_dir, &bucket_dir] {
        if dir.exists() {
            // Local state is a cache of the last checkpoint: durability
            // comes from the object store, so a leftover folder is discarded.
            std::fs::remove_dir_all(dir).map_err(io_err(format!("clearing {}", dir.display())))?;
        }
    }
    let mut use_buckets = args.join_state == JoinStateArg::Buckets && args.window_memory_mb > 0;
    let cfg = JoinConfig {
        allowed_lateness_ms: args.allowed_lateness_ms,
        cleanup: args.cleanup,
        window_bytes: window_bytes_per_worker(args.window_memory_mb, plan.instances.len())?,
        ..JoinConfig::default()
    };
    // With the window in front, RocksDB sees a batch per checkpoint rather
    // than a write per event and a probe per event: plain skip lists insert
    // sorted batches faster (and flush faster in the v1 layout's pause).
    let tuning = state_core::RocksTuning {
        hash_memtable: cfg.window_bytes == 0,
        ..Default::default()
    };
    let store_opts = StoreOptions::new(operator::descriptors(impression_schema.json(), &cfg))
        .with_max_parallelism(plan.max_parallelism)
        .with_key_groups(plan.key_groups)
        .with_tuning(tuning);

    let start_id = match args.from_checkpoint {
        Some(id) => Some(id),
        None => runtime
            .block_on(job.latest())
            .map_err(state_core::StateError::from)?
            .map(|m| m.id),
    };
    let mut restored_manifest = None;
    let mut restored_runs = state_core::checkpoint_buckets::RestoredRuns::new();
    let (store, resumed) = match (start_id, &args.from_savepoint) {
        (None, Some(url)) => {
            let (store, sp) = state_core::savepoint::restore_into(url, &state_dir, store_opts)?;
            let meta = job_metadata(&sp.user, 0, &format!("savepoint {url}"))?;
            (store, Some((0, meta)))
        }
        (Some(id), from_savepoint) => {
            if let Some(url) = from_savepoint {
                // A rerun after a crash must resume where the job got to, not
                // go back to the savepoint it once started from.
                eprintln!(
                    "stream-join: {} already holds checkpoints; resuming from checkpoint {id}, not from {url} (use a fresh --checkpoints to start from the savepoint)",
                    plan.job_url
                );
            }
            let (store, manifest, runs) = state_core::restore_with_buckets(
                &runtime,
                &job,
                Some(id),
                &state_dir,
                &bucket_dir.join("restored"),
                store_opts,
            )?;
            let meta = job_metadata(&manifest.user, manifest.id, "checkpoint")?;
            let id = manifest.id;
            restored_manifest = Some(manifest);
            restored_runs = runs;
            (store, Some((id, meta)))
        }
        (None, None) => (StateStore::open(&state_dir, store_opts)?, None),
    };

    let mut checkpointer = Checkpointer::start(
        runtime.clone(),
        job,
        work.join(format!("staging-{}", plan.tag)),
    )?
    .with_layout(match args.checkpoint_layout {
        LayoutArg::Runs => CheckpointLayout::default(),
        LayoutArg::Files => CheckpointLayout::Files,
    });
    if let Some(manifest) = &restored_manifest {
        // Nothing has written to the restored store yet: its checkpoints
        // continue the restored runs instead of starting with a full copy.
        checkpointer.continue_from(&store, manifest)?;
    }
    let late_dir = args.output.join(LATE_HEADER_DIR);
    let sinks = recover_sinks(
        &plan,
        &args.output,
        &late_dir,
        resumed.as_ref().map(|(_, m)| m),
    )?;
    // Every buffered event in the restored state was seen by the sources.
    let restored_max_ts = resumed
        .as_ref()
        .and_then(|(_, m)| m.watermarks.max_impression_ts.max(m.watermarks.max_play_ts));
    let (offsets, watermarks, before) = match &resumed {
        Some((_, m)) => (
            m.offsets,
            m.watermarks.clone(),
            (m.events, m.rows, m.late_events),
        ),
        None => (
            MergeOffsets::default(),
            Watermarks::new(args.out_of_order_ms),
            (0, 0, 0),
        ),
    };
    let sources = MergedSources::open_csv(&args.impressions, &args.plays, offsets, watermarks)?;

    // Bucket runs are read with the current schema only: after a schema
    // change the restored runs go into the map states and this run keeps
    // its events in the window, which resolves older versions on read.
    let evolved = [operator::IMPRESSIONS_STATE, operator::PLAYS_STATE]
        .iter()
        .map(|s| store.state_meta(s).map(|m| m.schemas.len() > 1))
        .collect::<Result<Vec<_>, _>>()?
        .contains(&true);
    if use_buckets && evolved {
        use_buckets = false;
    }
    if evolved && !restored_runs.is_empty() {
        state_core::checkpoint_buckets::materialize_runs(&store, &restored_runs, plan.key_groups)?;
        restored_runs.clear();
    }
    let buckets = use_buckets.then(|| BucketSetup {
        dir: bucket_dir.clone(),
        restored: restored_runs,
        materialize_on_finish: args.savepoint.is_some(),
    });
    let workers = spawn_workers(&store, &plan, cfg, sinks, restored_max_ts, buckets)?;
    let highest = highest_part_id(&args.output).max(highest_part_id(&late_dir));
    let name_offset = (highest + 1).saturating_sub(checkpointer.next_checkpoint_id()?);
    let mut coordinator = Coordinator {
        args,
        plan: &plan,
        store: &store,
        checkpointer: &mut checkpointer,
        workers,
        pending: Vec::new(),
        last_checkpoint: Instant::now(),
        events_since_checkpoint: 0,
        summary: RunSummary {
            restored_from: resumed.as_ref().map(|(id, _)| *id),
            events_before_restore: before.0,
            ..RunSummary::default()
        },
        totals_before: before,
        events_routed: 0,
        last_committed: None,
        name_offset,
        pre_flushed: false,
        progress: Progress::new(),
        fifths: args.expected_events.map(|n| (n, vec![Instant::now()])),
    };
    install_stop_handler();
    coordinator.run(sources)?;
    let last = coordinator.last_committed.clone();
    let mut summary = coordinator.finish()?;
    if let (Some(url), Some((id, meta))) = (&args.savepoint, last) {
        let user = serde_json::to_value(&meta).map_err(|e| JobError::CheckpointMeta {
            id,
            reason: e.to_string(),
        })?;
        state_core::savepoint::create_from_store(
            &store,
            user,
            state_core::savepoint::SourceInfo::checkpoint(&plan.job_url, id),
            url,
            state_core::savepoint::WriteOptions::default(),
        )?;
        summary.savepoint = Some(url.clone());
    }
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    summary.cpu_seconds = cpu_seconds();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    summary.events_per_second = summary.events as f64 / secs;
    summary.events_per_cpu_second = summary.events as f64 / summary.cpu_seconds.max(1e-9);
    summary.peak_rss_mib = peak_rss_mib();
    summary.read_bytes = proc_io_value("rchar").unwrap_or(0);
    summary.storage_read_bytes = proc_io_value("read_bytes").unwrap_or(0);
    summary.input_bytes = [&args.impressions, &args.plays]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    summary.state_bytes = store.approximate_size();
    Ok(summary)
}

/// The job's metadata recorded with a checkpoint or savepoint.
fn job_metadata(
    user: &serde_json::Value,
    id: u64,
    source: &str,
) -> Result<JobCheckpoint, JobError> {
    serde_json::from_value(user.clone()).map_err(|e| JobError::CheckpointMeta {
        id,
        reason: format!("{source}: job metadata does not parse: {e}"),
    })
}

/// Validated numbers and names derived from the arguments.
struct Plan {
    job_url: String,
    /// Names this process's local folders: `all` or `<index>-of-<parallelism>`.
    tag: String,
    max_parallelism: u16,
    /// The key groups this process owns.
    key_groups: KeyGroupRange,
    /// Global instance ids of this process's workers and their ranges.
    instances: Vec<(u32, KeyGroupRange)>,
    parallelism: u32,
    index_mode: bool,
    checkpoint_every_events: Option<u64>,
    checkpoint_every: Duration,
}

impl Plan {
    fn new(args: &RunArgs) -> Result<Self, JobError> {
        let max_parallelism = u16::try_from(args.max_parallelism)
            .ok()
            .filter(|m| (1..=32768).contains(m))
            .ok_or_else(|| {
                JobError::Args(format!(
                    "--max-parallelism {} must be in 1..=32768",
                    args.max_parallelism
                ))
            })?;
        if args.parallelism == 0 || args.parallelism > u32::from(max_parallelism) {
            return Err(JobError::Args(format!(
                "--parallelism {} must be in 1..={max_parallelism}",
                args.parallelism
            )));
        }
        let p = args.parallelism as u16;
        let range = |i: u32| {
            KeyGroupRange::for_operator(max_parallelism, p, i as u16).map_err(JobError::from)
        };
        let (instances, key_groups, tag, job_url) = match args.index {
            Some(i) if i >= args.parallelism => {
                return Err(JobError::Args(format!(
                    "--index {i} must be below --parallelism {}",
                    args.parallelism
                )))
            }
            Some(i) => {
                let r = range(i)?;
                let tag = format!("{i}-of-{}", args.parallelism);
                let url = format!("{}/instance-{tag}", args.checkpoints.trim_end_matches('/'));
                (vec![(i, r)], r, tag, url)
            }
            None => {
                let all = (0..args.parallelism)
                    .map(|i| Ok((i, range(i)?)))
                    .collect::<Result<Vec<_>, JobError>>()?;
                (
                    all,
                    KeyGroupRange::all(max_parallelism),
                    "all".to_string(),
                    args.checkpoints.clone(),
                )
            }
        };
        if args.checkpoint_interval_ms == 0 {
            return Err(JobError::Args(
                "--checkpoint-interval-ms must be positive".into(),
            ));
        }
        if args.allowed_lateness_ms < 0 || args.out_of_order_ms < 0 {
            return Err(JobError::Args(
                "--allowed-lateness-ms and --out-of-order-ms must not be negative".into(),
            ));
        }
        Ok(Plan {
            job_url,
            tag,
            max_parallelism,
            key_groups,
            instances,
            parallelism: args.parallelism,
            index_mode: args.index.is_some(),
            checkpoint_every_events: args.checkpoint_interval_events.filter(|&n| n > 0),
            checkpoint_every: Duration::from_millis(args.checkpoint_interval_ms),
        })
    }
}

/// The impression schema in force: the file given (registered in the
/// registry when one is named, which refuses it with the reasons if the
/// subject's compatibility level does not allow it) or version 1.
fn impression_schema(args: &RunArgs) -> Result<AvroSchema, JobError> {
    let json = match &args.impression_schema {
        Some(path) => {
            std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?
        }
        None => schemas::IMPRESSION_V1.to_string(),
    };
    let schema = AvroSchema::parse(&json)
        .map_err(|e| JobError::Schema(format!("impression schema: {e}")))?;
    if let Some(location) = &args.registry {
        let registry = schema_registry::open_registry(location)
            .map_err(|e| JobError::Schema(format!("registry {location}: {e}")))?;
        let issues = registry
            .test_compatibility(schemas::IMPRESSION_SUBJECT, &schema, None)
            .or_else(|e| match e {
                schema_registry::RegistryError::SubjectNotFound(_) => Ok(Vec::new()),
                e => Err(e),
            })
            .map_err(|e| JobError::Schema(e.to_string()))?;
        if !issues.is_empty() {
            let reasons: Vec<String> = issues
                .iter()
                .map(|i| state_core::schema::with_field(schema.json(), &i.incompatibility.path, i))
                .collect();
            return Err(JobError::Schema(format!(
                "subject {} refuses this impression schema: {}",
                schemas::IMPRESSION_SUBJECT,
                reasons.join("; ")
            )));
        }
        registry
            .register(schemas::IMPRESSION_SUBJECT, &schema)
            .map_err(|e| JobError::Schema(e.to_string()))?;
        let play =
            AvroSchema::parse(schemas::PLAY_V1).map_err(|e| JobError::Schema(e.to_string()))?;
        registry
            .register(schemas::PLAY_SUBJECT, &play)
            .map_err(|e| JobError::Schema(e.to_string()))?;
    }
    Ok(schema)
}

struct WorkerSinks {
    rows: TxnSink,
    late: TxnSink,
}

/// Publishes what a restored checkpoint had pending, discards what was
/// written after it, and opens this run's sinks.
fn recover_sinks(
    plan: &Plan,
    output: &Path,
    late_dir: &Path,
    resumed: Option<&JobCheckpoint>,
) -> Result<Vec<WorkerSinks>, JobError> {
    let rows_header = JoinedRow::header();
    let late_header = LateEvent::header();
    if plan.index_mode {
        // Other processes share the folder: touch only this instance's files.
        let (id, _) = plan.instances[0];
        let find = |states: &[SinkState]| states.iter().find(|s| s.instance == id).cloned();
        let (rows, late) = match resumed {
            Some(m) => (find(&m.sinks), find(&m.late_sinks)),
            None => (None, None),
        };
        return Ok(vec![WorkerSinks {
            rows: TxnSink::open(output, id, &rows_header, rows.as_ref())?,
            late: TxnSink::open(late_dir, id, &late_header, late.as_ref())?,
        }]);
    }
    let (rows, late) = match resumed {
        Some(m) => (m.sinks.clone(), m.late_sinks.clone()),
        None => (Vec::new(), Vec::new()),
    };
    sink::recover_all(output, &rows)?;
    std::fs::create_dir_all(late_dir)
        .map_err(io_err(format!("creating {}", late_dir.display())))?;
    sink::recover_all(late_dir, &late)?;
    plan.instances
        .iter()
        .map(|(id, _)| {
            Ok(WorkerSinks {
                rows: TxnSink::open(output, *id, &rows_header, None)?,
                late: TxnSink::open(late_dir, *id, &late_header, None)?,
            })
        })
        .collect()
}

impl Output for WorkerSinks {
    fn row(&mut self, row: &JoinedRow) -> Result<(), OperatorError> {
        self.rows
            .write(row)
            .map_err(|e| OperatorError::Output(e.to_string()))
    }

    fn late(&mut self, event: &LateEvent) -> Result<(), OperatorError> {
        self.late
            .write(event)
            .map_err(|e| OperatorError::Output(e.to_string()))
    }
}

enum Command {
    Events(Vec<Arrival>, i64),
    /// Pre-commit the sinks for checkpoint `id` and report their states.
    Barrier(u64),
    /// The checkpoint with these sink states is durable: publish.
    Commit(Box<(SinkState, SinkState)>),
    Finish,
}

enum Reply {
    Barrier(
        usize,
        Box<(SinkState, SinkState)>,
        OperatorStats,
        Vec<state_core::BucketCut>,
    ),
    Finished(usize, OperatorStats),
    Failed(usize, String),
}

struct WorkerHandle {
    tx: mpsc::SyncSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Workers {
    handles: Vec<WorkerHandle>,
    replies: mpsc::Receiver<Reply>,
    /// Which worker owns each key group (index into `handles`).
    route: Vec<u16>,
    batches: Vec<Vec<Arrival>>,
}

/// Where the workers keep bucketed state, when they do.
struct BucketSetup {
    dir: std::path::PathBuf,
    restored: state_core::checkpoint_buckets::RestoredRuns,
    /// Write the buckets into the map states when the input ends, for the
    /// savepoint taken from the store then.
    materialize_on_finish: bool,
}

fn spawn_workers(
    store: &StateStore,
    plan: &Plan,
    cfg: JoinConfig,
    sinks: Vec<WorkerSinks>,
    restored_max_ts: Option<i64>,
    buckets: Option<BucketSetup>,
) -> Result<Workers, JobError> {
    let (reply_tx, replies) = mpsc::channel();
    let mut route = vec![0u16; usize::from(plan.max_parallelism)];
    let mut handles = Vec::new();
    let slots: Arc<Vec<AtomicI64>> = Arc::new(
        plan.instances
            .iter()
            .map(|_| AtomicI64::new(i64::MIN))
            .collect(),
    );
    for (w, ((_, range), sinks)) in plan.instances.iter().zip(sinks).enumerate() {
        for kg in range.iter() {
            route[usize::from(kg)] = w as u16;
        }
        let mut op = JoinOperator::new(store, *range, cfg)?;
        if let Some(ts) = restored_max_ts {
            op.store_holds_events_up_to(ts);
        }
        if let Some(b) = &buckets {
            op = op.with_buckets(store, &b.dir.join(format!("worker-{w}")), &b.restored)?;
        }
        let materialize = buckets.as_ref().is_some_and(|b| b.materialize_on_finish);
        let (tx, rx) = mpsc::sync_channel::<Command>(64);
        let reply = reply_tx.clone();
        let clock = EventClock {
            worker: w,
            store: store.clone(),
            slots: slots.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("join-worker-{w}"))
            .spawn(move || worker_loop(w, op, sinks, clock, rx, reply, materialize))
            .map_err(io_err("starting a worker thread".to_string()))?;
        handles.push(WorkerHandle {
            tx,
            thread: Some(thread),
        });
    }
    let n = handles.len();
    Ok(Workers {
        handles,
        replies,
        route,
        batches: (0..n).map(|_| Vec::with_capacity(ROUTE_BATCH)).collect(),
    })
}

/// `--window-memory-mb` is for the whole process, shared by its workers.
fn window_bytes_per_worker(mib: usize, workers: usize) -> Result<usize, JobError> {
    let bytes = mib.checked_mul(1 << 20).ok_or_else(|| {
        JobError::Args(format!(
            "--window-memory-mb {mib}: more bytes than this machine can address"
        ))
    })?;
    Ok(bytes / workers.max(1))
}

/// The store's event time (what TTL expiry is measured against) is the
/// smallest watermark any worker has processed up to: a lagging worker must
/// never see an entry it still needs as expired.
struct EventClock {
    worker: usize,
    store: StateStore,
    slots: Arc<Vec<AtomicI64>>,
}

impl EventClock {
    fn processed(&self, watermark: i64) {
        if watermark == i64::MAX {
            // End of input: expiring now would only hide state from tools.
            return;
        }
        self.slots[self.worker].store(watermark, Ordering::Release);
        let min = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(i64::MIN);
        if min != i64::MIN {
            self.store.advance_event_time(min);
        }
    }
}

fn worker_loop(
    w: usize,
    mut op: JoinOperator,
    mut sinks: WorkerSinks,
    clock: EventClock,
    rx: mpsc::Receiver<Command>,
    reply: mpsc::Sender<Reply>,
    materialize_on_finish: bool,
) {
    let result = (|| -> Result<(), String> {
        while let Ok(cmd) = rx.recv() {
            match cmd {
                Command::Events(batch, watermark) => {
                    for a in batch {
                        op.process(a, &mut sinks).map_err(|e| e.to_string())?;
                    }
                    op.flush().map_err(|e| e.to_string())?;
                    op.on_watermark(watermark).map_err(|e| e.to_string())?;
                    clock.processed(watermark);
                }
                Command::Barrier(id) => {
                    op.persist().map_err(|e| e.to_string())?;
                    let cuts = op.cut();
                    let rows = sinks.rows.pre_commit(id).map_err(|e| e.to_string())?;
                    let late = sinks.late.pre_commit(id).map_err(|e| e.to_string())?;
                    let _ = reply.send(Reply::Barrier(w, Box::new((rows, late)), op.stats(), cuts));
                }
                Command::Commit(states) => {
                    sinks.rows.commit(&states.0).map_err(|e| e.to_string())?;
                    sinks.late.commit(&states.1).map_err(|e| e.to_string())?;
                }
                Command::Finish => {
                    if materialize_on_finish {
                        op.materialize(&clock.store).map_err(|e| e.to_string())?;
                    }
                    let _ = reply.send(Reply::Finished(w, op.stats()));
                    return Ok(());
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = reply.send(Reply::Failed(w, e));
    }
}

impl Workers {
    fn send(&self, w: usize, cmd: Command) -> Result<(), JobError> {
        self.handles[w]
            .tx
            .send(cmd)
            .map_err(|_| JobError::WorkerLost(w))
    }

    /// Queues `arrival` for the worker that owns its key group.
    fn route(&mut self, arrival: Arrival, key_group: u16, watermark: i64) -> Result<(), JobError> {
        let w = usize::from(self.route[usize::from(key_group)]);
        self.batches[w].push(arrival);
        if self.batches[w].len() >= ROUTE_BATCH {
            let batch = std::mem::replace(&mut self.batches[w], Vec::with_capacity(ROUTE_BATCH));
            self.send(w, Command::Events(batch, watermark))?;
        }
        Ok(())
    }

    fn flush(&mut self, watermark: i64) -> Result<(), JobError> {
        for w in 0..self.handles.len() {
            let batch = std::mem::take(&mut self.batches[w]);
            self.send(w, Command::Events(batch, watermark))?;
        }
        Ok(())
    }

    fn recv(&self) -> Result<Reply, JobError> {
        match self.replies.recv() {
            Ok(Reply::Failed(w, e)) => Err(JobError::Operator(OperatorError::Output(format!(
                "worker {w}: {e}"
            )))),
            Ok(r) => Ok(r),
            Err(_) => Err(JobError::WorkerLost(0)),
        }
    }

    /// Flushes pending events and collects every worker's sink states.
    fn barrier(&mut self, id: u64, watermark: i64) -> Result<BarrierResult, JobError> {
        self.flush(watermark)?;
        for w in 0..self.handles.len() {
            self.send(w, Command::Barrier(id))?;
        }
        let mut states: Vec<Option<(SinkState, SinkState)>> = vec![None; self.handles.len()];
        let mut total = OperatorStats::default();
        let mut cuts = Vec::new();
        for _ in 0..self.handles.len() {
            match self.recv()? {
                Reply::Barrier(w, s, stats, c) => {
                    states[w] = Some(*s);
                    total.rows += stats.rows;
                    total.late_events += stats.late_events;
                    cuts.extend(c);
                }
                Reply::Finished(w, _) | Reply::Failed(w, _) => return Err(JobError::WorkerLost(w)),
            }
        }
        let states = states
            .into_iter()
            .enumerate()
            .map(|(w, s)| s.ok_or(JobError::WorkerLost(w)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((states, total, cuts))
    }
}

/// Every worker's sink states, operator totals and bucket cuts at a barrier.
type BarrierResult = (
    Vec<(SinkState, SinkState)>,
    OperatorStats,
    Vec<state_core::BucketCut>,
);

fn arrival_key(a: &Arrival) -> [u8; 16] {
    match &a.event {
        crate::source::Arrived::Impression(i) => operator::key_bytes(i.profile_id, i.title_id),
        crate::source::Arrived::Play(p) => operator::key_bytes(p.profile_id, p.title_id),
    }
}

/// A checkpoint whose upload is running, with the sink states it commits.
struct PendingCheckpoint {
    sequence: u64,
    states: Vec<(SinkState, SinkState)>,
    meta: JobCheckpoint,
}

struct Coordinator<'a> {
    args: &'a RunArgs,
    plan: &'a Plan,
    store: &'a StateStore,
    checkpointer: &'a mut Checkpointer,
    workers: Workers,
    pending: Vec<PendingCheckpoint>,
    last_checkpoint: Instant,
    events_since_checkpoint: u64,
    summary: RunSummary,
    totals_before: (u64, u64, u64),
    /// Input events read by this run (all key groups).
    events_routed: u64,
    /// The last checkpoint committed and what it recorded.
    last_committed: Option<(u64, JobCheckpoint)>,
    /// Added to checkpoint ids when naming part files (see `checkpoint`).
    name_offset: u64,
    /// A background flush was started for the coming checkpoint.
    pre_flushed: bool,
    progress: Progress,
    /// `--expected-events` and when each fifth of it began.
    fifths: Option<(u64, Vec<Instant>)>,
}

impl Coordinator<'_> {
    fn run<I, P>(&mut self, mut sources: MergedSources<I, P>) -> Result<(), JobError>
    where
        I: crate::source::Source<Event = crate::event::Impression>,
        P: crate::source::Source<Event = crate::event::Play>,
    {
        let max_parallelism = self.plan.max_parallelism;
        let mut n: u64 = 0;
        while let Some(arrival) = sources.next_arrival()? {
            let watermark = arrival.join_watermark;
            let key = arrival_key(&arrival);
            let kg = state_core::key_group_of(&key, max_parallelism);
            n += 1;
            self.events_routed = n;
            if self.plan.key_groups.contains(kg) {
                self.workers.route(arrival, kg, watermark)?;
            }
            self.events_since_checkpoint += 1;
            if let Some((total, marks)) = &mut self.fifths {
                if marks.len() < 6 && n * 5 >= *total * marks.len() as u64 {
                    marks.push(Instant::now());
                }
            }
            if n.is_multiple_of(ROUTE_BATCH as u64) {
                self.tick(&sources, watermark)?;
                if STOP.load(Ordering::Relaxed) {
                    eprintln!("stream-join: stop requested: taking a final checkpoint");
                    self.summary.stopped = true;
                    break;
                }
            }
            if self.args.stop_after_events.is_some_and(|stop| n >= stop) {
                // Testing: die as a crash would, committing nothing more.
                eprintln!("stream-join: stopping abruptly after {n} events (--stop-after-events)");
                exit_now(3);
            }
        }
        self.summary.events = n;
        if let Some((total, marks)) = &self.fifths {
            let per_fifth = *total as f64 / 5.0;
            self.summary.fifth_events_per_second = marks
                .windows(2)
                .map(|w| per_fifth / (w[1] - w[0]).as_secs_f64().max(1e-9))
                .collect();
        }
        // End of input: a final checkpoint commits the last output. Cleanup
        // timers are not fired (nothing can arrive any more).
        self.drain_checkpoints()?;
        let watermark = sources.watermarks().join_watermark();
        self.checkpoint(&sources, watermark, true)?;
        self.drain_checkpoints()
    }

    fn tick<I, P>(&mut self, sources: &MergedSources<I, P>, watermark: i64) -> Result<(), JobError>
    where
        I: crate::source::Source<Event = crate::event::Impression>,
        P: crate::source::Source<Event = crate::event::Play>,
    {
        self.poll_checkpoints()?;
        let due_events = self
            .plan
            .checkpoint_every_events
            .is_some_and(|every| self.events_since_checkpoint >= every);
        let due_time = self.last_checkpoint.elapsed() >= self.plan.checkpoint_every;
        if !self.pre_flushed && self.checkpoint_nearly_due() {
            // Flush most of the memtables now, in the background, so that the
            // checkpoint's synchronous flush only has the last moments left.
            self.store.flush_in_background()?;
            self.pre_flushed = true;
        }
        if (due_events || due_time) && self.checkpointer.in_flight() == 0 {
            self.checkpoint(sources, watermark, false)?;
        }
        self.progress
            .maybe_print(self.events_routed, watermark, self.store, &self.summary);
        Ok(())
    }

    fn checkpoint<I, P>(
        &mut self,
        sources: &MergedSources<I, P>,
        watermark: i64,
        wait: bool,
    ) -> Result<(), JobError>
    where
        I: crate::source::Source<Event = crate::event::Impression>,
        P: crate::source::Source<Event = crate::event::Play>,
    {
        // Part files are named by checkpoint id; a job started on a fresh
        // checkpoint log (or from a savepoint) counts from 1 again, so the
        // offset keeps new names above every committed one in the folder.
        let id = self.checkpointer.next_checkpoint_id()? + self.name_offset;
        let barrier_started = Instant::now();
        let (states, stats, mut cuts) = self.workers.barrier(id, watermark)?;
        let (rows, late) = states.iter().cloned().unzip();
        let meta = JobCheckpoint {
            format_version: JOB_CHECKPOINT_FORMAT,
            offsets: sources.offsets(),
            watermarks: sources.watermarks().clone(),
            parallelism: self.plan.parallelism,
            sinks: rows,
            late_sinks: late,
            events: self.totals_before.0 + self.events_routed,
            rows: self.totals_before.1 + stats.rows,
            late_events: self.totals_before.2 + stats.late_events,
        };
        let user = serde_json::to_value(&meta).map_err(|e| JobError::CheckpointMeta {
            id,
            reason: e.to_string(),
        })?;
        loop {
            match self
                .checkpointer
                .trigger_with(self.store, user.clone(), &mut cuts)?
            {
                Some(t) => {
                    self.summary.max_sync_pause_ms = self
                        .summary
                        .max_sync_pause_ms
                        .max(t.sync_pause.as_secs_f64() * 1e3);
                    self.summary.max_barrier_pause_ms = self
                        .summary
                        .max_barrier_pause_ms
                        .max(barrier_started.elapsed().as_secs_f64() * 1e3);
                    self.pending.push(PendingCheckpoint {
                        sequence: t.sequence,
                        states,
                        meta: meta.clone(),
                    });
                    break;
                }
                // The previous upload is still running: at the end of input
                // wait for it, otherwise try again at a later tick.
                None if wait => {
                    if let Some(done) = self.checkpointer.wait_next() {
                        self.complete(done)?;
                    }
                }
                None => return Ok(()),
            }
        }
        self.last_checkpoint = Instant::now();
        self.events_since_checkpoint = 0;
        self.pre_flushed = false;
        Ok(())
    }

    /// 80 % of the way to the next checkpoint, by events or by time.
    fn checkpoint_nearly_due(&self) -> bool {
        let by_events = self
            .plan
            .checkpoint_every_events
            .is_some_and(|every| self.events_since_checkpoint * 5 >= every * 4);
        let by_time = self.last_checkpoint.elapsed() * 5 >= self.plan.checkpoint_every * 4;
        by_events || by_time
    }

    fn poll_checkpoints(&mut self) -> Result<(), JobError> {
        for done in self.checkpointer.try_completed() {
            self.complete(done)?;
        }
        Ok(())
    }

    fn drain_checkpoints(&mut self) -> Result<(), JobError> {
        while let Some(done) = self.checkpointer.wait_next() {
            self.complete(done)?;
        }
        Ok(())
    }

    fn complete(&mut self, done: CompletedCheckpoint) -> Result<(), JobError> {
        let Some(pos) = self
            .pending
            .iter()
            .position(|p| p.sequence == done.sequence)
        else {
            return Ok(());
        };
        let pending = self.pending.remove(pos);
        match done.result {
            Ok(manifest) => {
                self.summary.checkpoints += 1;
                if Some(self.summary.checkpoints) == self.args.stop_after_checkpoints {
                    eprintln!(
                        "stream-join: stopping abruptly after checkpoint {} (--stop-after-checkpoints)",
                        manifest.id
                    );
                    exit_now(3);
                }
                self.summary.uploaded_bytes += manifest.uploaded_bytes;
                self.summary.changed_bytes += done.changed_bytes;
                self.progress.last_checkpoint = Some((manifest.id, manifest.uploaded_bytes));
                self.last_committed = Some((manifest.id, pending.meta.clone()));
                for (w, states) in pending.states.into_iter().enumerate() {
                    self.workers.send(w, Command::Commit(Box::new(states)))?;
                }
                Ok(())
            }
            // Fenced: another run owns the job now; stop.
            Err(e) if e.kind() == state_core::ErrorKind::Fenced => Err(e.into()),
            // A failed upload leaves its output pending: the next checkpoint's
            // sink states carry those files and commit them.
            Err(e) => {
                eprintln!("stream-join: checkpoint failed (will retry at the next interval): {e}");
                Ok(())
            }
        }
    }

    fn finish(mut self) -> Result<RunSummary, JobError> {
        for w in 0..self.workers.handles.len() {
            self.workers.send(w, Command::Finish)?;
        }
        let mut finished = 0;
        while finished < self.workers.handles.len() {
            match self.workers.recv()? {
                Reply::Finished(_, stats) => {
                    finished += 1;
                    self.summary.rows += stats.rows;
                    self.summary.late_events += stats.late_events;
                    self.summary.timers_fired += stats.timers_fired;
                    self.summary.entries_dropped += stats.entries_dropped;
                    self.summary.window_expired += stats.window_expired;
                    self.summary.window_spills += stats.window_spills;
                    self.summary.keys_loaded += stats.keys_loaded;
                    self.summary.entries_persisted += stats.entries_persisted;
                    self.summary.bucket_spills += stats.bucket_spills;
                    self.summary.run_probes += stats.run_probes;
                    self.summary.filter_skips += stats.filter_skips;
                    self.summary.buckets_expired += stats.buckets_expired;
                }
                Reply::Barrier(w, ..) | Reply::Failed(w, _) => return Err(JobError::WorkerLost(w)),
            }
        }
        for h in &mut self.workers.handles {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
        self.progress.clear();
        Ok(self.summary)
    }
}

/// A one-line progress display on a terminal, refreshed every second.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    last_checkpoint: Option<(u64, u64)>,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: Instant::now(),
            last_checkpoint: None,
        }
    }

    fn maybe_print(
        &mut self,
        events: u64,
        watermark: i64,
        store: &StateStore,
        summary: &RunSummary,
    ) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let chk = match self.last_checkpoint {
            Some((id, bytes)) => format!("chk-{id} (+{} KiB)", bytes / 1024),
            None => "none yet".into(),
        };
        eprint!(
            "\r{:>8.1} s  {events} events ({:.0}/s)  checkpoints {}  last {chk}  watermark {watermark}  state {} MiB  ",
            secs,
            events as f64 / secs,
            summary.checkpoints,
            store.approximate_size() >> 20
        );
    }

    fn clear(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Ends the process at once, without running exit handlers. After an error
/// (or a simulated crash) worker and RocksDB background threads may still be
/// running; letting `exit` destroy RocksDB's statics under them crashes.
/// Everything that must be durable already is: that is what checkpoints and
/// the sink's commit protocol are for.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// The highest checkpoint id in the names of committed part files
/// (`part-<instance>-<id>-<seq>.csv`) of `dir`; 0 when there are none.
fn highest_part_id(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_prefix("part-")?.strip_suffix(".csv")?;
            stem.split('-').nth(1)?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Set by SIGTERM/SIGINT: stop at the next batch boundary after a final
/// checkpoint, so a rerun continues exactly there.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_stop_handler() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> JobError {
    move |source| JobError::Io { context, source }
}

/// Takes an exclusive lock on an instance's part of the job's local working
/// folder (`LOCK-<instance>`, with the holder's pid in it); refuses when
/// another process holds it.
fn lock_work_dir(work: &Path, tag: &str) -> Result<std::fs::File, JobError> {
    use std::io::{Read, Seek, Write};
    let path = work.join(format!("LOCK-{tag}"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(pid.as_bytes()))
                .map_err(io_err(format!("writing {}", path.display())))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "unknown".to_string(),
                pid => pid.to_string(),
            };
            Err(JobError::Locked {
                path: work.to_path_buf(),
                holder,
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(JobError::Io {
            context: format!("locking {}", path.display()),
            source: e,
        }),
    }
}

/// A counter of /proc/self/io (Linux).
fn proc_io_value(key: &str) -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

fn status_value(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn peak_rss_mib() -> f64 {
    status_value("VmHWM:").map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time of the process from /proc/self/stat (utime + stime).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_budget_is_split_between_workers_and_checked() {
        assert_eq!(window_bytes_per_worker(256, 1).unwrap(), 256 << 20);
        assert_eq!(window_bytes_per_worker(256, 4).unwrap(), 64 << 20);
        assert_eq!(window_bytes_per_worker(0, 3).unwrap(), 0);
        let err = window_bytes_per_worker(usize::MAX, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--window-memory-mb"), "{err}");
    }
}
