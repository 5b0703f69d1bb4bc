//! `loft drafts ...`: compose a mail over several commands, then send it (as an identity, with
//! its API key). Sending a draft is exactly a send (or, for a draft that answers a message, a
//! reply), and the draft is gone once it is sent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use loft_core::drafts::Draft;
use loft_core::service::Page;

use super::format::{self, Fields, Table, clean, ellipsize, time};
use super::{CliError, CmdResult, Ctx, GlobalArgs, KeyNeed, decode, emit, note};
use loft_client::api;

#[derive(Debug, Args)]
pub struct DraftsArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: DraftsCommand,
}

#[derive(Debug, Subcommand)]
enum DraftsCommand {
    /// List your drafts, newest first.
    List {
        /// Drafts per page (1 to 200; the server's default is 50).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: Option<u32>,
        /// Continue from the `next_cursor` of a previous page.
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// Show one draft whole.
    Show {
        /// The draft's id (`drf_...`).
        id: String,
    },
    /// Start a draft; every field is optional, recipients are checked only when it is sent.
    Create(DraftFields),
    /// Change a draft: only the options given (a repeated --to replaces the recipients).
    Update {
        /// The draft's id (`drf_...`).
        id: String,
        #[command(flatten)]
        fields: DraftFields,
        /// Remove the HTML body.
        #[arg(long, conflicts_with = "html")]
        no_html: bool,
        /// Make the draft a new conversation instead of a reply.
        #[arg(long, conflicts_with = "reply_to")]
        no_reply_to: bool,
        /// Remove the draft's files.
        #[arg(long, conflicts_with = "attach")]
        no_attachments: bool,
    },
    /// Send a draft, exactly as `loft mail send` (or `mail reply`) would; the draft is gone
    /// afterwards.
    Send {
        /// The draft's id (`drf_...`).
        id: String,
        /// A unique string for this intended send: running the command again with the same
        /// key returns the first result instead of sending twice (keys live 24 hours).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Send later, at this time (RFC 3339; at most a year ahead).
        #[arg(long, value_name = "TIME")]
        send_at: Option<String>,
    },
    /// Delete a draft.
    Delete {
        /// The draft's id (`drf_...`).
        id: String,
    },
}

#[derive(Debug, Args)]
struct DraftFields {
    /// A recipient; repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    to: Vec<String>,
    /// A copy recipient; repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    cc: Vec<String>,
    /// A blind copy recipient; repeat for several.
    #[arg(long, value_name = "ADDRESS")]
    bcc: Vec<String>,
    /// The subject line.
    #[arg(long, short = 's')]
    subject: Option<String>,
    /// The plain-text body.
    #[arg(long, conflicts_with = "text_file")]
    text: Option<String>,
    /// Read the plain-text body from a file (`-` for standard input).
    #[arg(long, value_name = "PATH")]
    text_file: Option<PathBuf>,
    /// An HTML body.
    #[arg(long, value_name = "HTML")]
    html: Option<String>,
    /// The message this draft answers (`msg_...`): sending it is then a reply.
    #[arg(long, value_name = "ID")]
    reply_to: Option<String>,
    /// Attach a file (its name is the file's name, its type guessed from the extension);
    /// repeat for several. On `update`, the files given replace the draft's.
    #[arg(long = "attach", value_name = "FILE")]
    attach: Vec<PathBuf>,
}

impl DraftFields {
    fn text(&self) -> Result<Option<String>, CliError> {
        if let Some(t) = &self.text {
            return Ok(Some(t.clone()));
        }
        let Some(p) = self.text_file.as_deref() else {
            return Ok(None);
        };
        let bytes = if p == Path::new("-") {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut s)
                .map_err(|e| CliError::usage(format!("cannot read the body from standard input: {e}")))?;
            s
        } else {
            std::fs::read(p).map_err(|e| CliError::usage(format!("cannot read --text-file {}: {e}", p.display())))?
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| CliError::usage(format!("--text-file {} is not UTF-8 text", p.display())))
    }
}

