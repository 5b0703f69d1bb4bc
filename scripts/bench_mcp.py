#!/usr/bin/env python3
"""How fast and how small Loft's MCP door is: the figures behind docs/mcp.md.

    cargo build --release -p loft
    python3 scripts/bench_mcp.py                 # 30 starts, 500 calls per row
    python3 scripts/bench_mcp.py --runs 100 --calls 2000 --bin target/release/loft

It starts its own `loft serve` (a temporary SQLite data dir, 127.0.0.1, a free port), creates
two identities and measures, with raw JSON-RPC and nothing but the standard library:

  (a) `loft mcp` start to first response: spawn the process, write an `initialize` line to its
      stdin at once, time until the response line arrives (this includes the key check that
      `loft mcp` makes against the server before serving). p50/p99 over --runs starts.
  (b) `loft mcp` peak memory: VmHWM from /proc/PID/status after initialize, tools/list and a
      few tool calls, split into anonymous and file-backed pages; then --crew processes at once
      (one identity each), with their proportional (PSS) and private memory from
      /proc/PID/smaps_rollup: code pages of one binary are shared between agents. Linux only.
  (c) tool-call round trips of `mail_send` and `mail_list_messages`, over one stdio process and
      over POSTs to `/mcp` on one keep-alive HTTP connection. p50/p99 over --calls calls each,
      after a warm-up.

The reference is the issue's: a minimal Node MCP SDK stdio server takes about 0.5 s to its first
response and 65-70 MB per agent; the targets are a start at least 10x faster and at most a fifth
of the memory. Only 127.0.0.1 is contacted; every wait is bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_START_S = 0.5
REFERENCE_RSS_MB = (65, 70)
PROTOCOL = "2025-06-18"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def fail(msg: str) -> None:
    sys.exit(f"bench_mcp: {msg}")


# ----- the server ------------------------------------------------------------------------------


class Server:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="loft-bench-mcp-"))
        self.admin_key = "bench-admin-" + secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_")}
        env.update(LOFT_ADMIN_KEY=self.admin_key, LOFT_LOG="warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", str(self.dir / "data"), "--http", "127.0.0.1:0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(self.dir / "serve.stderr", "wb"),  # noqa: SIM115
        )
        assert self.proc.stdout is not None
        reader = LineReader(self.proc.stdout)
        self.url = ""
        deadline = time.monotonic() + 30
        while not self.url and time.monotonic() < deadline:
            line = reader.readline(deadline - time.monotonic())
            if line is None:
                break
            m = re.search(rb"HTTP API listening on (http://\S+)", line)
            if m:
                self.url = m.group(1).decode().rstrip("/")
        if not self.url:
            self.stop()
            fail(f"loft serve did not start; see {self.dir / 'serve.stderr'}")
        self._drain = reader  # keep a reference; the server prints little after start

    def rest(self, method: str, path: str, key: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {key}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())

    def identity(self, name: str) -> dict:
        return self.rest("POST", "/v0/identities", self.admin_key, {"name": name, "oversight_mode": "autonomous"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class LineReader:
    """Lines from a pipe, with a deadline on each."""

    def __init__(self, pipe) -> None:  # type: ignore[no-untyped-def]
        self.fd = pipe.fileno()
        os.set_blocking(self.fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)
        self.buf = b""

    def readline(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


# ----- MCP over stdio --------------------------------------------------------------------------


def initialize_request(id_: int = 0) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
    }


class StdioMcp:
    def __init__(self, binary: str, url: str, key: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_")}
        env.update(LOFT_URL=url, LOFT_API_KEY=key)
        self.proc = subprocess.Popen(
            [binary, "mcp"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        assert self.proc.stdout is not None
        self.reader = LineReader(self.proc.stdout)
        self.next_id = 1

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def receive(self, id_: int, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            line = self.reader.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                fail(f"no answer to request {id_} from `loft mcp` within {timeout}s")
            msg = json.loads(line)
            if msg.get("id") == id_:
                if "error" in msg:
                    fail(f"`loft mcp` answered request {id_} with an error: {msg['error']}")
                return msg["result"]

    def request(self, method: str, params: dict | None = None) -> dict:
        id_ = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params else {})})
        return self.receive(id_)

    def handshake(self) -> None:
        self.send(initialize_request(0))
        self.receive(0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str, arguments: dict) -> dict:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            fail(f"{tool} failed: {result['content'][0]['text']}")
        return result

    def memory(self) -> dict[str, int]:
        return memory_of(self.proc.pid)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ----- MCP over HTTP ---------------------------------------------------------------------------


class HttpMcp:
    """POSTs to /mcp on one keep-alive connection, as a 2025-era client does."""

    def __init__(self, url: str, key: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.path = "/mcp"
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        self.next_id = 1

    def post(self, message: dict) -> dict | None:
        self.conn.request("POST", self.path, body=json.dumps(message), headers=self.headers)
        res = self.conn.getresponse()
        body = res.read()
        if res.status == 202:
            return None
        if res.status != 200:
            fail(f"POST /mcp: HTTP {res.status}: {body[:300]!r}")
        if res.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(body)
        for line in body.splitlines():  # an SSE stream that ends after the response
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data:
                    msg = json.loads(data)
                    if msg.get("id") == message.get("id"):
                        return msg
        fail(f"no JSON-RPC answer in the /mcp response: {body[:300]!r}")
        return None

    def handshake(self) -> None:
        init = self.post(initialize_request(0))
        assert init is not None
        self.headers["MCP-Protocol-Version"] = init["result"]["protocolVersion"]
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str, arguments: dict) -> dict:
        id_ = self.next_id
        self.next_id += 1
        msg = self.post(
            {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        )
        assert msg is not None
        if "error" in msg or msg["result"].get("isError"):
            fail(f"{tool} over HTTP failed: {msg}")
        return msg["result"]


# ----- the measurements ------------------------------------------------------------------------


def measure_start(binary: str, url: str, key: str, runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_")}
    env.update(LOFT_URL=url, LOFT_API_KEY=key)
    line = json.dumps(initialize_request(0)).encode() + b"\n"
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [binary, "mcp"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(line)
        answer = LineReader(p.stdout).readline(10)
        elapsed = time.perf_counter() - t0
        if answer is None or json.loads(answer).get("id") != 0:
            p.kill()
            fail(f"`loft mcp` gave no initialize response: {answer!r}")
        times.append(elapsed)
        p.stdin.close()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    return times


def measure_memory(binary: str, url: str, key: str, to: str) -> dict[str, int]:
    s = StdioMcp(binary, url, key)
    try:
        s.handshake()
        s.request("tools/list")
        s.call("identity_whoami", {})
        sent = s.call("mail_send", {"to": [to], "subject": "memory", "text": "x" * 2000})
        s.call("mail_list_messages", {"folder": "sent"})
        s.call("mail_get_message", {"message_id": sent["structuredContent"]["message_id"]})
        s.call("mail_list_threads", {})
        s.call("mail_wait", {"timeout_seconds": 0})
        return s.memory()
    finally:
        s.close()


def measure_calls(client: StdioMcp | HttpMcp, to: str, calls: int, warmup: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    cases = {
        "mail_send": lambda i: {"to": [to], "subject": f"bench {i}", "text": "A short benchmark message."},
        "mail_list_messages": lambda i: {"folder": "sent", "limit": 20},
    }
    for tool, args in cases.items():
        for i in range(warmup):
            client.call(tool, args(i))
        times = []
        for i in range(calls):
            a = args(i)
            t0 = time.perf_counter()
            client.call(tool, a)
            times.append(time.perf_counter() - t0)
        out[tool] = times
    return out


def memory_of(pid: int) -> dict[str, int]:
    """kB: VmHWM, VmRSS, RssAnon, RssFile (status) and Pss, Private (smaps_rollup, if readable)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        fields = {}
        for line in rollup.read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            if value.strip():
                fields[key] = int(value.split()[0])
        out["Pss"] = fields.get("Pss", 0)
        out["Private"] = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return out


