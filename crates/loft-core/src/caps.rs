//! Sending caps and first-contact gating (the "sending controls" of human oversight).
//!
//! **Caps** bound how much mail goes out: `mails_per_hour`, `mails_per_day` and
//! `new_recipients_per_day`, set per identity (stored on the identity) and for the whole
//! instance (stored in the instance state, counting every identity's mail together). Unset
//! means no cap, and every cap is unset by default. They are counted from the database, so
//! every node agrees: a *mail* is a sender copy composed in the window (held, rejected and
//! expired mail included: each was an attempt), a *new recipient* is an address the identity
//! wrote to for the first time in the last 24 hours (its [`Correspondence`] row's `first_sent_at`).
//! A send over a cap is refused with 429 `cap_reached` and the seconds until the oldest
//! counted entry leaves the window ([`refusal`]).
//!
//! **Contacts** are the addresses an identity exchanged mail with: one row per (identity,
//! address), written in the transaction of the mail it comes from ([`ContactTouch`]): for the
//! sender, every recipient when the mail goes out (at once, or at approval for held mail; a
//! held, rejected or expired mail records nothing); for each local recipient, the sender.
//!
//! **First contact**: an identity with [`FirstContact::Hold`] has mail to an address it never
//! exchanged mail with held for a reviewer, in any mode.
//!
//! The checks are not in the write's transaction: two sends racing at the edge of a cap may
//! both pass and go over it by one each (as with [`crate::quota`]). Caps bound a runaway
//! agent; they are not accounting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::ids::IdentityId;
use crate::time::Timestamp;
use crate::{Error, Result};

/// The largest cap a client may set.
pub const MAX_CAP: u64 = 1_000_000;
pub const HOUR_SECS: i64 = 3600;
pub const DAY_SECS: i64 = 24 * 3600;

/// What an identity does with mail to an address it never exchanged mail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FirstContact {
    /// Sent as the identity's mode says (the default).
    #[default]
    Allow,
    /// Held for a reviewer, whatever the mode.
    Hold,
}

impl FirstContact {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstContact::Allow => "allow",
            FirstContact::Hold => "hold",
        }
    }

    /// A value a client sent.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "allow" => Ok(FirstContact::Allow),
            "hold" => Ok(FirstContact::Hold),
            other => Err(
                Error::invalid("invalid_first_contact", format!("unknown first_contact `{other}`"))
                    .with_hint("use allow or hold"),
            ),
        }
    }

    /// A value as stored for identity `id`.
    pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
        Self::parse(s).map_err(|_| {
            Error::internal(format!(
                "identity {id} has the unknown first_contact `{s}` (written by a newer version?)"
            ))
        })
    }
}

impl std::fmt::Display for FirstContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sending caps; `null` is no cap. The instance's (`GET /v0/instance/caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendCaps {
    /// Mails composed in the last hour.
    pub mails_per_hour: Option<u64>,
    /// Mails composed in the last 24 hours.
    pub mails_per_day: Option<u64>,
    /// Addresses written to for the first time in the last 24 hours.
    pub new_recipients_per_day: Option<u64>,
}

