//! Contacts: each identity's address book.
//!
//! A contact joins two things about one address, per identity:
//! - **correspondence**, written only by mail ([`crate::caps::Correspondence`]): when the
//!   identity first wrote to the address, first received mail from it, and last exchanged mail
//!   with it. First-contact gating and the new-recipients caps read this and nothing else, so
//!   an address is *known* only once mail was exchanged with it;
//! - **the address book entry**, written by hand (by the identity's key with `mail:manage`, or
//!   by the operator): a name, notes and tags.
//!
//! Writing an entry never makes an address known to the gate (an agent cannot let its own mail
//! past first-contact gating by adding a contact), and forgetting one removes only what was
//! written by hand (an agent cannot reset its new-recipients count). The design is in
//! docs/contacts.md.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::audit::AuditEntry;
use crate::ids::IdentityId;
use crate::time::Timestamp;
use crate::{Error, Result};

/// The longest name, in characters.
pub const MAX_CONTACT_NAME: usize = 200;
/// The longest notes, in characters.
pub const MAX_CONTACT_NOTES: usize = 2000;
/// The most tags on one contact.
pub const MAX_CONTACT_TAGS: usize = 20;
/// The most address book entries one identity keeps.
pub const MAX_ADDRESS_BOOK: u64 = 10_000;

/// One address an identity exchanged mail with or wrote down (`GET /v0/contacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    pub address: EmailAddress,
    /// From the address book (`null`: none written).
    pub name: Option<String>,
    /// From the address book.
    pub notes: Option<String>,
    /// From the address book, sorted.
    pub tags: Vec<String>,
    /// `true` once mail was exchanged with the address (written to, or received from):
    /// first-contact gating lets mail to a known address through. An address book entry alone
    /// never makes an address known.
    pub known: bool,
    /// When the identity first wrote to it (held mail counts from its approval).
    pub first_sent_at: Option<Timestamp>,
    /// When the identity first received mail from it.
    pub first_received_at: Option<Timestamp>,
    /// When mail was last exchanged with it.
    pub last_mail_at: Option<Timestamp>,
    /// When the address book entry was last written (`null`: there is none).
    pub updated_at: Option<Timestamp>,
}

impl Contact {
    /// When the identity and this address first exchanged mail, either way.
    pub fn known_since(&self) -> Option<Timestamp> {
        match (self.first_sent_at, self.first_received_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a message view says about its sender, from the reader's contacts (`sender_contact` on
/// received mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SenderContact {
    /// Mail was exchanged with the sender before this one.
    pub known: bool,
    /// Since when (the first mail either way), when known.
    pub since: Option<Timestamp>,
    /// The name the reader's address book gives the sender.
    pub name: Option<String>,
    /// The tags the reader's address book gives the sender.
    pub tags: Vec<String>,
}

/// The address book part of a contact, as the store writes it (name, notes and tags already
/// checked and normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBookEntry {
    pub identity: IdentityId,
    pub address: EmailAddress,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub at: Timestamp,
}

/// What `list_contacts` reads: one identity's contacts in address order.
#[derive(Debug, Clone)]
pub struct ContactQuery {
    /// Only addresses or names containing this, literally; ASCII letters match either case
    /// (given lowercased). Other letters match only as written, on both backends alike.
    pub text: Option<String>,
    /// Only contacts with this tag.
    pub tag: Option<String>,
    /// Only contacts with mail exchanged (`true`) or without (`false`).
    pub known: Option<bool>,
    /// Cursor: only addresses after this one.
    pub after: Option<String>,
    pub limit: u32,
}

/// Contacts (conformance: `contacts`). Correspondence rows are written by mail
/// ([`crate::store::SendingStore`]); this trait reads them joined with the address book and
/// writes the address book.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// `identity`'s contacts, at most `query.limit`, in address order (byte order).
    async fn list_contacts(&self, identity: &IdentityId, query: &ContactQuery) -> Result<Vec<Contact>>;

    /// One contact, or `None` when the identity neither exchanged mail with the address nor
    /// wrote it down.
    async fn get_contact(&self, identity: &IdentityId, address: &EmailAddress) -> Result<Option<Contact>>;

    /// Inserts or replaces the address book entry, with its audit row; answers the contact as
    /// it now is. Refuses a new entry past [`MAX_ADDRESS_BOOK`] (409 `address_book_full`).
    async fn write_contact(&self, entry: AddressBookEntry, audit: AuditEntry) -> Result<Contact>;

