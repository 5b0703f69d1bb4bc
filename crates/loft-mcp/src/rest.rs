//! [`RestApi`]: the identity's operations (mail, vault and held mail) over a Loft server's REST
//! API, for `loft mcp` on stdio.
//!
//! The stdio server holds no database and no secrets of its own: every call goes to the server
//! with the identity's key, through the shared typed client (`loft-client`), and the server
//! decides. Error answers (`{"error": {"code", "message", "hint"}}`) come back as the `loft-core`
//! error of their status, keeping the server's code, message and hint, so that a model sees the
//! same tool error JSON as over HTTP. Ids are checked locally before they are put into a URL path.
//!
//! The requests go out as the tools hand them over: the request and query types are
//! `loft-core`'s, which the server reads and `loft-client` sends, so nothing here copies a field.

use std::borrow::Cow;

use async_trait::async_trait;
use loft_client::api;
use loft_client::{ApiError, ClientError};
use loft_core::contacts::Contact;
use loft_core::drafts::Draft;
use loft_core::error::Detail;
use loft_core::identity::WhoAmI;
use loft_core::ids::{ApprovalId, DraftId, MessageId, ThreadId};
use loft_core::mail::{ForwardMail, Message, MessagePatch, MessageSummary, ReplyMail, SendMail, Thread, ThreadSummary};
use loft_core::oversight::{Approval, ModeRequest};
use loft_core::search::SearchHit;
use loft_core::service::{
    ApprovalView, BackupCode, BatchDecision, BrokeredHttpRequest, BrokeredHttpResponse, CredentialView, DecideRequest,
    EditHeldMail, ListApprovalsParams, ListCredentialsParams, ListMessagesParams, ListThreadsParams, Page,
    RejectRequest, RequestModeRequest, StoreCredentialRequest, WaitParams, WaitResult,
};
use loft_core::service::{
    CreateDraftRequest, GetThreadParams, ListContactsParams, ListDraftsParams, RescheduleRequest, SearchParams,
    SendDraftRequest, UpdateDraftRequest, UpsertContact,
};
use loft_core::vault::{CredentialMeta, TotpCode};
use loft_core::{Error, Result};
use reqwest::StatusCode;

use crate::api::IdentityApi;

/// Where `loft mcp` looks when `LOFT_URL` is not set.
pub const DEFAULT_URL: &str = loft_client::DEFAULT_URL;

/// One identity's mailbox on a Loft server, over REST.
pub struct RestApi {
    client: loft_client::Client,
}

impl std::fmt::Debug for RestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestApi")
            .field("base", &self.client.base_url())
            .finish_non_exhaustive()
    }
}

impl RestApi {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:7070`) acting with `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, String> {
        let key = api_key.trim();
        if key.is_empty() {
            return Err("the API key is empty".into());
        }
        let client = loft_client::Client::from_url(base_url.trim(), Some(key.to_owned())).map_err(|e| e.to_string())?;
        Ok(Self { client })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> String {
        self.client.base_url()
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, call: loft_client::Call<T>) -> Result<T> {
        self.client.call(call).await.map_err(from_client)
    }
}

/// A failed call, as the `loft-core` error it stands for.
fn from_client(e: ClientError) -> Error {
    match e {
        ClientError::Api(a) => from_api(a),
        // Said by this process, not by the server: the text is safe to log and to print.
        ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Transport { .. } => {
            Error::Unavailable(e.to_string())
        }
        ClientError::Decode { .. } | ClientError::InvalidUrl(_) => Error::Internal(e.to_string()),
    }
}

/// An error answer, as the `loft-core` error of its status, keeping the server's code, message
/// and hint.
fn from_api(a: ApiError) -> Error {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = Detail {
        code: Cow::Owned(a.code),
        message: a.message,
        hint: a.hint,
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthenticated(detail),
        StatusCode::FORBIDDEN => Error::Forbidden(detail),
        StatusCode::NOT_FOUND => Error::NotFound(detail),
        StatusCode::CONFLICT => Error::Conflict(detail),
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge(detail),
        StatusCode::SERVICE_UNAVAILABLE => Error::Unavailable(detail.message),
        // A rate limit, lockout or rate quota: a model sees it as it would at `/mcp` (the
        // server's code, message and hint; Loft's message names the seconds itself), and the
        // wait travels with it. A 429 without Loft's body (a proxy's) gets the wait of its
        // `Retry-After` into the message, since nothing else would say it.
        StatusCode::TOO_MANY_REQUESTS => {
            let mut detail = detail;
            if let (Some(secs), "http_429") = (a.retry_after, detail.code.as_ref()) {
                detail.message = format!("{}; retry after {secs} s", detail.message);
            }
            Error::TooManyRequests {
                detail,
                retry_after_secs: a.retry_after.unwrap_or(1).max(1),
            }
        }
        // Loft's own 502: a brokered request's remote host failed (`upstream_failed`,
        // `upstream_timeout`), said to the model as at `/mcp`. A 502 without Loft's error body
        // (`http_502`, a proxy's) is not that.
        StatusCode::BAD_GATEWAY if detail.code != "http_502" => Error::Upstream(detail),
        s if s.is_client_error() => Error::Invalid(detail),
        s => Error::Internal(format!("the server answered {s}: {}: {}", detail.code, detail.message)),
    }
}

#[async_trait]
impl IdentityApi for RestApi {
    async fn whoami(&self) -> Result<WhoAmI> {
        self.call(api::whoami()).await
    }

