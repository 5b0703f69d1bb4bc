//! Sending controls (see [`crate::caps`]): the caps a send is checked against, the
//! first-contact hold, the contacts a mail records, and the operator's settings.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Actor, Loft};
use crate::address::EmailAddress;
use crate::caps::{
    self, CapCounter, CapExceeded, CapLevel, CapName, ContactTouch, FirstContact, IdentityCaps, InstanceCapsStatus,
    SendCaps, SendUsage, SendingStatus,
};
use crate::identity::Identity;
use crate::ids::IdentityId;
use crate::oversight::{HoldKind, HoldReason};
use crate::time::Timestamp;
use crate::{Error, Result};

/// `PUT /v0/identities/{id}/caps`: each field left out is kept, `null` removes that cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetIdentityCapsRequest {
    /// Mails composed in the last hour (1 to 1000000); `null` removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub mails_per_hour: Option<Option<u64>>,
    /// Mails composed in the last 24 hours (1 to 1000000); `null` removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub mails_per_day: Option<Option<u64>>,
    /// Addresses written to for the first time in the last 24 hours (1 to 1000000); `null`
    /// removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub new_recipients_per_day: Option<Option<u64>>,
    /// `allow` or `hold` (mail to an address the identity never exchanged mail with waits for
    /// a reviewer, whatever its mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact: Option<FirstContact>,
    /// `on` or `off`: the exfiltration guard on the identity's outgoing mail (on by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exfiltration_guard: Option<crate::caps::Guard>,
    /// `gated` or `exempt`: whether mail between it and other identities of this server passes
    /// its mode's gate (gated by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_mail: Option<crate::caps::InternalMail>,
}

/// `PUT /v0/instance/caps`: each field left out is kept, `null` removes that cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetInstanceCapsRequest {
    /// Mails composed in the last hour by all identities together (1 to 1000000); `null`
    /// removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub mails_per_hour: Option<Option<u64>>,
    /// Mails composed in the last 24 hours by all identities together (1 to 1000000); `null`
    /// removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub mails_per_day: Option<Option<u64>>,
    /// New recipients of all identities together in the last 24 hours (1 to 1000000); `null`
    /// removes the cap.
    #[serde(
        default,
        deserialize_with = "crate::wire::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000))]
    pub new_recipients_per_day: Option<Option<u64>>,
}

/// Applies the changes a request asks for to `caps`, validated; `None` when it asks for none.
#[allow(
    clippy::option_option,
    reason = "the request's own fields: absent (keep), null (remove) or a value"
)]
fn apply(caps: SendCaps, asked: [Option<Option<u64>>; 3]) -> Result<Option<SendCaps>> {
    if asked.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = caps;
    let [h, d, n] = asked;
    for (name, value, slot) in [
        (CapName::MailsPerHour, h, &mut out.mails_per_hour),
        (CapName::MailsPerDay, d, &mut out.mails_per_day),
        (CapName::NewRecipientsPerDay, n, &mut out.new_recipients_per_day),
    ] {
        if let Some(v) = value {
            *slot = caps::validate(name, v)?;
        }
    }
    Ok(Some(out))
}

fn nothing_to_change() -> Error {
    Error::invalid("empty_update", "nothing to change").with_hint(
        "send mails_per_hour, mails_per_day, new_recipients_per_day (a number, or null to remove the cap), or for an identity first_contact, exfiltration_guard or internal_mail",
    )
}

impl Loft {
    /// Refuses a send that would go over a cap, the identity's or the instance's (429
    /// `cap_reached` with the seconds to wait; when several caps are reached, the one that
    /// frees last). Counts only the caps that are set: with none, one primary-key lookup.
    pub(super) async fn check_caps(&self, me: &Identity, recipients: &[EmailAddress]) -> Result<()> {
        self.check_caps_adding(me, recipients, 1).await
    }

