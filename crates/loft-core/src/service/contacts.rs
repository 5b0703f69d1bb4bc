//! Contacts: listing an identity's contacts, writing and forgetting address book entries, and
//! what a message view says about its sender (see [`crate::contacts`]).
//!
//! An identity key acts on its own contacts (reading needs `mail:read`, writing `mail:manage`);
//! the operator acts on any identity's, named with `identity`.

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, Principal, page_limit};
use crate::address::EmailAddress;
use crate::contacts::{
    AddressBookEntry, Contact, ContactQuery, MAX_CONTACT_NAME, MAX_CONTACT_NOTES, SenderContact, parse_tags, parse_text,
};
use crate::identity::Identity;
use crate::ids::IdentityId;
use crate::keys::Scope;
use crate::mail::{Folder, Message};
use crate::{Error, Result};

/// `GET /v0/contacts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListContactsParams {
    /// Whose contacts (`idt_...`): required for the operator; an identity key may name only
    /// itself.
    pub identity: Option<String>,
    /// Only contacts whose address or name contains this text (ASCII letters in either case).
    #[cfg_attr(feature = "openapi", param(max_length = 200))]
    pub q: Option<String>,
    /// Only contacts with this tag.
    #[cfg_attr(feature = "openapi", param(max_length = 64))]
    pub tag: Option<String>,
    /// Only contacts mail was exchanged with (`true`), or only address book entries without
    /// mail (`false`).
    pub known: Option<bool>,
    /// 1 to 200, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET` and `DELETE /v0/contacts/{address}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ContactParams {
    /// Whose contact (`idt_...`): required for the operator; an identity key may name only
    /// itself.
    pub identity: Option<String>,
}

/// `POST /v0/contacts`: writes the address book entry of one address. A field left out keeps
/// its value; `""` clears a name or notes, `[]` clears the tags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpsertContact {
    /// Whose address book (`idt_...`): required for the operator; an identity key may name
    /// only itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 320, example = "bob@example.com")
    )]
    pub address: String,
    /// One line, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub name: Option<String>,
    /// At most 2,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub notes: Option<String>,
    /// At most 20, each 1 to 64 letters, digits and `_-:./` (lowercased, like labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub tags: Option<Vec<String>>,
}

const CURSOR_PREFIX: &str = "c1:";

fn encode_cursor(address: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{address}"))
}

fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    use base64::Engine;
    let Some(c) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(CURSOR_PREFIX).map(str::to_owned))
        .map(Some)
        .ok_or_else(|| {
            Error::invalid("invalid_cursor", "this cursor was not issued by GET /v0/contacts")
                .with_hint("pass the `next_cursor` of the previous page unchanged")
        })
}

fn not_found() -> Error {
    Error::not_found("contact").with_hint(
        "a contact is an address this identity exchanged mail with or wrote down; list them with GET /v0/contacts, \
         `loft contacts list` or the MCP tool contacts_list",
    )
}

