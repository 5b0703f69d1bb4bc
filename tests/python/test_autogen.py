"""AutoGen 0.7.5 (.venv/mcp1): a researcher and a writer, each an `AssistantAgent` with its own Loft
identity and its own `McpWorkbench`, in a `RoundRobinGroupChat`. The researcher mails a brief, the
writer finds it in its own inbox and replies, the researcher reads the reply in the same thread.

The models are scripted (`ReplayChatCompletionClient`); a scripted turn may read the tool results
the model has been shown so far (as a real model would read a message id before replying).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import (
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)
from autogen_ext.models.replay import ReplayChatCompletionClient
from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams, StreamableHttpServerParams

from conftest import LOFT_BIN, Identity, LoftServer

Step = CreateResult | str | Callable[[Sequence[LLMMessage]], CreateResult | str]


class ScriptedModel(ReplayChatCompletionClient):
    """Replays `steps` in order; a step that is a function gets the messages the model is shown."""

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

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        i = self._current_index
        if i < len(self.chat_completions) and callable(self.chat_completions[i]):
            self.chat_completions[i] = self.chat_completions[i](messages)  # type: ignore[operator]
        return await super().create(messages, **kwargs)


def tool_call(name: str, **arguments: Any) -> CreateResult:
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=f"call_{uuid.uuid4().hex[:12]}", name=name, arguments=json.dumps(arguments))],
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


def server_params(loft: LoftServer, who: Identity, transport: str) -> StdioServerParams | StreamableHttpServerParams:
    if transport == "stdio":
        # The child does not inherit the parent's environment: pass LOFT_URL and LOFT_API_KEY.
        # read_timeout_seconds (default 5) must exceed the longest mail_wait.
        return StdioServerParams(command=LOFT_BIN, args=["mcp"], env=loft.stdio_env(who), read_timeout_seconds=30)
    return StreamableHttpServerParams(
        url=loft.mcp_url, headers={"Authorization": f"Bearer {who.api_key}"}, timeout=30, sse_read_timeout=60
    )


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_researcher_and_writer_work_through_their_mailboxes(loft, identities, transport) -> None:  # type: ignore[no-untyped-def]
    researcher, writer = identities("researcher"), identities("writer")

    researcher_model = ScriptedModel(
        [
            tool_call(
                "mail_send",
                to=[writer.address],
                subject="Brief: why each agent needs its own identity",
                text="Please write 200 words on per-agent identities. Sources: our design notes.",
            ),
            "Brief sent to the writer.",
            tool_call("mail_wait", timeout_seconds=5),
            lambda msgs: tool_call("mail_get_thread", thread_id=last_result(msgs)["messages"][0]["thread_id"]),
            "The writer's draft is in. TERMINATE",
        ]
    )
    writer_model = ScriptedModel(
        [
            tool_call("mail_list_messages", unread_only=True),
            lambda msgs: tool_call("mail_get_message", message_id=last_result(msgs)["messages"][0]["message_id"]),
            lambda msgs: tool_call(
                "mail_reply",
                message_id=last_result(msgs)["message_id"],
                text="Draft: one identity per agent means one key to revoke and one audit trail to read.",
            ),
            "Replied to the brief with a draft.",
        ]
    )

    async def go() -> Any:
        # The workbenches start and are used inside this one event loop, with the team.
        async with (
            McpWorkbench(server_params(loft, researcher, transport)) as researcher_tools,
            McpWorkbench(server_params(loft, writer, transport)) as writer_tools,
        ):
            listed = {t["name"] for t in await researcher_tools.list_tools()}
            assert {"mail_send", "mail_wait", "mail_get_thread"} <= listed, listed
            team = RoundRobinGroupChat(
                [
                    AssistantAgent(
                        "researcher",
                        model_client=researcher_model,
                        workbench=researcher_tools,
                        max_tool_iterations=3,
                        system_message="You research and brief the writer by mail.",
                    ),
                    AssistantAgent(
                        "writer",
                        model_client=writer_model,
                        workbench=writer_tools,
                        max_tool_iterations=4,
                        system_message="You write what your inbox asks for and reply by mail.",
                    ),
                ],
                termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(20),
            )
            return await team.run(task="Get a short draft on per-agent identities written.")

    result = asyncio.run(asyncio.wait_for(go(), 120))

    # Every scripted turn was used: the conversation went as planned.
    assert researcher_model._current_index == researcher_model.provided_message_count
    assert writer_model._current_index == writer_model.provided_message_count
    assert "TERMINATE" in (result.stop_reason or ""), result.stop_reason

    # What the tools returned, per agent, as the team saw it.
    calls: dict[str, list[tuple[str, dict[str, Any]]]] = {"researcher": [], "writer": []}
    pending: dict[str, str] = {}
    for m in result.messages:
        if isinstance(m, ToolCallRequestEvent):
            for c in m.content:
                pending[c.id] = c.name
        if isinstance(m, ToolCallExecutionEvent):
            for r in m.content:
                assert not r.is_error, r
                calls[m.source].append((r.name, json.loads(r.content)))
    assert [n for n, _ in calls["researcher"]] == ["mail_send", "mail_wait", "mail_get_thread"]
    assert [n for n, _ in calls["writer"]] == ["mail_list_messages", "mail_get_message", "mail_reply"]

    sent = calls["researcher"][0][1]
    brief_in_writer_inbox = calls["writer"][0][1]["messages"][0]
    assert brief_in_writer_inbox["from"] == researcher.address
    assert brief_in_writer_inbox["authentication"]["verdict"] == "internal_verified"
    waited = calls["researcher"][1][1]
    (reply,) = waited["messages"]
    assert reply["from"] == writer.address and reply["thread_id"] == sent["thread_id"], (reply, sent)
    assert reply["subject"].startswith("Re: Brief")
    thread = calls["researcher"][2][1]
    assert [m["from"] for m in thread["messages"]] == [researcher.address, writer.address]
    assert "one key to revoke" in thread["messages"][1]["body"]

    # The same, through the REST API.
    inbox = loft.rest("GET", "/v0/messages", researcher.api_key)
    (got,) = inbox["items"]
    assert got["from"] == writer.address and got["thread_id"] == sent["thread_id"], got
    rest_thread = loft.rest("GET", f"/v0/threads/{sent['thread_id']}", researcher.api_key)
    assert [m["from"] for m in rest_thread["messages"]] == [researcher.address, writer.address]
    writer_sent = loft.rest("GET", "/v0/messages?folder=sent", writer.api_key)
    assert [m["to"] for m in writer_sent["items"]] == [[researcher.address]]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_gated_send_waits_for_a_human_approval_through_the_cli(loft, identities, transport) -> None:  # type: ignore[no-untyped-def]
    """The crew with the researcher in `gated_send` (the server's default for new identities):
    its brief is held, the writer's first wait finds nothing, a human approves it with
    `loft approvals approve`, and the writer's next `mail_wait` returns it."""
    researcher, writer = identities("researcher", mode="gated_send"), identities("writer")
    approved: list[str] = []

    def approve_through_the_cli(_msgs: Sequence[LLMMessage]) -> CreateResult:
        # The human in the loop: finds the held brief and approves it with the CLI.
        pending = loft.rest("GET", "/v0/approvals?status=pending", loft.admin_key)
        (held,) = [a for a in pending["items"] if a["from"] == researcher.address]
        env = {**os.environ, "LOFT_URL": loft.url, "LOFT_ADMIN_KEY": loft.admin_key}
        env.pop("LOFT_API_KEY", None)
        out = subprocess.run(
            [LOFT_BIN, "approvals", "approve", held["id"]], env=env, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        approved.append(held["id"])
        return tool_call("mail_wait", timeout_seconds=10)

    researcher_model = ScriptedModel(
        [
            tool_call(
                "mail_send",
                to=writer.address,
                subject="Brief: held until a human says yes",
                text="Please write 100 words on oversight.",
            ),
            "Brief sent; it waits for a reviewer.",
        ]
    )
    writer_model = ScriptedModel(
        [
            tool_call("mail_wait", timeout_seconds=1),
            approve_through_the_cli,
            "The brief arrived. TERMINATE",
        ]
    )

    async def go() -> Any:
        async with (
            McpWorkbench(server_params(loft, researcher, transport)) as researcher_tools,
            McpWorkbench(server_params(loft, writer, transport)) as writer_tools,
        ):
            listed = {t["name"] for t in await researcher_tools.list_tools()}
            assert not {n for n in listed if n.startswith("approvals_")}, listed  # never offered to an agent
            team = RoundRobinGroupChat(
                [
                    AssistantAgent("researcher", model_client=researcher_model, workbench=researcher_tools),
                    AssistantAgent(
                        "writer", model_client=writer_model, workbench=writer_tools, max_tool_iterations=3
                    ),
                ],
                termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(12),
            )
            return await team.run(task="Brief the writer.")

    result = asyncio.run(asyncio.wait_for(go(), 120))
    assert "TERMINATE" in (result.stop_reason or ""), result.stop_reason
    results: dict[str, list[tuple[str, dict[str, Any]]]] = {"researcher": [], "writer": []}
    for m in result.messages:
        if isinstance(m, ToolCallExecutionEvent):
            for r in m.content:
                assert not r.is_error, r
                results[m.source].append((r.name, json.loads(r.content)))
    (send,) = results["researcher"]
    assert send[0] == "mail_send"
    assert send[1]["status"] == "pending_approval", send
    assert "gated_send" in " ".join(send[1]["oversight"]["held_because"]), send
    assert [d["status"] for d in send[1]["delivery"]] == ["held"]
    first_wait, second_wait = results["writer"]
    assert first_wait[1]["timed_out"] is True and first_wait[1]["messages"] == [], first_wait
    (brief,) = second_wait[1]["messages"]
    assert brief["from"] == researcher.address and brief["subject"] == "Brief: held until a human says yes"

    # The decision is recorded, names the operator, and the researcher's copy shows it sent.
    (approval_id,) = approved
    decided = loft.rest("GET", f"/v0/approvals/{approval_id}", loft.admin_key)
    assert decided["status"] == "approved" and decided["decided_by"]["kind"] == "operator", decided
    mine = loft.rest("GET", f"/v0/messages/{send[1]['message_id']}", researcher.api_key)
    assert mine["status"] == "sent" and mine["approval"]["status"] == "approved", mine