    /// [`Self::check_caps`] for a mail that adds `mails` to the mail caps: 1 when it is
    /// composed, 0 when a scheduled mail is released (its sender copy was counted when it was
    /// composed), whose new recipients still count when it goes out.
    pub(super) async fn check_caps_adding(&self, me: &Identity, recipients: &[EmailAddress], mails: u64) -> Result<()> {
        let own = me.caps.limits();
        let instance = self.store.instance_caps().await?;
        if own.is_empty() && instance.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let new_recipients = if own.new_recipients_per_day.is_some() || instance.new_recipients_per_day.is_some() {
            let written: HashSet<EmailAddress> = self
                .store
                .contacts(&me.id, recipients)
                .await?
                .into_iter()
                .filter(|c| c.first_sent_at.is_some())
                .map(|c| c.address)
                .collect();
            recipients.iter().filter(|a| !written.contains(*a)).count() as u64
        } else {
            0
        };
        let mut worst: Option<CapExceeded> = None;
        for (level, set, who) in [
            (CapLevel::Identity, own, Some(&me.id)),
            (CapLevel::Instance, instance, None),
        ] {
            for (name, limit) in set.each() {
                let Some(limit) = limit else { continue };
                let adding = match name.counter() {
                    CapCounter::Mails => mails,
                    CapCounter::NewRecipients => new_recipients,
                };
                if adding == 0 {
                    continue;
                }
                let since = now.plus_secs(-name.window_secs());
                let window = self
                    .store
                    .cap_window(name.counter(), who, since, limit.saturating_sub(adding))
                    .await?;
                if let Err(e) = caps::check(name, level, limit, adding, window, now) {
                    // The refusal that frees last (or never) is the one worth telling.
                    let later = match (&worst, e.wait_secs) {
                        (None, _) => true,
                        (Some(w), mine) => w.wait_secs.is_some() && mine.is_none_or(|m| Some(m) > w.wait_secs),
                    };
                    if later {
                        worst = Some(e);
                    }
                }
            }
        }
        match worst {
            Some(e) => Err(caps::refusal(&e)),
            None => Ok(()),
        }
    }

