#!/usr/bin/env bash
# Data-scale benchmark (issue 14): one mailbox grown to N messages, and what reading it costs.
#
# A release `loft serve` on a fresh SQLite file (or, with --pg, a fresh PostgreSQL database that
# is dropped afterwards) gets two identities and a few real messages through the API (a thread
# of replies among them); the server is then stopped and the reader's inbox is bulk-loaded in
# SQL by copying one real inbox row (the same content, new ids, subjects, times, and threads of
# 10 messages; every 1,000th subject carries the rare word `zebra`), in steps up to each size of
# --sizes. After each step (and ANALYZE) the server is started again and, with
# `wrk -t1 -c1 --latency` (one keep-alive connection, so each figure is one request's latency),
# the script measures: the inbox list page (limit=20) at the start, middle and end of the
# mailbox (cursor paging), the thread list page, one thread page (GET /v0/threads/{id}) at the
# start, middle and end, and a search for `zebra`; and it reports the load time, the database
# size and the server's RSS (VmRSS after the reads, and its peak VmHWM).
#
# --others N:M first adds N more identities with M messages each (bulk SQL the same way, copies
# of the reader's identity row and inbox row, in transactions of a million rows), so that the
# reader's mailbox is measured inside a database of N*M + size messages: `--others 9999:900
# --sizes 1000,1000000` is ten million messages across 10,000 identities.
#
# Usage: scripts/bench_scale.sh [--pg] [--database-server URL] [--sizes 20000,100000]
#                               [--others N:M] [--duration 3s] [--no-build] [--loft PATH]
# Needs wrk, curl, jq, gcc and python3 (psql for --pg); installed with apt-get when missing and root.
set -euo pipefail

sizes=20000
others=0:0
duration=3s
pg=0
pg_server=postgres://postgres@127.0.0.1:5432/postgres
build=1
loft_bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --pg) pg=1 ;;
    --database-server) pg=1; pg_server=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --others) others=$2; shift ;;
    --duration) duration=$2; shift ;;
    --no-build) build=0 ;;
    --loft) loft_bin=$2; build=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench_scale.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $others =~ ^[0-9]+:[0-9]+$ ]] || { echo "bench_scale.sh: --others takes N:M (identities:messages each), not '$others'" >&2; exit 2; }
others_n=${others%%:*}
others_m=${others##*:}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v gcc >/dev/null || missing+=(gcc)
if [ "$pg" = 1 ]; then command -v psql >/dev/null || missing+=(postgresql-client); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench_scale.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >&2; }
fi
# The bulk load writes through SQLite's own triggers (the full-text index), which need the
# SQLite Loft bundles (contentless_delete FTS5 tables need 3.43); Debian 12's is 3.40. So the
# bundled amalgamation (from libsqlite3-sys in the cargo registry) is compiled once into a
# cache directory and loaded into Python's sqlite3 module.
sqlite_lib_dir=${XDG_CACHE_HOME:-$HOME/.cache}/loft-bench-sqlite
if [ "$pg" = 0 ] && [ ! -f "$sqlite_lib_dir/libsqlite3.so.0" ]; then
  amalgamation=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-*/sqlite3/sqlite3.c 2>/dev/null | sort -V | tail -1)
  [ -n "$amalgamation" ] || { echo "bench_scale.sh: no libsqlite3-sys sources in the cargo registry (build loft first)" >&2; exit 1; }
  echo "compiling $amalgamation into $sqlite_lib_dir (once; a few minutes)" >&2
  mkdir -p "$sqlite_lib_dir"
  gcc -O1 -shared -fPIC -DSQLITE_ENABLE_FTS5 -DSQLITE_THREADSAFE=1 -Wl,-soname,libsqlite3.so.0 \
    "$amalgamation" -o "$sqlite_lib_dir/libsqlite3.so.0.tmp" -lm -lpthread
  mv "$sqlite_lib_dir/libsqlite3.so.0.tmp" "$sqlite_lib_dir/libsqlite3.so.0"
fi
sq_py='
import sqlite3, sys
db, sql = sys.argv[1], sys.argv[2]
if sql == "-":
    sql = sys.stdin.read()
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA foreign_keys = ON")
c.execute("PRAGMA busy_timeout = 5000")
if sql.lstrip().upper().startswith("SELECT"):
    for row in c.execute(sql):
        print(" ".join("" if v is None else str(v) for v in row))
else:
    c.executescript(sql)
