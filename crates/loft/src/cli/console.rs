//! `loft console ...`: the web console's people. `invite ID` prints a one-time link with which a
//! reviewer sets their console password (operator key).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use loft_client::{Client, api};

use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, decode, emit};

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: ConsoleCommand,
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    /// Print a one-time link for a reviewer (an identity holding `oversight`) to set their
    /// console password. It works once, for seven days; a new link replaces the previous one.
    Invite {
        /// The reviewer's identity id (`idt_...`).
        id: String,
    },
}

/// The line that hands a person their invite link.
pub fn invite_line(client: &Client, link: &api::ConsoleInviteLink) -> String {
    format!(
        "Console sign-in for {}: open {}{} once to set a password (the link expires at {}).",
        link.address,
        client.base_url().trim_end_matches('/'),
        link.path,
        link.expires_at
    )
}

pub async fn run(args: ConsoleArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Operator)?;
    match args.command {
        ConsoleCommand::Invite { id } => {
            let value = client.call_json(api::console_invite(&id)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let link: api::ConsoleInviteLink = decode(&client, value)?;
                emit(&invite_line(&client, &link));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
