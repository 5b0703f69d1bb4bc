//! The drafts tools: compose a mail over several calls, then send it as `mail_send` (or, for a
//! draft answering a message, `mail_reply`) would.

use loft_core::keys::Scope;
use loft_core::service::{CreateDraftRequest, ListDraftsParams, SendDraftRequest, UpdateDraftRequest};
use schemars::JsonSchema;
use serde::Deserialize;

use super::mail::{AttachmentArg, new_attachments};
use super::{DEFAULT_LIMIT, Hints, OneOrMany, ToolDef, ToolSpec, opt_one_or_many};
use crate::views::{DraftDeletedView, DraftListView, DraftView, SentView};

/// Writing a draft changes only the caller's own drafts.
const OWN_DRAFT: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

pub(super) fn tools() -> Vec<ToolDef> {
    vec![
        ToolSpec {
            name: "drafts_create",
            title: "Start a draft",
            scopes: &[Scope::MailSend],
            hints: OWN_DRAFT,
            description: "Start a draft mail you can finish later: every field is optional, and recipients are \
                 checked only when you send it. With reply_to_message_id (a message in your mailbox) and no \
                 recipients it is addressed and titled as a reply to that message; attachments are files it \
                 will send (checked now, as for mail_send). Nothing is sent: finish it \
                 with drafts_update, send it with drafts_send. Returns the draft (draft_id).",
        }
        .calls(|api, a: CreateDraftArgs| async move {
            let req = CreateDraftRequest {
                to: a.to,
                cc: a.cc,
                bcc: a.bcc,
                subject: a.subject.unwrap_or_default(),
                text: a.text.unwrap_or_default(),
                html: a.html,
                reply_to: a.reply_to_message_id,
                attachments: new_attachments(a.attachments.unwrap_or_default()),
            };
            Ok(DraftView::from(api.create_draft(req).await?))
        }),
        ToolSpec {
            name: "drafts_update",
            title: "Edit a draft",
            scopes: &[Scope::MailSend],
            hints: Hints {
                idempotent: true,
                ..OWN_DRAFT
            },
            description: "Change a draft by draft_id: only the fields you give change (a list you give replaces \
                 the old one, attachments [] removes the files; html \"\" removes the HTML body; \
                 reply_to_message_id \"\" makes it a new conversation). Nothing is sent. Returns the draft as it is now.",
        }
        .calls(|api, a: UpdateDraftArgs| async move {
            let req = UpdateDraftRequest {
                to: a.to,
                cc: a.cc,
                bcc: a.bcc,
                subject: a.subject,
                text: a.text,
                html: a.html,
                reply_to: a.reply_to_message_id,
                attachments: a.attachments.map(new_attachments),
            };
            Ok(DraftView::from(api.update_draft(&a.draft_id, req).await?))
        }),
        ToolSpec {
            name: "drafts_list",
            title: "List drafts",
            scopes: &[Scope::MailRead],
            hints: Hints::READ,
            description: "List your drafts, newest first: draft_id, recipients, subject, a snippet of the text. \
                 Open one whole with drafts_get.",
        }
        .calls(|api, a: ListDraftsArgs| async move {
            let params = ListDraftsParams {
                limit: Some(a.limit.unwrap_or(DEFAULT_LIMIT)),
                cursor: a.page_token,
            };
            Ok(DraftListView::from(api.list_drafts(params).await?))
        }),
        ToolSpec {
            name: "drafts_get",
            title: "Read a draft",
            scopes: &[Scope::MailRead],
            hints: Hints::READ,
            description: "Open one of your drafts whole by draft_id: recipients, subject, text, HTML and the \
                 message it answers.",
        }
        .calls(|api, a: DraftIdArgs| async move { Ok(DraftView::from(api.get_draft(&a.draft_id).await?)) }),
        ToolSpec {
            name: "drafts_send",
            title: "Send a draft",
            scopes: &[Scope::MailSend],
            hints: Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: true,
            },
            description: "Send a draft by draft_id, exactly as mail_send (or, for a draft answering a message, \
                 mail_reply) would send its content: the same checks, and it may wait for a human reviewer \
                 (status pending_approval). The draft is gone once sent; a draft that fails a check (say a bad \
                 address) stays, so fix it with drafts_update and send again. Returns your sent copy.",
        }
        .calls(|api, a: SendDraftArgs| async move {
            let req = SendDraftRequest {
                idempotency_key: a.idempotency_key,
                send_at: a.send_at,
            };
            Ok(SentView::from(api.send_draft(&a.draft_id, req).await?))
        }),
        ToolSpec {
            name: "drafts_delete",
            title: "Delete a draft",
            scopes: &[Scope::MailSend],
            hints: Hints {
                read_only: false,
                destructive: true,
                idempotent: true,
                open_world: false,
            },
            description: "Delete one of your drafts for good, unsent: it cannot be restored. Returns {draft_id, deleted}; \
                 to send a draft instead, use drafts_send.",
        }
        .calls(|api, a: DraftIdArgs| async move {
            api.delete_draft(&a.draft_id).await?;
            Ok(DraftDeletedView {
                draft_id: a.draft_id,
                deleted: true,
            })
        }),
    ]
}