    /// The first-contact hold: when the sender holds first contact, the recipients it never
    /// exchanged mail with (neither wrote to nor received from; its own address is known).
    pub(super) async fn first_contact_hold(
        &self,
        me: &Identity,
        recipients: &[EmailAddress],
    ) -> Result<Option<HoldReason>> {
        if me.caps.first_contact != FirstContact::Hold {
            return Ok(None);
        }
        let known: HashSet<EmailAddress> = self
            .store
            .contacts(&me.id, recipients)
            .await?
            .into_iter()
            .map(|c| c.address)
            .collect();
        let new: Vec<EmailAddress> = recipients
            .iter()
            .filter(|a| **a != me.address && !known.contains(*a))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(None);
        }
        let list = new.iter().map(EmailAddress::as_str).collect::<Vec<_>>().join(", ");
        Ok(Some(HoldReason {
            kind: HoldKind::FirstContact,
            detail: format!(
                "first contact: the sender never exchanged mail with {list}, and its mail to a new address waits for a reviewer's approval"
            ),
            credential: None,
            encoding: None,
            rule: None,
            addresses: new,
        }))
    }

    /// The contacts a mail from `me` to `recipients` records when it goes out at `at`.
    pub(super) fn contacts_of_mail(
        me: &IdentityId,
        from: &EmailAddress,
        recipients: &[EmailAddress],
        local: &HashMap<EmailAddress, IdentityId>,
        at: Timestamp,
    ) -> Vec<ContactTouch> {
        let locals: Vec<&IdentityId> = recipients.iter().filter_map(|a| local.get(a)).collect();
        caps::contact_touches(me, from, recipients, locals, at)
    }

    /// What `who` (an identity, or with `None` the whole instance) used in each window that a
    /// cap in `caps` counts.
    async fn usage(&self, who: Option<&IdentityId>, caps: &[SendCaps]) -> Result<SendUsage> {
        let now = self.clock.now();
        let mut used = SendUsage::default();
        for (name, slot) in [
            (CapName::MailsPerHour, &mut used.mails_last_hour),
            (CapName::MailsPerDay, &mut used.mails_last_day),
            (CapName::NewRecipientsPerDay, &mut used.new_recipients_last_day),
        ] {
            let applies = caps
                .iter()
                .any(|c| c.each().iter().any(|(n, v)| *n == name && v.is_some()));
            if applies {
                let since = now.plus_secs(-name.window_secs());
                *slot = Some(self.store.cap_window(name.counter(), who, since, u64::MAX).await?.count);
            }
        }
        Ok(used)
    }

    /// An identity's sending controls and what it used of them (also `whoami`'s `sending`).
    pub(super) async fn sending_status(&self, identity: &Identity) -> Result<SendingStatus> {
        let instance_caps = self.store.instance_caps().await?;
        Ok(self.sending_status_counted(identity, instance_caps).await?.0)
    }

    /// [`Self::sending_status`] with the instance's caps already read, and whether it counted
    /// usage (some cap applies): a count over the last hour or day changes with the clock, not
    /// only with writes.
    pub(super) async fn sending_status_counted(
        &self,
        identity: &Identity,
        instance_caps: SendCaps,
    ) -> Result<(SendingStatus, bool)> {
        let used = self
            .usage(Some(&identity.id), &[identity.caps.limits(), instance_caps])
            .await?;
        // `usage` counts exactly the windows some cap applies to.
        let counted = [used.mails_last_hour, used.mails_last_day, used.new_recipients_last_day]
            .iter()
            .any(Option::is_some);
        let status = SendingStatus {
            identity_id: identity.id.clone(),
            caps: identity.caps,
            instance_caps,
            used,
        };
        Ok((status, counted))
    }

    /// `GET /v0/identities/{id}/caps`: the operator, the identity itself, or an identity above
    /// it.
    pub async fn identity_caps(&self, actor: &Actor, id: &str) -> Result<SendingStatus> {
        let id = IdentityId::parse(id)?;
        let target = self.visible_identity(actor, &id).await?;
        self.sending_status(&target).await
    }

    /// Sets an identity's caps and first-contact setting (operator only; audited as
    /// `identity.caps`).
    pub async fn set_identity_caps(
        &self,
        actor: &Actor,
        id: &str,
        req: SetIdentityCapsRequest,
    ) -> Result<SendingStatus> {
        Self::require_operator(actor, "setting an identity's sending caps")?;
        let id = IdentityId::parse(id)?;
        let target = self.visible_identity(actor, &id).await?;
        if !target.is_active() {
            return Err(Error::conflict(
                "identity_revoked",
                "a revoked identity's caps cannot be changed",
            ));
        }
        let limits = apply(
            target.caps.limits(),
            [req.mails_per_hour, req.mails_per_day, req.new_recipients_per_day],
        )?;
        if limits.is_none()
            && req.first_contact.is_none()
            && req.exfiltration_guard.is_none()
            && req.internal_mail.is_none()
        {
            return Err(nothing_to_change());
        }
        let mut caps: IdentityCaps = target.caps.with_limits(limits.unwrap_or_else(|| target.caps.limits()));
        if let Some(f) = req.first_contact {
            caps.first_contact = f;
        }
        if let Some(g) = req.exfiltration_guard {
            caps.exfiltration_guard = g;
        }
        if let Some(i) = req.internal_mail {
            caps.internal_mail = i;
        }
        let audit = actor.audit(
            self.clock.now(),
            "identity.caps",
            Some(id.to_string()),
            serde_json::json!({ "caps": caps, "previous": target.caps }),
        );
        let update = crate::store::IdentityUpdate {
            caps: Some(caps),
            ..Default::default()
        };
        let updated = self.store.update_identity(&id, update, audit).await?;
        self.sending_status(&updated).await
    }

    /// `GET /v0/instance/caps` (operator).
    pub async fn instance_caps(&self, actor: &Actor) -> Result<InstanceCapsStatus> {
        Self::require_operator(actor, "the instance's caps")?;
        let caps = self.store.instance_caps().await?;
        let used = self.usage(None, &[caps]).await?;
        Ok(InstanceCapsStatus { caps, used })
    }

    /// Sets the instance's caps (operator only; audited as `instance.caps`).
    pub async fn set_instance_caps(&self, actor: &Actor, req: SetInstanceCapsRequest) -> Result<InstanceCapsStatus> {
        Self::require_operator(actor, "setting the instance's caps")?;
        let previous = self.store.instance_caps().await?;
        let caps = apply(
            previous,
            [req.mails_per_hour, req.mails_per_day, req.new_recipients_per_day],
        )?
        .ok_or_else(nothing_to_change)?;
        let audit = actor.audit(
            self.clock.now(),
            "instance.caps",
            None,
            serde_json::json!({ "caps": caps, "previous": previous }),
        );
        self.store.set_instance_caps(caps, audit).await?;
        let used = self.usage(None, &[caps]).await?;
        Ok(InstanceCapsStatus { caps, used })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_clears_and_absent_keeps() {
        let req: SetIdentityCapsRequest =
            serde_json::from_value(serde_json::json!({"mails_per_hour": null, "mails_per_day": 5})).unwrap();
        assert_eq!(req.mails_per_hour, Some(None));
        assert_eq!(req.mails_per_day, Some(Some(5)));
        assert_eq!(req.new_recipients_per_day, None);
        let before = SendCaps {
            mails_per_hour: Some(1),
            mails_per_day: None,
            new_recipients_per_day: Some(3),
        };
        let after = apply(
            before,
            [req.mails_per_hour, req.mails_per_day, req.new_recipients_per_day],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            after,
            SendCaps {
                mails_per_hour: None,
                mails_per_day: Some(5),
                new_recipients_per_day: Some(3)
            }
        );
        assert!(apply(before, [None, None, None]).unwrap().is_none());
        assert_eq!(
            apply(before, [Some(Some(0)), None, None]).unwrap_err().code(),
            "invalid_cap"
        );
        // What the client sends: absent stays absent, null stays null.
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back, serde_json::json!({"mails_per_hour": null, "mails_per_day": 5}));
        assert!(
            serde_json::from_value::<SetInstanceCapsRequest>(serde_json::json!({"first_contact": "hold"})).is_err()
        );
    }
}
