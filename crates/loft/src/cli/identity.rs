//! `loft identity ...`: operator (or parent identity) management of agent identities.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use loft_core::identity::Identity;
use loft_core::oversight::{ModeRequest, OversightMode};
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
    /// Set an identity's oversight mode (operator): `read_only`, `gated_all`,
    /// `gated_send`, `monitored` or `autonomous`.
    Mode {
        /// The identity's id (`idt_...`).
        id: String,
        /// The new mode.
        #[arg(value_parser = parse_mode)]
        mode: OversightMode,
    },
    /// List the open requests of identities for another oversight mode (operator), newest
    /// first. Grant one with `loft identity mode ID MODE` (which clears it), or deny it with
    /// `loft identity deny-mode ID --reason TEXT`.
    ModeRequests {
        /// Requests per page (1 to 200; the server's default is 50).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: Option<u32>,
        /// Fetch every page, following the cursor.
        #[arg(long, conflicts_with = "cursor")]
        all: bool,
        /// Continue from the `next_cursor` of a previous page.
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// Deny an identity's open request for another oversight mode (operator); it reads the
    /// reason in whoami until it asks again.
    DenyMode {
        /// The identity's id (`idt_...`).
        id: String,
        /// Why, in a sentence the agent can act on (1 to 1000 characters).
        #[arg(long, required = true, value_name = "TEXT")]
        reason: String,
    },
    /// Pause an identity at once, on every node (operator; the kill switch): its keys are
    /// refused until it is resumed; mail sent to it is kept.
    Pause {
        /// The identity's id (`idt_...`).
        id: String,
    },
    /// Resume a paused identity (operator).
    Resume {
        /// The identity's id (`idt_...`).
        id: String,
    },
    /// Show or set an identity's sending caps, first-contact setting, exfiltration guard and
    /// internal-mail gate (operator to set).
    ///
    /// Without flags: shows them with what the identity used. `none` removes a cap; a flag
    /// left out keeps its value. A send over a cap is refused with 429 `cap_reached` and the
    /// seconds to wait.
    Caps {
        /// The identity's id (`idt_...`).
        id: String,
        #[command(flatten)]
        caps: CapFlags,
        /// `hold`: mail to an address the identity never exchanged mail with waits for a
        /// reviewer, whatever its mode; `allow` (the default) sends it as the mode says.
        #[arg(long, value_name = "allow|hold", value_parser = parse_first_contact)]
        first_contact: Option<api::FirstContact>,
        /// `off`: the exfiltration guard stops looking for the identity's vault values in its
        /// outgoing mail; `on` (the default) holds a mail that quotes one, whatever the mode.
        #[arg(long, value_name = "on|off", value_parser = |s: &str| loft_core::caps::Guard::parse(s).map_err(|e| e.to_string()))]
        exfiltration_guard: Option<loft_core::caps::Guard>,
        /// `exempt`: mail between the identity and other identities of this server skips its
        /// mode's gate (rules, caps, first contact and the guard still apply); `gated` (the
        /// default) gates it like mail to the outside.
        #[arg(long, value_name = "gated|exempt", value_parser = |s: &str| loft_core::caps::InternalMail::parse(s).map_err(|e| e.to_string()))]
        internal_mail: Option<loft_core::caps::InternalMail>,
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
    /// Oversight mode: `read_only`, `gated_all`, `gated_send`, `monitored` or `autonomous`
    /// (default: the server's, normally `gated_send`).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    mode: Option<OversightMode>,
}

/// The caps flags of `loft identity caps` and `loft caps`.
#[derive(Debug, Clone, Args)]
pub(super) struct CapFlags {
    /// Mails composed in the last hour (1 to 1000000), or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_cap)]
    pub(super) per_hour: Option<CapValue>,
    /// Mails composed in the last 24 hours (1 to 1000000), or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_cap)]
    pub(super) per_day: Option<CapValue>,
    /// Addresses written to for the first time in the last 24 hours (1 to 1000000), or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_cap)]
    pub(super) new_recipients_per_day: Option<CapValue>,
}

impl CapFlags {
    pub(super) fn is_empty(&self) -> bool {
        self.per_hour.is_none() && self.per_day.is_none() && self.new_recipients_per_day.is_none()
    }
}

/// A cap on the command line: a number, or `none` to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CapValue(pub(super) Option<u64>);

pub(super) fn parse_cap(s: &str) -> Result<CapValue, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(CapValue(None));
    }
    s.parse::<u64>()
        .map(|n| CapValue(Some(n)))
        .map_err(|_| "expected a whole number, or `none` to remove the cap".to_owned())
}

