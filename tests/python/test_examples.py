"""The programs in examples/ run as a user would run them (scripted models, no OPENAI_API_KEY),
against a real server, over stdio and HTTP; the audit log confirms who did what."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import LOFT_BIN, REPO, LoftServer, clean_env

EXAMPLES = {
    "autogen": REPO / "examples" / "autogen" / "crew_by_mail.py",
    "crewai": REPO / "examples" / "crewai" / "crew_by_mail.py",
}


def audit(loft: LoftServer, identity_id: str, action: str) -> list[dict]:
    page = loft.rest("GET", f"/v0/audit?identity={identity_id}&action={action}&limit=50", loft.admin_key)
    return [r for r in page["items"] if r["outcome"] == "ok"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
@pytest.mark.parametrize("framework", sorted(EXAMPLES))
def test_example_runs_scripted(loft, framework, transport) -> None:  # type: ignore[no-untyped-def]
    env = clean_env(LOFT_URL=loft.url, LOFT_ADMIN_KEY=loft.admin_key, LOFT_BIN=LOFT_BIN)
    env.pop("OPENAI_API_KEY", None)
    p = subprocess.run(
        [sys.executable, str(EXAMPLES[framework]), "--transport", transport],
        env=env,
        cwd=EXAMPLES[framework].parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(p.stdout)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-3000:]}"
    assert "scripted model" in p.stdout and f"MCP over {transport}" in p.stdout
    ids = dict(re.findall(r"^(researcher|writer): +\S+ \((idt_\w+)\)$", p.stdout, re.M))
    addresses = dict(re.findall(r"^(researcher|writer): +(\S+@\S+)", p.stdout, re.M))
    assert set(ids) == {"researcher", "writer"}, p.stdout
    assert f"OK: reply from {addresses['writer']} in thread thr_" in p.stdout, p.stdout

    # Each agent acted as itself: the audit log names the identity behind each step.
    (send,) = audit(loft, ids["researcher"], "mail.send")
    assert send["details"]["to"] == [addresses["writer"]]
    (reply,) = audit(loft, ids["writer"], "mail.reply")
    assert reply["details"]["to"] == [addresses["researcher"]]
    assert audit(loft, ids["writer"], "mail.send") == []
    assert send["key_id"] != reply["key_id"]
