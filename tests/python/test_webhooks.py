"""Loft's webhooks, verified by an independent implementation: the Standard Webhooks Python
library (`standardwebhooks` from PyPI) checks the signature of every delivery a real `loft serve`
makes to a receiver on 127.0.0.1 (allowed explicitly: `LOFT_EGRESS_ALLOW` in conftest.py).

The server runs with short retry delays (1 s, at most 2 s apart) and disables an endpoint after
3 s of failures, so that retries and disabling take seconds, not days."""

from __future__ import annotations

import http.server
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import ApiError, LoftServer


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers the next scripted
    status (then 200)."""

    def __init__(self, script: list[int] | None = None, always: int = 200) -> None:
        self.script = list(script or [])
        self.always = always
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.script.pop(0) if outer.script else outer.always
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.got)} deliveries, not {n}, within {timeout} s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> object:
    data_dir = Path(tempfile.mkdtemp(prefix="loft-pytest-webhooks-"))
    s = LoftServer(
        data_dir,
        env={
            "LOFT_WEBHOOK_RETRY_BASE_SECS": "1",
            "LOFT_WEBHOOK_RETRY_MAX_SECS": "2",
            "LOFT_WEBHOOK_DISABLE_AFTER_SECS": "3",
            "LOFT_WEBHOOK_TIMEOUT_SECS": "2",
        },
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def send(server: LoftServer, key: str, to: str, subject: str) -> None:
    server.rest("POST", "/v0/messages/send", key, {"to": to, "subject": subject, "text": "hello"})


def verified(secret: str, got: list[tuple[dict[str, str], bytes]]) -> list[dict]:
    """Every delivery verified by the library; the events it returns."""
    wh = Webhook(secret)
    out = []
    for headers, body in got:
        assert headers["content-type"] == "application/json"
        event = wh.verify(body, headers)
        assert event["id"] == headers["webhook-id"]
        out.append(event)
    return out


def test_deliveries_verify_arrive_in_order_and_are_retried_after_500s(server: LoftServer) -> None:
    alice = server.create_identity("wh-alice")
    bob = server.create_identity("wh-bob")
    rx = Receiver(script=[500, 500])
    try:
        hook = server.rest("POST", "/v0/webhooks", alice.api_key, {"url": rx.url, "types": ["message.received"]})
        assert isinstance(hook, dict)
        secret = hook["secret"]
        assert secret.startswith("whsec_")
        for n in range(1, 4):
            send(server, bob.api_key, alice.address, f"mail {n}")
        events = verified(secret, rx.wait_for(5))
        subjects = [e["payload"]["subject"] for e in events]
        assert subjects == ["mail 1", "mail 1", "mail 1", "mail 2", "mail 3"], subjects
        seqs = [e["seq"] for e in events]
        assert seqs[2] < seqs[3] < seqs[4]
        # The body is the event as GET /v0/events serves it.
        page = server.rest("GET", "/v0/events?types=message.received", alice.api_key)
        assert isinstance(page, dict)
        served = {e["id"]: e for e in page["items"]}
        for e in events:
            assert served[e["id"]] == e
        # A forged or altered delivery does not verify.
        headers, body = rx.got[-1]
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body + b" ", headers)
        log = server.rest("GET", f"/v0/webhooks/{hook['id']}/deliveries", alice.api_key)
        assert isinstance(log, dict)
        assert [d["status_code"] for d in log["items"]] == [200, 200, 200, 500, 500]
        # Replay: the same webhook-id again, still verifiable.
        first = log["items"][-1]["id"]
        r = server.rest("POST", f"/v0/webhooks/{hook['id']}/deliveries/{first}/replay", alice.api_key, {})
        assert isinstance(r, dict) and r["replay"] is True
        again = verified(secret, rx.wait_for(6)[5:])
        assert again[0]["id"] == events[0]["id"]
        # Rotation: both secrets verify during the overlap.
        rotated = server.rest("POST", f"/v0/webhooks/{hook['id']}/rotate-secret", alice.api_key)
        assert isinstance(rotated, dict)
        send(server, bob.api_key, alice.address, "after rotation")
        got = rx.wait_for(7)[6:]
        verified(secret, got)
        verified(rotated["secret"], got)
    finally:
        rx.close()


def test_a_failing_endpoint_is_disabled_with_an_event(server: LoftServer) -> None:
    alice = server.create_identity("wh-carol")
    bob = server.create_identity("wh-dave")
    rx = Receiver(always=503)
    try:
        hook = server.rest("POST", "/v0/webhooks", alice.api_key, {"url": rx.url, "types": ["message.*"]})
        assert isinstance(hook, dict)
        send(server, bob.api_key, alice.address, "into the void")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = server.rest("GET", f"/v0/webhooks/{hook['id']}", alice.api_key)
            assert isinstance(state, dict)
            if not state["enabled"]:
                break
            time.sleep(0.2)
        assert not state["enabled"], state
        assert "503" in state["disabled_reason"]
        assert len(rx.got) >= 2
        page = server.rest("GET", "/v0/events?types=webhook.disabled", alice.api_key)
        assert isinstance(page, dict)
        assert [e["payload"]["webhook_id"] for e in page["items"]] == [hook["id"]]
        verified(hook["secret"], rx.got)
    finally:
        rx.close()


def test_identities_are_kept_apart_and_private_targets_refused(server: LoftServer) -> None:
    alice = server.create_identity("wh-erin")
    bob = server.create_identity("wh-frank")
    mallory = server.create_identity("wh-mallory")
    rx_alice, rx_mallory = Receiver(), Receiver()
    try:
        hook = server.rest("POST", "/v0/webhooks", alice.api_key, {"url": rx_alice.url})
        assert isinstance(hook, dict)
        # Mallory can neither register for alice's events nor see alice's endpoint.
        with pytest.raises(ApiError) as e:
            server.rest("POST", "/v0/webhooks", mallory.api_key, {"url": rx_mallory.url, "identity": alice.id})
        assert e.value.status == 403 and e.value.body["error"]["code"] == "operator_only"
        with pytest.raises(ApiError) as e:
            server.rest("GET", f"/v0/webhooks/{hook['id']}", mallory.api_key)
        assert e.value.status == 404
        mine = server.rest("POST", "/v0/webhooks", mallory.api_key, {"url": rx_mallory.url})
        assert isinstance(mine, dict)
        send(server, bob.api_key, alice.address, "for alice only")
        got = verified(hook["secret"], rx_alice.wait_for(1))
        assert got[0]["identity"] == alice.id
        time.sleep(1.5)
        assert rx_mallory.got == [], "mallory's endpoint got alice's event"
        # Private and metadata addresses are refused without the operator's allowance.
        for url, rule in [
            ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
            ("http://10.0.0.7/hook", "private"),
            ("http://192.168.1.1/hook", "private"),
            ("http://[::1]:9/hook", "loopback"),
        ]:
            with pytest.raises(ApiError) as e:
                server.rest("POST", "/v0/webhooks", alice.api_key, {"url": url})
            assert e.value.status == 403, url
            assert e.value.body["error"]["code"] == "egress_denied", url
            assert f"rule `{rule}`" in e.value.body["error"]["message"], e.value.body
    finally:
        rx_alice.close()
        rx_mallory.close()
