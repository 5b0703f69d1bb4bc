//! `loft-bench`: delivery latency and throughput of a real `loft serve`, measured over HTTP.
//!
//! The benchmark builds the whole server in this process ([`loft::serve::app`], the very
//! function `loft serve` runs), binds it to `127.0.0.1:0` and drives it with [`loft_client`]
//! over loopback, one client (one keep-alive connection pool) per simulated agent. So every
//! figure includes HTTP parsing, routing, authentication, JSON, the store and its commit,
//! exactly as a remote agent would see it, minus the network. Client and server share the
//! machine's CPUs; the report says how many.
//!
//! Why in-process, through the `loft` crate's small library (`crates/loft/src/lib.rs`), rather
//! than by spawning a `loft serve` binary: `cargo run -p loft-bench` then always measures the
//! server built from the same tree and profile (a spawned binary may be missing, stale, or a
//! debug build), and "CPU per request" stays one number read from `/proc/self/stat`, covering
//! client and server alike, comparable with every figure measured before the benchmark left the
//! server binary. This is the only crate allowed to depend on `loft`.
//!
//! It measures, on a fresh database it creates and removes again (a SQLite file in a temporary
//! directory, or a `loft_bench_<random>` database on a PostgreSQL server, made and dropped with
//! the testkit's helpers, [`loft_testkit::pg`]):
//! 1. delivery latency: from the start of agent A's send until agent B's inbox lists it, and
//!    right after it the floor it is compared with, one single-row commit on the same backend
//!    ([`commit`]);
//! 2. throughput of sends and of inbox lists with 1, 8, 32 ... concurrent agents;
//! 3. the audit chain's length, and that it still verifies.
//!
//! Every loop here is bounded both in count and in time, and the only traffic is to
//! 127.0.0.1 (plus the PostgreSQL server the caller names). This crate must not reach into the
//! store or core: it sees Loft only through the REST API, like any agent.
//!
//! Modules: [`target`] the fresh database, [`load`] the delivery and throughput loops,
//! [`commit`] the single-row commit, [`report`] statistics and the printed table.

mod commit;
mod events;
mod gate;
mod load;
mod report;
mod search;
mod target;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use loft::serve::{self, ServeArgs};
use loft_client::{Client, ClientError, api};
use loft_core::keys::OperatorKey;
use loft_core::random::OsRandom;
use reqwest::Url;

use crate::load::{Op, delivery, throughput};
use crate::report::{Machine, Results};
use crate::target::Target;

/// The mail domain of the benchmark's identities.
const DOMAIN: &str = "bench.localhost";
/// Longest a single HTTP request may take before the benchmark gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the server to stop after the clients are gone.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The body of every benchmark message: a short note, like most agent-to-agent mail.
const BODY: &str = "Benchmark message from loft-bench. Please ignore: this database is removed afterwards.";

/// Measure delivery latency and throughput of an in-process Loft server (SQLite or PostgreSQL).
#[derive(Debug, Parser)]
#[command(name = "loft-bench", version, about, long_about = None)]
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
    /// Vault credentials each agent holds (random 32-character API keys): every send pays the
    /// exfiltration guard for each, so `--vault-items 0` against `--vault-items 10` is its cost.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub vault_items: u32,
    /// Also measure search: fill one mailbox with this many messages of generated text, then
    /// time `GET /v0/messages/search` for queries of known selectivity (0: skip; issue 12 asks
    /// for 100000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub search_mailbox: u32,
    /// Also measure what the oversight gate adds: this many sends from an autonomous
    /// identity, as many from a `gated_send` one (held), and the approval of each (0: skip).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub gate_samples: u32,
    /// Also measure event latency: this many sends seen by the recipient's event stream, and
    /// as many by its pending `mail_wait` (0: skip).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub event_samples: u32,
    /// Timed calls of each search query.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub search_samples: u32,
}

/// The allocator `loft` runs its server with (crates/loft/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loft-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loft-bench: {e}");
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
    let command = report::command_line();
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
    print!("{}", report::table(&args, &command, &target, &machine, &results));
    if args.json {
        println!("{}", report::to_json(&args, &command, &target, &machine, &results));
    }
    if results.audit_ok {
        Ok(())
    } else {
        Err("the audit chain does not verify after the benchmark".into())
    }
}

