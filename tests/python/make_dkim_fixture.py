"""Writes the dkimpy-signed inbound fixture that the conformance case
`inbound_dkim_verdicts` verifies (crates/loft-testkit/src/conformance/fixtures/).

A mail from `partner.test`, signed by dkimpy with an RSA-2048 key (selector `rsa1`) and an
ed25519 key (selector `ed1`), and the DNS TXT records that publish both keys. Run it again
(with dkimpy and pynacl installed) only to regenerate the fixture; the test itself needs no
Python.

    python tests/python/make_dkim_fixture.py
"""
import base64
import json
import pathlib
import subprocess
import tempfile

import dkim
import nacl.signing

out = pathlib.Path(__file__).resolve().parents[2] / "crates/loft-testkit/src/conformance/fixtures"
out.mkdir(parents=True, exist_ok=True)

message = (
    b"From: Partner Bot <bot@partner.test>\r\n"
    b"To: writer@agents.test\r\n"
    b"Subject: Signed by dkimpy\r\n"
    b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <dkimpy-fixture-1@partner.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from outside. This mail carries two DKIM signatures made by dkimpy.\r\n"
)

with tempfile.TemporaryDirectory() as d:
    key = pathlib.Path(d) / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    rsa_private = key.read_bytes()
    pub = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
rsa_public = base64.b64encode(pub).decode()

ed = nacl.signing.SigningKey.generate()
ed_private = base64.b64encode(bytes(ed)).decode().encode()
ed_public = base64.b64encode(bytes(ed.verify_key)).decode()

headers = [b"from", b"to", b"subject", b"date", b"message-id"]
sig_ed = dkim.sign(message, b"ed1", b"partner.test", ed_private, include_headers=headers,
                   signature_algorithm=b"ed25519-sha256")
signed = sig_ed + message
sig_rsa = dkim.sign(signed, b"rsa1", b"partner.test", rsa_private, include_headers=headers)
signed = sig_rsa + signed

dns = {
    "rsa1._domainkey.partner.test": "v=DKIM1; k=rsa; p=" + rsa_public,
    "ed1._domainkey.partner.test": "v=DKIM1; k=ed25519; p=" + ed_public,
}


def dnsfunc(name, timeout=5):
    return dns.get(name.decode().rstrip("."), "").encode()


assert dkim.verify(signed, dnsfunc=dnsfunc), "dkimpy must verify its own fixture"
(out / "dkimpy_signed.eml").write_bytes(signed)
(out / "dkimpy_dns.json").write_text(json.dumps(dns, indent=2) + "\n")
print("wrote", out)
