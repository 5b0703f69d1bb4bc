// Starts an MCP stdio server (argv[2..]), sends initialize, notifications/initialized and
// tools/list, and prints one JSON line: ms from spawn to each answer, the tool count, and the
// peak RSS of the process (VmHWM, KiB) and its private dirty memory (Private_Dirty of
// /proc/PID/smaps_rollup, KiB: heap, stacks and written pages, which no other process can
// share; clean pages of the executable are shared by every process running the same file, so
// a second agent's server adds about this much), read from /proc before its stdin is closed.
// Used by scripts/bench_mcp.sh; no dependency beyond Node itself.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

const [cmd, ...args] = process.argv.slice(2);
const started = process.hrtime.bigint();
const ms = () => Number(process.hrtime.bigint() - started) / 1e6;
const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "inherit"] });
let buf = "";
const waiting = new Map();
child.stdout.setEncoding("utf8");
child.stdout.on("data", (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    const msg = JSON.parse(line);
    if (msg.id !== undefined && waiting.has(msg.id)) {
      waiting.get(msg.id)(msg);
      waiting.delete(msg.id);
    }
  }
});
const request = (id, method, params) =>
  new Promise((resolve, reject) => {
    waiting.set(id, resolve);
    child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
    setTimeout(() => reject(new Error(`${cmd}: no answer to ${method} in 10 s`)), 10000).unref();
  });
const peak = () => {
  const m = readFileSync(`/proc/${child.pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) : null;
};
const privateKib = () => {
  const t = readFileSync(`/proc/${child.pid}/smaps_rollup`, "utf8");
  const field = (name) => Number((t.match(new RegExp(`${name}:\\s+(\\d+) kB`)) || [0, 0])[1]);
  return field("Private_Dirty");
};
const init = await request(1, "initialize", {
  protocolVersion: "2025-06-18",
  capabilities: {},
  clientInfo: { name: "bench", version: "1" },
});
if (init.error) throw new Error(`${cmd}: initialize failed: ${JSON.stringify(init.error)}`);
const init_ms = ms();
child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) + "\n");
const list = await request(2, "tools/list", {});
const list_ms = ms();
if (list.error) throw new Error(`${cmd}: tools/list failed: ${JSON.stringify(list.error)}`);
const peak_rss_kib = peak();
const private_dirty_kib = privateKib();
child.stdin.end();
await new Promise((r) => child.on("exit", r));
console.log(JSON.stringify({ init_ms, list_ms, tools: list.result.tools.length, peak_rss_kib, private_dirty_kib }));
