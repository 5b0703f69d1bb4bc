//! The client subcommands of `loft` (everything but `serve`): each one talks to a running server
//! over REST, like the Vault or kubectl CLIs.
//!
//! Owns: the command tree and its help, the global connection options (`--url`, `--api-key`,
//! `--admin-key`, `--json`, each with an environment fallback), which key a command sends, and
//! the mapping of failures to exit codes: 0 success, 1 the server refused or could not be
//! reached (or `audit verify` found a broken chain), 2 a usage problem found before any request
//! (a missing key, an unreadable body file). Human output goes to stdout as aligned tables or
//! `key: value` lines; `--json` prints the server's JSON instead. Errors go to stderr as
//! `error: ...` and `hint: ...`.
//!
//! Must not: print a key, except the new one returned when a key is created or rotated; put a
//! key in an error message or `Debug` output; decide anything the server decides (scopes,
//! validation), beyond catching what is plainly missing before sending.

mod approvals;
mod audit;
mod console;
mod contacts;
mod domain;
mod drafts;
mod events;
mod format;
mod identity;
mod key;
mod mail;
mod reviewer;
mod rules;
mod suppressions;
mod vault;
mod webhooks;

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Subcommand};
use reqwest::Url;

use loft_client::{self as client, Client, ClientError};

/// The client subcommands, flattened into `loft`'s top-level command list.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, list, inspect, update and revoke agent identities.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Identity(identity::IdentityArgs),
    /// Mint, list, rotate and revoke API keys.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Key(key::KeyArgs),
    /// Show who the configured key acts as: identity, address, scopes and delegation chain.
    Whoami(WhoamiArgs),
    /// Send, list, read, reply to and label mail as an identity.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Mail(mail::MailArgs),
    /// Compose mail over several commands, then send it: list, show, create, update, send,
    /// delete drafts.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Drafts(drafts::DraftsArgs),
    /// Contacts: the addresses mail was exchanged with, and names, notes and tags written for
    /// them: list, show, set, forget.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Contacts(contacts::ContactsArgs),
    /// The caller's events (mail received and sent, decisions on held mail, pauses, vault
    /// use): a page, or `--follow` to print them as they happen.
    Events(events::EventsArgs),
    /// List, export and verify the hash-chained audit log.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Audit(audit::AuditArgs),
    /// Store, list, read and delete credentials; TOTP codes; rotate the master key.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Vault(vault::VaultArgs),
    /// Review mail held for approval: list it, read it whole, approve or reject it.
    ///
    /// Uses the operator key (`LOFT_ADMIN_KEY`) when it is set, else a reviewer's key
    /// (`LOFT_API_KEY`: an identity with the `oversight` scope, see `loft reviewer create`). To
    /// decide as the reviewer when both are set, unset `LOFT_ADMIN_KEY` or pass `--admin-key ''`.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Approvals(approvals::ApprovalsArgs),
    /// Create and list reviewers: identities that approve and reject held mail, never send.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Reviewer(reviewer::ReviewerArgs),
    /// The web console (served by `loft serve` at `/`): invite a reviewer to set a password.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Console(console::ConsoleArgs),
    /// Allow, block or hold mail to and from chosen addresses or domains, for one identity or
    /// the whole instance (operator); list the rules in effect for an identity.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Rules(rules::RulesArgs),
    /// Webhooks: endpoints that receive events as signed HTTP posts; their delivery log,
    /// replay and secret rotation (an identity's own, or every one with the operator key).
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Webhooks(webhooks::WebhooksArgs),
    /// The suppression list (operator): addresses whose servers refused mail for good, to
    /// which sends are refused; list them, or lift one.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Suppressions(suppressions::SuppressionsArgs),
    /// Freeze all outgoing mail on the instance at once, on every node (operator; the kill
    /// switch): every send and approval is refused until `loft unfreeze`.
    Freeze(WhoamiArgs),
    /// Lift a freeze of outgoing mail (operator).
    Unfreeze(WhoamiArgs),
    /// Show or set the instance's sending caps, which count every identity's mail together
    /// (operator). Without flags: shows them with what the instance used; `none` removes a cap.
    Caps(CapsArgs),
    /// Hosted mail domains (operator): add one (DKIM keys, DNS records to publish), list,
    /// show, check what DNS publishes, remove.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Domain(domain::DomainArgs),
}