impl Loft {
    /// The identity whose contacts `actor` reads (`write`: writes) through `named`.
    async fn contacts_owner(&self, actor: &Actor, named: Option<&str>, write: bool) -> Result<Identity> {
        let named = named
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IdentityId::parse)
            .transpose()?;
        match (&actor.principal, named) {
            (Principal::Operator, None) => Err(Error::invalid(
                "identity_required",
                "the operator names whose contacts with `identity`",
            )
            .with_hint("add identity=idt_... (the identity's id from GET /v0/identities)")),
            (Principal::Operator, Some(id)) => {
                let who = self
                    .store
                    .get_identity(&id)
                    .await?
                    .ok_or_else(|| Error::not_found("identity"))?;
                if write && who.revoked_at.is_some() {
                    return Err(Error::conflict(
                        "identity_revoked",
                        "this identity is revoked: its address book is read-only",
                    ));
                }
                Ok(who)
            }
            (Principal::Identity { .. }, named) => {
                let me = actor.require(if write { Scope::MailManage } else { Scope::MailRead })?;
                match named {
                    Some(id) if id != me.id => Err(Error::not_found("identity")
                        .with_hint("an identity key reads and writes its own contacts only: leave out `identity`")),
                    _ => Ok(me.clone()),
                }
            }
        }
    }

    /// An identity's contacts, in address order.
    pub async fn list_contacts(&self, actor: &Actor, params: ListContactsParams) -> Result<Page<Contact>> {
        let owner = self.contacts_owner(actor, params.identity.as_deref(), false).await?;
        let limit = page_limit(params.limit)?;
        let text = params.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(t) = text {
            crate::text::refuse_nul("q", t)?;
            if t.chars().count() > 200 {
                return Err(Error::invalid("invalid_query", "`q` is at most 200 characters"));
            }
        }
        let tag = params
            .tag
            .as_deref()
            .map(|t| parse_tags(&[t.to_owned()]))
            .transpose()?
            .and_then(|t| t.into_iter().next());
        let query = ContactQuery {
            text: text.map(str::to_ascii_lowercase),
            tag,
            known: params.known,
            after: decode_cursor(params.cursor.as_deref())?,
            limit: limit + 1,
        };
        let mut items = self.store.list_contacts(&owner.id, &query).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|c| encode_cursor(c.address.as_str()))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// One contact.
    pub async fn get_contact(&self, actor: &Actor, address: &str, params: ContactParams) -> Result<Contact> {
        let owner = self.contacts_owner(actor, params.identity.as_deref(), false).await?;
        let address = EmailAddress::parse(address)?;
        self.store.get_contact(&owner.id, &address).await?.ok_or_else(not_found)
    }

    /// Writes the address book entry of one address (merging with what is there).
    pub async fn upsert_contact(&self, actor: &Actor, req: UpsertContact) -> Result<Contact> {
        let owner = self.contacts_owner(actor, req.identity.as_deref(), true).await?;
        let address = EmailAddress::parse(&req.address)?;
        let name = req
            .name
            .as_deref()
            .map(|v| parse_text("name", v, MAX_CONTACT_NAME, true))
            .transpose()?;
        let notes = req
            .notes
            .as_deref()
            .map(|v| parse_text("notes", v, MAX_CONTACT_NOTES, false))
            .transpose()?;
        let tags = req.tags.as_deref().map(parse_tags).transpose()?;
        let now = self.clock.now();
        let before = self.store.get_contact(&owner.id, &address).await?;
        let keep = |f: fn(&Contact) -> Option<String>| before.as_ref().and_then(f);
        let entry = AddressBookEntry {
            identity: owner.id.clone(),
            address: address.clone(),
            name: name.unwrap_or_else(|| keep(|c| c.name.clone())),
            notes: notes.unwrap_or_else(|| keep(|c| c.notes.clone())),
            tags: tags.unwrap_or_else(|| before.as_ref().map(|c| c.tags.clone()).unwrap_or_default()),
            at: now,
        };
        let mut fields = vec![];
        for (f, given) in [
            ("name", req.name.is_some()),
            ("notes", req.notes.is_some()),
            ("tags", req.tags.is_some()),
        ] {
            if given {
                fields.push(f);
            }
        }
        let audit = actor.audit(
            now,
            "contact.write",
            Some(address.to_string()),
            serde_json::json!({ "identity": owner.id, "fields": fields, "new": before.as_ref().is_none_or(|c| c.updated_at.is_none()) }),
        );
        self.store.write_contact(entry, audit).await
    }

    /// Removes an address book entry; the mail exchanged with the address stays recorded.
    pub async fn forget_contact(&self, actor: &Actor, address: &str, params: ContactParams) -> Result<Contact> {
        let owner = self.contacts_owner(actor, params.identity.as_deref(), true).await?;
        let address = EmailAddress::parse(address)?;
        let audit = actor.audit(
            self.clock.now(),
            "contact.forget",
            Some(address.to_string()),
            serde_json::json!({ "identity": owner.id }),
        );
        self.store
            .forget_contact(&owner.id, &address, audit)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => not_found().with_hint(
                    "only an address book entry (name, notes, tags) can be forgotten; this address has none",
                ),
                e => e,
            })
    }

    /// On a received message: what the reader's contacts say about its sender.
    pub(super) async fn attach_sender_contact(&self, owner: &IdentityId, mut m: Message) -> Result<Message> {
        if m.folder != Folder::Inbox {
            return Ok(m);
        }
        let c = self.store.get_contact(owner, &m.from).await?;
        // The mail itself is recorded too: known means mail was exchanged before it.
        let since = c.as_ref().and_then(Contact::known_since).filter(|s| *s < m.created_at);
        m.sender_contact = Some(SenderContact {
            known: since.is_some(),
            since,
            name: c.as_ref().and_then(|c| c.name.clone()),
            tags: c.map(|c| c.tags).unwrap_or_default(),
        });
        Ok(m)
    }
}
