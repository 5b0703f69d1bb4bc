//! Hosted domains (operator only): add one (its DKIM keys generated and sealed by the vault
//! keyring), list, show (with the DNS records to publish), check what DNS publishes, remove;
//! whether a domain is hosted (inbound SMTP); and DKIM-signing outgoing mail.
//!
//! The server's own mail domain (`loft serve --domain`) is always hosted, in the table or not:
//! it is listed with `default: true`, and `add` gives it DKIM keys like any other domain. It
//! cannot be removed.

use super::{Actor, Loft};
use crate::audit::AuditEntry;
use crate::domains::{
    self as d, AddDomainRequest, CheckStatus, DkimAlgorithm, DkimSelector, Domain, DomainCheck, DomainView,
    RecordCheck, StoredDkimKey,
};
use crate::mailauth::{MailAuth, SigningKey};
use crate::vault as v;
use crate::{Error, Result};

fn mail_auth_off() -> Error {
    Error::policy_denied(
        "mail_auth_disabled",
        "mail authentication (DKIM keys, DNS) is not configured on this server",
    )
}

fn normalise(name: &str) -> Result<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    crate::address::validate_domain(&name)?;
    if !name.contains('.') {
        return Err(Error::invalid(
            "invalid_domain",
            format!("`{name}` is not a mail domain: it needs at least two labels (example.com)"),
        ));
    }
    Ok(name)
}

fn audit(
    actor: &Actor,
    at: crate::time::Timestamp,
    action: &str,
    name: &str,
    details: serde_json::Value,
) -> AuditEntry {
    actor.audit(at, action, Some(name.to_owned()), details)
}

impl Loft {
    fn mail_auth(&self) -> Result<&dyn MailAuth> {
        self.mail_auth.as_deref().ok_or_else(mail_auth_off)
    }

