//! `loft domain ...` (operator): host a mail domain and print the DNS records to publish,
//! list and show hosted domains, check what DNS publishes, stop hosting one.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use loft_client::api;
use loft_core::domains::{CheckStatus, Domain, DomainCheck, DomainView};

use super::{CmdResult, Ctx, GlobalArgs, KeyNeed};

#[derive(Debug, Args)]
pub struct DomainArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: DomainCommand,
}

#[derive(Debug, Subcommand)]
enum DomainCommand {
    /// Host a domain: generates its DKIM keys (ed25519 and RSA-2048) and prints the DNS
    /// records to publish (MX, SPF, DKIM per selector, DMARC), as a list and as a zone-file
    /// snippet.
    Add {
        /// The domain, e.g. `agents.example.com`.
        #[arg(value_name = "DOMAIN")]
        name: String,
    },
    /// The hosted domains: this server's own mail domain (`default`) and the others.
    List,
    /// One hosted domain with the DNS records to publish.
    Show {
        /// The domain.
        #[arg(value_name = "DOMAIN")]
        name: String,
    },
    /// Resolve the records a domain should publish and say, per record, ok / missing /
    /// different / temperror. Exits 1 unless every record is ok.
    Check {
        /// The domain.
        #[arg(value_name = "DOMAIN")]
        name: String,
    },
    /// Stop hosting a domain and delete its DKIM keys.
    Remove {
        /// The domain (not this server's own mail domain).
        #[arg(value_name = "DOMAIN")]
        name: String,
    },
}

pub async fn run(args: DomainArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::OperatorOnly)?;
    match args.command {
        DomainCommand::Add { name } => {
            let req = api::AddDomainRequest { name };
            ctx.show(&client, api::add_domain(&req), |d| view("hosted", d)).await
        }
        DomainCommand::List => ctx.show(&client, api::list_domains(), |l| list(&l.items)).await,
        DomainCommand::Show { name } => ctx.show(&client, api::show_domain(&name), |d| view("", d)).await,
        DomainCommand::Check { name } => {
            let value = client.call_json(api::check_domain(&name)).await?;
            let report: DomainCheck = super::decode(&client, value.clone())?;
            if ctx.json() {
                Ctx::print_json(&value);
            } else {
                super::emit(&check(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DomainCommand::Remove { name } => {
            ctx.show(&client, api::remove_domain(&name), |d| format!("removed {}", d.name))
                .await
        }
    }
}

fn list(items: &[Domain]) -> String {
    let mut out = String::new();
    for d in items {
        let selectors: Vec<&str> = d.dkim.iter().map(|k| k.selector.as_str()).collect();
        let _ = writeln!(
            out,
            "{}{}\tdkim: {}",
            d.name,
            if d.default { " (default)" } else { "" },
            if selectors.is_empty() {
                "none (loft domain add to create keys)".to_owned()
            } else {
                selectors.join(", ")
            }
        );
    }
    out.trim_end().to_owned()
}

fn view(verb: &str, d: &DomainView) -> String {
    let mut out = String::new();
    if verb.is_empty() {
        let _ = writeln!(
            out,
            "{}{}",
            d.domain.name,
            if d.domain.default { " (default)" } else { "" }
        );
    } else {
        let _ = writeln!(out, "{verb} {}", d.domain.name);
    }
    let _ = writeln!(out, "\nDNS records to publish:");
    for r in &d.records {
        let kind = serde_json::to_value(r.record_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(out, "  {kind}\t{}\t{}", r.name, r.value);
    }
    let _ = write!(out, "\nAs a zone-file snippet:\n{}", d.zone);
    out.trim_end().to_owned()
}

fn check(c: &DomainCheck) -> String {
    let mut out = String::new();
    for r in &c.records {
        let status = match r.status {
            CheckStatus::Ok => "ok",
            CheckStatus::Missing => "missing",
            CheckStatus::Different => "different",
            CheckStatus::Temperror => "temperror",
        };
        let _ = writeln!(out, "{status}\t{}\t{}", r.record.name, r.record.value);
        if r.status == CheckStatus::Different {
            for f in &r.found {
                let _ = writeln!(out, "\tfound: {f}");
            }
        }
    }
    let _ = write!(
        out,
        "{}: {}",
        c.name,
        if c.ok {
            "every record is published"
        } else {
            "some records are not published as expected"
        }
    );
    out
}
