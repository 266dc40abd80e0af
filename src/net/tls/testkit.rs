//! A rustls client that checks the server the way the NSS client of
//! `corosync-qdevice` does, for the tests of `net::tls` and for
//! `benches/tls.rs` (which includes this file with `#[path]`, so it names
//! only external crates).
//!
//! NSS verifies the chain against the imported "QNet CA" and then requires the
//! subject CN "Qnetd Server" when the certificate has no subjectAltName.
//! rustls's own verifier ignores the CN, and a rustls client cannot send the
//! SNI "Qnetd Server" (not a DNS name), so this client sends the SNI
//! [`SERVER_NAME`] and uses [`NssLikeVerifier`].

use std::hash::Hasher;
use std::io;
use std::sync::Arc;

use rustls::client::danger::{
    HandshakeSignatureValid, ServerIdentity, ServerVerifier, SignatureVerificationInput,
};
use rustls::client::verify_identity_signed_by_trust_anchor;
use rustls::crypto::{
    CryptoProvider, Identity, SignatureScheme, VerifiedIdentity, verify_tls12_signature,
    verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, ClientSide, Connection, RootCertStore, Tcp, VecInput};

/// The SNI the test client sends (same length as "Qnetd Server", so a
/// captured ClientHello can be patched to the real value).
pub(crate) const SERVER_NAME: &str = "qnetd-server";

/// Chain to the given roots, then the NSS host-name rule for "Qnetd Server".
#[derive(Debug)]
pub(crate) struct NssLikeVerifier {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
}

impl ServerVerifier for NssLikeVerifier {
    fn verify_identity<'a>(
        &self,
        identity: &ServerIdentity<'a, '_>,
    ) -> Result<VerifiedIdentity<'a>, rustls::Error> {
        let Identity::X509(chain) = identity.identity else {
            return Err(rustls::Error::General("not an X.509 identity".into()));
        };
        let parsed = ParsedCertificate::try_from(&chain.end_entity)?;
        verify_identity_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            &chain.intermediates,
            identity.now,
            rustls_ring::ALL_VERIFICATION_ALGS,
        )?;
        let (_, cert) = x509_parser::parse_x509_certificate(&chain.end_entity)
            .map_err(|_| rustls::Error::General("bad server certificate".into()))?;
        let cn = cert
            .subject()
            .iter_common_name()
            .last()
            .and_then(|a| a.as_str().ok());
        let has_san = cert.subject_alternative_name().ok().flatten().is_some();
        if has_san || !cn.is_some_and(|cn| cn.eq_ignore_ascii_case("Qnetd Server")) {
            return Err(rustls::Error::General(
                "server name is not Qnetd Server".into(),
            ));
        }
        Ok(VerifiedIdentity::assertion(identity.identity.clone()))
    }

    fn verify_tls12_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(input, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(input, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn request_ocsp_response(&self) -> bool {
        false
    }

    fn hash_config(&self, h: &mut dyn Hasher) {
        h.write(b"nss-like");
    }
}

/// A client configuration that trusts `ca` and, if given, presents
/// `client` (chain and key). `provider` picks the protocol versions, e.g.
/// `rustls_ring::DEFAULT_TLS12_PROVIDER`.
pub(crate) fn client_config(
    provider: CryptoProvider,
    ca: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(provider);
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("CA certificate");
    let verifier = Arc::new(NssLikeVerifier {
        roots,
        provider: Arc::clone(&provider),
    });
    let builder = ClientConfig::builder(provider)
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                Arc::new(Identity::from_cert_chain(chain).expect("chain")),
                key,
            )
            .expect("client identity"),
        None => builder.with_no_client_auth().expect("client config"),
    };
    Arc::new(config)
}

/// A fresh ECDSA P-256 key and a PKCS#10 request for `CN=common_name`.
pub(crate) fn make_request(common_name: &str) -> (Vec<u8>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let csr = params.serialize_request(&key).expect("request");
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (csr.der().to_vec(), der)
}

/// The client end of an in-memory TLS connection.
pub(crate) struct Client {
    conn: Connection<ClientSide, Tcp>,
    input: VecInput,
    /// TLS bytes for the server.
    pub(crate) out: Vec<u8>,
    /// Plaintext received from the server.
    pub(crate) plaintext: Vec<u8>,
    peer_closed: bool,
}

impl Client {
    pub(crate) fn new(config: &Arc<ClientConfig>) -> Self {
        let name = ServerName::try_from(SERVER_NAME).expect("server name");
        let mut out = Vec::new();
        let conn = config.connect(name).build(&mut out).expect("client");
        Self {
            conn,
            input: VecInput::default(),
            out,
            plaintext: Vec::new(),
            peer_closed: false,
        }
    }

    /// Takes the TLS bytes the client wants to send.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Processes TLS bytes from the server.
    pub(crate) fn receive(&mut self, mut tls: &[u8]) -> Result<(), rustls::Error> {
        loop {
            let n = self
                .input
                .read(&mut tls)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            let state = self
                .conn
                .read_tls(&mut self.input, &mut self.out)
                .handle_all(&mut self.plaintext)?;
            self.peer_closed |= state.peer_has_closed();
            if n == 0 || tls.is_empty() {
                return Ok(());
            }
        }
    }

    /// Queues a close_notify.
    pub(crate) fn close(&mut self) -> Result<(), rustls::Error> {
        self.conn.send_close_notify(&mut self.out)
    }

    /// Whether the server sent close_notify.
    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> Result<(), rustls::Error> {
        self.conn.write(data.into(), &mut self.out)
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}

impl io::Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.out.len());
        buf[..n].copy_from_slice(&self.out[..n]);
        self.out.drain(..n);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}
