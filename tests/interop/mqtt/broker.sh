#!/usr/bin/env bash
# broker.sh DIR PORT USER PASSWORD -- start Debian's mosquitto for scenario m, then return.
#
# Runs on the qnetd host (inside the server command, before our server starts): writes
# DIR/mosquitto.conf and the password file DIR/passwd (USER:PASSWORD, no anonymous access,
# no persistence), starts `mosquitto` listening on 127.0.0.1:PORT of that network namespace
# only, logging to DIR/../mosquitto.log, its pid in DIR/mosquitto.pid, and waits (10 s) until it
# listens. Started by the server command, mosquitto stays in the server's process group, so it
# is stopped together with the server (cluster.sh kill-qnetd / down); started again later
# (through cluster.sh qnetd-cmd), `down` kills it with whatever is left in the namespace.
# `user root`: the state directory may be closed to the `mosquitto` user that the broker
# would otherwise switch to. No persistence: a restarted broker holds no retained message.
set -eu -o pipefail
[ $# = 4 ] || { echo "usage: broker.sh DIR PORT USER PASSWORD" >&2; exit 2; }
dir=$1 port=$2 user=$3 pass=$4
mkdir -p "$dir"
mosquitto_passwd -b -c "$dir/passwd" "$user" "$pass"
cat > "$dir/mosquitto.conf" <<CONF
user root
allow_anonymous false
password_file $dir/passwd
persistence false
log_dest stderr
listener $port 127.0.0.1
CONF
mosquitto -c "$dir/mosquitto.conf" >> "$dir/../mosquitto.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$dir/mosquitto.pid"
for _ in $(seq 1 100); do
    if ss -Hltn "sport = :$port" | grep -q .; then exit 0; fi
    kill -0 "$pid" 2> /dev/null || { echo "mosquitto exited; see $dir/../mosquitto.log" >&2; exit 1; }
    sleep 0.1
done
echo "mosquitto not listening on 127.0.0.1:$port after 10 s" >&2
exit 1
