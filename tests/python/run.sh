#!/usr/bin/env bash
# Loft's MCP door, proven with the real Python clients: the official `mcp` SDK 1.x and 2.x
# (stdio and streamable HTTP), AutoGen's McpWorkbench and CrewAI's MCPServerAdapter, and the
# examples in examples/; and its inbound SMTP door with Python's smtplib and swaks
# (test_smtp.py; swaks is Debian's package, installed here when missing); Postfix as the remote
# MTA both ways (test_postfix.py, Debian's package, installed here when missing), aiosmtpd as an
# AUTH smarthost (test_smarthost.py) and two Loft servers mailing each other over SMTP
# (test_two_servers.py), and its submission door with STARTTLS and AUTH (test_submission.py); its webhooks, verified
# by the Standard Webhooks library (test_webhooks.py, in .venv/api). Every test runs the
# real `loft` binary against a real server.
#
#   tests/python/run.sh                 build loft, (re)create the venvs if needed, run everything
#   tests/python/run.sh -k mail_wait    extra arguments go to both pytest runs
#
# Two venvs under .venv/ (git-ignored), because AutoGen and CrewAI need mcp<2:
#   .venv/mcp1  requirements-mcp1.txt  mcp 1.x, AutoGen, CrewAI, pytest
#   .venv/mcp2  requirements-mcp2.txt  mcp 2.x, pytest
# A venv is rebuilt when the hash of its requirements and constraints files (and the Python
# version), stored inside it, no longer matches. Python: $LOFT_PYTHON, else python3.11, else
# python3 (3.10 to 3.13). The frameworks' telemetry is switched off and the tests refuse any
# connection that is not to this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
here=tests/python

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# No telemetry, tracing or phoning home from the frameworks (the tests also block such attempts).
export CREWAI_DISABLE_TELEMETRY=true CREWAI_DISABLE_TRACKING=true CREWAI_TRACING_ENABLED=false \
    CREWAI_TESTING=true OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none \
    OTEL_LOGS_EXPORTER=none ANONYMIZED_TELEMETRY=false DO_NOT_TRACK=1 LITELLM_TELEMETRY=False \
    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false AUTOGEN_DISABLE_RUNTIME_TRACING=true
# The examples must run scripted, whatever the caller's shell holds.
unset OPENAI_API_KEY OPENAI_BASE_URL LOFT_URL LOFT_API_KEY LOFT_ADMIN_KEY

# Each step says when it started and how far into the run, so a slow CI run shows where its time went.
step() { printf '\n==> %s  [%s, %ss in]\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS"; }

python=${LOFT_PYTHON:-}
if [ -z "$python" ]; then
    if command -v python3.11 >/dev/null 2>&1; then python=python3.11; else python=python3; fi
fi
pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
if ! "$python" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))'; then
    echo "error: $python is Python $pyver; these tests need Python 3.10 to 3.13 (3.11 is what CI uses)" >&2
    echo "hint: set LOFT_PYTHON to a suitable interpreter" >&2
    exit 1
fi

# ensure_venv NAME: .venv/NAME from $here/requirements-NAME.txt, rebuilt when stale.
ensure_venv() {
    local name=$1 venv=.venv/$1 req=$here/requirements-$1.txt con=$here/constraints-$1.txt
    local want have=""
    want=$( { echo "python $pyver"; cat "$req" "$con"; } | sha256sum | cut -d' ' -f1)
    [ -f "$venv/.loft-requirements.sha256" ] && have=$(cat "$venv/.loft-requirements.sha256")
    if [ "$want" = "$have" ] && [ -x "$venv/bin/python" ]; then
        echo "$venv is up to date"
        return
    fi
    echo "creating $venv (Python $pyver) from $req"
    rm -rf "$venv"
    mkdir -p .venv
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --no-input --upgrade-strategy only-if-needed -r "$req"
    # Written last: an interrupted install is redone next time.
    echo "$want" >"$venv/.loft-requirements.sha256"
}

step "Python venvs"
SECONDS=0
ensure_venv mcp1
ensure_venv mcp2
ensure_venv api
echo "venvs ready in ${SECONDS}s"

step "swaks (Debian's package) for test_smtp.py"
if ! command -v swaks >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swaks >/dev/null
    else
        echo "error: swaks is missing: install Debian's package swaks (apt-get install swaks)" >&2
        exit 1
    fi
fi
swaks --version | head -1

# Postfix (test_postfix.py, and its smtp-source / smtp-sink for scripts/bench_smtp.sh): the
# package is configured as "No configuration", so it writes no /etc/postfix/main.cf and starts
# no system Postfix; the tests run their own from a private directory (postfixrig.py).
step "postfix (Debian's package) for test_postfix.py"
if ! command -v postfix >/dev/null 2>&1 || ! command -v smtp-source >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
    else
        echo "error: postfix is missing: install Debian's package postfix (as root)" >&2
        exit 1
    fi
