//! Full-text search over one mailbox, with the `tsvector` column and GIN index
//! `20261214000000_search.sql` keeps.

use loft_core::Result;
use loft_core::ids::IdentityId;
use loft_core::search::{self, INDEXED_BODY_CHARS, SearchQuery, SearchRow, Term};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::db_err;
use crate::mail::{FROM_COPIES, summary, summary_cols};

/// The `tsquery` for `terms`: every one required, each a quoted lexeme (a term holds only
/// letters and digits, so it never needs escaping), a prefix marked with `:*`.
fn tsquery(terms: &[Term]) -> Result<String> {
    search::render(
        terms,
        |t| format!("'{}'{}", t.word, if t.prefix { ":*" } else { "" }),
        " & ",
    )
}

pub(crate) async fn search(pool: &PgPool, owner: &IdentityId, q: &SearchQuery) -> Result<Vec<SearchRow>> {
    // The page is chosen first from the index and the owner's rows alone; only its rows are
    // then read whole (labels, body).
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("WITH q AS (SELECT to_tsquery('simple', ");
    qb.push_bind(tsquery(&q.terms)?)
        .push(
            ") AS q), hits AS (SELECT m.seq AS seq, ts_rank(c.search, q.q) AS rank \
             FROM messages m JOIN mail_contents c ON c.id = m.content_id CROSS JOIN q \
             WHERE c.search @@ q.q AND m.owner_id = ",
        )
        .push_bind(owner.as_str().to_owned())
        // Trashed mail is out of search until it is restored (docs/mailbox.md).
        .push(" AND m.trashed_at IS NULL");
    if let Some(folder) = q.folder {
        qb.push(" AND m.folder = ").push_bind(folder.as_str());
    }
    // ts_rank weighs a match in the subject (A) most, then the people (B), then the body (D).
    qb.push(" ORDER BY rank DESC, m.seq DESC LIMIT ")
        .push_bind(i64::from(q.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(q.offset))
        .push(concat!(") SELECT ", summary_cols!(), ", left(c.body_text, "))
        .push(INDEXED_BODY_CHARS.to_string())
        .push(") AS body")
        .push(FROM_COPIES)
        .push(" JOIN hits ON hits.seq = m.seq ORDER BY hits.rank DESC, m.seq DESC");
    // Whether to walk the owner's mailbox or the index's matches depends on how rare the words
    // are and how big the mailbox is: planned for these values.
    let mut tx = crate::planned_for_values(pool).await?;
    let rows = qb.build().fetch_all(&mut *tx).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let (_, summary) = summary(row)?;
            Ok(SearchRow {
                summary,
                body: row.try_get("body").map_err(db_err)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_become_a_quoted_conjunction() {
        let t = |w: &str, prefix| Term { word: w.into(), prefix };
        assert_eq!(
            tsquery(&[t("invoice", false), t("ma", true)]).unwrap(),
            "'invoice' & 'ma':*"
        );
        assert!(tsquery(&[t("a'b", false)]).is_err());
        assert!(tsquery(&[]).is_err());
    }
}
