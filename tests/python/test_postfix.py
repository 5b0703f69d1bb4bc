"""Postfix (Debian's package, software we did not write) as the remote MTA, both ways:

- out: a real `loft serve --deliver-direct` delivers an agent's mail for `someone@remote.test`
  to a private Postfix on a loopback port (the MX of remote.test, answered by the test through
  `--smtp-outbound-resolve`); Postfix's `virtual(8)` writes it into a Maildir, and `dkimpy`
  verifies both of Loft's DKIM signatures (ed25519 and RSA) on the bytes Postfix delivered,
  with the DNS answers Loft itself printed for the domain (given to dkimpy through its
  `dnsfunc`), and sees `X-Loft-Identity` and `X-Loft-Oversight` covered by them. A recipient
  Postfix does not know is refused with 550 5.1.1: the sender sees `bounced` and gets a notice.
- in: Postfix relays mail for Loft's domain to Loft's `--smtp` listener (a `transport_maps`
  entry, as an MTA forwards to an MX), and the agent reads it.

Everything listens on 127.0.0.1; no DNS is asked by anyone (postfixrig.py).
"""

from __future__ import annotations

import shutil
import smtplib
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from conftest import LoftServer
from postfixrig import Postfix, available, free_port, subject_of

DOMAIN = "a.test"


@pytest.fixture(scope="module")
def rig() -> object:
    assert available(), "Postfix (Debian's package `postfix`) must be installed and the tests run as root (run.sh installs it)"
    root = Path(tempfile.mkdtemp(prefix="loft-pytest-postfix-"))
    pf_port = free_port()
    loft = LoftServer(root / "loft", smtp=True, env={"LOFT_DOMAIN": DOMAIN}, args=[
        "--deliver-direct", "--smtp-outbound-port", str(pf_port),
        "--smtp-outbound-resolve", "remote.test=127.0.0.1",
    ])
    (root / "loft").mkdir()
    loft.start()
    postfix = None
    try:
        assert loft.smtp_addr is not None
        # Its own directory: Postfix's daemons (user postfix) must be able to walk into it.
        postfix = Postfix(Path(tempfile.mkdtemp(prefix="loft-pytest-postfix-")), port=pf_port,
                          relay={DOMAIN: f"{loft.smtp_addr[0]}:{loft.smtp_addr[1]}"})
        postfix.start()
        added = loft.rest("POST", "/v0/domains", loft.admin_key, {"name": DOMAIN})
        assert isinstance(added, dict), added
        yield {"loft": loft, "postfix": postfix, "records": added["records"]}
    finally:
        if postfix is not None:
            postfix.stop()
            shutil.rmtree(postfix.root, ignore_errors=True)
        loft.stop()
        shutil.rmtree(root, ignore_errors=True)


def dnsfunc_for(records: list[dict]):  # type: ignore[no-untyped-def]
    txt = {r["name"]: r["value"] for r in records if r["type"] == "TXT"}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return txt.get(name.decode().rstrip("."), "").encode()

    return dnsfunc


def wait_delivery(loft: LoftServer, key: str, message_id: str, timeout: float = 60) -> list[dict]:
    """The sender copy's delivery report once no recipient is `queued` any more."""
    deadline = time.monotonic() + timeout
    while True:
        m = loft.rest("GET", f"/v0/messages/{message_id}", key)
        assert isinstance(m, dict), m
        if all(d["status"] != "queued" for d in m["delivery"]) or time.monotonic() > deadline:
            return m["delivery"]
        time.sleep(0.2)


def signed_headers(raw: bytes) -> list[list[str]]:
    """The h= tag of each DKIM-Signature, lower-cased header names."""
    d = dkim.DKIM(raw)
    out = []
    for k, v in d.headers:
        if k.lower() == b"dkim-signature":
            tags = dict(t.strip().split(b"=", 1) for t in v.replace(b"\r\n", b"").split(b";") if b"=" in t)
            out.append([h.strip().decode().lower() for h in tags[b"h"].replace(b" ", b"").split(b":")])
    return out


