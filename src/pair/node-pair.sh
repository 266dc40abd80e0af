#!/bin/bash
# qnetd pairing: adds this qnetd as the quorum device of a Corosync / Proxmox VE cluster.
# Served by qnetd for one pairing window (src/pair/script.rs fills in the @...@ values). Run as
# root on ONE node of a Proxmox VE cluster, or on EVERY node of a plain Corosync cluster:
#
#   curl -sSk --pinnedpubkey sha256//PIN https://HOST:PORT/pair/ID.SECRET | bash
#   ... | bash -s -- --dry-run     checks, then prints the plan; changes nothing
#   ... | bash -s -- --force       replaces an existing quorum device and certificate store
#
# The body is one function called on the last line, so nothing runs unless all of it arrived.
# Any failure before corosync.conf is written puts every node back as it was; a failure after it
# prints how to undo. Each node makes its own key; only certificate requests leave the nodes.
set -u -o pipefail

QNETD_HOST=@QNETD_HOST@
QNETD_URL_HOST=@QNETD_URL_HOST@
QNETD_PORT=@QNETD_PORT@
QNETD_PIN=@QNETD_PIN@
QNETD_TOKEN=@QNETD_TOKEN@
QNETD_CA_PEM=$(cat <<'QNETD_CA_EOF'
@QNETD_CA_PEM@
QNETD_CA_EOF
)

NSSDB=/etc/corosync/qdevice/net/nssdb
CERTUTIL=corosync-qdevice-net-certutil
STEPS=8
STEP=0
TMP=
COMMITTED=0
DRY_RUN=0
FORCE=0
MODE=
CONF=
CLUSTER=
LOCAL_ID=
API_ERROR=
ALGORITHM=
declare -a M_ID=() M_NAME=() M_ADDR=() CREATED=() OLD_DB=() HAD_DB=()

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
step() { STEP=$((STEP + 1)); printf '[%d/%d] %s\n' "$STEP" "$STEPS" "$*"; }

usage() {
    say "usage: ... | bash -s -- [--dry-run] [--force]"
    say "  --dry-run  check everything and print the plan, change nothing"
    say "  --force    replace an existing quorum device and qdevice certificate store"
}

base_url() { printf 'https://%s:%s/pair/%s' "$QNETD_URL_HOST" "$QNETD_PORT" "$QNETD_TOKEN"; }

# api METHOD PATH OUT [BODY_FILE]: one pinned HTTPS request to qnetd; the response body goes to
# OUT, the headers to $TMP/headers. Fails, with $API_ERROR set, unless the answer is 200.
api() {
    local method=$1 path=$2 out=$3 body=${4:-} code
    local args=(-sS -k --pinnedpubkey "$QNETD_PIN" --proto "=https" --connect-timeout 10
        --max-time 120 -X "$method" -D "$TMP/headers" -o "$out" -w '%{http_code}')
    if [ -n "$body" ]; then
        args+=(-H 'Content-Type: application/octet-stream' --data-binary "@$body")
    fi
    if ! code=$(curl "${args[@]}" "$(base_url)$path"); then
        API_ERROR="cannot reach qnetd at $QNETD_URL_HOST:$QNETD_PORT over pinned HTTPS (wrong address, port or pin?)"
        return 1
    fi
    if [ "$code" != 200 ]; then
        API_ERROR="qnetd answered $code: $(head -c 400 "$out" 2>/dev/null | tr -cd '[:print:]')"
        return 1
    fi
}

# header NAME: the values of response header NAME from the last api call, one per line.
header() {
    local name=$1 line key
    while IFS= read -r line; do
        line=${line%$'\r'}
        key=${line%%:*}
        if [ "${key,,}" = "${name,,}" ]; then
            printf '%s\n' "${line#*: }" | tr -cd '[:print:]\n'
        fi
    done < "$TMP/headers"
}

cmap_get() { corosync-cmapctl -g "$1" 2>/dev/null | sed -n 's/^[^=]* = //p'; }

# The members, from the running corosync: M_ID, M_NAME, M_ADDR, indexed like nodelist.node.N.
read_members() {
    local line idx key val
    while IFS= read -r line; do
        [[ $line =~ ^nodelist\.node\.([0-9]+)\.(nodeid|name|ring0_addr)\ \([a-z0-9]+\)\ =\ (.*)$ ]] || continue
        idx=${BASH_REMATCH[1]} key=${BASH_REMATCH[2]} val=${BASH_REMATCH[3]}
        case $key in
            nodeid) M_ID[idx]=$val ;;
            name) M_NAME[idx]=$val ;;
            ring0_addr) M_ADDR[idx]=$val ;;
        esac
    done < <(corosync-cmapctl nodelist.node. 2>/dev/null)
    for idx in "${!M_ID[@]}"; do
        [[ ${M_ID[idx]} =~ ^[0-9]+$ ]] || die "unexpected node id '${M_ID[idx]}' in the nodelist"
        : "${M_NAME[idx]:=node${M_ID[idx]}}"
        [[ ${M_NAME[idx]} =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] \
            || die "node name '${M_NAME[idx]}' is not supported for pairing"
        [[ ${M_ADDR[idx]:-} =~ ^[A-Za-z0-9.:%_-]+$ ]] \
            || die "node '${M_NAME[idx]}' has no usable ring0_addr in the nodelist"
    done
}

