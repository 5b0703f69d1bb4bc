//! Drafts: mail an identity is still composing.
//!
//! A draft belongs to one identity and is lenient while it is edited: its recipients are kept
//! as written (they need not be valid addresses yet), and only the bounds of a send apply to
//! each field (sizes, one-line subject, no NUL). Sending a draft runs the whole send: the same
//! validation, oversight gate, guard and quotas as `POST /v0/messages/send` (or, with
//! `reply_to`, as a reply), and the store deletes the draft in the transaction that writes the
//! mail ([`crate::mail::NewMail::consumes_draft`]), so a crash leaves either the draft or the
//! mail, never both and never neither.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::ids::{DraftId, IdentityId, MessageId};
use crate::mail::{Attachment, OutgoingFile, StorePage};
use crate::time::Timestamp;
use crate::{Error, Result};

/// The longest recipient a draft keeps, in bytes (a valid address is at most 64 + 1 + 253).
pub const MAX_DRAFT_ADDRESS: usize = 320;

/// One draft, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Draft {
    pub id: DraftId,
    /// Recipients as written; checked when the draft is sent.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The message (in the composer's own mailbox) this draft answers: sending it is then a
    /// reply, threaded with that message.
    pub reply_to: Option<MessageId>,
    /// The files it will send (name, type, size), in order; checked as a send's when written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Their bytes, kept for the send (not shown: `attachments` lists them). Set with
    /// [`Draft::set_files`], which keeps the listing in step.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub files: Vec<OutgoingFile>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Draft {
    /// Sets the draft's files and their listing.
    pub fn set_files(&mut self, files: Vec<OutgoingFile>) {
        self.attachments = list_files(&files);
        self.files = files;
    }
}

/// The listing of a draft's files.
pub fn list_files(files: &[OutgoingFile]) -> Vec<Attachment> {
    files
        .iter()
        .map(|f| Attachment {
            name: Some(f.filename.clone()),
            content_type: f.content_type.clone(),
            size: f.bytes.len() as u64,
            inline: false,
        })
        .collect()
}

/// A draft's file as stored (the stores keep the list as JSON text).
#[derive(Serialize, Deserialize)]
struct StoredFile {
    filename: String,
    content_type: String,
    base64: String,
}

/// A draft's files as the stores keep them: JSON text, each file's bytes in base64.
pub fn encode_files(files: &[OutgoingFile]) -> Result<String> {
    use base64::Engine as _;
    let stored: Vec<StoredFile> = files
        .iter()
        .map(|f| StoredFile {
            filename: f.filename.clone(),
            content_type: f.content_type.clone(),
            base64: base64::engine::general_purpose::STANDARD.encode(&f.bytes),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| Error::internal(format!("encoding a draft's files: {e}")))
}

/// The inverse of [`encode_files`].
pub fn decode_files(text: &str) -> Result<Vec<OutgoingFile>> {
    use base64::Engine as _;
    let stored: Vec<StoredFile> =
        serde_json::from_str(text).map_err(|e| Error::internal(format!("a draft's stored files do not parse: {e}")))?;
    stored
        .into_iter()
        .map(|f| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(f.base64)
                .map_err(|e| Error::internal(format!("a draft's stored file is not base64: {e}")))?;
            Ok(OutgoingFile {
                filename: f.filename,
                content_type: f.content_type,
                bytes,
            })
        })
        .collect()
}

/// Drafts, one identity's at a time (conformance: `drafts`). Another owner's draft behaves
/// exactly like a missing one. A draft is consumed by [`crate::store::MailStore::send_mail`]
/// with [`crate::mail::NewMail::consumes_draft`].
#[async_trait]
pub trait DraftStore: Send + Sync {
    /// Stores a new draft of `owner`, with its audit row.
    async fn create_draft(&self, owner: &IdentityId, draft: Draft, audit: AuditEntry) -> Result<()>;

    async fn get_draft(&self, owner: &IdentityId, id: &DraftId) -> Result<Option<Draft>>;

    /// Newest first; the cursor is a sequence number.
    async fn list_drafts(&self, owner: &IdentityId, before_seq: Option<i64>, limit: u32) -> Result<StorePage<Draft>>;

    /// Replaces the draft `(owner, draft.id)` (all its fields but `created_at`, its files
    /// included), with its audit
    /// row. `NotFound` when the owner has no such draft (it was sent or deleted meanwhile).
    async fn update_draft(&self, owner: &IdentityId, draft: Draft, audit: AuditEntry) -> Result<()>;

    /// `NotFound` when the owner has no such draft.
    async fn delete_draft(&self, owner: &IdentityId, id: &DraftId, audit: AuditEntry) -> Result<()>;

    /// How many drafts `owner` holds, for the `drafts` quota.
    async fn count_drafts(&self, owner: &IdentityId) -> Result<u64>;
}
