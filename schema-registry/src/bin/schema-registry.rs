//! `schema-registry serve`: the Confluent-compatible REST server over a folder.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use schema_registry::{server, FolderStorage, Registry, SchemaRegistry};

#[derive(Parser)]
#[command(
    name = "schema-registry",
    about = "Avro schema registry with a Confluent-compatible REST API"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the REST API; prints `listening on http://ADDR` once bound.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
        /// Folder holding the registry (created if missing).
        #[arg(long)]
        storage: PathBuf,
        /// Largest accepted request body, in bytes.
        #[arg(long, default_value_t = server::DEFAULT_MAX_BODY)]
        max_body_bytes: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            addr,
            storage,
            max_body_bytes,
        } => {
            let registry: Arc<dyn SchemaRegistry> = match FolderStorage::open(&storage)
                .map_err(schema_registry::RegistryError::from)
                .and_then(Registry::new)
            {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    eprintln!(
                        "error: cannot open registry folder {}: {e}",
                        storage.display()
                    );
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            let res = rt.block_on(server::serve(addr, registry, max_body_bytes, |bound| {
                println!("listening on http://{bound}");
                let _ = std::io::stdout().flush();
            }));
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: serving on {addr}: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
