"""The official Python MCP client, 1.x or 2.x, behind one small interface for the tests.

The two major versions differ: 1.x has `ClientSession` over the `stdio_client` and
`streamable_http_client(url, http_client=httpx.AsyncClient)` transports (the older
`streamablehttp_client(url, headers=...)`, which AutoGen and CrewAI use, is deprecated) and always
does the `initialize` handshake; 2.x removed `streamablehttp_client`, keeps
`streamable_http_client(url, http_client=httpx2.AsyncClient)` (httpx2, not httpx),
and its high-level `Client` either probes `server/discover` and speaks the stateless 2026-07-28
protocol (mode "auto") or does the 2025-era handshake (mode "legacy").

Results are returned as wire-format dicts (camelCase, as on the wire) so that the assertions
read the same for both versions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

MCP_VERSION = version("mcp")
MCP_MAJOR = int(MCP_VERSION.split(".")[0])

# What each installed SDK can speak: 1.x only the handshake; 2.x both.
PROTOCOLS = ["legacy"] if MCP_MAJOR < 2 else ["legacy", "auto"]

READ_TIMEOUT = 60.0


def wire(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass
class Session:
    """An open MCP connection as one identity."""

    raw: Any
    protocol_version: str
    server_info: dict[str, Any]
    instructions: str | None
    transport: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(20):  # bounded: Loft has one page
            if MCP_MAJOR < 2:
                from mcp.types import PaginatedRequestParams

                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self.raw.list_tools(params=params)
                cursor = page.nextCursor
            else:
                page = await self.raw.list_tools(cursor=cursor, cache_mode="refresh")
                cursor = page.next_cursor
            tools.extend(wire(t) for t in page.tools)
            if not cursor:
                return tools
        raise AssertionError("tools/list paginates without end")

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A tool call; returns the CallToolResult as a wire dict."""
        self.calls.append((name, arguments or {}))
        result = await self.raw.call_tool(name, arguments or {})
        return wire(result)


def tool_json(result: dict[str, Any]) -> Any:
    """The JSON in a result's one text block."""
    content = result.get("content")
    assert isinstance(content, list) and len(content) == 1, f"expected one content block: {result}"
    assert content[0].get("type") == "text", f"expected a text block: {result}"
    return json.loads(content[0]["text"])


def ok(result: dict[str, Any]) -> dict[str, Any]:
    """Checks a successful result (one JSON text block, the same value as structuredContent) and
    returns that value."""
    assert not result.get("isError"), f"the call failed: {result}"
    value = tool_json(result)
    assert "structuredContent" in result, f"no structuredContent: {result}"
    assert result["structuredContent"] == value, f"structuredContent differs from the text block: {result}"
    return value


def error(result: dict[str, Any]) -> dict[str, Any]:
    """Checks a failed result (isError, one JSON text block {"error": {code, message, hint}}) and
    returns the error object."""
    assert result.get("isError") is True, f"expected isError: {result}"
    body = tool_json(result)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert "hint" in err, body
    return err


@contextlib.asynccontextmanager
async def connect_stdio(
    loft_bin: str, env: dict[str, str], *, protocol: str = "legacy", errlog: Path | None = None
) -> AsyncIterator[Session]:
    """Launches `loft mcp` with exactly `env` added (LOFT_URL, LOFT_API_KEY) and connects."""
    errfile = open(errlog, "w") if errlog else None  # noqa: SIM115
    try:
        if MCP_MAJOR < 2:
            from mcp import ClientSession, StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=loft_bin, args=["mcp"], env=env)
            kwargs = {"errlog": errfile} if errfile else {}
            async with stdio_client(params, **kwargs) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=READ_TIMEOUT)) as s:
                    init = await s.initialize()
                    yield Session(s, init.protocolVersion, wire(init.serverInfo), init.instructions, "stdio")
        else:
            from mcp import Client, StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=loft_bin, args=["mcp"], env=env)
            transport = stdio_client(params, errlog=errfile) if errfile else stdio_client(params)
            async with Client(transport, mode=protocol, read_timeout_seconds=READ_TIMEOUT) as c:
                yield Session(
                    c,
                    c.protocol_version,
                    wire(c.server_info) if c.server_info else {},
                    c.instructions,
                    "stdio",
                )
    finally:
        if errfile:
            errfile.close()


@contextlib.asynccontextmanager
async def connect_http(url: str, key: str, *, protocol: str = "legacy") -> AsyncIterator[Session]:
    """Connects to `url` (the server's /mcp) with `Authorization: Bearer key`."""
    headers = {"Authorization": f"Bearer {key}"}
    if MCP_MAJOR < 2:
        import httpx
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx.Timeout(30.0, read=READ_TIMEOUT + 30)
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, _session_id):
                async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=READ_TIMEOUT)) as s:
                    init = await s.initialize()
                    yield Session(s, init.protocolVersion, wire(init.serverInfo), init.instructions, "http")
    else:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(30.0, read=READ_TIMEOUT + 30)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=protocol, read_timeout_seconds=READ_TIMEOUT) as c:
                yield Session(
                    c,
                    c.protocol_version,
                    wire(c.server_info) if c.server_info else {},
                    c.instructions,
                    "http",
                )
