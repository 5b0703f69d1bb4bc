//! The identity's operations the tools need (mail, vault and, for reviewers, held mail), behind
//! one small trait, so that the same tools serve both doors: [`LocalApi`] calls the use cases in
//! this process (the HTTP endpoint inside `loft serve`), and [`crate::RestApi`] calls a server
//! over REST (`loft mcp` on stdio).
//!
//! Every method acts as one identity and returns `loft-core` types and errors: deciding what is
//! allowed stays in the use cases (or the server behind REST), never here.

use std::sync::Arc;

use async_trait::async_trait;
use loft_core::Result;
use loft_core::contacts::Contact;
use loft_core::drafts::Draft;
use loft_core::identity::WhoAmI;
use loft_core::keys::ScopeSet;
use loft_core::mail::{ForwardMail, Message, MessagePatch, MessageSummary, ReplyMail, SendMail, Thread, ThreadSummary};
use loft_core::oversight::{Approval, ModeRequest};
use loft_core::search::SearchHit;
use loft_core::service::{
    Actor, ApprovalView, BackupCode, BatchDecision, BrokeredHttpRequest, BrokeredHttpResponse, CredentialView,
    DecideRequest, Deleted, EditHeldMail, ListApprovalsParams, ListCredentialsParams, ListMessagesParams,
    ListThreadsParams, Loft, Page, RejectRequest, RequestModeRequest, Shared, StoreCredentialRequest, WaitParams,
    WaitResult,
};
use loft_core::service::{
    CreateDraftRequest, GetThreadParams, ListContactsParams, ListDraftsParams, RescheduleRequest, SearchParams,
    SendDraftRequest, UpdateDraftRequest, UpsertContact,
};
use loft_core::vault::{CredentialMeta, TotpCode};

/// One identity's view of Loft (its mailbox and its vault): what the MCP tools call.
#[async_trait]
pub trait IdentityApi: Send + Sync {
    /// The scopes the caller's key carries now (they gate the tool list).
    async fn scopes(&self) -> Result<ScopeSet> {
        Ok(self.whoami().await?.scopes)
    }
    async fn whoami(&self) -> Result<WhoAmI>;
    async fn send(&self, req: SendMail) -> Result<Message>;
    async fn reply(&self, message_id: &str, req: ReplyMail) -> Result<Message>;
    async fn forward(&self, message_id: &str, req: ForwardMail) -> Result<Message>;
    async fn list_messages(&self, params: ListMessagesParams) -> Result<Page<MessageSummary>>;
    async fn search_messages(&self, params: SearchParams) -> Result<Page<SearchHit>>;
    async fn get_message(&self, message_id: &str) -> Result<Message>;
    /// Attachment `index` of a message: what its listing says, and its decoded bytes.
    async fn get_attachment(&self, message_id: &str, index: u32) -> Result<loft_core::service::AttachmentFile>;
    async fn update_message(&self, message_id: &str, patch: MessagePatch) -> Result<Message>;
    async fn list_threads(&self, params: ListThreadsParams) -> Result<Page<ThreadSummary>>;
    async fn get_thread(&self, thread_id: &str, params: GetThreadParams) -> Result<Thread>;
    /// Labels, read state, archive or trash on every copy of a thread.
    async fn update_thread(&self, thread_id: &str, patch: MessagePatch) -> Result<Thread>;
    /// Deletes a trashed message for ever.
    async fn delete_message(&self, message_id: &str) -> Result<Deleted>;
    /// Deletes a thread whose copies are all in the trash, for ever.
    async fn delete_thread(&self, thread_id: &str) -> Result<Deleted>;
    async fn wait_for_mail(&self, params: WaitParams) -> Result<WaitResult>;

    async fn list_contacts(&self, params: ListContactsParams) -> Result<Page<Contact>>;
    async fn upsert_contact(&self, req: UpsertContact) -> Result<Contact>;
    async fn create_draft(&self, req: CreateDraftRequest) -> Result<Draft>;
    async fn list_drafts(&self, params: ListDraftsParams) -> Result<Page<Draft>>;
    async fn get_draft(&self, draft_id: &str) -> Result<Draft>;
    async fn update_draft(&self, draft_id: &str, req: UpdateDraftRequest) -> Result<Draft>;
    async fn delete_draft(&self, draft_id: &str) -> Result<()>;
    /// Sends a draft as a send (or reply) of its content; the draft is gone afterwards.
    async fn send_draft(&self, draft_id: &str, req: SendDraftRequest) -> Result<Message>;
    /// Cancels a scheduled mail before its time.
    async fn cancel_scheduled(&self, message_id: &str) -> Result<Message>;
    /// Moves a scheduled mail to another time.
    async fn reschedule(&self, message_id: &str, req: RescheduleRequest) -> Result<Message>;

