//! TLS sessions against the test client: versions, certificates, the
//! reference's captured handshakes, limits and failures.

use std::fs;
use std::path::Path;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use std::io;
use std::sync::Arc;

use rustls::enums::ProtocolVersion;
use rustls::server::InvalidSniPolicy;
use rustls::split::ReceiveTraffic;
use rustls::{NeedsInput, ServerSide};

use super::session::State;
use super::testkit::{Client, client_config, make_request};
use super::*;
use crate::cert::name::cluster_name_matches;
use crate::cert::store::{CA_CERT_FILE, CertStore, SERVER_CERT_FILE};

const VERSIONS: [(&str, CryptoProvider, ProtocolVersion); 2] = [
    (
        "TLS 1.3",
        rustls_ring::DEFAULT_TLS13_PROVIDER,
        ProtocolVersion::TLSv1_3,
    ),
    (
        "TLS 1.2",
        rustls_ring::DEFAULT_TLS12_PROVIDER,
        ProtocolVersion::TLSv1_2,
    ),
];

type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

struct Fixture {
    _tmp: tempfile::TempDir,
    store: CertStore,
    ca: CertificateDer<'static>,
    client: ClientIdentity,
}

fn clone_identity(id: &ClientIdentity) -> ClientIdentity {
    (id.0.clone(), id.1.clone_key())
}

/// A new store and a client certificate for `CN=cluster` signed by it.
fn fixture(cluster: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = CertStore::open(tmp.path().join("nssdb"));
    store.init().unwrap();
    let (csr, key) = make_request(cluster);
    let cert = fs::read(store.sign_request(&csr, cluster).unwrap()).unwrap();
    let ca = store.load_ca_certs().unwrap().remove(0);
    Fixture {
        _tmp: tmp,
        store,
        ca,
        client: (vec![CertificateDer::from(cert)], key),
    }
}

impl Fixture {
    /// A client that trusts the store's CA and presents the fixture's
    /// client certificate.
    fn new_client(&self, provider: CryptoProvider) -> Client {
        Client::new(&client_config(
            provider,
            &self.ca,
            Some(clone_identity(&self.client)),
        ))
    }
}

#[derive(Debug)]
enum PumpError {
    Server(TlsError),
    #[allow(dead_code, reason = "read through Debug in failure messages")]
    Client(rustls::Error),
}

/// Moves bytes both ways until neither side has anything to send. On a
/// server error its pending alert is still delivered to the client.
fn pump(server: &mut TlsSession, client: &mut Client) -> Result<(), PumpError> {
    for _ in 0..50 {
        let to_server = client.take_output();
        let server_result = match to_server.is_empty() {
            true => Ok(()),
            false => server.feed(&to_server),
        };
        let to_client = server.pending_ciphertext().to_vec();
        server.consume_ciphertext(to_client.len());
        let client_result = match to_client.is_empty() {
            true => Ok(()),
            false => client.receive(&to_client),
        };
        server_result.map_err(PumpError::Server)?;
        client_result.map_err(PumpError::Client)?;
        if to_server.is_empty() && to_client.is_empty() {
            return Ok(());
        }
    }
    panic!("pump did not settle");
}

fn connect(
    fx: &Fixture,
    provider: CryptoProvider,
    required: bool,
    with_cert: bool,
) -> (TlsSession, Client, Result<(), PumpError>) {
    let cfg = server_config(&fx.store, required).unwrap();
    let client_id = with_cert.then(|| clone_identity(&fx.client));
    let mut client = Client::new(&client_config(provider, &fx.ca, client_id));
    let mut server = TlsSession::new(cfg, &[]).unwrap();
    let result = pump(&mut server, &mut client);
    (server, client, result)
}

#[test]
fn session_size() {
    eprintln!(
        "TlsSession {} B, State {} B, ReceiveTraffic {} B, NeedsInput {} B",
        size_of::<TlsSession>(),
        size_of::<State>(),
        size_of::<ReceiveTraffic<ServerSide>>(),
        size_of::<NeedsInput<ServerSide>>()
    );
    assert!(
        size_of::<TlsSession>() <= 512,
        "{}",
        size_of::<TlsSession>()
    );
}

