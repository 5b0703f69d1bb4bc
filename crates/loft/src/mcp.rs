//! `loft mcp`: an MCP server on stdio acting as one identity (the protocol itself is in
//! loft-mcp). Two executables run it: `loft mcp`, and `loft-mcp`, a small executable holding
//! only this command, which `loft mcp` becomes (`exec`) when it sits beside `loft`.
//!
//! Why two: an agent framework starts one `loft mcp` per agent, and most of the resident memory
//! of a lone process is pages of its executable file. The one `loft` binary holds the whole
//! server, and the code `loft mcp` runs is scattered across it, so each page fault maps pages
//! of server code around it; `loft-mcp` holds only the client's code, packed together (issue
//! 14, docs/benchmarks.md "A small executable for `loft mcp`"). Both are built and installed by
//! the same `cargo install`; without the small one, `loft mcp` runs the command itself.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The small executable's file name, looked for beside `loft`.
pub const SMALL_EXECUTABLE: &str = "loft-mcp";

/// Set by `loft mcp` when it becomes the small executable: the version it expects, so a
/// `loft-mcp` left from another install is refused instead of serving an older protocol.
const EXPECT_VERSION: &str = "LOFT_MCP_EXPECT_VERSION";

/// `loft mcp`'s arguments: the server to talk to and the identity to act as.
#[derive(clap::Args)]
pub struct McpArgs {
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

/// Runs the command to its end: logs to stderr (stdout carries only MCP), on a current-thread
/// runtime (it serves one agent; worker threads would be stacks and allocator arenas for
/// nothing).
pub fn run(args: &McpArgs) -> ExitCode {
    if let Some(expected) = std::env::var_os(EXPECT_VERSION)
        && expected != env!("CARGO_PKG_VERSION")
    {
        eprintln!(
            "loft mcp: {} beside `loft` is version {}, `loft` is {}: install both from one build",
            SMALL_EXECUTABLE,
            env!("CARGO_PKG_VERSION"),
            expected.to_string_lossy()
        );
        return ExitCode::from(2);
    }
    crate::log_to_stderr("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loft mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(loft_mcp::run_stdio(&args.url, args.api_key.as_deref()))
}

/// When this process is `loft mcp ARGS...`, becomes the small executable beside this one if
/// there is one. Returns only when there is none (or it could not be started), or for another
/// command; then the caller runs the command itself.
pub fn become_small_executable() {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [command, rest @ ..] = argv.as_slice() else { return };
    if command != "mcp" {
        return;
    }
    let Some(small) = beside_this_executable() else { return };
    // `exec` returns only on failure; then `loft mcp` runs in this process. The name it is
    // given is the command the user typed, for its `--help`, its errors and `ps`.
    let _ = std::process::Command::new(&small)
        .arg0("loft mcp")
        .args(rest)
        .env(EXPECT_VERSION, env!("CARGO_PKG_VERSION"))
        .exec();
}

fn beside_this_executable() -> Option<PathBuf> {
    let this = std::env::current_exe().ok()?;
    let small = this.parent()?.join(SMALL_EXECUTABLE);
    is_executable_file(&small).then_some(small)
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
