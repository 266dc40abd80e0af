//! Matching a TLS client certificate against the cluster name.
//!
//! Placeholder until the certificate work lands: exact, case-insensitive
//! matching of the SAN dNSNames (or the CN when there is no SAN).

/// The names of a client certificate that can match a cluster name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNames {
    /// subjectAltName dNSName entries; empty when the certificate has none.
    pub dns_names: Vec<String>,
    /// Whether the certificate has a subjectAltName extension at all.
    pub has_san: bool,
    /// Subject common name.
    pub common_name: Option<String>,
}

/// Whether the certificate names match `cluster_name` the way NSS's
/// `CERT_VerifyCertName` does for the reference server.
#[must_use]
pub fn cluster_name_matches(cluster_name: &[u8], names: &PeerNames) -> bool {
    let eq = |n: &String| n.as_bytes().eq_ignore_ascii_case(cluster_name);
    if names.has_san {
        names.dns_names.iter().any(eq)
    } else {
        names.common_name.as_ref().is_some_and(eq)
    }
}
