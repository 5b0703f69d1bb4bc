//! `loft approvals ...`: the reviewer's side of held mail: list what waits, read it whole,
//! approve (the mail is sent) or reject (with a reason the agent reads).
//!
//! Works with the operator key or a reviewer's key (an identity holding `oversight`, see
//! `loft reviewer create`); the operator key when both are set, as for `loft audit list`, so
//! that an agent's key left in `LOFT_API_KEY` does not get in the operator's way.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use loft_core::oversight::{Approval, ApprovalStatus};
use loft_core::service::{ApprovalView, BatchDecision};
use loft_core::time::{Clock as _, SystemClock, Timestamp};

use super::identity::show_list;
use super::{CliError, CmdResult, Ctx, GlobalArgs, KeyNeed, decode, emit, format, note, parse_duration_secs};
use loft_client::{Client, api};

/// The most ids the server decides in one batch request; more are sent in several.
const MAX_BATCH: usize = 100;

/// The longest `--older-than` the server takes: ten years.
const MAX_OLDER_THAN: i64 = 315_360_000;

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List held mail, newest first: pending approvals unless --status says otherwise.
    List(ListArgs),
    /// Show one held mail whole (headers, text and HTML bodies), why it is held, and any
    /// decision.
    Show {
        /// The approval's id (`apr_...`).
        id: String,
    },
    /// Approve held mail: it is sent to its recipients at once. Exits 1 if any id could not
    /// be approved (the others are approved regardless).
    Approve {
        /// One or more approval ids (`apr_...`).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Edit held mail before deciding: each option given replaces that part of the mail, which
    /// is checked as a send is. The agent sees the edited mail as it will be sent; approving
    /// sends this version. Only pending mail, never your own.
    Edit(EditArgs),
    /// Reject held mail: it is never sent, and the agent reads the reason. Exits 1 if any id
    /// could not be rejected (the others are rejected regardless).
    Reject {
        /// One or more approval ids (`apr_...`).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Why, in a sentence the agent can act on (1 to 1000 characters).
        #[arg(long, required = true, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["subject", "text", "text_file", "html", "html_file", "no_html", "to", "cc", "bcc"])))]
struct EditArgs {
    /// The approval's id (`apr_...`).
    id: String,
    /// The new subject.
    #[arg(long, short = 's')]
    subject: Option<String>,
    /// The new plain-text body.
    #[arg(long, conflicts_with = "text_file")]
    text: Option<String>,
    /// Read the new plain-text body from a file (`-` for standard input).
    #[arg(long, value_name = "PATH")]
    text_file: Option<PathBuf>,
    /// The new HTML body.
    #[arg(long, value_name = "HTML", conflicts_with_all = ["html_file", "no_html"])]
    html: Option<String>,
    /// Read the new HTML body from a file (`-` for standard input).
    #[arg(long, value_name = "PATH", conflicts_with = "no_html")]
    html_file: Option<PathBuf>,
    /// Remove the HTML version (the text alone is sent).
    #[arg(long)]
    no_html: bool,
    /// The new `to` recipients, replacing them all (repeat, or separate with commas).
    #[arg(long, value_name = "ADDRESS", value_delimiter = ',')]
    to: Option<Vec<String>>,
    /// The new `cc` recipients (an empty value removes them: `--cc ''`).
    #[arg(long, value_name = "ADDRESS", value_delimiter = ',', num_args = 0..=1, default_missing_value = "")]
    cc: Option<Vec<String>>,
    /// The new `bcc` recipients (an empty value removes them: `--bcc ''`).
    #[arg(long, value_name = "ADDRESS", value_delimiter = ',', num_args = 0..=1, default_missing_value = "")]
    bcc: Option<Vec<String>>,
    /// Approve it once edited: the edited mail is sent at once.
    #[arg(long)]
    approve: bool,
}

impl EditArgs {
    /// The request body; files are read here (`-` is standard input).
    fn request(&self) -> Result<api::EditHeldMail, CliError> {
        let read = |flag: &str, p: &Path| -> Result<String, CliError> {
            let bytes = if p == Path::new("-") {
                let mut b = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut b)
                    .map_err(|e| CliError::usage(format!("cannot read {flag} from standard input: {e}")))?;
                b
            } else {
                std::fs::read(p).map_err(|e| CliError::usage(format!("cannot read {flag} {}: {e}", p.display())))?
            };
            String::from_utf8(bytes).map_err(|_| CliError::usage(format!("{flag} {} is not UTF-8 text", p.display())))
        };
        let list = |v: &Option<Vec<String>>| {
            v.as_ref().map(|l| {
                l.iter()
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let text = match (&self.text, &self.text_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(read("--text-file", p)?),
            (None, None) => None,
        };
        let html = match (&self.html, &self.html_file, self.no_html) {
            (Some(h), _, _) => Some(h.clone()),
            (None, Some(p), _) => Some(read("--html-file", p)?),
            (None, None, true) => Some(String::new()),
            (None, None, false) => None,
        };
        Ok(api::EditHeldMail {
            subject: self.subject.clone(),
            text,
            html,
            to: list(&self.to),
            cc: list(&self.cc),
            bcc: list(&self.bcc),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    /// Waiting for a reviewer.
    Pending,
    /// Approved and sent.
    Approved,
    /// Rejected; never sent.
    Rejected,
    /// Nobody decided in time; never sent.
    Expired,
    /// Any status.
    All,
}

impl StatusArg {
    /// The server's filter (`None`: no filter).
    fn filter(self) -> Option<&'static str> {
        match self {
            StatusArg::Pending => Some(ApprovalStatus::Pending.as_str()),
            StatusArg::Approved => Some(ApprovalStatus::Approved.as_str()),
            StatusArg::Rejected => Some(ApprovalStatus::Rejected.as_str()),
            StatusArg::Expired => Some(ApprovalStatus::Expired.as_str()),
            StatusArg::All => None,
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only mail composed by this identity (`idt_...`), or held for it (`--direction receive`).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Which approvals.
    #[arg(long, value_enum, default_value_t = StatusArg::Pending)]
    status: StatusArg,
    /// Only held outgoing mail (`send`) or only held incoming mail (`receive`); default both.
    #[arg(long, value_name = "DIRECTION", value_parser = ["send", "receive"])]
    direction: Option<String>,
    /// Only approvals at least this old: seconds (3600) or a number with s, m, h, d or w (90m).
    #[arg(long, value_name = "SECONDS", value_parser = parse_older_than)]
    older_than: Option<u32>,
    /// Approvals per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Fetch every page, following the cursor.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

fn parse_older_than(s: &str) -> Result<u32, String> {
    let secs = parse_duration_secs(s)?;
    u32::try_from(secs)
        .ok()
        .filter(|&n| i64::from(n) <= MAX_OLDER_THAN)
        .ok_or_else(|| format!("`{s}` is too long; at most 10 years ({MAX_OLDER_THAN} seconds)"))
}

fn now() -> Timestamp {
    SystemClock.now()
}

pub async fn run(args: ApprovalsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::OperatorFirst).map_err(|e| {
        e.with_hint(
            "a reviewer's key comes from `loft reviewer create NAME` (run with the operator key); the operator \
             key is in <data-dir>/admin.key (./loft-data/admin.key by default) unless the server takes it from \
             LOFT_ADMIN_KEY",
        )
    })?;
    match args.command {
        ApprovalsCommand::List(a) => list(&ctx, &client, a).await,
        ApprovalsCommand::Show { id } => {
            let value = client.call_json(api::get_approval(&id)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let v: ApprovalView = decode(&client, value)?;
                emit(&format::approval(&v, now()));
                if v.approval.status == ApprovalStatus::Pending {
                    note(&format!(
                        "decide with `loft approvals approve {id}` or `loft approvals reject {id} --reason TEXT`"
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve { ids } => decide(&ctx, &client, ids, None).await,
        ApprovalsCommand::Edit(a) => edit(&ctx, &client, a).await,
        ApprovalsCommand::Reject { ids, reason } => decide(&ctx, &client, ids, Some(reason)).await,
    }
}

async fn list(ctx: &Ctx, client: &Client, a: ListArgs) -> CmdResult {
    let status = a.status.filter();
    let q = api::ListApprovalsParams {
        direction: a.direction,
        identity: a.identity,
        status: status.map(str::to_owned),
        older_than_seconds: a.older_than,
        limit: a.limit,
        cursor: None,
    };
    show_list(
        ctx,
        client,
        (a.all, a.cursor),
        "approvals",
        |cursor| api::list_approvals(&api::ListApprovalsParams { cursor, ..q.clone() }),
        |items: &[Approval]| format::approvals(items, status, now()),
    )
    .await
}

/// Edits one held mail and shows it as it now stands; with `--approve`, then approves it.
async fn edit(ctx: &Ctx, client: &Client, a: EditArgs) -> CmdResult {
    let req = a.request()?;
    let value = client.call_json(api::edit_approval(&a.id, &req)).await?;
    if !a.approve {
        if ctx.json() {
            Ctx::print_json(&value);
        } else {
            let v: ApprovalView = decode(client, value)?;
            emit(&format::approval(&v, now()));
            note(&format!(
                "edited; decide with `loft approvals approve {0}` or `loft approvals reject {0} --reason TEXT`",
                a.id
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json() {
        let v: ApprovalView = decode(client, value)?;
        note(&format!("edited {} (edit {})", v.approval.id, v.approval.edit_count));
    }
    ctx.show(client, api::approve(&a.id), format::decided).await
}

/// Approves (`reason` is `None`) or rejects `ids`: one id through its own route, several
/// through the batch route, where each succeeds or fails on its own.
async fn decide(ctx: &Ctx, client: &Client, ids: Vec<String>, reason: Option<String>) -> CmdResult {
    let ids = dedup(ids);
    if let [id] = ids.as_slice() {
        let call = match reason {
            Some(reason) => api::reject(id, &api::RejectRequest { reason }),
            None => api::approve(id),
        };
        return ctx.show(client, call, format::decided).await;
    }
    let (decision, done) = if reason.is_some() {
        ("reject", "rejected")
    } else {
        ("approve", "approved")
    };
    let mut results: Vec<serde_json::Value> = Vec::new();
    let mut failed = 0;
    for chunk in ids.chunks(MAX_BATCH) {
        let req = api::DecideRequest {
            ids: chunk.to_vec(),
            decision: decision.to_owned(),
            reason: reason.clone(),
        };
        let value = client.call_json(api::decide_approvals(&req)).await?;
        let batch: BatchDecision = decode(client, value.clone())?;
        failed += batch.results.iter().filter(|r| r.approval.is_none()).count();
        if ctx.json() {
            if let Some(r) = value.get("results").and_then(serde_json::Value::as_array) {
                results.extend(r.iter().cloned());
            }
        } else {
            let (done, errors) = format::batch_decision(&batch);
            if !done.is_empty() {
                emit(&done);
            }
            if !errors.is_empty() {
                note(errors.trim_end());
            }
        }
    }
    if ctx.json() {
        Ctx::print_json(&serde_json::json!({ "results": results }));
    }
    if failed == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json() {
        let n = ids.len();
        note(&if failed == n {
            format!("none of the {n} {done}")
        } else {
            format!("{failed} of {n} not {done}; the others were {done}")
        });
    }
    Ok(ExitCode::FAILURE)
}

/// The ids in the order given, each once (a repeated id would only fail as already decided).
fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn approvals(args: &[&str]) -> ApprovalsCommand {
        let mut all = vec!["approvals"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Approvals(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_defaults_to_pending() {
        let ApprovalsCommand::List(a) = approvals(&["list"]) else {
            panic!()
        };
        assert_eq!(a.status.filter(), Some("pending"));
        let ApprovalsCommand::List(a) = approvals(&[
            "list",
            "--status",
            "all",
            "--older-than",
            "90m",
            "--identity",
            "idt_x",
            "--all",
        ]) else {
            panic!()
        };
        assert_eq!(a.status.filter(), None);
        assert_eq!(a.older_than, Some(5400));
        assert!(a.all);
        assert!(parse(&["approvals", "list", "--status", "maybe"]).is_err());
        assert!(parse(&["approvals", "list", "--all", "--cursor", "x"]).is_err());
        assert!(parse(&["approvals", "list", "--older-than", "20000d"]).is_err());
    }

    #[test]
    fn decisions_take_several_ids_and_reject_needs_a_reason() {
        let ApprovalsCommand::Approve { ids } = approvals(&["approve", "apr_a", "apr_b"]) else {
            panic!()
        };
        assert_eq!(ids, ["apr_a", "apr_b"]);
        assert!(parse(&["approvals", "approve"]).is_err());
        assert!(parse(&["approvals", "reject", "apr_a"]).is_err());
        let ApprovalsCommand::Reject { ids, reason } = approvals(&["reject", "apr_a", "--reason", "leaks a token"])
        else {
            panic!()
        };
        assert_eq!((ids.len(), reason.as_str()), (1, "leaks a token"));
        assert_eq!(dedup(vec!["a".into(), " b".into(), "a".into()]), ["a", "b"]);
    }

    #[test]
    fn edit_needs_a_change_and_sends_only_what_is_given() {
        assert!(parse(&["approvals", "edit", "apr_a"]).is_err());
        assert!(parse(&["approvals", "edit", "apr_a", "--approve"]).is_err());
        assert!(parse(&["approvals", "edit", "apr_a", "--text", "x", "--text-file", "f"]).is_err());
        let ApprovalsCommand::Edit(a) = approvals(&[
            "edit",
            "apr_a",
            "--subject",
            "New",
            "--to",
            "a@x,b@y",
            "--to",
            "c@z",
            "--cc",
            "",
            "--approve",
        ]) else {
            panic!()
        };
        assert!(a.approve);
        let req = a.request().unwrap();
        assert_eq!(req.subject.as_deref(), Some("New"));
        assert_eq!(req.to.as_deref().unwrap(), ["a@x", "b@y", "c@z"]);
        assert_eq!(req.cc.as_deref().unwrap(), [] as [String; 0]);
        assert!(req.bcc.is_none() && req.text.is_none() && req.html.is_none());
        let ApprovalsCommand::Edit(a) = approvals(&["edit", "apr_a", "--no-html"]) else {
            panic!()
        };
        assert_eq!(a.request().unwrap().html.as_deref(), Some(""));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("body.txt");
        std::fs::write(&f, "from a file\n").unwrap();
        let ApprovalsCommand::Edit(a) = approvals(&["edit", "apr_a", "--text-file", f.to_str().unwrap()]) else {
            panic!()
        };
        assert_eq!(a.request().unwrap().text.as_deref(), Some("from a file\n"));
    }
}
