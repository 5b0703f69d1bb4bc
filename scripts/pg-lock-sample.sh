#!/usr/bin/env bash
# Samples, every 50 ms until stopped (or for $1 seconds), how many PostgreSQL backends of the
# benchmark's databases (loft_bench_*) are active and how many of those wait for a lock
# (pg_stat_activity.wait_event_type = 'Lock'), and prints the totals as one line:
#   samples=N active_avg=A lock_waiting_avg=W lock_waiting_share=P% by_event=...
# Run it beside `loft-bench --pg` to see how much of a write load waits on locks.
# Usage: scripts/pg-lock-sample.sh [seconds] [postgres-url]
set -euo pipefail
seconds=${1:-60}
url=${2:-postgres://postgres@127.0.0.1:5432/postgres}
end=$(( $(date +%s) + seconds ))
samples=0; active=0; waiting=0
declare -A events=()
stop=0; trap 'stop=1' INT TERM
while [ "$stop" = 0 ] && [ "$(date +%s)" -lt "$end" ]; do
  out=$(psql "$url" -XAtq -F ' ' -c "SELECT count(*) FILTER (WHERE state = 'active'),
          count(*) FILTER (WHERE wait_event_type = 'Lock'),
          coalesce(string_agg(wait_event, ',') FILTER (WHERE wait_event_type = 'Lock'), '-')
          FROM pg_stat_activity WHERE datname LIKE 'loft_bench_%'" 2>/dev/null || true)
  if [ -n "$out" ]; then
    read -r a w e <<<"$out"
    if [ "$a" -gt 0 ]; then
      samples=$((samples + 1)); active=$((active + a)); waiting=$((waiting + w))
      if [ "$e" != "-" ]; then
        IFS=, read -ra list <<<"$e"
        for ev in "${list[@]}"; do events[$ev]=$(( ${events[$ev]:-0} + 1 )); done
      fi
    fi
  fi
  sleep 0.05
done
by=""
for k in "${!events[@]}"; do by+="$k:${events[$k]} "; done
if [ "$samples" -gt 0 ]; then
  awk -v s="$samples" -v a="$active" -v w="$waiting" -v by="$by" 'BEGIN {
    printf "samples=%d active_avg=%.2f lock_waiting_avg=%.2f lock_waiting_share=%.1f%% by_event=%s\n",
      s, a / s, w / s, (a > 0 ? 100 * w / a : 0), (by == "" ? "none" : by) }'
else
  echo "samples=0 (no active loft_bench_* backends seen)"
fi
