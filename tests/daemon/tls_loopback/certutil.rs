//! The certificate tools against the daemon's store: `certutil` under the
//! reference's name, and `--import-nss` keeping the reference's CA.

use super::*;

#[test]
fn certutil_under_the_reference_name() {
    let dir = Scratch::new("certutil-link");
    let link = dir.join("corosync-qnetd-certutil");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let store = dir.join("store");
    let out = crate::support::command(&link, None)
        .arg("-d")
        .arg(&store)
        .arg("-i")
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert!(store.join("qnetd-cacert.crt").is_file());
    // Signing a request as the node tool makes it (here with an ECDSA key).
    let (csr, _) = make_request(CLUSTER);
    let req = dir.join("qdevice-net-node.crq");
    std::fs::write(&req, csr).unwrap();
    let out = crate::support::command(&link, None)
        .arg("-d")
        .arg(&store)
        .args(["-s", "-c"])
        .arg(&req)
        .args(["-n", CLUSTER])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let crt = store.join(format!("cluster-{CLUSTER}.crt"));
    assert!(
        stdout.contains(&format!("Certificate stored in {}", crt.display())),
        "{stdout}"
    );
    assert!(crt.is_file());
    // Usage errors exit as the reference's script does.
    let out = crate::support::command(&link, None)
        .arg("-d")
        .arg(&store)
        .args(["-s", "-n", CLUSTER])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "-s without -c");
}

/// What `--import-nss` needs: root (a private mount namespace, so the
/// reference script writes into our directory and never the host's /etc),
/// the reference tool and the NSS tools. Prints why it skips.
fn import_nss_tools_available() -> bool {
    let missing: Vec<&str> = [
        "/usr/bin/corosync-qnetd-certutil",
        "/usr/bin/pk12util",
        "/usr/bin/openssl",
        "/usr/bin/unshare",
        "/etc/corosync/qnetd",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    let root = rustix::process::geteuid().is_root();
    if !missing.is_empty() || !root {
        crate::support::skip::skip(
            &format!(
                "certutil --import-nss against the reference store needs root and {missing:?}"
            ),
            "apt-get install -y corosync-qnetd libnss3-tools openssl",
        );
        return false;
    }
    true
}

#[test]
fn import_nss_keeps_the_reference_ca() {
    if !import_nss_tools_available() {
        return;
    }
    let dir = Arc::new(Scratch::new("tls-import"));
    let etc = dir.join("qnetd");
    std::fs::create_dir_all(&etc).unwrap();
    // A node's request, signed by the REAL reference tool in its NSS store.
    let (csr, client_key) = make_request(CLUSTER);
    let req = dir.join("qdevice-net-node.crq");
    std::fs::write(&req, &csr).unwrap();
    let script = format!(
        "mount --bind '{}' /etc/corosync/qnetd && corosync-qnetd-certutil -i \
         && corosync-qnetd-certutil -s -c '{}' -n {CLUSTER}",
        etc.display(),
        req.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_succeeded(&out);
    let store = dir.join("store");
    std::fs::rename(etc.join("nssdb"), &store).unwrap();
    let client_cert = std::fs::read(store.join(format!("cluster-{CLUSTER}.crt"))).unwrap();
    let snapshot = |names: &[&str]| -> Vec<Vec<u8>> {
        names
            .iter()
            .map(|n| std::fs::read(store.join(n)).unwrap())
            .collect()
    };
    let nss_files = [
        "cert9.db",
        "key4.db",
        "pkcs11.txt",
        "qnetd-cacert.crt",
        "serial.txt",
    ];
    let before = snapshot(&nss_files);

    // The refusal names the command.
    let certutil = |args: &[&str]| {
        crate::support::command(BIN, None)
            .arg("certutil")
            .args(args)
            .output()
            .unwrap()
    };
    let store_s = store.to_str().unwrap();
    let out = certutil(&["-d", store_s, "-i"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("qnetd certutil --import-nss {store_s}")),
        "{err}"
    );

    let out = certutil(&["--import-nss", store_s]);
    assert_succeeded(&out);
    assert_eq!(snapshot(&nss_files), before, "the NSS files are untouched");
    assert!(
        !certutil(&["--import-nss", store_s]).status.success(),
        "a second import refuses"
    );

    // Our daemon on the imported store: the reference-signed client is
    // accepted, and the server certificate verifies against the CA file the
    // nodes already have.
    let server = Server::start_in(dir.clone(), &["-s", "on", "-c", "on"]);
    let reference_ca = server.ca();
    for v13 in [true, false] {
        let cfg = client_config(
            provider(v13),
            &reference_ca,
            Some((
                vec![CertificateDer::from(client_cert.clone())],
                client_key.clone_key(),
            )),
        );
        let mut node = Node::connect(&server);
        assert_eq!(node.preinit(CLUSTER), Some(TlsSupported::Supported));
        assert!(node.starttls(&cfg), "handshake, TLS 1.3 = {v13}");
        assert!(init_ok(&node.init()), "TLS 1.3 = {v13}");
    }
    // A certificate our store signs now continues the reference's serials
    // and is accepted too.
    let reference_serial: u64 = String::from_utf8_lossy(&before[4]).trim().parse().unwrap();
    let id = server.client_identity(CLUSTER);
    let (_, cert) = x509_parser::parse_x509_certificate(&id.0[0]).unwrap();
    assert_eq!(
        cert.raw_serial_as_string(),
        format!("{:02x}", reference_serial + 1)
    );
    let cfg = client_config(provider(true), &reference_ca, Some(id));
    Node::assert_admitted(&server, CLUSTER, &cfg);
    assert!(server.stop().success());
}
