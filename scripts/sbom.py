#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM (JSON) of the shipped qnetd binary, from `cargo metadata`.

Components are the crates the binary links for TARGET: the normal
dependencies reachable from the qnetd package (no dev- or build-only
crates), with version, license expression, purl and the SHA-256 checksum
that Cargo.lock records for crates.io sources. Deterministic: the timestamp
is SOURCE_DATE_EPOCH when set.

    scripts/sbom.py TARGET_TRIPLE > dist/qnetd-TARGET.cdx.json
"""

import datetime
import json
import os
import subprocess
import sys
import tomllib
import uuid


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else None
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked"]
    if target:
        cmd += ["--filter-platform", target]
    meta = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
    with open(os.path.join(meta["workspace_root"], "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = next(p for p in meta["packages"] if p["name"] == "qnetd")

    def normal_deps(node_id):
        for d in nodes[node_id]["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]):
                yield d["pkg"]

    seen, todo = set(), [root["id"]]
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(normal_deps(i))

    def ref(p):
        return f"pkg:cargo/{p['name']}@{p['version']}"

    def component(p, kind):
        c = {"type": kind, "bom-ref": ref(p), "name": p["name"], "version": p["version"], "purl": ref(p)}
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if p.get("description"):
            c["description"] = " ".join(p["description"].split())
        sha = checksums.get((p["name"], p["version"]))
        if sha:
            c["hashes"] = [{"alg": "SHA-256", "content": sha}]
        return c

    deps = sorted(seen - {root["id"]}, key=lambda i: (packages[i]["name"], packages[i]["version"]))
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    stamp = (
        datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        if epoch
        else datetime.datetime.now(datetime.timezone.utc)
    )
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ref(root)}/{target}")),
        "version": 1,
        "metadata": {
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py"}]},
            "component": component(root, "application"),
            "properties": [{"name": "cdx:rust:target", "value": target or "host"}],
        },
        "components": [component(packages[i], "library") for i in deps],
        "dependencies": [
            {"ref": ref(packages[i]), "dependsOn": sorted({ref(packages[d]) for d in normal_deps(i)})}
            for i in [root["id"]] + deps
        ],
    }
    json.dump(bom, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
