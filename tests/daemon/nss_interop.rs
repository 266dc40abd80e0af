//! Interop with the real NSS tools on the node side. Ignored by default: these
//! tests need root (for `unshare --mount` and the bind mount over
//! `/etc/corosync`, as `tests/interop/cluster.sh` does), and the Debian
//! packages `corosync-qdevice` and `libnss3-tools`.
//!
//! Run with `make test-ignored` (root), or `cargo test --test daemon --
//! --ignored --test-threads=1 nss_interop`. A missing tool makes a test
//! skip by name (see `support::skip`), never pass in silence.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use crate::support::skip::{require_programs, require_root};

/// What the node-side tests need: root (mount namespaces), the node's
/// certificate tool and NSS's `certutil`/`tstclnt`.
fn node_side_available() -> bool {
    require_root()
        && require_programs(&[
            ("unshare", "util-linux"),
            ("corosync-qdevice-net-certutil", "corosync-qdevice"),
            ("certutil", "libnss3-tools"),
            ("tstclnt", "libnss3-tools"),
        ])
}

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
    let argv = args.iter().map(|a| a.as_os_str().to_owned()).collect();
    qnetd::cmd::certutil::run("corosync-qnetd-certutil", argv)
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
    if !node_side_available() {
        return;
    }
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

// ---- the real NSS client against TlsSession ----------------------------------

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use qnetd::net::tls::{TlsError, TlsSession, server_config};

/// What the test server saw.
#[derive(Debug)]
struct Served {
    protocol: Option<String>,
    peer_cn: Option<String>,
    received: Vec<u8>,
}

/// Accepts one connection on loopback and serves it with a blocking loop over
/// `TlsSession`: answers each line with `ECHO <line>`, closes after the first.
fn serve_once(
    store: &Path,
    client_cert_required: bool,
) -> (u16, JoinHandle<Result<Served, TlsError>>) {
    let store = qnetd::cert::store::CertStore::open(store);
    let config = server_config(&store, client_cert_required).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        serve(&mut sock, Arc::clone(&config))
    });
    (port, handle)
}

/// Writes the session's TLS bytes, as the event loop does.
fn flush(session: &mut TlsSession, sock: &mut TcpStream) {
    while !session.pending_ciphertext().is_empty() {
        match sock.write(session.pending_ciphertext()) {
            Ok(0) | Err(_) => return,
            Ok(n) => session.consume_ciphertext(n),
        }
    }
}

/// Reads the socket into a buffer and feeds the session, as the event loop
/// does.
fn serve(sock: &mut TcpStream, config: Arc<rustls::ServerConfig>) -> Result<Served, TlsError> {
    let mut session = TlsSession::new(config, &[]).map_err(|e| e.error)?;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let result = session.feed(&buf[..n]);
        flush(&mut session, sock);
        result?;
        received.extend_from_slice(session.plaintext());
        session.consume_plaintext(session.plaintext().len());
        if let Some(end) = received.iter().position(|&b| b == b'\n') {
            let mut reply = b"ECHO ".to_vec();
            reply.extend_from_slice(&received[..=end]);
            session.send_plaintext(&reply)?;
            session.send_close_notify()?;
            flush(&mut session, sock);
            break;
        }
    }
    Ok(Served {
        protocol: session.protocol_version().map(|v| format!("{v:?}")),
        peer_cn: session.peer_names().and_then(|n| n.common_name.clone()),
        received,
    })
}

/// `tstclnt` (NSS) in the node's namespace, with the settings of
/// corosync-qdevice: SNI and expected server name "Qnetd Server", client
/// certificate nickname "Cluster Cert", the node's NSS database. (Its stdin
/// stays open: at EOF on stdin tstclnt spins instead of reading the socket.)
fn tstclnt(node: &Path, port: u16, versions: &str, with_cert: bool) -> Output {
    let cert = if with_cert { "-n 'Cluster Cert'" } else { "" };
    let script = format!(
        "timeout 5 tstclnt -h 127.0.0.1 -p {port} -a 'Qnetd Server' -V {versions} \
         -d /etc/corosync/qdevice/net/nssdb {cert} < <(exec 2>&-; echo hello; exec sleep 3) 2>&1 || true"
    );
    node_shell(node, &script)
}

#[test]
#[ignore = "needs root, unshare, corosync-qdevice-net-certutil and tstclnt"]
fn nss_client_handshakes_with_tls_session() {
    if !node_side_available() {
        return;
    }
    let setup = pvecm_flow("testcluster");
    for (versions, want) in [("tls1.3:tls1.3", "TLSv1_3"), ("tls1.2:tls1.2", "TLSv1_2")] {
        let (port, server) = serve_once(&setup.store, true);
        let out = tstclnt(&setup.node1, port, versions, true);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let served = server.join().unwrap();
        eprintln!("{versions}: tstclnt said:\n{text}\nserver: {served:?}");
        let served = served.unwrap_or_else(|e| panic!("{versions}: server failed: {e}"));
        assert_eq!(served.protocol.as_deref(), Some(want));
        assert_eq!(served.peer_cn.as_deref(), Some("testcluster"));
        assert_eq!(served.received, b"hello\n");
        assert!(text.contains("ECHO hello"), "{versions}: {text}");
    }
}

#[test]
#[ignore = "needs root, unshare, corosync-qdevice-net-certutil and tstclnt"]
fn nss_client_without_certificate_is_refused() {
    if !node_side_available() {
        return;
    }
    let setup = pvecm_flow("testcluster");
    // A node that imported only the CA (NSS would otherwise pick "Cluster
    // Cert" by itself even without a nickname).
    let bare = setup.node1.parent().unwrap().join("bare");
    fs::create_dir_all(&bare).unwrap();
    node_shell(
        &bare,
        &format!(
            "corosync-qdevice-net-certutil -i -c '{}'",
            setup.store.join("qnetd-cacert.crt").display()
        ),
    );
    for versions in ["tls1.3:tls1.3", "tls1.2:tls1.2"] {
        let (port, server) = serve_once(&setup.store, true);
        let out = tstclnt(&bare, port, versions, false);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let served = server.join().unwrap();
        eprintln!("{versions}: tstclnt said:\n{text}\nserver: {served:?}");
        assert!(served.is_err(), "{versions}: served {served:?}");
        assert!(!text.contains("ECHO"), "{text}");
    }
    // Without client authentication the same client is served.
    let (port, server) = serve_once(&setup.store, false);
    let out = tstclnt(&bare, port, "tls1.2:tls1.3", false);
    let served = server.join().unwrap().unwrap();
    assert_eq!(served.peer_cn, None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ECHO hello"));
}

#[test]
#[ignore = "needs the openssl command"]
fn openssl_client_with_sni_qnetd_server() {
    if !require_programs(&[("openssl", "openssl")]) {
        return;
    }
    let setup = pvecm_flow_without_nodes();
    let (port, server) = serve_once(&setup.0, false);
    let ca = setup.0.join("qnetd-cacert.crt");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "echo hello | openssl s_client -connect 127.0.0.1:{port} -servername 'Qnetd Server' \
             -verify_hostname 'Qnetd Server' -CAfile '{}' -verify_return_error -ign_eof 2>&1",
            ca.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let served = server.join().unwrap();
    eprintln!("openssl said:\n{text}\nserver: {served:?}");
    served.unwrap();
    assert!(text.contains("ECHO hello"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

/// Only our `-i`, for tests without a node.
fn pvecm_flow_without_nodes() -> (PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("nssdb");
    assert_eq!(certutil(&[&p("-d"), &store, &p("-i")]), ExitCode::SUCCESS);
    (store, tmp)
}
