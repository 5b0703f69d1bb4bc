//! The contacts tools: who you exchanged mail with, and your notes on them.

use loft_core::keys::Scope;
use loft_core::service::{ListContactsParams, UpsertContact};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{DEFAULT_LIMIT, Hints, ToolDef, ToolSpec};
use crate::views::{ContactListView, ContactView};

pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        ToolSpec {
            name: "contacts_list",
            title: "List contacts",
            scopes: &[Scope::MailRead],
            hints: Hints::READ,
            description: "List your contacts in address order: every address you exchanged mail with (known: \
                 true, with when you first wrote and first heard from it) and every address you wrote down with \
                 contacts_upsert, with your name, notes and tags for it. Filter by text (in the address or name), \
                 by tag, or by known. Mail to an address you never exchanged mail with may be held as a first \
                 contact.",
        }
        .calls(|api, a: ListContactsArgs| async move {
            let params = ListContactsParams {
                identity: None,
                q: a.query,
                tag: a.tag,
                known: a.known,
                limit: Some(a.limit.unwrap_or(DEFAULT_LIMIT)),
                cursor: a.page_token,
            };
            Ok(ContactListView::from(api.list_contacts(params).await?))
        }),
        ToolSpec {
            name: "contacts_upsert",
            title: "Write a contact",
            scopes: &[Scope::MailManage],
            hints: Hints {
                read_only: false,
                destructive: false,
                idempotent: true,
                open_world: false,
            },
            description: "Write down a name, notes or tags for an address in your contacts (creating the entry, \
                 or changing it: a field you leave out keeps its value; \"\" clears a name or notes, [] the \
                 tags). Nothing is sent, and writing a contact does not count as having exchanged mail with it. \
                 Returns the contact as it is now.",
        }
        .calls(|api, a: UpsertContactArgs| async move {
            let req = UpsertContact {
                identity: None,
                address: a.address,
                name: a.name,
                notes: a.notes,
                tags: a.tags,
            };
            Ok(ContactView::from(api.upsert_contact(req).await?))
        }),
    ]
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListContactsArgs {
    /// Only contacts whose address or name contains this text.
    #[serde(default, alias = "q")]
    pub query: Option<String>,
    /// Only contacts with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Only contacts you exchanged mail with (true), or only those you wrote down without mail (false).
    #[serde(default)]
    pub known: Option<bool>,
    /// How many contacts per page, 1 to 200 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// The `next_page_token` of the previous page.
    #[serde(default, alias = "cursor")]
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpsertContactArgs {
    /// The contact's email address.
    pub address: String,
    /// A name for it (one line, at most 200 characters); "" clears it.
    #[serde(default)]
    pub name: Option<String>,
    /// Notes (at most 2,000 characters); "" clears them.
    #[serde(default)]
    pub notes: Option<String>,
    /// Tags (replace the old ones): at most 20, each letters, digits and `_-:./`.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}
