"""Mail authentication and STARTTLS with software we did not write, against a real `loft serve`:

- an inbound mail signed by dkimpy, delivered by smtplib, is verified by Loft (DKIM and DMARC
  pass: `external_authenticated`); the same mail changed in transit fails DMARC and is refused
  (`550 5.7.1`, partner.test publishes `p=reject`); the DNS answers
  are given to Loft by the test (`--dns-answers`), so no query leaves the machine;
- STARTTLS with Python's smtplib and with `swaks --tls`, against a self-signed certificate
  made by `openssl` for the test;
- `loft domain add` prints the DNS records to publish, and `loft domain check` compares them
  with the answers the test gave.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile
from pathlib import Path

import dkim
import nacl.signing
import pytest

from conftest import LOFT_BIN, LoftServer

HERE = Path(__file__).resolve().parent


def rsa_key(dir: Path) -> tuple[bytes, str]:
    key = dir / "dkim-rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key.read_bytes(), base64.b64encode(pub).decode()


def self_signed(dir: Path) -> tuple[Path, Path]:
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def world() -> object:
    """A server whose DNS knows partner.test's DKIM keys and DMARC record, with STARTTLS."""
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-mailauth-"))
    rsa_private, rsa_public = rsa_key(data_dir)
    ed = nacl.signing.SigningKey.generate()
    dns = {
        "txt": {
            "rsa1._domainkey.partner.test": ["v=DKIM1; k=rsa; p=" + rsa_public],
            "ed1._domainkey.partner.test": ["v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(ed.verify_key)).decode()],
            "_dmarc.partner.test": ["v=DMARC1; p=reject"],
            "partner.test": ["v=spf1 ip4:192.0.2.1 -all"],
        },
    }
    cert, key = self_signed(data_dir)
    server = LoftServer(data_dir, smtp=True, dns=dns, tls=(cert, key))
    server.start()
    try:
        yield {"server": server, "rsa": rsa_private, "ed": base64.b64encode(bytes(ed)), "cert": cert, "dir": data_dir}
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def read(server: LoftServer, key: str, subject: str) -> dict:
    items = server.rest("GET", "/v0/messages?folder=inbox", key)["items"]
    found = [m for m in items if m["subject"] == subject]
    assert len(found) == 1, (subject, items)
    return server.rest("GET", f"/v0/messages/{found[0]['id']}", key)


def signed_mail(world: dict, to: str, subject: str) -> bytes:
    msg = (
        f"From: Partner Bot <bot@partner.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@partner.test>\r\n\r\nSigned content.\r\n"
    ).encode()
    headers = [b"from", b"to", b"subject", b"message-id"]
    msg = dkim.sign(msg, b"ed1", b"partner.test", world["ed"], include_headers=headers,
                    signature_algorithm=b"ed25519-sha256") + msg
    return dkim.sign(msg, b"rsa1", b"partner.test", world["rsa"], include_headers=headers) + msg


def send(server: LoftServer, mail_from: str, to: str, data: bytes, tls_cert: Path | None = None) -> None:
    host, port = server.smtp_addr
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.ehlo("mx.partner.test")
        if tls_cert is not None:
            s.starttls(context=ssl.create_default_context(cafile=str(tls_cert)))
            s.ehlo("mx.partner.test")
        s.sendmail(mail_from, [to], data)


def test_dkimpy_signed_mail_is_verified_and_a_changed_one_is_not(world: dict) -> None:
    server: LoftServer = world["server"]
    agent = server.create_identity("reader")
    send(server, "bounce@partner.test", agent.address, signed_mail(world, agent.address, "signed one"))
    m = read(server, agent.api_key, "signed one")
    auth = m["authentication"]
    assert auth["verdict"] == "external_authenticated", auth
    assert auth["checks"]["dmarc"] == "pass", auth
    assert sorted(d["result"] for d in auth["checks"]["dkim"]) == ["pass", "pass"], auth
    assert "dkim=pass" in auth["summary"]

    assert auth["checks"]["dmarc_policy"] == "reject", auth

    # Changed in transit: DMARC fails, and partner.test's `p=reject` is enforced (the
    # default, `--dmarc enforce`): refused at the end of the data, nothing stored.
    changed = signed_mail(world, agent.address, "changed one").replace(b"Signed content.", b"Changed content.")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, "bounce@partner.test", agent.address, changed)
    assert refused.value.smtp_code == 550, refused.value
    assert b"5.7.1" in refused.value.smtp_error and b"DMARC" in refused.value.smtp_error, refused.value
    items = server.rest("GET", "/v0/messages?folder=inbox", agent.api_key)["items"]
    assert [m["subject"] for m in items] == ["signed one"], items


