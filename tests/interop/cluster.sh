#!/usr/bin/env bash
# cluster.sh -- run a REAL Corosync cluster with REAL corosync-qdevice clients
# against a QNetd server, all on this machine, in Linux network namespaces.
#
#   cluster.sh up --nodes N [--qnetd 'COMMAND'] [--algorithm ffsplit|lms|2nodelms|test]
#                 [--tls off|on|required] [--tie-breaker lowest|highest|NODEID]
#                 [--timeout MS] [--sync-timeout MS] [--token MS] [--cluster-name NAME]
#                 [--heuristics off|sync|on] [--heuristics-fail NODE,...]
#                 [--no-device] [--pve] [--qnetd-sshd]
#   cluster.sh status | summary | check-quorate [--wait SECS] [--no-device] | wait-quorate [SECS]
#   cluster.sh partition NODE... | heal
#   cluster.sh stop-node I [--kill] | start-node I [--no-qdevice] | start-qdevice I
#   cluster.sh kill-qnetd [--hard] | start-qnetd
#   cluster.sh exec qnetd|br|I CMD...      (run CMD in that host's namespaces)
#   cluster.sh qnetd-cmd [--timeout SECS] 'COMMAND'   (bash -c COMMAND on the qnetd host, with
#                                           the same QNETD_* variables as the server command)
#   cluster.sh mem | pids | logs [qnetd|I] [LINES]
#   cluster.sh down
#
# Pairing tests (README "Pairing"): --no-device starts corosync only (no quorum.device, no
# qdevice, no node certificates; the server still starts). --pve adds a Proxmox VE stand-in on
# every node: a shared /etc/pve with the master corosync.conf, a pmxcfs-like poller that copies
# it to /etc/corosync/corosync.conf, root "ssh" between the nodes (a fake sshd + ssh/scp shims),
# and a systemctl shim for corosync-qdevice. --qnetd-sshd also starts the fake sshd on the
# qnetd host.
#
# Layout: one namespace "<prefix>-br" holding bridge br0, one "<prefix>-qnetd"
# (address <subnet>.100) and one "<prefix>-nI" per node (address <subnet>.(10+I)),
# each joined to br0 by a veth pair.  Every daemon runs inside `ip netns exec`
# plus a private mount namespace in which per-host directories from the state
# dir are bind-mounted over /etc/corosync, /run (= /var/run), /var/lib/corosync,
# /var/log/corosync and /dev/shm, so the stock default paths of corosync,
# corosync-qdevice, corosync-qnetd and their tools (and the libqb shm files)
# never collide and nothing on the real host paths is touched.
#
# Environment knobs (defaults in brackets):
#   QI_STATE   state directory [/tmp/qnetd-interop]
#   QI_PREFIX  namespace name prefix [qi]
#   QI_SUBNET  first three octets of the private /24 [10.77.0]; must be 10.x or 192.168.x
#   QI_PORT    QNetd TCP port [5403]
#   QI_KEEP_STATE=1  keep the state dir (logs) on `down`
#   QI_PMXCFS_MAX_S  lifetime of the --pve pmxcfs stand-in [43200]
#
# The QNetd COMMAND runs in the foreground under bash -c inside the qnetd
# namespace with: QNETD_ADDR, QNETD_PORT, QNETD_TLS (off|on|req: the value for
# corosync-qnetd -s), QNETD_STATE_DIR, and when TLS is enabled QNETD_NSSDB
# (NSS db with "QNet CA" + "QNetd Cert"), QNETD_TLS_CA_PEM, QNETD_TLS_CERT_PEM,
# QNETD_TLS_KEY_PEM (the same CA / server cert / key as PEM files).

set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"
# shellcheck disable=SC2119 # the defaults, not the script arguments
qi_settings
MARKER=.qnetd-interop-state
BOGUS_MAC=02:00:00:00:de:ad

load_env() {
    [ -f "$S/cluster.env" ] || die "no cluster is up (no $S/cluster.env); run: cluster.sh up ..."
    # shellcheck disable=SC1091
    . "$S/cluster.env"
    NODES=${NODES:?$S/cluster.env names no NODES}
    NO_DEVICE=${NO_DEVICE:-0} PVE=${PVE:-0} QNETD_SSHD=${QNETD_SSHD:-0} SHIMS=${SHIMS:-0}
}

# ---------------------------------------------------------------- processes

# start_daemon HOST NAME CMD... : start CMD in HOST, in a new session, log to
# $dir/NAME.log, pid (= process group id) to $dir/NAME.pid
start_daemon() {
    local h=$1 name=$2; shift 2
    local d; d=$(hostdir "$h")
    local pidf=$d/$name.pid pre
    echo "==== $(date '+%F %T') starting: $*" >> "$d/$name.log"
    mapfile -d '' -t pre < <(host_argv "$h")
    spawn_session "$pidf" "$d/$name.log" "${pre[@]}" "$@" || { log "failed to start $name on $h"; return 1; }
    log "started $name on $h (pid $(cat "$pidf"))"
}

daemon_running() { # HOST NAME
    local pidf; pidf=$(hostdir "$1")/$2.pid
    [ -s "$pidf" ] || return 1
    [ -n "$(group_pids "$(cat "$pidf")" "$(ns_inode "$(ns_of_host "$1")")")" ]
}

# stop_daemon HOST NAME TERM_TIMEOUT_S [SIGNAL]
stop_daemon() {
    local h=$1 name=$2 tmo=$3 sig=${4:-TERM}
    local pidf; pidf=$(hostdir "$h")/$name.pid
    [ -s "$pidf" ] || return 0
    local pg killed; pg=$(cat "$pidf")
    if [ -n "$(group_pids "$pg" "$(ns_inode "$(ns_of_host "$h")")")" ]; then
        killed=$(stop_group "$pg" "$(ns_inode "$(ns_of_host "$h")")" "$tmo" "$sig")
        [ -z "$killed" ] || log "$name on $h still alive after SIG$sig+${tmo}s: SIGKILLed $killed"
        log "stopped $name on $h (pid $pg, SIG$sig)"
    fi
    echo "==== $(date '+%F %T') stopped (SIG$sig)" >> "$(hostdir "$h")/$name.log"
    rm -f "$pidf"
}

# --------------------------------------------------------------- network

create_net() {
    local n=$1 i
    ip netns add "$NS_BR" || return 1
    echo "$NS_BR" >> "$S/namespaces"
    ip -n "$NS_BR" link set lo up
    ip -n "$NS_BR" link add br0 type bridge || return 1
    # forward immediately, no STP
    ip -n "$NS_BR" link set br0 type bridge stp_state 0 forward_delay 0 2>/dev/null
    ip -n "$NS_BR" link set br0 up
    add_host_ns "$NS_QNETD" "v-qnetd" "$QNETD_IP" || return 1
    for i in $(seq 1 "$n"); do
        add_host_ns "$(ns_of_node "$i")" "v-n$i" "$(ip_of_node "$i")" || return 1
    done
}

