#!/usr/bin/env bash
# Load comparison of the reference corosync-qnetd (3.0.3) and our qnetd,
# one after the other on this machine, under the same load.
#
# Builds our release binary and the load generator (examples/load), makes a
# CA / NSS database / PEM files for the run, then runs every scenario REPS
# times against each server (started by the load generator with the same
# command-line arguments, so it samples the right process), and prints the
# comparison table: median and min–max of each figure, and the ratio.
#
# Scenarios (full run; --quick shrinks them for a smoke test):
#   idle-plain   5,000 plain clients set up 10 at a time, then 24 s idle
#                (RSS after start, RSS and CPU with idle clients)
#   echo-plain   1,000 plain clients: 5 s closed-loop echo, 10 s at
#                10,000 echo/s, 3 vote storms (500 clusters split, heal)
#   burst-plain  1,000 plain clients connecting at once (30 s limit)
#   tls          1,000 TLS clients set up 8 at a time, 8 s idle, 5 s echo
#
# Usage: scripts/bench-compare.sh [--quick] [--reps N] [--only reference|ours]
#                                 [--no-build] [--ours-bin PATH] [--ref-bin PATH]
#                                 [--port P] [--keep] [--wait-quiet SECONDS]
# --wait-quiet waits up to SECONDS for the machine to be nearly idle (other
# processes below 20 % of one core over 5 s) before starting: the machine is
# shared, and a busy one skews rates and latencies.
# Output: target/bench-compare/<date>.json (figures and every run),
#         <date>.jsonl (one JSON line per phase and run), <date>.md (the table).
# Exit status: 0 when every run of our server passed without a protocol error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPS=3
QUICK=0
SERVERS="reference ours"
BUILD=1
KEEP=0
WAIT_QUIET=0
PORT=${PORT:-15403}
REF_BIN=${REF_BIN:-$(command -v corosync-qnetd || echo /usr/bin/corosync-qnetd)}
OURS_BIN=${OURS_BIN:-$TARGET/release/qnetd}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; REPS=1; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --only) SERVERS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --ours-bin) OURS_BIN=$2; shift 2 ;;
    --ref-bin) REF_BIN=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --bin qnetd --example load)
fi
LOAD=$TARGET/release/examples/load
[ -x "$LOAD" ] || { echo "bench-compare.sh: no load generator at $LOAD" >&2; exit 2; }

# 5,000 clients need 5,000 sockets in the load generator and as many in the
# server: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 6000 ]; then
  echo "bench-compare.sh: open files limit $(ulimit -n) < 6000; raise the hard limit" >&2
  exit 2
fi

OUT_DIR=$ROOT/target/bench-compare
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT_DIR/$STAMP.jsonl
WORK=$(mktemp -d /tmp/qnetd-bench.XXXXXX)
if [ "$KEEP" = 1 ]; then echo "work directory (kept): $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK/logs"
"$LOAD" pki --tls-dir "$WORK/pki" >/dev/null

if [ "$QUICK" = 1 ]; then
  IDLE_ARGS="--clients 1000 --phases setup,idle --idle 8 --connect-concurrency 10 --setup-timeout 120"
  ECHO_ARGS="--clients 200 --phases setup,echo,latency,storm --echo 2 --latency 3 --rate 2000 --storms 1"
  BURST_ARGS="--clients 200 --phases setup --connect-concurrency 200 --setup-timeout 10"
  TLS_ARGS="--clients 100 --phases setup,idle,echo --idle 3 --echo 2"
else
  IDLE_ARGS="--clients 5000 --phases setup,idle --idle 24 --connect-concurrency 10 --setup-timeout 240"
  ECHO_ARGS="--clients 1000 --phases setup,echo,latency,storm --echo 5 --latency 10 --rate 10000 --storms 3"
  BURST_ARGS="--clients 1000 --phases setup --connect-concurrency 1000 --setup-timeout 30"
  TLS_ARGS="--clients 1000 --phases setup,idle,echo --idle 8 --echo 5 --setup-timeout 120"
fi

