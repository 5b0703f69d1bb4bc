#!/usr/bin/env bash
# SMTP benchmarks against software we did not write, everything on loopback (docs/benchmarks.md,
# "SMTP in and out"):
#
#  (a) inbound accept rate: Postfix's `smtp-source` pushes N mails of 2 KiB over 1, 10 and 50
#      sessions (one connection per mail, as MTAs mostly deliver) into Loft's `--smtp`
#      listener, and into a private Postfix (tests/python/postfixrig.py, "sink" mode) that
#      accepts every mail into its own queue (fsynced, as Postfix does) and then discards it;
#      the two side by side, run after run, in one invocation. Loft answers 250 only once the
#      mail is stored in SQLite with synchronous=FULL; the script checks afterwards that every
#      mail is in the recipient's inbox.
#  (b) outbound: Loft delivers M queued mails (DKIM-signed, ed25519 + RSA) to Postfix's
#      `smtp-sink`; mails/s from the moment the scheduled mails are released, and the CPU
#      time of the Loft process per mail (/proc/PID/stat, user + system).
#
#   scripts/bench_smtp.sh                  N=2000 per inbound run, M=1000 outbound
#   N=500 M=200 scripts/bench_smtp.sh      a quicker run
#   SESSIONS="1 10" scripts/bench_smtp.sh
#   PROFILE=debug scripts/bench_smtp.sh    the debug build (its figures mean little)
#   LOFT_BIN=/tmp/old/loft scripts/bench_smtp.sh   another build, as it is
#   PERF_OUT=/tmp/out.data scripts/bench_smtp.sh  also `perf record` Loft while it delivers
#                                                 outbound (Debian's linux-perf; symbols
#                                                 with `cargo build --profile profiling`)
#
# Needs root (Postfix's master starts as root; smtp-sink drops to nobody) and Debian's
# `postfix` package (installed when missing, without configuring or starting a system
# Postfix). Data goes to a directory under /var/tmp (a real disk: what an fsync costs
# matters), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
N=${N:-2000}
M=${M:-1000}
SESSIONS=${SESSIONS:-"1 10 50"}
SIZE=2048

if ! command -v smtp-source >/dev/null 2>&1 || ! command -v postfix >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
    else
        echo "error: Debian's package postfix is missing (smtp-source, smtp-sink, postfix)" >&2
        exit 1
    fi
fi
[ "$(id -u)" = 0 ] || { echo "error: run as root (Postfix's master starts as root)" >&2; exit 1; }

# PROFILE=debug measures the debug build (quicker to build; its figures mean little).
# LOFT_BIN=PATH measures that binary as it is (another build, to compare), without building.
PROFILE=${PROFILE:-release}
if [ -n "${LOFT_BIN:-}" ]; then
    loft_bin=$LOFT_BIN
else
    if [ "$PROFILE" = release ]; then
        cargo build --release -p loft --locked
    else
        cargo build -p loft --locked
    fi
    loft_bin="$repo/${CARGO_TARGET_DIR:-target}/$PROFILE/loft"
fi

