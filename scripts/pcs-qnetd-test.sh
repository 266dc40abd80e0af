#!/usr/bin/env bash
# pcs's qnetd-host commands against our binary (root; Debian's pcs):
#   pcs qdevice setup model net      (corosync-qnetd-certutil -i, then pcs's
#                                     "initialized" check on the store)
#   pcs qdevice status net --full    (corosync-qnetd-tool -s -v / -l -v)
#   pcs qdevice sign-net-cert-request --name CLUSTER  (pcsd's signing call
#                                     behind `pcs quorum device add`)
#   qdevice_destroy()                (pcs's own removal of the store; the
#                                     CLI would also stop the service)
# pcs calls /usr/bin/corosync-qnetd-{certutil,tool} and uses
# /etc/corosync/qnetd/nssdb, so this runs in a private mount namespace with
# our binary bound over those names and tmpfs over the store and
# /run/corosync-qnetd: the host's files are never touched. The reference's
# files must exist to be bound over (.ci/run installs corosync-qnetd).
#
#   scripts/pcs-qnetd-test.sh QNETD_BINARY
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=$(realpath "${1:?usage: $0 QNETD_BINARY}")
if [ -z "${PCS_TEST_INSIDE:-}" ]; then
    for n in corosync-qnetd corosync-qnetd-tool corosync-qnetd-certutil; do
        [ -e "/usr/bin/$n" ] || { echo "/usr/bin/$n missing (apt-get install corosync-qnetd)" >&2; exit 1; }
    done
    mkdir -p /etc/corosync/qnetd /run/corosync-qnetd
    exec unshare --mount --propagation private env PCS_TEST_INSIDE=1 "$0" "$BIN"
fi

fail() { echo "pcs-qnetd-test: $*" >&2; exit 1; }
mount -t tmpfs -o mode=0755 tmpfs /etc/corosync/qnetd
mount -t tmpfs -o mode=0755 tmpfs /run/corosync-qnetd
for n in corosync-qnetd corosync-qnetd-tool corosync-qnetd-certutil; do
    mount --bind "$BIN" "/usr/bin/$n"
done
TMP=$(mktemp -d)
DAEMON=
cleanup() { [ -z "$DAEMON" ] || kill "$DAEMON" 2> /dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

echo "+ pcs qdevice setup model net"
pcs qdevice setup model net 2>&1 | tee "$TMP/setup"
grep -q "Quorum device 'net' initialized" "$TMP/setup" || fail "setup"
[ -f /etc/corosync/qnetd/nssdb/pkcs11.txt ] || fail "no pkcs11.txt"
echo "+ pcs qdevice setup model net (again: pcs must see the store)"
if pcs qdevice setup model net > "$TMP/again" 2>&1; then fail "second setup succeeded"; fi
grep -qi "already initialized" "$TMP/again" || fail "second setup: $(cat "$TMP/again")"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/corosync-qnetd -f -l 127.0.0.1 -p "$PORT" 2> "$TMP/daemon.log" &
DAEMON=$!
for _ in $(seq 200); do
    /usr/bin/corosync-qnetd-tool -s > /dev/null 2>&1 && break
    sleep 0.1
done
echo "+ pcs qdevice status net --full"
pcs qdevice status net --full | tee "$TMP/status"
grep -q "QNetd address:.*:$PORT" "$TMP/status" || fail "status"

echo "+ pcs qdevice sign-net-cert-request --name testcluster"
base64 -w0 src/testdata/reference/qdevice-net-node.crq |
    pcs qdevice sign-net-cert-request --name testcluster > "$TMP/signed.b64"
base64 -d "$TMP/signed.b64" > "$TMP/signed.der"
openssl x509 -inform DER -in "$TMP/signed.der" -out "$TMP/signed.pem"
openssl verify -CAfile /etc/corosync/qnetd/nssdb/qnetd-cacert.crt "$TMP/signed.pem" || fail "signed certificate does not verify"

kill -TERM "$DAEMON"
wait "$DAEMON"
DAEMON=
echo "+ pcs qdevice status net (daemon stopped)"
if pcs qdevice status net > "$TMP/stopped" 2>&1; then fail "status with no daemon succeeded"; fi
grep -qi "not running" "$TMP/stopped" || fail "stopped status: $(cat "$TMP/stopped")"

echo "+ pcs's qdevice_destroy()"
/usr/bin/python3 -c 'from pcs.lib.corosync import qdevice_net as q; assert q.qdevice_initialized(); q.qdevice_destroy(); assert not q.qdevice_initialized()'
[ ! -e /etc/corosync/qnetd/nssdb ] || fail "store left after destroy"
echo "pcs-qnetd-test: ok"
