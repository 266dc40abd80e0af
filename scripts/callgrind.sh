#!/usr/bin/env bash
# Instructions per heartbeat round trip, counted by callgrind, for the
# reference corosync-qnetd and for our qnetd.
#
# Each server runs under `valgrind --tool=callgrind` while the load generator
# (examples/load) connects N plain clients (full handshake, node lists, votes)
# and then does K rounds in which every client sends one ECHO_REQUEST, one
# client at a time, as idle heartbeats arrive. This is done twice, with K1 and
# K2 rounds; start-up, set-up and shutdown cost the same in both runs, so
#
#     instructions per heartbeat round trip = (Ir(K2) - Ir(K1)) / ((K2 - K1) * N)
#
# Usage: scripts/callgrind.sh [--clients N] [--k1 K] [--k2 K]
#                             [--server reference|ours|both] [--no-build]
#                             [--ours-bin PATH] [--ref-bin PATH] [--port P]
# Output: a table on stdout; JSON and the callgrind profiles of the K2 runs in
# target/callgrind/ (callgrind_annotate works on them; our release binary is
# stripped, so build it with CARGO_PROFILE_RELEASE_STRIP=none
# CARGO_PROFILE_RELEASE_DEBUG=line-tables-only to see function names).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CLIENTS=100
K1=5
K2=25
SERVERS="reference ours"
BUILD=1
PORT=${PORT:-15413}
REF_BIN=${REF_BIN:-$(command -v corosync-qnetd || echo /usr/bin/corosync-qnetd)}
OURS_BIN=${OURS_BIN:-$TARGET/release/qnetd}

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS=$2; shift 2 ;;
    --k1) K1=$2; shift 2 ;;
    --k2) K2=$2; shift 2 ;;
    --server) case "$2" in both) SERVERS="reference ours" ;; *) SERVERS=$2 ;; esac; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --ours-bin) OURS_BIN=$2; shift 2 ;;
    --ref-bin) REF_BIN=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "callgrind.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$K2" -gt "$K1" ] || { echo "callgrind.sh: --k2 must be larger than --k1" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --bin qnetd --example load)
fi
LOAD=$TARGET/release/examples/load
OUT_DIR=$ROOT/target/callgrind
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d /tmp/qnetd-callgrind.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

server_bin() { if [ "$1" = reference ]; then echo "$REF_BIN"; else echo "$OURS_BIN"; fi; }

# Ir of one run: server $1, K rounds $2.
run_one() {
  local srv=$1 k=$2 bin out
  bin=$(server_bin "$srv")
  out=$WORK/callgrind.$srv.$k.out
  rm -f "$WORK/$srv.lock" "$WORK/$srv.sock"
  # No heartbeats (and the longest heartbeat interval, so the server's
  # dead-peer timer stays far away): only the counted echoes reach it.
  if ! "$LOAD" --clients "$CLIENTS" --port "$PORT" --phases setup,rounds --rounds "$k" \
      --no-heartbeats --heartbeat 120000 --connect-concurrency 4 --connect-timeout 120000 \
      --setup-timeout 600 --start-timeout 180 --settle-ms 0 \
      --label "$srv" --scenario callgrind --server-log "$WORK/$srv.$k.log" \
      -- valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$bin" -f -s off -l 127.0.0.1 -p "$PORT" -m 0 \
      -S "lock_file=$WORK/$srv.lock,local_socket_file=$WORK/$srv.sock" \
      >"$WORK/$srv.$k.txt" 2>&1; then
    echo "callgrind.sh: $srv with $k rounds failed:" >&2
    tail -n 20 "$WORK/$srv.$k.txt" >&2
    return 1
  fi
  [ "$k" = "$K2" ] && cp "$out" "$OUT_DIR/callgrind.$srv.$STAMP.out"
  awk '/^(totals|summary):/ { print $2; exit }' "$out"
}

json="{\"date\":\"$STAMP\",\"clients\":$CLIENTS,\"k1\":$K1,\"k2\":$K2,\"servers\":{"
sep=""
printf '%-10s %16s %16s %14s %22s\n' server "Ir(K1=$K1)" "Ir(K2=$K2)" "round trips" "instr/heartbeat RT"
status=0
for srv in $SERVERS; do
  bin=$(server_bin "$srv")
  if [ ! -x "$bin" ]; then
    echo "callgrind.sh: no $srv binary at $bin" >&2; status=1; continue
  fi
  if ir1=$(run_one "$srv" "$K1") && ir2=$(run_one "$srv" "$K2"); then
    rts=$(( (K2 - K1) * CLIENTS ))
    per=$(awk -v a="$ir1" -v b="$ir2" -v n="$rts" 'BEGIN { printf "%.0f", (b - a) / n }')
    printf '%-10s %16s %16s %14s %22s\n' "$srv" "$ir1" "$ir2" "$rts" "$per"
    json+="$sep\"$srv\":{\"ir_k1\":$ir1,\"ir_k2\":$ir2,\"round_trips\":$rts,\"instructions_per_round_trip\":$per}"
    sep=","
  else
    status=1
  fi
done
json+="}}"
echo "$json" >"$OUT_DIR/$STAMP.json"
echo "saved $OUT_DIR/$STAMP.json"
exit $status
