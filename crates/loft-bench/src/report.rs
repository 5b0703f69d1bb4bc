//! What the benchmark prints: nearest-rank statistics, facts about the machine, the table
//! and the one line of JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use loft_testkit::pg::redact;
use serde_json::json;

use crate::BenchArgs;
use crate::gate::{Block, GateRun};
use crate::load::{Delivery, Run};
use crate::search::SearchRun;
use crate::target::Target;

#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Stats {
    /// Nearest-rank percentiles (sorts `samples`).
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Self {
            n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples[n - 1],
            mean: total / n as u32,
        }
    }
}

pub struct Results {
    pub delivery: Delivery,
    /// One single-row commit on the same database, measured right after the deliveries.
    pub commit: Stats,
    pub sends: Vec<Run>,
    pub lists: Vec<Run>,
    pub gate: Option<GateRun>,
    pub events: Option<crate::events::EventRun>,
    pub search: Option<SearchRun>,
    pub audit_rows: i64,
    pub audit_ok: bool,
}

/// Facts about the machine that explain the figures.
pub struct Machine {
    nproc: usize,
    cpu: Option<String>,
    /// File system type of the data directory's mount (Linux).
    fs: Option<String>,
    /// The 1, 5 and 15 minute load averages when the benchmark started (Linux): whatever else
    /// runs shares the CPUs with both client and server.
    load: Option<String>,
}

impl Machine {
    pub fn probe(data_dir: &Path) -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        Self {
            nproc,
            cpu,
            fs: fs_type(data_dir),
            load: load_average(),
        }
    }
}

fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The type of the file system `path` lives on, from `/proc/mounts` (longest matching mount).
fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = path
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| path.to_owned());
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

pub fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            // The program as it was run is noise (`target/release/loft-bench`); the reader types
            // `loft-bench`.
            let a = if i == 0 { "loft-bench".to_owned() } else { redact(&a) };
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=@+*".contains(&b))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    words.join(" ")
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn ms_json(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug (figures not representative: use --release)"
    } else {
        "release"
    }
}

