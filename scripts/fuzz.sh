#!/bin/sh
# make fuzz: runs every cargo-fuzz target for FUZZ_SECONDS (one at a time),
# prints executions and coverage per target from libFuzzer's final lines
# (stat::number_of_executed_units, the last "cov:"), appends each run to
# fuzz/runs.tsv and prints the running totals across sessions.
#
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_TARGETS  targets to run (default: all five)
#   FUZZ_SANITIZER cargo fuzz's -s: none (default) or address. Every crate
#                 of ours forbids unsafe code, so AddressSanitizer has
#                 nothing of ours to watch; without it the targets run 5 to
#                 8 times faster. Debug assertions and overflow checks stay
#                 on either way (cargo fuzz's default).
#   CARGO         cargo (default cargo)
#   FUZZ_REPLAY=1 (make fuzz-replay) runs every committed corpus input of
#                 each target once (libFuzzer -runs=0) and nothing else: the
#                 corpora as a regression test, in seconds; runs.tsv is not
#                 touched.
#
# A crash stops the run: libFuzzer leaves the input in fuzz/artifacts/TARGET/;
# copy it to fuzz/corpus/TARGET/crash-NAME-regression (kept by .gitignore)
# once fixed, so every later run replays it first.
set -eu

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-frame msg_roundtrip instance tls_starttls mgmt}
cargo=${CARGO:-cargo}
sanitizer=${FUZZ_SANITIZER:-none}
cd "$(dirname "$0")/../fuzz"
runs=runs.tsv
[ -f "$runs" ] || printf 'date\ttarget\tseconds\texecutions\tcov\tft\tsanitizer\n' > "$runs"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz TARGET LIBFUZZER-FLAGS...: runs TARGET over its corpus into $log; on
# a failure prints the log's end and stops.
fuzz() {
    t=$1
    shift
    mkdir -p "corpus/$t"
    if ! RUSTC_BOOTSTRAP=1 "$cargo" fuzz run -s "$sanitizer" "$t" "corpus/$t" -- \
        -max_len=4096 "$@" > "$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
}

if [ "${FUZZ_REPLAY:-}" = 1 ]; then
    printf '%-14s %8s %8s\n' target inputs cov
    for t in $targets; do
        fuzz "$t" -runs=0
        inputs=$(find "corpus/$t" -type f | wc -l)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
        printf '%-14s %8s %8s\n' "$t" "$inputs" "${cov:-?}"
    done
    exit 0
fi

printf '%-14s %14s %8s %8s\n' target executions cov ft
for t in $targets; do
    fuzz "$t" -max_total_time="$seconds" -print_final_stats=1
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    printf '%-14s %14s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$t" "$seconds" \
        "${execs:-0}" "${cov:-0}" "${ft:-0}" "$sanitizer" >> "$runs"
done

echo
echo "totals across sessions (fuzz/runs.tsv; the goal is 10^8 per target):"
printf '%-14s %14s %10s %8s\n' target executions seconds 'last cov'
awk -F '\t' 'NR > 1 { e[$2] += $4; s[$2] += $3; c[$2] = $5 }
    END { for (t in e) printf "%-14s %14d %10d %8s\n", t, e[t], s[t], c[t] }' "$runs" | sort
