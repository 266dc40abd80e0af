#!/bin/bash
# run.sh SCRIPT CONF_IN CONF_NEW OUT_DIR [ARGS...]: runs SCRIPT on a fake node (see README.md);
# afterwards OUT_DIR holds state/log, corosync/ (the fake /etc/corosync), pve/ and rc.
# PVE=1: a Proxmox VE node (/etc/pve, pvecm, member b reached over a fake /usr/bin/ssh).
set -u
script=$1 conf_in=$2 conf_new=$3 out=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
export FAKE="$out/state"
mkdir -p "$FAKE" "$out/path"
cp "$conf_new" "$FAKE/conf.new"
[ -n "${DEVICE_HOST:-}" ] && printf '%s\n' "$DEVICE_HOST" > "$FAKE/device"
for tool in bash sed grep tr cmp cp mv rm mkdir mktemp cat head diff dirname id sleep chmod env touch unshare mount ln; do
    ln -s "$(command -v "$tool")" "$out/path/$tool"
done
for tool in "$here"/bin/*; do
    ln -s "$tool" "$out/path/"
done
[ -n "${NO_CERTUTIL:-}" ] && rm "$out/path/corosync-qdevice-net-certutil"
[ -z "${PVE:-}" ] && rm "$out/path/pvecm"
# shellcheck disable=SC2016 # the inner script expands its own arguments
exec unshare -rm "$out/path/bash" -c '
    script=$2 out=$3 here=$4
    mount -t tmpfs none /etc || exit 99
    mkdir -p /etc/corosync
    if [ -n "${PVE:-}" ]; then
        # /etc/pve shared by the members; pmxcfs copies corosync.conf to /etc/corosync.
        mkdir -p /etc/pve
        cp "$1" /etc/pve/corosync.conf
        ln -s /etc/pve/corosync.conf /etc/corosync/corosync.conf
        mount --bind "$here/ssh" /usr/bin/ssh || exit 98
    else
        cp "$1" /etc/corosync/corosync.conf
    fi
    if [ -n "${OLD_DB:-}" ]; then
        mkdir -p /etc/corosync/qdevice/net/nssdb
        echo old > /etc/corosync/qdevice/net/nssdb/cert9.db
    fi
    shift 4
    PATH=$out/path bash "$script" "$@" < /dev/null
    echo $? > "$out/rc"
    cp -a /etc/corosync "$out/corosync"
    if [ -d /etc/pve ]; then cp -a /etc/pve "$out/pve"; fi
' run "$conf_in" "$script" "$out" "$here" "$@"