add_host_ns() { # NS BRIDGE_PORT_NAME IP
    local ns=$1 port=$2 addr=$3
    ip netns add "$ns" || return 1
    echo "$ns" >> "$S/namespaces"
    # both ends are created directly inside their namespaces: no name clash with the host
    ip link add eth0 netns "$ns" type veth peer name "$port" netns "$NS_BR" || return 1
    ip -n "$NS_BR" link set "$port" master br0 up || return 1
    ip -n "$ns" addr add "$addr/24" dev eth0 || return 1
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- config

write_node_config() { # I
    local i=$1 tpl nodelist="" j votes_line=""
    tpl=$(cat "$HERE/corosync.conf.in") || return 1
    for j in $(seq 1 "$NODES"); do
        nodelist+="    node {
        name: n$j
        nodeid: $j
        ring0_addr: $(ip_of_node "$j")
    }
"
    done
    nodelist=${nodelist%$'\n'}
    [ "$ALGORITHM" = ffsplit ] && votes_line="        votes: 1"
    # qdevice heuristics (quorum.device.heuristics): one exec_check per node, /bin/false on the
    # nodes listed in HEURISTICS_FAIL and /bin/true on the others; nothing at all when off
    local heur_block="" heur_cmd=/bin/true
    if [ "${HEURISTICS:-off}" != off ]; then
        [[ ,${HEURISTICS_FAIL:-}, == *",$i,"* ]] && heur_cmd=/bin/false
        heur_block="        heuristics {
            mode: $HEURISTICS
            exec_check: $heur_cmd
        }"
        [[ $tpl == *@HEURISTICS@* ]] || { echo "corosync.conf.in has no @HEURISTICS@ placeholder" >&2; return 1; }
        tpl=${tpl//@HEURISTICS@/$heur_block}
    else
        tpl=${tpl//@HEURISTICS@$'\n'/}
        tpl=${tpl//@HEURISTICS@/}
    fi
    tpl=${tpl//@NODE_ID@/$i}
    tpl=${tpl//@CLUSTER_NAME@/$CLUSTER_NAME}
    tpl=${tpl//@TOKEN@/$TOKEN}
    tpl=${tpl//@VOTES_LINE@/$votes_line}
    tpl=${tpl//@DEVICE_TIMEOUT@/$DEV_TIMEOUT}
    tpl=${tpl//@DEVICE_SYNC_TIMEOUT@/$DEV_SYNC_TIMEOUT}
    tpl=${tpl//@QNETD_ADDR@/$QNETD_IP}
    tpl=${tpl//@QNETD_PORT@/$QI_PORT}
    tpl=${tpl//@ALGORITHM@/$ALGORITHM}
    tpl=${tpl//@TIE_BREAKER@/$TIE_BREAKER}
    tpl=${tpl//@TLS@/$TLS}
    tpl=${tpl//@NODELIST@/$nodelist}
    if [ "${NO_DEVICE:-0}" = 1 ]; then
        # --no-device: the same file without the quorum.device block, plus a config_version
        # (1) that a pairing script can bump
        printf '%s\n' "$tpl" | strip_device_block > "$S/n$i/etc/corosync.conf"
        return
    fi
    printf '%s\n' "$tpl" > "$S/n$i/etc/corosync.conf"
}

# stdin -> stdout: drop the `device { ... }` section (one statement per line, as the template
# is written) and add `config_version: 1` after the totem cluster_name
strip_device_block() {
    awk '
        skip { if ($0 ~ /\{[[:space:]]*$/) depth++; if ($0 ~ /^[[:space:]]*\}[[:space:]]*$/) depth--; if (depth == 0) skip = 0; next }
        /^[[:space:]]*device[[:space:]]*\{[[:space:]]*$/ { skip = 1; depth = 1; next }
        NR == 1 { sub(/ -- do not edit\./, " (--no-device): no quorum device; a pairing command adds it.") }
        { print }
        /^[[:space:]]*cluster_name:/ && !cv { match($0, /^[[:space:]]*/); printf "%sconfig_version: 1\n", substr($0, 1, RLENGTH); cv = 1 }'
}

# --pve: the master /etc/pve/corosync.conf ($S/pve/corosync.conf) as Proxmox VE writes it
# (PVE::Corosync::write_conf: sections and keys sorted, two-space indent, a blank line after
# each top-level section; create_conf's totem keys). Logging goes to stderr (the daemon log)
# instead of syslog, and token is the harness's --token. config_version = the node count, as
# after `pvecm create` (1) plus one bump per `pvecm add`.
write_pve_conf() {
    local j conf votes_line="" heur=""
    conf="logging {
  debug: off
  timestamp: on
  to_logfile: no
  to_stderr: yes
  to_syslog: no
}

nodelist {
"
    for j in $(seq 1 "$NODES"); do
        conf+="  node {
    name: n$j
    nodeid: $j
    quorum_votes: 1
    ring0_addr: $(ip_of_node "$j")
  }
"
    done
    conf+="}

quorum {
"
    if [ "${NO_DEVICE:-0}" != 1 ]; then
        [ "$ALGORITHM" = ffsplit ] && votes_line="
    votes: 1"
        [ "${HEURISTICS:-off}" != off ] && heur="
    heuristics {
      exec_check: /bin/true
      mode: $HEURISTICS
    }"
        conf+="  device {$heur
    model: net
    net {
      algorithm: $ALGORITHM
      host: $QNETD_IP
      port: $QI_PORT
      tie_breaker: $TIE_BREAKER
      tls: $TLS
    }
    sync_timeout: $DEV_SYNC_TIMEOUT
    timeout: $DEV_TIMEOUT$votes_line
  }
"
    fi
    conf+="  provider: corosync_votequorum
}

totem {
  cluster_name: $CLUSTER_NAME
  config_version: $NODES
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  link_mode: passive
  secauth: on
  token: $TOKEN
  version: 2
}
"
    printf '%s\n' "$conf" > "$S/pve/corosync.conf.tmp" && mv -f "$S/pve/corosync.conf.tmp" "$S/pve/corosync.conf"
}

mk_hostdirs() { # HOST
    local d; d=$(hostdir "$1")
    mkdir -p "$d/etc" "$d/run" "$d/lib" "$d/log" "$d/shm"
}

# ------------------------------------------------------- Proxmox VE stand-in
# --pve: $S/pve is the cluster file system, bind-mounted at /etc/pve on every node. It holds the
# master corosync.conf, nodes/<name>/ (with an ssh_known_hosts, so PVE::SSHInfo-style options
# are exercised) and priv/. Every node gets a copy of the master and the same corosync authkey
# (secauth: on). /etc/pve must exist on the machine as a mount point: `up` creates it (empty)
# when missing and `down` removes it again when it created it and no process still has it mounted.
setup_pve() {
    local i
    mkdir -p "$S/pve/priv" "$S/pve/nodes" || return 1
    chmod 700 "$S/pve/priv"
    for i in $(seq 1 "$NODES"); do
        mkdir -p "$S/pve/nodes/n$i" || return 1
        echo "# qnetd-interop: the fake sshd has no host keys; ssh options naming this file are accepted and ignored" \
            > "$S/pve/nodes/n$i/ssh_known_hosts"
    done
    write_pve_conf || return 1
    corosync-keygen -k "$S/pve-authkey" > /dev/null 2>&1 || { log "corosync-keygen failed"; return 1; }
    for i in $(seq 1 "$NODES"); do
        cp "$S/pve/corosync.conf" "$S/n$i/etc/corosync.conf" || return 1
        install -m 0400 "$S/pve-authkey" "$S/n$i/etc/authkey" || return 1
    done
    if [ ! -e /etc/pve ]; then
        { mkdir /etc/pve && touch "$S/etc-pve-created"; } || { log "cannot create the mount point /etc/pve"; return 1; }
        log "pve: created the empty mount point /etc/pve (removed again by down)"
    fi
    [ -d /etc/pve ] || { log "/etc/pve exists and is not a directory"; return 1; }
}

# is /etc/pve mounted in any process's mount namespace?
etc_pve_in_use() { grep -qs -- ' /etc/pve ' /proc/[0-9]*/mountinfo; }

# The shims (--no-device or --pve): fakessh.py over /usr/bin/ssh, scp, ssh-copy-id and the
# systemctl stand-in over /usr/bin/systemctl in every node namespace; /etc/pve with --pve.
# $S/hosts names the reachable hosts; /run/qnetd-interop.env (per node) tells the shims where
# they are.
install_shims() {
    local i b d
    mkdir -p "$S/bin" || return 1
    install -m 0755 "$HERE/shims/fakessh.py" "$S/bin/fakessh" || return 1
    install -m 0755 "$HERE/shims/systemctl" "$S/bin/systemctl" || return 1
    install -m 0644 "$HERE/lib.sh" "$S/bin/lib.sh" || return 1
    {
        for i in $(seq 1 "$NODES"); do echo "n$i $(ip_of_node "$i")"; done
        echo "qnetd $QNETD_IP"
    } > "$S/hosts"
    for i in $(seq 1 "$NODES"); do
        d=$S/n$i
        {
            printf '%s\t%s\n' "$S/bin/fakessh" /usr/bin/ssh "$S/bin/fakessh" /usr/bin/scp
            [ -f /usr/bin/ssh-copy-id ] && printf '%s\t%s\n' "$S/bin/fakessh" /usr/bin/ssh-copy-id
            printf '%s\t%s\n' "$S/bin/systemctl" /usr/bin/systemctl
            if [ -f /bin/systemctl ] && ! [ /bin/systemctl -ef /usr/bin/systemctl ]; then
                printf '%s\t%s\n' "$S/bin/systemctl" /bin/systemctl
            fi
            [ "$PVE" = 1 ] && printf '%s\t%s\n' "$S/pve" /etc/pve
        } > "$d/binds"
        {
            printf 'QI_STATE=%q\n' "$S"; printf 'QI_HOST=%q\n' "n$i"; printf 'QI_NODE=%q\n' "$i"
            printf 'QI_HOSTDIR=%q\n' "$d"; printf 'QI_PVE=%q\n' "$PVE"
        } > "$d/run/qnetd-interop.env"
        mkdir -p "$d/systemd"
    done
    for b in ssh scp systemctl; do
        [ -f "/usr/bin/$b" ] || { log "/usr/bin/$b is missing: it is the mount point for the $b shim (apt-get install openssh-client systemd)"; return 1; }
    done
}

start_sshd() { # HOST IP : the fake sshd on TCP 22 of that host, inside its private mounts
    local h=$1 addr=$2 deadline bf=""
    if [ "$h" = qnetd ]; then
        # its sessions get a private /tmp: `pvecm qdevice setup` copies the request to qnetd:/tmp,
        # and two harnesses on this machine must not meet there (the state dir stays visible)
        mkdir -p "$S/qnetd/sshd-tmp" && chmod 1777 "$S/qnetd/sshd-tmp"
        bf=$S/qnetd/sshd.binds
        if [[ $S == /tmp/* ]]; then printf '%s\t%s\t%s\n' "$S/qnetd/sshd-tmp" /tmp "$S" > "$bf"
        else printf '%s\t%s\n' "$S/qnetd/sshd-tmp" /tmp > "$bf"; fi
    fi
    QI_BINDS=$bf start_daemon "$h" sshd /usr/bin/python3 -IS "$S/bin/fakessh" sshd --listen "$addr" --port 22 || return 1
    deadline=$((SECONDS + 10))
    until ip netns exec "$(ns_of_host "$h")" ss -Hltn "sport = :22" 2>/dev/null | grep -q .; do
        daemon_running "$h" sshd || { log "fake sshd on $h exited:"; tail -n 10 "$S/$h/sshd.log" >&2; return 1; }
        [ $SECONDS -ge $deadline ] && { log "fake sshd on $h not listening after 10s"; return 1; }
        sleep 0.2
    done
}

# ----------------------------------------------------------- pmxcfs stand-in
# A poller (cluster.sh _pmxcfs, started by up, stopped by down, bounded by QI_PMXCFS_MAX_S,
# default 12 h) that does what pmxcfs's dcdb_sync_corosync_conf does when /etc/pve/corosync.conf
# changes: on every node whose /etc/corosync/corosync.conf differs and has a config_version that
# is not higher, write the new file (atomically); if a node had a version before, wait 1 s and run
# `corosync-cfgtool -R` once (pmxcfs runs it on the node that wrote the file; here on the first
# node whose corosync runs). After each change it records the md5 of the file it processed in
# $S/pmxcfs.synced: the shims wait for that (see pmxcfs_barrier in shims/), because on a real
# cluster the write itself returns only after the copy and the reload.

pmxcfs_sync() { # MD5 : propagate $S/pve/corosync.conf to the nodes
    local sig=$1 master=$S/pve/corosync.conf new_v old_v i f notify=0
    new_v=$(conf_version "$master")
    if [ "$new_v" = 0 ]; then
        log "pmxcfs: unable to parse cluster config_version in $master"
    else
        for i in $(seq 1 "$NODES"); do
            f=$S/n$i/etc/corosync.conf
            cmp -s "$master" "$f" && continue
            old_v=$(conf_version "$f")
            if [ "$new_v" -lt "$old_v" ]; then log "pmxcfs: n$i: local corosync.conf is newer ($old_v > $new_v)"; continue; fi
            if cp "$master" "$f.pmxcfs-tmp" && chmod 644 "$f.pmxcfs-tmp" && mv -f "$f.pmxcfs-tmp" "$f"; then
                log "pmxcfs: n$i: wrote new corosync config '/etc/corosync/corosync.conf' (version = $new_v)"
                [ "$old_v" -gt 0 ] && notify=1
            else
                log "pmxcfs: n$i: writing /etc/corosync/corosync.conf failed"
            fi
        done
    fi
    if [ $notify = 1 ]; then
        sleep 1
        for i in $(seq 1 "$NODES"); do
            daemon_running "n$i" corosync || continue
            if in_host "n$i" timeout 20 corosync-cfgtool -R > /dev/null 2>&1; then
                log "pmxcfs: corosync-cfgtool -R on n$i: ok"
            else
                log "pmxcfs: corosync-cfgtool -R on n$i failed"
            fi
            break
        done
    fi
    echo "$sig" > "$S/pmxcfs.synced.tmp" && mv -f "$S/pmxcfs.synced.tmp" "$S/pmxcfs.synced"
}

cmd_pmxcfs() { # the poller itself (internal: started by up)
    load_env
    local me sig last="" n=0 max_s=${QI_PMXCFS_MAX_S:-43200} t0=$SECONDS
    me="$$ $(proc_starttime $$)"
    echo "$me" > "$S/pmxcfs.pid.tmp" && mv -f "$S/pmxcfs.pid.tmp" "$S/pmxcfs.pid"
    log "pmxcfs stand-in: watching $S/pve/corosync.conf (pid $$, at most ${max_s}s)"
    while [ $n -lt $((max_s * 5)) ] && [ $((SECONDS - t0)) -lt "$max_s" ]; do
        n=$((n + 1))
        [ -f "$S/cluster.env" ] || break
        [ "$(cat "$S/pmxcfs.pid" 2>/dev/null)" = "$me" ] || break
        sig=$(md5sum < "$S/pve/corosync.conf" 2>/dev/null) && sig=${sig%% *} || sig=""
        if [ -n "$sig" ] && [ "$sig" != "$last" ]; then
            pmxcfs_sync "$sig"
            last=$sig
        fi
        sleep 0.2
    done
    log "pmxcfs stand-in: exiting"
}

start_pmxcfs() {
    local t=0
    rm -f "$S/pmxcfs.pid" "$S/pmxcfs.synced"
    QI_STATE=$S QI_PREFIX=$QI_PREFIX QI_SUBNET=$QI_SUBNET QI_PORT=$QI_PORT \
        setsid "$HERE/cluster.sh" _pmxcfs >> "$S/pmxcfs.log" 2>&1 < /dev/null &
    # wait for its pid file and its first pass over the master file
    while { [ ! -s "$S/pmxcfs.pid" ] || [ ! -s "$S/pmxcfs.synced" ]; } && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
    [ -s "$S/pmxcfs.synced" ] || { log "pmxcfs stand-in did not start"; return 1; }
    log "started the pmxcfs stand-in (pid $(cut -d' ' -f1 "$S/pmxcfs.pid"))"
}

stop_pmxcfs() {
    local pid st t=0
    read -r pid st 2>/dev/null < "$S/pmxcfs.pid" || return 0
    if [ -n "$pid" ] && [ "$(proc_starttime "$pid")" = "$st" ]; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
        while [ "$(proc_starttime "$pid")" = "$st" ] && [ $t -lt 30 ]; do sleep 0.1; t=$((t + 1)); done
        if [ "$(proc_starttime "$pid")" = "$st" ]; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
        fi
        log "stopped the pmxcfs stand-in (pid $pid)"
    fi
    rm -f "$S/pmxcfs.pid"
}

# ------------------------------------------------------------------- TLS
# The same flow as `pcs qdevice setup` / Proxmox `pvecm qdevice setup`, with
# $S/xfer standing in for scp between the hosts.
# The qnetd-side tool can be replaced: QI_QNETD_CERTUTIL is a command line that takes the same
# verbs as corosync-qnetd-certutil (-i; -s -c REQUEST -n CLUSTER), and QI_QNETD_CERTDIR is the
# directory (as seen on the qnetd host, where /etc/corosync is private) in which it leaves
# qnetd-cacert.crt and cluster-CLUSTER.crt.
setup_tls() {
    local x=$S/xfer i
    local qcert=${QI_QNETD_CERTUTIL:-corosync-qnetd-certutil}
    local qdir=${QI_QNETD_CERTDIR:-/etc/corosync/qnetd/nssdb}
    local hostdir=$S/qnetd/etc${qdir#/etc/corosync}
    if netns_only qnetd; then
        hostdir=$qdir   # the qnetd host sees the machine's own files
    else
        case "$qdir" in /etc/corosync/*) ;; *) echo "QI_QNETD_CERTDIR must be under /etc/corosync" >&2; return 1;; esac
    fi
    mkdir -p "$x" "$S/qnetd/tls"
    log "TLS: $qcert -i on the qnetd host"
    # shellcheck disable=SC2086
    in_host qnetd $qcert -i > "$S/qnetd/certutil.log" 2>&1 || { cat "$S/qnetd/certutil.log" >&2; return 1; }
    cp "$hostdir/qnetd-cacert.crt" "$x/" || return 1
    log "TLS: node 1: corosync-qdevice-net-certutil -i -c qnetd-cacert.crt; -r -n $CLUSTER_NAME"
    in_host n1 corosync-qdevice-net-certutil -i -c "$x/qnetd-cacert.crt" > "$S/n1/certutil.log" 2>&1 || { cat "$S/n1/certutil.log" >&2; return 1; }
    in_host n1 corosync-qdevice-net-certutil -r -n "$CLUSTER_NAME" >> "$S/n1/certutil.log" 2>&1 || { cat "$S/n1/certutil.log" >&2; return 1; }
    cp "$S/n1/etc/qdevice/net/nssdb/qdevice-net-node.crq" "$x/" || return 1
    log "TLS: qnetd host: $qcert -s -c qdevice-net-node.crq -n $CLUSTER_NAME"
    # shellcheck disable=SC2086
    in_host qnetd $qcert -s -c "$x/qdevice-net-node.crq" -n "$CLUSTER_NAME" >> "$S/qnetd/certutil.log" 2>&1 || { cat "$S/qnetd/certutil.log" >&2; return 1; }
    cp "$hostdir/cluster-$CLUSTER_NAME.crt" "$x/" || return 1
    log "TLS: node 1: corosync-qdevice-net-certutil -M -c cluster-$CLUSTER_NAME.crt"
    in_host n1 corosync-qdevice-net-certutil -M -c "$x/cluster-$CLUSTER_NAME.crt" >> "$S/n1/certutil.log" 2>&1 || { cat "$S/n1/certutil.log" >&2; return 1; }
    cp "$S/n1/etc/qdevice/net/nssdb/qdevice-net-node.p12" "$x/" || return 1
    for i in $(seq 2 "$NODES"); do
        log "TLS: node $i: corosync-qdevice-net-certutil -i -c qnetd-cacert.crt; -m -c qdevice-net-node.p12"
        in_host "n$i" corosync-qdevice-net-certutil -i -c "$x/qnetd-cacert.crt" > "$S/n$i/certutil.log" 2>&1 || { cat "$S/n$i/certutil.log" >&2; return 1; }
        in_host "n$i" corosync-qdevice-net-certutil -m -c "$x/qdevice-net-node.p12" >> "$S/n$i/certutil.log" 2>&1 || { cat "$S/n$i/certutil.log" >&2; return 1; }
    done
    # PEM copies for servers that do not read NSS databases (only when the stock NSS tool made them)
    local t=$S/qnetd/tls
    [ -z "${QI_QNETD_CERTUTIL:-}" ] && export_qnetd_pems
    # the node-side cluster client certificate as PEM, for tests that act as a client
    # shellcheck disable=SC2016
    in_host n1 bash -c '
        set -e; db=/etc/corosync/qdevice/net/nssdb; t=$1
        openssl pkcs12 -in "$db/qdevice-net-node.p12" -passin pass: -nokeys -clcerts | openssl x509 -out "$t/cluster-cert.pem"
        openssl pkcs12 -in "$db/qdevice-net-node.p12" -passin pass: -nocerts -nodes | openssl pkey -out "$t/cluster-key.pem"' \
        tls "$t" >> "$S/qnetd/certutil.log" 2>&1 || true
    chmod 600 "$t"/*key.pem 2>/dev/null
    log "TLS: certificates ready (NSS dbs in */etc, PEM copies in $t)"
}

# the qnetd CA, server certificate and key from the stock NSS db as PEM files ($S/qnetd/tls)
export_qnetd_pems() {
    local db=/etc/corosync/qnetd/nssdb t=$S/qnetd/tls
    mkdir -p "$t"
    # shellcheck disable=SC2016
    in_host qnetd bash -c '
        set -e; db=$1; t=$2
        certutil -L -d "$db" -n "QNet CA" -a > "$t/qnetd-ca.pem"
        pk12util -o "$t/server.p12" -n "QNetd Cert" -d "$db" -k "$db/pwdfile.txt" -W "" > /dev/null
        openssl pkcs12 -in "$t/server.p12" -passin pass: -nokeys -clcerts | openssl x509 -out "$t/qnetd-cert.pem"
        openssl pkcs12 -in "$t/server.p12" -passin pass: -nocerts -nodes | openssl pkey -out "$t/qnetd-key.pem"
        rm -f "$t/server.p12"' tls "$db" "$t" >> "$S/qnetd/certutil.log" 2>&1 \
        || log "TLS: PEM export failed (NSS db still usable), see $S/qnetd/certutil.log"
}

# --no-device with --tls on|required: only what installing the corosync-qnetd package does on the
# server (its postinst runs `corosync-qnetd-certutil -i`), so that a TLS server can start. No
# node gets a certificate: that is the pairing command's job.
setup_tls_server_only() {
    local qcert=${QI_QNETD_CERTUTIL:-corosync-qnetd-certutil}
    mkdir -p "$S/qnetd/tls"
    log "TLS (--no-device): $qcert -i on the qnetd host only (as the corosync-qnetd package's postinst); no node certificates"
    # shellcheck disable=SC2086
    in_host qnetd $qcert -i > "$S/qnetd/certutil.log" 2>&1 || { cat "$S/qnetd/certutil.log" >&2; return 1; }
    [ -z "${QI_QNETD_CERTUTIL:-}" ] && export_qnetd_pems
    return 0
}

# ----------------------------------------------------------- qnetd daemon

# the variables the qnetd command (and `qnetd-cmd`) gets
export_qnetd_env() {
    local qtls=off
    case "$TLS" in on) qtls=on;; required) qtls=req;; esac
    export QNETD_ADDR=$QNETD_IP QNETD_PORT=$QI_PORT QNETD_TLS=$qtls QNETD_STATE_DIR=$S/qnetd
    if [ "$TLS" != off ]; then
        export QNETD_NSSDB=/etc/corosync/qnetd/nssdb
        export QNETD_TLS_CA_PEM=$S/qnetd/tls/qnetd-ca.pem
        export QNETD_TLS_CERT_PEM=$S/qnetd/tls/qnetd-cert.pem
        export QNETD_TLS_KEY_PEM=$S/qnetd/tls/qnetd-key.pem
    fi
}

cmd_qnetd_cmd() { # [--timeout SECS] COMMAND : bash -c COMMAND on the qnetd host, like the server command
    load_env
    local tmo=600
    if [ "${1:-}" = --timeout ]; then
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "qnetd-cmd --timeout takes seconds"
        tmo=$2; shift 2
    fi
    [ $# -eq 1 ] || die "usage: qnetd-cmd [--timeout SECS] 'COMMAND'"
    export_qnetd_env
    in_host qnetd timeout "$tmo" bash -c "$1"
}

start_qnetd() {
    load_env
    daemon_running qnetd qnetd && { log "qnetd already running"; return 0; }
    export_qnetd_env
    start_daemon qnetd qnetd bash -c "$QNETD_CMD" || return 1
    # wait until something listens on the port
    local deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if ip netns exec "$NS_QNETD" ss -Hltn "sport = :$QI_PORT" 2>/dev/null | grep -q .; then
            log "qnetd listening on $QNETD_IP:$QI_PORT"
            return 0
        fi
        daemon_running qnetd qnetd || { log "qnetd exited; log:"; tail -n 20 "$S/qnetd/qnetd.log" >&2; return 1; }
        sleep 0.2
    done
    log "qnetd not listening on port $QI_PORT after 20s"; return 1
}

# ----------------------------------------------------------- node daemons

quorumtool() { # I [args]  (bounded)
    local i=$1; shift
    in_host "n$i" timeout 10 corosync-quorumtool "$@"
}

corosync_ipc_ready() { quorumtool "$1" -s > /dev/null 2>&1; local rc=$?; [ $rc = 0 ] || [ $rc = 2 ]; }

node_arg() { # validate a node number against the running cluster
    { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ]; } || die "node '$1' is not in 1..$NODES"
}

start_node() { # I [--no-qdevice]
    local i=$1 noq=${2:-}
    load_env
    node_arg "$i"
    [ -z "$noq" ] || [ "$noq" = --no-qdevice ] || die "start-node I [--no-qdevice]"
    if ! daemon_running "n$i" corosync; then
        rm -f "$S/n$i/run/corosync.pid"
        start_daemon "n$i" corosync corosync -f || return 1
    fi
    local deadline=$((SECONDS + 20))
    until corosync_ipc_ready "$i"; do
        daemon_running "n$i" corosync || { log "corosync on n$i exited:"; tail -n 20 "$S/n$i/corosync.log" >&2; return 1; }
        [ $SECONDS -ge $deadline ] && { log "corosync on n$i: IPC not ready after 20s"; return 1; }
        sleep 0.3
    done
    [ "$noq" = --no-qdevice ] && { log "corosync on n$i up; qdevice not started (--no-qdevice)"; return 0; }
    if [ "$NO_DEVICE" = 1 ] && [ ! -e "$S/n$i/systemd/corosync-qdevice.enabled" ]; then
        log "corosync on n$i up; qdevice not started (--no-device cluster, corosync-qdevice not enabled with systemctl)"
        return 0
    fi
    start_qdevice "$i"
}

start_qdevice() { # I
    local i=$1 extra=()
    daemon_running "n$i" qdevice && return 0
    [ "$ALGORITHM" = test ] && extra=(-S net_test_algorithm_enabled=on)
    start_daemon "n$i" qdevice corosync-qdevice -f -d "${extra[@]}" || return 1
    local deadline=$((SECONDS + 15))
    until in_host "n$i" timeout 5 corosync-qdevice-tool -s > /dev/null 2>&1; do
        daemon_running "n$i" qdevice || { log "corosync-qdevice on n$i exited:"; tail -n 20 "$S/n$i/qdevice.log" >&2; return 1; }
        [ $SECONDS -ge $deadline ] && { log "corosync-qdevice on n$i: IPC not ready after 15s"; return 1; }
        sleep 0.3
    done
}

stop_node() { # I [--kill]
    local i=$1 hard=${2:-}
    load_env
    node_arg "$i"
    if [ "$hard" = --kill ]; then
        stop_daemon "n$i" qdevice 5 KILL
        stop_daemon "n$i" corosync 5 KILL
        return 0
    fi
    if daemon_running "n$i" qdevice; then
        # graceful IPC shutdown first (SIGTERM has been seen to deadlock qdevice)
        in_host "n$i" timeout 5 corosync-qdevice-tool -H > /dev/null 2>&1
        local deadline=$((SECONDS + 5))
        while daemon_running "n$i" qdevice && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        daemon_running "n$i" qdevice || log "stopped qdevice on n$i (corosync-qdevice-tool -H)"
    fi
    stop_daemon "n$i" qdevice 5 TERM
    stop_daemon "n$i" corosync 10 TERM
}

# ---------------------------------------------------------------- parsing

# node_summary I -> one key=value line
node_summary() {
    local i=$1 q rc qs state quorate expected total quorum blocked members qline qvotes counted tls
    if ! daemon_running "n$i" corosync; then
        echo "node=$i corosync=stopped qdevice=$(daemon_running "n$i" qdevice && echo running || echo stopped)"
        return
    fi
    q=$(quorumtool "$i" -s 2>&1); rc=$?
    quorate=$(awk -F: '/^Quorate:/{gsub(/ /,"",$2); print tolower($2)}' <<< "$q")
    expected=$(awk -F: '/^Expected votes:/{gsub(/ /,"",$2); print $2}' <<< "$q")
    total=$(awk -F: '/^Total votes:/{gsub(/ /,"",$2); print $2}' <<< "$q")
    quorum=$(awk '/^Quorum:/{print $2}' <<< "$q")
    blocked=no; grep -q '^Quorum:.*Activity blocked' <<< "$q" && blocked=yes
    members=$(awk '/^Membership information/{m=1; next} m && $1 ~ /^[0-9]+$/ && $1 != 0 {printf "%s%s", s, $1; s=","}' <<< "$q")
    qline=$(awk '/^Membership information/{m=1; next} m && $1 == "0" && /Qdevice/' <<< "$q")
    qvotes=$(awk '{print $2}' <<< "$qline")
    counted=no
    [ -n "$qline" ] && [[ $qline != *"(votes"* ]] && [ "${qvotes:-0}" -gt 0 ] 2>/dev/null && counted=yes
    qs=$(in_host "n$i" timeout 5 corosync-qdevice-tool -sv 2>&1)
    state=$(awk -F'\t+' '/^State:/{print $2}' <<< "$qs" | tr ' ' '_')
    tls=$(awk -F'\t+' '/^TLS active:/{print $2}' <<< "$qs" | awk '{print $1}')
    echo "node=$i corosync=running rc=$rc quorate=${quorate:-?} expected=${expected:-?} total=${total:-?} quorum=${quorum:-?} blocked=$blocked members=${members:-?} qdevice_votes=${qvotes:-?} qdevice_counted=$counted qdevice=$(daemon_running "n$i" qdevice && echo running || echo stopped) qdevice_state=${state:-?} tls_active=${tls:-?}"
}

qdev_votes_cfg() { if [ "$ALGORITHM" = ffsplit ]; then echo 1; else echo $((NODES - 1)); fi; }

# --no-device clusters: the votes node I's RUNNING config gives the qdevice (whatever a pairing
# command wrote and reloaded): quorum.device.votes, else votequorum's default N-1; nothing when
# the running config has no quorum.device
node_dev_votes() { # I
    local out model votes
    out=$(in_host "n$1" timeout 5 corosync-cmapctl quorum.device. 2>/dev/null)
    model=$(sed -n 's/^quorum\.device\.model ([^)]*) = //p' <<< "$out")
    [ -n "$model" ] || return 0
    votes=$(sed -n 's/^quorum\.device\.votes ([^)]*) = //p' <<< "$out")
    echo "${votes:-$((NODES - 1))}"
}

# check_quorate_once [--no-device] -> 0 if every running node is quorate with the qdevice vote
# counted; with --no-device: quorate on the node votes alone (expected = nodes, no qdevice vote)
check_quorate_once() {
    local mode=${1:-} i line ok=0 running=0 qv="" exp members nm total
    if [ "$mode" != --no-device ] && [ "$NO_DEVICE" != 1 ]; then qv=$(qdev_votes_cfg); exp=$((NODES + qv)); fi
    for i in $(seq 1 "$NODES"); do
        line=$(node_summary "$i")
        daemon_running "n$i" corosync || { echo "$line  -> (not running, ignored)"; continue; }
        running=$((running + 1))
        members=$(sed -n 's/.* members=\([^ ]*\).*/\1/p' <<< "$line")
        nm=$(tr ',' '\n' <<< "$members" | grep -c .)
        total=$(sed -n 's/.* total=\([^ ]*\).*/\1/p' <<< "$line")
        local why=""
        if [ "$mode" = --no-device ]; then
            [[ $line == *" quorate=yes "* ]] || why+=" not-quorate"
            [[ $line == *" expected=$NODES "* ]] || why+=" expected!=$NODES"
            [[ $line == *" qdevice_counted=no "* ]] || why+=" a-qdevice-vote-is-counted"
            [ "$total" = "$nm" ] || why+=" total!=members($nm)"
        else
            if [ "$NO_DEVICE" = 1 ]; then
                qv=$(node_dev_votes "$i")
                if [ -z "$qv" ]; then
                    echo "$line  -> FAIL: no quorum.device in the running config (corosync-cmapctl)"; ok=1; continue
                fi
                exp=$((NODES + qv))
            fi
            [[ $line == *" quorate=yes "* ]] || why+=" not-quorate"
            [[ $line == *" expected=$exp "* ]] || why+=" expected!=$exp"
            [[ $line == *" qdevice_counted=yes "* ]] || why+=" qdevice-vote-not-counted"
            [[ $line == *" qdevice_votes=$qv "* ]] || why+=" qdevice_votes!=$qv"
            [ "$total" = "$((nm + qv))" ] || why+=" total!=members($nm)+$qv"
        fi
        if [ -z "$why" ]; then echo "$line  -> OK"; else echo "$line  -> FAIL:$why"; ok=1; fi
    done
    [ $running -gt 0 ] || { echo "no node is running"; ok=1; }
    return $ok
}

# ----------------------------------------------------------------- commands

cmd_up() {
    local nodes=2 algo=ffsplit tls=off qcmd=$QI_REFERENCE_CMD tie=lowest tmo=3000 stmo=6000 token=1000 cname=qitest
    local heur=off heur_fail="" nodev=0 pve=0 qsshd=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --no-device) nodev=1; shift;;
            --pve) pve=1; shift;;
            --qnetd-sshd) qsshd=1; shift;;
            --nodes) nodes=$2; shift 2;;
            --qnetd) qcmd=$2; shift 2;;
            --algorithm) algo=$2; shift 2;;
            --tls) tls=$2; shift 2;;
            --tie-breaker) tie=$2; shift 2;;
            --timeout) tmo=$2; shift 2;;
            --sync-timeout) stmo=$2; shift 2;;
            --token) token=$2; shift 2;;
            --cluster-name) cname=$2; shift 2;;
            --heuristics) heur=$2; shift 2;;
            --heuristics-fail) heur_fail=$2; shift 2;;
            *) die "up: unknown option $1";;
        esac
    done
    { [[ $nodes =~ ^[0-9]+$ ]] && [ "$nodes" -ge 1 ] && [ "$nodes" -le 32 ]; } || die "--nodes must be 1..32"
    case "$algo" in ffsplit|lms|2nodelms|test) ;; *) die "--algorithm must be ffsplit|lms|2nodelms|test";; esac
    case "$tls" in off|on|required) ;; *) die "--tls must be off|on|required";; esac
    [ "$algo" = 2nodelms ] && [ "$nodes" != 2 ] && die "2nodelms needs --nodes 2"
    [[ $cname =~ ^[A-Za-z0-9_-]+$ ]] || die "bad cluster name"
    case "$heur" in off|sync|on) ;; *) die "--heuristics must be off|sync|on";; esac
    [[ -z $heur_fail || $heur_fail =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--heuristics-fail takes node ids separated by commas (e.g. 1,2)"
    [ -n "$heur_fail" ] && [ "$heur" = off ] && die "--heuristics-fail needs --heuristics sync|on"
    [ "$pve" = 1 ] && [ -n "$heur_fail" ] && die "--heuristics-fail does not go with --pve (one corosync.conf for all nodes)"
    [ "$qsshd" = 1 ] && netns_only qnetd && die "--qnetd-sshd needs the qnetd host's private mounts (not with QI_QNETD_NETNS_ONLY=1)"
    local shims=0
    { [ "$nodev" = 1 ] || [ "$pve" = 1 ]; } && shims=1
    local t
    for t in ip unshare setsid ss timeout corosync corosync-qdevice corosync-quorumtool corosync-qdevice-tool; do
        command -v "$t" > /dev/null || die "missing tool: $t (apt-get install -y corosync corosync-qdevice corosync-qnetd iproute2 util-linux coreutils)"
    done
    if [ "$tls" != off ]; then
        for t in corosync-qnetd-certutil corosync-qdevice-net-certutil certutil pk12util openssl; do
            command -v "$t" > /dev/null || die "missing tool for TLS: $t (apt-get install -y corosync-qnetd corosync-qdevice libnss3-tools openssl)"
        done
    fi
    if [ "$shims" = 1 ] || [ "$qsshd" = 1 ]; then
        [ -x /usr/bin/python3 ] || die "--no-device/--pve/--qnetd-sshd need /usr/bin/python3 (the fake sshd and the ssh/scp shims; apt-get install -y python3)"
    fi
    if [ "$shims" = 1 ]; then
        for t in /usr/bin/ssh /usr/bin/scp /usr/bin/systemctl; do
            [ -f "$t" ] || die "$t is missing: it is the mount point for its shim in the node namespaces (apt-get install -y openssh-client systemd)"
        done
    fi
    [ "$pve" = 1 ] && { command -v corosync-keygen > /dev/null || die "missing tool: corosync-keygen (apt-get install -y corosync)"; }
    [ -e "$S/cluster.env" ] && die "a cluster is already up in $S; run: cluster.sh down"
    for t in "$NS_BR" "$NS_QNETD" $(for i in $(seq 1 "$nodes"); do ns_of_node "$i"; done); do
        [ -e "/run/netns/$t" ] && die "namespace $t already exists; run: cluster.sh down"
    done

    { mkdir -p "$S" && touch "$S/$MARKER"; } || die "cannot create $S"
    : > "$S/namespaces"
    {
        printf 'NODES=%q\n' "$nodes"; printf 'ALGORITHM=%q\n' "$algo"; printf 'TLS=%q\n' "$tls"
        printf 'QNETD_CMD=%q\n' "$qcmd"; printf 'TIE_BREAKER=%q\n' "$tie"; printf 'DEV_TIMEOUT=%q\n' "$tmo"
        printf 'DEV_SYNC_TIMEOUT=%q\n' "$stmo"; printf 'TOKEN=%q\n' "$token"; printf 'CLUSTER_NAME=%q\n' "$cname"
        printf 'HEURISTICS=%q\n' "$heur"; printf 'HEURISTICS_FAIL=%q\n' "$heur_fail"
        printf 'NO_DEVICE=%q\n' "$nodev"; printf 'PVE=%q\n' "$pve"; printf 'QNETD_SSHD=%q\n' "$qsshd"
        printf 'SHIMS=%q\n' "$shims"
        printf 'STARTED=%q\n' "$(date '+%F %T')"
    } > "$S/cluster.env.tmp"
    mv "$S/cluster.env.tmp" "$S/cluster.env"
    load_env
    local pvemsg=""
    [ "$PVE" = 1 ] && pvemsg=", Proxmox VE stand-in (--pve)"
    if [ "$NO_DEVICE" = 1 ]; then
        log "up: $NODES nodes, NO quorum device (--no-device), server tls=$TLS, qnetd=[$QNETD_CMD], state=$S$pvemsg"
    else
        log "up: $NODES nodes, algorithm=$ALGORITHM tls=$TLS heuristics=$HEURISTICS${HEURISTICS_FAIL:+ (fail on $HEURISTICS_FAIL)}, qnetd=[$QNETD_CMD], state=$S$pvemsg"
    fi

    create_net "$NODES" || die "network setup failed (state left for 'cluster.sh down')"
    mk_hostdirs qnetd
    for i in $(seq 1 "$NODES"); do mk_hostdirs "n$i"; done
    if [ "$PVE" = 1 ]; then
        setup_pve || die "Proxmox VE stand-in setup failed"
    else
        for i in $(seq 1 "$NODES"); do write_node_config "$i" || die "config failed"; done
    fi
    if [ "$SHIMS" = 1 ]; then install_shims || die "installing the shims failed"; fi
    if [ "$TLS" != off ]; then
        if [ "$NO_DEVICE" = 1 ]; then setup_tls_server_only || die "TLS setup (server side) failed"
        else setup_tls || die "TLS setup failed"; fi
    fi
    if [ "$PVE" = 1 ]; then
        for i in $(seq 1 "$NODES"); do start_sshd "n$i" "$(ip_of_node "$i")" || die "fake sshd on n$i failed"; done
    fi
    if [ "$QNETD_SSHD" = 1 ]; then
        [ -f "$S/bin/fakessh" ] || { mkdir -p "$S/bin" && install -m 0755 "$HERE/shims/fakessh.py" "$S/bin/fakessh"; } \
            || die "cannot install the fake sshd"
        start_sshd qnetd "$QNETD_IP" || die "fake sshd on the qnetd host failed"
    fi

    start_qnetd || die "qnetd failed to start"
    for i in $(seq 1 "$NODES"); do
        start_daemon "n$i" corosync corosync -f || die "corosync n$i failed"
    done
    # wait for the full totem membership before starting the qdevices
    local deadline=$((SECONDS + 40)) allin
    while :; do
        allin=1
        for i in $(seq 1 "$NODES"); do
            daemon_running "n$i" corosync || { tail -n 30 "$S/n$i/corosync.log" >&2; die "corosync on n$i exited"; }
            quorumtool "$i" -s 2>/dev/null | grep -q "^Nodes: *$NODES\$" || allin=0
        done
        [ $allin = 1 ] && break
        [ $SECONDS -ge $deadline ] && die "corosync membership did not reach $NODES nodes in 40s"
        sleep 0.5
    done
    log "corosync membership complete ($NODES nodes)"
    if [ "$PVE" = 1 ]; then start_pmxcfs || die "pmxcfs stand-in failed"; fi
    if [ "$NO_DEVICE" = 1 ]; then
        log "up: done; no quorum device: 'cluster.sh check-quorate --no-device' checks quorum on the node votes alone"
        return 0
    fi
    for i in $(seq 1 "$NODES"); do start_qdevice "$i" || die "qdevice n$i failed"; done
    log "up: done; 'cluster.sh check-quorate --wait 60' waits for the qdevice vote"
}

cmd_down() {
    local ns i nss=()
    if [ -f "$S/cluster.env" ]; then
        # shellcheck disable=SC1091
        . "$S/cluster.env"
        stop_pmxcfs
        for i in $(seq 1 "$NODES"); do
            [ -d "$S/n$i" ] || continue
            stop_daemon "n$i" qdevice 3 TERM
            stop_daemon "n$i" corosync 5 TERM
            stop_daemon "n$i" sshd 3 TERM
        done
        [ -d "$S/qnetd" ] && stop_daemon qnetd sshd 3 TERM
        [ -d "$S/qnetd" ] && stop_daemon qnetd qnetd 5 TERM
    fi
    [ -f "$S/namespaces" ] && mapfile -t nss < "$S/namespaces"
    # plus any namespace following our naming scheme (e.g. state dir lost)
    while read -r ns _; do
        [[ $ns =~ ^$QI_PREFIX-(br|qnetd|n[0-9]+)$ ]] && nss+=("$ns")
    done < <(ip netns list 2>/dev/null)
    local seen=" "
    for ns in "${nss[@]}"; do
        [[ $seen == *" $ns "* ]] && continue
        seen+="$ns "
        [ -e "/run/netns/$ns" ] || continue
        local left; left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        if [ -n "${left// /}" ]; then
            log "killing leftover processes in $ns: $left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null
            sleep 0.5
        fi
        ip netns del "$ns" && log "deleted namespace $ns"
    done
    # the /etc/pve mount point, when this state's `up --pve` created it and nothing uses it any more
    if [ -f "$S/etc-pve-created" ]; then
        if etc_pve_in_use; then
            log "leaving /etc/pve: still mounted in some process's namespace"
        elif rmdir /etc/pve 2>/dev/null; then
            log "removed the mount point /etc/pve"
        fi
        rm -f "$S/etc-pve-created"
    fi
    if [ -d "$S" ]; then
        if [ "${QI_KEEP_STATE:-0}" = 1 ]; then
            rm -f "$S/cluster.env" "$S/namespaces"; log "kept state dir $S (QI_KEEP_STATE=1)"
        elif [ -f "$S/$MARKER" ]; then
            rm -rf "$S" && log "removed $S"
        else
            log "not removing $S: no $MARKER marker"
        fi
    fi
    return 0
}

cmd_status() {
    load_env
    local i
    echo "=== cluster: $NODES nodes, algorithm=$ALGORITHM, tls=$TLS, qnetd at $QNETD_IP:$QI_PORT"
    echo "=== qnetd command: $QNETD_CMD  ($(daemon_running qnetd qnetd && echo "running, pid $(cat "$S/qnetd/qnetd.pid")" || echo stopped))"
    [ "$NO_DEVICE" = 1 ] && echo "=== started without a quorum device (--no-device): algorithm/tls above apply only to the server"
    if [ "$PVE" = 1 ]; then
        local pm=stopped pid st
        read -r pid st 2>/dev/null < "$S/pmxcfs.pid" && [ "$(proc_starttime "$pid")" = "$st" ] && pm="running, pid $pid"
        echo "=== Proxmox VE stand-in: /etc/pve = $S/pve (corosync.conf config_version $(conf_version "$S/pve/corosync.conf")), pmxcfs stand-in $pm"
    fi
    [ -s "$S/partition" ] && echo "=== partition in force: $(tr '\n' ';' < "$S/partition")"
    for i in $(seq 1 "$NODES"); do
        echo
        echo "################ node $i ($(ns_of_node "$i"), $(ip_of_node "$i"))"
        if ! daemon_running "n$i" corosync; then echo "corosync: not running"; continue; fi
        echo "---- corosync-quorumtool -s"
        quorumtool "$i" -s 2>&1
        echo "---- corosync-qdevice-tool -sv"
        if daemon_running "n$i" qdevice; then in_host "n$i" timeout 5 corosync-qdevice-tool -sv 2>&1; else echo "corosync-qdevice: not running"; fi
    done
    echo
    echo "################ qnetd ($NS_QNETD, $QNETD_IP)"
    if [ -S "$S/qnetd/run/corosync-qnetd/corosync-qnetd.sock" ] && daemon_running qnetd qnetd; then
        echo "---- corosync-qnetd-tool -s"
        in_host qnetd timeout 5 corosync-qnetd-tool -s 2>&1
        echo "---- corosync-qnetd-tool -l -v"
        in_host qnetd timeout 5 corosync-qnetd-tool -l -v 2>&1
    else
        echo "(no corosync-qnetd IPC socket: not the reference server, or not running)"
    fi
}

cmd_check_quorate() {
    load_env
    local wait=0 mode=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --wait) wait=${2:-60}; shift; [ $# -gt 0 ] && shift;;
            --no-device) mode=--no-device; shift;;
            *) die "usage: check-quorate [--wait SECS] [--no-device]";;
        esac
    done
    [[ $wait =~ ^[0-9]+$ ]] || die "check-quorate --wait takes seconds"
    local deadline=$((SECONDS + wait)) out
    while :; do
        out=$(check_quorate_once $mode); local rc=$?
        if [ $rc = 0 ] || [ $SECONDS -ge $deadline ]; then
            echo "$out"
            if [ $rc != 0 ]; then echo "check-quorate: FAILED"
            elif [ "$mode" = --no-device ]; then echo "check-quorate: OK without a qdevice (expected votes $NODES, no qdevice vote counted)"
            elif [ "$NO_DEVICE" = 1 ]; then echo "check-quorate: OK (qdevice vote counted; expected votes = $NODES + the qdevice votes of each node's running config)"
            else echo "check-quorate: OK (expected votes $((NODES + $(qdev_votes_cfg))), qdevice votes $(qdev_votes_cfg))"; fi
            return $rc
        fi
        sleep 1
    done
}