// ----- arguments ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct CreateDraftArgs {
    /// Recipient addresses (a list, or one address as a string); checked when the draft is sent.
    #[serde(default, deserialize_with = "opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    #[serde(default, deserialize_with = "opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub cc: Vec<String>,
    /// Blind carbon-copy recipients.
    #[serde(default, deserialize_with = "opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub bcc: Vec<String>,
    /// The subject: one line, at most 998 characters.
    #[serde(default)]
    pub subject: Option<String>,
    /// The plain-text body.
    #[serde(default, alias = "body")]
    pub text: Option<String>,
    /// An HTML version of the body.
    #[serde(default)]
    pub html: Option<String>,
    /// The message in your mailbox this draft answers (`msg_...`): sending it is then a reply.
    #[serde(default, alias = "reply_to")]
    pub reply_to_message_id: Option<String>,
    /// Optional: files to send with it (at most 20; together at most 1 MiB decoded unless the
    /// operator set another limit).
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentArg>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateDraftArgs {
    /// The draft to change (`drf_...`).
    pub draft_id: String,
    /// New recipients (replace the old ones).
    #[serde(default, deserialize_with = "loft_core::wire::opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub to: Option<Vec<String>>,
    /// New carbon-copy recipients (replace the old ones).
    #[serde(default, deserialize_with = "loft_core::wire::opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub cc: Option<Vec<String>>,
    /// New blind carbon-copy recipients (replace the old ones).
    #[serde(default, deserialize_with = "loft_core::wire::opt_one_or_many")]
    #[schemars(with = "Option<OneOrMany>")]
    pub bcc: Option<Vec<String>>,
    /// The new subject: one line, at most 998 characters.
    #[serde(default)]
    pub subject: Option<String>,
    /// The new plain-text body.
    #[serde(default, alias = "body")]
    pub text: Option<String>,
    /// The HTML body; "" removes it.
    #[serde(default)]
    pub html: Option<String>,
    /// The message answered (`msg_...`); "" makes the draft a new conversation.
    #[serde(default, alias = "reply_to")]
    pub reply_to_message_id: Option<String>,
    /// New files (replace the old ones; [] removes them all; null or left out keeps them).
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentArg>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListDraftsArgs {
    /// How many drafts per page, 1 to 200 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// The `next_page_token` of the previous page, to get the next one.
    #[serde(default, alias = "cursor")]
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DraftIdArgs {
    /// The draft (`drf_...`).
    pub draft_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendDraftArgs {
    /// The draft to send (`drf_...`).
    pub draft_id: String,
    /// Optional: any unique string (e.g. a UUID) for this intended send. If you are unsure
    /// whether an earlier call went through, call again with the same key: Loft returns the
    /// first result instead of sending twice (keys live 24 hours).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Optional: send later, at this RFC 3339 time (at most a year ahead), e.g.
    /// `2026-12-24T09:00:00Z`. Nothing reaches anyone before then; cancel with
    /// `mail_cancel_scheduled`.
    #[serde(default)]
    pub send_at: Option<String>,
}
