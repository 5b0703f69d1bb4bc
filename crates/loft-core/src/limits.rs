//! Limits on abuse at the front door: request rates per key and per client address, and a
//! lockout of addresses that present too many refused keys.
//!
//! Everything here runs on the [`Clock`](crate::time::Clock) port, so tests drive it with a
//! manual clock. The state is per process (each node of a PostgreSQL deployment limits on its
//! own); it is small and bounded: idle buckets are dropped, and at most
//! [`MAX_TRACKED_ADDRESSES`] addresses are tracked per window, the rest sharing one bucket.
//!
//! Why not the `governor` crate: the limiter must read time from the `Clock` port, and the
//! refusal counts it keeps feed the aggregated `auth.refused` audit rows; a token bucket is a
//! few lines, and one table of counters serves both.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

use crate::time::Timestamp;

/// Beyond this many distinct addresses in one window, further ones share one bucket (`*`):
/// memory and audit rows stay bounded whatever an attacker spreads its requests over.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// A sustained rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once after an idle period.
    pub burst: u32,
}

impl Rate {
    /// Parses `N` (N per second, burst 2N) or `N/BURST`; `0` or `off` means no limit.
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (rate, burst) = match s.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let per_second: u32 = rate
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a rate: use N (per second), N/BURST, or off"))?;
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: the burst after `/` must be a whole number"))?,
            None => per_second.saturating_mul(2),
        };
        if per_second == 0 || burst == 0 {
            return Err(format!("`{s}`: rate and burst must be positive (or `off`)"));
        }
        Ok(Some(Self { per_second, burst }))
    }
}

/// Deploy-time settings of [`Limits`].
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Requests per authenticated key (the operator key is not limited).
    pub per_key: Option<Rate>,
    /// Requests per client address, authenticated or not.
    pub per_address: Option<Rate>,
    /// Refused keys per address per window before the address is refused outright (429)
    /// until the window ends; 0 turns the lockout off.
    pub auth_failures: u32,
    /// The window of refused-key counting and of the aggregated `auth.refused` audit rows.
    pub auth_window_secs: u32,
}

impl Default for LimitsConfig {
    /// Generous for a real crew on one host (dozens of agents polling and sending), tight for
    /// a key-guessing client.
    fn default() -> Self {
        Self {
            per_key: Some(Rate {
                per_second: 100,
                burst: 200,
            }),
            per_address: Some(Rate {
                per_second: 1000,
                burst: 2000,
            }),
            auth_failures: 20,
            auth_window_secs: 60,
        }
    }
}

