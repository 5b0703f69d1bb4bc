//! `loft reviewer ...`: the people (or tools) who decide on held mail. A reviewer is an
//! identity holding the `oversight` scope (never with `mail:send`), in oversight mode
//! `read_only`; the operator creates it, and its key works with `loft approvals`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use loft_core::identity::Identity;
use loft_core::keys::Scope;
use loft_core::oversight::OversightMode;
use loft_core::service::Page;

use super::identity::{ListArgs, every_page};
use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, decode, emit, format, note};
use loft_client::{Client, api};

#[derive(Debug, Args)]
pub struct ReviewerArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: ReviewerCommand,
}

#[derive(Debug, Subcommand)]
enum ReviewerCommand {
    /// Create a reviewer: an identity with the scopes oversight, mail:read and keys:manage, in
    /// oversight mode `read_only`. Its API key is printed once; it can approve and reject held
    /// mail but never send.
    Create(CreateArgs),
    /// List reviewers: the identities holding the `oversight` scope.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Who reviews, e.g. `alice`.
    name: String,
    /// The part of the address before `@`; default: a slug of the name plus a random suffix.
    #[arg(long, value_name = "LOCAL")]
    local_part: Option<String>,
    /// A human-friendly name.
    #[arg(long, value_name = "NAME")]
    display_name: Option<String>,
}

fn is_reviewer(i: &Identity) -> bool {
    i.scopes.contains(Scope::Oversight)
}

pub async fn run(args: ReviewerArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Operator)?;
    match args.command {
        ReviewerCommand::Create(a) => {
            let req = api::CreateIdentityRequest {
                name: a.name,
                display_name: a.display_name,
                local_part: a.local_part,
                scopes: Some(Scope::REVIEWER.iter().map(|s| s.as_str().to_owned()).collect()),
                oversight_mode: Some(OversightMode::ReadOnly),
            };
            // The reviewer's key, then a one-time link to set a console password.
            let created = client.call_json(api::create_identity(&req)).await?;
            let typed: loft_core::identity::CreatedIdentity = decode(&client, created.clone())?;
            let invite = client
                .call_json(api::console_invite(typed.identity.id.as_str()))
                .await?;
            let link: api::ConsoleInviteLink = decode(&client, invite.clone())?;
            if ctx.json() {
                let mut v = created;
                if let Some(o) = v.as_object_mut() {
                    o.insert("console_invite".into(), invite);
                }
                Ctx::print_json(&v);
            } else {
                emit(&format::created_reviewer(&typed));
                emit(&super::console::invite_line(&client, &link));
            }
            Ok(ExitCode::SUCCESS)
        }
        ReviewerCommand::List(a) => list(&ctx, &client, a).await,
    }
}

/// The reviewers among `items` (server JSON), decoded, with their JSON as the server sent it.
fn reviewers(
    client: &Client,
    items: Vec<serde_json::Value>,
) -> Result<(Vec<Identity>, Vec<serde_json::Value>), super::CliError> {
    let mut typed = Vec::new();
    let mut raw = Vec::new();
    for v in items {
        let i: Identity = decode(client, v.clone())?;
        if is_reviewer(&i) {
            typed.push(i);
            raw.push(v);
        }
    }
    Ok((typed, raw))
}

/// Lists identities and keeps the reviewers (the server has no scope filter).
async fn list(ctx: &Ctx, client: &Client, a: ListArgs) -> CmdResult {
    let q = api::ListIdentitiesParams {
        include_revoked: a.include_revoked,
        limit: a.limit,
        cursor: a.cursor,
    };
    let (items, next) = if a.all {
        let items = every_page(client, q.cursor.clone(), |cursor| {
            api::list_identities(&api::ListIdentitiesParams { cursor, ..q.clone() })
        })
        .await?;
        (items, None)
    } else {
        let value = client.call_json(api::list_identities(&q)).await?;
        let page: Page<serde_json::Value> = decode(client, value)?;
        (page.items, page.next_cursor)
    };
    let (typed, raw) = reviewers(client, items)?;
    if ctx.json() {
        Ctx::print_json(&serde_json::json!({ "items": raw, "next_cursor": next }));
    } else {
        emit(&format::reviewers(&typed));
        if let Some(c) = next {
            note(&format!(
                "more identities to look through: add --cursor {c} (or use --all)"
            ));
        } else if typed.is_empty() {
            note("create one with `loft reviewer create NAME`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn reviewer(args: &[&str]) -> ReviewerCommand {
        let mut all = vec!["reviewer"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Reviewer(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_takes_a_name_and_no_scopes() {
        let ReviewerCommand::Create(a) = reviewer(&["create", "alice", "--local-part", "alice"]) else {
            panic!()
        };
        assert_eq!((a.name.as_str(), a.local_part.as_deref()), ("alice", Some("alice")));
        // The scopes and mode are what make a reviewer: not negotiable here.
        assert!(parse(&["reviewer", "create", "alice", "--scopes", "mail:send"]).is_err());
        assert!(parse(&["reviewer", "create", "alice", "--mode", "autonomous"]).is_err());
    }

    #[test]
    fn list_flags_are_those_of_identity_list() {
        let ReviewerCommand::List(a) = reviewer(&["list", "--all", "--include-revoked"]) else {
            panic!()
        };
        assert!(a.all && a.include_revoked);
        assert!(parse(&["reviewer", "list", "--all", "--cursor", "x"]).is_err());
    }
}