def test_postfix_receives_loft_mail_and_dkimpy_verifies_both_signatures(rig: dict) -> None:
    loft, postfix = rig["loft"], rig["postfix"]
    writer = loft.create_identity("writer")
    assert writer.address.endswith("@" + DOMAIN)
    sent = loft.rest("POST", "/v0/messages/send", writer.api_key, {
        "to": ["someone@remote.test"], "subject": "Hello Postfix", "text": "Signed by Loft, delivered by SMTP.",
    })
    assert isinstance(sent, dict), sent
    got = [m for m in postfix.wait_delivered("someone", 1) if subject_of(m) == "Hello Postfix"]
    assert len(got) == 1, f"Postfix delivered nothing into the Maildir:\n{postfix.log_text()}"
    raw = got[0]
    # Postfix's own trace: it received the mail by SMTP from Loft and delivered it.
    assert raw.startswith(b"Return-Path: <" + writer.address.encode() + b">"), raw[:300]
    assert b"Delivered-To: someone@remote.test" in raw
    assert b"by mx.remote.test (Postfix)" in raw
    assert b"X-Loft-Identity: " + writer.address.encode() in raw

    delivery = wait_delivery(loft, writer.api_key, sent["id"])
    assert [(d["recipient"], d["status"]) for d in delivery] == [("someone@remote.test", "delivered")], delivery
    assert delivery[0]["detail"].startswith("accepted by the recipient's server: 250 2.0.0 Ok: queued as "), delivery

    dnsfunc = dnsfunc_for(rig["records"])
    assert raw.count(b"DKIM-Signature:") == 2, raw.decode(errors="replace")
    d = dkim.DKIM(raw)
    for idx in (0, 1):
        assert d.verify(idx=idx, dnsfunc=dnsfunc), f"signature {idx} does not verify:\n{raw.decode(errors='replace')}"
    for h in signed_headers(raw):
        assert "x-loft-identity" in h and "x-loft-oversight" in h and "from" in h, h
    algorithms = sorted(t.split(b"=", 1)[1].strip() for v in (v for k, v in d.headers if k.lower() == b"dkim-signature")
                        for t in v.replace(b"\r\n", b"").split(b";") if t.strip().startswith(b"a="))
    assert algorithms == [b"ed25519-sha256", b"rsa-sha256"], algorithms

    # Who sent it and under what oversight cannot be changed on the way.
    forged = raw.replace(b"X-Loft-Oversight: ", b"X-Loft-Oversight: approved-by nobody; ")
    assert forged != raw
    fd = dkim.DKIM(forged)
    assert not fd.verify(idx=0, dnsfunc=dnsfunc) and not fd.verify(idx=1, dnsfunc=dnsfunc)


def test_postfix_refuses_an_unknown_recipient_and_the_sender_sees_a_bounce(rig: dict) -> None:
    loft = rig["loft"]
    writer = loft.create_identity("writer")
    sent = loft.rest("POST", "/v0/messages/send", writer.api_key, {
        "to": ["nobody@remote.test"], "subject": "To nobody", "text": "Is anyone there?",
    })
    assert isinstance(sent, dict), sent
    delivery = wait_delivery(loft, writer.api_key, sent["id"])
    assert [(d["recipient"], d["status"]) for d in delivery] == [("nobody@remote.test", "bounced")], delivery
    assert "550 5.1.1" in delivery[0]["detail"] and "User unknown" in delivery[0]["detail"], delivery
    inbox = loft.rest("GET", "/v0/messages?folder=inbox", writer.api_key)
    assert isinstance(inbox, dict)
    notices = [m for m in inbox["items"] if m["from"].startswith("mailer-daemon@")]
    assert len(notices) == 1, inbox["items"]


def test_postfix_relays_inbound_mail_to_loft(rig: dict) -> None:
    loft, postfix = rig["loft"], rig["postfix"]
    reader = loft.create_identity("reader")
    msg = EmailMessage()
    msg["From"] = "Carol <carol@outside.test>"
    msg["To"] = reader.address
    msg["Subject"] = "Relayed by Postfix"
    msg.set_content("Postfix forwarded this to Loft's MX.\n")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as s:
        s.ehlo("client.outside.test")
        assert s.send_message(msg) == {}
    deadline = time.monotonic() + 60
    found: list[dict] = []
    while not found and time.monotonic() < deadline:
        items = loft.rest("GET", "/v0/messages?folder=inbox", reader.api_key)["items"]  # type: ignore[index]
        found = [m for m in items if m["subject"] == "Relayed by Postfix"]
        time.sleep(0.2)
    assert len(found) == 1, f"Loft did not get the relayed mail:\n{postfix.log_text()}"
    m = loft.rest("GET", f"/v0/messages/{found[0]['id']}", reader.api_key)
    assert isinstance(m, dict)
    assert m["from"] == "carol@outside.test"
    assert "Postfix forwarded this" in m["text"]
    raw = loft.rest_raw(f"/v0/messages/{m['id']}/raw", reader.api_key)
    # Loft's Received names Postfix's EHLO; Postfix's own Received is below it.
    assert raw.startswith(b"Received: from mx.remote.test ([127.0.0.1])"), raw[:200]
    assert b"by mx.remote.test (Postfix)" in raw
    assert "relay=127.0.0.1[127.0.0.1]" in postfix.log_text() and "status=sent (250 2.0.0 OK: stored as" in postfix.log_text()
