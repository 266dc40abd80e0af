#!/usr/bin/env bash
# Summary of the tests skipped by `make test` (and `make test-ignored`):
# reads the QNETD_SKIP_LOG file that tests/support/skip.rs appends to (one
# `test<TAB>reason<TAB>install command` line per skipped test) and prints,
# per reason, how many tests were skipped, which, and the command that
# installs what is missing, then one install line for all of them.
#
# Usage: scripts/test-skips.sh LOG [--require-all]
# With --require-all any skip makes it exit 1 (CI: nothing may be skipped).
set -euo pipefail

log=${1:?usage: $0 LOG [--require-all]}
require_all=${2:-}

if [ ! -s "$log" ]; then
    echo "test summary: no test skipped"
    exit 0
fi

total=$(wc -l < "$log")
echo
echo "test summary: $total test(s) SKIPPED (they did not run; see $log)"
# Per reason: the count, the install command, the first names.
sort -t$'\t' -k2,2 -k1,1 "$log" | awk -F'\t' '
    function flush() {
        if (n == 0) return
        printf "  %d skipped: %s%s\n%s", n, reason, (install != "" ? " -> " install : ""), names
        if (n > 5) printf "      ... and %d more\n", n - 5
    }
    $2 != reason { flush(); reason = $2; install = $3; n = 0; names = "" }
    { n++; if (n <= 5) names = names "      " $1 "\n" }
    END { flush() }'
packages=$(cut -f3 "$log" | sed -n 's/^apt-get install -y //p' | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "$packages" ]; then
    echo "  to run them: apt-get install -y ${packages% }"
fi

if [ "$require_all" = --require-all ]; then
    echo "test summary: REQUIRE_ALL is set, so a skipped test is a failure"
    exit 1
fi
