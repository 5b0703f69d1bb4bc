//! The egress policy: which addresses Loft may connect to on a user's behalf.
//!
//! Every outbound connection made for a caller (brokered vault HTTP today; webhooks and
//! smarthosts later) is judged here on the address it actually connects to, after name
//! resolution. By default, everything that is not a public unicast address is refused:
//! loopback, unspecified, private, carrier-grade NAT, link-local, unique-local, multicast,
//! broadcast, documentation, benchmarking and reserved ranges, and the cloud metadata
//! endpoints. IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT,
//! NAT64, 6to4, Teredo) are judged by the IPv4 address they lead to.
//!
//! The operator can allow exceptions ([`EgressAllow`]): a host name (connections to that name
//! may go to otherwise refused addresses, except cloud metadata ones) or an address range
//! (addresses inside it are allowed whatever the name).
//!
//! [`EgressPolicy::check_ip`] and [`EgressPolicy::check`] are pure: they never resolve or
//! connect.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address is refused. [`Rule::name`] is the name shown in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `0.0.0.0/8` ("this network"), `::`.
    Unspecified,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, and the deprecated IPv6 site-local `fec0::/10`.
    Private,
    /// `100.64.0.0/10` (RFC 6598 shared address space).
    CarrierGradeNat,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// `192.0.0.0/24`, `192.88.99.0/24`, `240.0.0.0/4`, `100::/64`, `64:ff9b:1::/48` and the rest of `::/8`.
    Reserved,
    /// `169.254.169.254` and `169.254.170.2` (AWS, GCP, Azure, Oracle; ECS), `fd00:ec2::254` (AWS),
    /// `100.100.100.200` (Alibaba Cloud).
    CloudMetadata,
    /// Any public address, refused only under [`EgressPolicy::deny_public`] (test rigs,
    /// air-gapped sites).
    Public,
}

impl Rule {
    /// The rule's name, as refusals show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Unspecified => "unspecified",
            Self::Private => "private",
            Self::CarrierGradeNat => "carrier-grade NAT",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Reserved => "reserved",
            Self::CloudMetadata => "cloud metadata",
            Self::Public => "public",
        }
    }
}

impl Rule {
    /// The rule as a phrase: "a loopback address", "the broadcast address".
    fn phrase(self) -> String {
        match self {
            Self::Broadcast => "the broadcast address".into(),
            Self::Unspecified => "an unspecified address".into(),
            r => format!("a {r} address"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refused address, and the rule that refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// The address as it would have been connected to.
    pub ip: IpAddr,
    /// The IPv4 address an IPv6 address leads to, when it was judged by that.
    pub embedded: Option<Ipv4Addr>,
    pub rule: Rule,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(f, "{} leads to {v4}, {}", self.ip, self.rule.phrase()),
            None => write!(f, "{} is {}", self.ip, self.rule.phrase()),
        }
    }
}

impl std::error::Error for Denied {}

/// One exception the operator allows (`--egress-allow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressAllow {
    /// A host name, lower-case, without a trailing dot.
    Host(String),
    /// An address range; a single address is a /32 or /128.
    Range(IpNet),
}

impl fmt::Display for EgressAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(h) => f.write_str(h),
            Self::Range(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Self::Range(n) => write!(f, "{n}"),
        }
    }
}

/// An entry of the allowance that does not parse; the message names the entry and the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressAllowError(String);

impl fmt::Display for EgressAllowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EgressAllowError {}

impl FromStr for EgressAllow {
    type Err = EgressAllowError;

