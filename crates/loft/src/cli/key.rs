//! `loft key ...`: API keys. Without `--identity` these act on the calling identity's own keys
//! (API key); with `--identity ID` on another identity's keys (operator key, or the key of the
//! identity that created it).

use clap::{Args, Subcommand};
use loft_core::time::{Clock as _, SystemClock, Timestamp};

use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, format, identity::trim_all, note, parse_duration_secs};
use loft_client::api;

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Mint an extra key, e.g. with fewer scopes or an expiry (the key is printed once).
    Create {
        #[command(flatten)]
        target: Target,
        /// Scopes, comma-separated; default: those of the key making the request (or of the
        /// identity, for the operator) except `keys:manage`, which a key gets only when named.
        /// A key can never get scopes its maker lacks, nor outlive it.
        #[arg(long, value_delimiter = ',', value_name = "SCOPES")]
        scopes: Option<Vec<String>>,
        /// Lifetime: seconds, or a number with s, m, h, d or w (`3600`, `90m`, `30d`).
        #[arg(long, value_name = "SECONDS", value_parser = parse_duration_secs)]
        expires_in: Option<i64>,
        /// A note saying what the key is for (at most 64 characters).
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Replace a key with a new one (printed once); the old one stops working at once.
    /// Without --identity: the calling key. With --identity: that identity's primary key
    /// (operator key, or that primary key itself).
    Rotate {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key. Uses the API key if set (own keys and those of identities it created),
    /// else the operator key.
    Revoke {
        /// The key's id (`key_...`), as `loft key list` shows it; never the key itself.
        key_id: String,
    },
}

#[derive(Debug, Args)]
struct Target {
    /// Act on this identity's keys (`idt_...`), with the operator key; default: the calling
    /// identity's own keys, with its API key.
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
}

impl Target {
    fn need(&self) -> KeyNeed {
        if self.identity.is_some() {
            KeyNeed::Operator
        } else {
            KeyNeed::OwnKeys
        }
    }
}

fn now() -> Timestamp {
    SystemClock.now()
}

pub async fn run(args: KeyArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    match args.command {
        KeyCommand::Create {
            target,
            scopes,
            expires_in,
            label,
        } => {
            let client = ctx.client(target.need())?;
            let req = api::CreateKeyRequest {
                scopes: scopes.map(trim_all),
                expires_in_seconds: expires_in,
                label,
            };
            ctx.show(&client, api::create_key(target.identity.as_deref(), &req), |k| {
                format::created_key(k, now())
            })
            .await
        }
        KeyCommand::List { target } => {
            let client = ctx.client(target.need())?;
            ctx.show(&client, api::list_keys(target.identity.as_deref()), |k| {
                format::keys(&k.items, now())
            })
            .await
        }
        KeyCommand::Rotate { target } => {
            let client = ctx.client(target.need())?;
            let code = ctx
                .show(&client, api::rotate_key(target.identity.as_deref()), |k| {
                    format::created_key(k, now())
                })
                .await?;
            if target.identity.is_none() && !ctx.json() {
                note("The key you used (LOFT_API_KEY / --api-key) no longer works: replace it with the new one.");
            }
            Ok(code)
        }
        KeyCommand::Revoke { key_id } => {
            let client = ctx.client(KeyNeed::IdentityFirst)?;
            ctx.show(&client, api::revoke_key(&key_id), |k| {
                format!("revoked key {} of identity {}\n", k.id, k.identity_id)
            })
            .await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn key(args: &[&str]) -> KeyCommand {
        let mut all = vec!["key"];
        all.extend_from_slice(args);
        match parse(&all).unwrap() {
            ClientCommand::Key(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identity_picks_the_operator_key() {
        let KeyCommand::List { target } = key(&["list"]) else {
            panic!()
        };
        assert_eq!(target.need(), KeyNeed::OwnKeys);
        let KeyCommand::Rotate { target } = key(&["rotate", "--identity", "idt_x"]) else {
            panic!()
        };
        assert_eq!(target.need(), KeyNeed::Operator);
    }

    #[test]
    fn create_flags() {
        let KeyCommand::Create {
            target,
            scopes,
            expires_in,
            label,
        } = key(&["create", "--scopes", "mail:read", "--expires-in", "2h", "--label", "ci"])
        else {
            panic!()
        };
        assert!(target.identity.is_none());
        assert_eq!(scopes.unwrap(), ["mail:read"]);
        assert_eq!(expires_in, Some(7200));
        assert_eq!(label.as_deref(), Some("ci"));
        let err = parse(&["key", "create", "--expires-in", "soon"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn revoke_takes_a_key_id() {
        let KeyCommand::Revoke { key_id } = key(&["revoke", "key_abc"]) else {
            panic!()
        };
        assert_eq!(key_id, "key_abc");
        assert!(parse(&["key", "revoke"]).is_err());
    }
}
