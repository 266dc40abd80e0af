//! TLS through the real binary on loopback: STARTTLS, TLS 1.2 and 1.3 with
//! a client certificate signed by the store the daemon created on first
//! start, and every refusal case of the reference (wrong CA, no
//! certificate, wrong cluster name, clear text under `-s req`, garbage
//! after STARTTLS).

#![allow(
    clippy::disallowed_methods,
    reason = "tests of the real binary use the wall clock"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use qnetd::cert::store::CertStore;
use qnetd::proto::build::{self, Init};
use qnetd::proto::{Msg, MsgType, ReplyErrorCode, TlsSupported};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::panel::panel_post;
use crate::support::server::Scratch;
use crate::support::wire::take_frame;
use crate::support::{Daemon, Launch};
use crate::testkit::{Client as TlsClient, client_config, make_request};

mod certutil;
mod limits;
mod mqtt_unpair;

const BIN: &str = env!("CARGO_BIN_EXE_qnetd");

const CLUSTER: &str = "loopcluster";

struct Server {
    daemon: Daemon,
    port: u16,
    /// Shared by a server restarted in the same directory.
    dir: Arc<Scratch>,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with(name, args, "")
    }

    fn start_with(name: &str, args: &[&str], settings: &str) -> Self {
        Self::start_in_with(Arc::new(Scratch::new(name)), args, settings)
    }

    fn start_in(dir: Arc<Scratch>, args: &[&str]) -> Self {
        Self::start_in_with(dir, args, "")
    }

    /// [`Self::start_in`] with more `-S` settings.
    fn start_in_with(dir: Arc<Scratch>, args: &[&str], settings: &str) -> Self {
        let mut store = format!("nss_db_dir={}/store", dir.display());
        if !settings.is_empty() {
            store.push(',');
            store.push_str(settings);
        }
        let daemon = Launch::ours(&dir, "qnetd")
            .args(args)
            .settings(&store)
            .start();
        Self {
            port: daemon.port,
            daemon,
            dir,
        }
    }

    fn store(&self) -> CertStore {
        CertStore::open(self.dir.join("store"))
    }

    /// A client certificate for `cn`, signed by this server's CA.
    fn client_identity(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (csr, key) = make_request(cn);
        let path = self.store().sign_request(&csr, cn).unwrap();
        (
            vec![CertificateDer::from(std::fs::read(path).unwrap())],
            key,
        )
    }

    fn ca(&self) -> CertificateDer<'static> {
        self.store().load_ca_certs().unwrap().remove(0)
    }

    /// SIGTERM; the state directory is kept.
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.daemon.terminate()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }
}

/// A qdevice-like client: clear text until STARTTLS, then TLS.
struct Node {
    s: TcpStream,
    tls: Option<TlsClient>,
    rx: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Got {
    Msg(Vec<u8>),
    Closed,
}

impl Node {
    fn connect(server: &Server) -> Self {
        let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self {
            s,
            tls: None,
            rx: Vec::new(),
        }
    }

    fn send(&mut self, m: &Msg<'_>) {
        let bytes = build::to_bytes(m);
        match self.tls.as_mut() {
            Some(tls) => {
                tls.send(&bytes).unwrap();
                let out = tls.take_output();
                self.s.write_all(&out).unwrap();
            }
            None => self.s.write_all(&bytes).unwrap(),
        }
    }

    /// Reads the socket once; `false` on EOF, reset or a TLS error.
    fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        let n = match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        match self.tls.as_mut() {
            Some(tls) => {
                if tls.receive(&chunk[..n]).is_err() {
                    return false;
                }
                let out = tls.take_output();
                if !out.is_empty() && self.s.write_all(&out).is_err() {
                    return false;
                }
                self.rx.append(&mut tls.plaintext);
            }
            None => self.rx.extend_from_slice(&chunk[..n]),
        }
        true
    }