    /// `localhost`, `api.internal.example`, `127.0.0.1`, `10.0.0.0/8`, `::1`, `[::1]`,
    /// `fd00::/8`, `[fd00::]/8`.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let e = entry.trim();
        let bad = |why: &str| EgressAllowError(format!("`{e}` {why}"));
        if e.is_empty() {
            return Err(EgressAllowError("an entry is empty".into()));
        }
        // Brackets hold exactly an IPv6 address (`[::1]`, `[fd00::]/8`), as in a URL.
        let (addr, prefix, bracketed) = match e.strip_prefix('[') {
            Some(rest) => {
                let (inner, after) = rest
                    .split_once(']')
                    .ok_or_else(|| bad("opens a `[` without closing it"))?;
                let prefix = match after {
                    "" => None,
                    p => Some(p.strip_prefix('/').ok_or_else(|| {
                        bad("has something after `]`; entries take no port (write `[::1]` or `[fd00::]/8`)")
                    })?),
                };
                (inner, prefix, true)
            }
            None => match e.split_once('/') {
                Some((a, p)) => (a, Some(p), false),
                None => (e, None, false),
            },
        };
        let ip = match addr.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if bracketed => return Err(bad("holds no IPv6 address between its brackets")),
            Err(_) if prefix.is_some() && !addr.contains(':') => {
                return Err(bad("is not an address range (write e.g. `10.0.0.0/8` or `fd00::/8`)"));
            }
            Err(_) => return parse_host(e).map(EgressAllow::Host),
        };
        if bracketed && ip.is_ipv4() {
            return Err(bad("puts an IPv4 address in brackets; write it without them"));
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                Ok(_) => return Err(bad(&format!("has a prefix length over {max}"))),
                Err(_) => return Err(bad("has a prefix length that is not a number")),
            },
        };
        let net = IpNet::new(ip, len).map_err(|_| bad("has an invalid prefix length"))?;
        if net.trunc().addr() != ip {
            return Err(bad(&format!(
                "has bits set after its /{len} prefix; did you mean `{}`?",
                net.trunc()
            )));
        }
        Ok(EgressAllow::Range(net))
    }
}

/// A host name entry: letters, digits, `-` and `_` in dot-separated labels of 1 to 63
/// characters, 253 at most; compared case-insensitively and without a trailing dot.
fn parse_host(e: &str) -> Result<String, EgressAllowError> {
    let bad = |why: &str| EgressAllowError(format!("`{e}` {why}"));
    if e.contains(':') {
        return Err(bad(
            "is neither a host name nor an IP address; entries take no port or scheme",
        ));
    }
    if e.contains('*') {
        return Err(bad("has a wildcard; list each host name"));
    }
    let name = e.strip_suffix('.').unwrap_or(e).to_ascii_lowercase();
    let valid_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(bad(
            "is not a valid host name (letters, digits, `-` in dot-separated labels), IP address or range",
        ));
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("looks like an IP address but is not a valid one"));
    }
    Ok(name)
}

/// The egress policy. [`Default`] refuses every non-public address and allows nothing extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    hosts: BTreeSet<String>,
    ranges: Vec<IpNet>,
    /// Refuse public addresses too, so that only the exceptions are reachable.
    deny_public: bool,
}

impl EgressPolicy {
    /// The default policy: refuses every non-public address.
    pub fn new() -> Self {
        Self::default()
    }

