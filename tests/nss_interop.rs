//! Interop with the real NSS tools on the node side. Ignored by default: these
//! tests need root (for `unshare --mount` and the bind mount over
//! `/etc/corosync`, as `shared/interop/cluster.sh` does), and the Debian
//! packages `corosync-qdevice` and `libnss3-tools`.
//!
//! Run with `cargo test --test nss_interop -- --ignored --test-threads=1`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

/// Runs `script` with bash in a private mount namespace where `etc` is
/// bind-mounted over `/etc/corosync`, so the node tool's fixed directory
/// `/etc/corosync/qdevice/net/nssdb` lands in `etc`.
fn node_shell(etc: &Path, script: &str) -> Output {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c"])
        .arg(r#"set -e; mount --bind "$QI_ETC" /etc/corosync; eval "$QI_SCRIPT""#)
        .env("QI_ETC", etc)
        .env("QI_SCRIPT", script)
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "node script failed: {script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn certutil(args: &[&Path]) -> ExitCode {
    let mut argv = vec![OsString::from("corosync-qnetd-certutil")];
    argv.extend(args.iter().map(|a| a.as_os_str().to_owned()));
    qnetd::certutil::run(argv)
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

struct Setup {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    node1: PathBuf,
}

/// The `pvecm qdevice setup` flow: our `-i`, the node's `-i -c` and `-r -n`,
/// our `-s`, the node's `-M -c`.
fn pvecm_flow(cluster: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("qnetd/nssdb");
    let node1 = tmp.path().join("node1");
    fs::create_dir_all(&node1).unwrap();

    assert_eq!(certutil(&[&p("-d"), &store, &p("-i")]), ExitCode::SUCCESS);
    // `pvecm` runs `-i` unconditionally and ignores its status; ours succeeds.
    assert_eq!(certutil(&[&p("-d"), &store, &p("-i")]), ExitCode::SUCCESS);

    let ca = store.join("qnetd-cacert.crt");
    let crq = tmp.path().join("qdevice-net-node.crq");
    node_shell(
        &node1,
        &format!(
            "corosync-qdevice-net-certutil -i -c '{}'
             corosync-qdevice-net-certutil -r -n '{cluster}'
             cp /etc/corosync/qdevice/net/nssdb/qdevice-net-node.crq '{}'",
            ca.display(),
            crq.display()
        ),
    );
    assert_eq!(
        certutil(&[
            &p("-d"),
            &store,
            &p("-s"),
            &p("-c"),
            &crq,
            &p("-n"),
            &p(cluster)
        ]),
        ExitCode::SUCCESS
    );
    let crt = store.join(format!("cluster-{cluster}.crt"));
    assert!(crt.exists());
    node_shell(
        &node1,
        &format!("corosync-qdevice-net-certutil -M -c '{}'", crt.display()),
    );
    Setup {
        _tmp: tmp,
        store,
        node1,
    }
}

#[test]
#[ignore = "needs root, unshare and corosync-qdevice-net-certutil"]
fn node_tool_imports_our_ca_and_signed_certificate() {
    let setup = pvecm_flow("testcluster");
    let out = node_shell(
        &setup.node1,
        "db=/etc/corosync/qdevice/net/nssdb
         echo '== list'; certutil -L -d \"$db\"
         echo '== cluster cert'; certutil -L -d \"$db\" -n 'Cluster Cert'
         echo '== verify'; certutil -V -u C -n 'Cluster Cert' -d \"$db\"
         echo '== chain'; certutil -O -n 'Cluster Cert' -d \"$db\"
         test -s \"$db/qdevice-net-node.p12\"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let section = |name: &str| {
        text.split("== ")
            .find(|s| s.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    let list = section("list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("QNet CA") && l.trim_end().ends_with("CT,c,c")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("Cluster Cert") && l.trim_end().ends_with("u,u,u")),
        "{list}"
    );
    let cert = section("cluster cert");
    assert!(cert.contains("Issuer: \"CN=QNet CA\""), "{cert}");
    assert!(cert.contains("Subject: \"CN=testcluster\""), "{cert}");
    assert!(section("verify").contains("certificate is valid"), "{text}");
    let chain = section("chain");
    assert!(
        chain.contains("\"QNet CA\" [CN=QNet CA]")
            && chain.contains("\"Cluster Cert\" [CN=testcluster]"),
        "{chain}"
    );

    // A second node imports the exported p12, as `pvecm` does for the others.
    let node2 = setup
        .store
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("node2");
    fs::create_dir_all(&node2).unwrap();
    let p12 = setup.node1.join("qdevice/net/nssdb/qdevice-net-node.p12");
    node_shell(
        &node2,
        &format!(
            "corosync-qdevice-net-certutil -i -c '{}'
             corosync-qdevice-net-certutil -m -c '{}'
             certutil -V -u C -n 'Cluster Cert' -d /etc/corosync/qdevice/net/nssdb",
            setup.store.join("qnetd-cacert.crt").display(),
            p12.display()
        ),
    );
}