is_local() { [ "${M_ID[$1]}" = "$LOCAL_ID" ]; }

# The nodes this run changes: every member on Proxmox VE, this node on plain Corosync.
targets() {
    local idx
    for idx in "${!M_ID[@]}"; do
        if [ "$MODE" = pve ] || is_local "$idx"; then printf '%s\n' "$idx"; fi
    done
}

# on_node IDX SCRIPT: runs the bash text SCRIPT as root on member IDX (stdin passes through):
# here, or over ssh the way Proxmox VE reaches its members (PVE::SSHInfo).
on_node() {
    local idx=$1 script=$2 name=${M_NAME[$1]}
    if is_local "$idx"; then
        # An explicit status: a bare return in the EXIT trap (rollback) would give the trap's.
        bash -c "$script"
        return $?
    fi
    local opts=(-e none -o BatchMode=yes -o "HostKeyAlias=$name")
    if [ -f "/etc/pve/nodes/$name/ssh_known_hosts" ]; then
        opts+=(-o "UserKnownHostsFile=/etc/pve/nodes/$name/ssh_known_hosts" -o GlobalKnownHostsFile=none)
    fi
    /usr/bin/ssh "${opts[@]}" "root@${M_ADDR[idx]}" -- "$script"
}

# q WORDS...: the words quoted for the remote bash.
q() { printf '%q ' "$@"; }

rollback() {
    local i idx undo
    for i in "${!CREATED[@]}"; do
        idx=${CREATED[i]}
        say "  rollback: removing the new certificate store on ${M_NAME[idx]}" >&2
        undo="rm -rf $(q "$NSSDB")"
        if [ "${HAD_DB[i]}" = 1 ]; then
            # Only once the old store was moved aside is the one in place ours.
            undo="if [ -e $(q "${OLD_DB[i]}") ]; then rm -rf $(q "$NSSDB") && mv $(q "${OLD_DB[i]}" "$NSSDB"); fi"
        fi
        on_node "$idx" "$undo" \
            < /dev/null || warn "rollback failed on ${M_NAME[idx]}: remove $NSSDB there by hand"
    done
}

undo_hint() {
    if [ "$MODE" = pve ]; then
        say "To undo: pvecm qdevice remove"
    else
        say "To undo on this node: systemctl disable --now corosync-qdevice; cp $CONF.qnetd-undo $CONF; corosync-cfgtool -R; rm -rf $NSSDB"
    fi
}

on_exit() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$COMMITTED" = 1 ]; then
            say "corosync.conf already names the quorum device." >&2
            undo_hint >&2
        else
            rollback
            say "Nothing was changed on the cluster." >&2
        fi
    fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}

