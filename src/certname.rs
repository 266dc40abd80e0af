//! Names in a client certificate, and the cluster-name check of the reference.
//!
//! The reference server checks, on the first message after PREINIT that needs it
//! (normally INIT), that the client's certificate was issued for the cluster named
//! in PREINIT. It calls NSS `CERT_VerifyCertName(cert, cluster_name)`
//! (`qdevices/qnetd-client-msg-received.c`), which applies NSS's TLS host-name
//! rules. [`cluster_name_matches`] reimplements those rules on a [`PeerNames`],
//! which [`PeerNames::from_cert_der`] extracts from the DER leaf certificate.
//!
//! This module is pure: no I/O, no clock, no allocation except in
//! [`PeerNames::from_cert_der`].
//!
//! # The rules (NSS `lib/certdb/certdb.c`, `lib/certdb/alg1485.c`)
//!
//! 1. A cluster name that parses as an IP address is compared with the
//!    subjectAltName iPAddress entries (an IPv4 address also matches its
//!    IPv4-mapped IPv6 form). Without such entries the subject CN is compared
//!    as a plain case-insensitive string.
//! 2. Otherwise, if the certificate has a subjectAltName with at least one
//!    dNSName entry, only the dNSName entries count and the CN is ignored.
//!    A subjectAltName without dNSName entries (e.g. only e-mail addresses)
//!    falls back to the CN, as NSS does.
//! 3. A name is compared ASCII-case-insensitively. A `*` that is the last
//!    character of the left-most label of a name with at least three labels is
//!    a wildcard: `*.example.com` and `foo*.example.com` match `foo.example.com`
//!    (the host name must contain a dot, and an `xn--` host name only matches a
//!    pattern that starts with `*`).
//! 4. Before the comparison NSS renders the certificate's name the way it
//!    prints distinguished names: control characters become `\xx`, `"` and `\`
//!    get a backslash, and a dNSName containing one of `,=+<>#;`, two adjacent
//!    spaces or a leading or trailing space is wrapped in double quotes. Such a
//!    name therefore never matches a plain cluster name; this module renders
//!    names the same way, so the outcome is the same.
//!
//! Deliberate differences: a cluster name that is empty or contains a NUL byte
//! never matches (NSS would see a truncated C string), the legacy
//! `NSS_USE_SHEXP_IN_CERT_NAME` shell-expression mode is not supported, and IP
//! addresses are parsed with Rust's strict parser.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use x509_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::AttributeTypeAndValue;

/// The names of a client certificate that take part in the cluster-name check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerNames {
    /// The subjectAltName dNSName entries, in certificate order. Empty when the
    /// certificate has no subjectAltName extension or no dNSName in it.
    pub dns_names: Vec<String>,
    /// The subjectAltName iPAddress entries, in certificate order.
    pub ip_addresses: Vec<IpAddr>,
    /// The last common name (CN) of the subject, decoded to UTF-8, or `None`
    /// when the subject has no CN (or one that cannot be decoded).
    pub common_name: Option<String>,
}

/// Why [`PeerNames::from_cert_der`] could not read a certificate.
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

