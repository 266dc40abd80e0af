#!/usr/bin/env bash
# Keeps the owner, image and URLs of release.env in the files that must
# spell them out (YAML, Dockerfile labels, Cargo.toml).
#
#   scripts/release-env.sh [check]   exit 1 and name each file that disagrees
#   scripts/release-env.sh apply     rewrite those files from release.env
#   scripts/release-env.sh get KEY   print one value (for scripts and CI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

get() {
    local v
    v=$(sed -n "s/^$1=//p" release.env)
    [ -n "$v" ] || { echo "release.env: $1 is not set" >&2; exit 1; }
    printf '%s\n' "$v"
}

URL=$(get QNETD_URL)
IMAGE=$(get QNETD_IMAGE)
MAINTAINER=$(get QNETD_MAINTAINER)
REFERENCE=$(get QNETD_REFERENCE_VERSION)

# file|sed expression: each rewrites one line to its expected form.
RULES=(
    "addon/config.yaml|s#^url: .*#url: ${URL}#"
    "addon/config.yaml|s#^image: .*#image: ${IMAGE}#"
    "repository.yaml|s#^url: .*#url: ${URL}#"
    "repository.yaml|s#^maintainer: .*#maintainer: ${MAINTAINER}#"
    "Cargo.toml|s#^repository = .*#repository = \"${URL}\"#"
    "addon/Dockerfile|s#^ARG QNETD_URL=.*#ARG QNETD_URL=${URL}#"
    "addon/Dockerfile|s#^ARG QNETD_REFERENCE_VERSION=.*#ARG QNETD_REFERENCE_VERSION=${REFERENCE}#"
    "addon/CHANGELOG.md|s#^\(\[[^]]*\]: \)https://github.com/[^/]*/[^/]*/#\1${URL}/#"
    "src/lib.rs|s#^pub const REFERENCE_VERSION: &str = .*#pub const REFERENCE_VERSION: \&str = \"${REFERENCE}\";#"
)

apply_rules() { # $1: file to write, $2: source file
    local f=$1 src=$2 r
    cp "$src" "$f.tmp"
    for r in "${RULES[@]}"; do
        [ "${r%%|*}" = "$src" ] && sed -i "${r#*|}" "$f.tmp"
    done
    mv "$f.tmp" "$f"
}

case "${1:-check}" in
get) get "$2" ;;
apply)
    for f in $(printf '%s\n' "${RULES[@]}" | cut -d'|' -f1 | sort -u); do
        apply_rules "$f" "$f"
    done
    ;;
check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    bad=0
    url_owner=$(echo "$URL" | cut -d/ -f4)
    image_owner=$(echo "$IMAGE" | cut -d/ -f2)
    if [ "$url_owner" != "$image_owner" ]; then
        echo "release.env: QNETD_URL owner '$url_owner' but QNETD_IMAGE owner '$image_owner'"
        bad=1
    fi
    for f in $(printf '%s\n' "${RULES[@]}" | cut -d'|' -f1 | sort -u); do
        apply_rules "$tmp/out" "$f"
        if ! cmp -s "$f" "$tmp/out"; then
            echo "$f disagrees with release.env (run scripts/release-env.sh apply):"
            diff -u "$f" "$tmp/out" | tail -n +3 || true
            bad=1
        fi
    done
    exit "$bad"
    ;;
*) echo "usage: $0 [check|apply|get KEY]" >&2; exit 2 ;;
esac
