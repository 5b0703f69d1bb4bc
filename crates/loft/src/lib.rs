//! The server half of the `loft` binary, as a library: [`serve`] holds `loft serve`'s settings,
//! the backend choice and [`serve::app`], which wires the whole server without a listener;
//! [`mcp`] is `loft mcp`, shared with the small `loft-mcp` executable.
//!
//! The binaries (`main.rs`, `bin/loft-mcp.rs`) are its main users. The only other one is
//! `loft-bench`, which builds this very server in its own process to measure it; no other crate
//! may depend on this one (front doors and stores are composed here, never the other way round).

pub mod mcp;
pub mod serve;

/// Logs to stderr, filtered by `LOFT_LOG` or else by `default_filter`.
fn log_to_stderr(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
