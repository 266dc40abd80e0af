#!/usr/bin/env bash
# `make image-test`: the add-on image run the way the Supervisor runs it,
# then the interop scenarios with the container as the QNetd server.
#
#   IMAGE=qnetd-addon:0.1.0 CONTAINER='podman --runtime runc' \
#   INTEROP=tests/interop SCENARIOS='a b c d e f h i' tests/image-test.sh
#
# Checks, each printed as PASS/FAIL, then "N passed, M failed":
#   1. a bad option stops the container with one line naming it, exit != 0
#   2. the server starts from /data/options.json, PID 1, log on stdout
#   3. the HEALTHCHECK command reports healthy
#   4. SIGTERM: exit code 0 within 1 s
#   5. /data after a restart: certificate store kept (with TLS), nothing else
#   6. the interop scenarios against the container (root, network namespaces);
#      with TLS, scenario g too, its certutil run in a container of the image
# and first, where apparmor_parser exists, that addon/apparmor.txt compiles.
set -uo pipefail

: "${IMAGE:?set IMAGE}"
INTEROP=${INTEROP:-$(cd "$(dirname "$0")" && pwd)/interop}
CONTAINER=${CONTAINER:-podman --runtime runc}
SCENARIOS=${SCENARIOS-a b c d e f h i}   # empty or "none": skip step 6
RESULTS=${RESULTS:-/tmp/qnetd-image-test-results}
# podman needs explicit limits here (the defaults exceed this sandbox's).
LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
# CONTAINER is a command line (e.g. "podman --runtime runc"): split it into words on purpose.
read -ra CTR <<< "$CONTAINER"
# TLS mode of the first run: on, unless this build refuses TLS.
TLS=${TLS:-auto}

work=$(mktemp -d /tmp/qnetd-image-test.XXXXXX)
name=qnetd-image-test-$$
passed=0
failed=0

