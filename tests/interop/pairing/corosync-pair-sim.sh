#!/bin/bash
# corosync-pair-sim.sh -- the plain-Corosync variant of pvecm-sim.sh, for the qnetd-interop
# harness (`cluster.sh up --no-device`, without --pve; with --qnetd-sshd). There is no shared
# /etc/pve and no ssh between the nodes, so it runs on EVERY node, one after the other:
#
#   bash corosync-pair-sim.sh [--force] QNETD_IP        (as root, on each node)
#
# Each node makes its own key and certificate request, has the request signed on the qnetd host
# over ssh (corosync-qnetd-certutil -s, as pvecm does), imports the certificate, adds the same
# quorum.device block as pvecm to its own /etc/corosync/corosync.conf (config_version + 1,
# through corosync.conf.new and a rename), reloads corosync and starts + enables
# corosync-qdevice. The reference corosync-qnetd accepts one certificate per node, as long as it
# chains to its CA and names the cluster. ffsplit for an even node count, lms for an odd one.
set -u -o pipefail

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pair_args corosync-pair-sim.sh "$@"
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

conf=/etc/corosync/corosync.conf
[ -f "$conf" ] || die "$conf does not exist - is this node part of a cluster?"
cmap_get() { corosync-cmapctl -g "$1" 2>/dev/null | sed -n 's/^[^=]* = //p'; }
clustername=$(cmap_get totem.cluster_name)
[ -n "$clustername" ] || die "corosync does not answer (no totem.cluster_name in cmap): is it running?"
nodeid=$(cmap_get runtime.votequorum.this_node_id)
nnodes=$(corosync-cmapctl nodelist.node. 2>/dev/null | grep -c '^nodelist\.node\.[0-9]*\.nodeid ')
[ "$nnodes" -gt 0 ] || die "no nodelist in the running corosync configuration"

# a quorum.device section already in the file?
has_device=$(awk '{ sub(/#.*/, "") } /^[[:space:]]*quorum[[:space:]]*\{/ && d == 0 { q = 1 }
    q && d == 1 && /^[[:space:]]*device[[:space:]]*\{/ { found = 1 }
    { n = gsub(/\{/, "{"); m = gsub(/\}/, "}"); d += n - m; if (d == 0) q = 0 }
    END { print found ? 1 : 0 }' "$conf")
[ "$has_device" = 1 ] && die "QDevice already configured in $conf!"

algorithm=ffsplit
[ $((nnodes % 2)) = 1 ] && algorithm=lms

db_dir_node=/etc/corosync/qdevice/net/nssdb
db_dir_qnetd=/etc/corosync/qnetd/nssdb
if [ -d "$db_dir_node" ]; then
    if [ $force = 1 ]; then rm -rf "$db_dir_node"
    else die "QDevice certificate store already initialised, set --force to delete!"; fi
fi
tmp=$(mktemp -d /tmp/corosync-pair.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

ssh_cmd=(ssh -o BatchMode=yes -lroot)
scp_cmd=(scp -o BatchMode=yes)
crq_remote=/tmp/qdevice-net-node-$clustername-$nodeid.crq
crt_remote=/tmp/cluster-$clustername-$nodeid.crt

echo "INFO: node $nodeid of $nnodes, cluster '$clustername', qnetd $addr, algorithm $algorithm"
echo; echo "INFO: initializing qnetd server"
run_noerr "${ssh_cmd[@]}" "$addr" corosync-qnetd-certutil -i < /dev/null

echo; echo "INFO: copying the CA cert and initializing the local certificate store"
run "${scp_cmd[@]}" "root@[$addr]:$db_dir_qnetd/qnetd-cacert.crt" "$tmp/qnetd-cacert.crt"
run corosync-qdevice-net-certutil -i -c "$tmp/qnetd-cacert.crt"

echo; echo "INFO: generating this node's key and cert request"
run corosync-qdevice-net-certutil -r -n "$clustername"

echo; echo "INFO: copying the cert request to the qnetd server and signing it there"
run "${scp_cmd[@]}" "$db_dir_node/qdevice-net-node.crq" "root@[$addr]:$crq_remote"
# one signature at a time on the server: cluster-NAME.crt is the same file for every node
run "${ssh_cmd[@]}" "$addr" "flock /tmp/corosync-pair-sign.lock sh -c 'corosync-qnetd-certutil -s -c $crq_remote -n $clustername && cp $db_dir_qnetd/cluster-$clustername.crt $crt_remote'" < /dev/null
run "${scp_cmd[@]}" "root@[$addr]:$crt_remote" "$tmp/cluster-$clustername.crt"
run_noerr "${ssh_cmd[@]}" "$addr" rm -f "$crq_remote" "$crt_remote" < /dev/null

echo; echo "INFO: import certificate"
run corosync-qdevice-net-certutil -M -c "$tmp/cluster-$clustername.crt"

echo; echo "INFO: add QDevice to $conf"
awk -v addr="$addr" -v algo="$algorithm" '
    { line[++n] = $0
      if (unit == "" && match($0, /^[ \t]+[^ \t#}]/)) unit = substr($0, 1, RLENGTH - 1) }
    END {
        if (unit == "") unit = "    "
        d = 0; sect = ""; cv = 0; q = 0
        for (i = 1; i <= n; i++) {
            s = line[i]; sub(/#.*/, "", s)
            opens = gsub(/\{/, "{", s); closes = gsub(/\}/, "}", s)
            if (d == 0 && s ~ /^[ \t]*[A-Za-z_]+[ \t]*\{/) { sect = s; sub(/^[ \t]*/, "", sect); sub(/[ \t]*\{.*/, "", sect) }
            if (sect == "totem" && d == 1 && s ~ /^[ \t]*config_version[ \t]*:/) {
                v = s; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]*$/, "", v)
                pre = line[i]; sub(/config_version.*/, "", pre)
                print pre "config_version: " (v + 1); cv = 1; d += opens - closes; continue
            }
            if (sect == "totem" && d == 1 && closes > opens && !cv) { print unit "config_version: 1"; cv = 1 }
            print line[i]
            if (d == 0 && sect == "quorum" && opens > closes) {
                q = 1
                print unit "device {"
                print unit unit "model: net"
                if (algo == "ffsplit") print unit unit "votes: 1"
                print unit unit "net {"
                print unit unit unit "tls: on"
                print unit unit unit "host: " addr
                print unit unit unit "algorithm: " algo
                print unit unit "}"
                print unit "}"
            }
            d += opens - closes
            if (d == 0) sect = ""
        }
        if (!q) { print "corosync-pair-sim: no quorum section" > "/dev/stderr"; exit 1 }
    }' "$conf" > "$conf.new" || { rm -f "$conf.new"; die "editing $conf failed"; }
cp -p "$conf" "$conf.bak"
mv -f "$conf.new" "$conf" || die "activating $conf.new failed"
echo "config_version: $(grep -oE 'config_version[[:space:]]*:[[:space:]]*[0-9]+' "$conf.bak" | grep -oE '[0-9]+$' || echo none) -> $(grep -oE 'config_version[[:space:]]*:[[:space:]]*[0-9]+' "$conf" | grep -oE '[0-9]+$')"

echo; echo "INFO: reloading the corosync configuration (cluster wide)"
run corosync-cfgtool -R

echo; echo "INFO: start and enable corosync qdevice daemon"
run systemctl start corosync-qdevice
run systemctl enable corosync-qdevice
echo; echo "INFO: corosync-pair-sim.sh: node $nodeid paired with $addr ($algorithm)"