impl PeerNames {
    /// Extracts the names of a DER-encoded X.509 certificate.
    ///
    /// # Errors
    ///
    /// [`CertNameError::BadCertificate`] if `der` does not parse as a
    /// certificate, [`CertNameError::BadSubjectAltName`] if its subjectAltName
    /// extension is malformed.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, CertNameError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| CertNameError::BadCertificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| CertNameError::BadSubjectAltName)?;
        Ok(Self::from_parts(
            cert.subject(),
            san.map(|s| s.value.general_names.as_slice()),
        ))
    }

    /// The names a certificate signed from a PKCS#10 request would carry:
    /// the request's subject CN and the subjectAltName it asks for (as
    /// `certutil -s` copies the subject; a requested subjectAltName is
    /// taken into account so that a request cannot smuggle in a name).
    ///
    /// # Errors
    /// [`CertNameError::BadCertificate`] if `der` is not a DER request,
    /// [`CertNameError::BadSubjectAltName`] for malformed extensions.
    pub fn from_request_der(der: &[u8]) -> Result<Self, CertNameError> {
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
                    ParsedExtension::UnsupportedExtension { .. } => {}
                    ParsedExtension::ParseError { .. } => {
                        return Err(CertNameError::BadSubjectAltName);
                    }
                    _ => {}
                }
            }
        }
        Ok(Self::from_parts(
            &req.certification_request_info.subject,
            san.map(|s| s.general_names.as_slice()),
        ))
    }

    fn from_parts(
        subject: &x509_parser::x509::X509Name<'_>,
        san: Option<&[GeneralName<'_>]>,
    ) -> Self {
        let mut names = Self {
            common_name: subject.iter_common_name().last().and_then(decode_attribute),
            ..Self::default()
        };
        if let Some(general_names) = san {
            for name in general_names {
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
        names
    }
}

/// Whether a client certificate with `names` is valid for `cluster_name`,
/// by the NSS host-name rules described in the [module docs](self).
///
/// `cluster_name` is the raw CLUSTER_NAME of PREINIT; it need not be UTF-8.
#[must_use]
pub fn cluster_name_matches(cluster_name: &[u8], names: &PeerNames) -> bool {
    if cluster_name.is_empty() || cluster_name.contains(&0) {
        return false;
    }
    let ip = std::str::from_utf8(cluster_name)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok());
    if let Some(ip) = ip {
        if !names.ip_addresses.is_empty() {
            return names.ip_addresses.iter().any(|a| as_v6(*a) == as_v6(ip));
        }
        return names
            .common_name
            .as_deref()
            .is_some_and(|cn| render(cn.as_bytes(), false).eq_ignore_ascii_case(cluster_name));
    }
    if !names.dns_names.is_empty() {
        return names
            .dns_names
            .iter()
            .any(|d| test_host_name(&render(d.as_bytes(), true), cluster_name));
    }
    names
        .common_name
        .as_deref()
        .is_some_and(|cn| test_host_name(&render(cn.as_bytes(), false), cluster_name))
}

/// NSS `cert_TestHostName` (RFC 6125 mode): `pattern` against `host`.
fn test_host_name(pattern: &[u8], host: &[u8]) -> bool {
    let find = |s: &[u8], from: usize, c: u8| {
        s.get(from..)
            .and_then(|t| t.iter().position(|&b| b == c))
            .map(|p| p + from)
    };
    let wildcard = find(pattern, 0, b'*');
    let first_dot = find(pattern, 0, b'.');
    let second_dot = first_dot.and_then(|d| find(pattern, d + 1, b'.'));
    let host_dot = find(host, 0, b'.');
    if let (Some(w), Some(d1), Some(d2), Some(hd)) = (wildcard, first_dot, second_dot, host_dot) {
        let valid_pattern = d2 + 1 < pattern.len()
            && d1 == w + 1
            && d2 - d1 > 1
            && pattern.iter().rposition(|&b| b == b'*') == Some(w);
        let prefix_ok = match (pattern.get(..w), host.get(..w)) {
            (Some(p), Some(h)) => p.eq_ignore_ascii_case(h),
            _ => false,
        };
        let rest_ok = match (pattern.get(d1..), host.get(hd..)) {
            (Some(p), Some(h)) => p.eq_ignore_ascii_case(h),
            _ => false,
        };
        let ace_ok = w == 0
            || !host
                .get(..4)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"xn--"));
        if valid_pattern && prefix_ok && rest_ok && ace_ok {
            return true;
        }
    }
    pattern.eq_ignore_ascii_case(host)
}

