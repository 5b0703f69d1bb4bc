#!/usr/bin/env bash
# The web console in a real browser (console.test.mjs): Debian's Chromium, driven by
# playwright-core, with axe-core's accessibility checks, against the real `loft` binary.
# Installs what it needs: Chromium from Debian when missing (apt-get, as root; else a clear
# error), the npm packages pinned by package-lock.json (`npm ci`). Screenshots go to
# tests/browser/artifacts/ (git-ignored).
#
#   bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
here=tests/browser

# Each step says when it started and how far into the run, so a slow CI run shows where its time went.
step() { printf '\n==> %s  [%s, %ss in]\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS"; }

step "Chromium (Debian's package)"
chromium_bin=${LOFT_CHROMIUM:-}
if [ -z "$chromium_bin" ]; then
    if ! command -v chromium >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "error: chromium is missing: install Debian's package chromium (apt-get install chromium), or set LOFT_CHROMIUM" >&2
            exit 1
        fi
    fi
    chromium_bin=$(command -v chromium)
fi
"$chromium_bin" --version
export LOFT_CHROMIUM=$chromium_bin

step "Node and the npm packages (playwright-core, axe-core)"
command -v node >/dev/null 2>&1 || { echo "error: node is missing (Debian's package nodejs, 18 or later)" >&2; exit 1; }
node --version
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

# As tests/python/run.sh: the test build's own binary (`-p loft` would recompile crates).
step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets --locked
export LOFT_BIN="$repo/${CARGO_TARGET_DIR:-target}/debug/loft"
[ -x "$LOFT_BIN" ] || { echo "error: no binary at $LOFT_BIN" >&2; exit 1; }

step "the console in Chromium"
rm -rf "$here/artifacts"
cd "$here"
node --test --test-reporter=spec console.test.mjs pages.test.mjs
echo "screenshots: $here/artifacts/"