cmd_partition() {
    load_env
    [ $# -ge 1 ] || die "partition: list the nodes to cut off"
    local a b inA side_a=() side_b=()
    for a in "$@"; do node_arg "$a"; done
    for b in $(seq 1 "$NODES"); do
        inA=0; for a in "$@"; do [ "$a" = "$b" ] && inA=1; done
        if [ $inA = 1 ]; then side_a+=("$b"); else side_b+=("$b"); fi
    done
    for a in "${side_a[@]}"; do
        for b in "${side_b[@]}"; do
            # static neighbour entries to a MAC nobody owns: frames are silently
            # dropped (like a real cut) while the qnetd host stays reachable
            ip -n "$(ns_of_node "$a")" neigh replace "$(ip_of_node "$b")" lladdr "$BOGUS_MAC" dev eth0 nud permanent || return 1
            ip -n "$(ns_of_node "$b")" neigh replace "$(ip_of_node "$a")" lladdr "$BOGUS_MAC" dev eth0 nud permanent || return 1
        done
    done
    echo "{${side_a[*]}} | {${side_b[*]}}" >> "$S/partition"
    log "partition: {${side_a[*]}} cut off from {${side_b[*]}} (qnetd reachable from all)"
}

cmd_heal() {
    load_env
    local i j
    for i in $(seq 1 "$NODES"); do
        for j in $(seq 1 "$NODES"); do
            [ "$i" = "$j" ] && continue
            if ip -n "$(ns_of_node "$i")" neigh show "$(ip_of_node "$j")" dev eth0 2>/dev/null | grep -q "$BOGUS_MAC"; then
                ip -n "$(ns_of_node "$i")" neigh del "$(ip_of_node "$j")" dev eth0
            fi
        done
    done
    rm -f "$S/partition"
    log "heal: all node-to-node paths restored"
}

cmd_mem() {
    load_env
    local h name p pg
    for h in qnetd $(for i in $(seq 1 "$NODES"); do echo "n$i"; done); do
        for name in qnetd corosync qdevice; do
            [ -s "$S/$h/$name.pid" ] || continue
            pg=$(cat "$S/$h/$name.pid")
            for p in $(group_pids "$pg" "$(ns_inode "$(ns_of_host "$h")")"); do
                printf '%-6s %-9s pid=%-7s comm=%-16s %s\n' "$h" "$name" "$p" "$(cat /proc/"$p"/comm 2>/dev/null)" \
                    "$(grep -E '^(VmRSS|VmHWM):' /proc/"$p"/status 2>/dev/null | tr -s ' \t' ' ' | tr '\n' ' ')"
            done
        done
    done
}

cmd_logs() {
    load_env
    local h=${1:-} n=${2:-40} f
    local hosts=(qnetd); for i in $(seq 1 "$NODES"); do hosts+=("n$i"); done
    [ -n "$h" ] && { [[ $h =~ ^[0-9]+$ ]] && h=n$h; hosts=("$h"); }
    for h in "${hosts[@]}"; do
        for f in "$S/$h"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f (last $n lines)"; tail -n "$n" "$f"
        done
    done
    if [ -z "${1:-}" ] && [ -f "$S/pmxcfs.log" ]; then
        echo "---- $S/pmxcfs.log (last $n lines)"; tail -n "$n" "$S/pmxcfs.log"
    fi
}

usage() { sed -n "2,48p" "$0" | sed "s/^# \{0,1\}//"; }

cmd=${1:-help}; shift || true
case "$cmd" in
    up) cmd_up "$@";;
    down) cmd_down;;
    status) cmd_status;;
    summary) load_env; for i in $(seq 1 "$NODES"); do node_summary "$i"; done
             echo "qnetd=$(daemon_running qnetd qnetd && echo running || echo stopped)";;
    check-quorate) cmd_check_quorate "$@";;
    wait-quorate) cmd_check_quorate --wait "${1:-60}";;
    partition) cmd_partition "$@";;
    heal) cmd_heal;;
    stop-node) [ $# -ge 1 ] || die "stop-node I [--kill]"; stop_node "$@";;
    start-node) [ $# -ge 1 ] || die "start-node I [--no-qdevice]"; start_node "$@";;
    start-qdevice) [ $# -ge 1 ] || die "start-qdevice I"; load_env; node_arg "$1"
                   daemon_running "n$1" corosync || die "corosync is not running on n$1 (start-node $1 first)"
                   start_qdevice "$1";;
    kill-qnetd) load_env; if [ "${1:-}" = --hard ]; then stop_daemon qnetd qnetd 5 KILL; else stop_daemon qnetd qnetd 5 TERM; fi;;
    start-qnetd) start_qnetd;;
    qnetd-cmd) cmd_qnetd_cmd "$@";;
    _pmxcfs) cmd_pmxcfs;;
    exec) load_env; h=${1:?exec HOST CMD...}; shift; [[ $h =~ ^[0-9]+$ ]] && h=n$h; in_host "$h" "$@";;
    mem|pids) cmd_mem;;
    logs) cmd_logs "$@";;
    help|-h|--help) usage;;
    *) usage; exit 2;;
esac