// ---------------------------------------------------------------------------------------------
// The server and the agents

/// One simulated agent: its own client (own keep-alive connections, its own key) and address.
#[derive(Clone)]
struct Agent {
    client: Client,
    address: String,
}

/// A client of the server at `base` acting with `key`, on an HTTP client of its own.
fn client(base: &Url, key: String) -> Result<Client, String> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("loft-bench/", env!("CARGO_PKG_VERSION")))
        // Loopback only: an HTTP(S)_PROXY in the environment must not reroute the traffic.
        .no_proxy()
        // Plain HTTP only: skip loading the system's certificate store for every agent.
        .tls_certs_only(std::iter::empty())
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Client::with_http(base.clone(), Some(key), http).map_err(|e| e.to_string())
}

/// How a failed request reads in the benchmark's error: the request, then the server's status
/// and error code, or the transport failure.
fn failed(what: &'static str) -> impl FnOnce(ClientError) -> String {
    move |e| match e.api() {
        Some(a) => format!("{what}: HTTP {} {}: {}", a.status, a.code, a.message),
        None => format!("{what}: {e}"),
    }
}

/// `POST /v0/messages/send` of a benchmark message.
fn mail(to: &str, subject: String) -> api::SendMail {
    api::SendMail {
        to: vec![to.to_owned()],
        subject,
        text: BODY.to_owned(),
        ..Default::default()
    }
}

/// `GET /v0/messages?limit=N` on the caller's inbox.
fn inbox(limit: u32) -> api::ListMessagesParams {
    api::ListMessagesParams {
        limit: Some(limit),
        ..Default::default()
    }
}

