#!/usr/bin/env bash
# Runs a bounded fuzzing campaign: each target in turn (one at a time, one job), for
# FUZZ_SECONDS seconds each (default 180), and prints one summary line per target with the
# executions reached and whether it crashed. Logs go to FUZZ_LOGS (default
# fuzz/artifacts/logs/, gitignored). One in-process fuzzer at a time: libFuzzer's -jobs=N
# would fork workers that log to fuzz-N.log files instead; a single run is the same as one job.
# Usage: fuzz/campaign.sh [target ...]    (default: every target)
# Needs: cargo-fuzz and a nightly toolchain; the corpora from fuzz/seeds/make-corpus.sh.
set -uo pipefail

fuzz="$(cd "$(dirname "$0")" && pwd)"
seconds="${FUZZ_SECONDS:-180}"
logs="${FUZZ_LOGS:-$fuzz/artifacts/logs}"
mkdir -p "$logs"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(report_pipeline report_parser config ip_ranges cli frame_decoder csv_line pkcs12 text)
fi

# Extra libFuzzer flags per target: dictionaries, and a 64 KiB input cap for the report
# targets (the largest fixture is 633 KiB; longer inputs only slow every execution down).
extra() {
    case "$1" in
    report_pipeline | report_parser) echo "-dict=$fuzz/dicts/report.dict -max_len=65536" ;;
    config) echo "-dict=$fuzz/dicts/config.dict" ;;
    cli) echo "-dict=$fuzz/dicts/cli.dict" ;;
    csv_line) echo "-dict=$fuzz/dicts/csv_line.dict" ;;
    *) echo "" ;;
    esac
}

cd "$fuzz" || exit 1
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    # shellcheck disable=SC2046
    cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 $(extra "$t") >"$log" 2>&1
    status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    [ -n "$execs" ] || execs="$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')"
    crash="$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|SUMMARY: [A-Za-z]+: [a-z-]+|panicked at [^:]*:[0-9]+' "$log")"
    artifact="$(grep -m1 -o 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //')"
    echo "$t: exit $status, ${execs:-?} executions${crash:+, $crash}${artifact:+, $artifact}"
done
