#!/usr/bin/env bash
# `loft mcp` (stdio) against a minimal Node MCP server built with the official
# @modelcontextprotocol/sdk: peak RSS and time to the first response (issue 14).
#
# For each server, a driver (Node, scripts/mcp_stdio_probe.mjs) starts the process, sends
# `initialize`, then `notifications/initialized` and `tools/list`, and prints: the time from
# spawn to the initialize answer, the time to the tools/list answer, the number of tools, and
# the process's peak RSS (VmHWM from /proc/PID/status, read just before stdin is closed).
# Each server is run --runs times, alternating; the medians are printed.
#
# `loft mcp` needs a server: the script starts a release `loft serve` on a fresh SQLite file
# (in a temporary directory, removed at the end) and creates one identity for it. The Node
# server is installed by npm into a throwaway directory (needs the npm registry).
# `loft mcp` becomes the small `loft-mcp` executable when one sits beside the `loft` given
# (both are built by default); the report says which ran.
#
# Usage: scripts/bench_mcp.sh [--runs N] [--no-build] [--loft PATH] [--sdk-version V]
set -euo pipefail

runs=7
build=1
loft_bin=
sdk_version=latest
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --no-build) build=0 ;;
    --loft) loft_bin=$2; build=0; shift ;;
    --sdk-version) sdk_version=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_mcp.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in node npm curl jq; do
  command -v "$tool" >/dev/null || { echo "bench_mcp.sh: $tool is missing" >&2; exit 1; }
done
if [ -z "$loft_bin" ]; then
  loft_bin=$root/target/release/loft
  if [ "$build" = 1 ]; then
    echo "building loft and loft-mcp --release" >&2
    (cd "$root" && cargo build --release --locked -p loft >&2)
  fi
fi
[ -x "$loft_bin" ] || { echo "bench_mcp.sh: no loft binary at $loft_bin" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loft-mcpbench-XXXXXX")
loft_pid=
cleanup() {
  [ -n "$loft_pid" ] && kill "$loft_pid" 2>/dev/null && wait "$loft_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the Node server ----------------------------------------------------------------------------
echo "installing @modelcontextprotocol/sdk@$sdk_version into $tmp/node" >&2
mkdir -p "$tmp/node"
(cd "$tmp/node" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "@modelcontextprotocol/sdk@$sdk_version" zod >&2)
sdk_installed=$(jq -r .version "$tmp/node/node_modules/@modelcontextprotocol/sdk/package.json")
# One tool, as small as a server can be: the SDK's own stdio transport.
cat >"$tmp/node/server.mjs" <<'JS'
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
const server = new McpServer({ name: "minimal", version: "1.0.0" });
server.tool("echo", "Echo the text back", { text: z.string() }, async ({ text }) => ({
  content: [{ type: "text", text }],
}));
await server.connect(new StdioServerTransport());
JS

# --- loft serve and one identity ------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=mcpbench-operator-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
LOFT_ADMIN_KEY=$admin LOFT_LOG=warn "$loft_bin" serve --data-dir "$tmp/data" --http "127.0.0.1:$port" \
  --rate-limit-per-key off --rate-limit-per-address off >"$tmp/loft.log" 2>&1 &
loft_pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 200); do curl -fs -o /dev/null "$base/v0/health" && break; sleep 0.05; done
key=$(curl -fsS -X POST "$base/v0/identities" -H "Authorization: Bearer $admin" \
  -H 'Content-Type: application/json' -d '{"name":"mcp-bench","oversight_mode":"autonomous"}' | jq -r .api_key)

# --- the runs --------------------------------------------------------------------------------------
probe=$root/scripts/mcp_stdio_probe.mjs
: >"$tmp/loft.jsonl"; : >"$tmp/node.jsonl"
for r in $(seq 1 "$runs"); do
  LOFT_URL=$base LOFT_API_KEY=$key node "$probe" "$loft_bin" mcp >>"$tmp/loft.jsonl"
  node "$probe" node "$tmp/node/server.mjs" >>"$tmp/node.jsonl"
done
median() { jq -s "map(.$2) | sort | .[(length - 1) / 2 | floor]" "$1"; }
echo
echo "command:  scripts/bench_mcp.sh --runs $runs (medians over $runs alternating runs)"
echo "machine:  nproc $(nproc), $(uname -sm), load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "$build" = 1 ]; then
  echo "loft:     $loft_bin (built from this tree, $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
else
  echo "loft:     $loft_bin (given; its commit is whatever it was built from)"
fi
if [ -x "$(dirname "$loft_bin")/loft-mcp" ]; then
  echo "loft mcp: ran as $(dirname "$loft_bin")/loft-mcp, the small executable beside it"
else
  echo "loft mcp: ran in $loft_bin itself (no loft-mcp beside it)"
fi
echo "node:     $(node --version), @modelcontextprotocol/sdk $sdk_installed"
echo
echo "| server | tools | spawn → initialize answer ms | spawn → tools/list answer ms | peak RSS MiB | private dirty MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for s in loft node; do
  f=$tmp/$s.jsonl
  label=$([ "$s" = loft ] && echo '`loft mcp`' || echo 'Node SDK (minimal)')
  printf '| %s | %s | %.1f | %.1f | %.1f | %.1f |\n' "$label" "$(median "$f" tools)" "$(median "$f" init_ms)" \
    "$(median "$f" list_ms)" "$(echo "$(median "$f" peak_rss_kib) / 1024" | bc -l)" \
    "$(echo "$(median "$f" private_dirty_kib) / 1024" | bc -l)"
done
loft_rss=$(median "$tmp/loft.jsonl" peak_rss_kib); node_rss=$(median "$tmp/node.jsonl" peak_rss_kib)
printf '\nloft mcp peak RSS is %.2f of the Node server'"'"'s (target: at most 0.20); start-up %.1f ms (target: under 40)\n' \
  "$(echo "$loft_rss / $node_rss" | bc -l)" "$(median "$tmp/loft.jsonl" init_ms)"
printf 'private dirty memory (about what each further agent adds: clean pages of the executable are shared): loft mcp %.2f of the Node server'"'"'s\n' \
  "$(echo "$(median "$tmp/loft.jsonl" private_dirty_kib) / $(median "$tmp/node.jsonl" private_dirty_kib)" | bc -l)"
