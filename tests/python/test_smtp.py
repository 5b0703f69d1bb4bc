"""Inbound SMTP with software we did not write: Python's `smtplib` and `swaks` deliver to a real
`loft serve --smtp 127.0.0.1:0`, and the mail is read back through REST as an agent would.

Every connection stays on 127.0.0.1 (conftest.py refuses any other). `swaks` comes from
Debian's package of that name (scripts/test.sh installs it when it is missing).
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import Identity, LoftServer


@pytest.fixture(scope="module")
def mx() -> object:
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-smtp-"))
    server = LoftServer(data_dir, smtp=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def inbox(mx: LoftServer, who: Identity) -> list[dict]:
    r = mx.rest("GET", "/v0/messages?folder=inbox", who.api_key)
    assert isinstance(r, dict), r
    return r["items"]


def read(mx: LoftServer, who: Identity, subject: str) -> dict:
    """The one message in `who`'s inbox with this subject, read whole through REST."""
    found = [m for m in inbox(mx, who) if m["subject"] == subject]
    assert len(found) == 1, f"one message `{subject}` in the inbox of {who.address}: {found}"
    m = mx.rest("GET", f"/v0/messages/{found[0]['id']}", who.api_key)
    assert isinstance(m, dict), m
    return m


def smtp(mx: LoftServer) -> smtplib.SMTP:
    assert mx.smtp_addr is not None
    host, port = mx.smtp_addr
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo("client.outside.test")
    return s


def test_smtplib_delivers_a_multipart_mail_read_back_through_rest(mx: LoftServer) -> None:
    alice = mx.create_identity("alice")
    msg = EmailMessage()
    msg["From"] = "Carol Outside <carol@outside.test>"
    msg["To"] = alice.address
    msg["Subject"] = "Quarterly numbers"
    msg.set_content("Hi Alice,\n\nthe numbers are attached.\n\nCarol\n")
    msg.add_alternative("<p>Hi Alice,</p><p>the numbers are <b>attached</b>.</p>", subtype="html")
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="numbers.csv")
    with smtp(mx) as s:
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes"):
            assert s.has_extn(ext), f"EHLO offers {ext}: {s.esmtp_features}"
        assert not s.has_extn("starttls"), "STARTTLS is not offered yet"
        assert int(s.esmtp_features["size"]) > 1_000_000
        refused = s.send_message(msg)
        assert refused == {}

    m = read(mx, alice, "Quarterly numbers")
    assert m["from"] == "carol@outside.test"
    assert m["from_name"] == "Carol Outside"
    assert m["authentication"]["verdict"] == "external_unverified"
    assert m["authentication"]["internal"] is False
    assert "the numbers are attached." in m["text"]
    assert "<b>attached</b>" in m["html"]
    assert m["extracted_text"].startswith("Hi Alice,")
    assert m["attachments"] == [{"name": "numbers.csv", "content_type": "text/csv", "size": 8}]
    raw = urllib_get_raw(mx, alice, m["id"])
    assert raw.startswith(b"Received: from client.outside.test ([127.0.0.1])")


def urllib_get_raw(mx: LoftServer, who: Identity, message_id: str) -> bytes:
    req = urllib.request.Request(f"{mx.url}/v0/messages/{message_id}/raw")
    req.add_header("Authorization", f"Bearer {who.api_key}")
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.read()


def test_smtplib_html_only_and_utf8_mail_get_readable_text(mx: LoftServer) -> None:
    bob = mx.create_identity("bob")
    msg = EmailMessage()
    msg["From"] = "Sign-up Service <no-reply@service.test>"
    msg["To"] = bob.address
    msg["Subject"] = "Votre code de vérification ✓"
    msg.set_content(
        "<html><body><table><tr><td>Votre code :</td><td><b>482913</b></td></tr></table>"
        "<p>Merci&nbsp;!</p></body></html>",
        subtype="html",
        charset="utf-8",
    )
    with smtp(mx) as s:
        s.send_message(msg, mail_options=["SMTPUTF8"])
    m = read(mx, bob, "Votre code de vérification ✓")
    assert "482913" in m["text"] and "<" not in m["text"], m["text"]
    assert "482913" in m["extracted_text"], m["extracted_text"]
    assert "<b>482913</b>" in m["html"]


def test_smtplib_sees_refusals_and_no_open_relay(mx: LoftServer) -> None:
    alice = mx.create_identity("alice")
    domain = alice.address.split("@", 1)[1]
    with smtp(mx) as s:
        s.mail("carol@outside.test")
        code, text = s.rcpt(f"nobody@{domain}")
        assert (code, text[:5]) == (550, b"5.1.1"), text
        code, text = s.rcpt("victim@elsewhere.test")
        assert (code, text[:5]) == (550, b"5.7.1"), text
        code, _ = s.rcpt(alice.address)
        assert code == 250
        s.rset()
        # Everything refused: smtplib raises, nothing is stored.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("carol@outside.test", ["victim@elsewhere.test"], b"Subject: relay?\r\n\r\nno\r\n")
        assert e.value.recipients["victim@elsewhere.test"][0] == 550
        code, text = s.mail("carol@outside.test", ["SIZE=999999999"])
        assert (code, text[:5]) == (552, b"5.3.4"), text
    assert inbox(mx, alice) == []