#[derive(Debug, Args)]
pub struct CapsArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    caps: identity::CapFlags,
}

const GLOBAL: &str = "Connection and output (every client command)";

/// Connection options shared by every client command. Each is also read from the environment,
/// and may be given before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Base URL of the Loft server.
    #[arg(
        long,
        env = "LOFT_URL",
        default_value = client::DEFAULT_URL,
        value_parser = parse_base_url,
        global = true,
        value_name = "URL",
        help_heading = GLOBAL
    )]
    pub url: Url,
    /// API key of the identity to act as (`loft_sk_...`). Prefer the environment variable: a
    /// flag is visible to other users in the process list.
    #[arg(
        long,
        env = "LOFT_API_KEY",
        hide_env_values = true,
        global = true,
        value_name = "KEY",
        help_heading = GLOBAL
    )]
    pub api_key: Option<SecretArg>,
    /// The operator key of the server (for managing identities and the whole audit log).
    /// Prefer the environment variable: a flag is visible to other users in the process list.
    #[arg(
        long,
        env = "LOFT_ADMIN_KEY",
        hide_env_values = true,
        global = true,
        value_name = "KEY",
        help_heading = GLOBAL
    )]
    pub admin_key: Option<SecretArg>,
    /// Print the server's JSON, pretty-printed, instead of human-readable output (for scripts).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    global: GlobalArgs,
}

fn parse_base_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a URL ({e}); expected e.g. {}", client::DEFAULT_URL))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(format!(
            "expected an http:// or https:// URL, e.g. {}",
            client::DEFAULT_URL
        ));
    }
    Ok(url)
}

/// A key given on the command line or in the environment. Its `Debug` never shows it, and
/// parsing never fails, so clap never echoes it in an error.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(String);

impl SecretArg {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretArg(..)")
    }
}

impl FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

/// Which key a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNeed {
    /// Acts as an identity (mail): the API key only.
    Identity,
    /// An identity's own keys (`loft key` without `--identity`): the API key only.
    OwnKeys,
    /// Manages identities or their keys: the operator key, else an identity key (a parent with
    /// `identity:create` managing the identities it created).
    Operator,
    /// Only the operator may (the whole audit log): the operator key, else the API key so that
    /// the server can say why not.
    OperatorOnly,
    /// Either works; the identity key when both are set (`whoami`, `key revoke`).
    IdentityFirst,
    /// Either works; the operator key when both are set (`audit list`).
    OperatorFirst,
}

/// Which of the configured keys is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Api,
    Admin,
}

