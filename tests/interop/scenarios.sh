#!/usr/bin/env bash
# scenarios.sh -- interop scenarios: real corosync + corosync-qdevice against a QNetd server.
#
#   scenarios.sh ['QNETD_COMMAND'] [SCENARIO...]
#
# QNETD_COMMAND runs in the foreground inside the qnetd namespace and gets
# QNETD_ADDR, QNETD_PORT, QNETD_TLS (off|on|req) and, with TLS, QNETD_NSSDB /
# QNETD_TLS_{CA,CERT,KEY}_PEM in its environment (see cluster.sh).  Empty or
# "reference" means the C server:
#     corosync-qnetd -f -d -s "$QNETD_TLS" -l "$QNETD_ADDR" -p "$QNETD_PORT"
# SCENARIO names: a b c d e f g h i, and the pairing scenarios p p3 q (default: a-i in that
# order, plus p p3 q when QI_PAIR_CMD is set).
# Prints PASS/FAIL/SKIP per scenario with evidence and ends with
# "N passed, M failed[, K skipped]"; exits 1 if any scenario failed.
#
# Environment: QI_STATE, QI_PREFIX, QI_SUBNET, QI_PORT as for cluster.sh (the
# runner defaults to its own /tmp/qnetd-interop-scenarios, prefix "qs",
# subnet 10.77.1 so it never disturbs a cluster started by hand);
# QI_RESULTS: where daemon logs of failed scenarios are copied
# [/tmp/qnetd-interop-results]; QI_WAIT: max seconds per quorum change [60].
# Pairing scenarios (p, p3, q; SKIPped unless QI_PAIR_CMD is set): QI_PAIR_CMD runs with bash on
# the qnetd host (the qnetd command's variables plus QI_PAIR_NODES=N); the LAST line of its
# stdout is the node command, run as root with bash -c on node 1 (p, p3) or on every node (q),
# within QI_PAIR_DEADLINE seconds [180]. Scenario pn (only when named) runs the node command
# with a wrong pin and a wrong token first; pe (only when named) runs QI_PAIR_CMD --ttl 2 (a
# `qnetd pair` command) and its node command after the window expired; pd (only when named) pairs
# as p, then runs the node command of a new window again. Scenario pu (only when named) pairs as p, then runs
# QI_UNPAIR_CMD on the qnetd host and checks that the qdevice vote is gone. QI_QNETD_SSHD=1 starts the fake sshd on the qnetd host
# (cluster.sh up --qnetd-sshd) for these scenarios, for pairing commands that ssh to it.

set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CL=$HERE/cluster.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"
# the runner's own defaults, so that it never disturbs a cluster started by hand
qi_settings /tmp/qnetd-interop-scenarios qs 10.77.1
QI_RESULTS=${QI_RESULTS:-/tmp/qnetd-interop-results}
WAIT=${QI_WAIT:-60}

