//! `loft audit ...`: the hash-chained audit log. `verify` recomputes the whole chain on this
//! machine from the exported rows and the server's head pointer; it never asks the server for
//! its verdict, since a tampered server could lie about it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use loft_core::audit::{AuditRecord, ChainVerifier, VerifyReport};
use loft_core::time::{Clock as _, SystemClock, Timestamp};

use super::{CliError, CmdResult, Ctx, GlobalArgs, KeyNeed, emit, format, note, parse_duration_secs};
use loft_client::{Client, ClientError, api};

/// Rows per export request.
const EXPORT_PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// List audit rows, newest first (an identity key sees only its own rows).
    List(ListArgs),
    /// Export the whole log as JSON lines, oldest first (operator key).
    Export {
        /// Write to this file instead of standard output (`-` is standard output).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only rows after this sequence number (to continue an earlier export).
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: i64,
    },
    /// Check the whole hash chain here, from the exported rows and the chain head (operator
    /// key). Exits 1 if any row was changed, removed or inserted.
    Verify,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutcomeArg {
    /// Done.
    Ok,
    /// Refused (a missing scope, a bad key).
    Denied,
    /// Failed.
    Error,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only rows whose actor is this identity (`idt_...`).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Only this action (`mail.send`), or every action with a prefix ending in `.` (`mail.`).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Only rows with this outcome.
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Only rows at or after this time: RFC 3339 (`2026-11-22T14:00:00Z`) or an age (`2h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<String>,
    /// Only rows before this time: RFC 3339 or an age (`2h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<String>,
    /// Rows per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

/// An RFC 3339 time, or an age (`2h` = two hours before `now`), as RFC 3339.
fn resolve_time(s: &str, now: Timestamp) -> Result<String, String> {
    let s = s.trim();
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t.to_rfc3339());
    }
    match parse_duration_secs(s) {
        Ok(secs) => Ok(now.plus_secs(-secs).to_rfc3339()),
        Err(_) => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-11-22T14:00:00Z) nor an age (90m, 2h, 7d)"
        )),
    }
}

fn time_arg(s: &str) -> Result<String, String> {
    resolve_time(s, SystemClock.now())
}

