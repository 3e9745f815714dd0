//! The streaming job (`stream-join run`). PLACEHOLDER: the argument
//! interface is final; the operator itself lands on top of `state-core`.

use std::path::PathBuf;

use serde::Serialize;

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
    /// Testing: exit abruptly after N events, as if crashed, committing nothing.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_events: Option<u64>,
}

/// What a finished run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub events: u64,
    pub rows: u64,
    pub late_events: u64,
    pub checkpoints: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("run: not implemented yet")]
    NotImplemented,
}

/// Runs the job to the end of its input.
pub fn run(_args: &RunArgs) -> Result<RunSummary, JobError> {
    Err(JobError::NotImplemented)
}
