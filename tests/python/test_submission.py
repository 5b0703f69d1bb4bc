"""SMTP submission with software we did not write: Python's `smtplib` sends as a Loft identity
through `loft serve --submission 127.0.0.1:0`, with STARTTLS against a self-signed certificate
the test makes (`openssl`) and AUTH with the identity's address and API key; the mail is read
back through REST by its recipient, attachment included.

Every connection stays on 127.0.0.1 (conftest.py refuses any other).
"""

from __future__ import annotations

import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import LoftServer


def self_signed(dir: Path) -> tuple[Path, Path]:
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def msa() -> object:
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-submission-"))
    cert, key = self_signed(data_dir)
    server = LoftServer(data_dir, smtp=True, tls=(cert, key), env={"LOFT_SUBMISSION_ADDR": "127.0.0.1:0"})
    server.start()
    deadline = time.monotonic() + 10
    addr = None
    while addr is None and time.monotonic() < deadline:
        for line in list(server._stdout):
            m = re.search(r"SMTP submission listening on (\S+):(\d+)", line)
            if m:
                addr = (m.group(1), int(m.group(2)))
        time.sleep(0.05)
    assert addr is not None, "".join(server._stdout)
    server.submission_addr = addr  # type: ignore[attr-defined]
    server.cert = cert  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def connect(msa: LoftServer) -> smtplib.SMTP:
    host, port = msa.submission_addr  # type: ignore[attr-defined]
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo("laptop.test")
    return s


def tls_context(msa: LoftServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(msa.cert))  # type: ignore[attr-defined]
    ctx.check_hostname = False  # the test connects to 127.0.0.1; the certificate names localhost
    return ctx


def test_smtplib_sends_as_an_identity_over_starttls(msa: LoftServer) -> None:
    alice = msa.create_identity("alice")
    bob = msa.create_identity("bob")
    msg = EmailMessage()
    msg["From"] = alice.address
    msg["To"] = bob.address
    msg["Subject"] = "From my mail program"
    msg.set_content("Hi Bob,\n\nthe report is attached.\n")
    msg.add_attachment(b"region,total\nnorth,12\n", maintype="text", subtype="csv", filename="q4.csv")
    with connect(msa) as s:
        assert s.has_extn("starttls")
        assert not s.has_extn("auth"), f"no AUTH before TLS: {s.esmtp_features}"
        with pytest.raises(smtplib.SMTPNotSupportedError):
            s.login(alice.address, alice.api_key)
        s.starttls(context=tls_context(msa))
        s.ehlo("laptop.test")
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(bob.address, alice.api_key)
        assert e.value.smtp_code == 535
        code, _ = s.login(alice.address, alice.api_key)
        assert code == 235
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail(bob.address, [bob.address], msg.as_bytes())
        assert e.value.smtp_code == 553
        assert s.send_message(msg) == {}

    inbox = msa.rest("GET", "/v0/messages?folder=inbox", bob.api_key)
    assert isinstance(inbox, dict)
    found = [m for m in inbox["items"] if m["subject"] == "From my mail program"]
    assert len(found) == 1, inbox
    m = msa.rest("GET", f"/v0/messages/{found[0]['id']}", bob.api_key)
    assert isinstance(m, dict)
    assert m["from"] == alice.address
    assert m["authentication"]["internal"] is True
    assert "the report is attached." in m["text"]
    assert m["attachments"] == [{"name": "q4.csv", "content_type": "text/csv", "size": 22}]


def test_smtplib_auth_login_and_a_held_mail(msa: LoftServer) -> None:
    gated = msa.create_identity("gated", mode="gated_send")
    bob = msa.create_identity("bob")
    with connect(msa) as s:
        s.starttls(context=tls_context(msa))
        s.ehlo("laptop.test")
        s.user, s.password = gated.address, gated.api_key
        code, _ = s.auth("LOGIN", s.auth_login)
        assert code == 235
        msg = EmailMessage()
        msg["From"] = gated.address
        msg["To"] = bob.address
        msg["Subject"] = "Please check"
        msg.set_content("A reviewer should see this first.\n")
        assert s.mail(gated.address)[0] == 250
        assert s.rcpt(bob.address)[0] == 250
        code, text = s.data(msg.as_bytes())
        assert code == 250, text
        assert b"held for a reviewer's approval" in text, text
    inbox = msa.rest("GET", "/v0/messages?folder=inbox", bob.api_key)
    assert isinstance(inbox, dict)
    assert not [m for m in inbox["items"] if m["subject"] == "Please check"], "held, not delivered"
    sent = msa.rest("GET", "/v0/messages?folder=sent", gated.api_key)
    assert isinstance(sent, dict)
    assert sent["items"][0]["status"] == "pending_approval"
