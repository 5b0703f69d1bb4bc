#!/usr/bin/env bash
# The HTTP read path against the HTTP ceiling of this machine (issue 14).
#
# Runs `wrk -t2 -c50 -d5s`, interleaved, against nginx serving a static page (the ceiling) and
# against a release `loft serve` (GET /v0/health, /v0/whoami, /v0/messages?limit=20 on a
# mailbox of ~1000 messages), for a few rounds, and prints each route's rate and its share of
# the nginx rate measured in the same round. Everything listens on 127.0.0.1 and is removed at
# the end: nginx runs from a private prefix (not the system nginx), loft from a temporary data
# directory, and with --pg in a fresh database that is dropped afterwards.
#
# Usage: scripts/bench_http.sh [--pg] [--database-server URL] [--rounds N] [--duration 5s]
#                              [--connections 50] [--threads 2] [--messages 1000] [--no-build]
#                              [--loft PATH] [--perf ROUTE]
#   --pg                    PostgreSQL at postgres://postgres@127.0.0.1:5432/postgres (a new
#                           database loft_httpbench_<random> is created there and dropped)
#   --database-server URL   another PostgreSQL server (implies --pg; the role needs CREATEDB)
#   --no-build              use target/release/loft as it is
#   --loft PATH             use this loft binary (implies --no-build), e.g. to compare builds
#   --perf ROUTE            record `perf` call graphs of loft (health, whoami or messages)
#                           during that route's run in the last round, and print the top of
#                           the report; the data is left in /tmp/bench_http.perf.data. For
#                           symbols build with `cargo build --profile profiling -p loft`.
#                           PERF_CALL_GRAPH=dwarf,16384 unwinds Rust frames that frame
#                           pointers lose (bigger data, slower report).
#
# wrk, nginx (Debian's nginx-light), curl and jq are installed with apt-get when missing and the
# script runs as root; otherwise it stops and names the missing ones.
set -euo pipefail

rounds=3
duration=5s
connections=50
threads=2
messages=1000
pg=0
pg_server=postgres://postgres@127.0.0.1:5432/postgres
build=1
loft_bin=
perf_route=
while [ $# -gt 0 ]; do
  case "$1" in
    --pg) pg=1 ;;
    --database-server) pg=1; pg_server=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --connections) connections=$2; shift ;;
    --threads) threads=$2; shift ;;
    --messages) messages=$2; shift ;;
    --no-build) build=0 ;;
    --loft) loft_bin=$2; build=0; shift ;;
    --perf) perf_route=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench_http.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

root=$(cd "$(dirname "$0")/.." && pwd)

# --- tools ---------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
if [ "$pg" = 1 ]; then command -v psql >/dev/null || missing+=(postgresql-client); fi
if [ -n "$perf_route" ]; then command -v perf >/dev/null || missing+=(linux-perf); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench_http.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
  echo "installing ${missing[*]} from Debian's packages" >&2
  # Keep the package's own nginx service from starting on port 80: the benchmark runs its own.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; own_policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >&2; }
  [ "$own_policy" = 1 ] && rm -f "$policy"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "$loft_bin" ]; then
  loft_bin=$root/target/release/loft
  if [ "$build" = 1 ]; then
    echo "building loft --release" >&2
    (cd "$root" && cargo build --release --locked -p loft --bin loft >&2)
  fi
fi
[ -x "$loft_bin" ] || { echo "bench_http.sh: no loft binary at $loft_bin" >&2; exit 1; }

# --- scratch space, cleaned up whatever happens ----------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loft-httpbench-XXXXXX")
nginx_pid=
loft_pid=
pg_db=
cleanup() {
  [ -n "$loft_pid" ] && kill "$loft_pid" 2>/dev/null && wait "$loft_pid" 2>/dev/null
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  if [ -n "$pg_db" ]; then psql "$pg_server" -XqAt -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url what
  for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "bench_http.sh: $2 did not answer at $1" >&2; return 1
}

# --- nginx: a static page from a private prefix -----------------------------------------------
nginx_port=$(free_port)
mkdir -p "$tmp/nginx/www" "$tmp/nginx/temp"
# nginx started as root serves files as an unprivileged worker user: let it through (loft's data
# directory below keeps its own owner-only files).
chmod 755 "$tmp" "$tmp/nginx" "$tmp/nginx/www"
# About the size of a whoami answer.
{ printf '<!doctype html><html><head><title>ceiling</title></head><body><p>'; head -c 600 /dev/zero | tr '\0' 'x'; printf '</p></body></html>\n'; } >"$tmp/nginx/www/index.html"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/temp/body;
  proxy_temp_path $tmp/nginx/temp/proxy;
  fastcgi_temp_path $tmp/nginx/temp/fastcgi;
  uwsgi_temp_path $tmp/nginx/temp/uwsgi;
  scgi_temp_path $tmp/nginx/temp/scgi;
  default_type text/html;
  server {
    listen 127.0.0.1:$nginx_port;
    root $tmp/nginx/www;
  }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
nginx_pid=$!
wait_http "http://127.0.0.1:$nginx_port/index.html" nginx

# --- loft ---------------------------------------------------------------------------------------
loft_port=$(free_port)
admin=httpbench-operator-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
db_args=()
backend="sqlite (file in $tmp/data)"
if [ "$pg" = 1 ]; then
  pg_db=loft_httpbench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
  psql "$pg_server" -XqAt -c "CREATE DATABASE $pg_db" >/dev/null
  db_url="${pg_server%/*}/$pg_db"
  db_args=(--database-url "$db_url")
  backend="postgres ($(psql "$pg_server" -XqAt -c 'SHOW server_version'), database $pg_db)"
