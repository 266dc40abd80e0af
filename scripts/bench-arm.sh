#!/usr/bin/env bash
# The load figures of bench-compare.sh for the ARM binaries (dist/qnetd-aarch64,
# dist/qnetd-armv7) and, for comparison, the x86_64 one (dist/qnetd-x86_64).
#
# On this x86_64 machine the ARM binaries run under qemu-user, so times,
# rates and RSS are qemu's, not a board's: only the ratios between the
# binaries, and between the phases of one binary, mean something. On a real
# board, run the same script with RUNNER= (empty) and the board's binary:
#
#   scripts/bench-arm.sh                   # all three, ARM under qemu
#   RUNNER= ARCHES=aarch64 scripts/bench-arm.sh   # on an aarch64 board
#
# Instruction counts per heartbeat (make callgrind) are for the host only:
# valgrind cannot run foreign binaries and the qemu-user here has no plugins.
#
# Output: one bench-compare run per binary under target/bench-compare/, and a
# summary table on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCHES=${ARCHES:-x86_64 aarch64 armv7}
ARGS=${BENCH_ARGS:---quick}
WORK=$(mktemp -d /tmp/qnetd-bench-arm.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

runner_for() {
    if [ -n "${RUNNER+x}" ]; then echo "$RUNNER"; return; fi
    case "$1" in
        x86_64) echo "" ;;
        aarch64) echo qemu-aarch64-static ;;
        armv7) echo qemu-arm-static ;;
    esac
}

cd "$ROOT"
cargo build --release --example load
for arch in $ARCHES; do
    [ -x "dist/qnetd-$arch" ] || make "$( [ "$arch" = x86_64 ] && echo static || echo "$arch")"
    runner=$(runner_for "$arch")
    wrapper=$WORK/qnetd-$arch
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$runner" "$ROOT/dist/qnetd-$arch" > "$wrapper"
    chmod +x "$wrapper"
    echo "=== $arch ${runner:+(under $runner)}"
    # shellcheck disable=SC2086
    scripts/bench-compare.sh $ARGS --only ours --no-build --ours-bin "$wrapper" \
        | tee "$WORK/$arch.out" | grep -E '^\| (RSS|server CPU|echo p99|vote storm, clusters|TLS clients)' || true
done
