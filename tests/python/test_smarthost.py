"""Loft relaying through a smarthost that requires AUTH: `aiosmtpd` (software we did not write)
on a loopback port, with a certificate from a CA the test makes with `openssl`, which Loft
trusts through `--smarthost-ca` (only for that connection; the system's roots are untouched).

- STARTTLS (`--smarthost-tls starttls`) and TLS from the first byte (`tls`): the credentials
  arrive at the relay over TLS only (aiosmtpd refuses AUTH in plaintext), the mail is relayed,
  and the sender's delivery report says `delivered` with the relay's reply;
- a wrong password: the relay says 535, nothing is relayed, the sender's report stays `queued`
  with a detail naming the failed authentication (the operator's to fix: retried, never
  bounced), and the password is in no log line;
- without `--smarthost-ca` the relay's certificate is not trusted: nothing is sent, not even
  the credentials.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import LOFT_BIN, LoftServer, clean_env
from postfixrig import free_port

USER = "loft-relay"


def make_ca(root: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for `localhost` / 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca = root / "ca.key", root / "ca.pem"
    key, csr, cert = root / "relay.key", root / "relay.csr", root / "relay.pem"
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Loft test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca_key), "-out", str(ca))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    ext = root / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


class Relay:
    """aiosmtpd with AUTH (PLAIN and LOGIN) required; records the logins and the mail."""

    def __init__(self, cert: Path, key: Path, password: str, implicit_tls: bool) -> None:
        self.password = password
        self.logins: list[tuple[str, bytes, bytes]] = []
        self.mail: list[dict] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        self.port = free_port()
        kwargs: dict = dict(hostname="127.0.0.1", port=self.port, authenticator=self.authenticate,
                            server_hostname="relay.test")
        if implicit_tls:
            # The whole connection is TLS: aiosmtpd's own STARTTLS check does not apply.
            kwargs.update(ssl_context=ctx, auth_require_tls=False)
        else:
            kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
        self.controller = Controller(self, **kwargs)

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        tls = server.transport.get_extra_info("ssl_object") is not None
        assert tls, "AUTH in plaintext"
        self.logins.append((mechanism, auth_data.login, auth_data.password))
        ok = auth_data.login == USER.encode() and auth_data.password == self.password.encode()
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.mail.append({
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": session.authenticated,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "content": envelope.original_content,
        })
        return "250 2.0.0 Relayed by the test smarthost"


@pytest.fixture(scope="module")
def pki() -> object:
    root = Path(tempfile.mkdtemp(prefix="loft-pytest-smarthost-"))
    try:
        yield (root, *make_ca(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_loft(root: Path, relay: Relay, mode: str, password: str, ca: Path | None) -> LoftServer:
    data = root / f"loft-{secrets.token_hex(4)}"
    data.mkdir()
    args = ["--smarthost", f"127.0.0.1:{relay.port}", "--smarthost-tls", mode, "--smarthost-user", USER]
    if ca is not None:
        args += ["--smarthost-ca", str(ca)]
    server = LoftServer(data, env={"LOFT_DOMAIN": "a.test", "LOFT_SMARTHOST_PASSWORD": password,
                                   "LOFT_LOG": "info"}, args=args)
    server.start()
    return server


def send_and_wait(server: LoftServer, done: callable, timeout: float = 60) -> tuple[dict, dict]:  # type: ignore[valid-type]
    """An agent sends to an outside address; waits until `done(delivery_entry)`."""
    writer = server.create_identity("writer")
    sent = server.rest("POST", "/v0/messages/send", writer.api_key, {
        "to": ["someone@remote.test"], "subject": "Via the smarthost", "text": "Relayed, with AUTH.",
    })
    assert isinstance(sent, dict), sent
    deadline = time.monotonic() + timeout
    while True:
        m = server.rest("GET", f"/v0/messages/{sent['id']}", writer.api_key)
        assert isinstance(m, dict)
        entry = m["delivery"][0]
        if done(entry) or time.monotonic() > deadline:
            return entry, {"address": writer.address}
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_relayed_through_an_auth_smarthost_over_tls(pki, mode: str) -> None:  # type: ignore[no-untyped-def]
    root, ca, cert, key = pki
    password = "relay-pw-" + secrets.token_hex(8)
    relay = Relay(cert, key, password, implicit_tls=(mode == "tls"))
    relay.controller.start()
    server = None
    try:
        server = start_loft(root, relay, mode, password, ca)
        entry, who = send_and_wait(server, lambda d: d["status"] != "queued")
        assert entry["status"] == "delivered", entry
        assert entry["detail"] == "accepted by the recipient's server: 250 2.0.0 Relayed by the test smarthost", entry
        assert [(m, login) for (m, login, _) in relay.logins] in ([("PLAIN", USER.encode())], [("LOGIN", USER.encode())]), relay.logins
        assert relay.logins[0][2] == password.encode()
        assert len(relay.mail) == 1
        got = relay.mail[0]
        assert got["tls"] and got["authenticated"], got
        assert got["mail_from"] == who["address"] and got["rcpt_tos"] == ["someone@remote.test"], got
        assert b"Subject: Via the smarthost" in got["content"]
        assert b"X-Loft-Identity: " + who["address"].encode() in got["content"]
    finally:
        if server is not None:
            server.stop()
        relay.controller.stop()


def test_a_wrong_password_leaves_the_mail_queued_with_a_clear_reason(pki) -> None:  # type: ignore[no-untyped-def]
    root, ca, cert, key = pki
    relay = Relay(cert, key, "the-right-password", implicit_tls=False)
    relay.controller.start()
    server = None
    wrong = "wrong-pw-" + secrets.token_hex(8)
    try:
        server = start_loft(root, relay, "starttls", wrong, ca)
        entry, _ = send_and_wait(server, lambda d: d["detail"].startswith("not delivered yet"))
        assert entry["status"] == "queued", entry
        assert "authenticating" in entry["detail"] and "535 5.7.8" in entry["detail"], entry
        assert "next attempt at" in entry["detail"], entry
        assert relay.logins and relay.logins[0][2] == wrong.encode()
        assert relay.mail == []
        server.stop()
        log = server.stderr_path.read_text()
        assert "authenticating" in log, log[-2000:]
        assert wrong not in log and wrong not in entry["detail"]
    finally:
        if server is not None:
            server.stop()
        relay.controller.stop()


def test_an_untrusted_smarthost_certificate_gets_nothing(pki) -> None:  # type: ignore[no-untyped-def]
    root, _ca, cert, key = pki
    password = "relay-pw-" + secrets.token_hex(8)
    relay = Relay(cert, key, password, implicit_tls=False)
    relay.controller.start()
    server = None
    try:
        server = start_loft(root, relay, "starttls", password, None)
        entry, _ = send_and_wait(server, lambda d: d["detail"].startswith("not delivered yet"))
        assert entry["status"] == "queued", entry
        assert "certificate" in entry["detail"].lower(), entry
        assert relay.logins == [] and relay.mail == []
    finally:
        if server is not None:
            server.stop()
        relay.controller.stop()


def test_a_bad_smarthost_ca_file_stops_the_server_at_start(pki) -> None:  # type: ignore[no-untyped-def]
    root, _ca, _cert, key = pki
    for bad, why in [(key, "no certificate"), (root / "missing.pem", "missing.pem")]:
        done = subprocess.run(
            [LOFT_BIN, "serve", "--data-dir", str(root / "never"), "--http", "127.0.0.1:0",
             "--smarthost", "localhost:2525", "--smarthost-ca", str(bad)],
            env=clean_env(LOFT_ADMIN_KEY="x" * 32), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0
        assert "--smarthost-ca" in done.stderr and why in done.stderr, done.stderr
