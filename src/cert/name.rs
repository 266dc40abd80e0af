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
    let mut names = PeerNames {
        common_name: cert
            .subject()
            .iter_common_name()
            .last()
            .and_then(decode_attribute),
        ..PeerNames::default()
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertNameError::BadSubjectAltName)?;
    if let Some(san) = san {
        for name in &san.value.general_names {
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
    }
    Ok(names)
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
