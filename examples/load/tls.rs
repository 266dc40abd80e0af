//! The run's PKI and the client side of TLS.
//!
//! One directory holds everything both servers need, so that both get the
//! same `-S nss_db_dir=DIR`:
//!
//! * `ca.pem` / `ca.key`: a CA made for the run (ECDSA P-256, `CN=QNet CA`),
//!   which also signs one client certificate per cluster (`CN=<cluster>`);
//! * `cert9.db`, `key4.db`, `pkcs11.txt`: an NSS database for the reference
//!   server with `QNet CA` (trust `CT,,`) and `QNetd Cert` (the server
//!   certificate `CN=Qnetd Server` with its key), made with `certutil`,
//!   `openssl pkcs12` and `pk12util`;
//! * the PEM files our server reads ([`write_ours`]).
//!
//! Keys are ECDSA P-256 (rcgen with ring cannot make RSA keys; P-256 is also
//! what tls-notes.md recommends for our server).

use std::fmt;
use std::fs;
use std::hash::Hasher;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::{
    HandshakeSignatureValid, ServerIdentity, ServerVerifier, SignatureVerificationInput,
};
use rustls::client::{Resumption, WebPkiServerVerifier, verify_identity_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, Identity, SignatureScheme, VerifiedIdentity};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, Error, RootCertStore};

/// Subject CN of the server certificate, what real clients check.
const SERVER_CN: &str = "Qnetd Server";
/// NSS nickname of the CA (`corosync-qnetd-certutil`).
const NSS_CA_NICK: &str = "QNet CA";
/// NSS nickname of the server certificate (`cert_nickname` default).
const NSS_CERT_NICK: &str = "QNetd Cert";

/// Writes the CA, server certificate and keys where our server looks for
/// them in its `nss_db_dir`. The file names are the only thing that
/// depends on our server's TLS code: adapt them here if they change. These
/// are the names of the certificate store on the `tls` branch
/// (`src/cert/store.rs`): a directory with all four is a complete store, even
/// with the reference's NSS database beside it.
fn write_ours(
    dir: &Path,
    ca_pem: &str,
    ca_key_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), String> {
    let files = [
        // The name `corosync-qnetd-certutil -i` already uses for the CA.
        ("qnetd-cacert.crt", ca_pem),
        ("qnetd-ca.key", ca_key_pem),
        ("qnetd-server.crt", cert_pem),
        ("qnetd-server.key", key_pem),
    ];
    for (name, text) in files {
        write(&dir.join(name), text)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn rc(e: rcgen::Error) -> String {
    format!("rcgen: {e}")
}

/// Long validity, like the reference's 1200 months.
fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
}

/// The CA of the run.
pub(crate) struct Pki {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Loads the CA from `dir`, or creates the whole directory (CA, server
    /// certificate, NSS database, our PEM files) when there is none.
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, String> {
        let (ca_pem_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !ca_pem_path.exists() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            create(dir)?;
        }
        let ca_pem = read(&ca_pem_path)?;
        let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(rc)?;
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| format!("ca.pem: {e:?}"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(rc)?;
        Ok(Self { ca_der, issuer })
    }

    /// A client configuration presenting a fresh certificate `CN=<cluster>`.
    pub(crate) fn client_config(&self, cluster: &str) -> Result<Arc<ClientConfig>, String> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        params.distinguished_name.push(DnType::CommonName, cluster);
        validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer).map_err(rc)?;
        let provider = Arc::new(rustls_ring::DEFAULT_PROVIDER);
        let verifier = Arc::new(QnetdServerVerifier::new(self.ca_der.clone(), &provider)?);
        let identity = Identity::from_cert_chain(vec![cert.der().clone()])
            .map_err(|e| format!("client identity: {e:?}"))?;
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut config = ClientConfig::builder(provider)
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(Arc::new(identity), key_der)
            .map_err(|e| format!("client config: {e}"))?;
        // Every qdevice is its own process: no session resumption, each
        // connection pays the full handshake.
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// The server name to connect with. NSS clients send "Qnetd Server" as SNI,
/// which is not a DNS name rustls can send; an IP address sends no SNI.
pub(crate) fn server_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::from(ip)
}

/// Creates the CA, the server certificate and both servers' files.
fn create(dir: &Path) -> Result<(), String> {
    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "QNet CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let srv_key = KeyPair::generate().map_err(rc)?;
    let mut srv_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    srv_params
        .distinguished_name
        .push(DnType::CommonName, SERVER_CN);
    validity(&mut srv_params);
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).map_err(rc)?;

    let ca_pem = ca_cert.pem();
    write(&dir.join("ca.pem"), &ca_pem)?;
    let ca_key_pem = issuer.key().serialize_pem();
    write(&dir.join("ca.key"), &ca_key_pem)?;
    write_ours(
        dir,
        &ca_pem,
        &ca_key_pem,
        &srv_cert.pem(),
        &srv_key.serialize_pem(),
    )?;
    write(&dir.join("server.pem"), &srv_cert.pem())?;
    write(&dir.join("server.key"), &srv_key.serialize_pem())?;
    make_nss_db(dir)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The reference server's NSS database, made from the PEM files.
fn make_nss_db(dir: &Path) -> Result<(), String> {
    let db = format!("sql:{}", dir.display());
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]))?;
    let ca = dir.join("ca.pem");
    run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", NSS_CA_NICK, "-t", "CT,,", "-a", "-i"])
        .arg(&ca))?;
    let p12 = dir.join("server.p12");
    run(Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-passout",
            "pass:",
            "-name",
            NSS_CERT_NICK,
        ])
        .arg("-in")
        .arg(dir.join("server.pem"))
        .arg("-inkey")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(&p12))?;
    run(Command::new("pk12util")
        .args(["-d", &db, "-W", ""])
        .arg("-i")
        .arg(&p12))
}