    async fn send(&self, req: SendMail) -> Result<Message> {
        self.call(api::send_mail(&req)).await
    }

    async fn reply(&self, message_id: &str, req: ReplyMail) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::reply(id.as_str(), &req)).await
    }

    async fn forward(&self, message_id: &str, req: ForwardMail) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::forward(id.as_str(), &req)).await
    }

    async fn list_messages(&self, p: ListMessagesParams) -> Result<Page<MessageSummary>> {
        self.call(api::list_messages(&p)).await
    }

    async fn search_messages(&self, p: SearchParams) -> Result<Page<SearchHit>> {
        self.call(api::search_messages(&p)).await
    }

    async fn get_message(&self, message_id: &str) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::get_message(id.as_str())).await
    }

    async fn get_attachment(&self, message_id: &str, index: u32) -> Result<loft_core::service::AttachmentFile> {
        let id = MessageId::parse(message_id)?;
        // The listing (name, type) from the message, the bytes from their own route.
        let m: Message = self.call(api::get_message(id.as_str())).await?;
        let attachment = m
            .attachments
            .get(index as usize)
            .cloned()
            .ok_or_else(|| loft_core::Error::not_found("attachment"))?;
        let bytes = self
            .client
            .call_bytes(api::get_attachment(id.as_str(), index))
            .await
            .map_err(from_client)?;
        Ok(loft_core::service::AttachmentFile { attachment, bytes })
    }

    async fn update_message(&self, message_id: &str, patch: MessagePatch) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::update_message(id.as_str(), &patch)).await
    }

    async fn list_threads(&self, p: ListThreadsParams) -> Result<Page<ThreadSummary>> {
        self.call(api::list_threads(&p)).await
    }

    async fn get_thread(&self, thread_id: &str, params: GetThreadParams) -> Result<Thread> {
        let id = ThreadId::parse(thread_id)?;
        self.call(api::get_thread(id.as_str(), &params)).await
    }

    async fn update_thread(&self, thread_id: &str, patch: MessagePatch) -> Result<Thread> {
        let id = ThreadId::parse(thread_id)?;
        self.call(api::update_thread(id.as_str(), &patch)).await
    }

    async fn delete_message(&self, message_id: &str) -> Result<api::Deleted> {
        let id = MessageId::parse(message_id)?;
        self.call(api::delete_message(id.as_str())).await
    }

    async fn delete_thread(&self, thread_id: &str) -> Result<api::Deleted> {
        let id = ThreadId::parse(thread_id)?;
        self.call(api::delete_thread(id.as_str())).await
    }

    async fn wait_for_mail(&self, p: WaitParams) -> Result<WaitResult> {
        self.call(api::wait_for_mail(&p)).await
    }

    async fn vault_store(&self, req: StoreCredentialRequest) -> Result<CredentialMeta> {
        self.call(api::vault_put(&req)).await
    }

    async fn vault_list(&self, p: ListCredentialsParams) -> Result<Page<CredentialMeta>> {
        self.call(api::vault_list(&p)).await
    }

    async fn vault_get(&self, name: &str, reveal: bool) -> Result<CredentialView> {
        self.call(api::vault_get(&credential_name(name)?, reveal)).await
    }

    async fn list_contacts(&self, params: ListContactsParams) -> Result<Page<Contact>> {
        self.call(api::list_contacts(&params)).await
    }

    async fn upsert_contact(&self, req: UpsertContact) -> Result<Contact> {
        self.call(api::upsert_contact(&req)).await
    }

    async fn create_draft(&self, req: CreateDraftRequest) -> Result<Draft> {
        self.call(api::create_draft(&req)).await
    }

    async fn list_drafts(&self, params: ListDraftsParams) -> Result<Page<Draft>> {
        self.call(api::list_drafts(&params)).await
    }

    async fn get_draft(&self, draft_id: &str) -> Result<Draft> {
        let id = DraftId::parse(draft_id)?;
        self.call(api::get_draft(id.as_str())).await
    }

    async fn update_draft(&self, draft_id: &str, req: UpdateDraftRequest) -> Result<Draft> {
        let id = DraftId::parse(draft_id)?;
        self.call(api::update_draft(id.as_str(), &req)).await
    }

    async fn delete_draft(&self, draft_id: &str) -> Result<()> {
        let id = DraftId::parse(draft_id)?;
        // 204 No Content: there is no JSON to decode.
        self.client
            .call_bytes(api::delete_draft(id.as_str()))
            .await
            .map_err(from_client)?;
        Ok(())
    }

    async fn send_draft(&self, draft_id: &str, req: SendDraftRequest) -> Result<Message> {
        let id = DraftId::parse(draft_id)?;
        self.call(api::send_draft(id.as_str(), &req)).await
    }

    async fn cancel_scheduled(&self, message_id: &str) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::cancel_scheduled(id.as_str())).await
    }

    async fn reschedule(&self, message_id: &str, req: RescheduleRequest) -> Result<Message> {
        let id = MessageId::parse(message_id)?;
        self.call(api::reschedule(id.as_str(), &req)).await
    }

    async fn vault_delete(&self, name: &str) -> Result<()> {
        // 204 No Content: there is no JSON to decode.
        self.client
            .call_bytes(api::vault_delete(&credential_name(name)?))
            .await
            .map_err(from_client)?;
        Ok(())
    }

    async fn vault_totp(&self, name: &str) -> Result<TotpCode> {
        self.call(api::vault_totp(&credential_name(name)?)).await
    }

    async fn vault_totp_backup(&self, name: &str) -> Result<BackupCode> {
        self.call(api::vault_totp_backup(&credential_name(name)?)).await
    }

    async fn vault_http(&self, name: &str, req: BrokeredHttpRequest) -> Result<BrokeredHttpResponse> {
        self.call(api::vault_http(&credential_name(name)?, &req)).await
    }

    async fn list_approvals(&self, p: ListApprovalsParams) -> Result<Page<Approval>> {
        self.call(api::list_approvals(&p)).await
    }

    async fn get_approval(&self, approval_id: &str) -> Result<ApprovalView> {
        let id = ApprovalId::parse(approval_id)?;
        self.call(api::get_approval(id.as_str())).await
    }

    async fn approve(&self, approval_id: &str) -> Result<Approval> {
        let id = ApprovalId::parse(approval_id)?;
        self.call(api::approve(id.as_str())).await
    }

    async fn reject(&self, approval_id: &str, req: RejectRequest) -> Result<Approval> {
        let id = ApprovalId::parse(approval_id)?;
        self.call(api::reject(id.as_str(), &req)).await
    }

    async fn decide_approvals(&self, req: DecideRequest) -> Result<BatchDecision> {
        // The ids go in the body, not a path: the server checks them, each on its own.
        self.call(api::decide_approvals(&req)).await
    }

    async fn edit_approval(&self, approval_id: &str, req: EditHeldMail) -> Result<ApprovalView> {
        let id = ApprovalId::parse(approval_id)?;
        self.call(api::edit_approval(id.as_str(), &req)).await
    }

    async fn request_mode(&self, req: RequestModeRequest) -> Result<ModeRequest> {
        self.call(api::request_mode(&req)).await
    }
}