fi
LOFT_ADMIN_KEY=$admin LOFT_LOG=${LOFT_LOG:-warn} "$loft_bin" serve --data-dir "$tmp/data" \
  --http "127.0.0.1:$loft_port" "${db_args[@]}" \
  --rate-limit-per-key off --rate-limit-per-address off >"$tmp/loft.log" 2>&1 &
loft_pid=$!
base=http://127.0.0.1:$loft_port
wait_http "$base/v0/health" loft || { cat "$tmp/loft.log" >&2; exit 1; }

api() { # method path key [body]
  local args=(-fsS -X "$1" "$base$2" -H "Authorization: Bearer $3")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' -d "$4")
  curl "${args[@]}"
}
sender=$(api POST /v0/identities "$admin" '{"name":"bench-sender","oversight_mode":"autonomous"}')
reader=$(api POST /v0/identities "$admin" '{"name":"bench-reader","oversight_mode":"autonomous"}')
sender_key=$(jq -r .api_key <<<"$sender")
reader_key=$(jq -r .api_key <<<"$reader")
reader_addr=$(jq -r .address <<<"$reader")

# ~N messages into the reader's inbox, over one keep-alive connection.
echo "seeding $messages messages" >&2
seed_started=$(date +%s.%N)
{
  for i in $(seq 1 "$messages"); do
    printf 'url = "%s/v0/messages/send"\nrequest = "POST"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"to\\":[\\"%s\\"],\\"subject\\":\\"benchmark message %d\\",\\"text\\":\\"Hello, this is message %d of the HTTP benchmark.\\"}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
      "$base" "$sender_key" "$reader_addr" "$i" "$i"
    [ "$i" -lt "$messages" ] && printf 'next\n'
  done
} >"$tmp/seed.curl"
codes=$(curl -sS -K "$tmp/seed.curl")
ok=$(grep -c '^201$' <<<"$codes" || true)
seed_s=$(echo "$(date +%s.%N) - $seed_started" | bc)
[ "$ok" = "$messages" ] || { echo "bench_http.sh: only $ok of $messages sends answered 201: $(sort <<<"$codes" | uniq -c | tr '\n' ' ')" >&2; exit 1; }
listed=$(api GET '/v0/messages?limit=20' "$reader_key" | jq '.items | length')
[ "$listed" = 20 ] || { echo "bench_http.sh: the inbox list returned $listed messages, not 20" >&2; exit 1; }

# --- the runs -----------------------------------------------------------------------------------
names=(nginx health whoami messages)
declare -A urls=(
  [nginx]="http://127.0.0.1:$nginx_port/index.html"
  [health]="$base/v0/health"
  [whoami]="$base/v0/whoami"
  [messages]="$base/v0/messages?limit=20"
)
declare -A rate=()
run_wrk() { # name round
  local out rps bad perf_pid=
  if [ "$1" = "$perf_route" ] && [ "$2" = "$rounds" ]; then
    perf record -q -F 999 --call-graph "${PERF_CALL_GRAPH:-fp}" -p "$loft_pid" -o /tmp/bench_http.perf.data -- sleep "${duration%s}" 2>/dev/null &
    perf_pid=$!
  fi
  out=$(wrk -t"$threads" -c"$connections" -d"$duration" -H "Authorization: Bearer $reader_key" "${urls[$1]}")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  if [ -n "$bad" ]; then echo "bench_http.sh: $1 answered $bad non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
  if grep -q 'Socket errors' <<<"$out"; then echo "$1 round $2: $(grep 'Socket errors' <<<"$out")" >&2; fi
  rate[$1,$2]=$rps
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
}
echo "running $rounds rounds of wrk -t$threads -c$connections -d$duration over: ${names[*]}" >&2
for r in $(seq 1 "$rounds"); do
  for n in "${names[@]}"; do run_wrk "$n" "$r"; done
  echo "round $r: $(for n in "${names[@]}"; do printf '%s %s/s  ' "$n" "${rate[$n,$r]}"; done)" >&2
done

# --- the report ----------------------------------------------------------------------------------
if [ -n "$perf_route" ]; then
  echo
  echo "perf: $perf_route, last round (perf report -i /tmp/bench_http.perf.data for more)"
  perf report -i /tmp/bench_http.perf.data --no-children --sort dso,sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -40
fi
echo
echo "command:  scripts/bench_http.sh $( [ "$pg" = 1 ] && echo --pg ) (wrk -t$threads -c$connections -d$duration, $rounds interleaved rounds)"
echo "backend:  $backend, reader's inbox $messages messages (seeded in ${seed_s%.*} s)"
echo "machine:  nproc $(nproc), $(uname -sm), load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "$build" = 1 ]; then
  echo "loft:     $loft_bin (built from this tree, $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
else
  echo "loft:     $loft_bin (given; its commit is whatever it was built from)"
fi
echo
header="| route | req/s per round | mean req/s | share of nginx (mean of per-round ratios) |"
echo "$header"
echo "|---|---|---:|---:|"
for n in "${names[@]}"; do
  per=""; sum=0; share_sum=0
  for r in $(seq 1 "$rounds"); do
    v=${rate[$n,$r]}
    per="$per${per:+ / }$(printf '%.0f' "$v")"
    sum=$(echo "$sum + $v" | bc -l)
    share_sum=$(echo "$share_sum + $v / ${rate[nginx,$r]}" | bc -l)
  done
  label="GET /${urls[$n]#http://127.0.0.1:*/}"
  [ "$n" = nginx ] && label="nginx static page"
  printf '| %s | %s | %.0f | %.0f%% |\n' "$label" "$per" "$(echo "$sum / $rounds" | bc -l)" "$(echo "100 * $share_sum / $rounds" | bc -l)"
done