impl SendCaps {
    /// Each cap with its value.
    pub fn each(&self) -> [(CapName, Option<u64>); 3] {
        [
            (CapName::MailsPerHour, self.mails_per_hour),
            (CapName::MailsPerDay, self.mails_per_day),
            (CapName::NewRecipientsPerDay, self.new_recipients_per_day),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.each().iter().all(|(_, v)| v.is_none())
    }
}

/// A two-valued per-identity setting, spelled as the API and the CLI spell it.
macro_rules! setting {
    ($(#[$m:meta])* $name:ident, $code:literal, [$(#[$dm:meta])* $default:ident = $ds:literal, $(#[$om:meta])* $other:ident = $os:literal]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $(#[$dm])*
            #[default]
            $default,
            $(#[$om])*
            $other,
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $name::$default => $ds,
                    $name::$other => $os,
                }
            }

            /// A value a client sent.
            pub fn parse(s: &str) -> Result<Self> {
                match s.trim() {
                    $ds => Ok($name::$default),
                    $os => Ok($name::$other),
                    other => Err(Error::invalid(concat!("invalid_", $code), format!(concat!("unknown ", $code, " `{}`"), other))
                        .with_hint(concat!("use ", $ds, " or ", $os))),
                }
            }

            /// A value as stored for identity `id`.
            pub fn parse_stored(s: &str, id: &str) -> Result<Self> {
                Self::parse(s).map_err(|_| {
                    Error::internal(format!(
                        concat!("identity {} has the unknown ", $code, " `{}` (written by a newer version?)"),
                        id, s
                    ))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

setting!(
    /// Whether the exfiltration guard looks for the identity's vault values in its outgoing mail.
    Guard, "exfiltration_guard",
    [
        /// On (the default): a mail quoting one of its secrets is held, whatever the mode.
        On = "on",
        /// Off: set by the operator for an identity whose mail must quote its secrets.
        Off = "off"
    ]
);

setting!(
    /// Whether mail between this identity and other identities of this server passes its mode's
    /// gate.
    InternalMail, "internal_mail",
    [
        /// Gated like mail to the outside (the default: see docs/oversight.md for why).
        Gated = "gated",
        /// Exempt from the mode's gate: mail it sends only to identities of this server goes
        /// at once, and (in `gated_all`) mail it receives from them is not held. Rules, caps,
        /// first contact and the exfiltration guard still apply.
        Exempt = "exempt"
    ]
);

/// One identity's sending controls: its caps (`null`: none) and what happens to mail to an
/// address it never exchanged mail with. Set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityCaps {
    /// Mails composed in the last hour.
    pub mails_per_hour: Option<u64>,
    /// Mails composed in the last 24 hours.
    pub mails_per_day: Option<u64>,
    /// Addresses written to for the first time in the last 24 hours.
    pub new_recipients_per_day: Option<u64>,
    /// `allow` (default) or `hold`: mail to an address this identity never exchanged mail
    /// with is held for a reviewer, whatever its mode.
    #[serde(default)]
    pub first_contact: FirstContact,
    /// `on` (default) or `off`: the exfiltration guard on this identity's outgoing mail.
    #[serde(default)]
    pub exfiltration_guard: Guard,
    /// `gated` (default) or `exempt`: mail between it and other identities of this server
    /// skips its mode's gate.
    #[serde(default)]
    pub internal_mail: InternalMail,
}

impl IdentityCaps {
    pub fn limits(&self) -> SendCaps {
        SendCaps {
            mails_per_hour: self.mails_per_hour,
            mails_per_day: self.mails_per_day,
            new_recipients_per_day: self.new_recipients_per_day,
        }
    }

    #[must_use]
    pub fn with_limits(mut self, l: SendCaps) -> Self {
        self.mails_per_hour = l.mails_per_hour;
        self.mails_per_day = l.mails_per_day;
        self.new_recipients_per_day = l.new_recipients_per_day;
        self
    }
}

/// A cap's name, as the API and the CLI spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapName {
    MailsPerHour,
    MailsPerDay,
    NewRecipientsPerDay,
}

impl CapName {
    pub fn as_str(self) -> &'static str {
        match self {
            CapName::MailsPerHour => "mails_per_hour",
            CapName::MailsPerDay => "mails_per_day",
            CapName::NewRecipientsPerDay => "new_recipients_per_day",
        }
    }

    /// The window it counts over.
    pub fn window_secs(self) -> i64 {
        match self {
            CapName::MailsPerHour => HOUR_SECS,
            CapName::MailsPerDay | CapName::NewRecipientsPerDay => DAY_SECS,
        }
    }

    pub fn counter(self) -> CapCounter {
        match self {
            CapName::MailsPerHour | CapName::MailsPerDay => CapCounter::Mails,
            CapName::NewRecipientsPerDay => CapCounter::NewRecipients,
        }
    }

    /// The CLI flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            CapName::MailsPerHour => "--per-hour",
            CapName::MailsPerDay => "--per-day",
            CapName::NewRecipientsPerDay => "--new-recipients-per-day",
        }
    }

    fn window_words(self) -> &'static str {
        match self {
            CapName::MailsPerHour => "the last hour",
            CapName::MailsPerDay | CapName::NewRecipientsPerDay => "the last 24 hours",
        }
    }
}

/// What a cap counts (for [`crate::store::SendingStore::cap_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapCounter {
    /// Sender copies, by the time they were composed.
    Mails,
    /// Contacts, by the time the identity first wrote to them.
    NewRecipients,
}

/// Whose cap: the identity's own, or the instance's (all identities together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapLevel {
    Identity,
    Instance,
}

impl CapLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CapLevel::Identity => "identity",
            CapLevel::Instance => "instance",
        }
    }
}

/// What the store counted in a window (see `SendingStore::cap_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapWindow {
    /// Entries after the window's start.
    pub count: u64,
    /// When more than `keep` entries are in the window: the time of the entry whose leaving
    /// brings the count down to `keep` (the `count - keep`-th oldest).
    pub frees_at: Option<Timestamp>,
}

/// What an identity used of its caps (`null`: not counted, because no cap applies to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendUsage {
    pub mails_last_hour: Option<u64>,
    pub mails_last_day: Option<u64>,
    pub new_recipients_last_day: Option<u64>,
}