    /// Stores a credential in the caller's vault; returns its metadata (never the secret).
    async fn vault_store(&self, req: StoreCredentialRequest) -> Result<CredentialMeta>;
    async fn vault_list(&self, params: ListCredentialsParams) -> Result<Page<CredentialMeta>>;
    /// Metadata; with `reveal`, the plaintext secret fields (the use case requires `vault:reveal`).
    async fn vault_get(&self, name: &str, reveal: bool) -> Result<CredentialView>;
    async fn vault_delete(&self, name: &str) -> Result<()>;
    async fn vault_totp(&self, name: &str) -> Result<TotpCode>;
    async fn vault_totp_backup(&self, name: &str) -> Result<BackupCode>;
    /// A request with the credential injected; the response comes back with secrets redacted.
    async fn vault_http(&self, name: &str, req: BrokeredHttpRequest) -> Result<BrokeredHttpResponse>;

    /// Held mail, for a reviewer (the use cases require `oversight`).
    async fn list_approvals(&self, params: ListApprovalsParams) -> Result<Page<Approval>>;
    /// One approval with the whole held mail.
    async fn get_approval(&self, approval_id: &str) -> Result<ApprovalView>;
    /// Approves a held mail, which releases it to its recipients.
    async fn approve(&self, approval_id: &str) -> Result<Approval>;
    /// Rejects a held mail (a reason is required); it is never sent.
    async fn reject(&self, approval_id: &str, req: RejectRequest) -> Result<Approval>;
    /// One decision over several approvals; each succeeds or fails on its own.
    async fn decide_approvals(&self, req: DecideRequest) -> Result<BatchDecision>;
    /// Edits a pending held mail (the fields given replace the mail's); returns it as it now
    /// stands.
    async fn edit_approval(&self, approval_id: &str, req: EditHeldMail) -> Result<ApprovalView>;

    /// Asks the operator for another oversight mode for the calling identity.
    async fn request_mode(&self, req: RequestModeRequest) -> Result<ModeRequest>;
}

/// The use cases in this process, as one authenticated actor (one HTTP request at `/mcp`).
pub struct LocalApi {
    loft: Arc<Loft>,
    actor: Actor,
}

impl LocalApi {
    pub fn new(loft: Arc<Loft>, actor: Actor) -> Self {
        Self { loft, actor }
    }
}

#[async_trait]
impl IdentityApi for LocalApi {
    async fn scopes(&self) -> Result<ScopeSet> {
        Ok(self.actor.scopes())
    }
    async fn whoami(&self) -> Result<WhoAmI> {
        self.loft.whoami(&self.actor).await
    }
    async fn send(&self, req: SendMail) -> Result<Message> {
        self.loft.send(&self.actor, req).await
    }
    async fn reply(&self, message_id: &str, req: ReplyMail) -> Result<Message> {
        self.loft.reply(&self.actor, message_id, req).await
    }
    async fn forward(&self, message_id: &str, req: ForwardMail) -> Result<Message> {
        self.loft.forward(&self.actor, message_id, req).await
    }
    async fn list_messages(&self, params: ListMessagesParams) -> Result<Page<MessageSummary>> {
        self.loft
            .list_messages(&self.actor, params)
            .await
            .map(Shared::into_inner)
    }
    async fn search_messages(&self, params: SearchParams) -> Result<Page<SearchHit>> {
        self.loft.search_messages(&self.actor, params).await
    }
    async fn get_message(&self, message_id: &str) -> Result<Message> {
        self.loft.get_message(&self.actor, message_id).await
    }
    async fn get_attachment(&self, message_id: &str, index: u32) -> Result<loft_core::service::AttachmentFile> {
        self.loft.get_attachment(&self.actor, message_id, index).await
    }
    async fn update_message(&self, message_id: &str, patch: MessagePatch) -> Result<Message> {
        self.loft.update_message(&self.actor, message_id, patch).await
    }
    async fn list_threads(&self, params: ListThreadsParams) -> Result<Page<ThreadSummary>> {
        self.loft.list_threads(&self.actor, params).await
    }
    async fn get_thread(&self, thread_id: &str, params: GetThreadParams) -> Result<Thread> {
        self.loft.get_thread(&self.actor, thread_id, params).await
    }
    async fn update_thread(&self, thread_id: &str, patch: MessagePatch) -> Result<Thread> {
        self.loft.update_thread(&self.actor, thread_id, patch).await
    }
    async fn delete_message(&self, message_id: &str) -> Result<Deleted> {
        self.loft.delete_message(&self.actor, message_id).await
    }
    async fn delete_thread(&self, thread_id: &str) -> Result<Deleted> {
        self.loft.delete_thread(&self.actor, thread_id).await
    }
    async fn wait_for_mail(&self, params: WaitParams) -> Result<WaitResult> {
        self.loft.wait_for_mail(&self.actor, params).await
    }

