#!/usr/bin/env bash
# The README's "Five minutes with curl and the CLI", run for real with the values each step
# returns: the test suite runs it (crates/loft/tests/e2e.rs), so a change that breaks a
# documented command or its output fails CI. Every `loft` and `curl` command of that README
# section must appear here (the same test checks it).
#
#   LOFT_BIN=target/debug/loft scripts/walkthrough.sh
set -euo pipefail
loft() { "${LOFT_BIN:?set LOFT_BIN to the loft binary}" "$@"; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
say() { printf '\n$ %s\n' "$*"; }

work=$(mktemp -d)
export LOFT_ADMIN_KEY=my-operator-key-at-least-24-chars
unset LOFT_API_KEY LOFT_DATABASE_URL
# The README's `loft serve &`, on a fresh data dir and a free port.
"$LOFT_BIN" serve --data-dir "$work/loft-data" --http 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    LOFT_URL=$(sed -n 's/^HTTP API listening on //p' "$work/serve.out")
    [ -n "$LOFT_URL" ] && break
    sleep 0.1
done
[ -n "$LOFT_URL" ] || { cat "$work/serve.err" >&2; exit 1; }
export LOFT_URL

say "create two agents"
researcher=$(curl -s $LOFT_URL/v0/identities -H "Authorization: Bearer $LOFT_ADMIN_KEY" -d '{"name": "researcher"}')
echo "$researcher"
RESEARCHER=$(echo "$researcher" | json '["api_key"]')
[ "$(echo "$researcher" | json '["scopes"]')" = "['mail:read', 'mail:send', 'mail:manage', 'keys:manage', 'vault:read', 'vault:write']" ]
[ "$(echo "$researcher" | json '["oversight_mode"]')" = gated_send ]
writer=$(loft identity create writer --mode autonomous --json)
WRITER=$(echo "$writer" | json '["api_key"]')
WRITER_ADDR=$(echo "$writer" | json '["address"]')
WRITER_ID=$(echo "$writer" | json '["id"]')
[ "$(echo "$writer" | json '["oversight_mode"]')" = autonomous ]
loft identity create writer-2 >/dev/null  # the plain output too

say "the researcher mails the writer; the mail waits for a human"
sent=$(curl -s $LOFT_URL/v0/messages/send -H "Authorization: Bearer $RESEARCHER" \
     -d "{\"to\": \"$WRITER_ADDR\", \"subject\": \"Brief\", \"text\": \"Please draft 300 words.\"}")
echo "$sent" | json '["status"]'
[ "$(echo "$sent" | json '["status"]')" = pending_approval ]
APPROVAL=$(echo "$sent" | json '["approval"]["id"]')
[ "$(LOFT_API_KEY=$WRITER loft mail list --json | json '["items"]')" = "[]" ]

say "a human approves it"
loft approvals list | grep -q Brief
loft approvals approve $APPROVAL
[ "$(curl -s $LOFT_URL/v0/approvals/$APPROVAL -H "Authorization: Bearer $LOFT_ADMIN_KEY" | json '["status"]')" = approved ]

say "a human fixes a second mail before sending it"
sent=$(curl -s $LOFT_URL/v0/messages/send -H "Authorization: Bearer $RESEARCHER" \
     -d "{\"to\": \"$WRITER_ADDR\", \"subject\": \"Brief 2\", \"text\": \"Please draft 3000 words.\"}")
APPROVAL2=$(echo "$sent" | json '["approval"]["id"]')
printf 'Please draft 300 words, not 3000.\n' >"$work/fixed.txt"
loft approvals edit $APPROVAL2 --text-file "$work/fixed.txt" --approve
edited=$(curl -s $LOFT_URL/v0/approvals/$APPROVAL2 -H "Authorization: Bearer $LOFT_ADMIN_KEY")
[ "$(echo "$edited" | json '["status"]')" = approved ]
[ "$(echo "$edited" | json '["edit_count"]')" = 1 ]
[[ "$(echo "$edited" | json '["message"]["text"]')" == *"not 3000"* ]]

say "the writer finds it and replies"
LOFT_API_KEY=$WRITER loft mail list
msg=$(LOFT_API_KEY=$WRITER loft mail list --json | json '["items"][0]["id"]')
LOFT_API_KEY=$WRITER loft mail read $msg | grep -q "Please draft 300 words."
LOFT_API_KEY=$WRITER loft mail reply $msg --text "Draft attached."
LOFT_API_KEY=$WRITER loft mail archive $msg | grep -q "archived"
LOFT_API_KEY=$WRITER loft mail list --folder archive | grep -q "Brief"
LOFT_API_KEY=$RESEARCHER loft mail threads | grep -q "Brief"
LOFT_API_KEY=$WRITER loft mail search draft 300 | grep -q "\[draft\]"
LOFT_API_KEY=$RESEARCHER loft contacts list | grep -q writer

say "revoke the writer"
loft identity list | grep -q writer
loft identity revoke $WRITER_ID
if out=$(LOFT_API_KEY=$WRITER loft mail list 2>&1); then
    echo "a revoked identity's key still works" >&2
    exit 1
fi
echo "$out" | grep -q "this API key has been revoked"

say "who did what, and proof that nobody edited the record"
loft audit list --action mail. | grep -q "mail.send"
loft audit verify | grep -q intact
loft audit export --output "$work/audit.jsonl"
[ -s "$work/audit.jsonl" ]
echo
echo "walkthrough: every step as the README shows it"
