//! Search latency over a large mailbox: one identity receives `--search-mailbox` messages of
//! generated text from eight senders, then searches it with queries of known selectivity.
//!
//! The text is made of a generated vocabulary whose words are drawn with a skew (a few words
//! are in many messages, most in few), like words in real mail; two marker words are planted at
//! known rates, so that a query's selectivity is known in advance: `invoice` in 10% of the
//! messages, `zebra` in 0.1%. The senders' copies are in the same database (and the same
//! index), as they would be on a real server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loft_client::{Client, api};

use crate::load::{XorShift, process_cpu};
use crate::report::Stats;
use crate::{Agent, BenchArgs, failed, progress};

/// Senders filling the mailbox at once.
const SENDERS: usize = 8;
/// Distinct generated words.
const VOCABULARY: usize = 5_000;
/// Words per subject and per body.
const SUBJECT_WORDS: usize = 5;
const BODY_WORDS: usize = 60;

/// The queries measured: what the report calls each, and the query.
pub const QUERIES: [(&str, &str); 5] = [
    ("one word in 10% of mail", "invoice"),
    ("one word in 0.1% of mail", "zebra"),
    ("two words, both common", "invoice w0"),
    ("a prefix (`inv*`)", "inv*"),
    ("a word in no mail", "nowhere"),
];

pub struct SearchRun {
    pub mailbox: u32,
    /// Time to fill the mailbox, and the rate.
    pub fill: Duration,
    pub queries: Vec<Query>,
}

pub struct Query {
    pub label: &'static str,
    pub q: &'static str,
    /// Results on the first page (at most 20).
    pub hits: usize,
    pub latency: Stats,
    pub cpu_per_call: Option<Duration>,
}

/// The `i`-th word of the vocabulary: short pronounceable syllables, some words sharing the
/// prefix `inv` with the marker `invoice`.
fn word(i: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "po", "ra", "su", "ti", "ve", "zu", "da", "fe", "go", "hu", "ji", "bo",
    ];
    if i % 250 == 7 {
        return format!("inv{i}");
    }
    if i == 0 {
        return "w0".to_owned();
    }
    let mut n = i;
    let mut w = String::new();
    while n > 0 || w.is_empty() {
        w.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    w
}

/// `n` words drawn with a skew: index `VOCABULARY * u^3` for a uniform `u`, so low indices are
/// frequent.
fn text(rng: &mut XorShift, words: &[String], n: usize) -> String {
    let mut out = Vec::with_capacity(n + 2);
    for _ in 0..n {
        let u = rng.below(1 << 20) as f64 / f64::from(1u32 << 20);
        out.push(words[((u * u * u) * VOCABULARY as f64) as usize].as_str());
    }
    out.join(" ")
}

pub async fn search(
    args: &BenchArgs,
    target: &crate::target::Target,
    searcher: &Agent,
    senders: Vec<Agent>,
) -> Result<SearchRun, String> {
    let total = args.search_mailbox;
    progress(&format!(
        "search: filling one mailbox with {total} messages from {SENDERS} senders"
    ));
    let words: Arc<Vec<String>> = Arc::new((0..VOCABULARY).map(word).collect());
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per = total.div_ceil(SENDERS as u32);
    for (k, sender) in senders.into_iter().enumerate() {
        let words = words.clone();
        let to = searcher.address.clone();
        let first = k as u32 * per;
        let last = ((k as u32 + 1) * per).min(total);
        tasks.spawn(async move {
            let mut rng = XorShift::new(1000 + k as u64);
            for i in first..last {
                let mut subject = text(&mut rng, &words, SUBJECT_WORDS);
                let mut body = text(&mut rng, &words, BODY_WORDS);
                // The markers, at exact rates: message i of the whole mailbox.
                if i % 10 == 0 {
                    subject.push_str(" invoice");
                }
                if i % 1000 == 500 {
                    body.push_str(" zebra");
                }
                let req = api::SendMail {
                    to: vec![to.clone()],
                    subject,
                    text: body,
                    ..Default::default()
                };
                sender
                    .client
                    .call(api::send_mail(&req))
                    .await
                    .map_err(failed("POST /v0/messages/send"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| format!("a sender task failed: {e}"))??;
    }
    let fill = t0.elapsed();
    progress("search: updating the planner's statistics (ANALYZE on PostgreSQL)");
    target.refresh_statistics().await?;

    let mut queries = Vec::new();
    for (label, q) in QUERIES {
        progress(&format!("search: {} samples of `{q}`", args.search_samples));
        queries.push(measure(&searcher.client, label, q, args.search_samples).await?);
    }
    Ok(SearchRun {
        mailbox: total,
        fill,
        queries,
    })
}

async fn measure(client: &Client, label: &'static str, q: &'static str, samples: u32) -> Result<Query, String> {
    let params = api::SearchParams {
        q: q.to_owned(),
        limit: Some(20),
        ..Default::default()
    };
    // One untimed call warms the caches and says how many results a page has.
    let first = client
        .call(api::search_messages(&params))
        .await
        .map_err(failed("GET /v0/messages/search"))?;
    let mut lat = Vec::with_capacity(samples as usize);
    let cpu0 = process_cpu();
    for _ in 0..samples {
        let t = Instant::now();
        client
            .call(api::search_messages(&params))
            .await
            .map_err(failed("GET /v0/messages/search"))?;
        lat.push(t.elapsed());
    }
    let cpu_per_call = cpu0
        .zip(process_cpu())
        .map(|(a, b)| b.saturating_sub(a) / samples.max(1));
    Ok(Query {
        label,
        q,
        hits: first.items.len(),
        latency: Stats::of(&mut lat),
        cpu_per_call,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_distinct_words_and_has_inv_prefixes() {
        let words: Vec<String> = (0..VOCABULARY).map(word).collect();
        let mut sorted = words.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), VOCABULARY);
        assert!(words.iter().all(|w| w.chars().all(|c| c.is_ascii_alphanumeric())));
        assert!(words.iter().filter(|w| w.starts_with("inv")).count() >= 10);
        assert!(!words.iter().any(|w| w == "invoice" || w == "zebra" || w == "nowhere"));
    }
}