cleanup() {
    "${CTR[@]}" rm -f "$name" > /dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

options() { # options TLS [LOG_LEVEL] -> $work/data/options.json
    mkdir -p "$work/data"
    printf '{"log_level":"%s","tls":"%s","client_cert_required":true,"max_clients":0,"keep_active_partition_tie_breaker":false,"heartbeat_interval_min":1000,"heartbeat_interval_max":120000}\n' \
        "${2:-info}" "$1" > "$work/data/options.json"
}

start() { # start: detached, bridge network (no port clash with the host)
    "${CTR[@]}" rm -f "$name" > /dev/null 2>&1
    "${CTR[@]}" run -d --name "$name" "${LIMITS[@]}" -v "$work/data:/data" "$IMAGE" > /dev/null
}

wait_log() { # wait_log PATTERN: up to 10 s
    for _ in $(seq 100); do
        "${CTR[@]}" logs "$name" 2>&1 | grep -q -- "$1" && return 0
        sleep 0.1
    done
    return 1
}

running() { [ "$("${CTR[@]}" inspect --format '{{.State.Running}}' "$name" 2> /dev/null)" = true ]; }

echo "== image $IMAGE"
"${CTR[@]}" image inspect --format 'size={{.Size}} bytes  arch={{.Architecture}}  entrypoint={{.Config.Entrypoint}}' "$IMAGE"
# shellcheck disable=SC2016 # a Go template
"${CTR[@]}" image inspect --format '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}' "$IMAGE" | grep -E '^io\.hass\.'

echo "== 0. AppArmor profile"
if command -v apparmor_parser > /dev/null; then
    # -Q -K: compile only, load nothing into the kernel.
    if apparmor_parser -Q -K "$(dirname "$0")/../addon/apparmor.txt"; then
        pass "apparmor_parser compiles addon/apparmor.txt"
    else
        fail "apparmor_parser rejects addon/apparmor.txt"
    fi
else
    echo "SKIP: apparmor_parser not installed (Debian package apparmor)"
fi

echo "== 1. a bad option"
options maybe
# The container's own output comes from `logs`: podman's run may add its
# own complaints (no systemd for healthcheck timers) on stderr.
"${CTR[@]}" run --name "$name-bad" "${LIMITS[@]}" -v "$work/data:/data" "$IMAGE" > /dev/null 2>&1
code=$("${CTR[@]}" inspect --format '{{.State.ExitCode}}' "$name-bad")
"${CTR[@]}" logs "$name-bad" > "$work/bad.out" 2>&1
"${CTR[@]}" rm -f "$name-bad" > /dev/null 2>&1
cat "$work/bad.out"
if [ "$code" != 0 ] && [ "$(wc -l < "$work/bad.out")" = 1 ] \
    && grep -q 'options.json: tls: expected one of off, on, required, got "maybe"' "$work/bad.out"; then
    pass "bad option: exit $code, one line naming the option"
else
    fail "bad option: exit $code"
fi

echo "== 2. start from /data/options.json"
if [ "$TLS" = auto ]; then
    options on
    start
    sleep 1.5
    if running; then TLS=on; else TLS=off; "${CTR[@]}" logs "$name" 2>&1 | tail -1; fi
    "${CTR[@]}" rm -f "$name" > /dev/null 2>&1
fi
echo "TLS for the container checks: $TLS"
options "$TLS"
start
if wait_log "QNetd ready to provide service"; then
    pid=$("${CTR[@]}" inspect --format '{{.State.Pid}}' "$name")
    nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status")
    "${CTR[@]}" logs "$name" 2>&1 | head -3
    if [ "$nspid" = 1 ]; then pass "started; qnetd is PID 1 in the container"; else fail "PID in container: $nspid"; fi
else
    "${CTR[@]}" logs "$name" 2>&1 | tail -5
    fail "server did not start"
fi

echo "== 3. healthcheck"
hc=$("${CTR[@]}" exec "$name" /qnetd healthcheck 2>&1)
code=$?
echo "$hc"
if [ "$code" = 0 ]; then pass "qnetd healthcheck in the container: exit 0"; else fail "healthcheck exit $code"; fi
if [[ $CONTAINER == podman* ]]; then
    if "${CTR[@]}" healthcheck run "$name"; then pass "podman healthcheck run (the image's HEALTHCHECK): healthy"; else fail "podman healthcheck run"; fi
fi

echo "== 4. SIGTERM"
t0=$(date +%s%N)
"${CTR[@]}" kill --signal TERM "$name" > /dev/null
code=$("${CTR[@]}" wait "$name")
ms=$((($(date +%s%N) - t0) / 1000000))
"${CTR[@]}" logs "$name" 2>&1 | tail -1
if [ "$code" = 0 ] && [ "$ms" -lt 1000 ]; then
    pass "SIGTERM: exit 0 after ${ms} ms"
else
    fail "SIGTERM: exit $code after ${ms} ms"
fi

echo "== 5. /data across a restart"
before=$(cd "$work/data" && find . -type f | sort | xargs -r sha256sum)
start
wait_log "QNetd ready to provide service" > /dev/null
"${CTR[@]}" kill --signal TERM "$name" > /dev/null
"${CTR[@]}" wait "$name" > /dev/null
after=$(cd "$work/data" && find . -type f | sort | xargs -r sha256sum)
(cd "$work/data" && find . | sort | xargs ls -ld)
if [ "$TLS" = on ]; then
    if [ -f "$work/data/tls/qnetd-cacert.crt" ] && [ "$before" = "$after" ]; then
        pass "/data/tls holds the store and the restart kept it unchanged"
    else
        fail "/data/tls after restart"
    fi
else
    if [ "$before" = "$after" ]; then
        pass "/data unchanged by a restart (TLS off: no store, as expected)"
    else
        fail "/data changed across a restart"
    fi
fi
"${CTR[@]}" rm -f "$name" > /dev/null 2>&1

echo "== 6. interop scenarios ($SCENARIOS) with the container as QNetd"
if [ -z "$SCENARIOS" ] || [ "$SCENARIOS" = none ]; then
    echo "SKIP: no scenarios asked for"
elif [ "$(id -u)" != 0 ]; then
    fail "interop needs root"
else
    # The harness passes -l/-p only through QNETD_ADDR/PORT; they go after
    # --options as flags, and QNETD_TLS (off|on|req) into the options file.
    # shellcheck disable=SC2016 # expanded by the harness inside the qnetd namespace
    cmd='mkdir -p "$QNETD_STATE_DIR/data" && case "$QNETD_TLS" in req) t=required;; *) t=$QNETD_TLS;; esac'
    # shellcheck disable=SC2016
    cmd+=' && printf "{\"log_level\":\"debug\",\"tls\":\"%s\"}\n" "$t" > "$QNETD_STATE_DIR/data/options.json"'
    cmd+=" && exec $CONTAINER run --rm --network host ${LIMITS[*]}"
    # shellcheck disable=SC2016
    cmd+=' -v "$QNETD_STATE_DIR/data:/data" '"$IMAGE"' -l "$QNETD_ADDR" -p "$QNETD_PORT"'
    echo "qnetd command: $cmd"
    export QI_STATE=${QI_STATE:-/tmp/qnetd-interop-scenarios}
    list=$SCENARIOS
    if [ "$TLS" = on ]; then
        # Scenario g: the certificate flow with `qnetd certutil` run in a
        # throw-away container of the same image on the add-on's /data, as
        # DOCS.md tells users to do with docker exec. The harness's transfer
        # directory is mounted at the same path so -c REQUEST resolves.
        cat > "$work/certutil" <<CERTUTIL
#!/usr/bin/env bash
mkdir -p "$QI_STATE/qnetd/data"
exec $CONTAINER run --rm --network none ${LIMITS[*]} -v "$QI_STATE:$QI_STATE" \\
    -v "$QI_STATE/qnetd/data:/data" --entrypoint /qnetd "$IMAGE" certutil -d /data/tls "\$@"
CERTUTIL
        chmod +x "$work/certutil"
        export QI_QNETD_CERTUTIL=$work/certutil QI_QNETD_CERTDIR=$QI_STATE/qnetd/data/tls
        case " $list " in *" g "*) ;; *) list="$list g";; esac
    fi
    # shellcheck disable=SC2086 # list is a list
    if QI_QNETD_NETNS_ONLY=1 QI_RESULTS="$RESULTS" "$INTEROP/scenarios.sh" "$cmd" $list; then
        pass "interop scenarios $list against the container"
    else
        fail "interop scenarios against the container (logs in $RESULTS)"
    fi
    # A container left behind by a hard kill.
    "${CTR[@]}" ps -a -q --filter "ancestor=$IMAGE" | xargs -r "${CTR[@]}" rm -f > /dev/null
fi

echo "image-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
