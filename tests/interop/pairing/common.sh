# shellcheck shell=bash
# common.sh -- what the two reference pairing commands (pvecm-sim.sh, corosync-pair-sim.sh)
# share: PVE::Tools::run_command's error handling and the `[--force] QNETD_IP` command line.
# Sourced; sets `force` and `addr`.

die() { printf '%s\n' "$*" >&2; exit 255; }

# run CMD...: dies with "command '...' failed: exit code N", as run_command does
run() {
    local rc
    "$@"; rc=$?
    [ $rc = 0 ] || die "command '$*' failed: exit code $rc"
}
run_noerr() { "$@"; return 0; }

# pair_args NAME ARGS...: parse `[--force] QNETD_IP` (an IP address, no host names), as root
# shellcheck disable=SC2034 # force and addr are read by the sourcing script
pair_args() {
    local name=$1 a; shift
    force=0 addr=""
    for a in "$@"; do
        case "$a" in
            --force) force=1;;
            -*) die "usage: $name [--force] QNETD_IP";;
            *) [ -z "$addr" ] || die "usage: $name [--force] QNETD_IP"; addr=$a;;
        esac
    done
    [ -n "$addr" ] || die "usage: $name [--force] QNETD_IP"
    # pvecm's message for `address` (format => 'ip')
    [[ $addr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $addr =~ ^[0-9A-Fa-f:]+$ ]] \
        || die "400 Parameter verification failed. address: invalid format - value does not look like a valid IP address"
    [ "$(id -u)" = 0 ] || die "$name: must run as root"
}
