//! The store's error type: every variant names the file or field it is about,
//! and I/O and crypto errors keep their typed source.

use std::path::{Path, PathBuf};
use std::{error, fmt, io};

use super::CA_KEY_FILE;

/// Errors of the certificate store. Every variant names the file or field.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertStoreError {
    /// Other users can write the store directory, or it belongs to another
    /// user.
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// Which permission or owner is wrong.
        reason: String,
    },
    /// The CA certificate does not belong to the CA key.
    CaKeyMismatch {
        /// The CA certificate.
        cert: PathBuf,
        /// The CA key.
        key: PathBuf,
    },
    /// A file-system operation failed.
    Io {
        /// What was being done ("read", "create", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The error from the operating system.
        source: io::Error,
    },
    /// The directory holds no complete store (run `certutil -i`).
    NotInitialized {
        /// The store directory.
        dir: PathBuf,
    },
    /// The directory holds an NSS database from `corosync-qnetd-certutil`
    /// and none of our key files; see the [module docs](super) to migrate it.
    NssDatabase {
        /// The store directory.
        dir: PathBuf,
    },
    /// The CA certificate exists but another file of the store is missing.
    /// The store is not regenerated, because the nodes may trust that CA.
    Damaged {
        /// The missing file.
        missing: PathBuf,
    },
    /// A file holds no usable PEM item of the expected kind.
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was expected ("certificate", "private key").
        what: &'static str,
    },
    /// A private key cannot be used for signing.
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: rcgen::Error,
    },
    /// A certificate of the store cannot be parsed.
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        source: rcgen::Error,
    },
    /// The serial counter is not a decimal number.
    BadSerial {
        /// The counter file.
        path: PathBuf,
    },
    /// The certificate request cannot be used.
    BadRequest {
        /// What is wrong with it.
        reason: &'static str,
        /// The parser's error, if any.
        source: Option<rcgen::Error>,
    },
    /// The cluster name cannot be part of a file name.
    BadClusterName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Generating a key or signing a certificate failed.
    Crypto {
        /// What was being made.
        what: &'static str,
        /// Why.
        source: rcgen::Error,
    },
}

impl fmt::Display for CertStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            Self::UnsafeDirectory { dir, reason } => write!(
                f,
                "refusing to use the certificate store {}: {reason}",
                dir.display()
            ),
            Self::CaKeyMismatch { cert, key } => write!(
                f,
                "the CA certificate {} does not match the CA key {}",
                cert.display(),
                key.display()
            ),
            Self::NotInitialized { dir } => write!(
                f,
                "no certificate store in {} (initialise it with `certutil -i`)",
                dir.display()
            ),
            Self::NssDatabase { dir } => write!(
                f,
                "{} holds an NSS database made by corosync-qnetd-certutil and no {CA_KEY_FILE}; \
                 import its keys with `qnetd certutil --import-nss {}` \
                 (docs/certificates.md) or delete it",
                dir.display(),
                dir.display()
            ),
            Self::Damaged { missing } => write!(
                f,
                "certificate store is damaged: {} is missing but the CA certificate exists",
                missing.display()
            ),
            Self::BadPem { path, what } => {
                write!(f, "{}: no PEM {what} found", path.display())
            }
            Self::BadKey { path, source } => {
                write!(f, "{}: unusable private key: {source}", path.display())
            }
            Self::BadCertificate { path, source } => {
                write!(f, "{}: unusable certificate: {source}", path.display())
            }
            Self::BadSerial { path } => {
                write!(f, "{}: not a decimal serial number", path.display())
            }
            Self::BadRequest { reason, source } => match source {
                Some(e) => write!(f, "certificate request: {reason}: {e}"),
                None => write!(f, "certificate request: {reason}"),
            },
            Self::BadClusterName { name, reason } => {
                write!(f, "cluster name {name:?}: {reason}")
            }
            Self::Crypto { what, source } => write!(f, "cannot make the {what}: {source}"),
        }
    }
}

impl error::Error for CertStoreError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::BadKey { source, .. }
            | Self::BadCertificate { source, .. }
            | Self::Crypto { source, .. } => Some(source),
            Self::BadRequest {
                source: Some(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for results of this module.
pub type Result<T, E = CertStoreError> = std::result::Result<T, E>;

pub(in crate::cert) fn io_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> CertStoreError {
    let path = path.to_path_buf();
    move |source| CertStoreError::Io { op, path, source }
}

pub(in crate::cert) fn crypto_err(
    what: &'static str,
) -> impl FnOnce(rcgen::Error) -> CertStoreError {
    move |source| CertStoreError::Crypto { what, source }
}