QCMD=${1:-reference}
[ "$QCMD" = reference ] && QCMD=$QI_REFERENCE_CMD
shift || true
SCEN=("$@")
PAIR_CMD=${QI_PAIR_CMD:-}
PAIR_DEADLINE=${QI_PAIR_DEADLINE:-180}
UNPAIR_CMD=${QI_UNPAIR_CMD:-}
QSSHD=()
[ "${QI_QNETD_SSHD:-0}" = 1 ] && QSSHD=(--qnetd-sshd)
if [ ${#SCEN[@]} -eq 0 ]; then
    SCEN=(a b c d e f g h i)
    [ -n "$PAIR_CMD" ] && SCEN+=(p p3 q)
fi

PASSED=0 FAILED=0 SKIPPED=0
RESULTS=()
T0=$SECONDS

say() { echo "$*"; }
ev()  { sed 's/^/      /'; }               # indent evidence
CUR=""  # current scenario id
CLLOG=""

cl() { "$CL" "$@" 2>> "$CLLOG"; }           # cluster.sh, its progress log into the scenario log

SUM=""
refresh() { SUM=$("$CL" summary 2>> "$CLLOG"); }
# f NODE KEY -> value of KEY in node NODE's summary line
f() { awk -v n="node=$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) { p = index($i, "="); if (substr($i, 1, p - 1) == k) { print substr($i, p + 1); exit } } }' <<< "$SUM"; }
# is NODE key=value... -> all hold in the last summary
is() { local n=$1 kv; shift; for kv in "$@"; do [ "$(f "$n" "${kv%%=*}")" = "${kv#*=}" ] || return 1; done; }
show() { grep -E '^node=' <<< "$SUM" | sed -E 's/ (rc|qdevice|blocked)=[^ ]*//g' | ev; }

# wait_until DESC COND : poll (1 s) until eval COND succeeds, at most $WAIT s
wait_until() {
    local desc=$1 cond=$2 t0=$SECONDS
    while :; do
        refresh
        if eval "$cond"; then say "    ok after $((SECONDS - t0))s: $desc"; show; return 0; fi
        if [ $((SECONDS - t0)) -ge "$WAIT" ]; then say "    TIMEOUT after ${WAIT}s waiting for: $desc"; show; return 1; fi
        sleep 1
    done
}
# hold SECS DESC COND : COND must stay true for SECS seconds (sampled every second)
hold() {
    local secs=$1 desc=$2 cond=$3 t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$secs" ]; do
        refresh
        eval "$cond" || { say "    NOT STABLE after $((SECONDS - t0))s: $desc"; show; return 1; }
        sleep 1
    done
    say "    stable for ${secs}s: $desc"
}

check_quorate() { # [SECS [--no-device]]: print what check-quorate saw
    local out rc w=${1:-$WAIT}
    [ $# -gt 0 ] && shift
    out=$("$CL" check-quorate --wait "$w" "$@" 2>> "$CLLOG"); rc=$?
    sed -E 's/ (rc|qdevice|blocked)=[^ ]*//g' <<< "$out" | ev
    return $rc
}

up() { # args for cluster.sh up
    say "    cluster.sh up $*"
    if ! "$CL" up --qnetd "$QCMD" "$@" 2>> "$CLLOG"; then
        say "    cluster.sh up FAILED:"; tail -n 15 "$CLLOG" | ev; return 1
    fi
}

qnetd_view() { # extra evidence from the reference server's own tool, when present
    local out
    out=$("$CL" exec qnetd timeout 5 corosync-qnetd-tool -l -v 2>/dev/null) || return 0
    [ -n "$out" ] && { say "    corosync-qnetd-tool -l -v (server view):"; grep -E "$1" <<< "$out" | ev; }
    return 0
}

qnetd_mem() { # evidence only: resident memory of the QNetd server process(es)
    local out
    out=$("$CL" mem 2>/dev/null | awk '$1 == "qnetd"')
    [ -n "$out" ] && { say "    qnetd server memory (/proc/PID/status):"; ev <<< "$out"; }
    return 0
}

begin() {
    CUR=$1; shift
    CLLOG=$(mktemp /tmp/qnetd-interop-scen-XXXXXX.log)
    SC_T0=$SECONDS
    say ""
    say "=== ($CUR) $*"
}
finish() { # status reason
    local st=$1 why=${2:-}
    if [ "$st" = FAIL ]; then
        local dst; dst=$QI_RESULTS/$(date +%Y%m%d-%H%M%S)-$CUR
        mkdir -p "$dst"
        "$CL" status > "$dst/status.txt" 2>&1
        cp "$CLLOG" "$dst/cluster.sh.log" 2>/dev/null
        for d in "$QI_STATE"/*/; do
            [ -d "$d" ] || continue
            for l in "$d"*.log "$d"etc/corosync.conf "$d"corosync.conf "$d"pair-cmd.out; do [ -f "$l" ] && cp "$l" "$dst/$(basename "$d")-$(basename "$l")"; done
        done
        for l in "$QI_STATE"/*.log; do [ -f "$l" ] && cp "$l" "$dst/"; done
        say "    (full status and daemon logs saved in $dst)"
    fi
    "$CL" down 2>> "$CLLOG" > /dev/null
    rm -f "$CLLOG"
    case "$st" in PASS) PASSED=$((PASSED + 1));; FAIL) FAILED=$((FAILED + 1));; SKIP) SKIPPED=$((SKIPPED + 1));; esac
    RESULTS+=("$st ($CUR) $DESC${why:+ -- $why} [$((SECONDS - SC_T0))s]")
    say "$st ($CUR) $DESC${why:+ -- $why} [$((SECONDS - SC_T0))s]"
}

# partition_and_heal DESC COND VIEW NODE...: cut NODE... off from the other nodes, wait until COND
# holds (DESC says what it means) and stays true for 5 s, show the server's view (lines matching
# VIEW, when not empty), heal, and wait until every node is quorate again. On failure it calls
# finish FAIL and returns 1.
partition_and_heal() {
    local desc=$1 cond=$2 view=$3; shift 3
    say "    cluster.sh partition $*"
    cl partition "$@" || { finish FAIL "partition failed"; return 1; }
    wait_until "$desc" "$cond" || { finish FAIL "partition outcome not reached"; return 1; }
    hold 5 "exactly one side quorate" "$cond" || { finish FAIL "partition outcome not stable"; return 1; }
    [ -z "$view" ] || qnetd_view "$view"
    say "    cluster.sh heal"
    cl heal
    check_quorate || { finish FAIL "not quorate after heal"; return 1; }
}

# 3 nodes, lms, node 1 cut off: {2,3} keep quorum with 2 + 2 qdevice votes of 5 (f and p3)
LMS_SPLIT_1_DESC="{2,3} quorate with 2+2 of 5 votes, {1} not quorate"
LMS_SPLIT_1='is 1 quorate=no members=1 && is 2 quorate=yes members=2,3 total=4 qdevice_counted=yes && is 3 quorate=yes members=2,3 total=4 qdevice_counted=yes'

# ------------------------------------------------------------------ scenarios

sc_a() {
    DESC="2-node ffsplit: both nodes quorate, expected votes 3, qdevice vote counted"
    begin a "$DESC"
    up --nodes 2 --algorithm ffsplit || { finish FAIL "cluster did not start"; return; }
    say "    check-quorate (every node: Quorate, expected 3, total = members + 1 qdevice vote):"
    if check_quorate; then qnetd_view 'Cluster|Node ID|Vote'; qnetd_mem; finish PASS; else finish FAIL "not quorate with qdevice vote"; fi
}

sc_b() {
    DESC="2-node ffsplit partition 1|2: only the tie-breaker side (node 1, lowest id) stays quorate; heal: both quorate"
    begin b "$DESC"
    up --nodes 2 --algorithm ffsplit || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate before partition"; return; }
    partition_and_heal "node 1 quorate (1 + qdevice vote), node 2 not quorate" \
        'is 1 quorate=yes members=1 total=2 qdevice_counted=yes && is 2 quorate=no members=2 qdevice_counted=no' \
        'Node ID|Membership|Vote' 2 || return
    refresh; { is 1 members=1,2 && is 2 members=1,2; } || { finish FAIL "membership not merged after heal"; return; }
    finish PASS
}

# node2_out_and_back ID HOW STOP_ARGS...: a 2-node ffsplit cluster; node 2 goes away
# (cluster.sh stop-node 2 STOP_ARGS; HOW says how); node 1 must stay quorate alone with the
# qdevice vote (2 of 3) for 5 s; node 2 then rejoins and every node is quorate again.
node2_out_and_back() {
    local id=$1 how=$2; shift 2
    begin "$id" "$DESC"
    up --nodes 2 --algorithm ffsplit || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate before node 2 goes"; return; }
    say "    cluster.sh stop-node 2 $*  ($how)"
    cl stop-node 2 "$@"
    local cond='is 1 quorate=yes members=1 total=2 qdevice_counted=yes && is 2 corosync=stopped'
    wait_until "node 1 quorate alone (1 + qdevice vote = 2 of 3)" "$cond" || { finish FAIL "node 1 lost quorum"; return; }
    hold 5 "node 1 stays quorate" "$cond" || { finish FAIL "node 1 not stable"; return; }
    say "    cluster.sh start-node 2"
    cl start-node 2 || { finish FAIL "node 2 did not restart"; return; }
    check_quorate || { finish FAIL "not quorate after node 2 rejoined"; return; }
    finish PASS
}

sc_c() {
    DESC="2-node ffsplit, node 2 stopped: node 1 stays quorate with the qdevice vote; node 2 rejoins"
    node2_out_and_back c "corosync-qdevice-tool -H, then SIGTERM corosync"
}

sc_d() {
    DESC="2-node ffsplit, qnetd stopped: cluster stays quorate without the qdevice vote; qnetd restarted: qdevice reconnects"
    begin d "$DESC"
    up --nodes 2 --algorithm ffsplit || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate before stopping qnetd"; return; }
    say "    cluster.sh kill-qnetd   (SIGTERM)"
    cl kill-qnetd
    # shellcheck disable=SC2016 # evaluated by wait_until
    local cond='is 1 quorate=yes members=1,2 total=2 qdevice_counted=no && is 2 quorate=yes members=1,2 total=2 qdevice_counted=no && [ "$(f 1 qdevice_state)" != Connected ] && [ "$(f 2 qdevice_state)" != Connected ]'
    wait_until "both nodes quorate on their own 2 votes, qdevice vote lost, qdevice not connected" "$cond" || { finish FAIL "unexpected state with qnetd down"; return; }
    hold 8 "cluster stays quorate while qnetd is down" "$cond" || { finish FAIL "not stable with qnetd down"; return; }
    say "    cluster.sh start-qnetd"
    cl start-qnetd || { finish FAIL "qnetd did not restart"; return; }
    check_quorate || { finish FAIL "qdevice vote not back after qnetd restart"; return; }
    refresh; { is 1 qdevice_state=Connected && is 2 qdevice_state=Connected; } || { finish FAIL "qdevice not reconnected"; return; }
    qnetd_view 'Node ID|Vote'
    finish PASS
}

sc_e() {
    DESC="4-node ffsplit even split 2|2: only the half with the lowest node id stays quorate; heal: all quorate"
    begin e "$DESC"
    up --nodes 4 --algorithm ffsplit || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate before partition"; return; }
    qnetd_mem
    partition_and_heal "{1,2} quorate with 2+1 of 5 votes, {3,4} not quorate" \
        'is 1 quorate=yes members=1,2 total=3 qdevice_counted=yes && is 2 quorate=yes members=1,2 total=3 qdevice_counted=yes && is 3 quorate=no members=3,4 && is 4 quorate=no members=3,4' \
        '' 3 4 || return
    finish PASS
}

sc_f() {
    DESC="3-node lms partition 1|2: the 2-node side keeps quorum (2 + 2 qdevice votes of 5), node 1 alone loses it; heal"
    begin f "$DESC"
    up --nodes 3 --algorithm lms || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate before partition"; return; }
    partition_and_heal "$LMS_SPLIT_1_DESC" "$LMS_SPLIT_1" '' 1 || return
    finish PASS
}

sc_g() {
    DESC="2-node ffsplit over TLS (certutil flow as pcs/pvecm qdevice setup): quorate, TLS active with client certificate"
    begin g "$DESC"
    local t
    for t in corosync-qnetd-certutil corosync-qdevice-net-certutil certutil pk12util openssl; do
        command -v "$t" > /dev/null || { finish SKIP "missing $t (apt-get install libnss3-tools openssl)"; return; }
    done
    up --nodes 2 --algorithm ffsplit --tls on || { finish FAIL "cluster (with TLS setup) did not start"; return; }
    check_quorate || { finish FAIL "not quorate over TLS"; return; }
    refresh
    { is 1 tls_active=Yes && is 2 tls_active=Yes; } || { say "    qdevice reports TLS active: n1=$(f 1 tls_active) n2=$(f 2 tls_active)"; finish FAIL "TLS not active"; return; }
    say "    corosync-qdevice-tool -sv on node 1:"
    "$CL" exec 1 corosync-qdevice-tool -sv 2>/dev/null | grep -E '^TLS' | ev
    qnetd_view 'Node ID|TLS'
    qnetd_mem
    finish PASS
}

sc_h() {
    DESC="3-node lms, nodes 3 and 2 stopped one after the other: last man standing node 1 stays quorate (1 + 2 qdevice votes of 5)"
    begin h "$DESC"
    up --nodes 3 --algorithm lms || { finish FAIL "cluster did not start"; return; }
    check_quorate || { finish FAIL "not quorate at start"; return; }
    say "    cluster.sh stop-node 3"
    cl stop-node 3
    wait_until "nodes 1,2 quorate" 'is 1 quorate=yes members=1,2 total=4 qdevice_counted=yes && is 2 quorate=yes members=1,2 total=4' || { finish FAIL "lost quorum after 1 stop"; return; }
    say "    cluster.sh stop-node 2"
    cl stop-node 2
    local cond='is 1 quorate=yes members=1 total=3 qdevice_counted=yes'
    wait_until "node 1 alone quorate with 3 of 5 votes" "$cond" || { finish FAIL "last man standing lost quorum"; return; }
    hold 5 "node 1 stays quorate" "$cond" || { finish FAIL "not stable"; return; }
    finish PASS
}

sc_i() {
    DESC="2-node ffsplit, node 2 crashes (SIGKILL corosync+qdevice): node 1 stays quorate; node 2 rejoins"
    node2_out_and_back i "SIGKILL: a crash" --kill
}

# ------------------------------------------------------------ pairing scenarios
# A cluster without a quorum device and without certificates; QI_PAIR_CMD (on the qnetd host)
# prints the node command; one command run as root must end with every node quorate through the
# qdevice over TLS.

NODE_CMD=""

# conf_flat FILE -> "section.sub.key=value" lines (one statement per line, as Proxmox VE and
# corosync.conf.in write it); conf_get FILE KEY -> the first value of KEY
conf_flat() {
    awk '{ sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
         $0 == "" { next }
         /\{$/ { n = $0; sub(/[ \t]*\{$/, "", n); st[++d] = n; next }
         $0 == "}" { if (d > 0) d--; next }
         /:/ { k = $0; sub(/[ \t]*:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
               p = ""; for (i = 1; i <= d; i++) p = p st[i] "."; print p k "=" v }' "$1" 2>/dev/null
}
conf_get() { conf_flat "$1" | awk -v k="$2" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }'; }

pair_node_command() { # NODES [OPTION...] : run QI_PAIR_CMD [OPTION...] on the qnetd host; NODE_CMD = the last line of its stdout
    local n=$1 cmd out rc; shift
    cmd="$PAIR_CMD${*:+ $*}"
    say "    pairing command on the qnetd host (QI_PAIR_NODES=$n): $cmd"
    out=$(QI_PAIR_NODES=$n "$CL" qnetd-cmd --timeout "$WAIT" "$cmd" 2>> "$CLLOG"); rc=$?
    if [ $rc != 0 ]; then say "    pairing command failed (exit $rc); last lines of the log:"; tail -n 10 "$CLLOG" | ev; return 1; fi
    NODE_CMD=${out##*$'\n'}
    [ -n "$NODE_CMD" ] || { say "    pairing command printed no node command (its last stdout line is empty)"; return 1; }
    say "    node command (last line of its stdout): $NODE_CMD"
}

node_run() { # I : NODE_CMD as root on node I, with bash -c, a root login environment and a deadline
    local i=$1 out rc
    say "    node $i: running it as root (bash -c, deadline ${PAIR_DEADLINE}s)"
    # shellcheck disable=SC2016
    out=$("$CL" exec "$i" bash -c 'cd /root 2>/dev/null || cd /
        exec env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            timeout -k 10 "$1" bash -c "$2"' node-cmd "$PAIR_DEADLINE" "$NODE_CMD" < /dev/null 2>&1); rc=$?
    printf '%s\n' "$out" > "$QI_STATE/n$i/pair-cmd.out" 2>/dev/null
    if [ -n "${out//[[:space:]]/}" ]; then
        say "    node $i: exit $rc; its last output lines:"
        printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 8 | ev
    else
        say "    node $i: exit $rc; no output"
    fi
    [ $rc = 0 ]
}

check_tls_all() { # NODES : every node's qdevice reports TLS active with a client certificate sent
    local i line bad=0
    say "    corosync-qdevice-tool -sv, TLS line of every node:"
    for i in $(seq 1 "$1"); do
        line=$("$CL" exec "$i" timeout 5 corosync-qdevice-tool -sv 2>/dev/null | grep '^TLS active:' | tr -s '\t' ' ')
        echo "node $i: ${line:-(no TLS line)}" | ev
        [[ $line == "TLS active: Yes (client certificate sent)" ]] || bad=1
    done
    return $bad
}

check_device_conf() { # LABEL FILE V0 [ALGORITHM] : version raised, quorum.device { model net, host QADDR }
    local label=$1 f=$2 v0=$3 want=${4:-} v model host algo votes why=""
    v=$(conf_get "$f" totem.config_version); model=$(conf_get "$f" quorum.device.model)
    host=$(conf_get "$f" quorum.device.net.host); algo=$(conf_get "$f" quorum.device.net.algorithm)
    votes=$(conf_get "$f" quorum.device.votes)
    say "    $label: config_version $v0 -> ${v:-none}; quorum.device: model=${model:-none} net.host=${host:-none} net.algorithm=${algo:-none} votes=${votes:-(no votes line)}"
    [[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt "$v0" ] || why+=" config_version-not-higher"
    [ "$model" = net ] || why+=" model!=net"
    [ "$host" = "$QNETD_IP" ] || why+=" host!=$QNETD_IP"
    [ -z "$want" ] || [ "$algo" = "$want" ] || why+=" algorithm!=$want"
    [ "$want" != lms ] || [ -z "$votes" ] || why+=" votes-line-with-lms"
    [ -z "$why" ] || { say "      -> FAIL:$why"; return 1; }
}

no_device_before() { # NODES FILE... : quorate without a qdevice, no quorum.device, no node cert store
    local n=$1 i f; shift
    say "    before pairing: check-quorate --no-device (quorate on the node votes alone):"
    check_quorate "$WAIT" --no-device || return 1
    for f in "$@"; do
        [ -z "$(conf_get "$f" quorum.device.model)" ] || { say "    $f already has a quorum.device"; return 1; }
    done
    for i in $(seq 1 "$n"); do
        [ ! -e "$QI_STATE/n$i/etc/qdevice/net/nssdb" ] || { say "    node $i already has a certificate store"; return 1; }
    done
    say "    no quorum.device in the config, no qdevice running, no certificate store on any node"
}

pve_unpaired() { # ID NODES : begin scenario ID on a Proxmox VE stand-in of NODES nodes without a device
    begin "$1" "$DESC"
    [ -n "$PAIR_CMD" ] || { finish SKIP "QI_PAIR_CMD is not set"; return 1; }
    up --nodes "$2" --no-device --pve --tls required "${QSSHD[@]}" || { finish FAIL "cluster did not start"; return 1; }
    no_device_before "$2" "$QI_STATE/pve/corosync.conf" || { finish FAIL "unexpected state before pairing"; return 1; }
}

pair_pve() { # ID NODES
    local id=$1 n=$2 i v0 algo="" master=$QI_STATE/pve/corosync.conf
    pve_unpaired "$id" "$n" || return 1
    v0=$(conf_get "$master" totem.config_version)
    pair_node_command "$n" || { finish FAIL "the pairing command failed"; return 1; }
    node_run 1 || { finish FAIL "the node command failed on node 1"; return 1; }
    say "    check-quorate --wait 90 (every node: Quorate, qdevice vote counted):"
    check_quorate 90 || { finish FAIL "not quorate through the qdevice after pairing"; return 1; }
    check_tls_all "$n" || { finish FAIL "TLS not active with a client certificate on every node"; return 1; }
    [ "$n" = 3 ] && algo=lms
    check_device_conf /etc/pve/corosync.conf "$master" "$v0" "$algo" || { finish FAIL "/etc/pve/corosync.conf lacks the expected quorum.device"; return 1; }
    for i in $(seq 1 "$n"); do
        cmp -s "$master" "$QI_STATE/n$i/etc/corosync.conf" || { finish FAIL "node $i's /etc/corosync/corosync.conf differs from /etc/pve/corosync.conf"; return 1; }
    done
    say "    every node's /etc/corosync/corosync.conf = /etc/pve/corosync.conf (copied by the pmxcfs stand-in)"
    qnetd_view 'Cluster|Algorithm|Node ID|TLS|Vote'
}

sc_p() {
    DESC="Proxmox VE stand-in, 2 nodes, no quorum device, no certificates: the pairing node command, run as root on node 1 only, makes every node quorate through the qdevice over TLS"
    pair_pve p 2 || return
    finish PASS
}

sc_p3() {
    DESC="Proxmox VE stand-in, 3 nodes: the pairing node command on node 1 only gives an lms qdevice (no votes line) over TLS; partition 1|2,3: {2,3} keep quorum"
    pair_pve p3 3 || return
    partition_and_heal "$LMS_SPLIT_1_DESC" "$LMS_SPLIT_1" '' 1 || return
    finish PASS
}

sc_q() {
    DESC="plain Corosync, 2 nodes, no quorum device, no certificates, no /etc/pve, no ssh between nodes: the pairing node command, run as root on every node, makes every node quorate through the qdevice over TLS"
    begin q "$DESC"
    [ -n "$PAIR_CMD" ] || { finish SKIP "QI_PAIR_CMD is not set"; return; }
    local i v0=()
    up --nodes 2 --no-device --tls required "${QSSHD[@]}" || { finish FAIL "cluster did not start"; return; }
    no_device_before 2 "$QI_STATE/n1/etc/corosync.conf" "$QI_STATE/n2/etc/corosync.conf" || { finish FAIL "unexpected state before pairing"; return; }
    for i in 1 2; do v0[i]=$(conf_get "$QI_STATE/n$i/etc/corosync.conf" totem.config_version); done
    pair_node_command 2 || { finish FAIL "the pairing command failed"; return; }
    for i in 1 2; do node_run "$i" || { finish FAIL "the node command failed on node $i"; return; }; done
    say "    check-quorate --wait 90 (every node: Quorate, qdevice vote counted):"
    check_quorate 90 || { finish FAIL "not quorate through the qdevice after pairing"; return; }
    check_tls_all 2 || { finish FAIL "TLS not active with a client certificate on every node"; return; }
    for i in 1 2; do
        check_device_conf "node $i /etc/corosync/corosync.conf" "$QI_STATE/n$i/etc/corosync.conf" "${v0[i]:-0}" \
            || { finish FAIL "node $i's corosync.conf lacks the expected quorum.device"; return; }
    done
    qnetd_view 'Cluster|Algorithm|Node ID|TLS|Vote'
    finish PASS
}

# node_state: what a refused node command must leave as it was: /etc/pve/corosync.conf and every
# node's corosync.conf, every file of every node's NSS database (checksums), and every node's
# corosync-qdevice service (the running process, by pid, and the `systemctl enable` flag)
node_state() {
    local d
    md5sum "$QI_STATE/pve/corosync.conf" "$QI_STATE"/n*/etc/corosync.conf 2>/dev/null
    for d in "$QI_STATE"/n*/; do
        find "$d"etc/qdevice/net/nssdb -type f -exec md5sum {} + 2>/dev/null | sort -k 2
        echo "$d corosync-qdevice pid=$(cat "$d"qdevice.pid 2>/dev/null) enabled=$([ -e "$d"systemd/corosync-qdevice.enabled ] && echo yes || echo no)"
    done
}

# refused_run LABEL CMD [MESSAGE [nonzero]] : CMD on node 1 must not pair and must change nothing
# (node_state); its output must match the extended regex MESSAGE; with `nonzero` it must also exit
# non-zero. (`curl ... | bash` exits with bash's status: 0 when curl itself failed and sent
# nothing, as with a wrong pin; a refusal by qnetd is a script that exits 1.)
refused_run() {
    local label=$1 want=${3:-} nonzero=${4:-} before after rc=0
    before=$(node_state)
    NODE_CMD=$2
    say "    $label: $NODE_CMD"
    node_run 1 || rc=1
    ! grep -q 'paired:' "$QI_STATE/n1/pair-cmd.out" || { say "    $label: the node command paired"; return 1; }
    [ -z "$want" ] || grep -Eq "$want" "$QI_STATE/n1/pair-cmd.out" || { say "    $label: no line matches /$want/"; return 1; }
    [ -z "$nonzero" ] || [ $rc != 0 ] || { say "    $label: the node command exited 0"; return 1; }
    after=$(node_state)
    if [ "$before" != "$after" ]; then
        say "    $label: corosync.conf, an NSS database or corosync-qdevice changed:"
        diff <(echo "$before") <(echo "$after") | ev
        return 1
    fi
    say "    $label: refused; corosync.conf files, NSS databases ($(grep -c '/nssdb/' <<< "$after") files) and corosync-qdevice unchanged"
}

pair_node1() { # the node command (NODE_CMD) on node 1 pairs the 2-node cluster
    node_run 1 || { finish FAIL "the node command failed on node 1"; return 1; }
    check_quorate 90 || { finish FAIL "not quorate through the qdevice after pairing"; return 1; }
}

sc_pn() {
    DESC="Proxmox VE stand-in, 2 nodes: the node command with a wrong pin, then with a wrong token secret, pairs nothing on node 1 and leaves /etc/pve/corosync.conf, every node's corosync.conf and NSS databases unchanged; the right command then pairs"
    pve_unpaired pn 2 || return
    local good
    pair_node_command 2 || { finish FAIL "the pairing command failed"; return; }
    good=$NODE_CMD
    refused_run "wrong pin" "$(sed -E 's#sha256//[A-Za-z0-9+/=]+#sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=#' <<< "$good")" \
        'public key does not match' || { finish FAIL "a wrong pin was not refused cleanly"; return; }
    refused_run "wrong token" "$(sed -E 's#(/pair/[0-9a-f]+\.)[0-9a-f]+#\100000000000000000000000000000000#' <<< "$good")" \
        'refused the pairing \(HTTP 403\): wrong pairing token secret' nonzero \
        || { finish FAIL "a wrong token was not refused cleanly"; return; }
    NODE_CMD=$good
    pair_node1 || return
    finish PASS
}

sc_pe() {
    DESC="Proxmox VE stand-in, 2 nodes: the node command of a window that has expired (qnetd pair --ttl 2, run 4 s later) pairs nothing on node 1 and leaves every corosync.conf and NSS database unchanged; a new window then pairs"
    pve_unpaired pe 2 || return
    pair_node_command 2 --ttl 2 || { finish FAIL "the pairing command (with --ttl 2) failed"; return; }
    sleep 4
    refused_run "expired window" "$NODE_CMD" 'refused the pairing \(HTTP 410\): the pairing window has expired' nonzero \
        || { finish FAIL "an expired window was not refused cleanly"; return; }
    pair_node_command 2 || { finish FAIL "the pairing command failed the second time"; return; }
    pair_node1 || return
    finish PASS
}

sc_pd() {
    DESC="Proxmox VE stand-in, 2 nodes paired as in p; the node command of a new window, run again on node 1, says the cluster is paired already, exits non-zero and changes nothing (corosync.conf, NSS databases, corosync-qdevice); the qdevice vote still counts"
    pair_pve pd 2 || return
    pair_node_command 2 || { finish FAIL "the second pairing command failed"; return; }
    refused_run "already paired" "$NODE_CMD" 'already uses this qnetd' nonzero \
        || { finish FAIL "a second run on a paired cluster was not refused cleanly"; return; }
    check_quorate 30 || { finish FAIL "the qdevice vote is no longer counted"; return; }
    check_tls_all 2 || { finish FAIL "TLS no longer active with a client certificate"; return; }
    finish PASS
}

sc_pu() {
    DESC="Proxmox VE stand-in, 2 nodes paired as in p; then QI_UNPAIR_CMD on the qnetd host revokes the cluster: no node counts the qdevice vote any more, and it stays so (reconnects refused), while the nodes stay quorate on their own votes"
    [ -n "$UNPAIR_CMD" ] || { begin pu "$DESC"; finish SKIP "QI_UNPAIR_CMD is not set"; return; }
    pair_pve pu 2 || return
    local out i counted=1
    say "    unpair on the qnetd host: $UNPAIR_CMD"
    out=$("$CL" qnetd-cmd --timeout "$WAIT" "$UNPAIR_CMD" 2>> "$CLLOG") || { finish FAIL "the unpair command failed"; return; }
    printf '%s\n' "$out" | ev
    for i in $(seq 1 30); do
        out=$("$CL" summary 2>> "$CLLOG")
        grep -q 'qdevice_counted=yes' <<< "$out" || { counted=0; break; }
        sleep 1
    done
    [ "$counted" = 0 ] || { finish FAIL "a node still counts the qdevice vote 30 s after unpair"; return; }
    say "    after unpair (within ${i}s):"; printf '%s\n' "$out" | grep '^node=' | ev
    sleep 10
    out=$("$CL" summary 2>> "$CLLOG")
    say "    10 s later (the qdevices keep trying to reconnect):"; printf '%s\n' "$out" | grep '^node=' | ev
    ! grep -q 'qdevice_counted=yes' <<< "$out" || { finish FAIL "the qdevice vote came back: a revoked certificate was accepted"; return; }
    [ "$(grep -c 'quorate=yes' <<< "$out")" = 2 ] || { finish FAIL "the nodes lost quorum"; return; }
    finish PASS
}

# ------------------------------------------------------------ MQTT scenario (issue 15)
# m (only when named; our server only): a real Mosquitto on the qnetd host's loopback, started by
# the server command (mqtt/broker.sh) before our server with `--mqtt mqtt://USER:PASS@127.0.0.1:PORT`;
# what the broker holds is read with mosquitto_sub in that namespace and checked by
# mqtt/check.py: the discovery configs (JSON), the states, the vote events, and how long after
# the partition node 2's NACK reached the broker (at most QI_MQTT_DEADLINE s [15]). Then the
# broker is SIGKILLed and restarted empty: the votes stay counted meanwhile, and the server
# publishes everything again.

MQ_USER=qnetd
MQ_PASS=qi-mqtt-pass
MQ_DEADLINE=${QI_MQTT_DEADLINE:-15}
MQ_PORT="" MQ_DIR="" MQ_LIVE_PID=""

mq_sub() { ip netns exec "$NS_QNETD" timeout 300 mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -u "$MQ_USER" -P "$MQ_PASS" -t 'homeassistant/#' -t 'qnetd/#' "$@"; }
mq_check() { python3 "$HERE/mqtt/check.py" "$MQ_DIR/retained" "$@"; }
# mq_wait DESC CHECK_ARGS...: every second, the retained messages and mq_check, until it passes
# (at most $WAIT s); prints its last output
mq_wait() {
    local desc=$1 t0=$SECONDS out; shift
    while :; do
        mq_sub -v --retained-only -W 1 > "$MQ_DIR/retained" 2>> "$CLLOG"
        if out=$(mq_check "$@"); then say "    broker: ok after $((SECONDS - t0))s: $desc"; ev <<< "$out"; return 0; fi
        if [ $((SECONDS - t0)) -ge "$WAIT" ]; then say "    broker: TIMEOUT after ${WAIT}s: $desc"; ev <<< "$out"; return 1; fi
        sleep 1
    done
}
# the broker's restart command (qnetd-cmd), and SIGKILL for the broker of MQ_DIR/mosquitto.pid
# when that pid is in the qnetd namespace
mq_broker_cmd() { echo "bash '$HERE/mqtt/broker.sh' \"\$QNETD_STATE_DIR/mqtt\" $MQ_PORT $MQ_USER $MQ_PASS"; }
mq_kill_broker() {
    local pid; pid=$(cat "$MQ_DIR/mosquitto.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$(ns_inode "$NS_QNETD")" ] || return 1
    kill -KILL "$pid"
}
# every state of the cluster as it is with both nodes voting
MQ_ALL_ACK=(--discovery qitest:2 --attr 'algorithm="ffsplit"' --attr 'nodes_holding_the_vote=[1,2]'
    server_connected_clients=2 server_connected_clusters=1 server_tls=unsupported
    qitest_has_vote=ON qitest_votes=2 qitest_node1_connected=ON qitest_node2_connected=ON
    qitest_node1_vote=ACK qitest_node2_vote=ACK qitest_node1_tls_verified=OFF
    'qitest_node1_heartbeat_interval~[1-9][0-9]*' 'qitest_node2_heartbeat_interval~[1-9][0-9]*')
mq_stop_live() { [ -z "$MQ_LIVE_PID" ] || { kill "$MQ_LIVE_PID" 2>/dev/null; wait "$MQ_LIVE_PID" 2>/dev/null; MQ_LIVE_PID=""; }; }
mq_fail() { mq_stop_live; finish FAIL "$1"; }

sc_m() {
    DESC="2-node ffsplit, our server publishing to a real Mosquitto (--mqtt): discovery configs of the server, the cluster and both nodes retained, both nodes connected with ACK; partition 1|2: node 2's vote NACK on the broker within ${MQ_DEADLINE}s and a vote event; heal: ACK again; broker killed: votes still counted, restarted: everything republished"
    begin m "$DESC"
    [ "$QCMD" != "$QI_REFERENCE_CMD" ] || { finish SKIP "the reference server has no MQTT client"; return; }
    local t mark saved=$QCMD
    for t in mosquitto mosquitto_passwd mosquitto_sub python3; do
        command -v "$t" > /dev/null || { finish SKIP "missing $t (apt-get install -y mosquitto mosquitto-clients python3)"; return; }
    done
    MQ_PORT=$((20000 + RANDOM % 20000)) MQ_DIR=$QI_STATE/qnetd/mqtt
    QCMD="$(mq_broker_cmd) && exec $saved --mqtt mqtt://$MQ_USER:$MQ_PASS@127.0.0.1:$MQ_PORT"
    up --nodes 2 --algorithm ffsplit; t=$?
    QCMD=$saved
    [ $t = 0 ] || { finish FAIL "cluster (with the broker) did not start"; return; }
    check_quorate || { finish FAIL "not quorate with the qdevice vote"; return; }
    mq_sub -V mqttv5 --retain-as-published -F '%U|%r|%t|%p' > "$MQ_DIR/live" 2>> "$CLLOG" &
    MQ_LIVE_PID=$!
    mq_wait "discovery configs of the server, the cluster and nodes 1, 2; both connected with ACK" "${MQ_ALL_ACK[@]}" \
        || { mq_fail "discovery configs or states not as expected"; return; }
    mark=$(date +%s.%N)
    say "    cluster.sh partition 2"
    cl partition 2 || { mq_fail "partition failed"; return; }
    wait_until "node 1 quorate (1 + qdevice vote), node 2 not quorate" \
        'is 1 quorate=yes members=1 qdevice_counted=yes && is 2 quorate=no members=2' || { mq_fail "partition outcome not reached"; return; }
    mq_wait "node 2 lost the vote (NACK, still connected), node 1 holds it" --live "$MQ_DIR/live" --since "$mark" \
        --within "$MQ_DEADLINE" --event 2:nack --attr 'nodes_holding_the_vote=[1]' \
        +qitest_node2_vote=NACK +qitest_votes=1 qitest_has_vote=ON qitest_node2_connected=ON qitest_node1_vote=ACK \
        || { mq_fail "the vote change did not reach the broker in time"; return; }
    mark=$(date +%s.%N)
    say "    cluster.sh heal"
    cl heal
    check_quorate || { mq_fail "not quorate after heal"; return; }
    mq_wait "node 2 holds the vote again" --live "$MQ_DIR/live" --since "$mark" --event 2:ack \
        --attr 'nodes_holding_the_vote=[1,2]' +qitest_node2_vote=ACK +qitest_votes=2 qitest_node1_vote=ACK \
        || { mq_fail "the vote did not come back on the broker"; return; }
    mq_stop_live
    say "    the broker SIGKILLed"
    mq_kill_broker || { finish FAIL "no broker process to kill"; return; }
    hold 5 "both nodes quorate with the qdevice vote while the broker is down" \
        'is 1 quorate=yes total=3 qdevice_counted=yes && is 2 quorate=yes total=3 qdevice_counted=yes' \
        || { finish FAIL "the votes were disturbed by the broker's loss"; return; }
    say "    the broker restarted (no persistence: it holds nothing)"
    cl qnetd-cmd --timeout 30 "$(mq_broker_cmd)" || { finish FAIL "the broker did not restart"; return; }
    mq_wait "every config and state published again" "${MQ_ALL_ACK[@]}" \
        || { finish FAIL "not republished after the broker's restart"; return; }
    finish PASS
}

# ----------------------------------------------------------------------- main

cleanup() { "$CL" down > /dev/null 2>&1; }
trap 'cleanup; echo "interrupted"; exit 130' INT TERM
[ -e "$QI_STATE/cluster.env" ] && { echo "(stale cluster in $QI_STATE: taking it down)"; cleanup; }

say "qnetd command: $QCMD"
say "corosync $(dpkg-query -W -f '${Version}' corosync 2>/dev/null), corosync-qdevice $(dpkg-query -W -f '${Version}' corosync-qdevice 2>/dev/null), corosync-qnetd $(dpkg-query -W -f '${Version}' corosync-qnetd 2>/dev/null); kernel $(uname -r)"
say "scenarios: ${SCEN[*]}; max wait per quorum change ${WAIT}s; started $(date '+%F %T')"
for s in "${SCEN[@]}"; do
    if declare -F "sc_$s" > /dev/null; then "sc_$s"; else say "unknown scenario $s"; FAILED=$((FAILED + 1)); RESULTS+=("FAIL ($s) unknown scenario"); fi
done
cleanup

say ""
say "=== summary ($((SECONDS - T0))s)"
for r in "${RESULTS[@]}"; do say "  $r"; done
if [ "$SKIPPED" -gt 0 ]; then say "$PASSED passed, $FAILED failed, $SKIPPED skipped"; else say "$PASSED passed, $FAILED failed"; fi
[ "$FAILED" -eq 0 ]
