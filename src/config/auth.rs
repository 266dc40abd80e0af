//! Whether a configuration authenticates clients, and if not, why.
//!
//! Only `-s req -c on` (add-on: `tls: required`, `client_cert_required:
//! true`) ties every client to the cluster name in a certificate signed by
//! our CA. Every other combination lets anyone who reaches the port join
//! any cluster and influence its vote; the daemon says so once at start
//! (see [`Config::unauthenticated_reason`]).

use super::Config;
use crate::proto::TlsSupported;

impl Config {
    /// `None` when every client must prove its cluster with a certificate,
    /// else the reason it need not, as one sentence for the start-up
    /// warning.
    #[must_use]
    pub fn unauthenticated_reason(&self) -> Option<&'static str> {
        match (self.tls, self.client_cert_required) {
            (TlsSupported::Required, true) => None,
            (TlsSupported::Unsupported, _) => Some(
                "clients are not authenticated: TLS is off (-s off), so a plain-text client \
                 can join any cluster; use -s req -c on",
            ),
            (TlsSupported::Required, false) => Some(
                "clients are not authenticated: no client certificate is required (-c off), \
                 so any TLS client can join any cluster; use -s req -c on",
            ),
            _ => Some(
                "clients are not authenticated: TLS is optional (-s on), so a plain-text \
                 client can join any cluster whatever -c says; use -s req -c on",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_required_tls_with_client_certificates_authenticates() {
        let mut c = Config::default();
        for (tls, cert, why) in [
            (TlsSupported::Required, true, None),
            (TlsSupported::Required, false, Some("(-c off)")),
            (TlsSupported::Supported, true, Some("(-s on)")),
            (TlsSupported::Supported, false, Some("(-s on)")),
            (TlsSupported::Unsupported, true, Some("(-s off)")),
            (TlsSupported::Unsupported, false, Some("(-s off)")),
        ] {
            c.tls = tls;
            c.client_cert_required = cert;
            let reason = c.unauthenticated_reason();
            match why {
                None => assert_eq!(reason, None),
                Some(w) => assert!(reason.is_some_and(|r| r.contains(w)), "{tls:?} {cert}"),
            }
        }
    }
}