pub async fn run(args: AuditArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    match args.command {
        AuditCommand::List(a) => {
            let client = ctx.client(KeyNeed::OperatorFirst)?;
            let q = api::ListAuditParams {
                identity: a.identity,
                action: a.action,
                outcome: a.outcome.map(|o| {
                    o.to_possible_value()
                        .map(|v| v.get_name().to_owned())
                        .unwrap_or_default()
                }),
                since: a.since,
                until: a.until,
                limit: a.limit,
                cursor: a.cursor,
            };
            let value = client.call_json(api::list_audit(&q)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                let page: loft_core::service::Page<AuditRecord> = super::decode(&client, value)?;
                emit(&format::audit_rows(&page.items));
                if let Some(c) = page.next_cursor {
                    note(&format!("more rows: add --cursor {c}"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { output, after } => {
            let client = ctx.client(KeyNeed::OperatorOnly)?;
            export(&client, output.as_deref().filter(|p| *p != Path::new("-")), after).await
        }
        AuditCommand::Verify => {
            let client = ctx.client(KeyNeed::OperatorOnly)?;
            let (report, bad_row) = verify(&client).await?;
            if ctx.json() {
                Ctx::print_json(&serde_json::to_value(&report).unwrap_or_default());
            } else {
                emit(&format::verify_report(&report, bad_row.as_ref()));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Pages through the export after `after`, calling `row` for each line in order.
async fn each_row(
    client: &Client,
    mut after: i64,
    mut row: impl FnMut(&str, AuditRecord) -> Result<bool, CliError>,
) -> Result<(), CliError> {
    loop {
        let rows = client.audit_export_page(after, EXPORT_PAGE).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for (line, record) in rows {
            let seq = record.seq;
            if !row(&line, record)? {
                return Ok(());
            }
            if seq <= after {
                // The server went backwards; following it would loop for ever.
                return Err(CliError::Client(ClientError::Decode {
                    url: client.base_url(),
                    reason: format!("the export returned row {seq} after row {after}"),
                }));
            }
            after = seq;
        }
    }
}

async fn export(client: &Client, output: Option<&Path>, after: i64) -> CmdResult {
    let Some(path) = output else {
        let mut out = std::io::stdout().lock();
        let mut closed = false;
        each_row(client, after, |line, _| {
            // Stop quietly when the reader went away (`loft audit export | head`).
            closed = writeln!(out, "{line}").is_err();
            Ok(!closed)
        })
        .await?;
        let _ = out.flush();
        return Ok(ExitCode::SUCCESS);
    };
    // Write next to the target and rename at the end, so a failed export never leaves a
    // truncated file where a complete one is expected.
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let io_err = |e: std::io::Error| CliError::failed(format!("cannot write {}: {e}", path.display()));
    let file = std::fs::File::create(&part).map_err(io_err)?;
    let mut w = std::io::BufWriter::new(file);
    let mut n: u64 = 0;
    let result = each_row(client, after, |line, _| {
        writeln!(w, "{line}").map_err(io_err)?;
        n += 1;
        Ok(true)
    })
    .await
    .and_then(|()| w.flush().map_err(io_err))
    .and_then(|()| std::fs::rename(&part, path).map_err(io_err));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    note(&format!(
        "exported {} to {}",
        format::plural(n as usize, "row", "rows"),
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Fetches the chain head, then every row up to it, and checks the chain locally. Returns the
/// report and the first bad row when it was received.
async fn verify(client: &Client) -> Result<(VerifyReport, Option<AuditRecord>), CliError> {
    // The head first: rows appended while we read come after it and are left for next time.
    let head = client.call(api::audit_head()).await?;
    let end = head.as_ref().map(|h| h.seq);
    let mut verifier = ChainVerifier::default();
    let mut bad: Option<AuditRecord> = None;
    if end != Some(0) {
        each_row(client, 0, |_, record| {
            if end.is_some_and(|end| record.seq > end) {
                return Ok(false);
            }
            if verifier.push(&record) {
                Ok(end != Some(record.seq))
            } else {
                bad = Some(record);
                Ok(false)
            }
        })
        .await?;
    }
    let mut report = verifier.finish(head);
    if report.ok && report.head.is_none() && report.rows_checked > 0 {
        report.ok = false;
        report.first_bad_seq = Some(1);
        report.problem = Some(format!(
            "the server reports an empty log (no chain head), yet exported {} rows",
            report.rows_checked
        ));
    }
    let bad = bad.filter(|r| report.first_bad_seq == Some(r.seq));
    Ok((report, bad))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn audit(args: &[&str]) -> AuditCommand {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Audit(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times_are_absolute_or_ages() {
        let now = Timestamp::parse_rfc3339("2026-11-22T14:00:00Z").unwrap();
        assert_eq!(resolve_time("2h", now).unwrap(), "2026-11-22T12:00:00.000000Z");
        assert_eq!(
            resolve_time("2026-11-20T10:00:00+01:00", now).unwrap(),
            "2026-11-20T09:00:00.000000Z"
        );
        assert!(resolve_time("yesterday", now).unwrap_err().contains("RFC 3339"));
        assert!(parse(&["audit", "list", "--since", "yesterday"]).is_err());
    }

    #[test]
    fn list_flags() {
        let AuditCommand::List(a) = audit(&["list", "--outcome", "denied", "--action", "mail.", "--limit", "10"])
        else {
            panic!()
        };
        assert_eq!(a.outcome.unwrap().to_possible_value().unwrap().get_name(), "denied");
        assert_eq!(a.action.as_deref(), Some("mail."));
        assert!(parse(&["audit", "list", "--outcome", "maybe"]).is_err());
    }

    #[test]
    fn export_flags() {
        let AuditCommand::Export { output, after } = audit(&["export", "-o", "log.jsonl", "--after", "7"]) else {
            panic!()
        };
        assert_eq!(output.unwrap(), Path::new("log.jsonl"));
        assert_eq!(after, 7);
        assert!(matches!(audit(&["verify"]), AuditCommand::Verify));
    }
}