/// An identity's sending controls and what it used of them (`GET /v0/identities/{id}/caps`,
/// and `sending` in `whoami`, so that an agent knows its budget).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendingStatus {
    pub identity_id: IdentityId,
    /// This identity's caps and first-contact setting.
    pub caps: IdentityCaps,
    /// The instance's caps, which count every identity's mail together.
    pub instance_caps: SendCaps,
    /// What this identity sent in each cap's window, counted where a cap (its own or the
    /// instance's) applies.
    pub used: SendUsage,
}

/// The instance's caps and what the whole instance used of them (`GET /v0/instance/caps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstanceCapsStatus {
    pub caps: SendCaps,
    /// What every identity together sent in each window, counted where a cap is set.
    pub used: SendUsage,
}

/// One address an identity exchanged mail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correspondence {
    pub address: EmailAddress,
    /// When the identity first wrote to it (mail that went out; held mail counts from its
    /// approval).
    pub first_sent_at: Option<Timestamp>,
    /// When the identity first received mail from it.
    pub first_received_at: Option<Timestamp>,
    pub last_at: Timestamp,
}

/// What a mail adds to one contact row, written by the store in the mail's transaction:
/// inserted, or merged into the existing row (earliest first times, latest `last_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactTouch {
    pub identity: IdentityId,
    pub address: EmailAddress,
    pub sent_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub at: Timestamp,
}

/// The contact rows a mail that goes out at `at` touches: the sender's, one per recipient
/// (sent), and each local recipient's, for the sender's address (received). One touch per
/// (identity, address), sorted by them (the one order every writer locks rows in).
pub fn contact_touches<'a>(
    sender: &IdentityId,
    from: &EmailAddress,
    recipients: impl IntoIterator<Item = &'a EmailAddress>,
    local_recipients: impl IntoIterator<Item = &'a IdentityId>,
    at: Timestamp,
) -> Vec<ContactTouch> {
    let mut merged: BTreeMap<(IdentityId, EmailAddress), (bool, bool)> = BTreeMap::new();
    for r in recipients {
        merged.entry((sender.clone(), r.clone())).or_default().0 = true;
    }
    for id in local_recipients {
        merged.entry((id.clone(), from.clone())).or_default().1 = true;
    }
    merged
        .into_iter()
        .map(|((identity, address), (sent, received))| ContactTouch {
            identity,
            address,
            sent_at: sent.then_some(at),
            received_at: received.then_some(at),
            at,
        })
        .collect()
}

/// Checks a cap a client asked for.
pub fn validate(name: CapName, value: Option<u64>) -> Result<Option<u64>> {
    match value {
        Some(v) if !(1..=MAX_CAP).contains(&v) => Err(Error::invalid(
            "invalid_cap",
            format!("`{}` must be between 1 and {MAX_CAP}, not {v}", name.as_str()),
        )
        .with_hint("give a whole number, or null to remove the cap (stop an identity's mail with `loft identity mode ID read_only` or `loft identity pause ID`)")),
        v => Ok(v),
    }
}

/// A send that a cap stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapExceeded {
    pub name: CapName,
    pub level: CapLevel,
    pub limit: u64,
    /// What the window holds now.
    pub count: u64,
    /// What this send would add.
    pub adding: u64,
    /// Seconds until it fits (`None`: it never fits, being larger than the cap itself).
    pub wait_secs: Option<u64>,
}

/// Whether `adding` more fit under `limit` given the window `w`, as of `now`; `Err` is the
/// overrun, with the time to wait.
pub fn check(
    name: CapName,
    level: CapLevel,
    limit: u64,
    adding: u64,
    w: CapWindow,
    now: Timestamp,
) -> std::result::Result<(), CapExceeded> {
    if w.count.saturating_add(adding) <= limit {
        return Ok(());
    }
    let wait_secs = if adding > limit {
        None
    } else {
        // Fits once the entry at `frees_at` leaves the window (window entries are those after
        // `now - window`), so at `frees_at + window`.
        let frees = w.frees_at.unwrap_or(now).plus_secs(name.window_secs());
        let micros = u64::try_from(frees.as_micros() - now.as_micros()).unwrap_or(0);
        Some(micros.div_ceil(1_000_000).max(1))
    };
    Err(CapExceeded {
        name,
        level,
        limit,
        count: w.count,
        adding,
        wait_secs,
    })
}