/// Picks the key for a command, or says exactly which variable or flag to set.
pub fn select_key(need: KeyNeed, api: bool, admin: bool) -> Result<KeyUsed, CliError> {
    use KeyNeed::{Identity, IdentityFirst, Operator, OperatorFirst, OperatorOnly, OwnKeys};
    const CREATE: &str = "`loft identity create NAME` (with the operator key) prints a new identity's API key";
    let picked = match need {
        Identity | OwnKeys => api.then_some(KeyUsed::Api),
        IdentityFirst => api.then_some(KeyUsed::Api).or(admin.then_some(KeyUsed::Admin)),
        Operator | OperatorOnly | OperatorFirst => admin.then_some(KeyUsed::Admin).or(api.then_some(KeyUsed::Api)),
    };
    if let Some(k) = picked {
        return Ok(k);
    }
    let (message, hint) = match need {
        Identity => (
            "this command acts as an identity and needs its API key: set LOFT_API_KEY or pass --api-key",
            if admin {
                format!("the operator key cannot act as an identity; {CREATE}")
            } else {
                format!("identity keys look like `loft_sk_...`; {CREATE}")
            },
        ),
        OwnKeys => (
            "this command acts on the calling identity's keys and needs its API key: set LOFT_API_KEY or pass --api-key",
            "to manage another identity's keys with the operator key (LOFT_ADMIN_KEY), add --identity ID".to_owned(),
        ),
        Operator => (
            "this command needs the operator key: set LOFT_ADMIN_KEY or pass --admin-key",
            "the operator key is in <data-dir>/admin.key (./loft-data/admin.key by default) unless the server takes it from LOFT_ADMIN_KEY; an identity key with the `identity:create` scope (LOFT_API_KEY or --api-key) also works, for the identities it created".to_owned(),
        ),
        OperatorOnly => (
            "this command needs the operator key: set LOFT_ADMIN_KEY or pass --admin-key",
            "`loft serve` prints the operator key on first start and keeps it in <data-dir>/admin.key (./loft-data/admin.key by default), e.g. `export LOFT_ADMIN_KEY=$(cat ./loft-data/admin.key)`; or it takes it from LOFT_ADMIN_KEY".to_owned(),
        ),
        IdentityFirst | OperatorFirst => (
            "no key given: set LOFT_API_KEY (or --api-key) to act as an identity, or LOFT_ADMIN_KEY (or --admin-key) to act as the operator",
            format!("identity keys look like `loft_sk_...`; {CREATE}"),
        ),
    };
    Err(CliError::usage(message).with_hint(hint))
}

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub enum CliError {
    /// Found before sending anything: exit 2.
    Usage { message: String, hint: Option<String> },
    /// The server refused, or could not be reached: exit 1.
    Client(ClientError),
    /// Anything else that failed (writing a file): exit 1.
    Failed { message: String, hint: Option<String> },
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, h: impl Into<String>) -> Self {
        match &mut self {
            Self::Usage { hint, .. } | Self::Failed { hint, .. } => *hint = Some(h.into()),
            Self::Client(_) => {}
        }
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage { .. } => ExitCode::from(2),
            Self::Client(_) | Self::Failed { .. } => ExitCode::FAILURE,
        }
    }

    /// The lines printed to stderr.
    pub fn render(&self) -> String {
        let (message, hint, request_id) = match self {
            Self::Usage { message, hint } | Self::Failed { message, hint } => (message.clone(), hint.clone(), None),
            Self::Client(e) => (e.to_string(), e.hint(), e.api().and_then(|a| a.request_id.clone())),
        };
        let mut out = format!("error: {}\n", format::clean(&message));
        if let Some(h) = hint {
            let _ = writeln!(out, "hint: {}", format::clean(&h));
        }
        if let Some(r) = request_id {
            let _ = writeln!(out, "request id: {}", format::clean(&r));
        }
        out
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

pub type CmdResult = Result<ExitCode, CliError>;

/// What every handler gets: the connection options and the output mode.
pub struct Ctx {
    global: GlobalArgs,
}

impl Ctx {
    fn new(global: GlobalArgs) -> Self {
        Self { global }
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    fn key(arg: Option<&SecretArg>) -> Option<&str> {
        arg.map(SecretArg::expose).filter(|k| !k.is_empty())
    }

    /// A client sending the key `need` calls for.
    pub fn client(&self, need: KeyNeed) -> Result<Client, CliError> {
        let api = Self::key(self.global.api_key.as_ref());
        let admin = Self::key(self.global.admin_key.as_ref());
        let key = match select_key(need, api.is_some(), admin.is_some())? {
            KeyUsed::Api => api,
            KeyUsed::Admin => admin,
        };
        Client::new(self.global.url.clone(), key.map(str::to_owned)).map_err(|e| CliError::usage(e.to_string()))
    }

    /// Prints the server's JSON, pretty.
    pub fn print_json(value: &serde_json::Value) {
        emit(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    }

    /// Sends `call`; prints the server's JSON with `--json`, else `human` of the decoded answer.
    pub async fn show<T: serde::de::DeserializeOwned>(
        &self,
        client: &Client,
        call: client::Call<T>,
        human: impl FnOnce(&T) -> String,
    ) -> CmdResult {
        let value = client.call_json(call).await?;
        if self.json() {
            Self::print_json(&value);
        } else {
            emit(&human(&decode(client, value)?));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Decodes the server's JSON into the type it should be.
pub fn decode<T: serde::de::DeserializeOwned>(client: &Client, value: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|e| decode_error(client, &e.to_string()))
}

pub fn decode_error(client: &Client, reason: &str) -> CliError {
    CliError::Client(ClientError::Decode {
        url: client.base_url(),
        reason: reason.to_owned(),
    })
}

/// Writes to stdout, adding a final newline. A closed pipe (`loft mail list | head`) is not an
/// error worth a panic.
pub fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    if !s.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// A note for the person at the terminal (next-page hints, summaries), kept off stdout.
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// Runs one client command and maps the outcome to the exit code.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    let result = match cmd {
        ClientCommand::Identity(a) => identity::run(a).await,
        ClientCommand::Key(a) => key::run(a).await,
        ClientCommand::Whoami(a) => whoami(a).await,
        ClientCommand::Mail(a) => mail::run(a).await,
        ClientCommand::Drafts(a) => drafts::run(a).await,
        ClientCommand::Contacts(a) => contacts::run(a).await,
        ClientCommand::Events(a) => events::run(a).await,
        ClientCommand::Audit(a) => audit::run(a).await,
        ClientCommand::Vault(a) => vault::run(a).await,
        ClientCommand::Approvals(a) => approvals::run(a).await,
        ClientCommand::Reviewer(a) => reviewer::run(a).await,
        ClientCommand::Console(a) => console::run(a).await,
        ClientCommand::Rules(a) => rules::run(a).await,
        ClientCommand::Webhooks(a) => webhooks::run(a).await,
        ClientCommand::Suppressions(a) => suppressions::run(a).await,
        ClientCommand::Freeze(a) => freeze(a, true).await,
        ClientCommand::Unfreeze(a) => freeze(a, false).await,
        ClientCommand::Caps(a) => instance_caps(a).await,
        ClientCommand::Domain(a) => domain::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stderr().lock().write_all(e.render().as_bytes());
            e.exit_code()
        }
    }
}

async fn whoami(args: WhoamiArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::IdentityFirst)?;
    ctx.show(&client, client::api::whoami(), format::whoami).await
}

/// `loft freeze` / `loft unfreeze`.
async fn freeze(args: WhoamiArgs, on: bool) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Operator)?;
    let call = if on {
        client::api::freeze_outgoing()
    } else {
        client::api::unfreeze_outgoing()
    };
    ctx.show(&client, call, format::instance).await
}

