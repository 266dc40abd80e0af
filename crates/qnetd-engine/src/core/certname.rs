//! Names in a client certificate, and the cluster-name check of the reference.
//!
//! The reference server checks, on the first message after PREINIT that needs it
//! (normally INIT), that the client's certificate was issued for the cluster named
//! in PREINIT. It calls NSS `CERT_VerifyCertName(cert, cluster_name)`
//! (`qdevices/qnetd-client-msg-received.c`), which applies NSS's TLS host-name
//! rules. [`cluster_name_matches`] reimplements those rules on a [`PeerNames`],
//! which the shell extracts from the DER leaf certificate (`qnetd::cert::name`).
//!
//! This module is pure: no I/O, no clock, and no X.509 parser (the shell
//! decodes the certificate); it allocates only to render a name.
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

use std::net::{IpAddr, Ipv6Addr};

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
            let [hi, lo] = [c >> 4, c & 0x0f].map(|n| HEX.get(usize::from(n)).copied());
            out.extend([Some(b'\\'), hi, lo].into_iter().flatten());
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

/// The IPv6 form of an address (IPv4 as IPv4-mapped), for comparison.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;
