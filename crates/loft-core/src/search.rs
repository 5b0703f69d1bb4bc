//! Full-text search over one mailbox: what a query means, and the highlights of a hit.
//!
//! Both stores index the same three fields of each copy: the subject, the people (sender's
//! address and name, To and Cc; never Bcc) and the body text (its first [`INDEXED_BODY_CHARS`]
//! characters). Both cut text into words the same way: a word is a run of letters and digits,
//! anything else separates words (`alice@example.com` is the words `alice`, `example`, `com`),
//! and case does not matter. SQLite indexes with FTS5's `unicode61` tokenizer, PostgreSQL with
//! the `simple` text search configuration over text whose address punctuation is turned into
//! spaces; neither stems nor folds accents, so a query finds the same messages on both
//! (docs/search.md says why).
//!
//! A query is words, all of which must occur somewhere in the message (in any of the fields);
//! a word ending in `*` matches every word it begins. The query never reaches SQL as text: it
//! is cut into words here, and each store renders the words into its own query syntax, in which
//! a word of letters and digits needs no quoting.

use serde::{Deserialize, Serialize};

use crate::mail::{Folder, MessageSummary};
use crate::{Error, Result};

/// How much of a body is indexed and searched, in characters. Keeps PostgreSQL's `tsvector`
/// far below its 1 MiB limit whatever the body, and a mail's indexing cost bounded.
pub const INDEXED_BODY_CHARS: usize = 100_000;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;

/// The most words in one query.
pub const MAX_TERMS: usize = 16;

/// The longest word in a query, in characters.
pub const MAX_TERM_CHARS: usize = 100;

/// A prefix (`inv*`) needs at least this many characters.
pub const MIN_PREFIX_CHARS: usize = 2;

/// Results per page: default and maximum.
pub const DEFAULT_HITS: u32 = 20;
pub const MAX_HITS: u32 = 100;

/// How deep a client may page into one result list. Past it, the query should be narrower.
pub const MAX_OFFSET: u32 = 1_000;

/// Characters of context in a body highlight.
pub const SNIPPET_CHARS: usize = 200;

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lowercase letters and digits only.
    pub word: String,
    /// Matches every word that begins with `word`.
    pub prefix: bool,
}

impl Term {
    fn matches(&self, word: &str) -> bool {
        if self.prefix {
            word.starts_with(&self.word)
        } else {
            word == self.word
        }
    }
}

/// A store's query text for `terms`: each term rendered by `word` (the store's quoting), joined
/// by `and`. Checks again that every term is letters and digits only, which is what lets a
/// store quote a term without escaping anything.
pub fn render(terms: &[Term], word: impl Fn(&Term) -> String, and: &str) -> Result<String> {
    if terms.is_empty()
        || terms
            .iter()
            .any(|t| t.word.is_empty() || !t.word.chars().all(char::is_alphanumeric))
    {
        return Err(Error::internal("a search term must be letters and digits"));
    }
    Ok(terms.iter().map(word).collect::<Vec<_>>().join(and))
}

/// A search as a store runs it.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// At least one; every one must match.
    pub terms: Vec<Term>,
    pub folder: Option<Folder>,
    pub limit: u32,
    pub offset: u32,
}

/// One match as a store returns it: the summary and the indexed text of the body (for the
/// highlights), best match first.
#[derive(Debug, Clone)]
pub struct SearchRow {
    pub summary: MessageSummary,
    pub body: String,
}

/// A field a highlight comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SearchField {
    Subject,
    /// The sender's address or name, To and Cc.
    People,
    Body,
}

/// Where a query matched one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Highlight {
    pub field: SearchField,
    /// The field's text, or for the body a passage of it around the first match (`…` marks
    /// text left out).
    pub text: String,
    /// The matched words in `text`, as `[start, end)` offsets counted in Unicode characters
    /// (code points).
    pub matches: Vec<[u32; 2]>,
}

/// One message that matched, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub message: MessageSummary,
    /// Where the words matched, subject first. Empty when they matched only in text that is
    /// searched but not shown here (the full address list of a long To).
    pub highlights: Vec<Highlight>,
}

