//! Full-text search over one mailbox, with the FTS5 index `0015_search.sql` keeps.

use loft_core::Result;
use loft_core::ids::IdentityId;
use loft_core::search::{self, INDEXED_BODY_CHARS, SearchQuery, SearchRow, Term};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::error::map_err;
use crate::mail::labels_of;
use crate::rows::{SummaryRow, summary_columns};

#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    body: String,
}

/// The FTS5 query for `terms`: every one required, each a quoted string (a term holds only
/// letters and digits, so it never needs escaping), a prefix marked with `*`.
fn fts5_query(terms: &[Term]) -> Result<String> {
    search::render(
        terms,
        |t| format!("\"{}\"{}", t.word, if t.prefix { "*" } else { "" }),
        " AND ",
    )
}

pub(crate) async fn search(conn: &mut SqliteConnection, owner: &IdentityId, q: &SearchQuery) -> Result<Vec<SearchRow>> {
    // The page is chosen first from the index and the owner's rows alone; only its rows are
    // then read whole. (With the columns in one query, SQLite would read every match's
    // summary and body into the sorter before cutting the page.) CROSS JOIN makes the index
    // the outer loop: otherwise the planner may walk the owner's whole mailbox and run the
    // full-text query once per message.
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
        "WITH hits AS (SELECT m.seq AS seq, bm25(message_search, 4.0, 2.0, 1.0) AS rank \
         FROM message_search CROSS JOIN messages m ON m.seq = message_search.rowid WHERE message_search MATCH ",
    );
    sql.push_bind(fts5_query(&q.terms)?)
        .push(" AND m.owner_id = ")
        .push_bind(owner.as_str().to_owned())
        // Trashed mail is out of search until it is restored (docs/mailbox.md).
        .push(" AND m.trashed_at IS NULL");
    if let Some(folder) = q.folder {
        sql.push(" AND m.folder = ").push_bind(folder.as_str());
    }
    // bm25: lower is better; a match in the subject weighs most, then the people.
    sql.push(" ORDER BY rank, m.seq DESC LIMIT ")
        .push_bind(i64::from(q.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(q.offset))
        .push(concat!(") SELECT ", summary_columns!(), ", substr(c.text, 1, "))
        .push(INDEXED_BODY_CHARS.to_string())
        .push(
            ") AS body FROM hits JOIN messages m ON m.seq = hits.seq \
             JOIN mail_contents c ON c.id = m.content_id ORDER BY hits.rank, m.seq DESC",
        );
    let rows: Vec<HitRow> = sql.build_query_as().fetch_all(&mut *conn).await.map_err(map_err)?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.summary.seq).collect();
    let mut labels = labels_of(conn, &seqs).await?;
    rows.into_iter()
        .map(|r| {
            let l = labels.remove(&r.summary.seq).unwrap_or_default();
            Ok(SearchRow {
                summary: r.summary.into_summary(l)?,
                body: r.body,
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
            fts5_query(&[t("invoice", false), t("ma", true)]).unwrap(),
            "\"invoice\" AND \"ma\"*"
        );
        assert!(fts5_query(&[t("a\"b", false)]).is_err());
        assert!(fts5_query(&[]).is_err());
    }
}