c.close()
'
sq() { # db sql (the SQL on stdin when sql is -): prints rows, columns joined by a space
  LD_LIBRARY_PATH=$sqlite_lib_dir python3 -c "$sq_py" "$@"
}
if [ -z "$loft_bin" ]; then
  loft_bin=$root/target/release/loft
  if [ "$build" = 1 ]; then
    echo "building loft --release" >&2
    (cd "$root" && cargo build --release --locked -p loft --bin loft >&2)
  fi
fi
[ -x "$loft_bin" ] || { echo "bench_scale.sh: no loft binary at $loft_bin" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/loft-scalebench-XXXXXX")
loft_pid=
pg_db=
cleanup() {
  [ -n "$loft_pid" ] && kill "$loft_pid" 2>/dev/null && wait "$loft_pid" 2>/dev/null
  if [ -n "$pg_db" ]; then psql "$pg_server" -XqAt -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
admin=scalebench-operator-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
db_args=()
backend="sqlite (file in $tmp/data)"
if [ "$pg" = 1 ]; then
  pg_db=loft_scalebench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
  psql "$pg_server" -XqAt -c "CREATE DATABASE $pg_db" >/dev/null
  db_url="${pg_server%/*}/$pg_db"
  db_args=(--database-url "$db_url")
  backend="postgres ($(psql "$pg_server" -XqAt -c 'SHOW server_version'), database $pg_db)"
fi
start_loft() {
  LOFT_ADMIN_KEY=$admin LOFT_LOG=${LOFT_LOG:-warn} "$loft_bin" serve --data-dir "$tmp/data" \
    --http "127.0.0.1:$port" "${db_args[@]}" \
    --rate-limit-per-key off --rate-limit-per-address off >>"$tmp/loft.log" 2>&1 &
  loft_pid=$!
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$base/v0/health" && return 0; sleep 0.05; done
  echo "bench_scale.sh: loft did not start" >&2; cat "$tmp/loft.log" >&2; exit 1
}
stop_loft() { kill "$loft_pid"; wait "$loft_pid" 2>/dev/null || true; loft_pid=; }
api() { # method path key [body]
  local args=(-fsS -X "$1" "$base$2" -H "Authorization: Bearer $3")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' -d "$4")
  curl "${args[@]}"
}

start_loft
sender=$(api POST /v0/identities "$admin" '{"name":"scale-sender","oversight_mode":"autonomous"}')
reader=$(api POST /v0/identities "$admin" '{"name":"scale-reader","oversight_mode":"autonomous"}')
sender_key=$(jq -r .api_key <<<"$sender")
reader_key=$(jq -r .api_key <<<"$reader")
reader_id=$(jq -r .id <<<"$reader")
reader_addr=$(jq -r .address <<<"$reader")
first=$(api POST /v0/messages/send "$sender_key" "{\"to\":[\"$reader_addr\"],\"subject\":\"template\",\"text\":\"Hello, this is the template message of the scale benchmark: a short note of about the size agents send each other.\"}")
for i in 1 2 3 4; do
  api POST /v0/messages/send "$sender_key" "{\"to\":[\"$reader_addr\"],\"subject\":\"real $i\",\"text\":\"a real message $i\"}" >/dev/null
done
# On PostgreSQL the subject lives with the shared content: every 1,000th bulk copy shares this one.
api POST /v0/messages/send "$sender_key" "{\"to\":[\"$reader_addr\"],\"subject\":\"zebra note\",\"text\":\"a rare word\"}" >/dev/null
stop_loft

# Bulk SQL: copy the reader's first inbox row $2 times, numbered from $1 (exclusive).
# Decimal digits become letters (0->a ... 9->j) so that ids stay base32.
b32='replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(CAST(%s AS TEXT),'"'0','a'),'1','b'),'2','c'),'3','d'),'4','e'),'5','f'),'6','g'),'7','h'),'8','i'),'9','j')"
id_of() { printf "$b32" "$1"; }
digits() { tr 0123456789 abcdefghij <<<"$1"; }
if [ "$pg" = 0 ]; then
  db=$tmp/data/loft.db
  [ -f "$db" ] || db=$(ls "$tmp"/data/*.db | head -1)
  cols=$(sq "$db" "SELECT group_concat(name, ',') FROM pragma_table_info('messages') WHERE name NOT IN ('seq','id','thread_id','message_id','subject','created_at','unread')")
else
  cols=$(psql "$db_url" -XqAt -c "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'messages' AND table_schema = current_schema() AND column_name NOT IN ('seq','id','thread_id','message_id','content_id','unread') AND is_generated = 'NEVER'")
  zebra_content=$(psql "$db_url" -XqAt -c "SELECT content_id FROM messages WHERE owner_id = '$reader_id' ORDER BY seq DESC LIMIT 1")
fi
load() { # from to
  local from=$1 to=$2 n=$(( $2 - $1 ))
  if [ "$pg" = 0 ]; then
    sq "$db" - <<SQL
PRAGMA synchronous = NORMAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT $from + 1 UNION ALL SELECT i + 1 FROM n WHERE i < $to)
INSERT INTO messages (id, thread_id, message_id, subject, created_at, unread, $cols)
SELECT 'msg_bulk' || $(id_of i), 'thr_bulk' || $(id_of 'i / 10'), 'bulk-' || i || '@scale.invalid',
       'bulk message ' || i || CASE WHEN i % 1000 = 0 THEN ' zebra' ELSE '' END,
       t.created_at - ($to - i) * 1000, i % 2, $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$cols")
FROM n, (SELECT * FROM messages WHERE owner_id = '$reader_id' AND folder = 'inbox' ORDER BY seq LIMIT 1) t;
UPDATE mailbox_usage SET bytes = bytes + $n * (SELECT size FROM messages WHERE owner_id = '$reader_id' ORDER BY seq LIMIT 1) WHERE owner_id = '$reader_id';
COMMIT;
ANALYZE;
SQL
  else
    psql "$db_url" -XqAt -v ON_ERROR_STOP=1 <<SQL >/dev/null
BEGIN;
INSERT INTO messages (id, thread_id, message_id, content_id, unread, $cols)
SELECT 'msg_bulk' || $(id_of i), 'thr_bulk' || $(id_of 'i / 10'), 'bulk-' || i || '@scale.invalid',
       CASE WHEN i % 1000 = 0 THEN $zebra_content ELSE t.content_id END,
       (i % 2 = 1), $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$cols")
FROM generate_series($from + 1, $to) AS g(i),
     (SELECT * FROM messages WHERE owner_id = '$reader_id' AND folder = 'inbox' ORDER BY seq LIMIT 1) t;
COMMIT;
ANALYZE;
SQL
  fi
}
# Bulk SQL: N more identities (copies of the reader's row) with M inbox messages each (copies of
# its first inbox row), in transactions of at most a million messages.
load_others() {
  local n=$1 m=$2 domain=${reader_addr#*@} total=$(( $1 * $2 )) from=0 to
  [ "$n" -gt 0 ] || return 0
  local icols ocols
  if [ "$pg" = 0 ]; then
    icols=$(sq "$db" "SELECT group_concat(name, ',') FROM pragma_table_info('identities') WHERE name NOT IN ('seq','id','name','address','display_name')")
    sq "$db" "INSERT INTO identities (id, name, address, $icols)
      WITH RECURSIVE k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < $n)
      SELECT 'idt_other' || $(id_of j), 'other-' || j, 'other-' || j || '@$domain', $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$icols")
      FROM k, (SELECT * FROM identities WHERE id = '$reader_id') t"
  else
    icols=$(psql "$db_url" -XqAt -c "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'identities' AND table_schema = current_schema() AND column_name NOT IN ('seq','id','name','address','display_name') AND is_generated = 'NEVER'")
    psql "$db_url" -XqAt -v ON_ERROR_STOP=1 -c "INSERT INTO identities (id, name, address, $icols)
      SELECT 'idt_other' || $(id_of j), 'other-' || j, 'other-' || j || '@$domain', $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$icols")
      FROM generate_series(1, $n) AS g(j), (SELECT * FROM identities WHERE id = '$reader_id') t" >/dev/null
  fi
  ocols=$(tr , '\n' <<<"$cols" | grep -vx owner_id | paste -sd,)
  while [ "$from" -lt "$total" ]; do
    to=$(( from + 1000000 < total ? from + 1000000 : total ))
    if [ "$pg" = 0 ]; then
      sq "$db" - <<SQL
PRAGMA synchronous = NORMAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT $from + 1 UNION ALL SELECT i + 1 FROM n WHERE i < $to)
INSERT INTO messages (id, owner_id, thread_id, message_id, subject, created_at, unread, $ocols)
SELECT 'msg_other' || $(id_of i), 'idt_other' || $(id_of "((i - 1) / $m + 1)"), 'thr_other' || $(id_of 'i / 10'),
       'other-' || i || '@scale.invalid', 'other message ' || i, t.created_at - ($total - i) * 1000, i % 2,
       $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$ocols")
FROM n, (SELECT * FROM messages WHERE owner_id = '$reader_id' AND folder = 'inbox' ORDER BY seq LIMIT 1) t;
COMMIT;
SQL
    else
      psql "$db_url" -XqAt -v ON_ERROR_STOP=1 <<SQL >/dev/null
INSERT INTO messages (id, owner_id, thread_id, message_id, content_id, unread, $ocols)
SELECT 'msg_other' || $(id_of i), 'idt_other' || $(id_of "((i - 1) / $m + 1)"), 'thr_other' || $(id_of 'i / 10'),
       'other-' || i || '@scale.invalid', t.content_id, (i % 2 = 1), $(sed 's/[a-z_][a-z_0-9]*/t.&/g' <<<"$ocols")
FROM generate_series($from + 1, $to) AS g(i),
     (SELECT * FROM messages WHERE owner_id = '$reader_id' AND folder = 'inbox' ORDER BY seq LIMIT 1) t;
SQL
    fi
    from=$to
  done
}
db_size() {
  if [ "$pg" = 0 ]; then du -cb "$tmp"/data/*.db* | tail -1 | cut -f1
  else psql "$db_url" -XqAt -c "SELECT pg_database_size(current_database())"; fi
}
cursor() { printf 'v1:%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
seq_range() { # min max of the reader's inbox seqs
  if [ "$pg" = 0 ]; then sq "$db" "SELECT MIN(seq) || ' ' || MAX(seq) FROM messages WHERE owner_id = '$reader_id'"
  else psql "$db_url" -XqAt -c "SELECT MIN(seq) || ' ' || MAX(seq) FROM messages WHERE owner_id = '$reader_id'"; fi
}
# p50 and p99 in ms from wrk --latency.
lat() { # url
  local out
  out=$(wrk -t1 -c1 -d"$duration" --latency -H "Authorization: Bearer $reader_key" "$1")
  if grep -q "Non-2xx" <<<"$out"; then echo "bench_scale.sh: $1 answered errors: $(curl -s -H "Authorization: Bearer $reader_key" "$1" | head -c 300)" >&2; exit 1; fi
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
       $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } END { printf "%.2f / %.2f", p50, p99 }' <<<"$out"
}
rss() { awk -v k="$1:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$loft_pid/status"; }

if [ "$others_n" -gt 0 ]; then
  t0=$(date +%s.%N)
  load_others "$others_n" "$others_m"
  echo "others:   $others_n identities with $others_m messages each ($(( others_n * others_m )) messages) loaded in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
  echo
fi
echo "| messages | load s (this step) | database MiB | list start p50/p99 ms | list middle | list end | thread list | thread start | thread middle | thread end | search zebra | RSS MiB (peak) |"
echo "|---:|---:|---:|---|---|---|---|---|---|---|---|---|"
loaded=0
IFS=, read -ra steps <<<"$sizes"
for size in "${steps[@]}"; do
  t0=$(date +%s.%N)
  load "$loaded" "$size"
  load_s=$(echo "$(date +%s.%N) - $t0" | bc)
  loaded=$size
  start_loft
  read -r lo hi < <(seq_range)
  mid=$(( (lo + hi) / 2 ))
  # Thread ids: the thread of the newest, middle and oldest bulk messages.
  t_start="thr_bulk$(digits $(( size / 10 )))"
  t_mid="thr_bulk$(digits $(( size / 20 )))"
  t_end="thr_bulkb"
  row="| $size | $(printf '%.1f' "$load_s") | $(( $(db_size) / 1048576 ))"
  row="$row | $(lat "$base/v0/messages?limit=20")"
  row="$row | $(lat "$base/v0/messages?limit=20&cursor=$(cursor "$mid")")"
  row="$row | $(lat "$base/v0/messages?limit=20&cursor=$(cursor $(( lo + 30 )))")"
  row="$row | $(lat "$base/v0/threads?limit=20")"
  row="$row | $(lat "$base/v0/threads/$t_start")"
  row="$row | $(lat "$base/v0/threads/$t_mid")"
  row="$row | $(lat "$base/v0/threads/$t_end")"
  row="$row | $(lat "$base/v0/messages/search?q=zebra&limit=20")"
  row="$row | $(rss VmRSS) ($(rss VmHWM)) |"
  echo "$row"
  stop_loft
done
echo
echo "command:  scripts/bench_scale.sh $( [ "$pg" = 1 ] && echo --pg ) --sizes $sizes --others $others --duration $duration"
echo "backend:  $backend; ${lo:-?}..${hi:-?} inbox seqs; threads of 10; wrk -t1 -c1 -d$duration --latency per figure"
echo "machine:  nproc $(nproc), $(uname -sm), load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "$build" = 1 ]; then
  echo "loft:     $loft_bin (built from this tree, $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
else
  echo "loft:     $loft_bin (given; its commit is whatever it was built from)"
fi