work=$(mktemp -d /var/tmp/loft-bench-smtp.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    python3 tests/python/postfixrig.py stop "$work/postfix" >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=bench-smtp-operator-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# start_loft NAME ARGS...: a release `loft serve` in $work/NAME; sets url, smtp_port, pid.
start_loft() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    echo '{}' >"$work/$name/dns.json"
    LOFT_ADMIN_KEY=$admin LOFT_LOG=warn "$loft_bin" serve --data-dir "$work/$name/data" --http 127.0.0.1:0 \
        --rate-limit-per-key off --rate-limit-per-address off --quota queued_recipients_per_hour=off \
        --quota stored_bytes=off --dns-answers "$work/$name/dns.json" "$@" \
        >"$work/$name/stdout" 2>"$work/$name/stderr" &
    pid=$!
    pids+=("$pid")
    url=""
    smtp_port=""
    for _ in $(seq 1 300); do
        url=$(sed -n 's/^HTTP API listening on //p' "$work/$name/stdout")
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { echo "error: loft did not start: $(cat "$work/$name/stderr")" >&2; exit 1; }
    smtp_port=$(sed -n 's/^SMTP listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/$name/stdout")
}

# api METHOD PATH [JSON]: the operator's REST call, JSON out.
api() {
    curl -sS --fail-with-body -X "$1" "$url$2" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' ${3:+-d "$3"}
}

rate() { python3 -c "import sys; n, t = float(sys.argv[1]), float(sys.argv[2]); print(f'{n / t:.0f}')" "$@"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

echo "== SMTP benchmarks: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), $([ -n "${LOFT_BIN:-}" ] && echo "binary $LOFT_BIN" || echo "commit $(git rev-parse --short HEAD), $PROFILE build")"
echo "   inbound: $N mails of $SIZE bytes per run (smtp-source -l $SIZE -m $N -s S, one connection per mail)"

# --- (a) inbound -------------------------------------------------------------------------
start_loft inbound --domain bench.test --smtp 127.0.0.1:0 --smtp-max-connections-per-ip 200
loft_in_pid=$pid
loft_in_url=$url
loft_smtp=$smtp_port
api POST /v0/identities '{"name": "sink", "local_part": "sink", "oversight_mode": "autonomous"}' >"$work/identity.json"
sink_key=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["api_key"])' "$work/identity.json")

pf_port=$(free_port)
python3 tests/python/postfixrig.py start "$work/postfix" "$pf_port" sink >/dev/null

# push TARGET PORT TO S: smtp-source's run; prints the seconds it took.
push() {
    local port=$2 to=$3 s=$4 t0 t1
    t0=$(now)
    if ! smtp-source -s "$s" -l "$SIZE" -m "$N" -f bench@outside.test -t "$to" -M client.outside.test \
        "127.0.0.1:$port" >"$work/source.out" 2>&1; then
        echo "error: smtp-source against $1 failed: $(tail -5 "$work/source.out")" >&2
        exit 1
    fi
    t1=$(now)
    if grep -q . "$work/source.out"; then
        echo "error: smtp-source against $1 reported: $(head -5 "$work/source.out")" >&2
        exit 1
    fi
    elapsed "$t0" "$t1"
}

printf '\n%-10s %14s %14s %8s\n' sessions "Loft mails/s" "Postfix mails/s" "ratio"
loft_total=0
for s in $SESSIONS; do
    tl=$(push Loft "$loft_smtp" sink@bench.test "$s")
    loft_total=$((loft_total + N))
    tp=$(push Postfix "$pf_port" someone@remote.test "$s")
    rl=$(rate "$N" "$tl")
    rp=$(rate "$N" "$tp")
    printf '%-10s %14s %14s %7sx\n' "$s" "$rl" "$rp" "$(python3 -c "print(f'{$rl / $rp:.2f}')")"
done

# Every mail that got its 250 is stored: count the recipient's inbox.
stored=$(python3 - "$loft_in_url" "$sink_key" <<'EOF'
import json, sys, urllib.request
url, key = sys.argv[1], sys.argv[2]
n, cursor = 0, ""
while True:
    req = urllib.request.Request(f"{url}/v0/messages?folder=inbox&limit=200{cursor}")
    req.add_header("Authorization", f"Bearer {key}")
    page = json.load(urllib.request.urlopen(req, timeout=60))
    n += len(page["items"])
    if not page.get("next_cursor"):
        break
    cursor = "&cursor=" + page["next_cursor"]
print(n)
EOF
)
echo "Loft stored $stored of the $loft_total mails it accepted"
[ "$stored" = "$loft_total" ] || { echo "error: mails are missing" >&2; exit 1; }
kill "$loft_in_pid"
python3 tests/python/postfixrig.py stop "$work/postfix" >/dev/null

# --- (b) outbound ------------------------------------------------------------------------
sink_port=$(free_port)
smtp-sink -u nobody -c "127.0.0.1:$sink_port" 1000 >"$work/sink.out" 2>&1 &
pids+=($!)
start_loft outbound --domain bench.test --deliver-direct --smtp-outbound-port "$sink_port" \
    --smtp-outbound-resolve sink.test=127.0.0.1 --egress-allow 127.0.0.1
out_pid=$pid
api POST /v0/domains '{"name": "bench.test"}' >/dev/null
api POST /v0/identities '{"name": "sender", "local_part": "sender", "oversight_mode": "autonomous"}' >"$work/sender.json"
sender_key=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["api_key"])' "$work/sender.json")

# M sends scheduled for one instant: queued first, then released together, so that the
# measurement covers delivery only.
python3 - "$url" "$sender_key" "$M" "$out_pid" "$work/sink.out" "${PERF_OUT:-}" <<'EOF'
import datetime, json, os, re, subprocess, sys, time, urllib.request
url, key, m, pid, sink_out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
perf_out = sys.argv[6]
tick = os.sysconf("SC_CLK_TCK")

def cpu() -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    return json.load(urllib.request.urlopen(req, timeout=60))

release = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5 + m * 0.02)
body = "Outbound benchmark mail.\n" + "x" * 1900 + "\n"
t0 = time.monotonic()
for i in range(m):
    post("/v0/messages/send", {"to": [f"rcpt{i}@sink.test"], "subject": f"bench {i}", "text": body,
                               "send_at": release.isoformat().replace("+00:00", "Z")})
queued = time.monotonic() - t0
wait = (release - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
if wait < 0.5:
    sys.exit(f"queuing {m} mails took {queued:.1f}s, past the release time: lower M")
time.sleep(wait - 0.3)
perf = None
if perf_out:
    perf = subprocess.Popen(["perf", "record", "-q", "-g", "-p", str(pid), "-o", perf_out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
c0 = cpu()
start = time.monotonic()

def delivered() -> int:
    # smtp-sink -c rewrites one counter line: "sess=N quit=N mesg=N\r".
    counts = re.findall(r"mesg=(\d+)", open(sink_out, errors="replace").read())
    return int(counts[-1]) if counts else 0

deadline = start + 600
while delivered() < m and time.monotonic() < deadline:
    time.sleep(0.05)
took = time.monotonic() - start
c1 = cpu()
if perf:
    perf.send_signal(2)
    perf.wait()
n = delivered()
print(f"\noutbound: {n} of {m} mails delivered to smtp-sink in {took:.2f}s from their release: "
      f"{n / took:.0f} mails/s; Loft CPU {c1 - c0:.2f}s, {1000 * (c1 - c0) / max(n, 1):.2f} ms per mail "
      f"(queuing them through REST took {queued:.1f}s)")
if n < m:
    sys.exit("error: not every mail was delivered")
EOF
if [ -n "${PERF_OUT:-}" ]; then
    echo
    echo "perf profile of Loft while delivering outbound: $PERF_OUT (top symbols, self time)"
    perf report -i "$PERF_OUT" --no-children --percent-limit 1.5 --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
fi
