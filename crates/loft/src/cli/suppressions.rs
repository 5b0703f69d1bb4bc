//! `loft suppressions ...`: the suppression list of outbound SMTP (operator): addresses whose
//! servers refused mail for good, to which sends are refused until lifted (docs/smtp.md).

use clap::{Args, Subcommand};

use super::identity::show_list;
use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, format};
use loft_client::api;

#[derive(Debug, Args)]
pub struct SuppressionsArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: SuppressionsCommand,
}

#[derive(Debug, Subcommand)]
enum SuppressionsCommand {
    /// List the suppressed addresses, in address order, with the reply that refused each.
    List {
        /// Addresses per page (1 to 200; the server's default is 50).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: Option<u32>,
        /// Fetch every page, following the cursor.
        #[arg(long, conflicts_with = "cursor")]
        all: bool,
        /// Continue from the `next_cursor` of a previous page.
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// Lift a suppression: mail to the address is accepted again.
    Remove {
        /// The suppressed address, e.g. `gone@example.net`.
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
}

pub async fn run(args: SuppressionsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::OperatorOnly)?;
    match args.command {
        SuppressionsCommand::List { limit, all, cursor } => {
            let q = api::ListSuppressionsParams { limit, cursor: None };
            show_list(
                &ctx,
                &client,
                (all, cursor),
                "suppressions",
                |cursor| api::list_suppressions(&api::ListSuppressionsParams { cursor, ..q.clone() }),
                |items: &[api::Suppression]| format::suppressions(items),
            )
            .await
        }
        SuppressionsCommand::Remove { address } => {
            ctx.show(&client, api::remove_suppression(&address), |s| {
                format::suppression("lifted", s)
            })
            .await
        }
    }
}
