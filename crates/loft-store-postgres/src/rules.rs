//! The operator's allow / block / hold rules. Adding and removing are one transaction each
//! with their audit rows (no lock beyond the rows they touch; the unique index settles two
//! nodes adding the same rule at once); the send path reads the rules in effect for its
//! identities in one query.

use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::StorePage;
use loft_core::rules::{self, Rule, RuleAction, RuleDirection, RuleId, RulePattern};
use loft_core::store::{RuleQuery, RuleScope};
use loft_core::{Error, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{self, col};
use crate::{WriteTx, db_err};

const SELECT: &str = "SELECT seq, id, identity_id, direction, action, pattern, note, created_at, created_by FROM rules";

fn rule(row: &PgRow) -> Result<(i64, Rule)> {
    let id: String = col(row, "id")?;
    let direction: String = col(row, "direction")?;
    let action: String = col(row, "action")?;
    let pattern: String = col(row, "pattern")?;
    let identity: Option<String> = col(row, "identity_id")?;
    let r = Rule {
        direction: RuleDirection::parse_stored(&direction, &id)?,
        action: RuleAction::parse_stored(&action, &id)?,
        pattern: RulePattern::parse_stored(&pattern, &id)?,
        id: RuleId::from_trusted(id),
        identity: identity.map(IdentityId::from_trusted),
        note: col(row, "note")?,
        created_at: rows::ts(row, "created_at")?,
        created_by: col(row, "created_by")?,
    };
    Ok((col(row, "seq")?, r))
}

async fn add(pool: &PgPool, rule: &Rule, audit: AuditEntry) -> Result<()> {
    let mut w = WriteTx::begin(pool).await?;
    let pattern = rule.pattern.to_string();
    let identity = rule.identity.as_ref().map(IdentityId::as_str);
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM rules WHERE COALESCE(identity_id, '') = COALESCE($1, '') AND direction = $2 \
         AND action = $3 AND pattern = $4",
    )
    .bind(identity)
    .bind(rule.direction.as_str())
    .bind(rule.action.as_str())
    .bind(&pattern)
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    if let Some(id) = existing {
        return Err(rules::rule_exists(&id));
    }
    sqlx::query(
        "INSERT INTO rules (id, identity_id, direction, action, pattern, note, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(rule.id.as_str())
    .bind(identity)
    .bind(rule.direction.as_str())
    .bind(rule.action.as_str())
    .bind(&pattern)
    .bind(rule.note.as_deref())
    .bind(rule.created_at.as_micros())
    .bind(&rule.created_by)
    .execute(w.conn())
    .await
    .map_err(|e| {
        // Another node added the same rule since the look above.
        if e.as_database_error().and_then(|d| d.constraint()) == Some("rules_unique_idx") {
            rules::rule_exists("one added by another request at the same moment")
        } else {
            db_err(e)
        }
    })?;
    w.audit(audit).await?;
    w.commit().await
}

async fn get(pool: &PgPool, id: &RuleId) -> Result<Option<Rule>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    row.as_ref().map(|r| rule(r).map(|(_, r)| r)).transpose()
}

async fn remove(pool: &PgPool, id: &RuleId, audit: AuditEntry) -> Result<Rule> {
    let mut w = WriteTx::begin(pool).await?;
    let row = sqlx::query(
        "DELETE FROM rules WHERE id = $1 \
         RETURNING seq, id, identity_id, direction, action, pattern, note, created_at, created_by",
    )
    .bind(id.as_str())
    .fetch_optional(w.conn())
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        return Err(Error::not_found("rule"));
    };
    let (_, removed) = rule(&row)?;
    w.audit(audit).await?;
    w.commit().await?;
    Ok(removed)
}

async fn list(pool: &PgPool, q: &RuleQuery) -> Result<StorePage<Rule>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    qb.push(" WHERE TRUE");
    match &q.scope {
        RuleScope::All => {}
        RuleScope::Instance => {
            qb.push(" AND identity_id IS NULL");
        }
        RuleScope::InEffectFor(identity) => {
            qb.push(" AND (identity_id IS NULL OR identity_id = ")
                .push_bind(identity.as_str().to_owned())
                .push(")");
        }
    }
    if let Some(before) = q.before_seq {
        qb.push(" AND seq < ").push_bind(before);
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(rows::fetch_limit(q.limit));
    let found = qb.build().fetch_all(pool).await.map_err(db_err)?;
    let items = found.iter().map(rule).collect::<Result<Vec<_>>>()?;
    Ok(rows::page(items, q.limit))
}

async fn in_effect(pool: &PgPool, identities: &[IdentityId]) -> Result<Vec<Rule>> {
    let ids: Vec<&str> = identities.iter().map(IdentityId::as_str).collect();
    let found = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE identity_id IS NULL OR identity_id = ANY($1) ORDER BY seq"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    found.iter().map(|r| rule(r).map(|(_, r)| r)).collect()
}

#[async_trait::async_trait]
impl loft_core::store::RuleStore for crate::PostgresStore {
    async fn add_rule(&self, rule: Rule, audit: AuditEntry) -> Result<()> {
        self.wrote(self::add(&self.pool, &rule, audit).await)
    }

    async fn remove_rule(&self, id: &RuleId, audit: AuditEntry) -> Result<Rule> {
        self.wrote(self::remove(&self.pool, id, audit).await)
    }

    async fn get_rule(&self, id: &RuleId) -> Result<Option<Rule>> {
        self::get(&self.pool, id).await
    }

    async fn list_rules(&self, query: RuleQuery) -> Result<StorePage<Rule>> {
        self::list(&self.pool, &query).await
    }

    async fn rules_in_effect(&self, identities: &[IdentityId]) -> Result<Vec<Rule>> {
        self::in_effect(&self.pool, identities).await
    }
}
