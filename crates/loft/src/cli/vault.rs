//! `loft vault ...`: the calling identity's credential vault (API key), and master key
//! rotation (operator key).
//!
//! A secret is never taken from the command line (it would show in the process list): `put`
//! reads it from stdin (first line; `otpauth://` URIs are recognised), or from the environment
//! variable named by `--from-env`. `get` prints metadata; `--reveal` prints secret fields and
//! needs the `vault:reveal` scope.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use loft_client::api;
use serde_json::{Map, Value, json};

use super::{CliError, CmdResult, Ctx, GlobalArgs, KeyNeed, emit, format, note};

#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// List the identity's credentials (metadata only).
    List {
        /// At most this many (1 to 200, default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// The cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Store a credential; its secret is read from stdin (or `--from-env VAR`).
    Put {
        /// The credential's name, e.g. `crm`.
        name: String,
        /// login, `api_key` (default), totp, oauth, `ssh_key`, database or custom.
        #[arg(long = "type", value_name = "TYPE", default_value = "api_key")]
        kind: String,
        /// Read the secret from this environment variable instead of stdin.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// Descriptive fields, e.g. `--meta username=bob --meta url=https://...` (not secret).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Hosts brokered requests may reach (`host` or `host:port`), comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
        allowed_hosts: Vec<String>,
        /// bearer, basic or header:NAME.
        #[arg(long)]
        inject: Option<String>,
        /// Overwrite a credential of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// Show a credential's metadata (`--reveal`: its secret fields; needs `vault:reveal`).
    Get {
        /// The credential's name.
        name: String,
        /// Print the secret fields too (needs the `vault:reveal` scope).
        #[arg(long)]
        reveal: bool,
    },
    /// Print the current TOTP code (`--backup`: pop one backup code instead).
    Totp {
        /// The totp credential's name.
        name: String,
        /// Pop one backup code instead (it is removed from the credential).
        #[arg(long)]
        backup: bool,
    },
    /// Delete a credential.
    Rm {
        /// The credential's name.
        name: String,
    },
    /// Re-wrap every data key under the current master key (operator key). With keys kept in
    /// the data dir the server generates the new key itself; with `LOFT_MASTER_KEY`, restart the
    /// server with the new key and the old one in `LOFT_MASTER_KEY_PREVIOUS` first.
    RotateMasterKey,
}

/// The secret field of each type that `put` fills from stdin.
fn main_field(kind: &str) -> &'static str {
    match kind {
        "login" => "password",
        "totp" => "secret",
        "oauth" => "access_token",
        "ssh_key" => "private_key",
        "database" => "connection_string",
        _ => "value",
    }
}

fn read_secret(from_env: Option<&str>) -> Result<String, CliError> {
    if let Some(var) = from_env {
        return std::env::var(var).map_err(|_| CliError::usage(format!("the environment variable {var} is not set")));
    }
    let mut s = String::new();
    std::io::stdin()
        .read_line(&mut s)
        .map_err(|e| CliError::usage(format!("reading the secret from stdin: {e}")))?;
    let s = s.trim_end_matches(['\r', '\n']).to_owned();
    if s.is_empty() {
        return Err(CliError::usage("no secret on stdin").with_hint("e.g. `printf %s \"$TOKEN\" | loft vault put crm`"));
    }
    Ok(s)
}

fn meta_lines(v: &Value) -> String {
    let mut f = format::Fields::default();
    for key in [
        "name",
        "type",
        "username",
        "url",
        "issuer",
        "account",
        "algorithm",
        "digits",
        "period",
        "client_id",
        "notes",
        "expires_at",
        "inject",
        "backup_codes_remaining",
        "created_at",
        "updated_at",
        "version",
    ] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            let text = x.as_str().map_or_else(|| x.to_string(), str::to_owned);
            f.add(leak(key), format::clean(&text));
        }
    }
    if let Some(h) = v
        .get("allowed_hosts")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        f.add(
            "allowed_hosts",
            h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        );
    }
    if let Some(h) = v.get("secret_fields").and_then(Value::as_array) {
        f.add(
            "secret_fields",
            h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        );
    }
    f.render()
}

/// The field names above are all `'static` literals; this maps them back without allocation.
fn leak(key: &str) -> &'static str {
    [
        "name",
        "type",
        "username",
        "url",
        "issuer",
        "account",
        "algorithm",
        "digits",
        "period",
        "client_id",
        "notes",
        "expires_at",
        "inject",
        "backup_codes_remaining",
        "created_at",
        "updated_at",
        "version",
    ]
    .into_iter()
    .find(|k| *k == key)
    .unwrap_or("field")
}

