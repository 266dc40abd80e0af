#!/usr/bin/env bash
# Tests the Debian package (root): installs dist/qnetd_*_amd64.deb into a
# minimal Debian root made by debootstrap (cached in target/deb-test/, so a
# rerun only copies it), runs the daemon and the tools there, then lintian
# on every .deb in dist/, `systemd-analyze verify` and
# `systemd-analyze security` on the unit, and pcs's own qnetd-host
# commands against our binaries (scripts/pcs-qnetd-test.sh).
#
#   scripts/deb-test.sh [SUITE]     SUITE: bookworm (default) or trixie
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUITE=${1:-bookworm}
MIRROR=${DEB_MIRROR:-http://deb.debian.org/debian}
# Highest accepted `systemd-analyze security` exposure (0 safest, 10 worst).
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
CACHE=$PWD/target/deb-test
ROOT=$CACHE/root-$SUITE
WORK=$CACHE/work-$SUITE
step() { printf '\n--- %s\n' "$*"; }
fail() { echo "deb-test: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot)"
DEB=$(find dist -maxdepth 1 -name 'qnetd_*_amd64.deb' | sort | tail -n 1)
[ -n "$DEB" ] || fail "no dist/qnetd_*_amd64.deb (make deb)"

mkdir -p "$CACHE"
if [ ! -d "$ROOT" ]; then
    step "debootstrap $SUITE (cached in $ROOT)"
    rm -rf "$ROOT.tmp"
    debootstrap --variant=minbase --include=adduser "$SUITE" "$ROOT.tmp" "$MIRROR" > "$CACHE/debootstrap-$SUITE.log"
    mv "$ROOT.tmp" "$ROOT"
fi
rm -rf "$WORK"
cp -a "$ROOT" "$WORK"
in_root() { chroot "$WORK" "$@"; }

step "dpkg -i $DEB"
cp "$DEB" "$WORK/tmp/qnetd.deb"
in_root dpkg -i /tmp/qnetd.deb
for f in Conflicts Replaces Provides; do
    dpkg-deb -f "$DEB" "$f" | grep -q '^corosync-qnetd' || fail "$f: corosync-qnetd"
done

step "binaries and names"
# -v exits 1, as the reference's does.
v=$(in_root corosync-qnetd -v || true)
echo "$v" | head -n 1
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
echo "$v" | grep -q "qnetd version '$VERSION' (Corosync Qdevice Network Daemon protocol 3.0.3)" || fail "-v: $v"
for n in corosync-qnetd-tool corosync-qnetd-certutil; do
    [ "$(readlink "$WORK/usr/bin/$n")" = qnetd ] || fail "/usr/bin/$n is not a link to qnetd"
done
in_root getent passwd coroqnetd > /dev/null || fail "no coroqnetd user"
# The root's user ids (stat on the host would name the host's users).
QUID=$(in_root id -u coroqnetd)
QGID=$(in_root id -g coroqnetd)
[ "$(stat -c '%u:%g %a' "$WORK/etc/corosync/qnetd")" = "$QUID:$QGID 770" ] || fail "/etc/corosync/qnetd owner/mode"

step "daemon as coroqnetd: store made on first start, tool, certutil"
# RuntimeDirectory= does this under systemd.
install -d -o "$QUID" -g "$QGID" -m 0770 "$WORK/run/corosync-qnetd"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot --userspec=coroqnetd:coroqnetd "$WORK" /usr/bin/corosync-qnetd -f -l 127.0.0.1 -p "$PORT" 2> "$CACHE/daemon.log" &
DAEMON=$!
trap 'kill "$DAEMON" 2> /dev/null || true' EXIT
for _ in $(seq 200); do
    in_root corosync-qnetd-tool -s > /dev/null 2>&1 && break
    kill -0 "$DAEMON" 2> /dev/null || { cat "$CACHE/daemon.log"; fail "daemon exited"; }
    sleep 0.1
done
in_root corosync-qnetd-tool -s
grep -q "qnetd $VERSION starting (protocol of corosync-qnetd 3.0.3)" "$CACHE/daemon.log" || fail "start-up log: $(cat "$CACHE/daemon.log")"
for f in qnetd-cacert.crt pkcs11.txt qnetd-ca.key; do
    [ "$(stat -c %u "$WORK/etc/corosync/qnetd/nssdb/$f")" = "$QUID" ] || fail "nssdb/$f missing or not coroqnetd's"
done
# crmsh's name-collision check: exit 0 and no output for an unknown cluster.
out=$(in_root corosync-qnetd-tool -l -c no-such-cluster)
[ -z "$out" ] || fail "tool -l -c: $out"
# Root signs a node's request (as pcs and crmsh do over SSH).
cp src/testdata/reference/qdevice-net-node.crq "$WORK/tmp/"
in_root corosync-qnetd-certutil -s -c /tmp/qdevice-net-node.crq -n testcluster | tee "$CACHE/sign.out"
grep -q '^Certificate stored in /etc/corosync/qnetd/nssdb/cluster-testcluster.crt$' "$CACHE/sign.out" || fail "certutil -s"
[ "$(stat -c %u "$WORK/etc/corosync/qnetd/nssdb/cluster-testcluster.crt")" = "$QUID" ] || fail "cluster cert owner"
kill -TERM "$DAEMON"
wait "$DAEMON" || fail "daemon exit status $?"
trap - EXIT

step "remove and purge (the store stays)"
in_root dpkg -r qnetd
[ ! -e "$WORK/usr/bin/corosync-qnetd" ] || fail "binary left after remove"
in_root dpkg -P qnetd
[ -f "$WORK/etc/corosync/qnetd/nssdb/qnetd-cacert.crt" ] || fail "purge removed the store"

step "lintian"
lintian --fail-on error,warning --display-info dist/qnetd_*.deb

step "systemd-analyze verify"
# The package's files plus the host's units (the targets the unit names).
rm -rf "$CACHE/extract"
dpkg-deb -x "$DEB" "$CACHE/extract"
UNIT=usr/lib/systemd/system/corosync-qnetd.service
cp -rn /lib/systemd/system/. "$CACHE/extract/usr/lib/systemd/system/"
systemd-analyze verify --root="$CACHE/extract" "$CACHE/extract/$UNIT"
echo "verify: ok"

step "systemd-analyze security"
systemd-analyze security --offline=yes --root="$CACHE/extract" "$CACHE/extract/$UNIT" > "$CACHE/security.txt"
grep '✗' "$CACHE/security.txt" | cut -c1-62 || true
tail -n 1 "$CACHE/security.txt"
score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p' "$CACHE/security.txt")
python3 -c "import sys; sys.exit(0 if float('$score') <= float('$MAX_EXPOSURE') else 1)" ||
    fail "exposure $score > $MAX_EXPOSURE"

if command -v pcs > /dev/null; then
    step "pcs qdevice commands against our binaries"
    scripts/pcs-qnetd-test.sh "$CACHE/extract/usr/bin/qnetd"
else
    echo "pcs not installed: skipping the pcs test"
fi
echo "deb-test: ok"
