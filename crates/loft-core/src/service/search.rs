//! Searching one's own mailbox by words (`search` says what a query means).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Actor, Loft, Page};
use crate::keys::Scope;
use crate::mail::Folder;
use crate::search::{self, DEFAULT_HITS, MAX_HITS, MAX_OFFSET, SearchHit, SearchQuery};
use crate::{Error, Result};

/// `GET /v0/messages/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SearchParams {
    /// Words that must all occur in the subject, the sender or recipients, or the body (case
    /// does not matter; a word ending in `*` matches every word it begins). At most 500
    /// characters and 16 words.
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 500))]
    pub q: String,
    /// `all` (default), `inbox` or `sent`.
    pub folder: Option<String>,
    /// 1 to 100, default 20.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl Loft {
    /// The caller's own messages in which every word of the query occurs, best match first,
    /// each with where it matched.
    pub async fn search_messages(&self, actor: &Actor, params: SearchParams) -> Result<Page<SearchHit>> {
        let me = actor.require(Scope::MailRead)?;
        let terms = search::parse_query(&params.q)?;
        let folder = match params.folder.as_deref() {
            None | Some("all") => None,
            Some("inbox") => Some(Folder::Inbox),
            Some("sent") => Some(Folder::Sent),
            Some(other) => {
                return Err(Error::invalid("invalid_folder", format!("unknown folder `{other}`"))
                    .with_hint("use all, inbox or sent"));
            }
        };
        let limit = match params.limit {
            None => DEFAULT_HITS,
            Some(n) if (1..=MAX_HITS).contains(&n) => n,
            Some(n) => {
                return Err(Error::invalid(
                    "invalid_limit",
                    format!("limit must be between 1 and {MAX_HITS}, not {n}"),
                ));
            }
        };
        let offset = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => decode_offset(c)?,
        };
        let query = SearchQuery {
            terms,
            folder,
            // One more than asked, to know whether there is a next page.
            limit: limit + 1,
            offset,
        };
        let mut rows = self.store.search_messages(&me.id, &query).await?;
        let next = offset + limit;
        let next_cursor = (rows.len() > limit as usize && next < MAX_OFFSET).then(|| encode_offset(next));
        rows.truncate(limit as usize);
        let items = rows
            .into_iter()
            .map(|row| SearchHit {
                highlights: search::highlights(&row, &query.terms),
                message: row.summary,
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}

fn encode_offset(offset: u32) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("s1:{offset}"))
}

fn decode_offset(cursor: &str) -> Result<u32> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("s1:").and_then(|n| n.parse::<u32>().ok()))
        .filter(|n| *n < MAX_OFFSET)
        .ok_or_else(|| {
            Error::invalid(
                "invalid_cursor",
                "the cursor is not one this server issued for a search",
            )
            .with_hint("pass `next_cursor` from the previous page of the same search unchanged")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_offset(&encode_offset(40)).unwrap(), 40);
        for bad in ["", "x", &super::super::encode_cursor(5), &encode_offset(MAX_OFFSET)] {
            assert_eq!(decode_offset(bad).unwrap_err().code(), "invalid_cursor", "{bad}");
        }
    }
}