pub async fn run(args: DraftsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Identity)?;
    match args.command {
        DraftsCommand::List { limit, cursor } => {
            let value = client
                .call_json(api::list_drafts(&api::ListDraftsParams { limit, cursor }))
                .await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let page: Page<Draft> = decode(&client, value)?;
                emit(&drafts(&page.items));
                if let Some(c) = page.next_cursor {
                    note(&format!("more drafts: add --cursor {c}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DraftsCommand::Show { id } => ctx.show(&client, api::get_draft(&id), draft).await,
        DraftsCommand::Create(f) => {
            let req = api::CreateDraftRequest {
                text: f.text()?.unwrap_or_default(),
                to: f.to,
                cc: f.cc,
                bcc: f.bcc,
                subject: f.subject.unwrap_or_default(),
                html: f.html,
                reply_to: f.reply_to,
                attachments: super::mail::read_attachments(&f.attach)?,
            };
            ctx.show(&client, api::create_draft(&req), draft).await
        }
        DraftsCommand::Update {
            id,
            fields: f,
            no_html,
            no_reply_to,
            no_attachments,
        } => {
            let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let attachments = if no_attachments {
                Some(vec![])
            } else if f.attach.is_empty() {
                None
            } else {
                Some(super::mail::read_attachments(&f.attach)?)
            };
            let req = api::UpdateDraftRequest {
                text: f.text()?,
                to: list(f.to),
                cc: list(f.cc),
                bcc: list(f.bcc),
                subject: f.subject,
                html: if no_html { Some(String::new()) } else { f.html },
                reply_to: if no_reply_to { Some(String::new()) } else { f.reply_to },
                attachments,
            };
            ctx.show(&client, api::update_draft(&id, &req), draft).await
        }
        DraftsCommand::Send {
            id,
            idempotency_key,
            send_at,
        } => {
            let req = api::SendDraftRequest {
                idempotency_key,
                send_at,
            };
            ctx.show(&client, api::send_draft(&id, &req), format::sent).await
        }
        DraftsCommand::Delete { id } => {
            client.call_bytes(api::delete_draft(&id)).await?;
            if !ctx.json() {
                emit(&format!("deleted draft {}\n", clean(&id)));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn addresses(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter().map(|a| clean(a)).collect::<Vec<_>>().join(", ")
    }
}

fn drafts(items: &[Draft]) -> String {
    if items.is_empty() {
        return "no drafts\n".into();
    }
    let mut t = Table::new(&["ID", "UPDATED", "TO", "SUBJECT"]);
    for d in items {
        t.row(vec![
            d.id.to_string(),
            time(d.updated_at),
            ellipsize(&addresses(&d.to), 40),
            ellipsize(&clean(&d.subject), 60),
        ]);
    }
    t.render()
}

fn draft(d: &Draft) -> String {
    let mut f = Fields::default();
    f.add("id", d.id.to_string()).add("to", addresses(&d.to));
    if !d.cc.is_empty() {
        f.add("cc", addresses(&d.cc));
    }
    if !d.bcc.is_empty() {
        f.add("bcc", addresses(&d.bcc));
    }
    f.add("subject", clean(&d.subject));
    if let Some(r) = &d.reply_to {
        f.add("reply to", r.to_string());
    }
    f.add("created", time(d.created_at)).add("updated", time(d.updated_at));
    let mut out = f.render();
    out.push('\n');
    out.push_str(format::clean_body(&d.text).trim_end());
    out.push('\n');
    if d.html.is_some() {
        out.push_str("(with an HTML body)\n");
    }
    for a in &d.attachments {
        let _ = writeln!(
            out,
            "attachment: {} ({}, {} bytes)",
            clean(a.name.as_deref().unwrap_or("-")),
            a.content_type,
            a.size
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn drafts_cmd(args: &[&str]) -> DraftsCommand {
        let mut all = vec!["drafts"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Drafts(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags() {
        let DraftsCommand::Create(f) = drafts_cmd(&["create", "--to", "a@x.io", "-s", "Hi"]) else {
            panic!()
        };
        assert_eq!((f.to.len(), f.subject.as_deref()), (1, Some("Hi")));
        let DraftsCommand::Update { no_html, .. } = drafts_cmd(&["update", "drf_x", "--no-html"]) else {
            panic!()
        };
        assert!(no_html);
        assert!(parse(&["drafts", "update", "drf_x", "--html", "x", "--no-html"]).is_err());
        let DraftsCommand::Send { idempotency_key, .. } = drafts_cmd(&["send", "drf_x", "--idempotency-key", "k"])
        else {
            panic!()
        };
        assert_eq!(idempotency_key.as_deref(), Some("k"));
    }
}