fi
postconf -d mail_version

# The workspace's targets as the Rust tests build them (the binary, and the DKIM signing example
# test_dkim.py runs). Not `-p loft`: a subset of the workspace resolves its dependencies'
# features differently, so after the test build it recompiled some forty crates (two minutes
# of a CI run); built this way, it is the test build's own binary and costs nothing after it.
step "cargo build --workspace --all-targets (loft, and the DKIM signing example)"
cargo build --workspace --all-targets --locked
export LOFT_BIN="$repo/${CARGO_TARGET_DIR:-target}/debug/loft"
[ -x "$LOFT_BIN" ] || { echo "error: no binary at $LOFT_BIN" >&2; exit 1; }

# run_pytest VENV FILES...: pytest in that venv, bounded in time. Exit 5 (no test ran) fails.
failed=()
run_pytest() {
    local name=$1
    shift
    step "pytest in .venv/$name ($(".venv/$name/bin/python" -c 'import importlib.metadata as m
try: print("mcp", m.version("mcp"))
except m.PackageNotFoundError: print("no mcp")'))"
    local rc=0
    (cd "$here" && timeout -k 10 1500 "$repo/.venv/$name/bin/python" -m pytest -p no:cacheprovider "$@" "${extra[@]}") || rc=$?
    case $rc in
        0) ;;
        5) echo "error: pytest in .venv/$name collected no test" >&2; failed+=("$name (no tests)") ;;
        124) echo "error: pytest in .venv/$name timed out" >&2; failed+=("$name (timeout)") ;;
        *) failed+=("$name (exit $rc)") ;;
    esac
}

extra=("$@")
run_pytest mcp1 test_mcp_client.py test_autogen.py test_autogen_vault.py test_crewai.py test_examples.py test_smtp.py \
    test_mailauth.py test_dkim.py test_postfix.py test_smarthost.py test_two_servers.py test_submission.py
run_pytest mcp2 test_mcp_client.py
run_pytest api test_webhooks.py

# run_schemathesis KIND: schemathesis against the OpenAPI document served by a fresh server,
# with an identity key (KIND=identity) or the operator key (KIND=operator), each on its own
# server so that one run cannot revoke the other's identity. Bounded in examples and time;
# its checks: no server error, no status the document does not list, every response body
# valid against its schema. Paths that would end the run's own access (rotating or revoking
# the key in use) and the long poll are left out.
run_schemathesis() {
    local kind=$1 dir url key rc=0
    step "schemathesis with the $kind key"
    dir=$(mktemp -d)
    LOFT_ADMIN_KEY=schemathesis-operator-key-0123456789 LOFT_LOG=warn \
        LOFT_RATE_LIMIT_PER_KEY=off LOFT_RATE_LIMIT_PER_ADDRESS=off LOFT_AUTH_FAILURES_PER_MINUTE=0 \
        LOFT_EGRESS_DENY_PUBLIC=true \
        "$LOFT_BIN" serve --data-dir "$dir/data" --http 127.0.0.1:0 --dns-answers <(echo '{}') \
        >"$dir/stdout" 2>"$dir/stderr" &
    local pid=$!
    for _ in $(seq 1 100); do
        url=$(sed -n 's/^HTTP API listening on //p' "$dir/stdout")
        [ -n "$url" ] && break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        echo "error: the server for schemathesis did not start: $(cat "$dir/stderr")" >&2
        kill "$pid" 2>/dev/null || true
        failed+=("schemathesis $kind (server)")
        return
    fi
    key=schemathesis-operator-key-0123456789
    if [ "$kind" = identity ]; then
        key=$(LOFT_URL=$url LOFT_ADMIN_KEY=$key "$LOFT_BIN" identity create fuzz --json |
            "$repo/.venv/api/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
    fi
    timeout -k 10 600 "$repo/.venv/api/bin/schemathesis" run "$url/v0/openapi.json" \
        --header "Authorization: Bearer $key" \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance \
        --exclude-path-regex 'rotate|revoke|/messages/wait|^/v0/keys/\{key_id\}$' \
        --max-examples 10 --seed 20261204 --request-timeout 20 --no-color || rc=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    [ "$rc" -eq 0 ] || failed+=("schemathesis $kind (exit $rc)")
}
run_schemathesis identity
run_schemathesis operator

if [ ${#failed[@]} -gt 0 ]; then
    echo "Python MCP tests FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "Python MCP tests passed in both venvs; schemathesis found nothing"