/// NSS's rendering of a name before comparison: `escapeAndQuote` in
/// `alg1485.c`, in "minimal escape" mode for the CN and "minimal escape and
/// quote" mode for a dNSName.
fn render(raw: &[u8], quote_if_special: bool) -> Vec<u8> {
    let optional_space = |c: u8| matches!(c, b' ' | b'\r' | b'\n');
    let special = |c: u8| {
        matches!(
            c,
            b',' | b'=' | b'"' | b'\r' | b'\n' | b'+' | b'<' | b'>' | b'#' | b';' | b'\\'
        )
    };
    let hex_escape = |c: u8| c < 0x20 || c == 0x7f;
    let escape = |c: u8| c == b'"' || c == b'\\';

    let mut quote = false;
    if quote_if_special {
        let mut last = 0u8;
        for &c in raw {
            if !hex_escape(c)
                && !escape(c)
                && (special(c) || (optional_space(c) && optional_space(last)))
            {
                quote = true;
            }
            last = c;
        }
        if let (Some(&first), Some(&end)) = (raw.first(), raw.last()) {
            quote |= optional_space(first) || optional_space(end);
        }
    }

    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(raw.len() + 2);
    if quote {
        out.push(b'"');
    }
    for &c in raw {
        if hex_escape(c) {
            out.push(b'\\');
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0x0f)]);
        } else {
            if escape(c) {
                out.push(b'\\');
            }
            out.push(c);
        }
    }
    if quote {
        out.push(b'"');
    }
    out
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

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn(name: &str) -> PeerNames {
        PeerNames {
            common_name: Some(name.to_owned()),
            ..PeerNames::default()
        }
    }

    fn san(dns: &[&str], common_name: Option<&str>) -> PeerNames {
        PeerNames {
            dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
            ip_addresses: Vec::new(),
            common_name: common_name.map(str::to_owned),
        }
    }

    /// (case, cluster name, certificate names, expected)
    #[test]
    fn matching_table() {
        let ip_san = PeerNames {
            dns_names: vec!["10.0.0.1".into()],
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
            common_name: Some("other".into()),
        };
        let cases: &[(&str, &[u8], PeerNames, bool)] = &[
            ("cn exact", b"testcluster", cn("testcluster"), true),
            ("cn other", b"testcluster", cn("other"), false),
            (
                "cn upper, name lower",
                b"testcluster",
                cn("TESTCLUSTER"),
                true,
            ),
            (
                "cn lower, name mixed",
                b"TestCluster",
                cn("testcluster"),
                true,
            ),
            ("cn prefix only", b"testcluster", cn("test"), false),
            ("cn longer", b"test", cn("testcluster"), false),
            ("no cn, no san", b"testcluster", PeerNames::default(), false),
            ("empty name", b"", cn(""), false),
            ("nul in name", b"test\0cluster", cn("test"), false),
            (
                "san wins over cn",
                b"testcluster",
                san(&["testcluster"], Some("other")),
                true,
            ),
            (
                "san hides cn",
                b"testcluster",
                san(&["other"], Some("testcluster")),
                false,
            ),
            ("second san", b"b", san(&["a", "B"], None), true),
            (
                "san case",
                b"TESTCLUSTER",
                san(&["testcluster"], None),
                true,
            ),
            (
                "san with only ip falls back to cn",
                b"testcluster",
                {
                    let mut n = cn("testcluster");
                    n.ip_addresses.push("10.0.0.1".parse().unwrap());
                    n
                },
                true,
            ),
            (
                "wildcard label",
                b"node.example.com",
                cn("*.example.com"),
                true,
            ),
            (
                "wildcard case",
                b"NODE.Example.COM",
                cn("*.example.com"),
                true,
            ),
            (
                "wildcard one label only",
                b"a.b.example.com",
                cn("*.example.com"),
                false,
            ),
            (
                "wildcard needs dot in name",
                b"example",
                cn("*.example.com"),
                false,
            ),
            (
                "wildcard two labels is literal",
                b"a.com",
                cn("*.com"),
                false,
            ),
            ("wildcard literal equal", b"*.com", cn("*.com"), true),
            (
                "wildcard partial label",
                b"foobar.example.com",
                cn("foo*.example.com"),
                true,
            ),
            (
                "wildcard partial mismatch",
                b"bar.example.com",
                cn("foo*.example.com"),
                false,
            ),
            (
                "wildcard not last in label",
                b"foo.example.com",
                cn("f*o.example.com"),
                false,
            ),
            (
                "wildcard idna needs bare star",
                b"xn--a.example.com",
                cn("x*.example.com"),
                false,
            ),
            (
                "wildcard idna bare star",
                b"xn--a.example.com",
                cn("*.example.com"),
                true,
            ),
            (
                "wildcard in san",
                b"c1.corp.lan",
                san(&["*.corp.lan"], Some("c1.corp.lan")),
                true,
            ),
            ("wildcard trailing dot pattern", b"a.b.", cn("*.b."), false),
            (
                "space in cn is fine",
                b"Qnetd Server",
                cn("Qnetd Server"),
                true,
            ),
            (
                "space in san is fine",
                b"Qnetd Server",
                san(&["Qnetd Server"], None),
                true,
            ),
            (
                "san with comma is quoted",
                b"a,b",
                san(&["a,b"], None),
                false,
            ),
            ("cn with comma is not quoted", b"a,b", cn("a,b"), true),
            (
                "san double space is quoted",
                b"a  b",
                san(&["a  b"], None),
                false,
            ),
            (
                "san leading space is quoted",
                b" a",
                san(&[" a"], None),
                false,
            ),
            ("cn quote char is escaped", b"a\"b", cn("a\"b"), false),
            ("cn control char is escaped", b"a\x01b", cn("a\x01b"), false),
            ("cn escaped form matches", b"a\\01b", cn("a\x01b"), true),
            ("non-utf8 name", b"\xff\xfe", cn("x"), false),
            ("ip name vs ip san", b"10.0.0.1", ip_san.clone(), true),
            ("ip name vs other ip san", b"10.0.0.2", ip_san, false),
            (
                "ip name ignores dns san",
                b"10.0.0.1",
                san(&["10.0.0.1"], None),
                false,
            ),
            (
                "ip name falls back to cn",
                b"10.0.0.1",
                cn("10.0.0.1"),
                true,
            ),
            (
                "ip name cn has no wildcard",
                b"10.0.0.1",
                cn("*.0.0.1"),
                false,
            ),
            (
                "ipv4 name vs mapped v6 san",
                b"10.0.0.1",
                PeerNames {
                    ip_addresses: vec!["::ffff:10.0.0.1".parse().unwrap()],
                    ..PeerNames::default()
                },
                true,
            ),
        ];
        for (case, name, names, want) in cases {
            assert_eq!(cluster_name_matches(name, names), *want, "case {case}");
        }
    }

    #[test]
    fn render_matches_nss() {
        let cases: &[(&[u8], bool, &[u8])] = &[
            (b"plain", true, b"plain"),
            (b"a,b", true, b"\"a,b\""),
            (b"a,b", false, b"a,b"),
            (b"a\"b", true, b"a\\\"b"),
            (b"a\\b", false, b"a\\\\b"),
            (b"a\nb", true, b"a\\0ab"),
            (b"a\x7f", false, b"a\\7f"),
            (b" a", true, b"\" a\""),
            (b"a  b", true, b"\"a  b\""),
            (b"a b", true, b"a b"),
            (b"", true, b""),
        ];
        for (raw, quote, want) in cases {
            assert_eq!(
                render(raw, *quote),
                *want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

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
        let names = PeerNames::from_cert_der(&cert_with(params.clone())).unwrap();
        assert_eq!(names, cn("testcluster"));

        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("other".try_into().unwrap()),
            rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()),
        ];
        let names = PeerNames::from_cert_der(&cert_with(params)).unwrap();
        assert_eq!(names.dns_names, ["other"]);
        assert_eq!(names.ip_addresses, ["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(names.common_name.as_deref(), Some("testcluster"));
        assert!(!cluster_name_matches(b"testcluster", &names));
        assert!(cluster_name_matches(b"OTHER", &names));

        assert_eq!(
            PeerNames::from_cert_der(b"\x30\x03\x02\x01\x00"),
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
        let names = PeerNames::from_cert_der(&cert_with(params)).unwrap();
        assert_eq!(names.common_name.as_deref(), Some("bmpname"));
    }
}