#[test]
fn handshake_and_traffic_both_versions() {
    let fx = fixture("testcluster");
    for (name, provider, version) in VERSIONS {
        let (mut server, mut client, result) = connect(&fx, provider, true, true);
        result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(
            !server.is_handshaking() && !client.is_handshaking(),
            "{name}"
        );
        assert_eq!(server.protocol_version(), Some(version), "{name}");
        assert!(server.cipher_suite().is_some());
        let names = server.peer_names().expect("client certificate names");
        assert_eq!(names.common_name.as_deref(), Some("testcluster"), "{name}");
        assert!(cluster_name_matches(b"TestCluster", names));

        // Client to server, including messages larger than one record.
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        client.send(b"INIT").unwrap();
        client.send(&big).unwrap();
        pump(&mut server, &mut client).unwrap();
        let mut got = Vec::new();
        server.take_plaintext(&mut got);
        assert_eq!(&got[..4], b"INIT", "{name}");
        assert_eq!(&got[4..], &big[..], "{name}");
        assert!(server.plaintext().is_empty());

        // Server to client.
        server.send_plaintext(b"INIT_REPLY").unwrap();
        server.send_plaintext(&big).unwrap();
        pump(&mut server, &mut client).unwrap();
        assert_eq!(&client.plaintext[..10], b"INIT_REPLY");
        assert_eq!(&client.plaintext[10..], &big[..]);

        // Idle: every buffer of the session is released.
        assert_eq!(server.input.buf.capacity(), 0, "{name}");
        assert_eq!(server.tls_out.capacity(), 0, "{name}");
        assert_eq!(server.plaintext.capacity(), 0, "{name}");
    }
}

#[test]
fn bytes_after_starttls_are_not_lost_and_chunking_does_not_matter() {
    let fx = fixture("testcluster");
    for (name, provider, _) in VERSIONS {
        let cfg = server_config(&fx.store, true).unwrap();
        let mut client = fx.new_client(provider);
        // The ClientHello arrived in the same read as STARTTLS.
        let hello = client.take_output();
        let mut server = TlsSession::new(cfg, &hello).unwrap();
        assert!(server.wants_write(), "{name}: ServerHello expected");
        // From here on, one byte at a time in both directions.
        for _ in 0..20_000 {
            let to_client = server.pending_ciphertext().to_vec();
            server.consume_ciphertext(to_client.len());
            for b in &to_client {
                client.receive(std::slice::from_ref(b)).unwrap();
            }
            let to_server = client.take_output();
            for b in &to_server {
                server.feed(std::slice::from_ref(b)).unwrap();
            }
            if to_client.is_empty() && to_server.is_empty() {
                break;
            }
        }
        assert!(!server.is_handshaking(), "{name}");
        client.send(b"after").unwrap();
        for b in client.take_output() {
            server.feed(&[b]).unwrap();
        }
        assert_eq!(server.plaintext(), b"after", "{name}");
    }
}

