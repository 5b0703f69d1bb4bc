#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, and every test on SQLite and
# PostgreSQL. Works from a clean clone; installs what it needs.
#
#   scripts/test.sh            everything
#   LOFT_TEST_PG_URL=postgres://user@host:5432/postgres scripts/test.sh
#
# PostgreSQL: each test creates and drops its own database on the server named by
# LOFT_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres). Under CI=true an
# unreachable server fails the run; elsewhere the PostgreSQL tests say loudly that they did
# not run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it started and how far into the run, so a slow CI run shows where its time went.
step() { printf '\n==> %s  [%s, %ss in]\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS"; }

export LOFT_TEST_PG_URL="${LOFT_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# CI builds from a clean clone once: incremental compilation's caches would only be written,
# never read. (Not elsewhere: switching it would rebuild a developer's whole workspace.)
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step "PostgreSQL at ${LOFT_TEST_PG_URL##*@}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    # On the project's machines PostgreSQL is installed; start it if it is down.
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "not answering; starting the local cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
        for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    fi
fi
if command -v pg_isready >/dev/null; then pg_isready -h 127.0.0.1 -p 5432 || true; fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The workspace build turns on loft-core's `openapi` and `json-schema` (for loft-web and
# loft-mcp); alone, the domain must compile without an HTTP-docs or JSON-schema library.
cargo clippy -p loft-core --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
    # nextest does not run doctests
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked --no-fail-fast
fi

step "fuzzing every parser of untrusted bytes, briefly (scripts/fuzz.sh SECONDS for a campaign)"
bash scripts/fuzz.sh 10

step "MCP with real Python clients (mcp 1.x and 2.x, AutoGen, CrewAI), the examples, schemathesis"
bash tests/python/run.sh

step "the web console in a real browser (Chromium, playwright-core, axe-core)"
bash tests/browser/run.sh

step "everything passed in $((SECONDS / 60)) min"
