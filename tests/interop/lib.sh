# shellcheck shell=bash
# lib.sh -- the pieces of the interop harness that more than one script needs. Sourced (never
# run) by cluster.sh, scenarios.sh, shims/systemctl and scripts/demo.sh.
#
#   qi_settings            QI_* defaults and checks; sets S, NS_BR, NS_QNETD, QNETD_IP
#   ns_of_host, hostdir    names: namespace and state directory of a host (qnetd | br | nI)
#   in_host HOST CMD...    run CMD in HOST's network namespace with its private mounts
#   spawn_session PIDFILE LOG CMD...   start CMD in a new session, its pid in PIDFILE
#   group_pids / stop_group            the processes of one daemon, and stopping them
#   proc_starttime, conf_version       small readers of /proc and corosync.conf
#
# Nothing here kills by name: a daemon is its process group plus the descendants that left it,
# restricted to one network namespace (checked by inode), so a recycled pid is never hit.

# The reference server, as every scenario and `cluster.sh up` start it by default.
# shellcheck disable=SC2016,SC2034 # expanded by bash -c in the qnetd namespace; used by the sourcing scripts
QI_REFERENCE_CMD='corosync-qnetd -f -d -s "$QNETD_TLS" -l "$QNETD_ADDR" -p "$QNETD_PORT"'

qi_me() { basename "$0"; }
die() { echo "$(qi_me): $*" >&2; exit 1; }
log() { echo "[$(qi_me) $(date +%T)] $*" >&2; }