def measure_crew(binary: str, server: Server, size: int) -> list[dict[str, int]]:
    """`size` agents at once, each its own identity and `loft mcp`, after a few calls each."""
    agents = [server.identity(f"crew-{i}") for i in range(size)]
    procs = []
    try:
        for agent in agents:
            p = StdioMcp(binary, server.url, agent["api_key"])
            procs.append(p)
            p.handshake()
            p.request("tools/list")
        for i, p in enumerate(procs):
            p.call("mail_send", {"to": [agents[(i + 1) % size]["address"]], "subject": "hello", "text": "crew"})
            p.call("mail_wait", {"timeout_seconds": 0})
            p.call("mail_list_messages", {})
        return [p.memory() for p in procs]
    finally:
        for p in procs:
            p.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark Loft's MCP door (stdio and HTTP).")
    parser.add_argument("--bin", default=str(REPO / "target" / "release" / "loft"), help="the loft binary")
    parser.add_argument("--runs", type=int, default=30, help="`loft mcp` starts to time (default 30)")
    parser.add_argument("--calls", type=int, default=500, help="tool calls per row (default 500)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls before each row (default 20)")
    parser.add_argument("--crew", type=int, default=8, help="`loft mcp` processes at once for the crew row (default 8)")
    args = parser.parse_args()
    if not (
        1 <= args.runs <= 10_000 and 1 <= args.calls <= 100_000 and 0 <= args.warmup <= 10_000 and 1 <= args.crew <= 200
    ):
        fail("--runs, --calls, --warmup and --crew must be reasonable positive numbers")
    if not os.access(args.bin, os.X_OK):
        fail(f"no binary at {args.bin}: run `cargo build --release -p loft` first")
    if not Path("/proc/self/status").exists():
        fail("needs Linux (/proc) for the memory figures")

    version = subprocess.run([args.bin, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    server = Server(args.bin)
    try:
        a = server.identity("bench-sender")
        b = server.identity("bench-recipient")
        print(f"{version} at {server.url}; measuring...", file=sys.stderr)

        start = measure_start(args.bin, server.url, a["api_key"], args.runs)
        mem = measure_memory(args.bin, server.url, a["api_key"], b["address"])
        crew = measure_crew(args.bin, server, args.crew)

        stdio = StdioMcp(args.bin, server.url, a["api_key"])
        try:
            stdio.handshake()
            stdio_calls = measure_calls(stdio, b["address"], args.calls, args.warmup)
        finally:
            stdio.close()
        http = HttpMcp(server.url, a["api_key"])
        http.handshake()
        http_calls = measure_calls(http, b["address"], args.calls, args.warmup)
        http.conn.close()
        serve_mem = memory_of(server.proc.pid)
    finally:
        server.stop()

    ms = 1000.0
    rows = [
        (
            "`loft mcp` start to first response",
            len(start),
            percentile(start, 50) * ms,
            percentile(start, 99) * ms,
            "ms",
        ),
        (
            "mail_send round trip, stdio",
            args.calls,
            percentile(stdio_calls["mail_send"], 50) * ms,
            percentile(stdio_calls["mail_send"], 99) * ms,
            "ms",
        ),
        (
            "mail_list_messages round trip, stdio",
            args.calls,
            percentile(stdio_calls["mail_list_messages"], 50) * ms,
            percentile(stdio_calls["mail_list_messages"], 99) * ms,
            "ms",
        ),
        (
            "mail_send round trip, HTTP /mcp",
            args.calls,
            percentile(http_calls["mail_send"], 50) * ms,
            percentile(http_calls["mail_send"], 99) * ms,
            "ms",
        ),
        (
            "mail_list_messages round trip, HTTP /mcp",
            args.calls,
            percentile(http_calls["mail_list_messages"], 50) * ms,
            percentile(http_calls["mail_list_messages"], 99) * ms,
            "ms",
        ),
    ]
    hwm_mb = mem["VmHWM"] / 1024
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    print(f"\nLoft MCP benchmark: {version}, SQLite, {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}\n")
    print(f"| {'measure':<42} | {'n':>5} | {'p50':>9} | {'p99/max':>9} |")
    print(f"|{'-' * 44}|{'-' * 7}|{'-' * 11}|{'-' * 11}|")
    for name, n, p50, p99, unit in rows:
        print(f"| {name:<42} | {n:>5} | {p50:>6.2f} {unit} | {p99:>6.2f} {unit} |")

    def mb(kb: float) -> str:
        return f"{kb / 1024:>6.1f} MB"

    def row(name: str, n: int, value: str, p99: str = "") -> None:
        print(f"| {name:<42} | {n:>5} | {value:>9} | {p99:>9} |")

    row("`loft mcp` peak RSS (VmHWM)", 1, mb(mem["VmHWM"]))
    row("  of which anonymous (heap, stacks)", 1, mb(mem["RssAnon"]))
    row("  of which file-backed (shared code pages)", 1, mb(mem["RssFile"]))
    if "Pss" in mem:
        row("`loft mcp` private memory (USS)", 1, mb(mem["Private"]))
        per = [m["Pss"] for m in crew]
        row(f"PSS per agent, {args.crew} agents at once", args.crew, mb(sum(per) / len(per)), mb(max(per)))
        priv = [m["Private"] for m in crew]
        row(f"private memory per agent, {args.crew} at once", args.crew, mb(sum(priv) / len(priv)), mb(max(priv)))
    row("`loft serve` peak RSS, whole run (VmHWM)", 1, mb(serve_mem["VmHWM"]))

    start_p50 = percentile(start, 50)
    lo, hi = REFERENCE_RSS_MB
    print(
        f"\nReference (the issue): a minimal Node MCP SDK stdio server, ~{REFERENCE_START_S * 1000:.0f} ms to first "
        f"response, {lo}-{hi} MB per agent."
    )
    print(
        f"Start: {REFERENCE_START_S / start_p50:.0f}x faster at p50 (target >= 10x: "
        f"{'met' if REFERENCE_START_S / start_p50 >= 10 else 'NOT met'}). "
        f"Memory (peak RSS): 1/{lo / hwm_mb:.1f} of {lo} MB (target <= 1/5: "
        f"{'met' if hwm_mb <= lo / 5 else 'NOT met'})."
    )
    if "Pss" in mem:
        per_pss = sum(m["Pss"] for m in crew) / len(crew) / 1024
        print(
            f"In a crew of {args.crew}, code pages are shared: each agent costs {per_pss:.1f} MB PSS, "
            f"1/{lo / per_pss:.0f} of {lo} MB."
        )
    print("Over HTTP an agent costs no process at all: one `loft serve` serves the whole crew.")
    rel_bin = os.path.relpath(args.bin, REPO) if args.bin.startswith(str(REPO)) else args.bin
    print(
        f"\nReproduce: cargo build --release -p loft && python3 scripts/bench_mcp.py --bin {rel_bin} "
        f"--runs {args.runs} --calls {args.calls} --warmup {args.warmup} --crew {args.crew}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
