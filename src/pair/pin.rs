//! The public-key pin of the server certificate, as curl's
//! `--pinnedpubkey sha256//BASE64` (and wget's `--pinnedpubkey`) take it:
//! the standard base64 of the SHA-256 of the certificate's DER
//! SubjectPublicKeyInfo (RFC 7469 style). The node command carries it, so
//! the node authenticates this server before it runs anything it sends.
//!
//! Pure functions: DER in, text out.

use core::fmt;

use ring::digest;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The prefix curl expects before the base64 digest.
pub const PIN_PREFIX: &str = "sha256//";
/// Length of a pin: the prefix and 44 base64 characters.
pub const PIN_LEN: usize = PIN_PREFIX.len() + 44;

/// The certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinError(String);

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read the server certificate: {}", self.0)
    }
}

impl std::error::Error for PinError {}

/// `sha256//BASE64` of the SubjectPublicKeyInfo of the DER certificate
/// `cert_der`.
///
/// # Errors
///
/// [`PinError`] when `cert_der` is not one DER X.509 certificate.
pub fn spki_pin(cert_der: &[u8]) -> Result<String, PinError> {
    let cert = one_certificate(cert_der)?;
    let hash = digest::digest(&digest::SHA256, cert.public_key().raw);
    Ok(format!(
        "{PIN_PREFIX}{}",
        data_encoding::BASE64.encode(hash.as_ref())
    ))
}

/// `der` as exactly one X.509 certificate (nothing after it).
///
/// # Errors
///
/// [`PinError`] naming the problem.
pub fn one_certificate(der: &[u8]) -> Result<X509Certificate<'_>, PinError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(PinError("trailing bytes after the certificate".into())),
        Err(e) => Err(PinError(e.to_string())),
    }
}

/// Whether `pin` has the shape [`spki_pin`] produces (and so is safe in a
/// shell word and a URL).
#[must_use]
pub fn valid_pin(pin: &str) -> bool {
    pin.len() == PIN_LEN
        && pin.strip_prefix(PIN_PREFIX).is_some_and(|b64| {
            data_encoding::BASE64
                .decode(b64.as_bytes())
                .is_ok_and(|d| d.len() == 32)
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::{Command, Stdio};

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    use super::*;

    fn reference_cert() -> (std::path::PathBuf, Vec<u8>) {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/reference/qnetd-server.crt");
        let der = CertificateDer::from_pem_file(&path).expect("pem");
        (path, der.to_vec())
    }

    /// The pin as the curl documentation computes it with openssl.
    fn openssl_pin(pem_path: &Path) -> Option<String> {
        let run = |args: &[&str], input: &[u8]| -> Option<Vec<u8>> {
            use std::io::Write as _;
            let mut child = Command::new("openssl")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .ok()?;
            child.stdin.take()?.write_all(input).ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then_some(out.stdout)
        };
        let pem = std::fs::read(pem_path).ok()?;
        let pubkey = run(&["x509", "-pubkey", "-noout"], &pem)?;
        let der = run(&["pkey", "-pubin", "-outform", "der"], &pubkey)?;
        let hash = run(&["dgst", "-sha256", "-binary"], &der)?;
        let b64 = run(&["base64", "-A"], &hash)?;
        Some(format!("sha256//{}", String::from_utf8(b64).ok()?.trim()))
    }

    fn assert_same_as_openssl(pin: &str, pem_path: &Path) {
        match openssl_pin(pem_path) {
            Some(expected) => assert_eq!(pin, expected),
            None => eprintln!("skipped: openssl is not installed (or failed)"),
        }
    }

    #[test]
    fn pin_matches_openssl() {
        let (path, der) = reference_cert();
        let pin = spki_pin(&der).expect("pin");
        assert!(valid_pin(&pin), "{pin}");
        assert_same_as_openssl(&pin, &path);
    }

    #[test]
    fn pin_of_a_fresh_key_matches_openssl() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["Qnetd Server".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.pem");
        std::fs::write(&path, cert.pem()).expect("write");
        let pin = spki_pin(cert.der()).expect("pin");
        let (_, reference) = reference_cert();
        assert_ne!(pin, spki_pin(&reference).expect("pin"));
        assert_same_as_openssl(&pin, &path);
    }

    #[test]
    fn hostile_input() {
        let (_, der) = reference_cert();
        assert!(spki_pin(&[]).is_err());
        assert!(spki_pin(&der[..der.len() - 1]).is_err());
        let mut longer = der.clone();
        longer.push(0);
        assert!(spki_pin(&longer).is_err());
        assert!(spki_pin(b"-----BEGIN CERTIFICATE-----").is_err());
    }

    #[test]
    fn pin_shape() {
        let (_, der) = reference_cert();
        let pin = spki_pin(&der).expect("pin");
        assert!(valid_pin(&pin));
        for bad in [
            String::new(),
            pin[..pin.len() - 1].to_owned(),
            format!("{pin}="),
            pin.replace("sha256//", "sha512//"),
            format!("sha256//{}'", &pin[8..pin.len() - 1]),
            format!("sha256//{}", "A".repeat(44)),
        ] {
            assert!(!valid_pin(&bad), "{bad:?}");
        }
    }
}