/// Verifies the server like the qdevice NSS client: the chain must end in
/// the run's CA and the subject CN must be "Qnetd Server" (NSS host-name
/// matching without SAN; webpki only matches SANs, so the name check is
/// done here).
struct QnetdServerVerifier {
    roots: RootCertStore,
    signatures: Arc<WebPkiServerVerifier>,
}

impl fmt::Debug for QnetdServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QnetdServerVerifier")
            .finish_non_exhaustive()
    }
}

impl QnetdServerVerifier {
    fn new(ca: CertificateDer<'static>, provider: &Arc<CryptoProvider>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        roots.add(ca).map_err(|e| format!("CA certificate: {e}"))?;
        let signatures = WebPkiServerVerifier::builder(Arc::new(roots.clone()), provider)
            .build()
            .map_err(|e| format!("verifier: {e}"))?;
        Ok(Self {
            roots,
            signatures: Arc::new(signatures),
        })
    }
}

fn cn_matches(der: &[u8], want: &str) -> bool {
    x509_parser::parse_x509_certificate(der).is_ok_and(|(_, cert)| {
        cert.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn.eq_ignore_ascii_case(want))
    })
}

impl ServerVerifier for QnetdServerVerifier {
    fn verify_identity<'a>(
        &self,
        identity: &ServerIdentity<'a, '_>,
    ) -> Result<VerifiedIdentity<'a>, Error> {
        let Identity::X509(certs) = identity.identity else {
            return Err(Error::General("server sent no X.509 certificate".into()));
        };
        let parsed = rustls::server::ParsedCertificate::try_from(&certs.end_entity)?;
        verify_identity_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            &certs.intermediates,
            identity.now,
            rustls_ring::ALL_VERIFICATION_ALGS,
        )?;
        if !cn_matches(&certs.end_entity, SERVER_CN) {
            return Err(Error::General(format!(
                "server certificate CN is not {SERVER_CN}"
            )));
        }
        Ok(VerifiedIdentity::assertion(identity.identity.clone()))
    }

    fn verify_tls12_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls12_signature(input)
    }

    fn verify_tls13_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signatures.verify_tls13_signature(input)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }

    fn request_ocsp_response(&self) -> bool {
        false
    }

    fn hash_config(&self, h: &mut dyn Hasher) {
        self.signatures.hash_config(h);
    }
}
