#!/usr/bin/env bash
# Run one atheris fuzz target for a bounded time: scripts/fuzz.sh TARGET SECONDS [libFuzzer args]
#
# TARGET is a name of fuzz/targets.py (http11, http11_h11, http1_diff, http2, hpack,
# websocket). Installs the `fuzz` extra into .venv when atheris is missing. The working corpus
# (grown from the seeds in fuzz/corpus/TARGET) and the crash/timeout artifacts go under
# .fuzz/TARGET/ (gitignored). libFuzzer stops at its first crash; this script then starts it
# again on the grown corpus until SECONDS are used up, so one finding does not end a long run.
# The last line printed is a summary: "fuzz.sh: TARGET runs=N cov=C ft=F corpus=K crashes=X".
# Environment: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per input, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer args]" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2

python=.venv/bin/python
if [ ! -x "$python" ]; then
    python3 -m venv .venv
fi
if ! "$python" -c "import atheris" 2>/dev/null; then
    "$python" -m pip install -q --disable-pip-version-check -e '.[fuzz]'
fi

work=.fuzz/$target
mkdir -p "$work/corpus" "$work/artifacts"
seeds=fuzz/corpus/$target
[ -d "$seeds" ] || seeds=

runs=0
crashes=0
last_stats=""
deadline=$(( $(date +%s) + seconds ))
while :; do
    left=$(( deadline - $(date +%s) ))
    [ "$left" -gt 0 ] || break
    log=$work/last.log
    status=0
    PYTHONPATH=. "$python" -m fuzz.run "$target" "$work/corpus" ${seeds:+"$seeds"} \
        -max_total_time="$left" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$work/artifacts/" \
        -print_final_stats=1 "$@" >"$log" 2>&1 || status=$?
    cat "$log" >>"$work/fuzz.log"
    done_runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    runs=$(( runs + ${done_runs:-0} ))
    stats=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    [ -n "$stats" ] && last_stats=$stats
    if [ "$status" -ne 0 ]; then
        if grep -qE 'ERROR: libFuzzer|Uncaught Python exception|==ERROR' "$log"; then
            crashes=$(( crashes + 1 ))
            grep -E 'Test unit written to' "$log" | tail -1 >&2 || true
            grep -A3 -E 'Uncaught Python exception' "$log" | head -6 >&2 || true
            continue
        fi
        echo "fuzz.sh: the fuzzer failed to start (status $status):" >&2
        tail -20 "$log" >&2
        exit "$status"
    fi
done
cov=$(echo "$last_stats" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last_stats" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corpus=$(find "$work/corpus" -type f | wc -l)
echo "fuzz.sh: $target runs=$runs cov=${cov:-0} ft=${ft:-0} corpus=$corpus crashes=$crashes"
[ "$crashes" -eq 0 ]