    async fn list_contacts(&self, params: ListContactsParams) -> Result<Page<Contact>> {
        self.loft.list_contacts(&self.actor, params).await
    }
    async fn upsert_contact(&self, req: UpsertContact) -> Result<Contact> {
        self.loft.upsert_contact(&self.actor, req).await
    }
    async fn create_draft(&self, req: CreateDraftRequest) -> Result<Draft> {
        self.loft.create_draft(&self.actor, req).await
    }
    async fn list_drafts(&self, params: ListDraftsParams) -> Result<Page<Draft>> {
        self.loft.list_drafts(&self.actor, params).await
    }
    async fn get_draft(&self, draft_id: &str) -> Result<Draft> {
        self.loft.get_draft(&self.actor, draft_id).await
    }
    async fn update_draft(&self, draft_id: &str, req: UpdateDraftRequest) -> Result<Draft> {
        self.loft.update_draft(&self.actor, draft_id, req).await
    }
    async fn delete_draft(&self, draft_id: &str) -> Result<()> {
        self.loft.delete_draft(&self.actor, draft_id).await
    }
    async fn send_draft(&self, draft_id: &str, req: SendDraftRequest) -> Result<Message> {
        self.loft.send_draft(&self.actor, draft_id, req).await
    }
    async fn cancel_scheduled(&self, message_id: &str) -> Result<Message> {
        self.loft.cancel_scheduled(&self.actor, message_id).await
    }
    async fn reschedule(&self, message_id: &str, req: RescheduleRequest) -> Result<Message> {
        self.loft.reschedule(&self.actor, message_id, req).await
    }

    async fn vault_store(&self, req: StoreCredentialRequest) -> Result<CredentialMeta> {
        self.loft.vault_store(&self.actor, req).await
    }
    async fn vault_list(&self, params: ListCredentialsParams) -> Result<Page<CredentialMeta>> {
        self.loft.vault_list(&self.actor, params).await
    }
    async fn vault_get(&self, name: &str, reveal: bool) -> Result<CredentialView> {
        self.loft.vault_get(&self.actor, name, reveal).await
    }
    async fn vault_delete(&self, name: &str) -> Result<()> {
        self.loft.vault_delete(&self.actor, name).await
    }
    async fn vault_totp(&self, name: &str) -> Result<TotpCode> {
        self.loft.vault_totp(&self.actor, name).await
    }
    async fn vault_totp_backup(&self, name: &str) -> Result<BackupCode> {
        self.loft.vault_totp_backup(&self.actor, name).await
    }
    async fn vault_http(&self, name: &str, req: BrokeredHttpRequest) -> Result<BrokeredHttpResponse> {
        self.loft.vault_http(&self.actor, name, req).await
    }

    async fn list_approvals(&self, params: ListApprovalsParams) -> Result<Page<Approval>> {
        self.loft.list_approvals(&self.actor, params).await
    }
    async fn get_approval(&self, approval_id: &str) -> Result<ApprovalView> {
        self.loft.get_approval(&self.actor, approval_id).await
    }
    async fn approve(&self, approval_id: &str) -> Result<Approval> {
        self.loft.approve(&self.actor, approval_id).await
    }
    async fn reject(&self, approval_id: &str, req: RejectRequest) -> Result<Approval> {
        self.loft.reject(&self.actor, approval_id, req).await
    }
    async fn decide_approvals(&self, req: DecideRequest) -> Result<BatchDecision> {
        self.loft.decide_many(&self.actor, req).await
    }
    async fn edit_approval(&self, approval_id: &str, req: EditHeldMail) -> Result<ApprovalView> {
        self.loft.edit_approval(&self.actor, approval_id, req).await
    }

    async fn request_mode(&self, req: RequestModeRequest) -> Result<ModeRequest> {
        self.loft.request_mode(&self.actor, req).await
    }
}