/// Cuts a query into terms: the words a client typed, lowercased, letters and digits only.
pub fn parse_query(q: &str) -> Result<Vec<Term>> {
    let invalid = |msg: String| {
        Error::invalid("invalid_query", msg).with_hint(
            "give one or more words (letters and digits), all of which must occur; end a word with * to match its beginning",
        )
    };
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "a search query is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    crate::text::refuse_nul("q", q)?;
    let mut terms: Vec<Term> = Vec::new();
    for raw in q.split_whitespace() {
        let prefix = raw.ends_with('*');
        let words = words(raw).map(|(_, _, w)| w).collect::<Vec<_>>();
        let n = words.len();
        for (i, word) in words.into_iter().enumerate() {
            // Only the last word of `alice@exa*` is a prefix.
            let prefix = prefix && i + 1 == n;
            if word.chars().count() > MAX_TERM_CHARS {
                return Err(invalid(format!("a search word is at most {MAX_TERM_CHARS} characters")));
            }
            if prefix && word.chars().count() < MIN_PREFIX_CHARS {
                return Err(invalid(format!(
                    "`{word}*` is too short: a prefix needs at least {MIN_PREFIX_CHARS} characters"
                )));
            }
            let term = Term { word, prefix };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    if terms.is_empty() {
        return Err(invalid("the search query has no words in it".into()));
    }
    if terms.len() > MAX_TERMS {
        return Err(invalid(format!("a search query has at most {MAX_TERMS} words")));
    }
    Ok(terms)
}

/// The words of `text`, lowercased, each with its `[start, end)` character offsets: runs of
/// letters and digits. One pass over the text.
fn words(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    let mut chars = text.chars().enumerate().peekable();
    std::iter::from_fn(move || {
        while chars.peek().is_some_and(|(_, c)| !c.is_alphanumeric()) {
            chars.next();
        }
        let (start, _) = *chars.peek()?;
        let mut end = start;
        let mut word = String::new();
        while let Some((i, c)) = chars.next_if(|(_, c)| c.is_alphanumeric()) {
            word.extend(c.to_lowercase());
            end = i + 1;
        }
        Some((start, end, word))
    })
}

/// The most matches reported in one highlight: the response stays small whatever the text.
const MAX_MATCHES: usize = 100;

/// Character ranges of the words of `text` that a term matches.
fn match_ranges<'a>(text: &'a str, terms: &'a [Term]) -> impl Iterator<Item = [u32; 2]> + 'a {
    words(text)
        .filter(|(_, _, word)| terms.iter().any(|t| t.matches(word)))
        .map(|(start, end, _)| [start as u32, end as u32])
}

/// The first [`MAX_MATCHES`] of [`match_ranges`].
fn matches_in(text: &str, terms: &[Term]) -> Vec<[u32; 2]> {
    match_ranges(text, terms).take(MAX_MATCHES).collect()
}

/// The highlights of one hit: subject, people, and a passage of the body around its first
/// match, each only where a term matched.
pub fn highlights(row: &SearchRow, terms: &[Term]) -> Vec<Highlight> {
    let mut out = Vec::new();
    let s = &row.summary;
    let m = matches_in(&s.subject, terms);
    if !m.is_empty() {
        out.push(Highlight {
            field: SearchField::Subject,
            text: s.subject.clone(),
            matches: m,
        });
    }
    let people = people(s);
    let m = matches_in(&people, terms);
    if !m.is_empty() {
        out.push(Highlight {
            field: SearchField::People,
            text: people,
            matches: m,
        });
    }
    if let Some(h) = body_passage(&row.body, terms) {
        out.push(h);
    }
    out
}

/// The people of a message as one line: `Name <from>, to..., cc...`.
fn people(s: &MessageSummary) -> String {
    let from = match &s.from_name {
        Some(name) if !name.is_empty() => format!("{name} <{}>", s.from),
        _ => s.from.to_string(),
    };
    std::iter::once(from)
        .chain(s.to.iter().chain(&s.cc).map(ToString::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

/// About [`SNIPPET_CHARS`] characters of the body around its first match, on one line.
fn body_passage(body: &str, terms: &[Term]) -> Option<Highlight> {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let all: Vec<[u32; 2]> = match_ranges(&one_line, terms).collect();
    let first = *all.first()?;
    let chars: Vec<char> = one_line.chars().collect();
    let total = chars.len();
    // Start a quarter of the window before the first match, at a word boundary if one is near.
    let mut start = (first[0] as usize).saturating_sub(SNIPPET_CHARS / 4);
    if start > 0
        && let Some(space) = chars[start..first[0] as usize].iter().position(|c| *c == ' ')
    {
        start += space + 1;
    }
    let end = (start + SNIPPET_CHARS).min(total);
    let mut text: String = chars[start..end].iter().collect();
    let mut shift = start as i64;
    if start > 0 {
        text.insert(0, '…');
        shift -= 1;
    }
    if end < total {
        text.push('…');
    }
    let matches = all
        .into_iter()
        .filter(|[s, e]| (*s as usize) >= start && (*e as usize) <= end)
        .take(MAX_MATCHES)
        .map(|[s, e]| [(i64::from(s) - shift) as u32, (i64::from(e) - shift) as u32])
        .collect();
    Some(Highlight {
        field: SearchField::Body,
        text,
        matches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(word: &str, prefix: bool) -> Term {
        Term {
            word: word.into(),
            prefix,
        }
    }

    #[test]
    fn queries_are_cut_into_lowercase_words() {
        assert_eq!(
            parse_query("  Invoice alice@Example.com inv* ").unwrap(),
            vec![
                t("invoice", false),
                t("alice", false),
                t("example", false),
                t("com", false),
                t("inv", true)
            ]
        );
        assert_eq!(
            parse_query("café Straße").unwrap(),
            vec![t("café", false), t("straße", false)]
        );
        // Quotes, operators and SQL are only separators.
        assert_eq!(
            parse_query("\"x\" OR 1=1; --").unwrap(),
            vec![t("x", false), t("or", false), t("1", false)]
        );
        assert_eq!(parse_query("a a A").unwrap(), vec![t("a", false)]);
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for q in ["", "   ", "*** ---", "x*"] {
            let e = parse_query(q).unwrap_err();
            assert_eq!(e.code(), "invalid_query", "{q:?}");
        }
        let many = (0..=MAX_TERMS).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(parse_query(&many).unwrap_err().code(), "invalid_query");
        assert_eq!(
            parse_query(&"x".repeat(MAX_TERM_CHARS + 1)).unwrap_err().code(),
            "invalid_query"
        );
        assert_eq!(
            parse_query(&"x ".repeat(MAX_QUERY_CHARS)).unwrap_err().code(),
            "invalid_query"
        );
        assert_eq!(parse_query("a\0b").unwrap_err().code(), "invalid_text");
    }

    #[test]
    fn matches_are_character_ranges_of_whole_words() {
        let terms = vec![t("invoice", false), t("ma", true)];
        assert_eq!(
            matches_in("Ünïcode: INVOICE for March, invoices", &terms),
            vec![[9, 16], [21, 26]]
        );
    }

    #[test]
    fn many_matches_are_capped_and_found_in_one_pass() {
        // 100,000 characters of the searched word: linear, and the answer stays small.
        let body = "a ".repeat(50_000);
        let m = matches_in(&body, &[t("a", false)]);
        assert_eq!(m.len(), MAX_MATCHES);
        assert_eq!(m[1], [2, 3]);
        let h = body_passage(&body, &[t("a", false)]).unwrap();
        assert!(
            h.matches.len() <= MAX_MATCHES && h.matches.len() > 50,
            "{}",
            h.matches.len()
        );
    }

    #[test]
    fn the_body_passage_is_cut_around_the_first_match() {
        let body = format!("{} needle here {}", "word ".repeat(100), "tail ".repeat(100));
        let h = body_passage(&body, &[t("needle", false)]).unwrap();
        assert!(h.text.starts_with('…') && h.text.ends_with('…'), "{}", h.text);
        let [s, e] = h.matches[0];
        let found: String = h.text.chars().skip(s as usize).take((e - s) as usize).collect();
        assert_eq!(found, "needle");
        assert!(h.text.chars().count() <= SNIPPET_CHARS + 2);
        assert!(body_passage("nothing", &[t("needle", false)]).is_none());
        let short = body_passage("a needle", &[t("needle", false)]).unwrap();
        assert_eq!(short.text, "a needle");
        assert_eq!(short.matches, vec![[2, 8]]);
    }
}