    fn recv(&mut self) -> Got {
        loop {
            if let Some(frame) = take_frame(&mut self.rx) {
                return Got::Msg(frame);
            }
            if !self.read_more() {
                return Got::Closed;
            }
        }
    }

    fn expect(&mut self, ty: MsgType) -> Vec<u8> {
        match self.recv() {
            Got::Msg(b) => {
                let m = Msg::parse(&b).unwrap();
                assert_eq!(m.msg_type, ty, "{m:?}");
                b
            }
            Got::Closed => panic!("closed while waiting for {ty}"),
        }
    }

    fn preinit(&mut self, cluster: &str) -> Option<TlsSupported> {
        self.send(&build::preinit(1, cluster.as_bytes()));
        let r = self.expect(MsgType::PreinitReply);
        Msg::parse(&r).unwrap().tls_supported
    }

    /// STARTTLS, then the handshake. Returns whether it completed from the
    /// client's point of view (with TLS 1.3 a refused client certificate
    /// only shows on the next read).
    fn starttls(&mut self, config: &Arc<rustls::ClientConfig>) -> bool {
        self.send(&build::starttls(2));
        let mut tls = TlsClient::new(config);
        self.s.write_all(&tls.take_output()).unwrap();
        self.tls = Some(tls);
        while self.tls.as_ref().is_some_and(TlsClient::is_handshaking) {
            if !self.read_more() {
                return false;
            }
        }
        true
    }

    /// A client of `cluster` past PREINIT, STARTTLS and a successful INIT.
    fn joined(server: &Server, config: &Arc<rustls::ClientConfig>, cluster: &str) -> Self {
        let mut node = Self::connect(server);
        node.preinit(cluster);
        assert!(node.starttls(config), "handshake");
        assert!(init_ok(&node.init()), "INIT");
        node
    }

    fn init(&mut self) -> Got {
        self.send(&build::init(&Init::traced_ffsplit(3, 1)));
        self.recv()
    }

    /// A new node that sends PREINIT for `cluster`, completes STARTTLS
    /// with `config` and must then be admitted by INIT.
    fn assert_admitted(server: &Server, cluster: &str, config: &Arc<rustls::ClientConfig>) {
        let mut node = Self::connect(server);
        node.preinit(cluster);
        assert!(node.starttls(config));
        assert!(init_ok(&node.init()));
    }
}

/// Asserts that a process exited 0, showing its stderr otherwise.
fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn init_ok(got: &Got) -> bool {
    matches!(got, Got::Msg(b) if Msg::parse(b).unwrap().reply_error_code == Some(ReplyErrorCode::NoError))
}

/// A node of `CLUSTER` on `server` that sent PREINIT (answered with `tls`)
/// and completed STARTTLS presenting `id`, over TLS 1.3 or 1.2.
fn tls_node(
    server: &Server,
    id: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    v13: bool,
    tls: TlsSupported,
) -> Node {
    let cfg = client_config(
        provider(v13),
        &server.ca(),
        Some((id.0.clone(), id.1.clone_key())),
    );
    let mut node = Node::connect(server);
    assert_eq!(node.preinit(CLUSTER), Some(tls));
    assert!(node.starttls(&cfg), "handshake, TLS 1.3 = {v13}");
    node
}

fn provider(v13: bool) -> CryptoProvider {
    if v13 {
        rustls_ring::DEFAULT_TLS13_PROVIDER
    } else {
        rustls_ring::DEFAULT_TLS12_PROVIDER
    }
}

#[test]
fn store_is_created_on_first_start_with_private_keys() {
    let server = Server::start("store", &["-s", "on"]);
    let dir = server.dir.join("store");
    assert!(dir.join("qnetd-cacert.crt").is_file());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
    let ca = std::fs::read(dir.join("qnetd-cacert.crt")).unwrap();
    let mut server = server;
    assert!(server.terminate().success());
    // A restart keeps the same CA.
    let again = Server::start_in(server.dir.clone(), &["-s", "on"]);
    assert_eq!(
        std::fs::read(again.dir.join("store/qnetd-cacert.crt")).unwrap(),
        ca
    );
    assert!(again.stop().success());
}