fn parse_first_contact(s: &str) -> Result<api::FirstContact, String> {
    api::FirstContact::parse(s).map_err(|e| format!("{e}; {}", e.hint().unwrap_or_default()))
}

pub(super) fn parse_mode(s: &str) -> Result<OversightMode, String> {
    OversightMode::parse(s).map_err(|e| format!("{e}; {}", e.hint().unwrap_or_default()))
}

/// Also `loft reviewer list`'s.
#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Include revoked identities.
    #[arg(long)]
    pub(super) include_revoked: bool,
    /// Identities per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    pub(super) limit: Option<u32>,
    /// Fetch every page, following the cursor.
    #[arg(long, conflicts_with = "cursor")]
    pub(super) all: bool,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    pub(super) cursor: Option<String>,
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
                oversight_mode: a.mode,
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
                oversight_mode: None,
            };
            ctx.show(&client, api::update_identity(&id, &req), format::identity)
                .await
        }
        IdentityCommand::Mode { id, mode } => {
            let req = api::UpdateIdentityRequest {
                oversight_mode: Some(mode),
                ..Default::default()
            };
            ctx.show(&client, api::update_identity(&id, &req), format::identity)
                .await
        }
        IdentityCommand::ModeRequests { limit, all, cursor } => mode_requests(&ctx, &client, limit, all, cursor).await,
        IdentityCommand::DenyMode { id, reason } => {
            let req = api::DenyModeRequest { reason };
            ctx.show(&client, api::deny_mode_request(&id, &req), format::mode_request)
                .await
        }
        IdentityCommand::Pause { id } => ctx.show(&client, api::pause_identity(&id), format::identity).await,
        IdentityCommand::Resume { id } => ctx.show(&client, api::resume_identity(&id), format::identity).await,
        IdentityCommand::Caps {
            id,
            caps,
            first_contact,
            exfiltration_guard,
            internal_mail,
        } => {
            if caps.is_empty() && first_contact.is_none() && exfiltration_guard.is_none() && internal_mail.is_none() {
                return ctx.show(&client, api::identity_caps(&id), format::sending).await;
            }
            let req = api::SetIdentityCapsRequest {
                mails_per_hour: caps.per_hour.map(|c| c.0),
                mails_per_day: caps.per_day.map(|c| c.0),
                new_recipients_per_day: caps.new_recipients_per_day.map(|c| c.0),
                first_contact,
                exfiltration_guard,
                internal_mail,
            };
            ctx.show(&client, api::set_identity_caps(&id, &req), format::sending)
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
    let q = api::ListIdentitiesParams {
        include_revoked: a.include_revoked,
        limit: a.limit,
        cursor: None,
    };
    show_list(
        ctx,
        client,
        (a.all, a.cursor),
        "identities",
        |cursor| api::list_identities(&api::ListIdentitiesParams { cursor, ..q.clone() }),
        |items: &[Identity]| format::identities(items),
    )
    .await
}

async fn mode_requests(
    ctx: &Ctx,
    client: &loft_client::Client,
    limit: Option<u32>,
    all: bool,
    cursor: Option<String>,
) -> CmdResult {
    let now = loft_core::time::Clock::now(&loft_core::time::SystemClock);
    let q = api::ListModeRequestsParams { limit, cursor: None };
    show_list(
        ctx,
        client,
        (all, cursor),
        "requests",
        |cursor| api::list_mode_requests(&api::ListModeRequestsParams { cursor, ..q.clone() }),
        |items: &[ModeRequest]| format::mode_requests(items, now),
    )
    .await
}

