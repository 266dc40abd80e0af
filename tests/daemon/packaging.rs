//! The Debian package's unit and maintainer scripts, read as files (the
//! package itself is built and installed by `make deb-test`): the unit is
//! `corosync-qnetd.service`, `Type=notify` (the daemon sends `READY=1`,
//! tests/systemd.rs), hardened, with the store and runtime paths writable.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `[Service]` settings of the unit, each key with all its values.
fn service() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read("packaging/debian/corosync-qnetd.service").lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[Service]" {
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

#[test]
fn unit_is_notify_and_hardened() {
    let s = service();
    let one = |k: &str| {
        let v = s.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(v.len(), 1, "{k} set once");
        v[0].clone()
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/corosync-qnetd -f $COROSYNC_QNETD_OPTIONS"
    );
    assert_eq!(one("User"), "coroqnetd");
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        // The reference's runtime directory and store path, writable.
        ("RuntimeDirectory", "corosync-qnetd"),
        ("ReadWritePaths", "-/etc/corosync/qnetd"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    assert!(s["SystemCallFilter"].contains(&"@system-service".to_string()));
    // The reference unit throws stderr away; ours keeps the journal.
    assert!(!s.contains_key("StandardError"));
}

#[test]
fn runtime_and_store_paths_match_the_daemon_defaults() {
    use qnetd::cert::store::DEFAULT_DIR as DEFAULT_NSS_DB_DIR;
    use qnetd::config::{DEFAULT_LOCAL_SOCKET_FILE, DEFAULT_LOCK_FILE};
    for path in [DEFAULT_LOCK_FILE, DEFAULT_LOCAL_SOCKET_FILE] {
        assert!(path.starts_with("/var/run/corosync-qnetd/"), "{path}");
    }
    assert!(DEFAULT_NSS_DB_DIR.starts_with("/etc/corosync/qnetd/"));
    let postinst = read("packaging/debian/postinst");
    assert!(postinst.contains("chown coroqnetd:coroqnetd /etc/corosync/qnetd"));
}

#[test]
fn maintainer_scripts_are_posix_sh_with_set_e() {
    for s in ["postinst", "prerm", "postrm"] {
        let text = read(&format!("packaging/debian/{s}"));
        assert!(text.starts_with("#!/bin/sh\n"), "{s}");
        assert!(text.contains("\nset -e\n"), "{s}");
        // Start/stop through invoke-rc.d's systemd counterpart, never a
        // bare `systemctl start` (policy-rc.d must be honoured).
        assert!(!text.contains("systemctl start") && !text.contains("systemctl stop"));
    }
}

/// `--build-arg` names in `text`, sorted.
fn build_args(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split("--build-arg")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().trim_start_matches('"');
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The add-on image is built the same way locally (`make image`, `make
/// release`) and by the release workflow: same Dockerfile, the release
/// artifacts in `dist/` as the context, the same build arguments, each of
/// which the Dockerfile declares.
#[test]
fn image_builds_agree_between_make_and_the_workflow() {
    let make = read("Makefile");
    let workflow = read(".github/workflows/release.yml");
    for text in [&make, &workflow] {
        assert!(text.contains("-f addon/Dockerfile dist"));
    }
    let args = build_args(&make);
    assert_eq!(args, build_args(&workflow));
    let dockerfile = read("addon/Dockerfile");
    for a in &args {
        assert!(
            dockerfile
                .lines()
                .any(|l| l == format!("ARG {a}") || l.starts_with(&format!("ARG {a}="))),
            "addon/Dockerfile declares ARG {a}"
        );
    }
    assert_eq!(
        args,
        [
            "BUILD_ARCH",
            "BUILD_REF",
            "BUILD_VERSION",
            "QNETD_REFERENCE_VERSION",
            "QNETD_URL"
        ]
    );
}