    /// Removes the address book entry, with its audit row; answers the contact as it was
    /// before. `NotFound` when there is no entry (mail exchanged stays recorded either way).
    async fn forget_contact(&self, identity: &IdentityId, address: &EmailAddress, audit: AuditEntry)
    -> Result<Contact>;
}

/// The refusal of a new address book entry past [`MAX_ADDRESS_BOOK`].
pub fn address_book_full() -> Error {
    Error::conflict(
        "address_book_full",
        format!("an identity keeps at most {MAX_ADDRESS_BOOK} address book entries"),
    )
    .with_hint("forget entries you no longer need (DELETE /v0/contacts/{address})")
}

/// A name or notes a client sent: trimmed (`""` clears), one line for a name, no NUL, at most
/// `max` characters.
pub fn parse_text(field: &str, value: &str, max: usize, one_line: bool) -> Result<Option<String>> {
    crate::text::refuse_nul(field, value)?;
    let v = value.trim();
    if one_line && v.contains(['\r', '\n']) {
        return Err(Error::invalid(
            "invalid_contact",
            format!("`{field}` is one line: it contains a line break"),
        ));
    }
    let n = v.chars().count();
    if n > max {
        return Err(Error::invalid(
            "invalid_contact",
            format!("`{field}` is at most {max} characters, not {n}"),
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// Tags a client sent: each a label (letters, digits and `_-:./`, lowercased), each once,
/// sorted, at most [`MAX_CONTACT_TAGS`].
pub fn parse_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out = tags
        .iter()
        .map(|t| crate::mail::parse_label(t).map_err(|_| invalid_tag(t)))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    out.dedup();
    if out.len() > MAX_CONTACT_TAGS {
        return Err(Error::invalid(
            "invalid_contact",
            format!("at most {MAX_CONTACT_TAGS} tags per contact, not {}", out.len()),
        ));
    }
    Ok(out)
}

fn invalid_tag(t: &str) -> Error {
    Error::invalid(
        "invalid_tag",
        format!("`{}` is not a valid tag", crate::text::printable(t, 80)),
    )
    .with_hint("a tag is 1 to 64 letters, digits and `_-:./`, like a label")
}

/// The columns every store selects for a contact, in this order: the address, then from the
/// correspondence `first_sent_at`, `first_received_at` and `last_at` (NULL: no mail exchanged),
/// then from the address book `name`, `notes`, `tags` (a JSON array) and `updated_at` (NULL: no
/// entry). Times in microseconds.
pub type ContactRow = (
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A contact from its row (see [`ContactRow`]).
pub fn from_row(row: ContactRow) -> Result<Contact> {
    let (address, sent, received, last, name, notes, tags, updated) = row;
    let tags = match (&tags, updated) {
        (Some(json), Some(_)) => serde_json::from_str::<Vec<String>>(json)
            .map_err(|e| Error::internal(format!("decoding the tags of contact {address}: {e}")))?,
        _ => vec![],
    };
    let written = updated.is_some();
    Ok(Contact {
        address: EmailAddress::from_trusted(address),
        name: if written { name } else { None },
        notes: if written { notes } else { None },
        tags,
        known: last.is_some(),
        first_sent_at: sent.map(Timestamp::from_micros),
        first_received_at: received.map(Timestamp::from_micros),
        last_mail_at: last.map(Timestamp::from_micros),
        updated_at: updated.map(Timestamp::from_micros),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_notes_and_tags_are_checked() {
        assert_eq!(parse_text("name", "  Bob  ", 10, true).unwrap().as_deref(), Some("Bob"));
        assert_eq!(parse_text("name", "   ", 10, true).unwrap(), None);
        assert!(parse_text("name", "a\nb", 10, true).is_err());
        assert!(parse_text("notes", "a\nb", 10, false).is_ok());
        assert!(parse_text("name", "a\0", 10, true).is_err());
        assert!(parse_text("name", &"é".repeat(11), 10, true).is_err());
        assert!(parse_text("name", &"é".repeat(10), 10, true).is_ok());
        let t = parse_tags(&["VIP".into(), "vip".into(), "client".into()]).unwrap();
        assert_eq!(t, ["client", "vip"]);
        assert_eq!(parse_tags(&["no space".into()]).unwrap_err().code(), "invalid_tag");
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many).is_err());
    }
}
