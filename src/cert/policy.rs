//! Client-certificate rules that NSS applies and rustls-webpki does not
//! (issue 11, finding 8).
//!
//! webpki verifies the chain from the client's certificate to one of our CA
//! certificates, but it treats a trust anchor as a bare name and key: the
//! CA's own basicConstraints `pathLenConstraint` and keyUsage are ignored,
//! and it does not look at a client certificate's keyUsage. NSS checks all
//! three. [`check_chain`] adds them, and [`Strict`] wraps the rustls client
//! verifier so that a chain failing them is refused during the handshake:
//!
//! * the CA's `pathLenConstraint` bounds the number of intermediate CA
//!   certificates between it and the client certificate (the store's
//!   "QNet CA" has path length 0: no intermediates at all);
//! * a CA or intermediate certificate with a keyUsage extension must allow
//!   keyCertSign;
//! * a client certificate with a keyUsage extension must allow
//!   digitalSignature (TLS client authentication signs the handshake).
//!
//! A certificate without a keyUsage extension may be used for anything, as
//! in NSS; certificates made by `certutil -s` (ours and the reference's)
//! have none.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::crypto::{SignatureScheme, VerifiedIdentity};
use rustls::error::CertificateError;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::{ClientIdentity, ClientVerifier, SignatureVerificationInput};
use rustls::{DistinguishedName, Error};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Longest chain followed from the client certificate to a CA.
const MAX_DEPTH: usize = 8;

/// Why a chain breaks one of the rules of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A certificate of the chain is not DER X.509.
    BadCertificate,
    /// No CA certificate is reached through the presented certificates.
    NoPathToCa,
    /// More intermediate CAs than a pathLenConstraint allows.
    PathLenConstraint,
    /// A CA certificate's keyUsage lacks keyCertSign.
    CaKeyUsage,
    /// The client certificate's keyUsage lacks digitalSignature.
    ClientKeyUsage,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadCertificate => "client certificate chain: not DER X.509",
            Self::NoPathToCa => "client certificate chain does not reach the CA",
            Self::PathLenConstraint => {
                "client certificate chain violates a CA's path length constraint"
            }
            Self::CaKeyUsage => "a CA certificate of the chain may not sign certificates",
            Self::ClientKeyUsage => "client certificate keyUsage lacks digitalSignature",
        })
    }
}

impl std::error::Error for PolicyError {}

fn parse<'a>(der: &'a [u8]) -> Result<X509Certificate<'a>, PolicyError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|_| PolicyError::BadCertificate)
}

/// `(is_ca, path_len_constraint)`.
fn basic_constraints(cert: &X509Certificate<'_>) -> Result<(bool, Option<u32>), PolicyError> {
    match cert.basic_constraints() {
        Ok(Some(bc)) => Ok((bc.value.ca, bc.value.path_len_constraint)),
        Ok(None) => Ok((false, None)),
        Err(_) => Err(PolicyError::BadCertificate),
    }
}

/// Whether the certificate's keyUsage (if any) allows `allowed`.
fn key_usage_allows(
    cert: &X509Certificate<'_>,
    allowed: fn(&x509_parser::extensions::KeyUsage) -> bool,
) -> Result<bool, PolicyError> {
    match cert.key_usage() {
        Ok(Some(ku)) => Ok(allowed(ku.value)),
        Ok(None) => Ok(true),
        Err(_) => Err(PolicyError::BadCertificate),
    }
}

