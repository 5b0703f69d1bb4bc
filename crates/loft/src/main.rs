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
    Mcp(McpArgs),
    /// Take a consistent snapshot of a SQLite deployment's data dir (database, vault and operator
    /// key files) into a new directory, while the server keeps running.
    Backup(backup::BackupArgs),
    /// Restore a `loft backup` directory into a new data dir, checking the vault master keys
    /// and the audit chain before declaring it good.
    Restore(backup::RestoreArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

/// `loft mcp`: the server to talk to and the identity to act as.
#[derive(clap::Args)]
struct McpArgs {
    /// Base URL of the Loft server.
    #[arg(long, env = "LOFT_URL", default_value = loft_mcp::DEFAULT_URL, value_name = "URL")]
    url: String,
    /// API key of the identity to act as (`loft_sk_...`). Prefer the environment variable: a flag
    /// is visible to other users in the process list.
    #[arg(long, env = "LOFT_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
}

impl std::fmt::Debug for McpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpArgs")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| ".."))
            .finish()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `loft mcp` serves one agent over stdio, one request at a time in practice: a
    // current-thread runtime spares it a worker thread per CPU (their stacks and allocator
    // arenas), which is most of its resident memory and part of its start-up (issue 14,
    // docs/benchmarks.md). The server and the other commands keep the multi-thread runtime.
    let mut builder = if matches!(cli.command, Command::Mcp(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loft: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Backup(args) => backup::run_backup(args).await,
            Command::Restore(args) => backup::run_restore(args).await,
            Command::Mcp(args) => {
                // stdout carries only MCP; logs go to stderr.
                let filter = tracing_subscriber::EnvFilter::try_from_env("LOFT_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    // Colour codes only on a terminal, never into a log file.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .try_init();
                loft_mcp::run_stdio(&args.url, args.api_key.as_deref()).await
            }
            Command::Client(cmd) => cli::run(cmd).await,
        }
    })
}