    /// The default policy with the operator's exceptions, one entry each (blank entries are
    /// skipped, so `a,,b` and a trailing comma are harmless). The error names the first bad
    /// entry and what is wrong with it.
    pub fn parse<I, S>(entries: I) -> Result<Self, EgressAllowError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = Self::new();
        for e in entries {
            let e = e.as_ref();
            if !e.trim().is_empty() {
                policy = policy.allow(e.parse()?);
            }
        }
        Ok(policy)
    }

    /// Refuses public addresses too (`--egress-deny-public`): only the exceptions are
    /// reachable. Test rigs use it so that no test reaches past this machine.
    #[must_use]
    pub fn deny_public(mut self, deny: bool) -> Self {
        self.deny_public = deny;
        self
    }

    /// The rule for an address the default policy allows: none, unless public addresses are
    /// refused too.
    fn public(&self, ip: IpAddr) -> Option<Denied> {
        self.deny_public.then_some(Denied {
            ip,
            embedded: None,
            rule: Rule::Public,
        })
    }

    /// Adds one exception.
    pub fn allow(mut self, entry: EgressAllow) -> Self {
        match entry {
            EgressAllow::Host(h) => {
                self.hosts.insert(h);
            }
            EgressAllow::Range(n) => {
                if !self.ranges.contains(&n) {
                    self.ranges.push(n);
                }
            }
        }
        self
    }

    /// The exceptions, in a stable order (host names, then ranges as given).
    pub fn allowances(&self) -> Vec<EgressAllow> {
        self.hosts
            .iter()
            .cloned()
            .map(EgressAllow::Host)
            .chain(self.ranges.iter().copied().map(EgressAllow::Range))
            .collect()
    }

    /// Whether the operator allowed this host name (case-insensitive, trailing dot ignored).
    pub fn host_allowed(&self, host: &str) -> bool {
        let h = host.strip_suffix('.').unwrap_or(host);
        self.hosts.contains(&h.to_ascii_lowercase())
    }

    /// Judges an address whatever name led to it: refused unless public or inside an allowed
    /// range (an IPv6 address that leads to an IPv4 one is also allowed by a range holding that).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        match classify(ip).or_else(|| self.public(ip)) {
            None => Ok(()),
            Some(d) if self.range_allows(&d) => Ok(()),
            Some(d) => Err(d),
        }
    }

    /// Judges an address reached through `host` (a name or an IP literal as in the URL): as
    /// [`check_ip`](Self::check_ip), and also allowed when the operator allowed the host name,
    /// except for cloud metadata addresses, which only an explicit range allows (a name the
    /// operator trusts must not become a way to the metadata service through its DNS).
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Denied> {
        match classify(ip).or_else(|| self.public(ip)) {
            None => Ok(()),
            Some(d) if self.range_allows(&d) => Ok(()),
            Some(d) if d.rule != Rule::CloudMetadata && self.host_allowed(host) => Ok(()),
            Some(d) => Err(d),
        }
    }

    /// Whether no address a name could resolve to is allowed for `host`: public addresses are
    /// refused, the name is not allowed, and no range is.
    pub fn denies_every_name(&self, host: &str) -> bool {
        self.deny_public && self.ranges.is_empty() && !self.host_allowed(host)
    }

    fn range_allows(&self, d: &Denied) -> bool {
        self.ranges
            .iter()
            .any(|n| n.contains(&d.ip) || d.embedded.is_some_and(|v4| n.contains(&IpAddr::V4(v4))))
    }
}

/// The rule refusing `ip` under the default policy, if any.
pub fn classify(ip: IpAddr) -> Option<Denied> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|rule| Denied {
            ip,
            embedded: None,
            rule,
        }),
        IpAddr::V6(v6) => {
            if let Some(rule) = v6_rule(v6) {
                return Some(Denied {
                    ip,
                    embedded: None,
                    rule,
                });
            }
            if let Some(v4) = embedded_v4(v6) {
                return classify_v4(v4).map(|rule| Denied {
                    ip,
                    embedded: Some(v4),
                    rule,
                });
            }
            // The rest of ::/8 is reserved by the IETF; none of it is routed.
            (v6.segments()[0] < 0x100).then_some(Denied {
                ip,
                embedded: None,
                rule: Rule::Reserved,
            })
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

/// In order: the first match names the rule (metadata before link-local, broadcast before
/// reserved).
const V4_RULES: &[(Ipv4Net, Rule)] = &[
    (v4(169, 254, 169, 254, 32), Rule::CloudMetadata),
    (v4(169, 254, 170, 2, 32), Rule::CloudMetadata),
    (v4(100, 100, 100, 200, 32), Rule::CloudMetadata),
    (v4(0, 0, 0, 0, 8), Rule::Unspecified),
    (v4(127, 0, 0, 0, 8), Rule::Loopback),
    (v4(10, 0, 0, 0, 8), Rule::Private),
    (v4(172, 16, 0, 0, 12), Rule::Private),
    (v4(192, 168, 0, 0, 16), Rule::Private),
    (v4(100, 64, 0, 0, 10), Rule::CarrierGradeNat),
    (v4(169, 254, 0, 0, 16), Rule::LinkLocal),
    (v4(192, 0, 0, 0, 24), Rule::Reserved),
    (v4(192, 0, 2, 0, 24), Rule::Documentation),
    (v4(198, 51, 100, 0, 24), Rule::Documentation),
    (v4(203, 0, 113, 0, 24), Rule::Documentation),
    (v4(198, 18, 0, 0, 15), Rule::Benchmarking),
    (v4(192, 88, 99, 0, 24), Rule::Reserved),
    (v4(224, 0, 0, 0, 4), Rule::Multicast),
    (v4(255, 255, 255, 255, 32), Rule::Broadcast),
    (v4(240, 0, 0, 0, 4), Rule::Reserved),
];

fn classify_v4(ip: Ipv4Addr) -> Option<Rule> {
    V4_RULES.iter().find(|(n, _)| n.contains(&ip)).map(|(_, r)| *r)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), len)
}

