//! `stream-join`: run the join, generate its input, validate its output.
//! Exit codes: 0 ok, 1 validation found differences, 2 usage or input error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use join_operator::gen::{self, GenConfig, Size};
use join_operator::job::{self, RunArgs};
use join_operator::oracle::OracleConfig;
use join_operator::validate::{self, ValidateConfig};

// Events are allocated by the reading thread and freed by the worker that
// expires them: glibc's malloc serializes that cross-thread traffic (about a
// tenth of the job's CPU); mimalloc frees into the owning thread's heap.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stream-join",
    version,
    about = "Event-time interval join of impressions and plays"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the streaming join with checkpoints.
    Run(Box<RunArgs>),
    /// Write impressions.csv and plays.csv, deterministic from a seed.
    Gen(GenArgs),
    /// Compare committed output with the batch join of the same input.
    Validate(ValidateArgs),
}

#[derive(clap::Args)]
struct GenArgs {
    /// Workload size of workload.md (overridden by explicit counts).
    #[arg(long, value_enum, default_value = "small")]
    size: Size,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Explicit number of impressions.
    #[arg(long, value_name = "N")]
    impressions: Option<u64>,
    /// Explicit number of plays (default: a fifth of the impressions).
    #[arg(long, value_name = "N")]
    plays: Option<u64>,
    /// Out-of-order bound D in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    out_of_order_ms: i64,
    /// Share of events made late on purpose.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    late_fraction: f64,
    /// Event-time span of the impressions (default 8.64 ms per impression, at least 2 h).
    #[arg(long, value_name = "MS")]
    span_ms: Option<i64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ValidateArgs {
    #[arg(long)]
    impressions: PathBuf,
    #[arg(long)]
    plays: PathBuf,
    /// The job's output folder.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    out_of_order_ms: i64,
    #[arg(long, value_name = "MS", default_value_t = 0)]
    allowed_lateness_ms: i64,
    /// How many differing rows of each kind to list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    max_listed: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Gen(args) => gen_files(&args),
        Command::Validate(args) => validate_output(&args),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("stream-join: {}", one_line(&message.to_string()));
    ExitCode::from(2)
}

fn run(args: &RunArgs) -> ExitCode {
    let code = match job::run(args) {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("stream-join: {}", one_line(&e.to_string()));
            2
        }
    };
    job::exit_now(code)
}

fn gen_files(args: &GenArgs) -> ExitCode {
    let mut cfg = GenConfig::for_size(args.size, args.seed);
    if let Some(n) = args.impressions {
        cfg.impressions = n;
        cfg.plays = n / 5;
    }
    if let Some(m) = args.plays {
        cfg.plays = m;
    }
    cfg.out_of_order_ms = args.out_of_order_ms;
    cfg.late_fraction = args.late_fraction;
    cfg.span_ms = args.span_ms;
    match gen::generate(&cfg, &args.out) {
        Ok(s) if args.json => {
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            println!(
                "wrote {} impressions ({} late) to {} and {} plays ({} late) to {}",
                s.impressions,
                s.late_impressions,
                s.impressions_path.display(),
                s.plays,
                s.late_plays,
                s.plays_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn validate_output(args: &ValidateArgs) -> ExitCode {
    if !args.output.is_dir() {
        return fail(format!(
            "validate: output folder {} does not exist",
            args.output.display()
        ));
    }
    let cfg = ValidateConfig {
        impressions: args.impressions.clone(),
        plays: args.plays.clone(),
        output: args.output.clone(),
        oracle: OracleConfig {
            out_of_order_ms: args.out_of_order_ms,
            allowed_lateness_ms: args.allowed_lateness_ms,
        },
        max_listed: args.max_listed,
    };
    let report = match validate::validate(&cfg) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(format!("validate: cannot render the report: {e}")),
        }
    } else {
        print!("{}", validate::render_table(&report));
    }
    if report.equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Errors are one line, even when a store's error embeds a multi-line body
/// (S3 XML).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