check_node() {
    local idx tool
    [ "$(id -u)" = 0 ] || die "run this as root"
    for tool in curl corosync-cmapctl corosync-cfgtool corosync-quorumtool systemctl; do
        command -v "$tool" > /dev/null || die "'$tool' is missing on this node"
    done
    # Proxmox VE: pmxcfs holds the cluster-wide corosync.conf (the script never calls pvecm).
    if [ -f /etc/pve/corosync.conf ]; then
        MODE=pve CONF=/etc/pve/corosync.conf
    else
        MODE=corosync CONF=/etc/corosync/corosync.conf
    fi
    [ -f "$CONF" ] || die "$CONF does not exist: is this node part of a cluster?"
    CLUSTER=$(cmap_get totem.cluster_name)
    [ -n "$CLUSTER" ] || die "corosync does not answer (no totem.cluster_name): is it running?"
    [[ $CLUSTER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] \
        || die "cluster name '$CLUSTER' is not supported for pairing (A-Z a-z 0-9 . _ -)"
    LOCAL_ID=$(cmap_get runtime.votequorum.this_node_id)
    read_members
    [ "${#M_ID[@]}" -gt 0 ] || die "no nodelist in the running corosync configuration"
    local online
    online=" $(corosync-cmapctl runtime.members. 2>/dev/null \
        | sed -n 's/^runtime\.members\.\([0-9]*\)\.status ([^)]*) = joined$/\1/p' | tr '\n' ' ')"
    local found=0
    for idx in "${!M_ID[@]}"; do
        [[ $online == *" ${M_ID[idx]} "* ]] \
            || die "all nodes must be online: node ${M_NAME[idx]} is offline"
        if is_local "$idx"; then found=1; fi
    done
    [ "$found" = 1 ] || die "this node (id '$LOCAL_ID') is not in the nodelist"
    local host
    host=$(cmap_get quorum.device.net.host)
    if [ -n "$(cmap_get quorum.device.model)" ] && [ "$FORCE" = 0 ]; then
        [ "$host" != "$QNETD_HOST" ] \
            || die "cluster '$CLUSTER' already uses this qnetd ($QNETD_HOST) as its quorum device: it is paired, nothing to do (run with --force to pair it again)"
        die "cluster '$CLUSTER' already has a quorum device (host ${host:-?}): remove it first, or run with --force"
    fi
}

check_members() {
    local idx missing=()
    for idx in $(targets); do
        if ! on_node "$idx" "command -v $CERTUTIL > /dev/null" < /dev/null; then
            missing+=("${M_NAME[idx]}")
            continue
        fi
        if [ "$FORCE" = 0 ] && on_node "$idx" "[ -e $(q "$NSSDB") ]" < /dev/null; then
            die "node ${M_NAME[idx]} already has a qdevice certificate store ($NSSDB): run with --force to replace it"
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "corosync-qdevice is not installed on: ${missing[*]}" >&2
        say "Install it there first:  apt install corosync-qdevice" >&2
        die "stopped before changing anything"
    fi
}

prepare_conf() {
    cp "$CONF" "$TMP/corosync.conf.orig" || die "cannot read $CONF"
    local force=
    [ "$FORCE" = 1 ] && force='?force=1'
    api POST "/corosync.conf$force" "$TMP/corosync.conf.new" "$TMP/corosync.conf.orig" || die "$API_ERROR"
    ALGORITHM=$(header X-Qnetd-Algorithm)
    local w
    while IFS= read -r w; do
        [ -n "$w" ] && warn "$w"
    done < <(header X-Qnetd-Warning)
    api POST "/corosync.conf/undo" "$TMP/corosync.conf.undo" "$TMP/corosync.conf.orig" || die "$API_ERROR"
}

print_plan() {
    local idx
    say "Plan for cluster '$CLUSTER' (${#M_ID[@]} nodes, algorithm ${ALGORITHM:-?}, qnetd $QNETD_HOST port $QNETD_PORT):"
    for idx in $(targets); do
        say "  ${M_NAME[idx]}: new key and certificate in $NSSDB, signed by qnetd for '$CLUSTER'"
    done
    say "  write $CONF:"
    diff -u "$TMP/corosync.conf.orig" "$TMP/corosync.conf.new" | sed 's/^/    /'
    say "  corosync-cfgtool -R, then enable and start corosync-qdevice on: $(for idx in $(targets); do printf '%s ' "${M_NAME[idx]}"; done)"
    say "  wait until corosync-quorumtool shows the qdevice vote"
}

make_certs() {
    local idx old had ca="$TMP/qnetd-cacert.crt"
    printf '%s\n' "$QNETD_CA_PEM" > "$ca"
    for idx in $(targets); do
        old="$NSSDB.qnetd-old.$$" had=0
        # --force: an existing store is moved aside, and put back by the rollback.
        if on_node "$idx" "[ -e $(q "$NSSDB") ]" < /dev/null; then had=1; fi
        # Recorded before the store exists, so that a failure half-way is rolled back too.
        CREATED+=("$idx")
        OLD_DB+=("$old")
        HAD_DB+=("$had")
        on_node "$idx" "set -e; if [ $had = 1 ]; then mv $(q "$NSSDB" "$old"); fi
            t=\$(mktemp); trap 'rm -f \"\$t\"' EXIT; cat > \"\$t\"
            $CERTUTIL -i -c \"\$t\" > /dev/null
            $CERTUTIL -r -n $(q "$CLUSTER") > /dev/null" < "$ca" \
            || die "creating the certificate store on ${M_NAME[idx]} failed"
        on_node "$idx" "cat $(q "$NSSDB/qdevice-net-node.crq")" < /dev/null > "$TMP/$idx.crq" \
            || die "reading the certificate request of ${M_NAME[idx]} failed"
    done
    for idx in $(targets); do
        api POST "/sign?node=${M_NAME[idx]}" "$TMP/$idx.crt" "$TMP/$idx.crq" \
            || die "signing the certificate of ${M_NAME[idx]}: $API_ERROR"
        on_node "$idx" "set -e; t=\$(mktemp); trap 'rm -f \"\$t\"' EXIT; cat > \"\$t\"
            $CERTUTIL -M -c \"\$t\" > /dev/null" < "$TMP/$idx.crt" \
            || die "importing the certificate on ${M_NAME[idx]} failed"
        say "  ${M_NAME[idx]}: certificate signed and imported"
    done
}

# After the commit: the stores that --force moved aside are not needed any more.
drop_old_dbs() {
    local i
    for i in "${!OLD_DB[@]}"; do
        on_node "${CREATED[i]}" "rm -rf $(q "${OLD_DB[i]}")" < /dev/null || true
    done
}

write_conf() {
    cmp -s "$TMP/corosync.conf.orig" "$CONF" || die "$CONF changed while pairing; run the command again"
    local dir
    dir=$(dirname "$CONF")
    if [ "$MODE" = corosync ]; then
        cp -p "$CONF" "$CONF.qnetd-bak" || die "cannot back up $CONF"
        cp "$TMP/corosync.conf.undo" "$CONF.qnetd-undo" || die "cannot write $CONF.qnetd-undo"
    fi
    cp "$TMP/corosync.conf.new" "$dir/corosync.conf.new" || die "cannot write $dir/corosync.conf.new"
    if ! mv -f "$dir/corosync.conf.new" "$CONF"; then
        rm -f "$dir/corosync.conf.new"
        die "activating $dir/corosync.conf.new failed"
    fi
    COMMITTED=1
}

start_qdevice() {
    local idx tries=0
    if [ "$MODE" = pve ]; then
        # pmxcfs copies /etc/pve/corosync.conf to every node's /etc/corosync/corosync.conf.
        until cmp -s "$CONF" /etc/corosync/corosync.conf; do
            tries=$((tries + 1))
            [ "$tries" -le 30 ] || die "pmxcfs did not copy $CONF to /etc/corosync/corosync.conf"
            sleep 1
        done
    fi
    # Reload first: corosync-qdevice reads its settings from the running configuration.
    corosync-cfgtool -R > /dev/null || die "corosync-cfgtool -R failed"
    for idx in $(targets); do
        on_node "$idx" "systemctl enable corosync-qdevice && systemctl restart corosync-qdevice" \
            < /dev/null || die "starting corosync-qdevice on ${M_NAME[idx]} failed"
    done
}

# Whether corosync-quorumtool shows the device vote (A,V) for every node this run paired.
device_votes() {
    local out line id idx
    out=$(corosync-quorumtool -s 2>/dev/null)
    grep -q '^Flags:.*Qdevice' <<< "$out" || return 1
    for idx in $(targets); do
        id=${M_ID[idx]}
        line=$(grep -E "^ +$id +[0-9]+ +[A-Z]+,[A-Z]+" <<< "$out") || return 1
        [[ $line =~ ^\ +$id\ +[0-9]+\ +A,V ]] || return 1
    done
}

confirm() {
    local tries=0
    until device_votes; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            corosync-quorumtool -s >&2
            die "the quorum device is configured but its vote does not show after 60 s (check corosync-qdevice with 'journalctl -u corosync-qdevice')"
        fi
        sleep 1
    done
    corosync-quorumtool -s | grep -E '^Flags:|Qdevice *$'
}

main() {
    exec < /dev/null
    local arg
    for arg in "$@"; do
        case $arg in
            --dry-run) DRY_RUN=1 ;;
            --force) FORCE=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
    done
    TMP=$(mktemp -d /tmp/qnetd-pair.XXXXXX) || die "mktemp failed"
    trap on_exit EXIT
    step "checking this node and the cluster"
    check_node
    say "  cluster '$CLUSTER', ${#M_ID[@]} nodes, $MODE mode, $CONF"
    step "checking corosync-qdevice and certificate stores on: $(for i in $(targets); do printf '%s ' "${M_NAME[i]}"; done)"
    check_members
    step "asking qnetd for the new corosync.conf"
    prepare_conf
    if [ "$DRY_RUN" = 1 ]; then
        print_plan
        say "Dry run: nothing was changed."
        exit 0
    fi
    step "creating keys and certificates (every key stays on its node)"
    make_certs
    step "writing $CONF (config_version raised)"
    write_conf
    drop_old_dbs
    step "reloading corosync and starting corosync-qdevice"
    start_qdevice
    step "waiting for the qdevice vote"
    confirm
    step "paired: cluster '$CLUSTER' votes with qnetd $QNETD_HOST"
    [ "$MODE" = corosync ] && [ "${#M_ID[@]}" -gt 1 ] \
        && say "Plain Corosync: run the same command on every other node too."
    undo_hint
}

main "$@"
