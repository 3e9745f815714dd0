//! `savepoint`: parse, run, render. Errors are one line (causes with -v), exit 2.

use clap::Parser;
use savepoint_cli::cli::{Cli, Command};
use savepoint_cli::commands::{self, Ctx};
use savepoint_cli::schema_cmd::{self, OutputFormat};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let verbose = cli.verbose;
    let output = cli.output;
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, even when a store's error embeds a multi-line body
            // (S3 XML); -v prints the chain in full.
            eprintln!("error: {}", one_line(&e.to_string()));
            if verbose > 0 {
                let mut source = e.source();
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
                eprintln!("  detail: {e:?}");
            }
            2
        }
    };
    let _ = output;
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32, commands::CmdError> {
    if let Command::Schema(cmd) = cli.command {
        return schema_cmd::run(cmd, cli.output);
    }
    let ctx = Ctx {
        output: cli.output,
        work_dir: cli.work_dir.unwrap_or_else(std::env::temp_dir),
    };
    let outcome = commands::run(&ctx, cli.command)?;
    if !outcome.json.is_null() {
        match ctx.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome.json)?),
            OutputFormat::Table => print!("{}", outcome.table),
        }
    }
    Ok(outcome.code)
}

/// Collapses runs of whitespace (newlines included) into single spaces.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
