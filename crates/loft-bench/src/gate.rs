//! What the oversight gate adds to a send: the same send from an `autonomous` identity (goes
//! out at once) and from a `gated_send` one (held for a reviewer: the sender's copy and an
//! approval are written, nothing is delivered), then the reviewer's approval of each held mail
//! (which writes the recipients' copies, the decision and its audit row). Each is a block of
//! `--gate-samples` calls, one at a time, with the CPU time per call.

use std::time::{Duration, Instant};

use loft_client::{Client, api};

use crate::load::process_cpu;
use crate::report::Stats;
use crate::{Agent, failed, mail, progress};

pub struct GateRun {
    /// `autonomous`: the send goes out at once.
    pub autonomous: Block,
    /// `gated_send`: the send is held.
    pub held: Block,
    /// The operator approves a held mail: it is delivered.
    pub approve: Block,
}

pub struct Block {
    pub latency: Stats,
    pub cpu_per_call: Option<Duration>,
}

pub async fn gate(samples: u32, operator: &Client, free: &Agent, gated: &Agent, to: &Agent) -> Result<GateRun, String> {
    progress(&format!(
        "gate: {samples} sends autonomous, {samples} held, {samples} approvals"
    ));
    let mut held_ids = Vec::with_capacity(samples as usize);
    let autonomous = block(samples, |i| async move {
        free.client
            .call(api::send_mail(&mail(&to.address, format!("free {i}"))))
            .await
            .map_err(failed("POST /v0/messages/send"))
            .map(drop)
    })
    .await?;
    let mut lat = Vec::with_capacity(samples as usize);
    let cpu0 = process_cpu();
    for i in 0..samples {
        let t = Instant::now();
        let m = gated
            .client
            .call(api::send_mail(&mail(&to.address, format!("held {i}"))))
            .await
            .map_err(failed("POST /v0/messages/send"))?;
        lat.push(t.elapsed());
        let approval = m
            .approval
            .ok_or_else(|| format!("a send in gated_send was not held: status {:?}", m.status))?;
        held_ids.push(approval.id.to_string());
    }
    let held = finish(lat, cpu0, samples);
    let ids = &held_ids;
    let approve = block(samples, |i| async move {
        operator
            .call(api::approve(&ids[i as usize]))
            .await
            .map_err(failed("POST /v0/approvals/{id}/approve"))
            .map(drop)
    })
    .await?;
    Ok(GateRun {
        autonomous,
        held,
        approve,
    })
}

async fn block<F, Fut>(samples: u32, mut call: F) -> Result<Block, String>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut lat = Vec::with_capacity(samples as usize);
    let cpu0 = process_cpu();
    for i in 0..samples {
        let t = Instant::now();
        call(i).await?;
        lat.push(t.elapsed());
    }
    Ok(finish(lat, cpu0, samples))
}

pub(crate) fn finish(mut lat: Vec<Duration>, cpu0: Option<Duration>, samples: u32) -> Block {
    Block {
        latency: Stats::of(&mut lat),
        cpu_per_call: cpu0
            .zip(process_cpu())
            .map(|(a, b)| b.saturating_sub(a) / samples.max(1)),
    }
}