/// Checks the rules of this module on a chain that webpki has verified:
/// `end_entity` and the `intermediates` the client sent, up to one of
/// `cas` (our trust anchors, DER). Issuers are found by subject name.
///
/// # Errors
/// The first rule the chain breaks.
pub fn check_chain(
    end_entity: &[u8],
    intermediates: &[&[u8]],
    cas: &[&[u8]],
) -> Result<(), PolicyError> {
    let leaf = parse(end_entity)?;
    if !key_usage_allows(&leaf, |ku| ku.digital_signature())? {
        return Err(PolicyError::ClientKeyUsage);
    }
    let cas = cas
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let inters = intermediates
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut issuer = leaf.issuer().as_raw();
    // `below`: intermediate CAs seen so far, from the client certificate up.
    for below in 0..MAX_DEPTH {
        let next = cas
            .iter()
            .map(|c| (c, true))
            .chain(inters.iter().map(|c| (c, false)))
            .find(|(c, _)| c.subject().as_raw() == issuer);
        let Some((cert, is_anchor)) = next else {
            return Err(PolicyError::NoPathToCa);
        };
        if !key_usage_allows(cert, |ku| ku.key_cert_sign())? {
            return Err(PolicyError::CaKeyUsage);
        }
        if let (_, Some(max)) = basic_constraints(cert)?
            && u32::try_from(below).unwrap_or(u32::MAX) > max
        {
            return Err(PolicyError::PathLenConstraint);
        }
        if is_anchor {
            return Ok(());
        }
        issuer = cert.issuer().as_raw();
    }
    Err(PolicyError::NoPathToCa)
}

/// A client verifier that runs `inner` (webpki's chain verification), then
/// [`check_chain`] against the CA certificates.
#[derive(Debug)]
pub struct Strict {
    inner: Arc<dyn ClientVerifier>,
    cas: Vec<CertificateDer<'static>>,
    revoked: RevokedSerials,
}

/// Wraps `inner` so that it also enforces the rules of this module with the
/// trust anchors `cas` (the certificates `inner` was built with), and
/// refuses the `revoked` serials first (`qnetd unpair`).
#[must_use]
pub fn strict(
    inner: Arc<dyn ClientVerifier>,
    cas: Vec<CertificateDer<'static>>,
    revoked: RevokedSerials,
) -> Arc<Strict> {
    Arc::new(Strict {
        inner,
        cas,
        revoked,
    })
}

/// Serial numbers of revoked client certificates, shared between the
/// verifier and the loop that revokes (`qnetd unpair`).
#[derive(Clone, Debug, Default)]
pub struct RevokedSerials(Arc<RwLock<BTreeSet<u64>>>);

impl RevokedSerials {
    /// Adds serials.
    pub fn extend(&self, serials: impl IntoIterator<Item = u64>) {
        if let Ok(mut set) = self.0.write() {
            set.extend(serials);
        }
    }

    /// Whether `serial` is revoked.
    #[must_use]
    pub fn contains(&self, serial: u64) -> bool {
        self.0.read().map_or(true, |set| set.contains(&serial))
    }
}