async fn measure(args: &BenchArgs, target: &Target) -> Result<Results, String> {
    let admin_key = OperatorKey::generate(&OsRandom);
    let serve_args = ServeArgs {
        data_dir: target.data_dir.clone(),
        http: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        database_url: Some(target.url.clone()),
        domain: DOMAIN.to_owned(),
        egress_allow: Vec::new(),
        egress_deny_public: true,
        webhook_timeout_secs: 10,
        webhook_retry_base_secs: 10,
        webhook_retry_max_secs: 6 * 3600,
        webhook_disable_after_secs: 3 * 24 * 3600,
        max_request_bytes: loft_web::DEFAULT_MAX_REQUEST_BYTES,
        max_attachment_bytes: loft_core::mail::DEFAULT_MAX_ATTACHMENT_BYTES,
        public_url: None,
        // Delivery is what is measured: the agents are autonomous (the exfiltration guard
        // still looks at every send).
        default_oversight_mode: loft_core::oversight::OversightMode::Autonomous,
        approval_ttl_secs: loft_core::service::DEFAULT_APPROVAL_TTL_SECS,
        limits: serve::LimitArgs::off(),
        admin_key: Some(admin_key.clone()),
        dns_answers: None,
        dmarc: loft_core::mailauth::DmarcEnforcement::Enforce,
        job_concurrency: loft_core::runner::DEFAULT_CONCURRENCY,
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
    let base = Url::parse(&format!("http://{addr}")).map_err(|e| e.to_string())?;

    // The phases own every client; when they return, all connections are closed.
    let results = phases(args, target, &base, &admin_key).await;

    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("loft-bench: HTTP server: {e}"),
        Ok(Err(e)) => eprintln!("loft-bench: HTTP server task: {e}"),
        Err(_) => eprintln!(
            "loft-bench: the HTTP server did not stop within {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        ),
    }
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, store.close()).await.is_err() {
        eprintln!(
            "loft-bench: the store did not close within {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        );
    }
    results
}

async fn phases(args: &BenchArgs, target: &Target, base: &Url, admin_key: &str) -> Result<Results, String> {
    let operator = client(base, admin_key.to_owned())?;
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
        created.push(create_agent(&operator, base, name, args.vault_items).await?);
    }
    // Open each agent's connection before anything is timed.
    for a in &created {
        a.client
            .call(api::list_messages(&inbox(1)))
            .await
            .map_err(failed("GET /v0/messages"))?;
    }
    let agents = created.split_off(2);
    let delivery = delivery(args, &created[0], &created[1]).await?;
    drop(created);
    // Right after the deliveries, on the same database: the floor they are compared with.
    progress("one single-row commit, the floor under a delivery");
    let commit = if target.backend == "postgres" {
        commit::pg(&target.url, args.warmup, args.samples).await?
    } else {
        let dir = target.data_dir.clone();
        let (warmup, samples) = (args.warmup, args.samples);
        tokio::task::spawn_blocking(move || commit::sqlite(&dir, warmup, samples))
            .await
            .map_err(|e| format!("commit baseline: {e}"))??
    };

    let agents = Arc::new(agents);
    let window = Duration::from_secs(args.seconds);
    let mut sends = Vec::new();
    for &n in &args.agents {
        progress(&format!("send throughput, {n} agent(s), {} s", args.seconds));
        sends.push(throughput(Op::Send, n as usize, &agents, window).await?);
    }
    let mut lists = Vec::new();
    for &n in &args.agents {
        progress(&format!("list throughput, {n} agent(s), {} s", args.seconds));
        lists.push(throughput(Op::List, n as usize, &agents, window).await?);
    }
    drop(agents);

    let gate = if args.gate_samples > 0 {
        let free = create_agent(&operator, base, "bench-free".into(), args.vault_items).await?;
        let gated = create_agent_in(
            &operator,
            base,
            "bench-gated".into(),
            args.vault_items,
            Some(loft_core::oversight::OversightMode::GatedSend),
        )
        .await?;
        let to = create_agent(&operator, base, "bench-reader".into(), 0).await?;
        Some(gate::gate(args.gate_samples, &operator, &free, &gated, &to).await?)
    } else {
        None
    };

    let events = if args.event_samples > 0 {
        let from = create_agent(&operator, base, "bench-notifier".into(), 0).await?;
        let to = create_agent(&operator, base, "bench-listener".into(), 0).await?;
        Some(events::events(args.event_samples, &from, &to).await?)
    } else {
        None
    };

    let search = if args.search_mailbox > 0 {
        let searcher = create_agent(&operator, base, "bench-searcher".into(), 0).await?;
        let mut senders = Vec::new();
        for i in 0..8 {
            senders.push(create_agent(&operator, base, format!("bench-author-{i}"), 0).await?);
        }
        Some(search::search(args, target, &searcher, senders).await?)
    } else {
        None
    };

    progress("verifying the audit chain");
    let verify = operator
        .call(api::audit_verify())
        .await
        .map_err(failed("GET /v0/audit/verify"))?;
    if let Some(p) = &verify.problem {
        eprintln!("loft-bench: audit chain problem: {p}");
    }
    Ok(Results {
        delivery,
        commit,
        sends,
        lists,
        gate,
        events,
        search,
        audit_rows: verify.rows_checked,
        audit_ok: verify.ok,
    })
}

async fn create_agent(operator: &Client, base: &Url, name: String, vault_items: u32) -> Result<Agent, String> {
    create_agent_in(operator, base, name, vault_items, None).await
}

/// An agent in this oversight mode (`None`: the server's default for the benchmark,
/// autonomous).
async fn create_agent_in(
    operator: &Client,
    base: &Url,
    name: String,
    vault_items: u32,
    oversight_mode: Option<loft_core::oversight::OversightMode>,
) -> Result<Agent, String> {
    let created = operator
        .call(api::create_identity(&api::CreateIdentityRequest {
            name,
            oversight_mode,
            ..Default::default()
        }))
        .await
        .map_err(failed("POST /v0/identities"))?;
    let agent = Agent {
        client: client(base, created.api_key)?,
        address: created.identity.address.to_string(),
    };
    for i in 0..vault_items {
        let value = loft_core::random::base32_string(&OsRandom, 32);
        let req = api::StoreCredentialRequest {
            name: Some(format!("bench-{i}")),
            value: Some(value),
            ..Default::default()
        };
        agent
            .client
            .call(api::vault_put(&req))
            .await
            .map_err(failed("POST /v0/vault"))?;
    }
    Ok(agent)
}

fn progress(what: &str) {
    eprintln!("loft-bench: {what} ...");
}
