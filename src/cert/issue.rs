//! Issuing with rcgen: key generation, certificate parameters as the
//! reference's `corosync-qnetd-certutil` makes them, and reading a node's
//! certificate request.

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::pki_types::CertificateSigningRequestDer;
use time::OffsetDateTime;

use super::store::{CertStoreError, Result, VALIDITY_MONTHS, crypto_err};

/// How far `notBefore` lies before the signing time, to absorb clock skew.
const BACKDATE: time::Duration = time::Duration::HOUR;

pub(super) fn parse_request(request: &[u8]) -> Result<CertificateSigningRequestParams> {
    let bad = |reason| {
        move |e| CertStoreError::BadRequest {
            reason,
            source: Some(e),
        }
    };
    if request.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(request).map_err(|_| CertStoreError::BadRequest {
            reason: "PEM is not ASCII",
            source: None,
        })?;
        CertificateSigningRequestParams::from_pem(text).map_err(bad("not a PKCS#10 request"))
    } else {
        CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(request))
            .map_err(bad("not a PKCS#10 request"))
    }
}

pub(super) fn generate_key(what: &'static str) -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto_err(what))
}

/// Certificate parameters as the reference's: subject CN, serial, validity,
/// and, for the CA, a critical basicConstraints with path length 0.
pub(super) fn params(
    common_name: &str,
    serial: u64,
    now: OffsetDateTime,
    is_ca: bool,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if !common_name.is_empty() {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    }
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    params.not_after = add_months(now, VALIDITY_MONTHS);
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    }
    params
}

/// `t` plus `months`, with the day clamped to the length of the target month
/// (NSS normalises instead; the difference is at most three days).
pub(super) fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let month0 = i64::from(u8::from(t.month())) - 1;
    let total = i64::from(t.year()) * 12 + month0 + i64::from(months);
    let year = i32::try_from(total.div_euclid(12))
        .unwrap_or(9999)
        .min(9999);
    let month = u8::try_from(total.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .unwrap_or(time::Month::December);
    let day = t.day().min(month.length(year));
    time::Date::from_calendar_date(year, month, day)
        .map(|date| t.replace_date(date))
        .unwrap_or(t)
}

#[allow(
    clippy::disallowed_methods,
    reason = "certificate validity starts at the wall-clock time of signing; the store is shell code, not the sans-IO core"
)]
pub(super) fn wall_clock() -> OffsetDateTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
