//! The measuring loops: delivery latency (one sender, one recipient polling its inbox) and
//! throughput (N agents sending or listing for a fixed window), with the CPU time they cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loft_client::api;

use crate::report::Stats;
use crate::{Agent, BenchArgs, failed, inbox, mail, progress};

/// Longest one delivery sample may wait for the message to show in the inbox.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most inbox lists one delivery sample may make.
const MAX_POLLS: u32 = 100_000;
/// Most requests one agent makes in one throughput run, whatever `--seconds` says.
const MAX_OPS_PER_AGENT: usize = 2_000_000;

// ---------------------------------------------------------------------------------------------
// Delivery latency

pub struct Delivery {
    /// Send start until the recipient's inbox lists the message.
    pub delivered: Stats,
    /// The send call alone.
    pub send: Stats,
    /// Samples in which the first inbox list already showed the message.
    pub first_list_hits: u32,
    /// Most lists any sample needed.
    pub max_polls: u32,
    /// CPU time of this process (client and Loft server) per sample: one send plus its lists.
    pub cpu_per_sample: Option<Duration>,
}

pub async fn delivery(args: &BenchArgs, a: &Agent, b: &Agent) -> Result<Delivery, String> {
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
        let sent = a
            .client
            .call(api::send_mail(&mail(&b.address, subject)))
            .await
            .map_err(failed("POST /v0/messages/send"))?;
        let t_send = t0.elapsed();
        let mut polls = 0u32;
        let t_seen = loop {
            polls += 1;
            let page = b
                .client
                .call(api::list_messages(&inbox(1)))
                .await
                .map_err(failed("GET /v0/messages"))?;
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
pub enum Op {
    Send,
    List,
}

/// One throughput run.
pub struct Run {
    pub agents: u32,
    pub ops: usize,
    pub elapsed: Duration,
    pub latency: Stats,
    /// CPU time of this process (client and Loft server, not PostgreSQL) per request.
    pub cpu_per_op: Option<Duration>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// `n` agents each run `op` in a loop for `window`; every agent has its own client.
pub async fn throughput(op: Op, n: usize, agents: &Arc<Vec<Agent>>, window: Duration) -> Result<Run, String> {
    // A common start a little ahead, so that spawning the tasks is not part of the window.
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let deadline = start + window;
    let mut tasks = tokio::task::JoinSet::new();
    let cpu_start = process_cpu();
    for me in 0..n {
        let agents = agents.clone();
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
                        // The answer's bytes, not parsed: the shared CPUs should go to the
                        // server, not to decoding.
                        agent
                            .client
                            .call_bytes(api::send_mail(&mail(&agents[to].address, subject)))
                            .await
                            .map_err(failed("POST /v0/messages/send"))?;
                    }
                    Op::List => {
                        agent
                            .client
                            .call_bytes(api::list_messages(&inbox(20)))
                            .await
                            .map_err(failed("GET /v0/messages"))?;
                    }
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
pub(crate) fn process_cpu() -> Option<Duration> {
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
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds start far apart; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
