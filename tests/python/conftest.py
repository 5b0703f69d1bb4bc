"""Fixtures: a real `loft serve` per test module, identities per test, and a guard that refuses
any network connection that does not stay on this machine.

The binary is $LOFT_BIN (run.sh sets it), else target/debug/loft in the repository.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOFT_BIN = os.environ.get("LOFT_BIN") or str(REPO / "target" / "debug" / "loft")
START_TIMEOUT = 30.0


# ----- no network but loopback ----------------------------------------------------------------

BLOCKED: list[str] = []
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost", ""}


def _is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host)
    return host in _LOCAL_NAMES or host.startswith("127.") or host == "0.0.0.0"


def _guard_network() -> None:
    """Frameworks phone home (telemetry, model price lists). run.sh switches that off with
    environment variables; this makes sure of it: a connection or a DNS lookup that would
    leave the machine is refused and recorded, and the run fails at the end."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object, what: str) -> None:
        host = address[0] if isinstance(address, tuple) and address else None
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return
        if not _is_local(host):
            BLOCKED.append(f"{what} {address!r}")
            raise ConnectionRefusedError(f"tests may only reach 127.0.0.1, not {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(address, "connect")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address, "connect")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            BLOCKED.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"tests may only reach 127.0.0.1, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


_guard_network()


SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A skipped test is a failed test here: a missing framework or a server that did not
    start must not pass quietly."""
    if report.skipped:
        SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if BLOCKED or SKIPPED:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if BLOCKED:
        terminalreporter.section("network access outside 127.0.0.1 (refused; fails the run)")
        for b in sorted(set(BLOCKED)):
            terminalreporter.line(b)
    if SKIPPED:
        terminalreporter.section("skipped tests (a skipped test fails the run)")
        for s in SKIPPED:
            terminalreporter.line(s)


# ----- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    id: str
    name: str
    address: str
    api_key: str
    key_id: str
    scopes: tuple[str, ...]


class ApiError(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without any LOFT_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_")}
    env.update(extra)
    return env


class LoftServer:
    """A real `loft serve` on 127.0.0.1 and a free port, with a fresh SQLite data dir; with
    `smtp`, its inbound SMTP listener too (on another free port: `smtp_addr`)."""

    def __init__(self, data_dir: Path, smtp: bool | str = False, dns: dict | None = None,
                 tls: tuple[Path, Path] | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        # True: an SMTP listener on a free port; a string: on that address (`127.0.0.1:PORT`).
        self.smtp = smtp
        # More `loft serve` flags (outbound routes and the like).
        self.extra_args = args or []
        # DNS answers for SPF / DKIM / DMARC checks (`--dns-answers`): always given, so that no
        # test ever asks a real resolver; every other name does not exist.
        self.dns = dns or {}
        self.tls = tls
        self.extra_env = env or {}
        self.smtp_addr: tuple[str, int] | None = None
        self.admin_key = "loft-test-admin-" + secrets.token_hex(16)
        self.url = ""
        self.stderr_path = data_dir / "serve.stderr"
        self.proc: subprocess.Popen[str] | None = None
        self._stdout: list[str] = []

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def start(self) -> None:
        if not os.access(LOFT_BIN, os.X_OK):
            pytest.fail(f"no loft binary at {LOFT_BIN}: run `cargo build -p loft` (tests/python/run.sh does)")
        stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self._stderr_file = stderr
        args = [LOFT_BIN, "serve", "--data-dir", str(self.data_dir / "data"), "--http", "127.0.0.1:0"]
        if self.smtp:
            args += ["--smtp", self.smtp if isinstance(self.smtp, str) else "127.0.0.1:0"]
        if self.tls:
            args += ["--smtp-tls-cert", str(self.tls[0]), "--smtp-tls-key", str(self.tls[1])]
        dns_file = self.data_dir / "dns-answers.json"
        dns_file.write_text(json.dumps(self.dns))
        args += ["--dns-answers", str(dns_file), *self.extra_args]
        self.proc = subprocess.Popen(
            args,
            # The tests' HTTP APIs listen on 127.0.0.1, which the default egress policy refuses.
            # The refused-key tests all come from 127.0.0.1 within a minute: raise the lockout
            # (20 by default) so that they see 401s, which is what they test.
            # `env` given to the server overrides these.
            env=clean_env(**{
                "LOFT_ADMIN_KEY": self.admin_key,
                "LOFT_LOG": "warn",
                "LOFT_EGRESS_ALLOW": "127.0.0.1,localhost",
                # Nothing a test does may reach past this machine, even if the code is broken.
                "LOFT_EGRESS_DENY_PUBLIC": "true",
                "LOFT_AUTH_FAILURES_PER_MINUTE": "1000",
                **self.extra_env,
            }),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._stdout.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            m = re.search(r"HTTP API listening on (http://\S+)", line)
            if m:
                self.url = m.group(1).rstrip("/")
            m = re.search(r"SMTP listening on (\S+):(\d+)", line)
            if m:
                self.smtp_addr = (m.group(1), int(m.group(2)))
            if self.url and (self.smtp_addr or not self.smtp):
                break
        if not self.url or (self.smtp and not self.smtp_addr):
            self.stop()
            pytest.fail(
                f"loft serve did not start within {START_TIMEOUT}s.\nstdout: {''.join(self._stdout)}\n"
                f"stderr: {self.stderr_path.read_text()}"
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.rest("GET", "/v0/health")
                return
            except (OSError, ApiError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_stderr_file", None):
            self._stderr_file.close()

    def rest(self, method: str, path: str, key: str | None = None, body: object = None) -> object:
        """One REST call; returns the decoded JSON, raises ApiError for a non-2xx answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                raw = res.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                decoded: object = json.loads(raw)
            except ValueError:
                decoded = raw.decode(errors="replace")
            raise ApiError(e.code, decoded) from None
        return json.loads(raw) if raw else None

    def rest_raw(self, path: str, key: str) -> bytes:
        """A GET whose answer is not JSON (`/raw`, attachments): the bytes."""
        req = urllib.request.Request(self.url + path)
        req.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.read()

    def create_identity(self, name: str, scopes: list[str] | None = None, mode: str = "autonomous") -> Identity:
        """An identity in oversight mode `mode`: autonomous unless a test is about oversight
        (the server's own default, gated_send, would hold every mail for a reviewer)."""
        body: dict[str, object] = {"name": name, "oversight_mode": mode}
        if scopes is not None:
            body["scopes"] = scopes
        r = self.rest("POST", "/v0/identities", self.admin_key, body)
        assert isinstance(r, dict), r
        return Identity(
            id=r["id"],
            name=r["name"],
            address=r["address"],
            api_key=r["api_key"],
            key_id=r["key_id"],
            scopes=tuple(r["scopes"]),
        )

    def stdio_env(self, identity: Identity | str) -> dict[str, str]:
        """What a `loft mcp` child needs, passed explicitly (MCP clients do not pass on the
        parent's environment)."""
        key = identity if isinstance(identity, str) else identity.api_key
        return {"LOFT_URL": self.url, "LOFT_API_KEY": key}


@pytest.fixture(scope="module")
def loft() -> object:
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-"))
    server = LoftServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if server.proc is not None and server.proc.returncode not in (0, None, -15):
            print(f"loft serve exited with {server.proc.returncode}; stderr:\n{server.stderr_path.read_text()}")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def identities(loft: LoftServer):  # type: ignore[no-untyped-def]
    """`identities("writer")` or `identities("reader", scopes=["mail:read"])`: a new identity on the
    module's server, named after the role (addresses get a random suffix)."""

    def make(role: str, scopes: list[str] | None = None, mode: str = "autonomous") -> Identity:
        return loft.create_identity(role, scopes, mode)

    return make
