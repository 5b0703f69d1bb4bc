"""CrewAI 1.15 (.venv/mcp1): one `MCPServerAdapter` per agent, each with its own Loft key, over stdio
(`StdioServerParameters` launching `loft mcp`) and over streamable HTTP (a dict with `url`,
`transport: "streamable-http"` and the bearer header); then a small `Crew` whose agents hand work
over by mail, driven by a scripted LLM (a `BaseLLM` subclass: no network).

CrewAI can cache tool results (`Crew(cache=True)`, or an agent's `cache=True`): a repeated
`mail_list_messages` with the same arguments would then return the old inbox. Loft's tools read
live state, so each tool gets a `cache_function` that never allows caching; the crew test checks
that a second, identical inbox listing sees new mail, and (as a control) that without it CrewAI's
cache does serve a stale inbox.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from crewai import Agent, Crew, Process, Task
from crewai.llms.base_llm import BaseLLM
from crewai.tools import BaseTool
from crewai_tools import MCPServerAdapter
from mcp import StdioServerParameters
from pydantic import PrivateAttr

from conftest import LOFT_BIN, Identity, LoftServer

EXPECTED_TOOLS = {
    "identity_whoami",
    "mail_send",
    "mail_reply",
    "mail_list_messages",
    "mail_get_message",
    "mail_list_threads",
    "mail_get_thread",
    "mail_wait",
    "mail_update_labels",
}


def server_params(loft: LoftServer, who: Identity, transport: str) -> StdioServerParameters | dict[str, Any]:
    if transport == "stdio":
        return StdioServerParameters(command=LOFT_BIN, args=["mcp"], env=loft.stdio_env(who))
    return {
        "url": loft.mcp_url,
        "transport": "streamable-http",
        "headers": {"Authorization": f"Bearer {who.api_key}"},
    }


def never_cache(_arguments: Any = None, _result: Any = None) -> bool:
    """Loft's tools read and change live mailboxes: a cached result would be stale."""
    return False


@contextmanager
def loft_tools(loft: LoftServer, who: Identity, transport: str, *, cache: bool = False) -> Iterator[list[BaseTool]]:
    """The MCP tools of one identity, as CrewAI tools (uncacheable unless `cache`)."""
    with MCPServerAdapter(server_params(loft, who, transport), connect_timeout=30) as tools:
        tools = list(tools)
        if not cache:
            for t in tools:
                t.cache_function = never_cache
        yield tools


def observation(messages: list[dict[str, Any]]) -> Any:
    """The JSON a tool returned: CrewAI appends it as `Observation: ...` to the model's last turn."""
    for m in reversed(messages):
        content = str(m.get("content", ""))
        at = content.find("\nObservation:")  # CrewAI may append a reminder of the format after it
        if m.get("role") == "assistant" and at >= 0:
            rest = content[at + len("\nObservation:") :].lstrip()
            try:
                value, _ = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                raise AssertionError(f"the observation is not JSON: {rest[:1000]!r}") from None
            return value
    raise AssertionError(f"no observation in the prompt: {messages[-3:]!r}")


def run_tool(tools: list[BaseTool], name: str, **kwargs: Any) -> Any:
    (tool,) = [t for t in tools if t.name == name]
    return json.loads(tool.run(**kwargs))