def test_reply_from_outside_joins_the_thread(mx: LoftServer) -> None:
    alice = mx.create_identity("alice")
    bob = mx.create_identity("bob")
    sent = mx.rest("POST", "/v0/messages/send", alice.api_key, {"to": [bob.address], "subject": "Plan", "text": "Draft plan."})
    assert isinstance(sent, dict), sent
    first = read(mx, bob, "Plan")
    msg = EmailMessage()
    msg["From"] = "dave@outside.test"
    msg["To"] = bob.address
    msg["Subject"] = "Re: Plan"
    msg["In-Reply-To"] = f"<{sent['message_id']}>"
    msg["References"] = f"<{sent['message_id']}>"
    msg.set_content("Looks good.\n\nOn Monday Alice wrote:\n> Draft plan.\n")
    with smtp(mx) as s:
        s.send_message(msg)
    reply = read(mx, bob, "Re: Plan")
    assert reply["thread_id"] == first["thread_id"]
    assert reply["extracted_text"] == "Looks good."
    thread = mx.rest("GET", f"/v0/threads/{first['thread_id']}", bob.api_key)
    assert isinstance(thread, dict)
    assert [m["subject"] for m in thread["messages"]] == ["Plan", "Re: Plan"]


def test_swaks_delivers_with_pipelining_and_is_refused_as_a_relay(mx: LoftServer) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is not installed (Debian package `swaks`; scripts/test.sh installs it)"
    carol = mx.create_identity("carol")
    assert mx.smtp_addr is not None
    host, port = mx.smtp_addr
    base = [swaks, "--server", host, "--port", str(port), "--helo", "swaks.outside.test", "--timeout", "30"]
    done = subprocess.run(
        [*base, "--pipeline", "--from", "eve@outside.test", "--to", carol.address,
         "--header", "Subject: sent by swaks", "--body", "Hello from swaks."],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<-  250 2.0.0 OK: stored as" in done.stdout, done.stdout
    m = read(mx, carol, "sent by swaks")
    assert m["from"] == "eve@outside.test"
    assert "Hello from swaks." in m["text"]

    relay = subprocess.run(
        [*base, "--from", "eve@outside.test", "--to", "victim@elsewhere.test", "--body", "relay?"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert relay.returncode != 0
    assert "550 5.7.1" in relay.stdout, relay.stdout

    # A From on the server's own domain, arriving by SMTP: kept, marked as suspected spoofing.
    domain = carol.address.split("@", 1)[1]
    spoof = subprocess.run(
        [*base, "--from", "eve@outside.test", "--to", carol.address,
         "--header", f"From: ceo@{domain}", "--header", "Subject: urgent wire", "--body", "Pay now."],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert spoof.returncode == 0, spoof.stdout
    assert read(mx, carol, "urgent wire")["authentication"]["verdict"] == "spoofed_suspect"


def test_sigkill_mid_burst_loses_no_mail_that_got_250() -> None:
    """250 means stored: SIGKILL the server while smtplib sessions deliver, restart it on the
    same data, and every mail that got its 250 is in the inbox."""
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-smtp-kill-"))
    first = LoftServer(data_dir, smtp=True)
    first.start()
    second: LoftServer | None = None
    try:
        alice = first.create_identity("alice")
        assert first.smtp_addr is not None
        host, port = first.smtp_addr
        accepted: list[str] = []
        lock = threading.Lock()

        def burst(worker: int) -> None:
            try:
                with smtplib.SMTP(host, port, timeout=10) as s:
                    for i in range(5000):
                        subject = f"burst {worker}-{i}"
                        s.sendmail(
                            "burst@outside.test",
                            [alice.address],
                            f"From: burst@outside.test\r\nSubject: {subject}\r\n\r\nmail {i}\r\n".encode(),
                        )
                        with lock:
                            accepted.append(subject)
            except (smtplib.SMTPException, OSError):
                pass  # the server was killed under this session

        workers = [threading.Thread(target=burst, args=(w,)) for w in range(3)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 60
        while len(accepted) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: no shutdown, no flush
        first.proc.wait(timeout=10)
        for w in workers:
            w.join(timeout=30)
        assert len(accepted) >= 60, f"only {len(accepted)} mails got a 250 before the kill"

        second = LoftServer(data_dir, smtp=True)
        second.admin_key = first.admin_key
        second.start()
        stored: set[str] = set()
        cursor = ""
        while True:
            page = second.rest("GET", f"/v0/messages?folder=inbox&limit=200{cursor}", alice.api_key)
            assert isinstance(page, dict), page
            stored.update(m["subject"] for m in page["items"])
            if not page.get("next_cursor"):
                break
            cursor = f"&cursor={page['next_cursor']}"
        lost = [s for s in accepted if s not in stored]
        assert lost == [], f"{len(lost)} of {len(accepted)} mails that got 250 are missing: {lost[:5]}"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
