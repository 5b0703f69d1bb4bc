//! `loft events`: the caller's events, a page at a time or followed as they happen.
//!
//! With an identity key: its own events; with the operator key: everyone's (`--identity`
//! narrows them).

use std::process::ExitCode;

use clap::Args;
use loft_client::api;
use loft_core::events::Event;

use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, emit};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    /// Keep the stream open and print events as they happen (until interrupted). Without
    /// `--after`, starts with the next new event.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only events after this one (`evt_42`).
    #[arg(long, value_name = "EVENT")]
    after: Option<String>,
    /// Only this type (`message.received`, or an area: `approval.*`); repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only this identity's events (`idt_...`; needs the operator key).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Events per page (1 to 1000; the server's default is 100). Not with `--follow`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000), conflicts_with = "follow")]
    limit: Option<u32>,
}

pub async fn run(args: EventsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let need = if args.identity.is_some() {
        KeyNeed::OperatorOnly
    } else {
        KeyNeed::IdentityFirst
    };
    let client = ctx.client(need)?;
    let q = api::EventParams {
        after: args.after,
        types: (!args.types.is_empty()).then(|| args.types.join(",")),
        identity: args.identity,
        limit: args.limit,
    };
    if !args.follow {
        return ctx
            .show(&client, api::list_events(&q), |p| {
                let mut out: Vec<String> = p.items.iter().map(line).collect();
                if out.is_empty() {
                    out.push("no events".into());
                }
                out.push(format!("next: --after {}", p.next_after));
                out.join("\n")
            })
            .await;
    }
    let mut stream = client.event_stream(&q, None).await?;
    while let Some(e) = stream.next().await? {
        if ctx.json() {
            emit(&serde_json::to_string(&e).unwrap_or_default());
        } else {
            emit(&line(&e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One event on one line: id, time, type, whose, payload.
fn line(e: &Event) -> String {
    format!(
        "{}  {}  {:<18}  {}  {}",
        e.id,
        e.at,
        e.kind.as_str(),
        e.identity.as_ref().map_or("-", |i| i.as_str()),
        e.payload
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;

    #[test]
    fn follow_and_filters_parse() {
        let ClientCommand::Events(a) = parse(&[
            "events",
            "--follow",
            "--type",
            "message.received",
            "--type",
            "approval.*",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(a.follow);
        assert_eq!(a.types, ["message.received", "approval.*"]);
        assert!(parse(&["events", "--follow", "--limit", "5"]).is_err());
        assert!(parse(&["events", "--limit", "0"]).is_err());
    }
}