# ----- the adapter ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_adapter_lists_and_calls_the_tools(loft, identities, transport) -> None:  # type: ignore[no-untyped-def]
    alice, bob = identities("alice"), identities("bob")
    reader = identities("reader", scopes=["mail:read"])
    with loft_tools(loft, alice, transport) as a, loft_tools(loft, bob, transport) as b:
        assert EXPECTED_TOOLS <= {t.name for t in a}
        for t in a:
            assert re.fullmatch(r"[a-z0-9_]+", t.name)
            assert "Tool Description:" in t.description and len(t.description) > 100, t.description
            schema = t.args_schema.model_json_schema()
            for field, prop in schema.get("properties", {}).items():
                assert prop.get("description"), f"{t.name}.{field}"
        send_schema = next(t for t in a if t.name == "mail_send").args_schema.model_json_schema()
        assert set(send_schema["required"]) == {"to", "subject"}

        assert run_tool(a, "identity_whoami")["address"] == alice.address
        # CrewAI's ReAct prompt lists every argument as required, so models send the optional
        # ones as null or empty: Loft takes them as absent.
        nulls = run_tool(a, "mail_send", to=[bob.address], subject="Nulls", text="x", cc=None, bcc=[], html=None)
        assert nulls["delivery"][0]["status"] == "delivered", nulls
        run_tool(a, "mail_list_messages", folder=None, unread_only=None, label=None, limit=None, page_token=None)
        sent = run_tool(a, "mail_send", to=[bob.address], subject="Handover", text="Please take over ticket 42.")
        assert sent["delivery"][0]["status"] == "delivered"
        m, _nulls = run_tool(b, "mail_list_messages", unread_only=True)["messages"]
        assert m["from"] == alice.address and m["subject"] == "Handover"
        assert m["message_id"] in [w["message_id"] for w in run_tool(b, "mail_wait", timeout_seconds=0)["messages"]]
        full = run_tool(b, "mail_get_message", message_id=m["message_id"])
        assert "<<<BEGIN MAIL BODY" in full["body"] and "ticket 42" in full["body"]
        reply = run_tool(b, "mail_reply", message_id=m["message_id"], text="Taken.")
        assert reply["to"] == [alice.address]
        thread = run_tool(b, "mail_get_thread", thread_id=m["thread_id"])
        assert [x["from"] for x in thread["messages"]] == [alice.address, bob.address]
        assert m["thread_id"] in [t["thread_id"] for t in run_tool(b, "mail_list_threads")["threads"]]
        assert run_tool(b, "mail_update_labels", message_id=m["message_id"], add_labels=["done"])["labels"] == ["done"]
        # A failed call is the error JSON, for the model to read.
        err = run_tool(a, "mail_get_message", message_id=m["message_id"])  # Bob's copy: not Alice's
        assert err["error"]["code"] == "not_found", err

    with loft_tools(loft, reader, transport) as r:
        names = {t.name for t in r}
        assert "mail_send" not in names and "mail_reply" not in names and "mail_list_messages" in names


# ----- a crew -----------------------------------------------------------------------------------

Step = str | Callable[[list[dict[str, Any]]], str]


class ScriptedLLM(BaseLLM):
    """Answers CrewAI's ReAct prompts from a script. A step that is a function gets the messages
    the model is shown (with the tools' observations), as a model would."""

    _steps: list[Step] = PrivateAttr(default_factory=list)
    _prompts: list[list[dict[str, Any]]] = PrivateAttr(default_factory=list)

    def __init__(self, steps: list[Step], **kwargs: Any) -> None:
        super().__init__(model="scripted", **kwargs)
        self._steps = list(steps)

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
             from_task: Any = None, from_agent: Any = None, response_model: Any = None) -> str:  # fmt: skip
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        self._prompts.append(messages)
        assert self._steps, f"the script ran out; the prompt ends with: {messages[-2:]!r}"
        step = self._steps.pop(0)
        return step(messages) if callable(step) else step

    def supports_function_calling(self) -> bool:
        return False  # the ReAct text protocol: Action / Action Input / Observation

    def get_context_window_size(self) -> int:
        return 128_000

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        text = messages if isinstance(messages, str) else "".join(str(m.get("content", "")) for m in messages)
        return len(text) // 4  # a script has no tokenizer; this is what CrewAI would assume

    @property
    def remaining(self) -> int:
        return len(self._steps)


def act(tool: str, **arguments: Any) -> str:
    return f"Thought: I use {tool}.\nAction: {tool}\nAction Input: {json.dumps(arguments)}"


def final(answer: str) -> str:
    return f"Thought: I now know the final answer\nFinal Answer: {answer}"


