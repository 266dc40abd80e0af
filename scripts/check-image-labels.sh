#!/usr/bin/env bash
# Checks the labels of the release images IMAGE-amd64:VERSION and
# IMAGE-aarch64:VERSION (the ones Home Assistant requires, and ours).
#
#   scripts/check-image-labels.sh IMAGE VERSION REFERENCE_VERSION
set -euo pipefail
IMAGE=$1 VERSION=$2 REFERENCE=$3
CONTAINER=${CONTAINER:-podman}
for arch in amd64 aarch64; do
    ref="$IMAGE-$arch:$VERSION"
    labels=$($CONTAINER image inspect --format '{{json .Labels}}' "$ref")
    for want in \
        "\"io.hass.version\":\"$VERSION\"" \
        '"io.hass.type":"app"' \
        "\"io.hass.arch\":\"$arch\"" \
        "\"org.opencontainers.image.version\":\"$VERSION\"" \
        '"org.opencontainers.image.licenses":"MIT"' \
        "\"qnetd.reference-version\":\"corosync-qnetd $REFERENCE\""; do
        case "$labels" in *"$want"*) ;; *) echo "$ref: label $want missing in $labels" >&2; exit 1 ;; esac
    done
    platform=$($CONTAINER image inspect --format '{{.Os}}/{{.Architecture}}' "$ref")
    case "$arch/$platform" in amd64/linux/amd64 | aarch64/linux/arm64) ;; *) echo "$ref: platform $platform" >&2; exit 1 ;; esac
    echo "$ref: labels and platform ok"
done