/// The refusal of a send over a cap: 429 `cap_reached` with the seconds to wait, naming the
/// cap, its level and the count; 403 `cap_reached` when this one mail is larger than the cap.
pub fn refusal(e: &CapExceeded) -> Error {
    let name = e.name.as_str();
    let level = e.level.as_str();
    let what = match e.name.counter() {
        CapCounter::Mails => "mails",
        CapCounter::NewRecipients => "new recipients",
    };
    let raise = match e.level {
        CapLevel::Identity => format!("`loft identity caps ID {} N`", e.name.flag()),
        CapLevel::Instance => format!("`loft caps {} N`", e.name.flag()),
    };
    let Some(wait) = e.wait_secs else {
        return Error::forbidden(
            "cap_reached",
            format!(
                "this mail has {} new recipients, more than the {level} cap `{name}` ({}) allows in a day",
                e.adding, e.limit
            ),
        )
        .with_hint(format!(
            "send to fewer new recipients at once, or ask the operator to raise {name} ({raise})"
        ));
    };
    let whose = match e.level {
        CapLevel::Identity => "this identity",
        CapLevel::Instance => "this server (all identities together)",
    };
    Error::too_many(
        "cap_reached",
        format!(
            "the {level} cap `{name}` ({}) is reached: {whose} sent {} {what} in {}; retry in {wait} s",
            e.limit,
            e.count,
            e.name.window_words()
        ),
        wait,
    )
    .with_hint(format!(
        "wait {wait} s before sending again, or ask the operator to raise {name} ({raise})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

    #[test]
    fn the_wait_is_until_the_entry_that_frees_a_place_leaves() {
        let w = CapWindow {
            count: 3,
            frees_at: Some(T0),
        };
        check(CapName::MailsPerHour, CapLevel::Identity, 4, 1, w, T0).unwrap();
        let e = check(CapName::MailsPerHour, CapLevel::Identity, 3, 1, w, T0.plus_secs(30)).unwrap_err();
        assert_eq!(e.wait_secs, Some(3570));
        let err = refusal(&e);
        assert_eq!(err.code(), "cap_reached");
        assert!(
            matches!(
                err,
                Error::TooManyRequests {
                    retry_after_secs: 3570,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("identity cap `mails_per_hour` (3)") && text.contains("sent 3 mails"),
            "{text}"
        );
        assert!(err.hint().unwrap().contains("--per-hour"), "{err:?}");
        // A fraction of a second rounds up; never less than 1 s.
        let half = Timestamp::from_micros(T0.as_micros() + 500_000);
        let e = check(CapName::MailsPerHour, CapLevel::Instance, 3, 1, w, half.plus_secs(3599)).unwrap_err();
        assert_eq!(e.wait_secs, Some(1));
        // Larger than the cap itself: never fits.
        let e = check(
            CapName::NewRecipientsPerDay,
            CapLevel::Identity,
            2,
            3,
            CapWindow::default(),
            T0,
        )
        .unwrap_err();
        assert_eq!(e.wait_secs, None);
        assert!(matches!(refusal(&e), Error::Forbidden(_)));
    }

    #[test]
    fn touches_merge_per_identity_and_address() {
        let me = IdentityId::from_trusted("idt_a".into());
        let other = IdentityId::from_trusted("idt_b".into());
        let a = EmailAddress::from_trusted("a@x.test".into());
        let b = EmailAddress::from_trusted("b@x.test".into());
        // Mail to oneself and to b (local): one row each, a's own row both sent and received.
        let t = contact_touches(&me, &a, [&a, &b], [&me, &other], T0);
        assert_eq!(t.len(), 3, "{t:?}");
        let own = t.iter().find(|c| c.identity == me && c.address == a).unwrap();
        assert_eq!((own.sent_at, own.received_at), (Some(T0), Some(T0)));
        let theirs = t.iter().find(|c| c.identity == other).unwrap();
        assert_eq!((theirs.address.as_str(), theirs.sent_at), ("a@x.test", None));
        let mut sorted = t.clone();
        sorted.sort_by(|x, y| (&x.identity, &x.address).cmp(&(&y.identity, &y.address)));
        assert_eq!(t, sorted);
    }

    #[test]
    fn caps_are_validated() {
        assert_eq!(validate(CapName::MailsPerDay, Some(5)).unwrap(), Some(5));
        assert_eq!(validate(CapName::MailsPerDay, None).unwrap(), None);
        assert_eq!(
            validate(CapName::MailsPerDay, Some(0)).unwrap_err().code(),
            "invalid_cap"
        );
        assert!(validate(CapName::MailsPerDay, Some(MAX_CAP + 1)).is_err());
        assert_eq!(FirstContact::parse(" hold ").unwrap(), FirstContact::Hold);
        assert!(FirstContact::parse("maybe").is_err());
    }
}
