"""AutoGen 0.7.5 (.venv/mcp1): an agent USES credentials from its Loft vault without the model ever
seeing a secret.

A tiny HTTP API on 127.0.0.1 (stdlib `http.server`) wants `X-Api-Key: <secret>` and, carelessly,
echoes the key back (in its JSON body, base64-encoded too, and in a response header). Through REST
the identity stores that key (an `api_key` allow-listed for the API's `host:port`, injected as the
header) and a TOTP seed. Then a `RoundRobinGroupChat` of an `AssistantAgent` (its own
`McpWorkbench`, over stdio `loft mcp` and over streamable HTTP) and a `UserProxyAgent` (the human,
scripted) runs: the scripted model calls `vault_http_request` and `vault_totp`, reports, and the
user ends the chat.

Everything the model could see is recorded: every `create()` call's messages and tools, the team's
messages, and what the user proxy was shown. Neither the API key nor the TOTP seed may appear in
any of it, the API must have received the right header, the tool result must be redacted, the code
must be the RFC 6238 code of the seed, and the audit log must show the uses, without the secrets.

Only in .venv/mcp1 (AutoGen needs mcp<2): skipped where AutoGen is not installed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import struct
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("autogen_agentchat", reason="AutoGen is only installed in .venv/mcp1")

from autogen_agentchat.agents import AssistantAgent, UserProxyAgent  # noqa: E402
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination  # noqa: E402
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent  # noqa: E402
from autogen_agentchat.teams import RoundRobinGroupChat  # noqa: E402
from autogen_core import FunctionCall  # noqa: E402
from autogen_core.models import (  # noqa: E402
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)
from autogen_ext.models.replay import ReplayChatCompletionClient  # noqa: E402
from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams, StreamableHttpServerParams  # noqa: E402

from conftest import LOFT_BIN, Identity, LoftServer  # noqa: E402

Step = CreateResult | str | Callable[[Sequence[LLMMessage]], CreateResult | str]

API_HEADER = "X-Api-Key"
CRED = "crm-api"
TOTP_CRED = "crm-2fa"


# ----- the scripted model, recording everything it is given ----------------------------------


class RecordingModel(ReplayChatCompletionClient):
    """Replays `steps` in order (a step that is a function gets the messages the model is shown),
    and records every `create()` call's arguments: all that a real model would have read."""

    def __init__(self, steps: list[Step]) -> None:
        super().__init__(
            steps,  # type: ignore[arg-type]
            model_info=ModelInfo(
                vision=False,
                function_calling=True,
                json_output=False,
                family=ModelFamily.UNKNOWN,
                structured_output=False,
            ),
        )
        self.inputs: list[dict[str, Any]] = []

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        self.inputs.append({"messages": list(messages), **kwargs})
        i = self._current_index
        if i < len(self.chat_completions) and callable(self.chat_completions[i]):
            self.chat_completions[i] = self.chat_completions[i](messages)  # type: ignore[operator]
        return await super().create(messages, **kwargs)

    async def create_stream(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def,override]
        raise AssertionError("the agent was not set up to stream; create() records what the model sees")


def tool_call(tool: str, **arguments: Any) -> CreateResult:
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=f"call_{uuid.uuid4().hex[:12]}", name=tool, arguments=json.dumps(arguments))],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def last_result(messages: Sequence[LLMMessage]) -> dict[str, Any]:
    """The JSON of the newest tool result the model has been shown."""
    for m in reversed(messages):
        if isinstance(m, FunctionExecutionResultMessage):
            r = m.content[-1]
            assert not r.is_error, r
            return json.loads(r.content)
    raise AssertionError("the model was shown no tool result")


