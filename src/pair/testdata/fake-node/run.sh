#!/bin/bash
# run.sh SCRIPT CONF_IN CONF_NEW OUT_DIR [ARGS...]: runs SCRIPT on a fake node (see README.md);
# afterwards OUT_DIR holds state/log, corosync/ (the fake /etc/corosync) and rc.
set -u
script=$1 conf_in=$2 conf_new=$3 out=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
export FAKE="$out/state"
mkdir -p "$FAKE" "$out/path"
cp "$conf_new" "$FAKE/conf.new"
[ -n "${DEVICE_HOST:-}" ] && printf '%s\n' "$DEVICE_HOST" > "$FAKE/device"
for tool in bash sed grep tr cmp cp mv rm mkdir mktemp cat head diff dirname id sleep chmod env touch; do
    ln -s "$(command -v "$tool")" "$out/path/$tool"
done
for tool in "$here"/bin/*; do
    ln -s "$tool" "$out/path/"
done
[ -n "${NO_CERTUTIL:-}" ] && rm "$out/path/corosync-qdevice-net-certutil"
# shellcheck disable=SC2016 # the inner script expands its own arguments
exec unshare -rm "$out/path/bash" -c '
    mount -t tmpfs none /etc || exit 99
    mkdir -p /etc/corosync
    cp "$1" /etc/corosync/corosync.conf
    if [ -n "${OLD_DB:-}" ]; then
        mkdir -p /etc/corosync/qdevice/net/nssdb
        echo old > /etc/corosync/qdevice/net/nssdb/cert9.db
    fi
    script=$2 out=$3
    shift 3
    PATH=$out/path bash "$script" "$@" < /dev/null
    echo $? > "$out/rc"
    cp -a /etc/corosync "$out/corosync"
' run "$conf_in" "$script" "$out" "$@"
