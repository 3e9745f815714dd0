//! Command-line definitions (clap). Every subcommand's `--help` carries examples.

use crate::schema_cmd::{OutputFormat, SchemaCmd};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "savepoint",
    version,
    about = "Inspect, dump, migrate, compact, restore, rescale, verify, diff and gc keyed-state savepoints and checkpoints",
    long_about = "Inspect, dump, migrate, compact, restore, rescale, verify, diff and gc keyed-state \
savepoints and checkpoints.\n\nSRC is a savepoint (a prefix holding _metadata.json), a job (a prefix \
holding checkpoints/; pick one with --checkpoint N|latest) or one checkpoint (JOB/checkpoints/chk-N). \
Locations are folders, file://, s3://bucket/prefix (credentials from AWS_* variables) or memory://name.\n\n\
Exit codes: 0 ok; 1 found something (verify problems, diff differences, incompatible migration); \
2 usage or input error. Logging: RUST_LOG=debug.",
    after_help = "Examples:\n  savepoint ls s3://state/jobs/join\n  savepoint inspect s3://state/jobs/join --checkpoint latest\n  savepoint create s3://state/jobs/join --to s3://state/savepoints/before-upgrade\n  savepoint verify s3://state/savepoints/before-upgrade"
)]
pub struct Cli {
    /// Output format; json is stable for scripts.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Print error details (causes) as well as the one-line message.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Local folder for temporary stores and files (default: the system temp folder).
    #[arg(long, global = true, env = "SAVEPOINT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args, Clone)]
pub struct CheckpointArg {
    /// Checkpoint of a job source: an id or `latest`.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checkpoints and savepoints of a job: id, time, size, incremental bytes, parent, epoch, complete.
    #[command(
        after_help = "Examples:\n  savepoint ls /data/jobs/join\n  savepoint ls s3://state/jobs/join --output json"
    )]
    Ls { job: String },

    /// Summary of a savepoint or checkpoint: states, kinds, schema versions, counts, bytes, key-group skew, TTL, offsets, watermark.
    #[command(
        after_help = "Metadata-only answers are instant; --deep scans (for a checkpoint: restores it to a temp dir) \
to count values per schema version and the expired share.\n\nExamples:\n  savepoint inspect /data/savepoints/sp1\n  \
savepoint inspect s3://state/jobs/join --checkpoint 42 --deep --now 1700000000000"
    )]
    Inspect {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        /// Scan the data, not only the metadata.
        #[arg(long)]
        deep: bool,
        /// Time (ms since the epoch, or RFC 3339) against which entries count as expired; default now.
        #[arg(long)]
        now: Option<String>,
    },

    /// Entries of a state as JSON lines (values decoded with their schema) or as an Avro file.
    #[command(
        after_help = "Keys are written and parsed per the state's key format: utf8 as text, i64 as a number, \
i64_pair as `a,b`, bytes as hex.\n\nExamples:\n  savepoint dump /data/savepoints/sp1 --state impressions --limit 10\n  \
savepoint dump /data/savepoints/sp1 --state impressions --key 42,7\n  savepoint dump /data/savepoints/sp1 --state profiles --format avro > profiles.avro"
    )]
    Dump {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        state: String,
        /// Flink sources: the operator (uid, name or id; default: the one holding --state).
        #[arg(long)]
        operator: Option<String>,
        /// Flink SQL sources: the job's EXPLAIN output, to name the fields of rows (else f0, f1, ...).
        #[arg(long)]
        sql_plan: Option<PathBuf>,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// Only this key group.
        #[arg(long)]
        key_group: Option<u16>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long, value_enum, default_value = "json")]
        format: DumpFormat,
    },

    /// The value of one key (and user key, for map state).
    #[command(
        after_help = "Examples:\n  savepoint get /data/savepoints/sp1 --state profiles --key alice\n  \
savepoint get /data/savepoints/sp1 --state impressions --key 42,7 --user-key 1700000000000"
    )]
    Get {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        state: String,
        /// Flink sources: the operator (uid, name or id; default: the one holding --state).
        #[arg(long)]
        operator: Option<String>,
        #[arg(long)]
        key: String,
        /// Map state: one user key (default: all of the key's entries).
        #[arg(long)]
        user_key: Option<String>,
    },

    /// A savepoint from a job's checkpoint.
    #[command(
        after_help = "The target must not hold a savepoint; it appears whole or not at all.\n\nExamples:\n  \
savepoint create /data/jobs/join --checkpoint latest --to /data/savepoints/sp1\n  \
savepoint create s3://state/jobs/join --checkpoint 42 --to s3://state/savepoints/join-42"
    )]
    Create {
        job: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        to: String,
    },

    /// Check a new schema against a state's values (registry rules), then rewrite every value to it.
    #[command(
        after_help = "Refused changes print each incompatibility (rule and field path) and exit 1; \
nothing is written.\n\nExamples:\n  savepoint migrate /data/savepoints/sp1 --state profiles --schema profile-v3.avsc --dry-run\n  \
savepoint migrate /data/savepoints/sp1 --state profiles --schema profile-v3.avsc --to /data/savepoints/sp1-v3"
    )]
    Migrate {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        state: String,
        /// The new Avro schema (.avsc).
        #[arg(long)]
        schema: PathBuf,
        #[arg(long, required_unless_present = "dry_run")]
        to: Option<String>,
        /// Report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// One self-contained savepoint from a checkpoint chain or savepoint, values at their latest schema, expired entries dropped.
    #[command(
        after_help = "--now is required with --drop-expired: event-time TTL compares against the watermark, \
processing-time TTL against wall time; give the one that applies.\n\nExamples:\n  \
savepoint compact /data/jobs/join --to /data/savepoints/compacted\n  \
savepoint compact /data/savepoints/sp1 --to /data/savepoints/sp1-small --drop-expired --now 2026-11-27T00:00:00Z"
    )]
    Compact {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        to: String,
        #[arg(long, requires = "now")]
        drop_expired: bool,
        /// Entries expiring at or before this time (ms or RFC 3339) are dropped.
        #[arg(long)]
        now: Option<String>,
    },

    /// A local state directory a job can open (StateStore::open): how to put a job back to a past checkpoint.
    #[command(
        after_help = "With --parallelism P --index I only instance I's key groups are kept.\n\nExamples:\n  \
savepoint restore /data/jobs/join --checkpoint 41 --to /var/lib/join/state\n  \
savepoint restore /data/savepoints/sp1 --to /var/lib/join/state-3 --parallelism 4 --index 3\n  \
savepoint restore /data/jobs/join --checkpoint 41 --to /tmp/state-41 --claim   # roll the job back to 41"
    )]
    Restore {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        to: PathBuf,
        #[arg(long, requires = "index")]
        parallelism: Option<u16>,
        #[arg(long, requires = "parallelism")]
        index: Option<u16>,
        /// Claim the checkpoint for its job (Flink's CLAIM mode): commit it again
        /// as the job's newest checkpoint under a new epoch, fencing a writer
        /// still running, so that rerunning the job resumes from it. Without
        /// it the job's checkpoints are not touched. Output the job committed
        /// after that checkpoint stays where it is.
        #[arg(long)]
        claim: bool,
    },

    /// Split a savepoint into P key-group ranges; --max-parallelism changes the key-group count.
    #[command(
        after_help = "Writes one savepoint whose files are split at the P instances' boundaries (its \
layout); each instance restores only its files. --max-parallelism recomputes every key's group.\n\nExamples:\n  \
savepoint rescale /data/savepoints/sp1 --parallelism 8 --to /data/savepoints/sp1-p8\n  \
savepoint rescale /data/savepoints/sp1 --parallelism 8 --max-parallelism 256 --to /data/savepoints/sp1-m256"
    )]
    Rescale {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        #[arg(long)]
        parallelism: u16,
        #[arg(long)]
        max_parallelism: Option<u16>,
        #[arg(long)]
        to: String,
    },

    /// Check every checksum and structural invariant; exit 1 naming each damaged file.
    #[command(
        after_help = "Examples:\n  savepoint verify /data/savepoints/sp1\n  savepoint verify s3://state/jobs/join --checkpoint latest"
    )]
    Verify {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
    },

    /// Per state, keys added, removed and changed between A and B (values shown); exit 1 if they differ.
    #[command(
        after_help = "Examples:\n  savepoint diff /data/savepoints/before /data/savepoints/after\n  \
savepoint diff /data/savepoints/before /data/savepoints/after --limit 100 --output json"
    )]
    Diff {
        a: String,
        b: String,
        /// Examples shown per state.
        #[arg(long, default_value = "20")]
        limit: usize,
    },

    /// What retention would delete from a job; a dry run unless --confirm.
    #[command(
        after_help = "Examples:\n  savepoint gc /data/jobs/join --retain 3\n  savepoint gc s3://state/jobs/join --retain 2 --older-than 2h --confirm"
    )]
    Gc {
        job: String,
        /// Newest complete checkpoints kept.
        #[arg(long, default_value = "3")]
        retain: usize,
        /// Unreferenced objects younger than this are kept (e.g. 1h, 30m).
        #[arg(long, default_value = "1h")]
        older_than: humantime::Duration,
        /// Delete for real.
        #[arg(long)]
        confirm: bool,
    },

    /// One operator's keyed state of an Apache Flink savepoint or checkpoint as a savepoint of this toolkit.
    #[command(
        after_help = "Values become standard Avro (Flink's AvroSerializer and primitive serializers are not), \
keys UTF-8 or order-preserving i64; states without an Avro form are listed as skipped. Then dump, diff, verify, \
migrate and compact work on the result.\n\nExamples:\n  savepoint convert /flink/savepoints/savepoint-1a2b3c --operator keyed-avro-state --to /data/savepoints/from-flink\n  \
savepoint convert /flink/ckpt/<job-id> --checkpoint latest --operator my-uid --to s3://state/savepoints/from-flink"
    )]
    Convert {
        src: String,
        #[command(flatten)]
        checkpoint: CheckpointArg,
        /// The operator: uid, name or 32-hex-digit id.
        #[arg(long)]
        operator: String,
        #[arg(long)]
        to: String,
    },

    /// Schema registry commands.
    #[command(subcommand)]
    Schema(SchemaCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    Json,
    Avro,
}