pub fn table(args: &BenchArgs, command: &str, target: &Target, m: &Machine, r: &Results) -> String {
    let mut out = String::new();
    let d = &r.delivery;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "loft-bench: the whole `loft serve` in this process, driven over HTTP on 127.0.0.1 by one keep-alive \
         client per agent; client and server share this machine's {} CPUs.",
        m.nproc
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "command:  {command}");
    let _ = writeln!(out, "backend:  {}", target.description);
    let _ = writeln!(
        out,
        "machine:  nproc {} ({}), {}/{}{}",
        m.nproc,
        m.cpu.as_deref().unwrap_or("cpu model unknown"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        m.fs.as_deref()
            .map(|fs| format!(", temp data dir on {fs}"))
            .unwrap_or_default()
    );
    if let Some(load) = &m.load {
        let _ = writeln!(
            out,
            "load:     {load} (1, 5, 15 min averages at the start; anything else running shares the CPUs)"
        );
    }
    let _ = writeln!(out, "build:    {}", build());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| measurement                        | agents | requests |    per s |  p50 ms |  p90 ms |  p99 ms |  max ms | cpu ms/req |"
    );
    let _ = writeln!(
        out,
        "|------------------------------------|-------:|---------:|---------:|--------:|--------:|--------:|--------:|-----------:|"
    );
    let row = |out: &mut String, what: &str, agents: u32, s: &Stats, rate: Option<f64>, cpu: Option<Duration>| {
        let rate = rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"));
        let cpu = cpu.map_or_else(|| "-".to_owned(), ms);
        let _ = writeln!(
            out,
            "| {what:<34} | {agents:>6} | {:>8} | {rate:>8} | {:>7} | {:>7} | {:>7} | {:>7} | {cpu:>10} |",
            s.n,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        );
    };
    row(
        &mut out,
        "delivery: send start → in inbox",
        1,
        &d.delivered,
        None,
        d.cpu_per_sample,
    );
    row(&mut out, "delivery: the send call alone", 1, &d.send, None, None);
    row(&mut out, "one single-row commit (2 KiB)", 1, &r.commit, None, None);
    for run in &r.sends {
        row(
            &mut out,
            "send throughput",
            run.agents,
            &run.latency,
            Some(run.per_second()),
            run.cpu_per_op,
        );
    }
    for run in &r.lists {
        row(
            &mut out,
            "list throughput (limit=20)",
            run.agents,
            &run.latency,
            Some(run.per_second()),
            run.cpu_per_op,
        );
    }
    if let Some(g) = &r.gate {
        for (what, b) in [
            ("gate: send, autonomous", &g.autonomous),
            ("gate: send, gated_send (held)", &g.held),
            ("gate: approve a held mail", &g.approve),
        ] {
            row(&mut out, what, 1, &b.latency, None, b.cpu_per_call);
        }
    }
    if let Some(e) = &r.events {
        for (what, b) in [
            ("event: send start → stream", &e.stream),
            ("event: send start → mail_wait", &e.wait),
        ] {
            row(&mut out, what, 1, &b.latency, None, b.cpu_per_call);
        }
    }
    if let Some(sr) = &r.search {
        for q in &sr.queries {
            row(
                &mut out,
                &format!("search: {}", q.label),
                1,
                &q.latency,
                None,
                q.cpu_per_call,
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "delivery: {} warm-up samples discarded; the first inbox list showed the message in {} of {} samples \
         (at most {} lists)",
        args.warmup, d.first_list_hits, d.delivered.n, d.max_polls
    );
    let _ = writeln!(
        out,
        "commit: one INSERT of a 2 KiB row per transaction on {} ({}); delivery p99 is {:.1} times its p99{}",
        if target.backend == "postgres" {
            "the same database, same driver"
        } else {
            "a SQLite file beside it, WAL, synchronous=FULL"
        },
        if target.backend == "postgres" {
            "sqlx"
        } else {
            "rusqlite"
        },
        ratio(d.delivered.p99, r.commit.p99),
        if target.backend == "postgres" {
            " (issue 14's target on PostgreSQL: at most 3)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "throughput: {} s per run; each agent sends to a random other agent (of {}), or lists its own inbox; \
         the delivery pair has identities of its own",
        args.seconds,
        args.agents.iter().copied().max().unwrap_or(1).max(2)
    );
    let _ = writeln!(
        out,
        "cpu ms/req: CPU time of this process (client and Loft server{}) per request, in 10 ms ticks: \
         what a request costs, where latency also counts waiting",
        if target.backend == "postgres" {
            "; PostgreSQL's own processes not included"
        } else {
            ""
        }
    );
    if let Some(sr) = &r.search {
        let _ = writeln!(
            out,
            "search: one mailbox of {} messages (filled by 8 senders in {:.1} s, {:.0} sends/s); GET \
             /v0/messages/search?limit=20, one client, one call at a time; results on the first page: {}",
            sr.mailbox,
            sr.fill.as_secs_f64(),
            f64::from(sr.mailbox) / sr.fill.as_secs_f64(),
            sr.queries
                .iter()
                .map(|q| format!("`{}` {}", q.q, q.hits))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        out,
        "audit chain: {} rows, {} (GET /v0/audit/verify)",
        r.audit_rows,
        if r.audit_ok { "verified ok" } else { "DOES NOT VERIFY" }
    );
    out
}

fn stats_json(s: &Stats) -> serde_json::Value {
    json!({
        "n": s.n,
        "p50_ms": ms_json(s.p50),
        "p90_ms": ms_json(s.p90),
        "p99_ms": ms_json(s.p99),
        "max_ms": ms_json(s.max),
        "mean_ms": ms_json(s.mean),
    })
}

fn runs_json(runs: &[Run]) -> serde_json::Value {
    runs.iter()
        .map(|r| {
            json!({
                "agents": r.agents,
                "requests": r.ops,
                "seconds": (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                "per_second": (r.per_second() * 10.0).round() / 10.0,
                "latency": stats_json(&r.latency),
                "cpu_ms_per_request": r.cpu_per_op.map(ms_json),
            })
        })
        .collect()
}

pub fn to_json(args: &BenchArgs, command: &str, target: &Target, m: &Machine, r: &Results) -> String {
    json!({
        "command": command,
        "backend": target.backend,
        "database": target.description,
        "machine": { "nproc": m.nproc, "cpu": m.cpu, "os": std::env::consts::OS, "arch": std::env::consts::ARCH, "data_dir_fs": m.fs, "load_at_start": m.load },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "transport": "http over 127.0.0.1, client and server in one process",
        "delivery": {
            "warmup": args.warmup,
            "delivered": stats_json(&r.delivery.delivered),
            "send": stats_json(&r.delivery.send),
            "first_list_hits": r.delivery.first_list_hits,
            "commit": stats_json(&r.commit),
            "p99_over_commit_p99": ratio(r.delivery.delivered.p99, r.commit.p99),
            "cpu_ms_per_sample": r.delivery.cpu_per_sample.map(ms_json),
            "max_lists": r.delivery.max_polls,
        },
        "throughput": {
            "seconds_per_run": args.seconds,
            "send": runs_json(&r.sends),
            "list_limit_20": runs_json(&r.lists),
        },
        "gate": r.gate.as_ref().map(|g| {
            let block = |b: &Block| json!({"latency": stats_json(&b.latency), "cpu_ms_per_call": b.cpu_per_call.map(ms_json)});
            json!({"autonomous_send": block(&g.autonomous), "held_send": block(&g.held), "approve": block(&g.approve)})
        }),
        "events": r.events.as_ref().map(|e| {
            let block = |b: &Block| json!({"latency": stats_json(&b.latency), "cpu_ms_per_call": b.cpu_per_call.map(ms_json)});
            json!({"send_to_stream": block(&e.stream), "send_to_wait": block(&e.wait)})
        }),
        "search": r.search.as_ref().map(|sr| json!({
            "mailbox": sr.mailbox,
            "fill_seconds": (sr.fill.as_secs_f64() * 1000.0).round() / 1000.0,
            "queries": sr.queries.iter().map(|q| json!({
                "label": q.label, "q": q.q, "hits_first_page": q.hits,
                "latency": stats_json(&q.latency),
                "cpu_ms_per_query": q.cpu_per_call.map(ms_json),
            })).collect::<Vec<_>>(),
        })),
        "audit": { "rows": r.audit_rows, "ok": r.audit_ok },
    })
    .to_string()
}

/// `a / b`, 0 when `b` is zero.
fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Stats::of(&mut v);
        assert_eq!(s.n, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let one = Stats::of(&mut [Duration::from_micros(7)]);
        assert_eq!(
            (one.p50, one.p99, one.max),
            (
                Duration::from_micros(7),
                Duration::from_micros(7),
                Duration::from_micros(7)
            )
        );
        assert_eq!(Stats::of(&mut []).n, 0);
    }
}