#[test]
fn socket_style_io_with_read_tls_from_and_write_tls_to() {
    let fx = fixture("testcluster");
    let cfg = server_config(&fx.store, true).unwrap();
    let mut client = fx.new_client(rustls_ring::DEFAULT_PROVIDER);
    let mut server = TlsSession::new(cfg, &[]).unwrap();
    for _ in 0..20 {
        // Readable: drain the "socket" until WouldBlock, processing as we go.
        loop {
            match server.read_tls_from(&mut client) {
                Ok(0) => panic!("unexpected EOF"),
                Ok(_) => server.process().unwrap(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls_to(&mut wire).unwrap();
        }
        client.receive(&wire).unwrap();
    }
    assert!(!server.is_handshaking());
    assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    client.send(b"ping").unwrap();
    while server.read_tls_from(&mut client).is_ok() {
        server.process().unwrap();
    }
    let mut buf = [0u8; 3];
    assert_eq!(server.read_plaintext(&mut buf), 3);
    assert_eq!(&buf, b"pin");
    assert_eq!(server.plaintext(), b"g");
    assert!(server.wants_read());
}

fn assert_alert_pending(server: &TlsSession, name: &str) {
    let out = server.pending_ciphertext();
    assert!(!out.is_empty(), "{name}: no alert queued");
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let fx = fixture("testcluster");
    let other = fixture("testcluster");
    for (name, provider, _) in VERSIONS {
        let cfg = server_config(&fx.store, true).unwrap();
        // Trusts our server, but presents a certificate of another CA.
        let mut client = Client::new(&client_config(
            provider,
            &fx.ca,
            Some(clone_identity(&other.client)),
        ));
        let mut server = TlsSession::new(cfg, &[]).unwrap();
        let err = loop {
            let to_server = client.take_output();
            assert!(!to_server.is_empty(), "{name}: stalled");
            match server.feed(&to_server) {
                Ok(()) => {
                    let out = server.pending_ciphertext().to_vec();
                    server.consume_ciphertext(out.len());
                    client.receive(&out).unwrap();
                }
                Err(e) => break e,
            }
        };
        // Same issuer name, other key: the signature does not verify.
        assert!(
            matches!(
                err,
                TlsError::Tls(rustls::Error::InvalidCertificate(
                    rustls::error::CertificateError::BadSignature
                        | rustls::error::CertificateError::UnknownIssuer
                ))
            ),
            "{name}: {err:?}"
        );
        assert_alert_pending(&server, name);
        assert_eq!(server.error(), Some(&err));
        assert_eq!(
            server.feed(b"more"),
            Err(err.clone()),
            "{name}: stays failed"
        );
        assert!(!server.wants_read());
        // The client learns why.
        let alert = server.pending_ciphertext().to_vec();
        let client_err = client.receive(&alert).unwrap_err();
        assert!(
            matches!(client_err, rustls::Error::AlertReceived(_)),
            "{name}: {client_err:?}"
        );
    }
}

#[test]
fn missing_client_certificate_is_refused_when_required() {
    let fx = fixture("testcluster");
    for (name, provider, _) in VERSIONS {
        let (server, _client, result) = connect(&fx, provider, true, false);
        let Err(PumpError::Server(err)) = result else {
            panic!("{name}: {result:?}");
        };
        assert!(
            matches!(
                err,
                TlsError::Tls(rustls::Error::PeerMisbehaved(
                    rustls::error::PeerMisbehaved::NoCertificatesPresented
                ))
            ),
            "{name}: {err:?}"
        );
        assert!(server.error().is_some());
    }
}

#[test]
fn no_client_auth_when_not_required() {
    let fx = fixture("testcluster");
    for (name, provider, _) in VERSIONS {
        // Even a client that has a certificate is not asked for it.
        let (server, _client, result) = connect(&fx, provider, false, true);
        result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(server.peer_names().is_none(), "{name}");
    }
}

#[test]
fn plain_bytes_after_starttls_get_an_alert() {
    let fx = fixture("testcluster");
    let cfg = server_config(&fx.store, true).unwrap();
    // A qnetd INIT header where a ClientHello should be.
    let init = [0, 3, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 3];
    let start = TlsSession::new(Arc::clone(&cfg), &init).unwrap_err();
    assert!(matches!(start.error, TlsError::Tls(_)), "{start:?}");
    assert_eq!(start.alert.first(), Some(&0x15), "alert returned by new");
    let mut server = TlsSession::new(cfg, &[]).unwrap();
    let err = server.feed(&init).unwrap_err();
    assert!(matches!(err, TlsError::Tls(_)), "{err:?}");
    let alert = server.pending_ciphertext();
    // One alert record: type 21, length 2, level fatal (rustls says
    // decode_error, `15 03 03 00 02 02 32`; NSS said unexpected_message).
    assert_eq!(alert.first(), Some(&0x15), "{alert:02x?}");
    assert_eq!(alert.get(3..6), Some(&[0u8, 2, 2][..]), "{alert:02x?}");
}

/// Replaces the SNI of a ClientHello, keeping its length.
fn patch_sni(hello: &mut [u8], from: &[u8], to: &[u8]) {
    let pos = hello
        .windows(from.len())
        .position(|w| w == from)
        .expect("SNI in ClientHello");
    hello[pos..pos + to.len()].copy_from_slice(to);
}

#[test]
fn sni_qnetd_server_from_nss_is_ignored() {
    let fx = fixture("testcluster");
    let cfg = server_config(&fx.store, true).unwrap();
    let mut client = fx.new_client(rustls_ring::DEFAULT_PROVIDER);
    let mut hello = client.take_output();
    patch_sni(&mut hello, testkit::SERVER_NAME.as_bytes(), b"Qnetd Server");

    let server = TlsSession::new(Arc::clone(&cfg), &hello).unwrap();
    assert_eq!(
        server.pending_ciphertext().first(),
        Some(&0x16),
        "ServerHello expected"
    );

    // Control: rustls's default policy refuses the same ClientHello.
    let mut strict = (*cfg).clone();
    strict.invalid_sni_policy = InvalidSniPolicy::default();
    let err = TlsSession::new(Arc::new(strict), &hello).unwrap_err();
    assert!(
        matches!(err.error, TlsError::Tls(rustls::Error::PeerMisbehaved(_))),
        "{err:?}"
    );
    assert!(!err.alert.is_empty());
}

#[test]
fn certificate_request_names_the_ca() {
    let fx = fixture("testcluster");
    let cfg = server_config(&fx.store, true).unwrap();
    // TLS 1.2: the CertificateRequest travels in clear.
    let mut client = fx.new_client(rustls_ring::DEFAULT_TLS12_PROVIDER);
    let server = TlsSession::new(cfg, &client.take_output()).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&fx.ca).unwrap();
    let dn = ca.subject().as_raw();
    assert!(
        server
            .pending_ciphertext()
            .windows(dn.len())
            .any(|w| w == dn),
        "CA name not in the server's flight"
    );
}

#[test]
fn close_notify_both_ways() {
    let fx = fixture("testcluster");
    let (mut server, mut client, result) = connect(&fx, rustls_ring::DEFAULT_PROVIDER, true, true);
    result.unwrap();

    // The client's last message and close_notify; anything after is ignored.
    client.send(b"last").unwrap();
    client.close().unwrap();
    server.feed(&client.take_output()).unwrap();
    assert_eq!(server.plaintext(), b"last");
    assert!(server.peer_closed());
    assert!(!server.wants_read());
    server.feed(b"ignored after close_notify").unwrap();
    assert_eq!(server.plaintext(), b"last");

    // The server can still answer, then closes its side.
    server.send_plaintext(b"bye").unwrap();
    server.send_close_notify().unwrap();
    server.send_close_notify().unwrap();
    assert_eq!(server.send_plaintext(b"x"), Err(TlsError::SendClosed));
    let out = server.pending_ciphertext().to_vec();
    server.consume_ciphertext(out.len());
    assert!(!server.wants_write());
    client.receive(&out).unwrap();
    assert_eq!(client.plaintext, b"bye");
    assert!(client.peer_closed());
}

#[test]
fn real_node_request_and_key_work_end_to_end() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/reference");
    let node_key =
        PrivateKeyDer::from_pem_slice(&fs::read(dir.join("qdevice-net-node.key")).unwrap())
            .unwrap();
    let csr = fs::read(dir.join("qdevice-net-node.crq")).unwrap();

    // Our store signs the RSA request of corosync-qdevice-net-certutil.
    let fx = fixture("unused");
    let ours = fs::read(fx.store.sign_request(&csr, "testcluster").unwrap()).unwrap();

    // A store migrated from the reference (RSA CA, RSA server key), and the
    // certificate the reference signed.
    let tmp = tempfile::tempdir().unwrap();
    let migrated = CertStore::open(tmp.path());
    for name in [
        CA_CERT_FILE,
        crate::cert::store::CA_KEY_FILE,
        SERVER_CERT_FILE,
        crate::cert::store::SERVER_KEY_FILE,
    ] {
        fs::copy(dir.join(name), tmp.path().join(name)).unwrap();
    }
    let theirs = fs::read(dir.join("cluster-testcluster.crt")).unwrap();
    let their_ca = migrated.load_ca_certs().unwrap().remove(0);

    let cases = [
        ("our store", &fx.store, &fx.ca, ours),
        ("migrated store", &migrated, &their_ca, theirs),
    ];
    for (store_name, store, ca, cert) in cases {
        for (name, provider, version) in VERSIONS {
            let cfg = server_config(store, true).unwrap();
            let id = (
                vec![CertificateDer::from(cert.clone())],
                node_key.clone_key(),
            );
            let mut client = Client::new(&client_config(provider, ca, Some(id)));
            let mut server = TlsSession::new(cfg, &[]).unwrap();
            pump(&mut server, &mut client).unwrap_or_else(|e| panic!("{store_name} {name}: {e:?}"));
            assert_eq!(server.protocol_version(), Some(version));
            let names = server.peer_names().unwrap();
            assert!(cluster_name_matches(b"testcluster", names), "{store_name}");
        }
    }
}