def as_text(value: Any) -> str:
    """Every string inside `value` (pydantic models, dicts, lists, tool schemas), as one text."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if hasattr(v, "model_dump"):
            v = v.model_dump(mode="json")
        if isinstance(v, dict):
            for k, x in v.items():
                parts.append(str(k))
                walk(x)
        elif isinstance(v, (list, tuple, set)):
            for x in v:
                walk(x)
        elif isinstance(v, (bytes, bytearray)):
            parts.append(bytes(v).decode(errors="replace"))
        elif v is not None:
            parts.append(str(v))

    walk(value)
    parts.append(repr(value))
    return "\n".join(parts)


# ----- RFC 6238 --------------------------------------------------------------------------------


def totp(seed_b32: str, at: float, period: int = 30, digits: int = 6) -> str:
    key = base64.b32decode(seed_b32.upper() + "=" * (-len(seed_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // period), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return str((struct.unpack(">I", mac[o : o + 4])[0] & 0x7FFFFFFF) % 10**digits).zfill(digits)


def test_totp_matches_rfc_6238_vectors() -> None:
    seed = base64.b32encode(b"12345678901234567890").decode()  # RFC 6238, appendix B (SHA-1)
    assert totp(seed, 59, digits=8) == "94287082"
    assert totp(seed, 1111111109, digits=8) == "07081804"
    assert totp(seed, 20000000000, digits=8) == "65353130"


# ----- the third-party API ---------------------------------------------------------------------


@contextmanager
def echo_api(secret: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An API on 127.0.0.1 that wants `X-Api-Key: secret` and echoes the key it got. Yields its
    port and the requests it received (path and headers)."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            got = self.headers.get(API_HEADER)
            seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            ok = got == secret
            body = json.dumps(
                {
                    "authenticated": ok,
                    "account": "ACME Corp" if ok else None,
                    # A careless API: it repeats the key it was sent, raw and base64-encoded.
                    "echo": {"x-api-key": got, "x-api-key-base64": base64.b64encode((got or "").encode()).decode()},
                }
            ).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Echo-Api-Key", got or "")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ----- the test --------------------------------------------------------------------------------


def server_params(loft: LoftServer, who: Identity, transport: str) -> StdioServerParams | StreamableHttpServerParams:
    if transport == "stdio":
        # The child does not inherit the parent's environment: pass LOFT_URL and LOFT_API_KEY.
        return StdioServerParams(command=LOFT_BIN, args=["mcp"], env=loft.stdio_env(who), read_timeout_seconds=30)
    return StreamableHttpServerParams(
        url=loft.mcp_url, headers={"Authorization": f"Bearer {who.api_key}"}, timeout=30, sse_read_timeout=60
    )


def audit_export(loft: LoftServer) -> str:
    """The whole audit log as the operator exports it (JSON lines)."""
    req = urllib.request.Request(loft.url + "/v0/audit/export?limit=10000")
    req.add_header("Authorization", f"Bearer {loft.admin_key}")
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.read().decode()


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_agent_uses_vault_credentials_without_seeing_them(loft, identities, transport) -> None:  # type: ignore[no-untyped-def]
    agent = identities("crm-agent")
    api_key = "loft-marker-" + secrets.token_hex(20)  # unique to this run: any sighting is a leak
    seed = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    forbidden = {
        "the API key": api_key,
        "the API key, base64": base64.b64encode(api_key.encode()).decode().rstrip("="),
        "the TOTP seed": seed,
        "the TOTP seed, lowercase": seed.lower(),
    }

    def leaks(text: str) -> list[str]:
        return [what for what, s in forbidden.items() if s in text]

    with echo_api(api_key) as (port, api_seen):
        host = f"127.0.0.1:{port}"
        url = f"http://{host}/v1/account"

        # The secrets go in through REST, with the identity's own key; the answers are metadata.
        stored = loft.rest(
            "POST",
            "/v0/vault",
            agent.api_key,
            {"name": CRED, "type": "api_key", "value": api_key, "allowed_hosts": [host], "inject": f"header:{API_HEADER}"},
        )
        stored_totp = loft.rest(
            "POST",
            "/v0/vault",
            agent.api_key,
            {"name": TOTP_CRED, "type": "totp", "secret": seed, "issuer": "ACME CRM", "account": agent.address},
        )
        assert not leaks(json.dumps([stored, stored_totp])), (stored, stored_totp)

        model = RecordingModel(
            [
                tool_call("vault_http_request", name=CRED, url=url),
                tool_call("vault_totp", name=TOTP_CRED),
                lambda msgs: (
                    f"The CRM API answered for the account; the one-time code for the login is "
                    f"{last_result(msgs)['code']}."
                ),
            ]
        )
        user_saw: list[str] = []

        def user(prompt: str) -> str:
            user_saw.append(prompt)
            return "Thanks, that is all I needed. TERMINATE"

        async def go() -> Any:
            async with McpWorkbench(server_params(loft, agent, transport)) as tools:
                listed = {t["name"] for t in await tools.list_tools()}
                assert {"vault_http_request", "vault_totp"} <= listed, listed
                assert "vault_get" not in listed, "vault_get needs vault:reveal, which this key lacks"
                team = RoundRobinGroupChat(
                    [
                        AssistantAgent(
                            "crm_agent",
                            model_client=model,
                            workbench=tools,
                            max_tool_iterations=3,
                            system_message="You work in the CRM for the user. Use your Loft vault credentials; "
                            "never ask for secrets.",
                        ),
                        UserProxyAgent("user", input_func=user),
                    ],
                    termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(12),
                )
                return await team.run(
                    task=f"Check our CRM account at {url} with the `{CRED}` credential, and give me the "
                    f"current one-time code of `{TOTP_CRED}` so I can log in."
                )

        started = time.time()
        result = asyncio.run(asyncio.wait_for(go(), 120))
        finished = time.time()

    # The conversation went as scripted.
    assert model._current_index == model.provided_message_count, (model._current_index, result.messages)
    assert "TERMINATE" in (result.stop_reason or ""), result.stop_reason
    assert len(user_saw) == 1, user_saw

    # The brokered call reached the API once, with the credential injected as the header.
    assert len(api_seen) == 1, api_seen
    assert api_seen[0]["path"] == "/v1/account"
    assert api_seen[0]["headers"].get(API_HEADER.lower()) == api_key, api_seen[0]["headers"].keys()
    assert "authorization" not in api_seen[0]["headers"], "the key is a header credential, not a bearer token"

    # The tool results, as the team saw them.
    calls: list[tuple[str, Any]] = []
    requested: list[str] = []
    for m in result.messages:
        if isinstance(m, ToolCallRequestEvent):
            requested += [c.name for c in m.content]
        if isinstance(m, ToolCallExecutionEvent):
            for r in m.content:
                assert not r.is_error, r
                calls.append((r.name, json.loads(r.content)))
    assert requested == ["vault_http_request", "vault_totp"], requested
    assert [n for n, _ in calls] == requested
    http, code = calls[0][1], calls[1][1]

    # The API's answer, redacted: authenticated, but no key in the body or the headers.
    assert http["name"] == CRED and http["status"] == 200, http
    assert '"authenticated": true' in http["body"] and "ACME Corp" in http["body"], http["body"]
    assert "[REDACTED]" in http["body"], http["body"]
    assert http["headers"].get("x-echo-api-key") == "[REDACTED]", http["headers"]
    # The key in the body, its base64 in the body, the key in the echo header.
    assert http["redactions"] == 3, http
    assert not leaks(json.dumps(http)), leaks(json.dumps(http))

    # The TOTP code the model saw is the RFC 6238 code of the seed (allowing a window either side).
    assert code["name"] == TOTP_CRED and code["digits"] == 6 and code["period"] == 30, code
    valid = {totp(seed, t) for t in (started - 30, started, finished, finished + 30)}
    assert code["code"] in valid, (code, valid)
    assert 0 < code["seconds_remaining"] <= 30, code

    # What the model was given, call by call: the tool results it read are the ones above.
    assert len(model.inputs) == 3, len(model.inputs)
    shown = [last_result(model.inputs[1]["messages"]), last_result(model.inputs[2]["messages"])]
    assert shown == [http, code], shown
    assert {t["name"] for t in model.inputs[0]["tools"]} >= {"vault_http_request", "vault_totp"}
    final = [m for m in result.messages if getattr(m, "source", None) == "crm_agent" and m.type == "TextMessage"]
    assert len(final) == 1 and code["code"] in final[0].content, final

    # The secrets are in NONE of the texts the model (or the user) could see.
    seen_by_model: list[tuple[str, str]] = []
    for i, given in enumerate(model.inputs):
        for j, m in enumerate(given["messages"]):
            seen_by_model.append((f"create() #{i} message {j} ({type(m).__name__})", as_text(m)))
        seen_by_model.append((f"create() #{i} tools and options", as_text({k: v for k, v in given.items() if k != "messages"})))
    for j, m in enumerate(result.messages):
        # Chat messages are given to models as to_model_text(); events (tool calls) render as to_text().
        rendered = m.to_model_text() if hasattr(m, "to_model_text") else m.to_text()
        seen_by_model.append((f"TaskResult.messages[{j}] ({type(m).__name__})", as_text(m) + "\n" + rendered))
    seen_by_model += [(f"user proxy prompt {i}", p) for i, p in enumerate(user_saw)]
    seen_by_model.append(("the final answer", as_text(result)))
    assert len(seen_by_model) > 10
    leaked = {where: leaks(text) for where, text in seen_by_model if leaks(text)}
    assert not leaked, f"secrets visible to the model: {leaked}"
    # (The check itself works: the API key is in what the API received.)
    assert leaks(json.dumps(api_seen)) == ["the API key"]

    # The uses are audited, as this identity, without the secrets.
    rows = loft.rest("GET", f"/v0/audit?identity={agent.id}&action=vault.&limit=100", loft.admin_key)["items"]
    by_action: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_action.setdefault(r["action"], []).append(r)
    assert [r["target"] for r in by_action.get("vault.store", [])] == [TOTP_CRED, CRED], rows  # newest first
    (h,) = by_action.get("vault.http", [None])
    assert h is not None and h["outcome"] == "ok" and h["target"] == CRED, rows
    assert h["details"]["host"] == host and h["details"]["method"] == "GET", h
    assert h["details"]["status"] == 200 and h["details"]["redactions"] == 3, h
    (t,) = by_action.get("vault.totp", [None])
    assert t is not None and t["outcome"] == "ok" and t["target"] == TOTP_CRED, rows
    assert all(r["actor_identity_id"] == agent.id for r in rows), rows
    assert not {"vault.get", "vault.reveal"} & set(by_action), "nothing was revealed"
    assert not leaks(json.dumps(rows)), leaks(json.dumps(rows))
    everything = audit_export(loft)
    assert f'"target":"{CRED}"' in everything.replace(" ", ""), "the export holds this test's rows"
    assert not leaks(everything), leaks(everything)
    # Nor does the server's log hold them.
    assert not leaks(loft.stderr_path.read_text()), leaks(loft.stderr_path.read_text())
