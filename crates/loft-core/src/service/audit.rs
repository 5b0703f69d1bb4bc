//! The audit log as the doors see it: filtered lists for identities and the operator, and
//! the operator's export, head and server-side verification.

use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page, cursor, page, page_limit};
use crate::audit::{AuditQuery, AuditRecord, ChainHead, VerifyReport};
use crate::ids::IdentityId;
use crate::time::Timestamp;
use crate::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListAuditParams {
    /// Only rows whose actor is this identity (identity keys always see only their own).
    pub identity: Option<String>,
    /// An action (`mail.send`) or a prefix ending in `.` (`mail.`).
    pub action: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: Option<String>,
    /// RFC 3339; rows at or after.
    pub since: Option<String>,
    /// RFC 3339; rows before.
    pub until: Option<String>,
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /v0/audit/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditExportParams {
    /// Rows with a sequence number above this (default 0: from the start).
    #[serde(default)]
    pub after: i64,
    /// At most this many rows (1 to 10000, default 1000). Page with `after` = last seq.
    pub limit: Option<u32>,
}

impl Loft {
    pub async fn list_audit(&self, actor: &Actor, params: ListAuditParams) -> Result<Page<AuditRecord>> {
        let asked = params.identity.as_deref().map(IdentityId::parse).transpose()?;
        let actor_identity_id = match actor.identity() {
            None => asked,
            Some(me) => {
                if asked.as_ref().is_some_and(|a| a != &me.id) {
                    return Err(Error::forbidden(
                        "own_audit_only",
                        "an identity key sees only its own audit rows",
                    ));
                }
                Some(me.id.clone())
            }
        };
        let ts = |s: Option<&str>, field: &str| -> Result<Option<Timestamp>> {
            s.map(|s| {
                Timestamp::parse_rfc3339(s).ok_or_else(|| {
                    Error::invalid("invalid_time", format!("`{field}` is not an RFC 3339 time"))
                        .with_hint("e.g. 2026-11-22T14:00:00Z")
                })
            })
            .transpose()
        };
        let outcome = params
            .outcome
            .as_deref()
            .map(|o| {
                crate::audit::Outcome::parse(o).ok_or_else(|| {
                    Error::invalid("invalid_outcome", format!("unknown outcome `{o}`"))
                        .with_hint("use ok, denied or error")
                })
            })
            .transpose()?;
        if let Some(a) = &params.action {
            crate::text::refuse_nul("action", a)?;
        }
        let query = AuditQuery {
            actor_identity_id,
            action: params.action.filter(|a| !a.is_empty()),
            outcome,
            since: ts(params.since.as_deref(), "since")?,
            until: ts(params.until.as_deref(), "until")?,
            before_seq: cursor(params.cursor.as_deref())?,
            after_seq: None,
            limit: page_limit(params.limit)?,
        };
        Ok(page(self.store.list_audit(query).await?))
    }

    /// Rows after `after_seq`, oldest first (the whole chain, for export and verification).
    pub async fn audit_export(&self, actor: &Actor, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        Self::require_operator(actor, "exporting the whole audit log")?;
        self.store.audit_after(after_seq, limit.clamp(1, 10_000)).await
    }

    pub async fn audit_head(&self, actor: &Actor) -> Result<Option<ChainHead>> {
        Self::require_operator(actor, "reading the audit chain head")?;
        self.store.audit_head().await
    }

    /// Recomputes the whole chain on the server.
    pub async fn audit_verify(&self, actor: &Actor) -> Result<VerifyReport> {
        Self::require_operator(actor, "verifying the audit log")?;
        // Read the head first: rows appended while we read are after it and not checked.
        let head = self.store.audit_head().await?;
        let mut v = crate::audit::ChainVerifier::default();
        let mut after = 0;
        let end = head.as_ref().map_or(0, |h| h.seq);
        'outer: while after < end {
            let rows = self.store.audit_after(after, 1000).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if row.seq > end {
                    break 'outer;
                }
                if !v.push(row) {
                    break 'outer;
                }
                after = row.seq;
            }
        }
        Ok(v.finish(head))
    }
}
