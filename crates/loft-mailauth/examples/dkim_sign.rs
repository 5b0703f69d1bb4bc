//! Signs the message on stdin for a domain with freshly generated keys, by the functions
//! `loft domain add` (key generation) and outbound signing use, and prints JSON: the signed
//! message and the DKIM TXT records that publish the keys. `tests/python/test_dkim.py` has
//! dkimpy verify the result.
//!
//!     dkim_sign DOMAIN ed25519|rsa|both < message.eml

use std::io::Read as _;

use loft_core::domains::DkimAlgorithm;
use loft_core::mailauth::{MailAuth, SigningKey};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(domain), Some(which)) = (args.get(1), args.get(2)) else {
        return Err("usage: dkim_sign DOMAIN ed25519|rsa|both < message.eml".into());
    };
    let algorithms: Vec<DkimAlgorithm> = match which.as_str() {
        "ed25519" => vec![DkimAlgorithm::Ed25519],
        "rsa" => vec![DkimAlgorithm::Rsa],
        "both" => DkimAlgorithm::ALL.to_vec(),
        other => return Err(format!("unknown algorithm {other}")),
    };
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message).map_err(|e| e.to_string())?;
    let auth =
        loft_mailauth::Authenticator::with_answers(loft_mailauth::StaticDns::default()).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    let mut dns: Vec<(String, String)> = Vec::new();
    for a in algorithms {
        let generated = auth.generate_key(a).map_err(|e| e.to_string())?;
        let selector = format!("test-{}", a.as_str());
        dns.push((
            format!("{selector}._domainkey.{domain}"),
            format!("v=DKIM1; k={}; p={}", a.dns_tag(), generated.public_key),
        ));
        keys.push(SigningKey {
            selector,
            algorithm: a,
            private_pkcs8: generated.private_pkcs8,
        });
    }
    let headers = auth.sign(domain, &keys, &message).map_err(|e| e.to_string())?;
    let mut signed = headers;
    signed.extend_from_slice(&message);
    // Plain JSON by hand: the example needs no serde.
    let esc = |s: &str| {
        s.chars()
            .flat_map(|c| match c {
                '"' => "\\\"".chars().collect::<Vec<_>>(),
                '\\' => "\\\\".chars().collect(),
                '\r' => "\\r".chars().collect(),
                '\n' => "\\n".chars().collect(),
                '\t' => "\\t".chars().collect(),
                c => vec![c],
            })
            .collect::<String>()
    };
    let records: Vec<String> = dns
        .iter()
        .map(|(n, v)| format!("\"{}\": \"{}\"", esc(n), esc(v)))
        .collect();
    println!(
        "{{\"signed\": \"{}\", \"dns\": {{{}}}}}",
        esc(&String::from_utf8_lossy(&signed)),
        records.join(", ")
    );
    Ok(())
}
