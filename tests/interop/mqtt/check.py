#!/usr/bin/env python3
"""check.py -- assertions of scenario m on what the broker holds (tests/interop/README.md).

    check.py RETAINED [--discovery CLUSTER:NODES] [--attr KEY=JSON]... [--live LOG --since T]
             [--within SECS] [--event NODE:TYPE]... [[+]ENTITY=STATE | ENTITY~REGEX]...

RETAINED: `mosquitto_sub -v --retained-only` output (`topic payload` lines) of
`homeassistant/#` and `qnetd/#`. ENTITY is a unique id without the `qnetd_` prefix
(`server_connected_clients`, `qitest_node2_vote`); its state topic is read from its discovery
config, not assumed. --discovery: the configs are exactly those of the server device, the
cluster device and nodes 1..NODES, each a JSON object with HA's required keys, on the right
device, available through `qnetd/status` (retained `online`). --attr: a key of the cluster's
JSON attributes (the `json_attributes_topic` of its configs). LOG: a live subscription
(`mosquitto_sub -V mqttv5 --retain-as-published -F '%U|%r|%t|%p'`); --since T (Unix time):
only messages from then on count. --event: a vote_event of that node with that event_type
arrived. With LOG, every ENTITY=STATE also prints how long after T the broker got it; a
leading + (+ENTITY=STATE) means it must have arrived after T, and with --within at most SECS
after T.
Prints one line per check; exits 1 if any fails.
"""

import json
import re
import sys

PREFIX = "qnetd"
DISCOVERY = "homeassistant"
SERVER_ENTITIES = {
    "connected_clients": "sensor",
    "connected_clusters": "sensor",
    "tls": "sensor",
    "version": "sensor",
}
CLUSTER_ENTITIES = {"has_vote": "binary_sensor", "votes": "sensor", "vote_event": "event"}
NODE_ENTITIES = {
    "connected": "binary_sensor",
    "vote": "sensor",
    "heartbeat_interval": "sensor",
    "tls_verified": "binary_sensor",
}

failed = False


def report(ok, what):
    global failed
    print(("ok: " if ok else "FAIL: ") + what)
    failed |= not ok


def read_retained(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                topic, _, payload = line.partition(" ")
                out[topic] = payload
    return out


def read_live(path, since):
    msgs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("|", 3)
            if len(parts) == 4 and float(parts[0]) >= since:
                msgs.append((float(parts[0]), parts[2], parts[3]))
    return msgs


def configs_of(retained):
    """unique id without the prefix -> (component, config JSON) of every config topic."""
    out = {}
    for topic, payload in retained.items():
        levels = topic.split("/")
        if len(levels) != 5 or levels[0] != DISCOVERY or levels[4] != "config":
            continue
        try:
            config = json.loads(payload)
        except ValueError:
            report(False, f"{topic}: not JSON: {payload[:80]}")
            continue
        uid = config.get("unique_id", "")
        if levels[2] != PREFIX or levels[3] != uid or not uid.startswith(PREFIX + "_"):
            report(False, f"{topic}: want node id {PREFIX} and object id = unique_id ({uid})")
        out[uid[len(PREFIX) + 1:]] = (levels[1], config)
    return out


def check_discovery(configs, retained, cluster, nodes):
    want = {f"server_{w}": c for w, c in SERVER_ENTITIES.items()}
    want.update({f"{cluster}_{w}": c for w, c in CLUSTER_ENTITIES.items()})
    for n in range(1, nodes + 1):
        want.update({f"{cluster}_node{n}_{w}": c for w, c in NODE_ENTITIES.items()})
    report(
        set(configs) == set(want),
        f"{len(configs)} discovery configs: server 4 + cluster 3 + {nodes} nodes x 4 = {len(want)}"
        + ("" if set(configs) == set(want)
           else f" (missing {sorted(set(want) - set(configs))}, unexpected {sorted(set(configs) - set(want))})"),
    )
    server_id = f"{PREFIX}_server"
    for key, (component, config) in sorted(configs.items()):
        bad = []
        if component != want.get(key):
            bad.append(f"component {component}")
        if config.get("default_entity_id") != f"{component}.{PREFIX}_{key}":
            bad.append("default_entity_id")
        if config.get("availability_topic") != f"{PREFIX}/status":
            bad.append("availability_topic")
        if not config.get("name"):
            bad.append("no name")
        if component != "event" and not config.get("state_topic", "").startswith(PREFIX + "/"):
            bad.append("state_topic")
        device = config.get("device", {})
        if key.startswith("server_"):
            if device.get("identifiers") != [server_id] or device.get("name") != "qnetd":
                bad.append(f"device {device}")
        elif device.get("identifiers") != [f"{PREFIX}_cluster_{cluster}"] or device.get(
            "via_device"
        ) != server_id or device.get("name") != f"Cluster {cluster}":
            bad.append(f"device {device}")
        if component == "event" and "nack" not in config.get("event_types", []):
            bad.append("event_types")
        report(not bad, f"config {key} ({component}, {config.get('name')!r})" + (f": {bad}" if bad else ""))
    report(retained.get(f"{PREFIX}/status") == "online", f"{PREFIX}/status = {retained.get(f'{PREFIX}/status')!r}")


def main(argv):
    args = list(argv)
    retained = read_retained(args.pop(0))
    configs = configs_of(retained)
    live, since, within, expect = None, 0.0, None, []
    while args:
        a = args.pop(0)
        if a == "--discovery":
            cluster, nodes = args.pop(0).split(":")
            check_discovery(configs, retained, cluster, int(nodes))
        elif a == "--live":
            live = args.pop(0)
        elif a == "--since":
            since = float(args.pop(0))
        elif a == "--within":
            within = float(args.pop(0))
        elif a == "--attr":
            expect.append(("attr", args.pop(0)))
        elif a == "--event":
            expect.append(("event", args.pop(0)))
        else:
            expect.append(("state", a))
    msgs = read_live(live, since) if live else []
    for kind, e in expect:
        if kind == "attr":
            key, _, value = e.partition("=")
            topics = {c.get("json_attributes_topic") for _, c in configs.values()} - {None}
            attrs = [json.loads(retained[t]) for t in topics if t in retained]
            got = [a.get(key) for a in attrs]
            report(len(attrs) == 1 and got == [json.loads(value)], f"cluster attribute {key} = {got}")
        elif kind == "event":
            node, _, etype = e.partition(":")
            events = [json.loads(p) for _, t, p in msgs if t.endswith("/vote_event")]
            hit = [x for x in events if x.get("node_id") == int(node) and x.get("event_type") == etype]
            report(bool(hit), f"vote_event node {node} -> {etype}: {hit[:1] or events}")
        else:
            m = re.fullmatch(r"(\+?)([a-z0-9_]+)([=~])(.*)", e)
            if not m:
                report(False, f"bad expectation {e}")
                continue
            changed, key, op, value = m.groups()
            topic = configs.get(key, (None, {}))[1].get("state_topic")
            got = retained.get(topic) if topic else None
            ok = got is not None and (got == value if op == "=" else re.fullmatch(value, got) is not None)
            when = ""
            if ok and live:
                first = [ts for ts, t, p in msgs if t == topic and p == got]
                steps = " -> ".join(p for _, t, p in msgs if t == topic)
                when = f" (arrived {first[0] - since:.1f} s after the mark; since then: {steps})" if first else " (no message since the mark)"
                if changed:
                    ok = bool(first) and (within is None or first[0] - since <= within)
                    when += f", must be new{'' if within is None else f' within {within:g} s'}"
            report(ok, f"{key}: {topic} = {got!r}, want {op}{value!r}{when}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
