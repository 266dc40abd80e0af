#!/usr/bin/env bash
# Builds the Debian package (Debian 12/13, Raspberry Pi OS) from a static
# binary with plain dpkg-deb: no debhelper, no cargo-deb.
#
#   scripts/build-deb.sh DEB_ARCH BINARY [OUTDIR]
#     DEB_ARCH  amd64, arm64 or armhf
#     BINARY    dist/qnetd-x86_64, dist/qnetd-aarch64 or dist/qnetd-armv7
#     OUTDIR    default dist/  ->  OUTDIR/qnetd_VERSION-1_DEB_ARCH.deb
#
# Files: packaging/debian/ (unit, maintainer scripts, man page, overrides).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
ARCH=$1 BIN=$2 OUT=${3:-dist}
case "$ARCH" in amd64 | arm64 | armhf) ;; *) echo "unknown arch $ARCH" >&2; exit 2 ;; esac
[ -f "$BIN" ] || { echo "$BIN: no such binary (make static|aarch64|armv7)" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
DEBVER="$VERSION-1"
MAINTAINER=$(scripts/release-env.sh get QNETD_MAINTAINER)
URL=$(scripts/release-env.sh get QNETD_URL)
REFERENCE=$(scripts/release-env.sh get QNETD_REFERENCE_VERSION)
SRC=packaging/debian
# Reproducible: every timestamp is the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2> /dev/null || date +%s)}
export SOURCE_DATE_EPOCH

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
umask 022

install -D -m 0755 "$BIN" "$ROOT/usr/bin/qnetd"
for name in corosync-qnetd corosync-qnetd-tool corosync-qnetd-certutil; do
    ln -s qnetd "$ROOT/usr/bin/$name"
done
install -D -m 0644 "$SRC/corosync-qnetd.service" "$ROOT/usr/lib/systemd/system/corosync-qnetd.service"
install -D -m 0644 "$SRC/corosync-qnetd.default" "$ROOT/etc/default/corosync-qnetd"
install -D -m 0644 "$SRC/lintian-overrides" "$ROOT/usr/share/lintian/overrides/qnetd"
install -d "$ROOT/usr/share/man/man8"
gzip -9n < "$SRC/qnetd.8" > "$ROOT/usr/share/man/man8/qnetd.8.gz"
for name in corosync-qnetd corosync-qnetd-tool corosync-qnetd-certutil; do
    ln -s qnetd.8.gz "$ROOT/usr/share/man/man8/$name.8.gz"
done
DOC="$ROOT/usr/share/doc/qnetd"
install -D -m 0644 "$SRC/README.Debian" "$DOC/README.Debian"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: qnetd"
    echo "Source: $URL"
    echo
    echo "Files: *"
    echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE)"
    echo "License: MIT"
    sed -n '/^Permission/,$p' LICENSE | sed 's/^$/./; s/^/ /'
} > "$DOC/copyright"
chmod 0644 "$DOC/copyright"
{
    echo "qnetd ($DEBVER) unstable; urgency=medium"
    echo
    echo "  * Release $VERSION (protocol of corosync-qnetd $REFERENCE); see"
    echo "    $URL/blob/main/CHANGELOG.md"
    echo
    echo " -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$DOC/changelog.Debian.gz"

install -d "$ROOT/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "$SRC/$s" "$ROOT/DEBIAN/$s"
done
echo /etc/default/corosync-qnetd > "$ROOT/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" << CONTROL
Package: qnetd
Version: $DEBVER
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: adduser
Conflicts: corosync-qnetd
Replaces: corosync-qnetd
Provides: corosync-qnetd (= $REFERENCE)
Section: admin
Priority: optional
Homepage: $URL
Description: Corosync QNetd server (tie-breaker vote) in Rust
 The external vote of a two-node Corosync or Proxmox VE cluster: the
 stock corosync-qdevice on each node connects to it over TCP 5403. It
 speaks the protocol of corosync-qnetd $REFERENCE byte for byte, as one
 small static binary with a hardened systemd unit, and answers to the
 corosync-qnetd, corosync-qnetd-tool and corosync-qnetd-certutil names
 used by pcs and crmsh.
CONTROL
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
DEB="$OUT/qnetd_${DEBVER}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" > /dev/null
echo "$DEB: $(stat -c %s "$DEB") bytes"
