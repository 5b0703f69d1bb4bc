//! The operator's allow / block / hold rules. Adding and removing go through the writer with
//! their audit rows; the send path reads the rules in effect for its identities in one query.

use loft_core::audit::AuditEntry;
use loft_core::ids::IdentityId;
use loft_core::mail::StorePage;
use loft_core::rules::{self, Rule, RuleAction, RuleDirection, RuleId, RulePattern};
use loft_core::store::{RuleQuery, RuleScope};
use loft_core::time::Timestamp;
use loft_core::{Error, Result};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::error::map_err;
use crate::{audit, page_limit, paged};

/// The rule columns, in the order [`Row`] reads them.
macro_rules! rule_columns {
    () => {
        "seq, id, identity_id, direction, action, pattern, note, created_at, created_by"
    };
}

crate::rows::sql_row! {
struct Row {
    seq: i64,
    id: String,
    identity_id: Option<String>,
    direction: String,
    action: String,
    pattern: String,
    note: Option<String>,
    created_at: i64,
    created_by: String,
}
}

impl Row {
    fn into_rule(self) -> Result<Rule> {
        Ok(Rule {
            direction: RuleDirection::parse_stored(&self.direction, &self.id)?,
            action: RuleAction::parse_stored(&self.action, &self.id)?,
            pattern: RulePattern::parse_stored(&self.pattern, &self.id)?,
            id: RuleId::from_trusted(self.id),
            identity: self.identity_id.map(IdentityId::from_trusted),
            note: self.note,
            created_at: Timestamp::from_micros(self.created_at),
            created_by: self.created_by,
        })
    }
}

async fn add(conn: &mut SqliteConnection, rule: Rule, audit_entry: AuditEntry) -> Result<()> {
    let pattern = rule.pattern.to_string();
    let identity = rule.identity.as_ref().map(|i| i.as_str().to_owned());
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM rules WHERE COALESCE(identity_id, '') = COALESCE(?, '') AND direction = ? AND action = ? \
         AND pattern = ?",
    )
    .bind(identity.clone())
    .bind(rule.direction.as_str())
    .bind(rule.action.as_str())
    .bind(pattern.clone())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    if let Some(id) = existing {
        return Err(rules::rule_exists(&id));
    }
    sqlx::query(
        "INSERT INTO rules (id, identity_id, direction, action, pattern, note, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(rule.id.as_str().to_owned())
    .bind(identity)
    .bind(rule.direction.as_str())
    .bind(rule.action.as_str())
    .bind(pattern)
    .bind(rule.note)
    .bind(rule.created_at.as_micros())
    .bind(rule.created_by)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(())
}

async fn get(conn: &mut SqliteConnection, id: &RuleId) -> Result<Option<Rule>> {
    let row: Option<Row> = sqlx::query_as(concat!("SELECT ", rule_columns!(), " FROM rules WHERE id = ?"))
        .bind(id.as_str().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    row.map(Row::into_rule).transpose()
}

async fn remove(conn: &mut SqliteConnection, id: RuleId, audit_entry: AuditEntry) -> Result<Rule> {
    let rule = get(conn, &id).await?.ok_or_else(|| Error::not_found("rule"))?;
    sqlx::query("DELETE FROM rules WHERE id = ?")
        .bind(id.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    audit::append(conn, audit_entry).await?;
    Ok(rule)
}

async fn list(conn: &mut SqliteConnection, q: RuleQuery) -> Result<StorePage<Rule>> {
    let limit = page_limit(q.limit);
    let mut sql: QueryBuilder<Sqlite> =
        QueryBuilder::new(concat!("SELECT ", rule_columns!(), " FROM rules WHERE 1 = 1"));
    match &q.scope {
        RuleScope::All => {}
        RuleScope::Instance => {
            sql.push(" AND identity_id IS NULL");
        }
        RuleScope::InEffectFor(identity) => {
            sql.push(" AND (identity_id IS NULL OR identity_id = ")
                .push_bind(identity.as_str().to_owned())
                .push(")");
        }
    }
    if let Some(before) = q.before_seq {
        sql.push(" AND seq < ").push_bind(before);
    }
    sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(limit) + 1);
    let rows: Vec<Row> = sql.build_query_as().fetch_all(&mut *conn).await.map_err(map_err)?;
    let page = paged(rows, limit, |r| r.seq);
    Ok(StorePage {
        items: page.items.into_iter().map(Row::into_rule).collect::<Result<_>>()?,
        next_before: page.next_before,
    })
}

/// The rules that apply to `identities`: the instance's and theirs, in order. The ids are
/// bound as one JSON array, so the statement is one cached shape whatever their number.
fn in_effect(conn: &rusqlite::Connection, identities: &[IdentityId]) -> Result<Vec<Rule>> {
    use crate::rows::ReadRow as _;
    let ids: Vec<&str> = identities.iter().map(IdentityId::as_str).collect();
    let ids = crate::rows::to_json(&ids, "identities")?;
    let rows: Vec<Row> = conn
        .prepare_cached(concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules ",
            "WHERE identity_id IS NULL OR identity_id IN (SELECT value FROM json_each(?1)) ORDER BY seq"
        ))
        .and_then(|mut st| st.query_map([ids], Row::from_row)?.collect())
        .map_err(crate::error::map_rusqlite)?;
    rows.into_iter().map(Row::into_rule).collect()
}

#[async_trait::async_trait]
impl loft_core::store::RuleStore for crate::SqliteStore {
    async fn add_rule(&self, rule: Rule, audit: AuditEntry) -> Result<()> {
        self.write(move |c| Box::pin(self::add(c, rule, audit))).await
    }

    async fn remove_rule(&self, id: &RuleId, audit: AuditEntry) -> Result<Rule> {
        let id = id.clone();
        self.write(move |c| Box::pin(self::remove(c, id, audit))).await
    }

    async fn get_rule(&self, id: &RuleId) -> Result<Option<Rule>> {
        let mut tx = self.reading().await?;
        let out = self::get(&mut tx, id).await;
        crate::done(tx, out).await
    }

    async fn list_rules(&self, query: RuleQuery) -> Result<StorePage<Rule>> {
        let mut tx = self.reading().await?;
        let out = self::list(&mut tx, query).await;
        crate::done(tx, out).await
    }

    async fn rules_in_effect(&self, identities: &[IdentityId]) -> Result<Vec<Rule>> {
        let identities = identities.to_vec();
        self.hot(crate::hot::Cost::Short, move |c| self::in_effect(c, &identities))
            .await
    }
}