/// `loft caps [--per-hour N|none] [--per-day N|none] [--new-recipients-per-day N|none]`.
async fn instance_caps(args: CapsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    let client = ctx.client(KeyNeed::Operator)?;
    let c = args.caps;
    if c.is_empty() {
        return ctx
            .show(&client, client::api::instance_caps(), format::instance_caps)
            .await;
    }
    let req = client::api::SetInstanceCapsRequest {
        mails_per_hour: c.per_hour.map(|v| v.0),
        mails_per_day: c.per_day.map(|v| v.0),
        new_recipients_per_day: c.new_recipients_per_day.map(|v| v.0),
    };
    ctx.show(&client, client::api::set_instance_caps(&req), format::instance_caps)
        .await
}

/// Parses a duration: whole seconds (`3600`) or a number with a unit `s`, `m`, `h`, `d`, `w`
/// (`90m`, `30d`).
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let mult: i64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "`{s}` is not a duration; use seconds (3600) or a number with s, m, h, d or w (90m, 30d)"
            ));
        }
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; use e.g. 3600, 90m or 30d"))?;
    if n <= 0 {
        return Err("the duration must be positive".into());
    }
    n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The client commands on their own, as `loft` flattens them.
    #[derive(Debug, Parser)]
    #[command(name = "loft")]
    pub(crate) struct TestCli {
        #[command(subcommand)]
        pub(crate) cmd: ClientCommand,
    }

    pub(crate) fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
        let mut all = vec!["loft"];
        all.extend_from_slice(args);
        TestCli::try_parse_from(all).map(|c| c.cmd)
    }

    #[test]
    fn command_tree_is_consistent() {
        TestCli::command().debug_assert();
        // And as part of the real binary, next to `serve`.
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            let path = format!("{path} {}", cmd.get_name());
            if path != " loft" {
                assert!(cmd.get_about().is_some(), "`{path}` has no help text");
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "`{path}`: `{id}` has no help text");
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path);
                }
            }
        }
        walk(&TestCli::command(), "");
    }

    #[test]
    fn key_values_from_the_environment_are_never_shown_in_help() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                if matches!(arg.get_id().as_str(), "api_key" | "admin_key") {
                    assert!(arg.is_hide_env_values_set(), "{} shows its env value", arg.get_id());
                }
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&TestCli::command());
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let key = "loft_sk_aaaaaaaaaaaaaaaa_bbbb";
        for args in [
            vec![
                "identity",
                "--json",
                "--url",
                "http://h:1",
                "--admin-key",
                key,
                "create",
                "researcher",
            ],
            vec![
                "identity",
                "create",
                "researcher",
                "--json",
                "--url",
                "http://h:1",
                "--admin-key",
                key,
            ],
        ] {
            let ClientCommand::Identity(a) = parse(&args).unwrap() else {
                panic!()
            };
            assert!(a.global.json);
            assert_eq!(a.global.url.as_str(), "http://h:1/");
            assert_eq!(a.global.admin_key.as_ref().unwrap().expose(), key);
        }
    }

    #[test]
    fn keys_never_appear_in_debug_output() {
        let key = "loft_sk_aaaaaaaaaaaaaaaa_topsecret";
        let cmd = parse(&[
            "whoami",
            "--api-key",
            key,
            "--admin-key",
            "admin-topsecret-xxxxxxxxxxxx",
        ])
        .unwrap();
        let dbg = format!("{cmd:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for bad in ["127.0.0.1:7070", "localhost:7070", "ftp://h", "not a url"] {
            let err = parse(&["whoami", "--url", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains("http://"), "{bad}: {err}");
        }
    }

    #[test]
    fn key_selection() {
        use KeyNeed::*;
        use KeyUsed::*;
        // Identity commands use only the API key.
        assert_eq!(select_key(Identity, true, true).unwrap(), Api);
        assert_eq!(select_key(OwnKeys, true, false).unwrap(), Api);
        // Operator commands prefer the admin key and fall back to the API key.
        assert_eq!(select_key(Operator, true, true).unwrap(), Admin);
        assert_eq!(select_key(Operator, true, false).unwrap(), Api);
        assert_eq!(select_key(OperatorOnly, false, true).unwrap(), Admin);
        assert_eq!(select_key(OperatorFirst, true, true).unwrap(), Admin);
        assert_eq!(select_key(IdentityFirst, true, true).unwrap(), Api);
        assert_eq!(select_key(IdentityFirst, false, true).unwrap(), Admin);

        // A missing key names the variable and flag to set, and exits 2.
        let e = select_key(Identity, false, true).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::from(2));
        let text = e.render();
        assert!(text.contains("LOFT_API_KEY") && text.contains("--api-key"), "{text}");
        assert!(text.contains("operator key cannot act as an identity"), "{text}");
        let text = select_key(OwnKeys, false, true).unwrap_err().render();
        assert!(text.contains("--identity"), "{text}");
        for need in [Operator, OperatorOnly] {
            let text = select_key(need, false, false).unwrap_err().render();
            assert!(
                text.contains("LOFT_ADMIN_KEY") && text.contains("--admin-key"),
                "{text}"
            );
        }
        let text = select_key(IdentityFirst, false, false).unwrap_err().render();
        assert!(
            text.contains("LOFT_ADMIN_KEY") && text.contains("LOFT_API_KEY"),
            "{text}"
        );
    }

    #[test]
    fn empty_keys_count_as_missing() {
        let ClientCommand::Whoami(a) = parse(&["whoami", "--api-key", " ", "--url", "http://h:1"]).unwrap() else {
            panic!()
        };
        let ctx = Ctx::new(a.global);
        if std::env::var_os("LOFT_ADMIN_KEY").is_none() {
            assert_eq!(
                ctx.client(KeyNeed::IdentityFirst).unwrap_err().exit_code(),
                ExitCode::from(2)
            );
        }
        assert_eq!(
            ctx.client(KeyNeed::Identity).unwrap_err().exit_code(),
            ExitCode::from(2)
        );
    }

    #[test]
    fn errors_render_message_hint_and_request_id() {
        let e = CliError::Client(ClientError::Api(client::ApiError {
            status: 404,
            code: "not_found".into(),
            message: "identity not found".into(),
            hint: Some("check the id with `loft identity list`".into()),
            request_id: Some("req_1".into()),
            retry_after: None,
        }));
        assert_eq!(
            e.render(),
            "error: identity not found\nhint: check the id with `loft identity list`\nrequest id: req_1\n"
        );
        assert_eq!(e.exit_code(), ExitCode::FAILURE);
        // Terminal escapes from a hostile server are neutralised.
        let e = CliError::failed("bad\x1b[2Jthing");
        assert_eq!(e.render(), "error: bad?[2Jthing\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("3600"), Ok(3600));
        assert_eq!(parse_duration_secs("90m"), Ok(5400));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert_eq!(parse_duration_secs("30d"), Ok(2_592_000));
        assert_eq!(parse_duration_secs("1w"), Ok(604_800));
        for bad in ["", "0", "-5", "5x", "m", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration_secs(bad).is_err(), "{bad}");
        }
    }
}
