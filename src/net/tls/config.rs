//! The rustls server configuration for every TLS client, built from the
//! [certificate store](crate::cert::store).

use std::path::PathBuf;
use std::sync::Arc;
use std::{error, fmt};

use rustls::crypto::Identity;
use rustls::server::WantsServerCert;
use rustls::server::{
    InvalidSniPolicy, NoServerSessionStorage, Tls13Tickets, VerifierBuilderError,
    WebPkiClientVerifier,
};
use rustls::{ConfigBuilder, RootCertStore, ServerConfig};

use crate::cert::store::{CA_CERT_FILE, CertStore, CertStoreError, SERVER_CERT_FILE};

/// Why the server configuration cannot be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The certificate store cannot provide the identity or the CA.
    Store(CertStoreError),
    /// A CA certificate cannot be a trust anchor.
    CaCertificate {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client-certificate verifier cannot be built.
    ClientVerifier(VerifierBuilderError),
    /// The server certificate and key do not make an identity (e.g. they do
    /// not match).
    ServerIdentity {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::CaCertificate { path, source } => {
                write!(f, "{}: unusable CA certificate: {source}", path.display())
            }
            Self::ClientVerifier(e) => write!(f, "client certificate verifier: {e}"),
            Self::ServerIdentity { path, source } => {
                write!(f, "{}: unusable server identity: {source}", path.display())
            }
        }
    }
}

impl error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::CaCertificate { source, .. } | Self::ServerIdentity { source, .. } => {
                Some(source)
            }
            Self::ClientVerifier(e) => Some(e),
        }
    }
}

impl From<CertStoreError> for TlsConfigError {
    fn from(e: CertStoreError) -> Self {
        Self::Store(e)
    }
}

/// Builds the server configuration for all TLS clients.
///
/// - *ring* provider (`rustls_ring::DEFAULT_PROVIDER`): TLS 1.2 and 1.3 with
///   its default suites and key-exchange groups.
/// - An invalid SNI is ignored ([`InvalidSniPolicy::IgnoreAll`]): the NSS client
///   sends "Qnetd Server", which is not a DNS name.
/// - With `client_cert_required` (`-c on` of the reference), a certificate
///   chaining to the store's CA is requested and required; the
///   CertificateRequest names the CA. Otherwise none is requested.
/// - No session resumption.
///
/// Build it once and share it: client certificates signed later by
/// `certutil -s` are accepted without rebuilding, because only the CA is
/// loaded here.
///
/// # Errors
///
/// [`TlsConfigError`] if the store has no usable server identity or CA.
pub fn server_config(
    store: &CertStore,
    client_cert_required: bool,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    server_config_revocable(
        store,
        client_cert_required,
        &crate::cert::policy::RevokedSerials::default(),
    )
}

/// [`server_config`] whose client-certificate verifier also refuses the
/// serial numbers in `revoked` (`qnetd unpair`), which may grow while the
/// configuration is in use.
///
/// # Errors
///
/// As [`server_config`].
pub fn server_config_revocable(
    store: &CertStore,
    client_cert_required: bool,
    revoked: &crate::cert::policy::RevokedSerials,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls_ring::DEFAULT_PROVIDER);
    let identity = store.load_server_identity()?;
    let builder = ServerConfig::builder(Arc::clone(&provider));
    let builder = if client_cert_required {
        let mut roots = RootCertStore::empty();
        for ca in store.load_ca_certs()? {
            roots
                .add(ca)
                .map_err(|source| TlsConfigError::CaCertificate {
                    path: store.dir().join(CA_CERT_FILE),
                    source,
                })?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots), &provider)
            .build()
            .map_err(TlsConfigError::ClientVerifier)?;
        builder.with_client_cert_verifier(crate::cert::policy::strict(
            Arc::new(verifier),
            store.load_ca_certs()?,
            revoked.clone(),
        ))
    } else {
        builder.with_no_client_auth()
    };
    finish(store, builder, identity)
}

/// The configuration of the pairing endpoint (HTTPS on the same port): the
/// same server certificate, no client certificate, ALPN `http/1.1`.
///
/// # Errors
///
/// As [`server_config`].
pub fn pairing_server_config(store: &CertStore) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls_ring::DEFAULT_PROVIDER);
    let identity = store.load_server_identity()?;
    let builder = ServerConfig::builder(provider).with_no_client_auth();
    let mut config = finish(store, builder, identity)?;
    if let Some(c) = Arc::get_mut(&mut config) {
        c.alpn_protocols = vec![b"http/1.1".to_vec().into()];
    }
    Ok(config)
}

fn finish(
    store: &CertStore,
    builder: ConfigBuilder<ServerConfig, WantsServerCert>,
    identity: crate::cert::store::ServerIdentity,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_path = store.dir().join(SERVER_CERT_FILE);
    let identity_err = |source: rustls::Error| TlsConfigError::ServerIdentity {
        path: cert_path.clone(),
        source,
    };
    let chain =
        Identity::from_cert_chain(identity.cert_chain).map_err(|e| identity_err(e.into()))?;
    let mut config = builder
        .with_single_cert(Arc::new(chain), identity.key)
        .map_err(identity_err)?;
    config.invalid_sni_policy = InvalidSniPolicy::IgnoreAll;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = Tls13Tickets { default: 0, max: 0 };
    Ok(Arc::new(config))
}
