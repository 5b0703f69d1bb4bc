//! `loft identity ...`: operator (or parent identity) management of agent identities.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use loft_core::identity::Identity;
use loft_core::service::Page;

use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, decode, decode_error, emit, format, note};
use loft_client::api;

#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create an identity with its own address and API key (the key is printed once).
    Create(CreateArgs),
    /// List identities (the operator sees all; an identity key sees those it created).
    List(ListArgs),
    /// Show one identity.
    Show {
        /// The identity's id (`idt_...`).
        id: String,
    },
    /// Change an identity's display name or scopes.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["display_name", "scopes"])))]
    Update {
        /// The identity's id (`idt_...`).
        id: String,
        /// New display name; an empty string clears it.
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// New scopes, comma-separated (replaces the current ones), e.g. `mail:read,mail:send`.
        #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
        scopes: Option<Vec<String>>,
    },
    /// Revoke an identity, every identity it created, and all their keys.
    Revoke {
        /// The identity's id (`idt_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// What the agent is called, e.g. `researcher`.
    name: String,
    /// The part of the address before `@`; default: a slug of the name plus a random suffix.
    #[arg(long, value_name = "LOCAL")]
    local_part: Option<String>,
    /// A human-friendly name shown in the From header.
    #[arg(long, value_name = "NAME")]
    display_name: Option<String>,
    /// Scopes, comma-separated; default: mail:read, mail:send, mail:manage, keys:manage, vault:read, vault:write.
    #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Include revoked identities.
    #[arg(long)]
    include_revoked: bool,
    /// Identities per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Fetch every page, following the cursor.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

pub async fn run(args: IdentityArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Operator)?;
    match args.command {
        IdentityCommand::Create(a) => {
            let req = api::CreateIdentityRequest {
                name: a.name,
                display_name: a.display_name,
                local_part: a.local_part,
                scopes: a.scopes.map(trim_all),
            };
            ctx.show(&client, api::create_identity(&req), format::created_identity)
                .await
        }
        IdentityCommand::List(a) => list(&ctx, &client, a).await,
        IdentityCommand::Show { id } => ctx.show(&client, api::get_identity(&id), format::identity).await,
        IdentityCommand::Update {
            id,
            display_name,
            scopes,
        } => {
            let req = api::UpdateIdentityRequest {
                display_name,
                scopes: scopes.map(trim_all),
            };
            ctx.show(&client, api::update_identity(&id, &req), format::identity)
                .await
        }
        IdentityCommand::Revoke { id } => {
            ctx.show(&client, api::revoke_identity(&id), |r| format::revoked(&r.revoked))
                .await
        }
    }
}

pub(super) fn trim_all(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

async fn list(ctx: &Ctx, client: &loft_client::Client, a: ListArgs) -> CmdResult {
    let mut q = api::ListIdentitiesParams {
        include_revoked: a.include_revoked,
        limit: a.limit,
        cursor: a.cursor,
    };
    if !a.all {
        let value = client.call_json(api::list_identities(&q)).await?;
        if ctx.json() {
            Ctx::print_json(&value);
        } else {
            let page: Page<Identity> = decode(client, value)?;
            emit(&format::identities(&page.items));
            if let Some(c) = page.next_cursor {
                note(&format!("more identities: add --cursor {c} (or use --all)"));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Every page: with --json, keep the server's items as they came.
    let mut items: Vec<serde_json::Value> = Vec::new();
    loop {
        let value = client.call_json(api::list_identities(&q)).await?;
        let next = value
            .get("next_cursor")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match value.get("items").and_then(serde_json::Value::as_array) {
            Some(page) => items.extend(page.iter().cloned()),
            None => return Err(decode_error(client, "the answer has no `items` list")),
        }
        match next {
            Some(c) if Some(&c) != q.cursor.as_ref() => q.cursor = Some(c),
            _ => break,
        }
    }
    if ctx.json() {
        Ctx::print_json(&serde_json::json!({ "items": items, "next_cursor": null }));
    } else {
        let all: Vec<Identity> = decode(client, serde_json::Value::Array(items))?;
        emit(&format::identities(&all));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn identity(args: &[&str]) -> IdentityCommand {
        let mut all = vec!["identity"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Identity(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_parses_scopes_as_a_list() {
        let IdentityCommand::Create(a) = identity(&[
            "create",
            "researcher",
            "--scopes",
            "mail:read,mail:send",
            "--local-part",
            "r",
        ]) else {
            panic!()
        };
        assert_eq!(a.name, "researcher");
        assert_eq!(a.scopes.unwrap(), ["mail:read", "mail:send"]);
        assert_eq!(a.local_part.as_deref(), Some("r"));
        assert_eq!(trim_all(vec![" a ".into(), String::new()]), ["a"]);
    }

    #[test]
    fn update_needs_something_to_change() {
        assert!(parse(&["identity", "update", "idt_x"]).is_err());
        let IdentityCommand::Update {
            display_name, scopes, ..
        } = identity(&["update", "idt_x", "--display-name", ""])
        else {
            panic!()
        };
        assert_eq!(display_name.as_deref(), Some(""));
        assert!(scopes.is_none());
    }

    #[test]
    fn list_flags() {
        let IdentityCommand::List(a) = identity(&["list", "--all", "--include-revoked", "--limit", "5"]) else {
            panic!()
        };
        assert!(a.all && a.include_revoked);
        assert_eq!(a.limit, Some(5));
        assert!(parse(&["identity", "list", "--limit", "0"]).is_err());
        assert!(parse(&["identity", "list", "--all", "--cursor", "x"]).is_err());
    }
}