/// Shows a list: one page from `start` (with a note naming the cursor of the next, if any,
/// as `more NOUN: ...`), or with `all` every page from `start` on. With `--json` the server's
/// items are printed as they came. `page` makes the request for the page at a cursor.
pub(super) async fn show_list<T: serde::de::DeserializeOwned, R>(
    ctx: &Ctx,
    client: &loft_client::Client,
    (all, start): (bool, Option<String>),
    noun: &str,
    mut page: impl FnMut(Option<String>) -> loft_client::Call<R>,
    human: impl Fn(&[T]) -> String,
) -> CmdResult {
    if !all {
        let value = client.call_json(page(start)).await?;
        if ctx.json() {
            Ctx::print_json(&value);
        } else {
            let page: Page<T> = decode(client, value)?;
            emit(&human(&page.items));
            if let Some(c) = page.next_cursor {
                note(&format!("more {noun}: add --cursor {c} (or use --all)"));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let items = every_page(client, start, page).await?;
    if ctx.json() {
        Ctx::print_json(&serde_json::json!({ "items": items, "next_cursor": null }));
    } else {
        let all: Vec<T> = decode(client, serde_json::Value::Array(items))?;
        emit(&human(&all));
    }
    Ok(ExitCode::SUCCESS)
}

/// The items of every page of a list, as the server sent them, from `cursor` on; `call` makes
/// the request for one page. Stops when there is no next page (or the server repeats a cursor).
pub(super) async fn every_page<T>(
    client: &loft_client::Client,
    mut cursor: Option<String>,
    mut call: impl FnMut(Option<String>) -> loft_client::Call<T>,
) -> Result<Vec<serde_json::Value>, super::CliError> {
    let mut items: Vec<serde_json::Value> = Vec::new();
    loop {
        let value = client.call_json(call(cursor.clone())).await?;
        let next = value
            .get("next_cursor")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match value.get("items").and_then(serde_json::Value::as_array) {
            Some(page) => items.extend(page.iter().cloned()),
            None => return Err(decode_error(client, "the answer has no `items` list")),
        }
        match next {
            Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
            _ => return Ok(items),
        }
    }
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
    fn caps_flags() {
        let IdentityCommand::Caps {
            caps, first_contact, ..
        } = identity(&["caps", "idt_x"])
        else {
            panic!()
        };
        assert!(caps.is_empty() && first_contact.is_none());
        let IdentityCommand::Caps {
            caps, first_contact, ..
        } = identity(&[
            "caps",
            "idt_x",
            "--per-hour",
            "5",
            "--per-day",
            "none",
            "--first-contact",
            "hold",
        ])
        else {
            panic!()
        };
        assert_eq!(caps.per_hour, Some(CapValue(Some(5))));
        assert_eq!(caps.per_day, Some(CapValue(None)));
        assert_eq!(caps.new_recipients_per_day, None);
        assert_eq!(first_contact, Some(api::FirstContact::Hold));
        assert!(parse(&["identity", "caps", "idt_x", "--per-hour", "-1"]).is_err());
        assert!(parse(&["identity", "caps", "idt_x", "--first-contact", "maybe"]).is_err());
    }

    #[test]
    fn mode_requests_and_denials() {
        let IdentityCommand::ModeRequests { all, .. } = identity(&["mode-requests", "--all"]) else {
            panic!()
        };
        assert!(all);
        assert!(
            parse(&["identity", "deny-mode", "idt_x"]).is_err(),
            "a denial needs a reason"
        );
        let IdentityCommand::DenyMode { id, reason } = identity(&["deny-mode", "idt_x", "--reason", "not yet"]) else {
            panic!()
        };
        assert_eq!((id.as_str(), reason.as_str()), ("idt_x", "not yet"));
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
