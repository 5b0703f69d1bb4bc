"""A private Postfix (Debian's package) on a loopback port, for tests and benchmarks.

Nothing of the machine's own mail system is used or changed: the configuration, the queue, the
data directory, the log and the delivered mail all live in one temporary directory, the
listener is `127.0.0.1:PORT` only (`inet_interfaces = loopback-only`), no DNS is asked
(`smtp_dns_support_level = disabled`, `smtpd_peername_lookup = no`) and no master.cf service
runs chrooted. `postfix -c DIR start` runs it as root (as Postfix must start), its daemons as
the package's `postfix` user, and deliveries as `nobody`.

- Mail for `MAILBOXES` on `DOMAIN` (default `remote.test`) is delivered by Postfix's
  `virtual(8)` into one Maildir per address under `DIR/mail/`; other addresses on that domain
  get `550 5.1.1`.
- `relay` maps (domain -> "127.0.0.1:PORT") make Postfix relay those domains to another SMTP
  server on loopback (Loft's `--smtp`) through `transport_maps`, as a real MTA would forward to
  an MX.
- `mode="sink"` makes a Postfix that accepts every recipient into its queue and then discards
  the mail (the benchmark of inbound accept rates: it stores each mail durably in its queue,
  as Loft stores it in its database, then throws it away rather than delivering).

Debian's `postfix` package is installed by tests/python/run.sh (and scripts/bench_smtp.sh)
when missing, with `main_mailer_type` "No configuration" so that it neither writes
/etc/postfix/main.cf nor starts a system Postfix.

Command line (for scripts): `python3 postfixrig.py start DIR PORT [sink]` prints the
directory's state once it listens; `python3 postfixrig.py stop DIR`.
"""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


class Postfix:
    def __init__(self, root: Path, port: int | None = None, domain: str = "remote.test",
                 mailboxes: tuple[str, ...] = ("someone",), relay: dict[str, str] | None = None,
                 mode: str = "deliver") -> None:
        self.root = root
        self.port = port or free_port()
        self.domain = domain
        self.mailboxes = mailboxes
        self.relay = relay or {}
        self.mode = mode
        self.conf = root / "conf"
        self.maildir = root / "mail"
        self.log = root / "maillog"

    def main_cf(self) -> str:
        r = self.root
        nobody = pwd.getpwnam("nobody")
        lines = [
            "compatibility_level = 3.6",
            f"queue_directory = {r}/queue",
            f"data_directory = {r}/data",
            "meta_directory = /etc/postfix",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            f"myhostname = mx.{self.domain}",
            f"mydomain = {self.domain}",
            f"myorigin = {self.domain}",
            "mydestination =",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            # No DNS at all: no test may ask a resolver about a name.
            "smtpd_peername_lookup = no",
            "smtp_dns_support_level = disabled",
            "smtp_host_lookup = native",
            f"maillog_file = {self.log}",
            f"maillog_file_prefixes = {r}",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "biff = no",
            # Quick retries: a test waits for a relayed mail, not for hours.
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            # Plenty of sessions for the benchmark (smtp-source with 50 connections).
            "default_process_limit = 200",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0",
            "smtpd_client_message_rate_limit = 0",
            "in_flow_delay = 0",
        ]
        if self.mode == "sink":
            # Every recipient accepted into the queue, then discarded.
            lines += [
                f"relay_domains = {self.domain}",
                f"transport_maps = inline:{{ {self.domain}=discard: }}",
                "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            ]
        else:
            boxes = ", ".join(f"{m}@{self.domain}={m}/" for m in self.mailboxes)
            lines += [
                f"virtual_mailbox_domains = {self.domain}",
                f"virtual_mailbox_base = {self.maildir}",
                f"virtual_mailbox_maps = inline:{{ {boxes} }}",
                f"virtual_uid_maps = static:{nobody.pw_uid}",
                f"virtual_gid_maps = static:{nobody.pw_gid}",
                "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            ]
        if self.relay:
            lines.append("relay_domains = " + ", ".join(self.relay))
            maps = ", ".join(f"{d}=smtp:[{hp.rsplit(':', 1)[0]}]:{hp.rsplit(':', 1)[1]}" for d, hp in self.relay.items())
            lines.append(f"transport_maps = inline:{{ {maps} }}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30) -> None:
        if not available():
            raise RuntimeError(
                f"Postfix is not installed ({POSTFIX}) or this is not root: tests/python/run.sh "
                "installs Debian's package `postfix`")
        self.root.mkdir(parents=True, exist_ok=True)
        # Postfix's daemons (user postfix) walk into it: it and its parents must let them.
        os.chmod(self.root, 0o755)
        for parent in self.root.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise RuntimeError(f"{parent} is closed to other users: Postfix's daemons could not reach {self.root}")
        for d in ("conf", "queue", "data", "mail"):
            (self.root / d).mkdir(exist_ok=True)
        pf = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        os.chown(self.root / "data", pf.pw_uid, pf.pw_gid)
        os.chown(self.maildir, nobody.pw_uid, nobody.pw_gid)
        (self.conf / "main.cf").write_text(self.main_cf())
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        done = subprocess.run([POSTFIX, "-c", str(self.conf), "start"], capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log_text()}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not listen on 127.0.0.1:{self.port}:\n{self.log_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.conf), "stop"], capture_output=True, timeout=60, check=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def delivered(self, mailbox: str = "someone") -> list[bytes]:
        """The raw messages in a mailbox's Maildir (new/), oldest first."""
        new = self.maildir / mailbox / "new"
        if not new.exists():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)]

    def wait_delivered(self, mailbox: str = "someone", count: int = 1, timeout: float = 60) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.delivered(mailbox)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.2)


def subject_of(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])


if __name__ == "__main__":
    cmd, root = sys.argv[1], Path(sys.argv[2])
    if cmd == "start":
        rig = Postfix(root, port=int(sys.argv[3]), mode=sys.argv[4] if len(sys.argv) > 4 else "deliver")
        rig.start()
        print(f"postfix listening on 127.0.0.1:{rig.port} ({rig.mode}), log {rig.log}")
    elif cmd == "stop":
        Postfix(root).stop()
    else:
        sys.exit(f"usage: {sys.argv[0]} start DIR PORT [sink] | stop DIR")