#[test]
fn tls_sessions_with_a_client_certificate() {
    let server = Server::start("good", &["-s", "on", "-c", "on"]);
    let id = server.client_identity(CLUSTER);
    for v13 in [true, false] {
        let mut node = tls_node(&server, &id, v13, TlsSupported::Supported);
        assert!(init_ok(&node.init()), "TLS 1.3 = {v13}");
        node.send(&build::echo_request(9));
        node.expect(MsgType::EchoReply);
    }
    // The cluster-name check is case-insensitive.
    let id = server.client_identity("LOOPCLUSTER");
    let cfg = client_config(provider(true), &server.ca(), Some(id));
    Node::assert_admitted(&server, CLUSTER, &cfg);
    assert!(server.stop().success());
}

#[test]
fn refused_tls_clients() {
    let server = Server::start("refused", &["-s", "on", "-c", "on"]);
    let other = Server::start("other-ca", &["-s", "on"]);
    let good = server.client_identity(CLUSTER);
    let wrong_ca = other.client_identity(CLUSTER);
    let wrong_name = server.client_identity("another");
    let cases = [
        ("certificate from another CA", Some(wrong_ca)),
        ("no client certificate", None),
        ("certificate for another cluster", Some(wrong_name)),
    ];
    for v13 in [true, false] {
        for (case, identity) in &cases {
            let identity = identity.as_ref().map(|(c, k)| (c.clone(), k.clone_key()));
            let cfg = client_config(provider(v13), &server.ca(), identity);
            let mut node = Node::connect(&server);
            node.preinit(CLUSTER);
            let handshake = node.starttls(&cfg);
            let got = if handshake { node.init() } else { Got::Closed };
            assert_eq!(got, Got::Closed, "{case}, TLS 1.3 = {v13}: must be refused");
        }
    }
    // The server is still fine for a good client.
    let cfg = client_config(provider(true), &server.ca(), Some(good));
    Node::assert_admitted(&server, CLUSTER, &cfg);
}

#[test]
fn tls_required_refuses_clear_text_and_client_cert_off_accepts_anyone() {
    let server = Server::start("req", &["-s", "req", "-c", "off"]);
    let mut node = Node::connect(&server);
    assert_eq!(node.preinit(CLUSTER), Some(TlsSupported::Required));
    let got = node.init();
    let Got::Msg(b) = got else {
        panic!("clear INIT under -s req: closed")
    };
    let m = Msg::parse(&b).unwrap();
    assert_eq!(
        (m.msg_type, m.reply_error_code),
        (MsgType::ServerError, Some(ReplyErrorCode::TlsRequired))
    );
    // -c off: no certificate needed, any cluster name.
    let cfg = client_config(provider(true), &server.ca(), None);
    Node::assert_admitted(&server, "whatever", &cfg);
}

#[test]
fn clear_text_after_starttls_is_an_alert_and_a_close() {
    let server = Server::start("garbage", &["-s", "on"]);
    let mut node = Node::connect(&server);
    node.preinit(CLUSTER);
    node.send(&build::starttls(2));
    node.s
        .write_all(&build::to_bytes(&build::echo_request(3)))
        .unwrap();
    let mut alert = Vec::new();
    let _ = node.s.read_to_end(&mut alert);
    assert_eq!(
        alert.first(),
        Some(&0x15),
        "a TLS alert record: {alert:02x?}"
    );
}

