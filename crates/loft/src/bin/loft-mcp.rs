//! `loft-mcp`: `loft mcp` alone, in a small executable (see `loft::mcp` for why). `loft mcp`
//! runs this when it is installed beside `loft`; an MCP client may also start it directly.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "loft-mcp",
    version,
    about = "Run an MCP server on stdio, acting as the identity whose API key it is given (for agent frameworks)."
)]
struct Cli {
    #[command(flatten)]
    args: loft::mcp::McpArgs,
}

fn main() -> ExitCode {
    loft::mcp::run(&Cli::parse().args)
}