impl LimitsConfig {
    /// No limits at all (benchmarks, in-process tests that hammer one key).
    pub fn off() -> Self {
        Self {
            per_key: None,
            per_address: None,
            auth_failures: 0,
            auth_window_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// Token buckets by key, refilled evenly with time (on the `Clock` port's timestamps): the
/// request limits here and the hourly recipient budget of [`crate::quota`].
#[derive(Default)]
pub(crate) struct Buckets(Mutex<HashMap<String, Bucket>>);

impl Buckets {
    /// Takes `cost` tokens from `key`'s bucket, which holds at most `capacity` and refills
    /// `per_second`; `Err(seconds to wait)` when it holds fewer (and nothing is taken).
    pub(crate) fn take(&self, key: &str, capacity: f64, per_second: f64, cost: f64, now: Timestamp) -> Result<(), u64> {
        let per_micro = per_second / 1e6;
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= 100_000 && !map.contains_key(key) {
            // Drop the buckets that have refilled completely: they carry no state.
            map.retain(|_, b| b.tokens + (now.as_micros() - b.at.as_micros()) as f64 * per_micro < capacity);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = (now.as_micros() - b.at.as_micros()).max(0) as f64;
        b.tokens = (b.tokens + elapsed * per_micro).min(capacity);
        b.at = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            Ok(())
        } else {
            Err((((cost - b.tokens) / per_micro / 1e6).ceil() as u64).max(1))
        }
    }
}

/// One address's refused keys in the current window.
#[derive(Debug, Clone, Default)]
struct Refusals {
    count: u64,
    /// Requests refused by the lockout itself (never looked up).
    locked_out: u64,
    reasons: BTreeMap<String, u64>,
}

/// The refused authentications of one address over one window: one aggregated audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalSummary {
    /// The client address (IPv6 grouped by /64), `unknown`, or `*` for addresses beyond the
    /// tracking limit.
    pub address: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// Refused keys (every refusal, including those refused by the lockout).
    pub count: u64,
    /// Of which refused by the lockout without looking at the key.
    pub locked_out: u64,
    /// Count per reason code (`missing_key`, `unknown_key`, `malformed_key`, `revoked_key`,
    /// `expired_key`, `revoked_identity`, `locked_out`).
    pub reasons: BTreeMap<String, u64>,
}

struct Window {
    start: Timestamp,
    by_address: HashMap<String, Refusals>,
}

/// The limiter state of one process.
pub struct Limits {
    config: LimitsConfig,
    keys: Buckets,
    addresses: Buckets,
    refusals: Mutex<Option<Window>>,
    /// Windows that ended, waiting to be written as audit rows.
    finished: Mutex<Vec<RefusalSummary>>,
}

/// How an address is keyed: IPv6 by its /64 (one host can hold a whole /64), IPv4 as is.
pub fn address_key(remote: Option<&str>) -> String {
    match remote.and_then(|r| r.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => remote.map_or_else(|| "unknown".to_owned(), str::to_owned),
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            keys: Buckets::default(),
            addresses: Buckets::default(),
            refusals: Mutex::new(None),
            finished: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    fn window_micros(&self) -> i64 {
        i64::from(self.config.auth_window_secs.max(1)) * 1_000_000
    }

    /// A request from `address` (see [`address_key`]), before its key is looked at.
    pub fn check_address(&self, address: &str, now: Timestamp) -> Result<(), u64> {
        match self.config.per_address {
            Some(rate) if address != "unknown" => {
                self.addresses
                    .take(address, f64::from(rate.burst), f64::from(rate.per_second), 1.0, now)
            }
            _ => Ok(()),
        }
    }

    /// A request made with the verified key `key_id`.
    pub fn check_key(&self, key_id: &str, now: Timestamp) -> Result<(), u64> {
        match self.config.per_key {
            Some(rate) => self
                .keys
                .take(key_id, f64::from(rate.burst), f64::from(rate.per_second), 1.0, now),
            None => Ok(()),
        }
    }

    /// Rolls the refusal window forward if it ended; returns the live window.
    fn current<'a>(&self, slot: &'a mut Option<Window>, now: Timestamp) -> &'a mut Window {
        let len = self.window_micros();
        let start = Timestamp::from_micros(now.as_micros() - now.as_micros().rem_euclid(len));
        if slot.as_ref().is_some_and(|w| w.start != start) {
            let old = slot.take().expect("checked above");
            self.finish(old);
        }
        slot.get_or_insert_with(|| Window {
            start,
            by_address: HashMap::new(),
        })
    }

    fn finish(&self, window: Window) {
        let end = Timestamp::from_micros(window.start.as_micros() + self.window_micros());
        let mut done = self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rows: Vec<_> = window
            .by_address
            .into_iter()
            .map(|(address, r)| RefusalSummary {
                address,
                window_start: window.start,
                window_end: end,
                count: r.count,
                locked_out: r.locked_out,
                reasons: r.reasons,
            })
            .collect();
        rows.sort_by(|a, b| a.address.cmp(&b.address));
        done.extend(rows);
    }

    /// Whether `address` has used up its refused keys in this window: `Err(seconds until the
    /// window ends)`. A locked-out request is counted (reason `locked_out`) without its key
    /// being looked up.
    pub fn check_lockout(&self, address: &str, now: Timestamp) -> Result<(), u64> {
        let limit = u64::from(self.config.auth_failures);
        if limit == 0 || address == "unknown" {
            return Ok(());
        }
        let mut slot = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = self.window_micros();
        let w = self.current(&mut slot, now);
        let Some(r) = w.by_address.get_mut(address) else {
            return Ok(());
        };
        if r.count - r.locked_out < limit {
            return Ok(());
        }
        r.count += 1;
        r.locked_out += 1;
        *r.reasons.entry("locked_out".into()).or_default() += 1;
        let left = (w.start.as_micros() + len - now.as_micros()).max(0) as u64;
        Err(left.div_ceil(1_000_000))
    }

    /// Records one refused key from `address` for `reason`.
    pub fn record_refusal(&self, address: &str, reason: &str, now: Timestamp) {
        let mut slot = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = self.current(&mut slot, now);
        let key = if w.by_address.contains_key(address) || w.by_address.len() < MAX_TRACKED_ADDRESSES {
            address.to_owned()
        } else {
            "*".to_owned()
        };
        let r = w.by_address.entry(key).or_default();
        r.count += 1;
        *r.reasons.entry(reason.to_owned()).or_default() += 1;
    }

    /// The summaries of windows that have ended by `now` (all of them, the current one
    /// included, when `everything`), taken out to be written to the audit log.
    pub fn take_refusals(&self, now: Timestamp, everything: bool) -> Vec<RefusalSummary> {
        {
            let mut slot = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = self.current(&mut slot, now);
            if everything && let Some(w) = slot.take() {
                self.finish(w);
            }
        }
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros(1_800_000_000_000_000 + secs * 1_000_000)
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert_eq!(Rate::parse("0").unwrap(), None);
        assert_eq!(
            Rate::parse("10").unwrap(),
            Some(Rate {
                per_second: 10,
                burst: 20
            })
        );
        assert_eq!(
            Rate::parse("10/5").unwrap(),
            Some(Rate {
                per_second: 10,
                burst: 5
            })
        );
        assert!(Rate::parse("ten").is_err());
        assert!(Rate::parse("10/0").is_err());
    }

    #[test]
    fn key_bucket_allows_the_burst_then_the_rate() {
        let l = Limits::new(LimitsConfig {
            per_key: Some(Rate {
                per_second: 2,
                burst: 3,
            }),
            ..LimitsConfig::off()
        });
        for _ in 0..3 {
            l.check_key("k", t(0)).unwrap();
        }
        assert_eq!(l.check_key("k", t(0)), Err(1));
        // Another key has its own bucket.
        l.check_key("other", t(0)).unwrap();
        // Half a second later one token is back.
        let half = Timestamp::from_micros(t(0).as_micros() + 500_000);
        l.check_key("k", half).unwrap();
        assert!(l.check_key("k", half).is_err());
    }

    #[test]
    fn lockout_after_the_allowed_refusals_and_aggregated_rows() {
        let l = Limits::new(LimitsConfig {
            auth_failures: 3,
            auth_window_secs: 60,
            ..LimitsConfig::off()
        });
        let a = "192.0.2.7";
        for _ in 0..3 {
            l.check_lockout(a, t(1)).unwrap();
            l.record_refusal(a, "unknown_key", t(1));
        }
        let wait = l.check_lockout(a, t(2)).unwrap_err();
        assert!(wait > 0 && wait <= 60);
        // Another address is not locked out; unknown addresses never are.
        l.check_lockout("192.0.2.8", t(2)).unwrap();
        l.check_lockout("unknown", t(2)).unwrap();
        // Nothing is written until the window ends.
        assert!(l.take_refusals(t(3), false).is_empty());
        let rows = l.take_refusals(t(200), false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].address, a);
        assert_eq!(rows[0].count, 4);
        assert_eq!(rows[0].locked_out, 1);
        assert_eq!(rows[0].reasons["unknown_key"], 3);
        // A new window, a new allowance.
        l.check_lockout(a, t(200)).unwrap();
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let l = Limits::new(LimitsConfig::off());
        for i in 0..(MAX_TRACKED_ADDRESSES + 50) {
            l.record_refusal(&format!("addr{i}"), "unknown_key", t(0));
        }
        let rows = l.take_refusals(t(0), true);
        assert_eq!(rows.len(), MAX_TRACKED_ADDRESSES + 1);
        assert_eq!(rows.iter().find(|r| r.address == "*").unwrap().count, 50);
    }

    #[test]
    fn addresses_are_keyed_by_host_or_v6_prefix() {
        assert_eq!(address_key(Some("192.0.2.1")), "192.0.2.1");
        assert_eq!(address_key(Some("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(address_key(Some("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(address_key(None), "unknown");
    }
}