server_bin() { if [ "$1" = reference ]; then echo "$REF_BIN"; else echo "$OURS_BIN"; fi; }
# Both servers run without a connection limit (-m 0, the reference's
# default). All simulated nodes share one source address (loopback), so ours
# also lifts its per-address limit on connections before INIT, which a real
# cluster (one address per node) never reaches; the reference has no such
# setting.
ours_only() { if [ "$1" = ours ]; then echo ",max_preinit_clients_per_addr=0"; fi; }

failed_ours=0
declare -A missing=()

# One run: server $1, scenario $2, repetition $3.
run() {
  local srv=$1 sc=$2 rep=$3 bin args tls=off extra="" log rc
  bin=$(server_bin "$srv")
  if [ ! -x "$bin" ]; then
    [ -n "${missing[$srv]:-}" ] || echo "  $srv: no binary at $bin, skipped" >&2
    missing[$srv]=1
    [ "$srv" = ours ] && failed_ours=1
    return 0
  fi
  case "$sc" in
    idle-plain) args=$IDLE_ARGS ;;
    echo-plain) args=$ECHO_ARGS ;;
    burst-plain) args=$BURST_ARGS ;;
    tls) args="$TLS_ARGS --tls --tls-dir $WORK/pki"; tls=on; extra=",nss_db_dir=$WORK/pki" ;;
  esac
  log=$WORK/logs/$srv-$sc-$rep
  rm -f "$WORK/$srv.lock" "$WORK/$srv.sock"
  set +e
  # shellcheck disable=SC2086 # $args is a list of options
  "$LOAD" $args --port "$PORT" --label "$srv" --scenario "$sc" --rep "$rep" \
    --json-out "$JSONL" --server-log "$log.server.log" \
    -- "$bin" -f -s "$tls" -l 127.0.0.1 -p "$PORT" -m 0 \
    -S "lock_file=$WORK/$srv.lock,local_socket_file=$WORK/$srv.sock$extra$(ours_only "$srv")" \
    >"$log.txt" 2>&1
  rc=$?
  set -e
  local summary
  summary=$(grep -E '^(setup|idle|echo|latency|storm) ' "$log.txt" | sed -E 's/^([a-z]+) .*  ([^ ].*)$/\1: \2/' |
    awk 'BEGIN{ORS=" | "} {print}' | sed 's/ | $//' || true)
  printf '  %-9s %-11s #%s  exit %s  %s\n' "$srv" "$sc" "$rep" "$rc" "${summary:0:220}"
  if [ "$rc" != 0 ]; then
    { grep -E '^  |protocol error|^load:' "$log.txt" || true; } | head -n 4 | sed 's/^/      /'
    # The reference is expected to collapse in the burst; anything else from
    # our server is a failure.
    [ "$srv" = ours ] && failed_ours=1
  fi
  return 0
}

# Busy ticks of all CPUs (user nice system irq softirq steal) from /proc/stat.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
if [ "$WAIT_QUIET" -gt 0 ]; then
  hz=$(getconf CLK_TCK)
  deadline=$(( $(date +%s) + WAIT_QUIET ))
  while :; do
    b0=$(busy_ticks); sleep 5; b1=$(busy_ticks)
    pct=$(( (b1 - b0) * 100 / (5 * hz) ))
    if [ "$pct" -lt 20 ]; then echo "machine quiet ($pct % of a core busy)"; break; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "machine still busy ($pct % of a core) after ${WAIT_QUIET} s: measuring anyway"; break
    fi
  done
fi

echo "bench-compare: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), reps $REPS$([ "$QUICK" = 1 ] && echo ', quick')"
echo "  reference: $REF_BIN"
echo "  ours:      $OURS_BIN"
t0=$(date +%s)
for rep in $(seq 1 "$REPS"); do
  for sc in idle-plain echo-plain burst-plain tls; do
    for srv in $SERVERS; do
      run "$srv" "$sc" "$rep"
    done
  done
done
echo "runs took $(( $(date +%s) - t0 )) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$LOAD" compare "$JSONL" --ref reference --ours ours --out "$OUT_DIR/$STAMP.json" | tee "$OUT_DIR/$STAMP.md"
echo
echo "saved $OUT_DIR/$STAMP.json (figures and runs), $STAMP.jsonl, $STAMP.md"
echo "note: 'other %' in the run logs is CPU used by other processes; a busy machine skews rates and latencies."
exit $failed_ours