@pytest.mark.parametrize(
    ("transport", "crew_cache", "tool_cache"),
    [
        ("stdio", False, False),
        ("http", False, False),
        ("http", True, False),  # the crew caches, Loft's tools refuse to be cached
        ("stdio", True, True),  # control: CrewAI's cache on Loft's tools serves a stale inbox
    ],
    ids=["stdio", "http", "http-crew-cache-on", "control-stale-cache"],
)
def test_a_crew_hands_work_over_by_mail(loft, identities, transport, crew_cache, tool_cache) -> None:  # type: ignore[no-untyped-def]
    researcher, writer = identities("researcher"), identities("writer")
    seen: dict[str, Any] = {}

    def remember(key: str, then: Callable[[Any], str]) -> Callable[[list[dict[str, Any]]], str]:
        def step(messages: list[dict[str, Any]]) -> str:
            seen[key] = observation(messages)
            return then(seen[key])

        return step

    researcher_llm = ScriptedLLM(
        [
            act("mail_list_messages"),  # empty inbox, before the writer replies
            remember(
                "inbox_before",
                lambda _: act(
                    "mail_send",
                    to=[writer.address],
                    subject="Brief: pricing page copy",
                    text="Please draft three sentences for the pricing page.",
                ),
            ),
            remember("sent", lambda sent: final(f"Brief sent in thread {sent['thread_id']}.")),
            act("mail_list_messages"),  # the very same call again, after the writer replied
            remember("inbox_after", lambda inbox: final(f"Inbox holds {len(inbox['messages'])} message(s).")),
        ]
    )
    writer_llm = ScriptedLLM(
        [
            act("mail_list_messages", unread_only=True),
            remember(
                "writer_inbox", lambda inbox: act("mail_get_message", message_id=inbox["messages"][0]["message_id"])
            ),
            remember(
                "brief",
                lambda brief: act(
                    "mail_reply",
                    message_id=brief["message_id"],
                    text="Draft: Simple plans. No seat tax. Cancel any time.",
                ),
            ),
            remember("reply", lambda reply: final(f"Replied with {reply['message_id']}.")),
        ]
    )

    with (
        loft_tools(loft, researcher, transport, cache=tool_cache) as r_tools,
        loft_tools(loft, writer, transport, cache=tool_cache) as w_tools,
    ):
        researcher_agent = Agent(
            role="Researcher",
            goal="Brief the writer by mail and collect the draft",
            backstory="You have your own Loft mailbox.",
            llm=researcher_llm,
            tools=r_tools,
            allow_delegation=False,
            max_iter=5,
            verbose=False,
        )
        writer_agent = Agent(
            role="Writer",
            goal="Answer briefs from your inbox",
            backstory="You have your own Loft mailbox.",
            llm=writer_llm,
            tools=w_tools,
            allow_delegation=False,
            max_iter=5,
            verbose=False,
        )
        tasks = [
            Task(description="Mail the brief to the writer.", expected_output="The thread id.", agent=researcher_agent),
            Task(description="Answer the brief in your inbox.", expected_output="The reply's id.", agent=writer_agent),
            Task(
                description="Check your inbox for the draft.", expected_output="What arrived.", agent=researcher_agent
            ),
        ]
        crew = Crew(
            agents=[researcher_agent, writer_agent],
            tasks=tasks,
            process=Process.sequential,
            cache=crew_cache,
            verbose=False,
        )
        out = crew.kickoff()

    assert researcher_llm.remaining == 0 and writer_llm.remaining == 0
    assert seen["inbox_before"]["messages"] == []
    brief = seen["writer_inbox"]["messages"][0]
    assert brief["from"] == researcher.address and brief["thread_id"]
    assert seen["reply"]["to"] == [researcher.address]

    after = seen["inbox_after"]["messages"]
    if tool_cache and crew_cache:
        # The control: CrewAI served the first (empty) listing again.
        assert after == [], "CrewAI's tool cache no longer serves repeated calls: update the docs and this test"
        return
    (reply,) = after
    assert reply["from"] == writer.address and reply["thread_id"] == seen["sent"]["thread_id"]
    assert "Inbox holds 1 message(s)." in str(out)

    inbox = loft.rest("GET", "/v0/messages", researcher.api_key)
    (got,) = inbox["items"]
    assert got["from"] == writer.address and got["thread_id"] == seen["sent"]["thread_id"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_gated_crew_waits_for_a_human_approval(loft, identities, transport) -> None:  # type: ignore[no-untyped-def]
    """The crew with the researcher in `gated_send` (the server's default for new identities):
    its brief is held; the writer's first `mail_wait` finds nothing; a human approves the brief
    with `loft approvals approve`; the writer's next `mail_wait` returns it; and the researcher's
    `mail_wait` reports the decision on its own mail."""
    researcher, writer = identities("researcher", mode="gated_send"), identities("writer")
    seen: dict[str, Any] = {}
    approved: list[str] = []

    def remember(key: str, then: Callable[[Any], str]) -> Callable[[list[dict[str, Any]]], str]:
        def step(messages: list[dict[str, Any]]) -> str:
            seen[key] = observation(messages)
            return then(seen[key])

        return step

    def approve_through_the_cli(_: Any) -> str:
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
        return act("mail_wait", timeout_seconds=10)

    researcher_llm = ScriptedLLM(
        [
            act(
                "mail_send",
                to=writer.address,  # one address as a string: the schema allows it, pydantic too
                subject="Brief: held until a human says yes",
                text="Please write 100 words on oversight.",
            ),
            remember("sent", lambda sent: final(f"Brief {sent['message_id']} is {sent['status']}.")),
            act("mail_wait", timeout_seconds=10),
            remember("decision", lambda w: final(f"Decision: {w['decisions'][0]['decision']}.")),
        ]
    )
    writer_llm = ScriptedLLM(
        [
            act("mail_wait", timeout_seconds=1),
            remember("first_wait", approve_through_the_cli),
            remember("second_wait", lambda w: final(f"The brief arrived: {w['messages'][0]['subject']}")),
        ]
    )

    with (
        loft_tools(loft, researcher, transport) as r_tools,
        loft_tools(loft, writer, transport) as w_tools,
    ):
        assert not {t.name for t in r_tools if t.name.startswith("approvals_")}  # never offered to an agent
        researcher_agent = Agent(
            role="Researcher",
            goal="Brief the writer by mail",
            backstory="You have your own Loft mailbox; a human approves what you send.",
            llm=researcher_llm,
            tools=r_tools,
            allow_delegation=False,
            max_iter=5,
            verbose=False,
        )
        writer_agent = Agent(
            role="Writer",
            goal="Take briefs from your inbox",
            backstory="You have your own Loft mailbox.",
            llm=writer_llm,
            tools=w_tools,
            allow_delegation=False,
            max_iter=5,
            verbose=False,
        )
        tasks = [
            Task(description="Mail the brief to the writer.", expected_output="Its status.", agent=researcher_agent),
            Task(description="Wait for a brief.", expected_output="The brief's subject.", agent=writer_agent),
            Task(description="Wait for the reviewer's decision.", expected_output="It.", agent=researcher_agent),
        ]
        out = Crew(
            agents=[researcher_agent, writer_agent], tasks=tasks, process=Process.sequential, verbose=False
        ).kickoff()

    assert researcher_llm.remaining == 0 and writer_llm.remaining == 0
    sent = seen["sent"]
    assert sent["status"] == "pending_approval", sent
    assert "gated_send" in " ".join(sent["oversight"]["held_because"]), sent
    assert [d["status"] for d in sent["delivery"]] == ["held"]
    assert seen["first_wait"]["timed_out"] is True and seen["first_wait"]["messages"] == []
    (brief,) = seen["second_wait"]["messages"]
    assert brief["from"] == researcher.address and brief["subject"] == "Brief: held until a human says yes"
    (decision,) = seen["decision"]["decisions"]
    assert decision["decision"] == "approved" and decision["message_id"] == sent["message_id"], decision
    assert "Decision: approved." in str(out)
    (approval_id,) = approved
    decided = loft.rest("GET", f"/v0/approvals/{approval_id}", loft.admin_key)
    assert decided["status"] == "approved" and decided["decided_by"]["kind"] == "operator", decided