    /// Whether this server accepts mail for `domain`: its own mail domain, or one in the
    /// domains table.
    pub async fn is_hosted(&self, domain: &str) -> Result<bool> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if self.hosts_domain(&domain) {
            return Ok(true);
        }
        Ok(self.store.get_domain(&domain).await?.is_some())
    }

    fn view(&self, domain: Domain) -> DomainView {
        let records = d::records(&domain.name, &self.config.domain, &domain.dkim);
        let zone = d::zone_snippet(&records);
        DomainView { domain, records, zone }
    }

    /// The default domain as listed when it is not in the table.
    fn default_domain(&self) -> Domain {
        Domain {
            name: self.config.domain.clone(),
            default: true,
            created_at: None,
            dkim: vec![],
        }
    }

    /// `POST /v0/domains`: hosts a domain, with an ed25519 and an RSA-2048 DKIM key whose
    /// private halves are sealed by the vault keyring; answers the records to publish.
    pub async fn add_domain(&self, actor: &Actor, req: AddDomainRequest) -> Result<DomainView> {
        Self::require_operator(actor, "hosting a domain")?;
        let name = normalise(&req.name)?;
        let auth = self.mail_auth()?;
        let ring = self.keyring()?;
        if self.store.get_domain(&name).await?.is_some() {
            return Err(domain_exists(&name));
        }
        let now = self.clock.now();
        let mut keys = Vec::new();
        for algorithm in DkimAlgorithm::ALL {
            let generated = auth.generate_key(algorithm)?;
            let selector = d::selector_name(algorithm, now);
            let sealed = v::seal_domain_key(&ring, self.random.as_ref(), &name, &selector, &generated.private_pkcs8)?;
            keys.push(StoredDkimKey {
                domain: name.clone(),
                selector: DkimSelector {
                    selector,
                    algorithm,
                    public_key: generated.public_key,
                    created_at: now,
                },
                sealed,
            });
        }
        let details = serde_json::json!({
            "selectors": keys.iter().map(|k| k.selector.selector.clone()).collect::<Vec<_>>(),
        });
        let entry = audit(actor, now, "domain.add", &name, details);
        self.store.insert_domain(&name, now, keys, entry).await?;
        self.show_domain(actor, &name).await
    }

    /// `GET /v0/domains`: the default domain first, then the table in name order.
    pub async fn list_domains(&self, actor: &Actor) -> Result<Vec<Domain>> {
        Self::require_operator(actor, "listing hosted domains")?;
        let mut table = self.store.list_domains().await?;
        let mut out = Vec::with_capacity(table.len() + 1);
        match table.iter().position(|x| x.name == self.config.domain) {
            Some(i) => {
                let mut own = table.remove(i);
                own.default = true;
                out.push(own);
            }
            None => out.push(self.default_domain()),
        }
        out.extend(table);
        Ok(out)
    }

    /// `GET /v0/domains/{name}`: the domain and the records to publish.
    pub async fn show_domain(&self, actor: &Actor, name: &str) -> Result<DomainView> {
        Self::require_operator(actor, "reading a hosted domain")?;
        let name = normalise(name).map_err(|_| Error::not_found("domain"))?;
        let domain = match self.store.get_domain(&name).await? {
            Some(mut x) => {
                x.default = self.hosts_domain(&name);
                x
            }
            None if self.hosts_domain(&name) => self.default_domain(),
            None => return Err(Error::not_found("domain")),
        };
        Ok(self.view(domain))
    }

    /// `POST /v0/domains/{name}/check`: resolves each record to publish and says whether
    /// it is there (`ok`), absent (`missing`), there with another value (`different`), or
    /// undecided because DNS did not answer (`temperror`).
    pub async fn check_domain(&self, actor: &Actor, name: &str) -> Result<DomainCheck> {
        let view = self.show_domain(actor, name).await?;
        let auth = self.mail_auth()?;
        let mut records = Vec::with_capacity(view.records.len());
        for record in view.records {
            let answer = auth.lookup(&record.name, record.record_type).await;
            let status = d::compare(&record, &answer);
            let found = match answer {
                d::DnsAnswer::Records(r) => r,
                _ => vec![],
            };
            records.push(RecordCheck { record, status, found });
        }
        Ok(DomainCheck {
            name: view.domain.name,
            ok: records.iter().all(|r| r.status == CheckStatus::Ok),
            records,
        })
    }

    /// `DELETE /v0/domains/{name}`: stops hosting the domain and deletes its keys; answers the
    /// domain as it was. The default
    /// domain cannot be removed (`default_domain`).
    pub async fn remove_domain(&self, actor: &Actor, name: &str) -> Result<Domain> {
        Self::require_operator(actor, "removing a hosted domain")?;
        let name = normalise(name).map_err(|_| Error::not_found("domain"))?;
        if self.hosts_domain(&name) {
            return Err(Error::conflict(
                "default_domain",
                format!("{name} is this server's mail domain (loft serve --domain): it cannot be removed"),
            ));
        }
        let before = self
            .store
            .get_domain(&name)
            .await?
            .ok_or_else(|| Error::not_found("domain"))?;
        let entry = audit(actor, self.clock.now(), "domain.remove", &name, serde_json::json!({}));
        self.store.delete_domain(&name, entry).await?;
        Ok(before)
    }

    /// DKIM-signs an outgoing message from `from_domain` with each of the domain's keys
    /// (ed25519 and RSA): answers the message with the `DKIM-Signature` fields in front. A
    /// domain without keys (not hosted, or the default domain before `loft domain add`)
    /// gets the message back unchanged. The headers signed are those of the usual list that
    /// the message has, `X-Loft-Identity` and `X-Loft-Oversight` included (the list is in
    /// `loft-mailauth`, docs/smtp.md).
    pub async fn sign_outgoing(&self, from_domain: &str, message: &[u8]) -> Result<Vec<u8>> {
        let domain = from_domain.trim_end_matches('.').to_ascii_lowercase();
        let stored = self.store.domain_keys(&domain).await?;
        if stored.is_empty() {
            return Ok(message.to_vec());
        }
        let auth = self.mail_auth()?;
        let ring = self.keyring()?;
        let mut keys = Vec::with_capacity(stored.len());
        for k in &stored {
            keys.push(SigningKey {
                selector: k.selector.selector.clone(),
                algorithm: k.selector.algorithm,
                private_pkcs8: v::open_domain_key(&ring, &domain, &k.selector.selector, &k.sealed)?,
            });
        }
        let headers = auth.sign(&domain, &keys, message)?;
        let mut out = headers;
        out.extend_from_slice(message);
        Ok(out)
    }

    /// Re-wraps every DKIM key sealed under another master key than `current` (part of
    /// `vault rotate-key`); answers how many.
    pub(super) async fn rewrap_domain_keys(&self, actor: &Actor, ring: &v::Keyring) -> Result<u64> {
        let current = ring.current().id().to_owned();
        let stale = self.store.domain_keys_stale(&current).await?;
        if stale.is_empty() {
            return Ok(0);
        }
        let mut batch = Vec::with_capacity(stale.len());
        for k in stale {
            let old = k.sealed.master_key_id.clone();
            let sealed = v::rewrap_domain_key(ring, self.random.as_ref(), &k.domain, &k.selector.selector, &k.sealed)?;
            batch.push((StoredDkimKey { sealed, ..k }, old));
        }
        let n = batch.len();
        let entry = actor.audit(
            self.clock.now(),
            "domain.rewrap",
            None,
            serde_json::json!({ "master_key_id": current, "batch": n }),
        );
        self.store.domain_keys_rewrap(batch, entry).await
    }
}

/// `Conflict("domain_exists")`.
pub fn domain_exists(name: &str) -> Error {
    Error::conflict("domain_exists", format!("{name} is already hosted here"))
}