/// Issue 11, finding 1, through the real binary with real certificates: a
/// client with a valid certificate for one cluster that sends a message
/// (marking the certificate verified) and then PREINIT for another cluster
/// is disconnected instead of joining that cluster (the reference lets it
/// in).
#[test]
fn certificate_for_one_cluster_never_admits_another() {
    let server = Server::start("cross", &["-s", "req", "-c", "on"]);
    let id = server.client_identity(CLUSTER);
    for v13 in [true, false] {
        let mut node = tls_node(&server, &id, v13, TlsSupported::Required);
        node.send(&build::echo_request(9));
        let e = node.expect(MsgType::ServerError);
        assert_eq!(
            Msg::parse(&e).unwrap().reply_error_code,
            Some(ReplyErrorCode::InitRequired)
        );
        node.send(&build::preinit(4, b"othercluster"));
        let got = node.recv();
        assert_eq!(got, Got::Closed, "TLS 1.3 = {v13}: second PREINIT accepted");
    }
    // A well-behaved client of the certificate's cluster still joins.
    let mut node = tls_node(&server, &id, true, TlsSupported::Required);
    assert!(init_ok(&node.init()));
    assert!(server.stop().success());
}

#[test]
fn unpair_disconnects_the_cluster_and_refuses_its_certificates() {
    let server = Server::start("unpair", &["-s", "on", "-c", "on"]);
    let id = server.client_identity(CLUSTER);
    let other = server.client_identity("othercluster");
    let cfg = |id: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)| {
        client_config(
            provider(true),
            &server.ca(),
            Some((id.0.clone(), id.1.clone_key())),
        )
    };
    let mut node = Node::connect(&server);
    node.preinit(CLUSTER);
    assert!(node.starttls(&cfg(&id)));
    assert!(init_ok(&node.init()));
    let mut bystander = Node::connect(&server);
    bystander.preinit("othercluster");
    assert!(bystander.starttls(&cfg(&other)));
    assert!(init_ok(&bystander.init()));

    let socket = server.dir.join("qnetd.sock");
    let out = crate::support::command(BIN, None)
        .args(["unpair", CLUSTER, "-p"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 certificate(s) revoked, 1 client(s) disconnected")
    );
    // Disconnected at once.
    assert_eq!(node.recv(), Got::Closed);
    // Its certificate is refused from now on; another cluster is untouched.
    let mut again = Node::connect(&server);
    again.preinit(CLUSTER);
    let got = if again.starttls(&cfg(&id)) {
        again.init()
    } else {
        Got::Closed
    };
    assert_eq!(got, Got::Closed);
    bystander.send(&build::echo_request(9));
    bystander.expect(MsgType::EchoReply);
    // Nothing live is left to unpair.
    let out = crate::support::command(BIN, None)
        .args(["unpair", CLUSTER, "-p"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live certificates"));
    // A new certificate for the name (paired again) is accepted.
    let fresh = server.client_identity(CLUSTER);
    let mut node = Node::connect(&server);
    node.preinit(CLUSTER);
    assert!(node.starttls(&cfg(&fresh)));
    assert!(init_ok(&node.init()));
}

#[test]
fn pair_wait_returns_once_every_node_votes_over_tls() {
    use std::io::BufRead as _;
    if !crate::support::skip::require_programs(&[("curl", "curl")]) {
        return;
    }
    let server = Server::start("pairwait", &["-s", "on", "-c", "on"]);
    let mut child = crate::support::command(BIN, None)
        .args([
            "pair",
            "--wait",
            "--nodes",
            "1",
            "--address",
            "127.0.0.1",
            "-p",
        ])
        .arg(server.dir.join("qnetd.sock"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let _explanation = lines.next().unwrap().unwrap();
    let command = lines.next().unwrap().unwrap();
    let words: Vec<&str> = command.split_whitespace().collect();
    let (pin, url) = (words[3], words[4]);
    // The node side by hand: corosync.conf, then one certificate request.
    let conf = crate::pairing::conf(&server.dir, CLUSTER, 1);
    assert_eq!(
        crate::pairing::post(pin, &format!("{url}/corosync.conf"), &conf).1,
        200
    );
    let (csr, key) = make_request(CLUSTER);
    let csr_path = server.dir.join("node.csr");
    std::fs::write(&csr_path, csr).unwrap();
    let (_, code, der) = crate::pairing::post(pin, &format!("{url}/sign?node=n1"), &csr_path);
    assert_eq!(code, 200);
    // Not done before the node votes over TLS.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "--wait returned too early"
    );
    let cfg = client_config(
        provider(true),
        &server.ca(),
        Some((vec![CertificateDer::from(der)], key)),
    );
    let mut node = Node::connect(&server);
    node.preinit(CLUSTER);
    assert!(node.starttls(&cfg));
    assert!(init_ok(&node.init()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "--wait did not return"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("paired: every node votes over TLS")),
        "{rest:?}"
    );
}

#[test]
fn the_panel_pairs_and_unpairs_with_the_management_verbs() {
    let http = crate::support::server::free_ports(1)[0];
    let spec = format!("127.0.0.1:{http}");
    let server = Server::start(
        "panelpair",
        &["-s", "on", "-c", "on", "-l", "127.0.0.1", "--http", &spec],
    );
    // Without the CSRF header: refused, nothing opened.
    let r = crate::panel::http(http, "POST /api/pair HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 403 "), "{r}");
    let status = crate::panel::http(http, "GET /api/pair/status HTTP/1.1\r\n\r\n");
    assert!(status.contains(r#""window":"none""#), "{status}");

    // Open: the node command with this server's pin, and the expiry.
    let leaf = server.store().load_server_identity().unwrap().cert_chain[0].clone();
    let pin = qnetd::pair::pin::spki_pin(leaf.as_ref()).unwrap();
    let r = panel_post(http, "/api/pair", r#"{"nodes":1,"cluster":"panelcluster"}"#);
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let body = r.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let command = json["command"].as_str().unwrap();
    assert!(
        command.starts_with(&format!(
            "curl -sSk --pinnedpubkey {pin} https://127.0.0.1:{}/pair/",
            server.port
        )),
        "{command}"
    );
    let expires: u64 = json["expires_in"].as_str().unwrap().parse().unwrap();
    assert!(expires > 60 && expires <= 1800, "{expires}");
    // Progress: the window, nothing signed, no node over TLS yet.
    let status = crate::panel::http(http, "GET /api/pair/status HTTP/1.1\r\n\r\n");
    let st: serde_json::Value =
        serde_json::from_str(status.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(st["window"], "open", "{status}");
    assert_eq!(st["cluster"], "panelcluster");
    assert_eq!(st["nodes"], "1");
    assert_eq!(st["signed"], "0");
    assert_eq!(st["tls_nodes"], "0");

    // A node of the cluster votes over TLS: the progress counts it.
    let id = server.client_identity("panelcluster");
    let cfg = client_config(
        provider(true),
        &server.ca(),
        Some((id.0.clone(), id.1.clone_key())),
    );
    let mut node = Node::connect(&server);
    node.preinit("panelcluster");
    assert!(node.starttls(&cfg));
    assert!(init_ok(&node.init()));
    let status = crate::panel::http(http, "GET /api/pair/status HTTP/1.1\r\n\r\n");
    assert!(status.contains(r#""tls_nodes":"1""#), "{status}");

    // Unpair: an unknown cluster is an error; the paired one is cut off.
    let r = panel_post(http, "/api/unpair", r#"{"cluster":"nosuch"}"#);
    assert!(
        r.starts_with("HTTP/1.1 409 ") && r.contains("no live certificates"),
        "{r}"
    );
    let r = panel_post(http, "/api/unpair", "cluster=panelcluster");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(
        r.contains(r#""disconnected":"1""#) && r.contains(r#""revoked":"1""#),
        "{r}"
    );
    assert_eq!(node.recv(), Got::Closed);
    assert!(server.stop().success());
}