/// The serial number of a DER certificate, if it fits in 64 bits.
#[must_use]
pub fn cert_serial(der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let raw = cert.tbs_certificate.raw_serial();
    let digits = raw.get(raw.iter().position(|&b| b != 0).unwrap_or(raw.len())..)?;
    (digits.len() <= 8).then(|| digits.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

impl ClientVerifier for Strict {
    fn verify_identity<'a>(
        &self,
        identity: &ClientIdentity<'a, '_>,
    ) -> Result<VerifiedIdentity<'a>, Error> {
        if let rustls::crypto::Identity::X509(chain) = identity.identity
            && cert_serial(&chain.end_entity).is_some_and(|s| self.revoked.contains(s))
        {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        let verified = self.inner.verify_identity(identity)?;
        if let rustls::crypto::Identity::X509(chain) = identity.identity {
            let inters: Vec<&[u8]> = chain.intermediates.iter().map(|c| c.as_ref()).collect();
            let cas: Vec<&[u8]> = self.cas.iter().map(|c| c.as_ref()).collect();
            if let Err(e) = check_chain(chain.end_entity.as_ref(), &inters, &cas) {
                log::warn!("Client certificate refused: {e}");
                return Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(input)
    }

    fn verify_tls13_signature(
        &self,
        input: &SignatureVerificationInput<'_>,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(input)
    }

    fn root_hint_subjects(&self) -> Arc<[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn supported_certificate_types(&self) -> &'static [rustls::enums::CertificateType] {
        self.inner.supported_certificate_types()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        der: CertificateDer<'static>,
    }

    fn params(cn: &str, is_ca: IsCa, usages: &[KeyUsagePurpose]) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = is_ca;
        p.key_usages = usages.to_vec();
        p
    }

    fn root(path_len: u8, usages: &[KeyUsagePurpose]) -> Ca {
        let params = params(
            "QNet CA",
            IsCa::Ca(BasicConstraints::Constrained(path_len)),
            usages,
        );
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca { params, key, der }
    }

    fn sub_ca(issuer: &Ca, cn: &str) -> Ca {
        let params = params(cn, IsCa::Ca(BasicConstraints::Unconstrained), &[]);
        let key = KeyPair::generate().unwrap();
        let der = params
            .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
            .unwrap()
            .der()
            .clone();
        Ca { params, key, der }
    }

    fn leaf(issuer: &Ca, usages: &[KeyUsagePurpose]) -> CertificateDer<'static> {
        let params = params("testcluster", IsCa::NoCa, usages);
        let key = KeyPair::generate().unwrap();
        params
            .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
            .unwrap()
            .der()
            .clone()
    }

    /// [`check_chain`] on `end_entity` + `intermediates` under `ca`. (The
    /// handshake through `net::tls::server_config`, with webpki, is in
    /// `tests/cert_policy.rs`.)
    fn verify(
        ca: &Ca,
        end_entity: CertificateDer<'static>,
        intermediates: Vec<CertificateDer<'static>>,
    ) -> Result<(), PolicyError> {
        let inters: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        check_chain(end_entity.as_ref(), &inters, &[ca.der.as_ref()])
    }

    #[test]
    fn leaf_signed_directly_by_the_ca_is_accepted() {
        let ca = root(0, &[]);
        assert_eq!(verify(&ca, leaf(&ca, &[]), vec![]), Ok(()));
        let ds = [KeyUsagePurpose::DigitalSignature];
        assert_eq!(verify(&ca, leaf(&ca, &ds), vec![]), Ok(()));
        let ca = root(0, &[KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]);
        assert_eq!(verify(&ca, leaf(&ca, &[]), vec![]), Ok(()));
    }

    /// webpki ignores the trust anchor's pathLenConstraint: a leaf issued
    /// through an intermediate CA under "QNet CA" (path length 0) passes it.
    #[test]
    fn intermediate_under_path_length_zero_is_refused() {
        let ca = root(0, &[]);
        let inter = sub_ca(&ca, "Intermediate");
        assert_eq!(
            verify(&ca, leaf(&inter, &[]), vec![inter.der.clone()]),
            Err(PolicyError::PathLenConstraint)
        );
        // With path length 1 one intermediate is fine, two are not.
        let ca = root(1, &[]);
        let inter = sub_ca(&ca, "Intermediate");
        assert_eq!(
            verify(&ca, leaf(&inter, &[]), vec![inter.der.clone()]),
            Ok(())
        );
        let inter2 = sub_ca(&inter, "Intermediate 2");
        assert_eq!(
            verify(
                &ca,
                leaf(&inter2, &[]),
                vec![inter2.der.clone(), inter.der.clone()],
            ),
            Err(PolicyError::PathLenConstraint)
        );
    }

    #[test]
    fn client_key_usage_needs_digital_signature() {
        let ca = root(0, &[]);
        assert_eq!(
            verify(&ca, leaf(&ca, &[KeyUsagePurpose::KeyEncipherment]), vec![]),
            Err(PolicyError::ClientKeyUsage)
        );
    }

    #[test]
    fn ca_key_usage_needs_key_cert_sign() {
        let ca = root(0, &[KeyUsagePurpose::DigitalSignature]);
        assert_eq!(
            verify(&ca, leaf(&ca, &[]), vec![]),
            Err(PolicyError::CaKeyUsage)
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            check_chain(b"not a certificate", &[], &[]),
            Err(PolicyError::BadCertificate)
        );
        let ca = root(0, &[]);
        let other = root(0, &[]);
        // Issuer name found nowhere among the CAs given.
        let l = leaf(&ca, &[]);
        let mut renamed = other.params.clone();
        renamed.distinguished_name = rcgen::DistinguishedName::new();
        renamed
            .distinguished_name
            .push(DnType::CommonName, "Other CA");
        let other_der = renamed.self_signed(&other.key).unwrap().der().clone();
        assert_eq!(
            check_chain(l.as_ref(), &[], &[other_der.as_ref()]),
            Err(PolicyError::NoPathToCa)
        );
    }
}
