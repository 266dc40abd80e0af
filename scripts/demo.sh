#!/usr/bin/env bash
# demo.sh QNETD_BINARY -- `make demo`: watch a real Corosync cluster vote through our QNetd.
#
# Brings up two corosync nodes with corosync-qdevice and our qnetd in network namespaces (the
# interop harness, tests/interop/cluster.sh), shows the quorum, the server's view, a network
# partition that only one node survives, and the heal. Everything is taken down at the end, on
# Ctrl-C and on errors. About a minute; needs root and the packages corosync, corosync-qdevice.
#
# Settings: QI_PREFIX [qd], QI_SUBNET [10.77.9], QI_STATE [/tmp/qnetd-demo] as for cluster.sh.
set -u -o pipefail

BIN=${1:?usage: demo.sh QNETD_BINARY}
BIN=$(readlink -f "$BIN")
[ -x "$BIN" ] || { echo "demo.sh: $1 is not an executable" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CL=$HERE/../tests/interop/cluster.sh
export QI_PREFIX=${QI_PREFIX:-qd} QI_SUBNET=${QI_SUBNET:-10.77.9} QI_STATE=${QI_STATE:-/tmp/qnetd-demo}
for t in corosync corosync-qdevice corosync-quorumtool ip unshare; do
    command -v "$t" > /dev/null || { echo "demo.sh: $t is missing (apt-get install -y corosync corosync-qdevice iproute2)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (network namespaces)" >&2; exit 1; }

LOG=$(mktemp /tmp/qnetd-demo-log.XXXXXX)
T0=$SECONDS
cleanup() {
    trap - EXIT INT TERM
    "$CL" down >> "$LOG" 2>&1
    rm -f "$LOG"
}
trap cleanup EXIT
trap 'echo; echo "interrupted: taking the cluster down"; cleanup; exit 130' INT TERM

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
indent() { sed 's/^/    /'; }
fail() { echo "demo.sh: $*" >&2; echo "---- harness log:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
cl() { "$CL" "$@" 2>> "$LOG"; }

# f NODE KEY: a value from `cluster.sh summary` (one key=value line per node)
f() { cl summary | awk -v n="node=$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2) }'; }
wait_for() { # SECS COND...
    local secs=$1 t=0; shift
    until eval "$*"; do
        t=$((t + 1)); [ $t -le "$secs" ] || return 1
        sleep 1
    done
}

"$CL" down > /dev/null 2>&1   # a demo left behind by a killed run

say "1. Starting our qnetd ($BIN) and two corosync nodes with corosync-qdevice, each in its own network namespace ($QI_SUBNET.0/24)"
# shellcheck disable=SC2016 # expanded by the harness inside the qnetd namespace
cl up --nodes 2 --algorithm ffsplit --qnetd "$BIN"' -f -s off -l "$QNETD_ADDR" -p "$QNETD_PORT"' \
    || fail "the cluster did not start"
cl check-quorate --wait 60 > /dev/null || fail "the nodes did not become quorate through the qdevice"

say "2. Node 1: corosync-quorumtool -s. Two node votes plus one from the quorum device (Qdevice): 3 of 3 expected votes"
cl exec 1 corosync-quorumtool -s | indent

say "3. The server's view: qnetd tool -l -v, run in the qnetd namespace against its management socket"
cl exec qnetd "$BIN" tool -l -v | indent

say "4. Partition: node 1 and node 2 can no longer see each other (both still reach qnetd)"
cl partition 2 || fail "partition failed"
echo "    Waiting for the vote: qnetd's ffsplit algorithm gives its vote to the lowest node id (node 1)..."
# shellcheck disable=SC2016 # evaluated by wait_for
wait_for 60 '[ "$(f 1 quorate)" = yes ] && [ "$(f 1 members)" = 1 ] && [ "$(f 2 quorate)" = no ]' \
    || fail "the partition did not settle (node 1 quorate, node 2 not)"
echo "    Node 1: corosync-quorumtool -s. Alone, but quorate: its own vote + the qdevice vote = 2 of 3"
cl exec 1 corosync-quorumtool -s | sed -n '/^Quorate/p;/^Total votes/p;/^Flags/p;/Qdevice/p' | indent
echo "    Node 2: corosync-quorumtool -s. Not quorate: qnetd refused it the vote, so it stops its services"
cl exec 2 corosync-quorumtool -s | sed -n '/^Quorate/p;/^Total votes/p;/^Quorum:/p;/Qdevice/p' | indent

say "5. Heal: the network is back, the nodes merge, and both are quorate again with 3 votes"
cl heal
cl check-quorate --wait 60 > /dev/null || fail "the cluster did not become quorate again after the heal"
cl exec 2 corosync-quorumtool -s | sed -n '/^Quorate/p;/^Total votes/p;/^Membership/,$p' | indent

say "6. Taking everything down (namespaces, daemons, $QI_STATE)"
cleanup
left=$(ip netns list | grep -E "^$QI_PREFIX-(br|qnetd|n[0-9]+)( |$)")
{ [ -z "$left" ] && [ ! -e "$QI_STATE" ]; } || { echo "demo.sh: left behind: $left $(ls -d "$QI_STATE" 2>/dev/null)" >&2; exit 1; }
echo "    done in $((SECONDS - T0)) s; no namespace, process or file left behind"