/// A credential name, checked before it goes into a URL path. A name that cannot exist is
/// answered as the server answers an unknown one.
fn credential_name(name: &str) -> Result<String> {
    loft_core::vault::validate_name(name).map_err(|_| Error::not_found("credential"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should fail loudly at the first surprise")]
mod tests {
    use super::*;

    #[test]
    fn keys_and_urls_are_checked() {
        assert!(RestApi::new("127.0.0.1:7070", "k").is_err());
        assert!(RestApi::new("ftp://127.0.0.1", "k").is_err());
        assert!(RestApi::new("http://127.0.0.1:7070", " ").is_err());
        let api = RestApi::new("http://127.0.0.1:7070/", "loft_sk_secret").unwrap();
        assert!(!format!("{api:?}").contains("secret"));
    }

    fn api_error(status: u16, code: &str) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: "m".into(),
            hint: Some("h".into()),
            request_id: None,
            retry_after: None,
        }
    }

    // That a store request sends only the fields given is `loft-client`'s test
    // `vault_bodies_carry_only_the_fields_given`: the body is the shared request type's.
    #[test]
    fn credential_names_are_checked_before_they_go_into_a_path() {
        assert_eq!(credential_name("../admin").unwrap_err().code(), "not_found");
        assert_eq!(credential_name("crm").unwrap(), "crm");
    }

    #[test]
    fn error_answers_keep_code_message_and_hint() {
        let e = from_api(ApiError {
            status: 403,
            code: "missing_scope".into(),
            message: "this key lacks the scope `mail:send`".into(),
            hint: Some("use another key".into()),
            request_id: Some("req_1".into()),
            retry_after: None,
        });
        assert!(matches!(e, Error::Forbidden(_)));
        assert_eq!(
            (e.code().as_ref(), e.public_message(), e.hint()),
            (
                "missing_scope",
                "this key lacks the scope `mail:send`".to_owned(),
                Some("use another key".to_owned())
            )
        );
        assert!(matches!(
            from_api(api_error(401, "unauthenticated")),
            Error::Unauthenticated(_)
        ));
        assert!(matches!(from_api(api_error(404, "not_found")), Error::NotFound(_)));
        assert_eq!(
            from_api(api_error(422, "unknown_recipient")).code(),
            "unknown_recipient"
        );
        let e = from_api(api_error(413, "attachment_too_large"));
        assert!(matches!(e, Error::TooLarge(_)), "{e:?}");
        assert_eq!(e.code(), "attachment_too_large");
        assert_eq!(from_api(api_error(502, "http_502")).code(), "internal");
        let e = from_api(api_error(502, "upstream_failed"));
        assert!(matches!(e, Error::Upstream(_)), "{e:?}");
        assert_eq!((e.code().as_ref(), e.hint()), ("upstream_failed", Some("h".to_owned())));
        assert_eq!(from_api(api_error(503, "unavailable")).code(), "unavailable");
        let e = from_client(ClientError::Connect {
            url: "http://127.0.0.1:9".into(),
            reason: "refused".into(),
        });
        assert_eq!(e.code(), "unavailable");
    }

    #[test]
    fn a_rate_limit_keeps_its_wait() {
        // Loft's own 429: the error a model sees is the one `/mcp` would show for it.
        let limited = ApiError {
            status: 429,
            code: "rate_limited".into(),
            message: "too many requests with this key; try again in 7 s".into(),
            hint: Some("slow down".into()),
            request_id: None,
            retry_after: Some(7),
        };
        let e = from_api(limited);
        assert!(
            matches!(
                e,
                Error::TooManyRequests {
                    retry_after_secs: 7,
                    ..
                }
            ),
            "{e:?}"
        );
        let at_mcp = crate::ToolError::from(
            Error::too_many("rate_limited", "too many requests with this key; try again in 7 s", 7)
                .with_hint("slow down"),
        );
        assert_eq!(crate::ToolError::from(e), at_mcp);
        // A proxy's 429: its Retry-After is the only place the wait is said.
        let proxy = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, b"<html>slow down</html>");
        let e = from_api(ApiError {
            retry_after: Some(30),
            ..proxy
        });
        assert!(
            matches!(
                e,
                Error::TooManyRequests {
                    retry_after_secs: 30,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(crate::ToolError::from(e).message.ends_with("retry after 30 s"));
    }
}