pub async fn run(args: VaultArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    match args.command {
        VaultCommand::List { limit, cursor } => {
            let client = ctx.client(KeyNeed::Identity)?;
            let value = client
                .call_json(api::vault_list(&api::ListCredentialsParams { limit, cursor }))
                .await?;
            if ctx.json() {
                Ctx::print_json(&value);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = format::Table::new(&["NAME", "TYPE", "DETAILS", "UPDATED"]);
            for item in value["items"].as_array().into_iter().flatten() {
                let details = ["username", "url", "issuer"]
                    .iter()
                    .filter_map(|k| item[*k].as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                t.row(vec![
                    format::clean(item["name"].as_str().unwrap_or("")),
                    item["type"].as_str().unwrap_or("").to_owned(),
                    format::ellipsize(&format::clean(&details), 50),
                    item["updated_at"].as_str().unwrap_or("").to_owned(),
                ]);
            }
            emit(&t.render());
            if let Some(c) = value["next_cursor"].as_str() {
                note(&format!("more: --cursor {c}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Put {
            name,
            kind,
            from_env,
            meta,
            allowed_hosts,
            inject,
            replace,
        } => {
            let client = ctx.client(KeyNeed::Identity)?;
            let secret = read_secret(from_env.as_deref())?;
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("type".into(), json!(kind));
            if kind == "totp" && secret.starts_with("otpauth://") {
                body.insert("otpauth_uri".into(), json!(secret));
            } else if kind == "custom" {
                body.insert("fields".into(), json!({ "value": secret }));
            } else {
                body.insert(main_field(&kind).into(), json!(secret));
            }
            for m in &meta {
                let (k, v) = m
                    .split_once('=')
                    .ok_or_else(|| CliError::usage(format!("`--meta {m}` is not KEY=VALUE")))?;
                let v = match k {
                    "digits" | "period" => json!(
                        v.parse::<u64>()
                            .map_err(|_| CliError::usage(format!("{k} must be a number")))?
                    ),
                    _ => json!(v),
                };
                body.insert(k.trim().to_owned(), v);
            }
            if !allowed_hosts.is_empty() {
                body.insert("allowed_hosts".into(), json!(allowed_hosts));
            }
            if let Some(i) = inject {
                body.insert("inject".into(), json!(i));
            }
            if replace {
                body.insert("replace".into(), json!(true));
            }
            // `--meta` names fields of the request as the server reads them: checked here, with
            // the server's own type, before anything is sent.
            let req: api::StoreCredentialRequest = serde_json::from_value(Value::Object(body)).map_err(|e| {
                CliError::usage(format!("the credential does not fit `POST /v0/vault`: {e}"))
                    .with_hint("--meta takes descriptive fields such as username=..., url=..., notes=...")
            })?;
            ctx.show(&client, api::vault_put(&req), |m| {
                format!("stored {} ({})\n", m.name, m.kind.as_str())
            })
            .await
        }
        VaultCommand::Get { name, reveal } => {
            let client = ctx.client(KeyNeed::Identity)?;
            let value = client.call_json(api::vault_get(&name, reveal)).await?;
            if ctx.json() {
                Ctx::print_json(&value);
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = meta_lines(&value);
            if let Some(secrets) = value.get("secrets").and_then(Value::as_object) {
                for (k, v) in secrets {
                    let _ = writeln!(out, "secret {k}: {}", v.as_str().unwrap_or(""));
                }
            }
            if let Some(codes) = value
                .get("backup_codes")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty())
            {
                let codes: Vec<&str> = codes.iter().filter_map(Value::as_str).collect();
                let _ = writeln!(out, "backup codes: {}", codes.join(" "));
            }
            emit(&out);
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Totp { name, backup } => {
            let client = ctx.client(KeyNeed::Identity)?;
            if backup {
                ctx.show(&client, api::vault_totp_backup(&name), |b| format!("{}\n", b.code))
                    .await
            } else {
                ctx.show(&client, api::vault_totp(&name), |c| format!("{}\n", c.code))
                    .await
            }
        }
        VaultCommand::Rm { name } => {
            let client = ctx.client(KeyNeed::Identity)?;
            client.call_bytes(api::vault_delete(&name)).await?;
            if !ctx.json() {
                emit(&format!("deleted {}", format::clean(&name)));
            }
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::RotateMasterKey => {
            let client = ctx.client(KeyNeed::OperatorOnly)?;
            ctx.show(&client, api::vault_rotate_master_key(), |r| {
                format!(
                    "current master key: {}\nre-wrapped: {}\ngenerated a new key: {}\n{}",
                    r.current_key_id,
                    r.rewrapped,
                    r.generated,
                    if r.still_in_use.is_empty() {
                        String::new()
                    } else {
                        format!("still in use (run again): {}\n", r.still_in_use.join(", "))
                    }
                )
            })
            .await
        }
    }
}