/// IPv6 ranges refused outright, in order. Ranges that carry an IPv4 address are not here:
/// [`embedded_v4`] handles them.
const V6_RULES: &[(Ipv6Net, Rule)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Rule::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Rule::Loopback),
    (v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), Rule::CloudMetadata),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Rule::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Rule::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Rule::Private),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Rule::Multicast),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Rule::Documentation),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Rule::Documentation),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), Rule::Benchmarking),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Rule::Reserved),
    // NAT64 local use (RFC 8215): the translator and its prefix length are the network's own.
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Rule::Reserved),
];

fn v6_rule(ip: Ipv6Addr) -> Option<Rule> {
    V6_RULES.iter().find(|(n, _)| n.contains(&ip)).map(|(_, r)| *r)
}

/// The IPv4 address an IPv6 address leads to: IPv4-mapped `::ffff:0:0/96`, SIIT
/// `::ffff:0:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16` (the
/// relay's IPv4 address) and Teredo `2001::/32` (the client's, de-obfuscated).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // Mapped, compatible, SIIT and NAT64: the low 32 bits.
        [0, 0, 0, 0, 0, 0xffff | 0, a, b] | [0, 0, 0, 0, 0xffff, 0, a, b] | [0x64, 0xff9b, 0, 0, 0, 0, a, b] => {
            Some(low(a, b))
        }
        // 6to4: bits 16 to 47.
        [0x2002, a, b, ..] => Some(low(a, b)),
        // Teredo: the client's address, inverted, in the low 32 bits.
        [0x2001, 0, _, _, _, _, a, b] => Some(low(!a, !b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Pure tests: nothing here resolves a name or opens a connection.

    use super::*;

    fn rule(s: &str) -> Option<Rule> {
        EgressPolicy::new().check_ip(s.parse().unwrap()).err().map(|d| d.rule)
    }

    #[test]
    fn refuses_every_special_ipv4_range_by_name() {
        let cases: &[(&str, Rule)] = &[
            ("127.0.0.1", Rule::Loopback),
            ("127.255.255.254", Rule::Loopback),
            ("0.0.0.0", Rule::Unspecified),
            ("0.1.2.3", Rule::Unspecified),
            ("10.0.0.1", Rule::Private),
            ("10.255.255.255", Rule::Private),
            ("172.16.0.1", Rule::Private),
            ("172.31.255.255", Rule::Private),
            ("192.168.1.1", Rule::Private),
            ("100.64.0.1", Rule::CarrierGradeNat),
            ("100.127.255.255", Rule::CarrierGradeNat),
            ("169.254.0.1", Rule::LinkLocal),
            ("169.254.169.253", Rule::LinkLocal),
            ("169.254.169.254", Rule::CloudMetadata),
            ("169.254.170.2", Rule::CloudMetadata),
            ("100.100.100.200", Rule::CloudMetadata),
            ("224.0.0.1", Rule::Multicast),
            ("239.255.255.250", Rule::Multicast),
            ("255.255.255.255", Rule::Broadcast),
            ("240.0.0.1", Rule::Reserved),
            ("255.255.255.254", Rule::Reserved),
            ("192.0.0.8", Rule::Reserved),
            ("192.88.99.1", Rule::Reserved),
            ("192.0.2.1", Rule::Documentation),
            ("198.51.100.7", Rule::Documentation),
            ("203.0.113.9", Rule::Documentation),
            ("198.18.0.1", Rule::Benchmarking),
            ("198.19.255.255", Rule::Benchmarking),
        ];
        for (ip, want) in cases {
            assert_eq!(rule(ip), Some(*want), "{ip}");
        }
    }

    #[test]
    fn allows_public_ipv4_including_the_neighbours_of_special_ranges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "192.0.1.255",
            "192.0.3.0",
        ] {
            assert_eq!(rule(ip), None, "{ip}");
        }
    }

    #[test]
    fn refuses_every_special_ipv6_range_by_name() {
        let cases: &[(&str, Rule)] = &[
            ("::1", Rule::Loopback),
            ("::", Rule::Unspecified),
            ("fc00::1", Rule::UniqueLocal),
            ("fd12:3456::1", Rule::UniqueLocal),
            ("fd00:ec2::254", Rule::CloudMetadata),
            ("fe80::1", Rule::LinkLocal),
            ("febf:ffff::1", Rule::LinkLocal),
            ("fec0::1", Rule::Private),
            ("ff02::1", Rule::Multicast),
            ("ff0e::1", Rule::Multicast),
            ("2001:db8::1", Rule::Documentation),
            ("3fff::1", Rule::Documentation),
            ("2001:2::1", Rule::Benchmarking),
            ("100::1", Rule::Reserved),
            ("64:ff9b:1::1", Rule::Reserved),
            ("::1:0:0:0", Rule::Reserved),
            ("ff::1", Rule::Reserved),
        ];
        for (ip, want) in cases {
            assert_eq!(rule(ip), Some(*want), "{ip}");
        }
    }

    #[test]
    fn judges_ipv6_that_carries_ipv4_by_the_ipv4_address() {
        let cases: &[(&str, Rule, &str)] = &[
            // IPv4-mapped.
            ("::ffff:127.0.0.1", Rule::Loopback, "127.0.0.1"),
            ("::ffff:7f00:1", Rule::Loopback, "127.0.0.1"),
            ("::ffff:10.1.2.3", Rule::Private, "10.1.2.3"),
            ("::ffff:169.254.169.254", Rule::CloudMetadata, "169.254.169.254"),
            ("::ffff:0.0.0.0", Rule::Unspecified, "0.0.0.0"),
            // SIIT.
            ("::ffff:0:127.0.0.1", Rule::Loopback, "127.0.0.1"),
            // IPv4-compatible.
            ("::127.0.0.1", Rule::Loopback, "127.0.0.1"),
            ("::192.168.0.1", Rule::Private, "192.168.0.1"),
            // NAT64.
            ("64:ff9b::7f00:1", Rule::Loopback, "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", Rule::CloudMetadata, "169.254.169.254"),
            ("64:ff9b::192.168.1.1", Rule::Private, "192.168.1.1"),
            // 6to4.
            ("2002:7f00:1::", Rule::Loopback, "127.0.0.1"),
            ("2002:a00:1::1", Rule::Private, "10.0.0.1"),
            ("2002:a9fe:a9fe::1", Rule::CloudMetadata, "169.254.169.254"),
            // Teredo (client address inverted).
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Rule::Loopback, "127.0.0.1"),
        ];
        for (ip, want, v4) in cases {
            let d = EgressPolicy::new().check_ip(ip.parse().unwrap()).unwrap_err();
            assert_eq!(d.rule, *want, "{ip}");
            assert_eq!(d.embedded, Some(v4.parse().unwrap()), "{ip}");
        }
        // ... and public when the IPv4 address is.
        for ip in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            assert_eq!(rule(ip), None, "{ip}");
        }
    }

    #[test]
    fn deny_public_leaves_only_the_exceptions() {
        let p = EgressPolicy::parse(["127.0.0.1", "api.internal.example"])
            .unwrap()
            .deny_public(true);
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert_eq!(p.check_ip(public).unwrap_err().rule, Rule::Public);
        assert_eq!(p.check("example.com", public).unwrap_err().rule, Rule::Public);
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("api.internal.example", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(EgressPolicy::new().check_ip(public).is_ok(), "off by default");
    }

    #[test]
    fn allows_public_ipv6() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "fbff:ffff::1",
            "fe00::1",
        ] {
            assert_eq!(rule(ip), None, "{ip}");
        }
    }

    #[test]
    fn refusals_name_the_rule_and_the_embedded_address() {
        let d = EgressPolicy::new()
            .check_ip("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(d.rule.name(), "cloud metadata");
        assert_eq!(d.to_string(), "169.254.169.254 is a cloud metadata address");
        let d = EgressPolicy::new()
            .check_ip("::ffff:127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(d.to_string(), "::ffff:127.0.0.1 leads to 127.0.0.1, a loopback address");
        let d = EgressPolicy::new().check_ip(Ipv4Addr::UNSPECIFIED.into()).unwrap_err();
        assert_eq!(d.to_string(), "0.0.0.0 is an unspecified address");
        let d = EgressPolicy::new().check_ip(Ipv4Addr::BROADCAST.into()).unwrap_err();
        assert_eq!(d.to_string(), "255.255.255.255 is the broadcast address");
        let names: Vec<_> = [
            Rule::Loopback,
            Rule::Unspecified,
            Rule::Private,
            Rule::CarrierGradeNat,
            Rule::LinkLocal,
            Rule::UniqueLocal,
            Rule::Multicast,
            Rule::Broadcast,
            Rule::Documentation,
            Rule::Benchmarking,
            Rule::Reserved,
            Rule::CloudMetadata,
        ]
        .iter()
        .map(|r| r.name())
        .collect();
        assert_eq!(
            names,
            [
                "loopback",
                "unspecified",
                "private",
                "carrier-grade NAT",
                "link-local",
                "unique-local",
                "multicast",
                "broadcast",
                "documentation",
                "benchmarking",
                "reserved",
                "cloud metadata"
            ]
        );
    }

    #[test]
    fn parses_allowance_entries() {
        let p = |s: &str| s.parse::<EgressAllow>().unwrap();
        assert_eq!(p("localhost"), EgressAllow::Host("localhost".into()));
        assert_eq!(
            p(" API.Internal.Example. "),
            EgressAllow::Host("api.internal.example".into())
        );
        assert_eq!(p("my_svc"), EgressAllow::Host("my_svc".into()));
        assert_eq!(p("127.0.0.1"), EgressAllow::Range("127.0.0.1/32".parse().unwrap()));
        assert_eq!(p("10.0.0.0/8"), EgressAllow::Range("10.0.0.0/8".parse().unwrap()));
        assert_eq!(p("::1"), EgressAllow::Range("::1/128".parse().unwrap()));
        assert_eq!(p("[::1]"), EgressAllow::Range("::1/128".parse().unwrap()));
        assert_eq!(p("[fd00::]/8"), EgressAllow::Range("fd00::/8".parse().unwrap()));
        assert_eq!(p("fd00::/8"), EgressAllow::Range("fd00::/8".parse().unwrap()));
        assert_eq!(p("0.0.0.0/0"), EgressAllow::Range("0.0.0.0/0".parse().unwrap()));
        assert_eq!(p("127.0.0.1").to_string(), "127.0.0.1");
        assert_eq!(p("[::1]").to_string(), "::1");
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_allowance_entries_are_named_with_the_fault() {
        let e = |s: &str| s.parse::<EgressAllow>().unwrap_err().to_string();
        assert_eq!(e(""), "an entry is empty");
        assert_eq!(e("10.0.0.0/33"), "`10.0.0.0/33` has a prefix length over 32");
        assert_eq!(e("::/129"), "`::/129` has a prefix length over 128");
        assert_eq!(e("10.0.0.0/x"), "`10.0.0.0/x` has a prefix length that is not a number");
        assert_eq!(
            e("10.0.0.1/8"),
            "`10.0.0.1/8` has bits set after its /8 prefix; did you mean `10.0.0.0/8`?"
        );
        assert!(e("10.0.0/8").contains("is not an address range"), "{}", e("10.0.0/8"));
        assert!(e("localhost:8080").contains("no port"), "{}", e("localhost:8080"));
        assert!(e("[::1]:8080").contains("no port"), "{}", e("[::1]:8080"));
        assert!(e("[::1").contains("without closing"), "{}", e("[::1"));
        assert!(e("[localhost]").contains("no IPv6 address"), "{}", e("[localhost]"));
        assert!(e("[127.0.0.1]").contains("without them"), "{}", e("[127.0.0.1]"));
        assert!(e("http://x").contains("no port or scheme"), "{}", e("http://x"));
        assert!(e("*.example.com").contains("wildcard"), "{}", e("*.example.com"));
        assert!(e("bad host").contains("not a valid host name"), "{}", e("bad host"));
        assert!(e("-x.example").contains("not a valid host name"), "{}", e("-x.example"));
        assert!(e("a..b").contains("not a valid host name"), "{}", e("a..b"));
        assert!(e("256.0.0.1").contains("not a valid one"), "{}", e("256.0.0.1"));
        let err = EgressPolicy::parse(["localhost", "", " ", "10.0.0.1/8"]).unwrap_err();
        assert!(err.to_string().starts_with("`10.0.0.1/8`"), "{err}");
    }

    #[test]
    fn a_range_allowance_allows_addresses_inside_it_whatever_the_name() {
        let policy = EgressPolicy::parse(["127.0.0.1", "10.0.0.0/8", "[::1]"]).unwrap();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.9.9.9",
            "64:ff9b::a01:203",
        ] {
            assert_eq!(policy.check_ip(ip.parse().unwrap()), Ok(()), "{ip}");
            assert_eq!(policy.check("anything.example", ip.parse().unwrap()), Ok(()), "{ip}");
        }
        for (ip, want) in [
            ("127.0.0.2", Rule::Loopback),
            ("192.168.0.1", Rule::Private),
            ("169.254.169.254", Rule::CloudMetadata),
        ] {
            assert_eq!(policy.check_ip(ip.parse().unwrap()).unwrap_err().rule, want, "{ip}");
        }
        // Public addresses stay allowed.
        assert_eq!(policy.check_ip("8.8.8.8".parse().unwrap()), Ok(()));
        // An explicit range is the one way to the metadata service.
        let meta = EgressPolicy::parse(["169.254.169.254"]).unwrap();
        assert_eq!(meta.check_ip("169.254.169.254".parse().unwrap()), Ok(()));
        assert!(meta.check_ip("169.254.169.253".parse().unwrap()).is_err());
    }

    #[test]
    fn a_host_allowance_allows_that_name_only_and_never_metadata() {
        let policy = EgressPolicy::parse(["localhost", "API.internal.example"]).unwrap();
        assert!(policy.host_allowed("LOCALHOST."));
        assert!(policy.host_allowed("api.internal.example"));
        assert!(!policy.host_allowed("other.example"));
        assert!(!policy.host_allowed("sub.localhost"));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(policy.check("localhost", lo), Ok(()));
        assert_eq!(policy.check("localhost", "::1".parse().unwrap()), Ok(()));
        assert_eq!(
            policy.check("api.internal.example", "10.2.3.4".parse().unwrap()),
            Ok(())
        );
        // The same address through another name, or as a bare address, is refused.
        assert_eq!(policy.check("evil.example", lo).unwrap_err().rule, Rule::Loopback);
        assert_eq!(policy.check("127.0.0.1", lo).unwrap_err().rule, Rule::Loopback);
        assert_eq!(policy.check_ip(lo).unwrap_err().rule, Rule::Loopback);
        // A trusted name whose DNS points at the metadata service does not get there.
        for ip in [
            "169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
        ] {
            assert_eq!(
                policy
                    .check("api.internal.example", ip.parse().unwrap())
                    .unwrap_err()
                    .rule,
                Rule::CloudMetadata,
                "{ip}"
            );
        }
    }

    #[test]
    fn the_default_policy_allows_nothing_extra() {
        let p = EgressPolicy::default();
        assert!(p.allowances().is_empty());
        assert!(!p.host_allowed("localhost"));
        assert_eq!(
            p.check("localhost", "127.0.0.1".parse().unwrap()).unwrap_err().rule,
            Rule::Loopback
        );
        let p = EgressPolicy::parse(["b.example", "10.0.0.0/8", "a.example", "10.0.0.0/8"]).unwrap();
        let shown: Vec<_> = p.allowances().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a.example", "b.example", "10.0.0.0/8"]);
    }
}
