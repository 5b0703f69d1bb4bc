//! `loft contacts ...`: an identity's contacts (the addresses it exchanged mail with) and its
//! address book (names, notes and tags written by hand).
//!
//! With the identity's key (`LOFT_API_KEY`) these act on its own contacts; with `--identity`
//! and the operator key, on that identity's.

use clap::{Args, Subcommand};
use loft_core::contacts::Contact;

use super::identity::show_list;
use super::{CmdResult, Ctx, GlobalArgs, KeyNeed, format};
use loft_client::{Client, api};

#[derive(Debug, Args)]
pub struct ContactsArgs {
    #[command(flatten)]
    pub(super) global: GlobalArgs,
    #[command(subcommand)]
    command: ContactsCommand,
}

#[derive(Debug, Subcommand)]
enum ContactsCommand {
    /// List contacts in address order: every address mail was exchanged with, and every
    /// address written down with `loft contacts set`.
    List(ListArgs),
    /// Show one contact.
    Show(AddressArgs),
    /// Write a name, notes or tags for an address (what is not given keeps its value).
    /// Writing a contact does not count as exchanging mail with it: first-contact holds still
    /// apply until mail was exchanged.
    Set(SetArgs),
    /// Forget what was written for an address; the mail exchanged with it stays recorded.
    Forget(AddressArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Whose contacts (`idt_...`; needs the operator key).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Only addresses or names containing TEXT.
    #[arg(long, short = 'q', value_name = "TEXT")]
    query: Option<String>,
    /// Only contacts with this tag.
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Only addresses mail was exchanged with.
    #[arg(long, conflicts_with = "unknown")]
    known: bool,
    /// Only addresses written down without mail exchanged.
    #[arg(long)]
    unknown: bool,
    /// Contacts per page (1 to 200; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: Option<u32>,
    /// Fetch every page, following the cursor.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from the `next_cursor` of a previous page.
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

#[derive(Debug, Args)]
struct AddressArgs {
    /// Whose contact (`idt_...`; needs the operator key).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// The contact's email address.
    #[arg(value_name = "ADDRESS")]
    address: String,
}

#[derive(Debug, Args)]
struct SetArgs {
    /// Whose address book (`idt_...`; needs the operator key).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// The contact's email address.
    #[arg(value_name = "ADDRESS")]
    address: String,
    /// A name (one line; '' clears it).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Notes ('' clears them).
    #[arg(long, value_name = "TEXT")]
    notes: Option<String>,
    /// A tag; repeat for several. Replaces the contact's tags.
    #[arg(long = "tag", value_name = "TAG", conflicts_with = "clear_tags")]
    tags: Vec<String>,
    /// Remove every tag.
    #[arg(long)]
    clear_tags: bool,
}

/// The operator key for another identity's contacts, the identity's own key otherwise.
fn key_for(identity: Option<&String>) -> KeyNeed {
    if identity.is_some() {
        KeyNeed::OperatorOnly
    } else {
        KeyNeed::Identity
    }
}

pub async fn run(args: ContactsArgs) -> CmdResult {
    let ctx = Ctx::new(args.global);
    match args.command {
        ContactsCommand::List(a) => {
            let client = ctx.client(key_for(a.identity.as_ref()))?;
            list(&ctx, &client, a).await
        }
        ContactsCommand::Show(a) => {
            let client = ctx.client(key_for(a.identity.as_ref()))?;
            let q = api::ContactParams { identity: a.identity };
            ctx.show(&client, api::get_contact(&a.address, &q), |c| format::contact("", c))
                .await
        }
        ContactsCommand::Set(a) => {
            let client = ctx.client(key_for(a.identity.as_ref()))?;
            let tags = if a.clear_tags {
                Some(vec![])
            } else {
                (!a.tags.is_empty()).then_some(a.tags)
            };
            let req = api::UpsertContact {
                identity: a.identity,
                address: a.address,
                name: a.name,
                notes: a.notes,
                tags,
            };
            ctx.show(&client, api::upsert_contact(&req), |c| format::contact("saved", c))
                .await
        }
        ContactsCommand::Forget(a) => {
            let client = ctx.client(key_for(a.identity.as_ref()))?;
            let q = api::ContactParams { identity: a.identity };
            ctx.show(&client, api::forget_contact(&a.address, &q), |c| {
                format::contact("forgotten", c)
            })
            .await
        }
    }
}

async fn list(ctx: &Ctx, client: &Client, a: ListArgs) -> CmdResult {
    let q = api::ListContactsParams {
        identity: a.identity,
        q: a.query,
        tag: a.tag,
        known: if a.known {
            Some(true)
        } else if a.unknown {
            Some(false)
        } else {
            None
        },
        limit: a.limit,
        cursor: None,
    };
    show_list(
        ctx,
        client,
        (a.all, a.cursor),
        "contacts",
        |cursor| api::list_contacts(&api::ListContactsParams { cursor, ..q.clone() }),
        |items: &[Contact]| format::contacts(items),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::super::ClientCommand;
    use super::super::tests::parse;
    use super::*;

    fn contacts(args: &[&str]) -> Result<ContactsCommand, clap::Error> {
        let mut all = vec!["contacts"];
        all.extend_from_slice(args);
        parse(&all).map(|c| match c {
            ClientCommand::Contacts(a) => a.command,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn set_list_and_forget_parse() {
        let ContactsCommand::Set(a) = contacts(&[
            "set",
            "bob@example.com",
            "--name",
            "Bob",
            "--tag",
            "vip",
            "--tag",
            "client",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.address, "bob@example.com");
        assert_eq!(a.tags, ["vip", "client"]);
        assert!(contacts(&["set", "bob@example.com", "--tag", "x", "--clear-tags"]).is_err());
        assert!(contacts(&["set"]).is_err());
        let ContactsCommand::List(a) = contacts(&["list", "-q", "bob", "--known", "--all"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.query.as_deref(), Some("bob"));
        assert!(a.known && a.all);
        assert!(contacts(&["list", "--known", "--unknown"]).is_err());
        let ContactsCommand::Forget(a) = contacts(&["forget", "--identity", "idt_x", "bob@example.com"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.identity.as_deref(), Some("idt_x"));
    }
}
