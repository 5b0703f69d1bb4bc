//! `loft bench`: delivery latency and throughput of a real `loft serve`, measured over HTTP.
//!
//! The benchmark builds the whole server in this process ([`crate::serve::app`]), binds it to
//! `127.0.0.1:0` and drives it with `reqwest` over loopback, one client (one keep-alive
//! connection pool) per simulated agent. So every figure includes HTTP parsing, routing,
//! authentication, JSON, the store and its commit, exactly as a remote agent would see it, minus
//! the network. Client and server share the machine's CPUs; the report says how many.
//!
//! It measures, on a fresh database it creates and removes again (a SQLite file in a temporary
//! directory, or a `loft_bench_<random>` database on a PostgreSQL server):
//! 1. delivery latency: from the start of agent A's send until agent B's inbox lists it;
//! 2. throughput of sends and of inbox lists with 1, 8, 32 ... concurrent agents;
//! 3. the audit chain's length, and that it still verifies.
//!
//! Every loop here is bounded both in count and in time, and the only traffic is to
//! 127.0.0.1 (plus the PostgreSQL server the caller names). This module must not reach into the
//! store or core: it sees Loft only through the REST API, like any agent.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loft_core::keys::OperatorKey;
use loft_core::random::{self, OsRandom};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::serve::{self, Backend, ServeArgs};

/// What `--pg` stands for: a local PostgreSQL with trust authentication.
const PG_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The mail domain of the benchmark's identities.
const DOMAIN: &str = "bench.localhost";
/// Longest a single HTTP request may take before the benchmark gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one delivery sample may wait for the message to show in the inbox.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most inbox lists one delivery sample may make.
const MAX_POLLS: u32 = 100_000;
/// Most requests one agent makes in one throughput run, whatever `--seconds` says.
const MAX_OPS_PER_AGENT: usize = 2_000_000;
/// How long the benchmark waits for PostgreSQL when creating or dropping its database.
const PG_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the server to stop after the clients are gone.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The body of every benchmark message: a short note, like most agent-to-agent mail.
const BODY: &str = "Benchmark message from loft bench. Please ignore: this database is removed afterwards.";

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Backend to measure: `postgres://USER@HOST/DB` names a server, on which a fresh database
    /// `loft_bench_<random>` is created and dropped at the end; `sqlite://PATH` names a SQLite
    /// file that must not exist yet. Default: a fresh SQLite file in a temporary directory.
    #[arg(long, conflicts_with = "pg")]
    pub database_url: Option<String>,
    /// Shortcut for `--database-url postgres://postgres@127.0.0.1:5432/postgres`.
    #[arg(long)]
    pub pg: bool,
    /// Delivery latency samples (after the warm-up).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub samples: u32,
    /// Delivery samples run and discarded before measuring.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub warmup: u32,
    /// Concurrent agents for the throughput runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub agents: Vec<u32>,
    /// Duration of each throughput run, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Where the temporary data directory (and the SQLite file) goes; default: the system's
    /// temporary directory. Its file system decides what an fsync costs.
    #[arg(long)]
    pub tmp_dir: Option<PathBuf>,
    /// Also print the results as one line of JSON at the end.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Server logs are off unless `LOFT_LOG` asks for them (same syntax as `loft serve`), e.g.
