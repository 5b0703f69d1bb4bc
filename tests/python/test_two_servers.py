"""Two Loft servers over real SMTP sockets, as two organisations on the internet would be:
`a.test` and `b.test`, each a `loft serve` with its own `--smtp` listener on loopback and
`--deliver-direct` to the other (its port given by `--smtp-outbound-port`), each with the
other's MX, DKIM, SPF and DMARC records as DNS answers (`--dns-answers`: the records
`loft domain add` printed on the other server, as printed, plus an A record putting the MX host
at 127.0.0.1). Direct delivery finds the other server through those answers (MX, then the MX
host's A record), and SPF's `mx` mechanism resolves through the same records.

An agent on A mails an agent on B; B's agent sees it as `external_authenticated` (SPF, DKIM
with both selectors, DMARC pass) and replies; A's agent finds the reply in the thread of its
mail, authenticated the same way. Both sender copies say `delivered` with the other server's
`250 ... stored as` reply.

The servers start twice: first to add their domains (which makes the DKIM keys), then with
the other's records (the answers file is read at start-up). No query leaves the process: a
name the answers do not hold does not exist.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from conftest import LoftServer
from postfixrig import free_port


def dns_from(records: list[dict]) -> dict:
    """The published records as DNS answers, with the MX hosts at 127.0.0.1."""
    txt: dict[str, list[str]] = {}
    mx: dict[str, list[list]] = {}
    a: dict[str, list[str]] = {}
    for r in records:
        if r["type"] == "TXT":
            txt.setdefault(r["name"], []).append(r["value"])
        else:
            pref, host = r["value"].split()
            mx.setdefault(r["name"], []).append([int(pref), host.rstrip(".")])
            a.setdefault(host.rstrip("."), []).append("127.0.0.1")
    spf = [v for values in txt.values() for v in values if v.startswith("v=spf1")]
    assert spf == ["v=spf1 mx -all"], spf
    return {"txt": txt, "mx": mx, "a": a}


def wait(what: str, probe, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def find(server: LoftServer, key: str, subject: str) -> dict | None:
    items = server.rest("GET", "/v0/messages?folder=inbox", key)["items"]  # type: ignore[index]
    found = [m for m in items if m["subject"] == subject]
    if not found:
        return None
    m = server.rest("GET", f"/v0/messages/{found[0]['id']}", key)
    assert isinstance(m, dict)
    return m


def delivered(server: LoftServer, key: str, message_id: str) -> list[dict] | None:
    m = server.rest("GET", f"/v0/messages/{message_id}", key)
    assert isinstance(m, dict)
    return m["delivery"] if all(d["status"] != "queued" for d in m["delivery"]) else None


def assert_authenticated(m: dict, domain: str) -> None:
    auth = m["authentication"]
    assert auth["verdict"] == "external_authenticated", auth
    assert auth["internal"] is False, auth
    checks = auth["checks"]
    assert checks["spf"] == "pass" and checks["dmarc"] == "pass", auth
    assert sorted((d["domain"], d["result"]) for d in checks["dkim"]) == [(domain, "pass"), (domain, "pass")], auth


def test_two_loft_servers_mail_each_other_with_dkim_passing_both_ways() -> None:
    root = Path(tempfile.mkdtemp(prefix="loft-pytest-two-"))
    servers: list[LoftServer] = []
    try:
        # First start: domains (DKIM keys) and identities.
        first = {}
        for name in ("a", "b"):
            (root / name).mkdir()
            s = LoftServer(root / name, env={"LOFT_DOMAIN": f"{name}.test"})
            servers.append(s)
            s.start()
            added = s.rest("POST", "/v0/domains", s.admin_key, {"name": f"{name}.test"})
            assert isinstance(added, dict), added
            first[name] = {"server": s, "records": added["records"], "agent": s.create_identity(f"agent-{name}")}
            s.stop()

        # Second start: each delivers to the other and knows the other's records.
        port = {"a": free_port(), "b": free_port()}
        live = {}
        for name, other in (("a", "b"), ("b", "a")):
            s = LoftServer(root / name, smtp=f"127.0.0.1:{port[name]}", dns=dns_from(first[other]["records"]),
                           env={"LOFT_DOMAIN": f"{name}.test"}, args=[
                               "--deliver-direct", "--smtp-outbound-port", str(port[other]),
                           ])
            s.admin_key = first[name]["server"].admin_key
            servers.append(s)
            s.start()
            live[name] = s
        a, b = live["a"], live["b"]
        alice, bob = first["a"]["agent"], first["b"]["agent"]

        sent = a.rest("POST", "/v0/messages/send", alice.api_key, {
            "to": [bob.address], "subject": "Hand-over", "text": "Bob, the brief is yours now.",
        })
        assert isinstance(sent, dict), sent
        got = wait("B's agent to receive the mail", lambda: find(b, bob.api_key, "Hand-over"))
        assert got["from"] == alice.address
        assert "the brief is yours now" in got["text"]
        assert_authenticated(got, "a.test")
        report = wait("A's delivery report", lambda: delivered(a, alice.api_key, sent["id"]))
        assert [(d["recipient"], d["status"]) for d in report] == [(bob.address, "delivered")], report
        assert report[0]["detail"].startswith("accepted by the recipient's server: 250 2.0.0 OK: stored as"), report

        replied = b.rest("POST", f"/v0/messages/{got['id']}/reply", bob.api_key, {"text": "Got it, on it."})
        assert isinstance(replied, dict), replied
        answer = wait("A's agent to receive the reply", lambda: find(a, alice.api_key, "Re: Hand-over"))
        assert answer["from"] == bob.address
        assert answer["extracted_text"] == "Got it, on it."
        assert answer["thread_id"] == sent["thread_id"], (answer["thread_id"], sent["thread_id"])
        assert_authenticated(answer, "b.test")
        report = wait("B's delivery report", lambda: delivered(b, bob.api_key, replied["id"]))
        assert [(d["recipient"], d["status"]) for d in report] == [(alice.address, "delivered")], report

        thread = a.rest("GET", f"/v0/threads/{sent['thread_id']}", alice.api_key)
        assert isinstance(thread, dict)
        assert [m["subject"] for m in thread["messages"]] == ["Hand-over", "Re: Hand-over"]
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
