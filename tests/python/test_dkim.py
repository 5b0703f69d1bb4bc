"""Loft's DKIM signatures verified by dkimpy, software we did not write.

`dkim_sign` (crates/loft-mailauth/examples) generates keys and signs with the very functions
`loft domain add` and outbound signing use; dkimpy verifies the signatures, getting the DNS
answers from this test through its `dnsfunc` (no DNS query leaves the machine), and refuses
them once the message is changed. Both algorithms: ed25519-sha256 and rsa-sha256.
"""
import json
import os
import pathlib
import subprocess

import dkim
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SIGNER = REPO / "target" / "debug" / "examples" / "dkim_sign"

MESSAGE = (
    b"From: Writer <writer@agents.test>\r\n"
    b"To: someone@partner.test\r\n"
    b"Subject: Signed by Loft\r\n"
    b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <loft-dkim-1@agents.test>\r\n"
    b"X-Loft-Identity: idt_abcdefgh\r\n"
    b"X-Loft-Oversight: approved by a human\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from an agent.\r\n"
)


def sign(which):
    assert SIGNER.exists(), f"build it first: cargo build -p loft-mailauth --example dkim_sign ({SIGNER})"
    out = subprocess.run([str(SIGNER), "agents.test", which], input=MESSAGE, capture_output=True,
                         check=True, timeout=60)
    result = json.loads(out.stdout)
    return result["signed"].encode(), result["dns"]


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()
    return dnsfunc


@pytest.mark.parametrize("which", ["ed25519", "rsa"])
def test_dkimpy_verifies_loft_signature(which):
    signed, records = sign(which)
    assert signed.count(b"DKIM-Signature:") == 1
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(records)), signed.decode()
    # The identity and oversight headers are covered by the signature.
    d = dkim.DKIM(signed)
    sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
    h = [t for t in sigs[0].replace(b"\r\n", b"").split(b";") if t.strip().startswith(b"h=")][0].lower()
    assert b"x-loft-identity" in h and b"x-loft-oversight" in h, h


@pytest.mark.parametrize("which", ["ed25519", "rsa"])
def test_dkimpy_refuses_a_changed_message(which):
    signed, records = sign(which)
    changed_body = signed.replace(b"Hello from an agent.", b"Hello from a forger.")
    assert not dkim.verify(changed_body, dnsfunc=dnsfunc_for(records))
    changed_identity = signed.replace(b"idt_abcdefgh", b"idt_zzzzzzzz")
    assert not dkim.verify(changed_identity, dnsfunc=dnsfunc_for(records))


def test_both_selectors_verify():
    signed, records = sign("both")
    assert signed.count(b"DKIM-Signature:") == 2
    # dkimpy verifies the signature at index 0 and 1 in turn.
    d = dkim.DKIM(signed)
    for idx in (0, 1):
        assert d.verify(idx=idx, dnsfunc=dnsfunc_for(records)), idx