# qi_settings [DEFAULT_STATE DEFAULT_PREFIX DEFAULT_SUBNET]: fill in and check the QI_* settings
# (exported, so that cluster.sh called by scenarios.sh sees the same ones).
qi_settings() {
    export QI_STATE=${QI_STATE:-${1:-/tmp/qnetd-interop}}
    export QI_PREFIX=${QI_PREFIX:-${2:-qi}}
    export QI_SUBNET=${QI_SUBNET:-${3:-10.77.0}}
    export QI_PORT=${QI_PORT:-5403}
    case "$QI_SUBNET" in
        10.*.*|192.168.*) ;;
        *) die "QI_SUBNET must be 10.x.y or 192.168.x (got $QI_SUBNET)";;
    esac
    [[ $QI_PREFIX =~ ^[a-z][a-z0-9]{0,5}$ ]] || die "QI_PREFIX must be 1-6 lowercase letters/digits"
    [[ $QI_STATE == /* ]] || die "QI_STATE must be an absolute path (got $QI_STATE)"
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, bind mounts)"
    # shellcheck disable=SC2034 # used by the sourcing scripts
    S=$QI_STATE
    NS_BR=$QI_PREFIX-br
    NS_QNETD=$QI_PREFIX-qnetd
    QNETD_IP=$QI_SUBNET.100
}

ns_of_node() { echo "$QI_PREFIX-n$1"; }
ip_of_node() { echo "$QI_SUBNET.$((10 + $1))"; }
hostdir() { echo "$S/$1"; }
ns_of_host() { case "$1" in qnetd) echo "$NS_QNETD";; br) echo "$NS_BR";; n*) ns_of_node "${1#n}";; esac; }
ns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }

# ------------------------------------------------------------ the namespace wrapper
# Every daemon and every tool call of a host runs as
#     ip netns exec NS unshare --mount --propagation private bash -c "$BIND_SCRIPT" ARG0 HOSTDIR CMD...
# BIND_SCRIPT binds the per-host dirs over the stock paths, then the extra binds listed in
# HOSTDIR/binds and in the file $QI_BINDS names (one daemon's own binds), as
# "SOURCE<TAB>TARGET[<TAB>KEEP]" lines: the shims and /etc/pve (see install_shims), and the qnetd
# sshd's private /tmp (see start_sshd). KEEP is a path under TARGET that stays visible (the
# state dir, when it lives in /tmp): it is bound into SOURCE first, and SOURCE bound recursively.
# `ip netns exec` makes a new mount namespace on every call, so the binds are made every time.
# shellcheck disable=SC2016 # run by bash -c
BIND_SCRIPT='d=$1; shift
mount --bind "$d/etc" /etc/corosync &&
mount --bind "$d/lib" /var/lib/corosync &&
mount --bind "$d/log" /var/log/corosync &&
mount --bind "$d/shm" /dev/shm &&
mount --bind "$d/run" /run || { echo "bind mounts failed" >&2; exit 97; }
for bf in "$d/binds" ${QI_BINDS:+"$QI_BINDS"}; do
    [ -s "$bf" ] || continue
    while IFS="	" read -r src dst keep; do
        [ -n "$src" ] && [ -n "$dst" ] || continue
        if [ -d "$src" ] && [ ! -e "$dst" ]; then mkdir -p "$dst"; fi
        if [ -n "$keep" ]; then
            mkdir -p "$src/${keep#"$dst"/}" && mount --bind "$keep" "$src/${keep#"$dst"/}" &&
                mount --rbind "$src" "$dst" || { echo "bind mount $src -> $dst (keeping $keep) failed" >&2; exit 97; }
        else
            mount --bind "$src" "$dst" || { echo "bind mount $src -> $dst failed" >&2; exit 97; }
        fi
    done < "$bf"
done
exec "$@"'

# QI_QNETD_NETNS_ONLY=1: the qnetd host enters only the network namespace (nsenter), with the
# machine's own file system, /sys and cgroups. A container engine (podman --network host) needs
# that; `ip netns exec` remounts /sys without cgroups.
netns_only() { [ "$1" = qnetd ] && [ "${QI_QNETD_NETNS_ONLY:-0}" = 1 ]; }

# host_argv HOST: the command prefix that enters HOST (NUL-separated, for mapfile -d '')
host_argv() {
    local h=$1 ns; ns=$(ns_of_host "$1")
    if [ "$h" = br ]; then printf '%s\0' ip netns exec "$ns"
    elif netns_only "$h"; then printf '%s\0' nsenter --net="/run/netns/$ns"
    else printf '%s\0' ip netns exec "$ns" unshare --mount --propagation private \
        bash -c "$BIND_SCRIPT" "$h" "$(hostdir "$h")"
    fi
}

in_host() { # HOST CMD...
    local pre; mapfile -d '' -t pre < <(host_argv "$1"); shift
    "${pre[@]}" "$@"
}

# spawn_session PIDFILE LOG CMD...: CMD in a new session (its pid = its process group id, written
# to PIDFILE), output appended to LOG, stdin from /dev/null; waits (5 s) for the pid file.
spawn_session() {
    local pidf=$1 logf=$2 t=0; shift 2
    rm -f "$pidf"
    # shellcheck disable=SC2016 # run by bash -c
    setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' spawn "$pidf" "$@" >> "$logf" 2>&1 < /dev/null &
    while [ ! -s "$pidf" ] && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
    [ -s "$pidf" ]
}

# ------------------------------------------------------------------- processes

# proc_starttime PID: starttime (field 22 of /proc/PID/stat) of a live, non-zombie process
proc_starttime() {
    local st rest
    read -r st 2>/dev/null < "/proc/$1/stat" || return 1
    rest=${st##*) }
    # shellcheck disable=SC2086 # split the fields
    set -- $rest
    [ "$1" = Z ] && return 1
    echo "${20}"
}

# group_pids PGID NSINO: live (non-zombie) pids of process group PGID plus their descendants (the
# qdevice heuristics worker calls setsid itself) that are in the network namespace with inode
# NSINO. Killed daemons stay zombies for a while under PID 1: state Z does not count.
group_pids() {
    local pg=$1 nsino=$2 p st rest pid members=" " cand=() changed c
    [ -n "$nsino" ] || return 0
    for p in /proc/[0-9]*; do
        read -r st 2>/dev/null < "$p/stat" || continue
        rest=${st##*) }
        # shellcheck disable=SC2086 # rest: state ppid pgrp ...
        set -- $rest
        [ "$1" = Z ] && continue
        pid=${p#/proc/}
        if [ "$3" = "$pg" ]; then members+="$pid "; else cand+=("$pid:$2"); fi
    done
    changed=1
    while [ $changed = 1 ]; do
        changed=0
        for c in "${cand[@]}"; do
            [[ $members == *" ${c%%:*} "* ]] && continue
            if [[ $members == *" ${c#*:} "* ]]; then members+="${c%%:*} "; changed=1; fi
        done
    done
    for pid in $members; do
        [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$nsino" ] && echo "$pid"
    done
}

# stop_group PGID NSINO TIMEOUT_S SIGNAL: send SIGNAL to the group (see group_pids), wait up to
# TIMEOUT_S, then SIGKILL what is left (and wait 5 s more). Prints the pids it had to SIGKILL.
stop_group() {
    local pg=$1 nsino=$2 tmo=$3 sig=$4 pids deadline
    pids=$(group_pids "$pg" "$nsino")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # a list of pids
    kill -s "$sig" $pids 2>/dev/null
    deadline=$((SECONDS + tmo))
    while [ -n "$(group_pids "$pg" "$nsino")" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    pids=$(group_pids "$pg" "$nsino")
    [ -n "$pids" ] || return 0
    echo "$pids" | tr '\n' ' '
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null
    deadline=$((SECONDS + 5))
    while [ -n "$(group_pids "$pg" "$nsino")" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
}

# conf_version FILE: the first config_version number (pmxcfs's regex), 0 when none
conf_version() {
    local v
    v=$(grep -oE 'config_version[[:space:]]*:[[:space:]]*[0-9]+' "$1" 2>/dev/null | head -n 1 | grep -oE '[0-9]+$')
    echo "${v:-0}"
}
