//! Client certificates at least as strict as NSS (issue 11, finding 8),
//! through the real TLS server configuration (`net::tls::server_config`)
//! and a full in-memory handshake: a client certificate issued through an
//! intermediate CA under "QNet CA" (basicConstraints path length 0) is
//! refused, and so is one whose keyUsage lacks digitalSignature. Both pass
//! rustls-webpki alone.

use std::fs;

use qnetd::cert::store::{CA_KEY_FILE, CertStore};
use qnetd::net::tls::{TlsSession, server_config};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::testkit::{Client, client_config};

struct Fixture {
    _tmp: tempfile::TempDir,
    store: CertStore,
    ca_der: CertificateDer<'static>,
    ca_key: KeyPair,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = CertStore::open(tmp.path().join("nssdb"));
    store.init().unwrap();
    let ca_der = store.load_ca_certs().unwrap().remove(0);
    let pem = fs::read_to_string(store.dir().join(CA_KEY_FILE)).unwrap();
    let ca_key = KeyPair::from_pem(&pem).unwrap();
    Fixture {
        _tmp: tmp,
        store,
        ca_der,
        ca_key,
    }
}

fn params(cn: &str, is_ca: IsCa, usages: &[KeyUsagePurpose]) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = is_ca;
    p.key_usages = usages.to_vec();
    p
}

/// Whether the server completes a handshake with a client presenting
/// `chain` (leaf first) and `key`.
fn handshake(fx: &Fixture, chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> bool {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let cfg = server_config(&fx.store, true).unwrap();
    let client_cfg = client_config(
        rustls_ring::DEFAULT_PROVIDER,
        &fx.ca_der,
        Some((chain, key)),
    );
    let mut client = Client::new(&client_cfg);
    let mut server = TlsSession::new(cfg, &[]).unwrap();
    for _ in 0..50 {
        let to_server = client.take_output();
        if !to_server.is_empty() && server.feed(&to_server).is_err() {
            return false;
        }
        let to_client = server.pending_ciphertext().to_vec();
        server.consume_ciphertext(to_client.len());
        if !to_client.is_empty() && client.receive(&to_client).is_err() {
            return false;
        }
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
    }
    // TLS 1.3: the server sees the client certificate after the client
    // considers the handshake done; only the server's verdict counts.
    !server.is_handshaking() && server.peer_names().is_some()
}

fn leaf_under(
    issuer: &Issuer<'_, &KeyPair>,
    usages: &[KeyUsagePurpose],
) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let cert = params("testcluster", IsCa::NoCa, usages)
        .signed_by(&key, issuer)
        .unwrap();
    (cert.der().clone(), key)
}

#[test]
fn leaf_signed_by_the_store_ca_is_accepted() {
    let fx = fixture();
    let ca = Issuer::from_ca_cert_der(&fx.ca_der, &fx.ca_key).unwrap();
    let (leaf, key) = leaf_under(&ca, &[]);
    assert!(handshake(&fx, vec![leaf], &key));
    let (leaf, key) = leaf_under(&ca, &[KeyUsagePurpose::DigitalSignature]);
    assert!(handshake(&fx, vec![leaf], &key));
}

#[test]
fn leaf_issued_through_an_intermediate_is_refused() {
    let fx = fixture();
    let ca = Issuer::from_ca_cert_der(&fx.ca_der, &fx.ca_key).unwrap();
    let inter_key = KeyPair::generate().unwrap();
    let inter_params = params(
        "Intermediate",
        IsCa::Ca(BasicConstraints::Unconstrained),
        &[],
    );
    let inter = inter_params.signed_by(&inter_key, &ca).unwrap();
    let inter_issuer = Issuer::from_params(&inter_params, &inter_key);
    let (leaf, key) = leaf_under(&inter_issuer, &[]);
    assert!(
        !handshake(&fx, vec![leaf, inter.der().clone()], &key),
        "a chain through an intermediate under a path-length-0 CA was accepted"
    );
}

#[test]
fn leaf_without_digital_signature_key_usage_is_refused() {
    let fx = fixture();
    let ca = Issuer::from_ca_cert_der(&fx.ca_der, &fx.ca_key).unwrap();
    let (leaf, key) = leaf_under(&ca, &[KeyUsagePurpose::KeyEncipherment]);
    assert!(
        !handshake(&fx, vec![leaf], &key),
        "a client certificate whose keyUsage lacks digitalSignature was accepted"
    );
}
