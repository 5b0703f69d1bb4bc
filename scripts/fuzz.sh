#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes in loft-core, and the SMTP command loop of loft-smtp
# (smtp_session), with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh            each target for 10 s (what the test command runs)
#   scripts/fuzz.sh 3600       each target for an hour (a campaign)
#   scripts/fuzz.sh 60 cursor  one target
#
# Runs shorter than a minute per target build unoptimised (cargo fuzz --dev): a cold optimised
# build took 13 minutes of a CI run for 80 s of fuzzing, the unoptimised one 6, for a tenth to
# a fiftieth of the executions (on a clean clone, smtp_session 77 in 10 s against 3,638, the
# other targets 2,000 to 74,000). The brief run is a smoke test; campaigns build optimised.
# FUZZ_BUILD=dev or FUZZ_BUILD=release chooses either way.
#
# Targets live in fuzz/fuzz_targets; corpora in fuzz/corpus (git-ignored), started from
# fuzz/seeds/TARGET where there are seeds. A crash fails the
# run and leaves its input under fuzz/artifacts/TARGET/ with the command to reproduce it.
# The seed is fixed (FUZZ_SEED, default 1) so that the test command's runs repeat.
# This machine has only a stable toolchain: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags
# libFuzzer's instrumentation needs (the same compiler, no nightly download).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

build=${FUZZ_BUILD:-$([ "$seconds" -lt 60 ] && echo dev || echo release)}
case $build in
    dev) profile=(--dev) ;;
    release) profile=() ;;  # cargo-fuzz's default: optimised, with debug assertions
    *) echo "FUZZ_BUILD is dev or release, not $build" >&2; exit 2 ;;
esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
echo "building the fuzz targets ($build)"
cargo fuzz build "${profile[@]}" --fuzz-dir fuzz
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    # Seeds kept in the repository (whole sessions for smtp_session) start the corpus.
    if [ -d "fuzz/seeds/$t" ]; then cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/"; fi
    log=$(mktemp)
    if cargo fuzz run "${profile[@]}" --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        echo "fuzz $t: ${runs:-?} executions in ${seconds}s ($build build), no crash"
    else
        echo "fuzz $t: FAILED" >&2
        tail -40 "$log" >&2
        failed+=("$t")
    fi
    rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, no crash"