/// `LOFT_LOG=sqlx::query=debug` for every statement with its duration: a timing breakdown.
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("LOFT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colour codes only on a terminal, never into a log file.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}

async fn bench(args: BenchArgs) -> Result<(), String> {
    init_logging();
    let command = command_line();
    let target = Target::prepare(&args).await?;
    let machine = Machine::probe(&target.data_dir);
    let outcome = tokio::select! {
        r = measure(&args, &target) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
    };
    // Whatever happened, leave nothing behind.
    let cleanup = target.cleanup().await;
    let results = outcome?;
    cleanup?;
    print!("{}", table(&args, &command, &target, &machine, &results));
    if args.json {
        println!("{}", to_json(&args, &command, &target, &machine, &results));
    }
    if results.audit_ok {
        Ok(())
    } else {
        Err("the audit chain does not verify after the benchmark".into())
    }
}

// ---------------------------------------------------------------------------------------------
// The database under test

/// The fresh database the benchmark runs on, and how to remove it.
struct Target {
    /// Temporary data directory (SQLite file, operator key file); removed at the end.
    data_dir: PathBuf,
    /// What `loft serve` is given as `--database-url`.
    url: String,
    backend: &'static str,
    /// For the report: where the data lives (never a password).
    description: String,
    /// For PostgreSQL: the server URL to reconnect to and the database to drop.
    pg: Option<(String, String)>,
}

impl Target {
    async fn prepare(args: &BenchArgs) -> Result<Self, String> {
        let parent = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let data_dir = parent.join(format!(
            "loft-bench-{}-{}",
            std::process::id(),
            random::base32_string(&OsRandom, 8)
        ));
        let given = if args.pg {
            Some(PG_DEFAULT_URL.to_owned())
        } else {
            args.database_url.clone()
        };
        let backend = match &given {
            Some(url) => serve::backend_from_url(url).map_err(|e| format!("--database-url: {e}"))?,
            None => Backend::Sqlite(data_dir.join("loft.db")),
        };
        match backend {
            Backend::Sqlite(path) => {
                // Never write benchmark traffic into somebody's real database.
                if path.exists() {
                    return Err(format!(
                        "{} exists; the benchmark only runs on a new SQLite file (omit --database-url to use a \
                         temporary one)",
                        path.display()
                    ));
                }
                let kept = if given.is_some() {
                    "kept afterwards"
                } else {
                    "removed afterwards"
                };
                let description = format!("sqlite, new file {} ({kept})", path.display());
                let url = format!("sqlite://{}", path.display());
                Ok(Self {
                    data_dir,
                    url,
                    backend: "sqlite",
                    description,
                    pg: None,
                })
            }
            Backend::Postgres(server) => {
                let name = format!("loft_bench_{}", random::base32_string(&OsRandom, 12));
                let mut conn = pg_connect(&server).await?;
                let create = async {
                    let version: String = sqlx::query_scalar("SHOW server_version")
                        .fetch_one(&mut conn)
                        .await
                        .map_err(|e| format!("PostgreSQL at {}: {e}", redact(&server)))?;
                    // The name is ours: lowercase letters, digits and `_`, so quoting is safe.
                    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| {
                            format!(
                                "CREATE DATABASE {name} on {} failed (the role needs CREATEDB): {e}",
                                redact(&server)
                            )
                        })?;
                    Ok::<_, String>(version)
                };
                let version = tokio::time::timeout(PG_TIMEOUT, create).await.map_err(|_| {
                    format!(
                        "PostgreSQL at {} did not create database {name} within {} s (check whether it exists)",
                        redact(&server),
                        PG_TIMEOUT.as_secs()
                    )
                })??;
                let _ = conn.close().await;
                let url = with_database(&server, &name);
                let description = format!(
                    "postgres {version}, new database {name} on {} (dropped afterwards)",
                    host_of(&server).unwrap_or("?")
                );
                Ok(Self {
                    data_dir,
                    url,
                    backend: "postgres",
                    description,
                    pg: Some((server, name)),
                })
            }
        }
    }

    async fn cleanup(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some((server, name)) = &self.pg {
            let dropped = match pg_connect(server).await {
                Ok(mut conn) => {
                    let drop = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn);
                    let r = match tokio::time::timeout(PG_TIMEOUT, drop).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {} s", PG_TIMEOUT.as_secs())),
                    };
                    let _ = conn.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            if let Err(e) = dropped {
                problems.push(format!("could not drop database {name} (drop it by hand): {e}"));
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.data_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            problems.push(format!("could not remove {}: {e}", self.data_dir.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

async fn pg_connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(PG_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect to PostgreSQL at {}: {e}", redact(url))),
        Err(_) => Err(format!(
            "PostgreSQL at {} did not answer within {} s",
            redact(url),
            PG_TIMEOUT.as_secs()
        )),
    }
}

/// `url` with its database replaced by `db` (query parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// `host:port` of a URL, for the report.
fn host_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split(['/', '?']).next()?;
    Some(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
}

/// Any `scheme://user:password@` in `s` with the password replaced by `***`.
fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', '?', ' ']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => {
                    let _ = write!(out, "{user}:***@{host}");
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// The server and the agents

/// One simulated agent: its own HTTP client (own keep-alive connections) and identity.
#[derive(Clone)]
struct Agent {
    client: Client,
    key: String,
    address: String,
}

#[derive(Deserialize)]
struct CreatedIdentity {
    api_key: String,
    address: String,
}

#[derive(Deserialize)]
struct Sent {
    message_id: String,
}

#[derive(Deserialize)]
struct ListPage {
    items: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    message_id: String,
}

#[derive(Deserialize)]
struct VerifyReport {
    ok: bool,
    rows_checked: i64,
    problem: Option<String>,
}

fn client() -> Result<Client, String> {
    Client::builder()
        // Loopback only: an HTTP(S)_PROXY in the environment must not reroute the traffic.
        .no_proxy()
        // Plain HTTP only: skip loading the system's certificate store for every agent.
        .tls_certs_only(std::iter::empty())
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `req`, insists on `expect`, and returns the body parsed as `T`.
async fn call<T: DeserializeOwned>(req: RequestBuilder, expect: StatusCode, what: &str) -> Result<T, String> {
    let res = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = res.status();
    if status != expect {
        let body = res.text().await.unwrap_or_default();
        let body: String = body.chars().take(500).collect();
        return Err(format!("{what}: HTTP {status} (expected {expect}): {body}"));
    }
    res.json::<T>()
        .await
        .map_err(|e| format!("{what}: unexpected response body: {e}"))
}

/// Like [`call`], but reads and discards the body: the throughput loops should spend the
/// shared CPUs on the server, not on parsing.
async fn call_discard(req: RequestBuilder, expect: StatusCode, what: &str) -> Result<(), String> {
    let res = req.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = res.status();
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("{what}: reading the response: {e}"))?;
    if status != expect {
        let body = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        return Err(format!("{what}: HTTP {status} (expected {expect}): {body}"));
    }
    Ok(())
}

fn send_req(base: &str, from: &Agent, to: &str, subject: &str) -> RequestBuilder {
    from.client
        .post(format!("{base}/messages/send"))
        .bearer_auth(&from.key)
        .json(&json!({ "to": [to], "subject": subject, "text": BODY }))
}

fn list_req(base: &str, agent: &Agent, limit: u32) -> RequestBuilder {
    agent
        .client
        .get(format!("{base}/messages"))
        .bearer_auth(&agent.key)
        .query(&[("limit", limit)])
}

async fn measure(args: &BenchArgs, target: &Target) -> Result<Results, String> {
    let admin_key = OperatorKey::generate(&OsRandom);
    let serve_args = ServeArgs {
        data_dir: target.data_dir.clone(),
        http: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        database_url: Some(target.url.clone()),
        domain: DOMAIN.to_owned(),
        egress_allow: Vec::new(),
        max_request_bytes: loft_web::DEFAULT_MAX_REQUEST_BYTES,
        limits: serve::LimitArgs::off(),
        admin_key: Some(admin_key.clone()),
    };
    let (router, store) = serve::app(&serve_args).await?;
    let listener = tokio::net::TcpListener::bind(serve_args.http)
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let base = format!("http://{addr}/v0");

    // The phases own every client; when they return, all connections are closed.
    let results = phases(args, &base, &admin_key).await;

    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("loft bench: HTTP server: {e}"),
        Ok(Err(e)) => eprintln!("loft bench: HTTP server task: {e}"),
        Err(_) => eprintln!(
            "loft bench: the HTTP server did not stop within {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        ),
    }
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, store.close()).await.is_err() {
        eprintln!(
            "loft bench: the store did not close within {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        );
    }
    results
}

async fn phases(args: &BenchArgs, base: &str, admin_key: &str) -> Result<Results, String> {
    let operator = client()?;
    let max_agents = args.agents.iter().copied().max().unwrap_or(1) as usize;
    // The delivery pair has identities of its own, so that the mailboxes it fills do not weigh
    // on the throughput runs. Those have at least two agents, so that a lone agent still has
    // someone else to write to.
    let n_agents = max_agents.max(2);
    progress(&format!("creating {} identities", n_agents + 2));
    let mut created = Vec::with_capacity(n_agents + 2);
    for name in ["bench-sender".to_owned(), "bench-recipient".to_owned()]
        .into_iter()
        .chain((0..n_agents).map(|i| format!("bench-agent-{i}")))
    {
        created.push(create_agent(&operator, base, admin_key, &name).await?);
    }
    // Open each agent's connection before anything is timed.
    for a in &created {
        call::<ListPage>(list_req(base, a, 1), StatusCode::OK, "GET /v0/messages").await?;
    }
    let agents = created.split_off(2);
    let delivery = delivery(args, base, &created[0], &created[1]).await?;
    drop(created);

    let agents = Arc::new(agents);
    let window = Duration::from_secs(args.seconds);
    let mut sends = Vec::new();
    for &n in &args.agents {
        progress(&format!("send throughput, {n} agent(s), {} s", args.seconds));
        sends.push(throughput(Op::Send, n as usize, &agents, base, window).await?);
    }
    let mut lists = Vec::new();
    for &n in &args.agents {
        progress(&format!("list throughput, {n} agent(s), {} s", args.seconds));
        lists.push(throughput(Op::List, n as usize, &agents, base, window).await?);
    }
    drop(agents);

    progress("verifying the audit chain");
    let verify: VerifyReport = call(
        operator.get(format!("{base}/audit/verify")).bearer_auth(admin_key),
        StatusCode::OK,
        "GET /v0/audit/verify",
    )
    .await?;
    if let Some(p) = &verify.problem {
        eprintln!("loft bench: audit chain problem: {p}");
    }
    Ok(Results {
        delivery,
        sends,
        lists,
        audit_rows: verify.rows_checked,
        audit_ok: verify.ok,
    })
}

async fn create_agent(operator: &Client, base: &str, admin_key: &str, name: &str) -> Result<Agent, String> {
    let created: CreatedIdentity = call(
        operator
            .post(format!("{base}/identities"))
            .bearer_auth(admin_key)
            .json(&json!({ "name": name })),
        StatusCode::CREATED,
        "POST /v0/identities",
    )
    .await?;
    Ok(Agent {
        client: client()?,
        key: created.api_key,
        address: created.address,
    })
}

fn progress(what: &str) {
    eprintln!("loft bench: {what} ...");
}

// ---------------------------------------------------------------------------------------------
// Delivery latency

struct Delivery {
    /// Send start until the recipient's inbox lists the message.
    delivered: Stats,
    /// The send call alone.
    send: Stats,
    /// Samples in which the first inbox list already showed the message.
    first_list_hits: u32,
    /// Most lists any sample needed.
    max_polls: u32,
    /// CPU time of this process (client and Loft server) per sample: one send plus its lists.
    cpu_per_sample: Option<Duration>,
}

async fn delivery(args: &BenchArgs, base: &str, a: &Agent, b: &Agent) -> Result<Delivery, String> {
    progress(&format!(
        "delivery latency, {} warm-up + {} samples",
        args.warmup, args.samples
    ));
    let mut seen_lat = Vec::with_capacity(args.samples as usize);
    let mut send_lat = Vec::with_capacity(args.samples as usize);
    let mut first_list_hits = 0;
    let mut max_polls = 0;
    let mut cpu_start = None;
    for i in 0..args.warmup + args.samples {
        if i == args.warmup {
            cpu_start = process_cpu();
        }
        let subject = format!("delivery {i}");
        let t0 = Instant::now();
        let sent: Sent = call(
            send_req(base, a, &b.address, &subject),
            StatusCode::CREATED,
            "POST /v0/messages/send",
        )
        .await?;
        let t_send = t0.elapsed();
        let mut polls = 0u32;
        let t_seen = loop {
            polls += 1;
            let page: ListPage = call(list_req(base, b, 1), StatusCode::OK, "GET /v0/messages").await?;
            if page.items.first().is_some_and(|m| m.message_id == sent.message_id) {
                break t0.elapsed();
            }
            if polls >= MAX_POLLS || t0.elapsed() > DELIVERY_TIMEOUT {
                return Err(format!(
                    "message {} did not show in the recipient's inbox after {polls} lists in {:?}",
                    sent.message_id,
                    t0.elapsed()
                ));
            }
        };
        if i >= args.warmup {
            seen_lat.push(t_seen);
            send_lat.push(t_send);
            first_list_hits += u32::from(polls == 1);
            max_polls = max_polls.max(polls);
        }
    }
    let cpu_per_sample = per_op(cpu_start, process_cpu(), seen_lat.len());
    Ok(Delivery {
        cpu_per_sample,
        delivered: Stats::of(&mut seen_lat),
        send: Stats::of(&mut send_lat),
        first_list_hits,
        max_polls,
    })
}

// ---------------------------------------------------------------------------------------------
// Throughput

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Send,
    List,
}

/// One throughput run.
struct Run {
    agents: u32,
    ops: usize,
    elapsed: Duration,
    latency: Stats,
    /// CPU time of this process (client and Loft server, not PostgreSQL) per request.
    cpu_per_op: Option<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// `n` agents each run `op` in a loop for `window`; every agent has its own client.
async fn throughput(op: Op, n: usize, agents: &Arc<Vec<Agent>>, base: &str, window: Duration) -> Result<Run, String> {
    // A common start a little ahead, so that spawning the tasks is not part of the window.
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let deadline = start + window;
    let mut tasks = tokio::task::JoinSet::new();
    let cpu_start = process_cpu();
    for me in 0..n {
        let agents = agents.clone();
        let base = base.to_owned();
        tasks.spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut rng = XorShift::new(me as u64);
            let mut lat = Vec::with_capacity(4096);
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline && lat.len() < MAX_OPS_PER_AGENT {
                let agent = &agents[me];
                let t0 = Instant::now();
                match op {
                    Op::Send => {
                        // A random other agent (of all of them, not only the active ones).
                        let mut to = rng.below(agents.len() - 1);
                        if to >= me {
                            to += 1;
                        }
                        let subject = format!("load {me} {i}");
                        call_discard(
                            send_req(&base, agent, &agents[to].address, &subject),
                            StatusCode::CREATED,
                            "POST /v0/messages/send",
                        )
                        .await?;
                    }
                    Op::List => call_discard(list_req(&base, agent, 20), StatusCode::OK, "GET /v0/messages").await?,
                }
                lat.push(t0.elapsed());
                i += 1;
            }
            Ok::<_, String>((lat, tokio::time::Instant::now()))
        });
    }
    let mut all = Vec::new();
    let mut end = start;
    while let Some(joined) = tasks.join_next().await {
        let (lat, finished) = joined.map_err(|e| format!("agent task: {e}"))??;
        all.extend(lat);
        end = end.max(finished);
    }
    let ops = all.len();
    let cpu_per_op = per_op(cpu_start, process_cpu(), ops);
    Ok(Run {
        agents: n as u32,
        ops,
        cpu_per_op,
        elapsed: end - start,
        latency: Stats::of(&mut all),
    })
}

/// CPU time (user + system, all threads) this process has used so far, from `/proc/self/stat`
/// (Linux; `None` elsewhere). Unlike latency, it barely moves when other work shares the
/// machine, so it says what a request costs rather than how long it waited.
fn process_cpu() -> Option<Duration> {
    // USER_HZ, the unit of these fields, is 100 on every Linux architecture Loft targets.
    const TICKS_PER_SEC: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start with field 3, `state`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SEC))
}

fn per_op(start: Option<Duration>, end: Option<Duration>, ops: usize) -> Option<Duration> {
    let used = end?.checked_sub(start?)?;
    (ops > 0).then(|| used / ops as u32)
}

/// A tiny deterministic generator for picking recipients (not for anything secret).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds start far apart; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and the report

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

impl Stats {
    /// Nearest-rank percentiles (sorts `samples`).
    fn of(samples: &mut [Duration]) -> Self {
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

struct Results {
    delivery: Delivery,
    sends: Vec<Run>,
    lists: Vec<Run>,
    audit_rows: i64,
    audit_ok: bool,
}

/// Facts about the machine that explain the figures.
struct Machine {
    nproc: usize,
    cpu: Option<String>,
    /// File system type of the data directory's mount (Linux).
    fs: Option<String>,
    /// The 1, 5 and 15 minute load averages when the benchmark started (Linux): whatever else
    /// runs shares the CPUs with both client and server.
    load: Option<String>,
}

impl Machine {
    fn probe(data_dir: &Path) -> Self {
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

fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            // The program as it was run is noise (`target/release/loft`); the reader types `loft`.
            let a = if i == 0 { "loft".to_owned() } else { redact(&a) };
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

fn table(args: &BenchArgs, command: &str, target: &Target, m: &Machine, r: &Results) -> String {
    let mut out = String::new();
    let d = &r.delivery;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "loft bench: the whole `loft serve` in this process, driven over HTTP on 127.0.0.1 by one keep-alive \
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
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "delivery: {} warm-up samples discarded; the first inbox list showed the message in {} of {} samples \
         (at most {} lists)",
        args.warmup, d.first_list_hits, d.delivered.n, d.max_polls
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

fn to_json(args: &BenchArgs, command: &str, target: &Target, m: &Machine, r: &Results) -> String {
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
            "cpu_ms_per_sample": r.delivery.cpu_per_sample.map(ms_json),
            "max_lists": r.delivery.max_polls,
        },
        "throughput": {
            "seconds_per_run": args.seconds,
            "send": runs_json(&r.sends),
            "list_limit_20": runs_json(&r.lists),
        },
        "audit": { "rows": r.audit_rows, "ok": r.audit_ok },
    })
    .to_string()
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

    #[test]
    fn passwords_never_reach_the_report() {
        assert_eq!(
            redact("loft bench --database-url postgres://u:secret@h:5432/db?x=1"),
            "loft bench --database-url postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
        assert_eq!(redact("--samples 10"), "--samples 10");
        assert_eq!(host_of("postgres://u:p@db.example:5433/x?y"), Some("db.example:5433"));
        assert_eq!(host_of(PG_DEFAULT_URL), Some("127.0.0.1:5432"));
    }

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database(PG_DEFAULT_URL, "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_cpu_is_read_and_grows() {
        let before = process_cpu().expect("/proc/self/stat is readable");
        // Spin until a clock tick (10 ms of CPU) is counted; on a busy machine that may take a
        // while in wall time, so the bound is generous.
        let t = Instant::now();
        let mut after = before;
        let mut x = 0u64;
        while after <= before && t.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            after = process_cpu().expect("/proc/self/stat is readable");
        }
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(per_op(Some(before), Some(after), 0), None);
        let ten_ms_later = before + Duration::from_millis(10);
        assert_eq!(
            per_op(Some(before), Some(ten_ms_later), 5),
            Some(Duration::from_millis(2))
        );
    }

    #[test]
    fn recipients_are_spread_and_in_range() {
        let mut r = XorShift::new(3);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[r.below(7)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 700), "{seen:?}");
        assert_eq!(XorShift::new(0).below(1), 0);
    }
}
