//! The names of a client certificate, read from its DER encoding.
//!
//! The cluster-name check itself (NSS's host-name rules, applied by the
//! engine at INIT) is [`qnetd_engine::core::certname`]; this module only
//! extracts the [`PeerNames`] it compares from the leaf certificate, with
//! x509-parser. Pure: no I/O, no clock.

use std::fmt;
use std::net::IpAddr;

use x509_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::AttributeTypeAndValue;

pub use qnetd_engine::core::certname::{PeerNames, cluster_name_matches};

/// Why [`from_cert_der`] could not read a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertNameError {
    /// The bytes are not a DER X.509 certificate.
    BadCertificate,
    /// The subjectAltName extension is present but malformed (or duplicated).
    BadSubjectAltName,
}

impl fmt::Display for CertNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCertificate => f.write_str("peer certificate: not a DER X.509 certificate"),
            Self::BadSubjectAltName => {
                f.write_str("peer certificate: malformed subjectAltName extension")
            }
        }
    }
}

impl std::error::Error for CertNameError {}

/// Longest cluster name `certutil -s -n` accepts, in bytes. Corosync does
/// not document a limit for `totem.cluster_name`; NSS matches the name as a
/// host name (at most 253 characters) and cluster tools use far shorter
/// names (`pvecm` at most 15), so 253 bounds every name that can work.
pub const MAX_CLUSTER_NAME_LEN: usize = 253;

/// Checks that `name` can be a corosync `cluster_name` that a certificate
/// can be issued for: 1 to [`MAX_CLUSTER_NAME_LEN`] bytes of ASCII letters,
/// digits, `-`, `_` and `.`, not starting with `-` or `.` (so it is also a
/// safe file name, `cluster-NAME.crt`, and a plain NSS host name).
///
/// # Errors
/// Why the name is refused, for one line of the error message.
pub fn check_cluster_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_CLUSTER_NAME_LEN {
        return Err("it is longer than 253 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    if name.starts_with(['-', '.']) {
        return Err("it starts with '-' or '.'");
    }
    Ok(())
}

/// Extracts the names of a DER-encoded X.509 certificate.
///
/// # Errors
///
/// [`CertNameError::BadCertificate`] if `der` does not parse as a
/// certificate, [`CertNameError::BadSubjectAltName`] if its subjectAltName
/// extension is malformed.
pub fn from_cert_der(der: &[u8]) -> Result<PeerNames, CertNameError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| CertNameError::BadCertificate)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertNameError::BadSubjectAltName)?;
    Ok(from_parts(
        cert.subject(),
        san.map(|s| s.value.general_names.as_slice()),
    ))
}

/// The names a certificate signed from a PKCS#10 request would carry: the
/// request's subject CN and the subjectAltName it asks for (as
/// `certutil -s` copies the subject; a requested subjectAltName is taken
/// into account so that a request cannot smuggle in a name).
///
/// # Errors
/// [`CertNameError::BadCertificate`] if `der` is not a DER request,
/// [`CertNameError::BadSubjectAltName`] for malformed extensions.
pub fn from_request_der(der: &[u8]) -> Result<PeerNames, CertNameError> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer as _;
    let (_, req) =
        X509CertificationRequest::from_der(der).map_err(|_| CertNameError::BadCertificate)?;
    let mut san = None;
    if let Some(exts) = req.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(s) => san = Some(s),
                ParsedExtension::ParseError { .. } => {
                    return Err(CertNameError::BadSubjectAltName);
                }
                _ => {}
            }
        }
    }
    Ok(from_parts(
        &req.certification_request_info.subject,
        san.map(|s| s.general_names.as_slice()),
    ))
}

/// The names of a subject and an optional subjectAltName list.
fn from_parts(
    subject: &x509_parser::x509::X509Name<'_>,
    san: Option<&[GeneralName<'_>]>,
) -> PeerNames {
    let mut names = PeerNames {
        common_name: subject.iter_common_name().last().and_then(decode_attribute),
        ..PeerNames::default()
    };
    for name in san.unwrap_or_default() {
        match name {
            GeneralName::DNSName(s) => names.dns_names.push((*s).to_owned()),
            GeneralName::IPAddress(raw) => {
                if let Some(ip) = ip_from_bytes(raw) {
                    names.ip_addresses.push(ip);
                }
            }
            GeneralName::Invalid(Tag(2), raw) => {
                // A dNSName that is not valid UTF-8: keep it, so it still
                // hides the CN as it does in NSS.
                names
                    .dns_names
                    .push(String::from_utf8_lossy(raw).into_owned());
            }
            _ => {}
        }
    }
    names
}

/// Decodes a directory-string attribute value the way NSS `CERT_DecodeAVAValue`
/// does: the 8-bit string types as they are (T.61 as Latin-1), BMPString as
/// UTF-16BE and UniversalString as UTF-32BE.
fn decode_attribute(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    let value = attr.attr_value();
    let data: &[u8] = value.data;
    match value.tag() {
        Tag::PrintableString
        | Tag::Utf8String
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(raw) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(raw).ok().map(IpAddr::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn extracts_names_from_certificates() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "testcluster");
        let names = from_cert_der(&cert_with(params.clone())).unwrap();
        assert_eq!(
            names,
            PeerNames {
                common_name: Some("testcluster".to_owned()),
                ..PeerNames::default()
            }
        );

        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("other".try_into().unwrap()),
            rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()),
        ];
        let names = from_cert_der(&cert_with(params)).unwrap();
        assert_eq!(names.dns_names, ["other"]);
        assert_eq!(names.ip_addresses, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(names.common_name.as_deref(), Some("testcluster"));
        assert!(!cluster_name_matches(b"testcluster", &names));
        assert!(cluster_name_matches(b"OTHER", &names));

        assert_eq!(
            from_cert_der(b"\x30\x03\x02\x01\x00"),
            Err(CertNameError::BadCertificate)
        );
    }

    #[test]
    fn last_cn_and_bmp_strings() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "org");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::BmpString("bmpname".try_into().unwrap()),
        );
        let names = from_cert_der(&cert_with(params)).unwrap();
        assert_eq!(names.common_name.as_deref(), Some("bmpname"));
    }
}
