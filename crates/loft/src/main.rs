//! The `loft` binary: `loft serve` runs the server; `loft backup` and `loft restore` act on a
//! data dir on this machine; every other subcommand is a client of a running server over REST
//! (like the Vault or kubectl CLIs).
//!
//! This is the only crate that depends on every other one: it parses the command line,
//! loads configuration once, picks the storage backend and wires the doors together.

mod backup;
mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loft::serve;

/// The server allocates many small short-lived values per request (JSON, ids, rows); mimalloc's
/// per-thread free lists serve them for less CPU than glibc's malloc (docs/benchmarks.md). Only
/// this executable: `loft-mcp` keeps the system allocator, which costs it less memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "loft", version, about = "Identities, mail, audit and oversight for AI agents", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process, at start-up: boxing would buy nothing"
)]
enum Command {
    /// Run the server: HTTP API (/v0) and its description, MCP endpoint (/mcp), and later SMTP.
    Serve(serve::ServeCommand),
    /// Run an MCP server on stdio, acting as the identity whose API key it is given (for agent frameworks).
    Mcp(loft::mcp::McpArgs),
    /// Take a consistent snapshot of a SQLite deployment's data dir (database, vault and operator
    /// key files) into a new directory, while the server keeps running.
    Backup(backup::BackupArgs),
    /// Restore a `loft backup` directory into a new data dir, checking the vault master keys
    /// and the audit chain before declaring it good.
    Restore(backup::RestoreArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    // `loft mcp` becomes the small `loft-mcp` beside this executable before anything else is
    // set up (loft::mcp says why); it returns here only when there is none.
    loft::mcp::become_small_executable();
    match Cli::parse().command {
        Command::Mcp(args) => loft::mcp::run(&args),
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Backup(args) => block_on(backup::run_backup(args)),
        Command::Restore(args) => block_on(backup::run_restore(args)),
        Command::Client(cmd) => block_on(cli::run(cmd)),
    }
}

/// Runs a command on the multi-thread runtime (`loft mcp` has its own, current-thread one).
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("loft: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