def test_smtplib_starttls(world: dict) -> None:
    server: LoftServer = world["server"]
    agent = server.create_identity("tls-reader")
    host, port = server.smtp_addr
    with smtplib.SMTP(host, port, timeout=30) as s:
        s.ehlo("client.outside.test")
        assert s.has_extn("starttls")
        s.starttls(context=ssl.create_default_context(cafile=str(world["cert"])))
        s.ehlo("client.outside.test")
        assert not s.has_extn("starttls"), "not offered again over TLS"
        s.sendmail("friend@outside.test", [agent.address],
                   f"From: <friend@outside.test>\r\nTo: {agent.address}\r\nSubject: over tls\r\n\r\nHi.\r\n")
    assert read(server, agent.api_key, "over tls")["from"] == "friend@outside.test"


def test_swaks_tls(world: dict) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is not installed (Debian package `swaks`; tests/python/run.sh installs it)"
    server: LoftServer = world["server"]
    agent = server.create_identity("swaks-reader")
    host, port = server.smtp_addr
    done = subprocess.run(
        [swaks, "--server", host, "--port", str(port), "--helo", "swaks.outside.test", "--timeout", "30",
         "--tls", "--from", "eve@outside.test", "--to", agent.address,
         "--header", "Subject: swaks over tls", "--body", "Hello over TLS."],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TLS started" in done.stdout, done.stdout
    assert "<~  250 2.0.0 OK: stored as" in done.stdout, done.stdout
    assert "Hello over TLS." in read(server, agent.api_key, "swaks over tls")["text"]


def loft(server: LoftServer, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_")}
    env.update(LOFT_URL=server.url, LOFT_ADMIN_KEY=server.admin_key)
    return subprocess.run([LOFT_BIN, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_domain_add_prints_records_and_check_compares_them(world: dict) -> None:
    server: LoftServer = world["server"]
    added = loft(server, "domain", "add", "partner.test")
    assert added.returncode == 0, added.stderr
    for want in ["MX\tpartner.test", "TXT\tpartner.test\tv=spf1 mx -all", "._domainkey.partner.test\tv=DKIM1; k=ed25519; p=",
                 "v=DKIM1; k=rsa; p=", "_dmarc.partner.test", "As a zone-file snippet:", "IN\tTXT"]:
        assert want in added.stdout, (want, added.stdout)
    shown = json.loads(loft(server, "domain", "show", "partner.test", "--json").stdout)
    assert len(shown["records"]) == 5
    # The test's DNS has another SPF and DMARC, no MX and none of the new DKIM keys.
    check = loft(server, "domain", "check", "partner.test")
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert any(l.startswith("missing\tpartner.test\t10 ") for l in lines), check.stdout
    assert any(l.startswith("different\tpartner.test\tv=spf1 mx -all") for l in lines), check.stdout
    assert sum(l.startswith("missing\t") and "._domainkey." in l for l in lines) == 2, check.stdout
    listed = json.loads(loft(server, "domain", "list", "--json").stdout)["items"]
    assert [d["name"] for d in listed][1:] == ["partner.test"] and listed[0]["default"]
    removed = loft(server, "domain", "remove", "partner.test")
    assert removed.returncode == 0, removed.stderr
