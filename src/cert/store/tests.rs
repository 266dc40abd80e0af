//! The store against the reference's files, crashes and concurrent writers.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::super::issue::add_months;
use super::*;
use crate::cert::name::cluster_name_matches;

const REFERENCE_CSR: &[u8] = include_bytes!("../../testdata/reference/qdevice-net-node.crq");
const REFERENCE_CA: &[u8] = include_bytes!("../../testdata/reference/qnetd-cacert.crt");

fn store() -> (tempfile::TempDir, CertStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = CertStore::open(tmp.path().join("nssdb"));
    (tmp, store)
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_reference_like_certificates() {
    let (_tmp, store) = store();
    assert_eq!(store.state().unwrap(), StoreState::Absent);
    assert_eq!(store.init().unwrap(), InitOutcome::Created);
    assert_eq!(store.state().unwrap(), StoreState::Complete);

    let ca = store.load_ca_certs().unwrap();
    assert_eq!(ca.len(), 1);
    let ca = parse(&ca[0]);
    assert_eq!(ca.subject().to_string(), "CN=QNet CA");
    assert_eq!(ca.issuer().to_string(), "CN=QNet CA");
    assert_eq!(ca.raw_serial(), [101]);
    let bc = ca.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let validity = ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp();
    let years = validity / (365 * 24 * 3600);
    assert!((99..=100).contains(&years), "{years} years");

    let id = store.load_server_identity().unwrap();
    assert_eq!(id.cert_chain.len(), 1);
    let server = parse(&id.cert_chain[0]);
    assert_eq!(server.subject().to_string(), "CN=Qnetd Server");
    assert_eq!(server.issuer().to_string(), "CN=QNet CA");
    assert_eq!(server.raw_serial(), [102]);
    assert!(
        server.extensions().is_empty(),
        "server certificate has no extensions"
    );
    server.verify_signature(Some(ca.public_key())).unwrap();
    assert!(matches!(id.key, PrivateKeyDer::Pkcs8(_)));

    assert_eq!(
        fs::read_to_string(store.dir().join(SERIAL_FILE)).unwrap(),
        "102\n"
    );
    assert_eq!(mode(&store.dir().join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&store.dir().join(SERVER_KEY_FILE)), 0o600);
    assert_eq!(mode(&store.ca_cert_path()), 0o644);
    assert_eq!(mode(store.dir()), 0o750);
    // pcs's "initialized" check finds a file it knows, with no key in it.
    let marker = fs::read_to_string(store.dir().join(NSS_MARKER_FILE)).unwrap();
    assert!(marker.lines().all(|l| l.starts_with('#')), "{marker}");
    assert!(!marker.contains("PRIVATE KEY") && !marker.contains("CERTIFICATE"));
}

#[test]
fn init_is_idempotent() {
    let (_tmp, store) = store();
    store.init().unwrap();
    let before = fs::read(store.ca_cert_path()).unwrap();
    assert_eq!(store.init().unwrap(), InitOutcome::AlreadyExists);
    assert_eq!(
        store.ensure_initialized().unwrap(),
        InitOutcome::AlreadyExists
    );
    assert_eq!(fs::read(store.ca_cert_path()).unwrap(), before);
}

#[test]
fn ensure_initialized_creates_a_missing_store() {
    let (_tmp, store) = store();
    assert_eq!(store.ensure_initialized().unwrap(), InitOutcome::Created);
    assert_eq!(store.state().unwrap(), StoreState::Complete);
}

#[test]
fn incomplete_store_is_replaced_but_damaged_store_is_kept() {
    let (_tmp, store) = store();
    store.init().unwrap();
    // An init that died before publishing the CA: start again.
    fs::remove_file(store.ca_cert_path()).unwrap();
    fs::write(store.dir().join(".tmp-1-junk"), b"half").unwrap();
    assert_eq!(store.state().unwrap(), StoreState::Incomplete);
    assert_eq!(store.init().unwrap(), InitOutcome::Created);
    assert!(!store.dir().join(".tmp-1-junk").exists());
    // A published CA whose key is gone: refuse to touch it.
    fs::remove_file(store.dir().join(CA_KEY_FILE)).unwrap();
    assert_eq!(store.state().unwrap(), StoreState::Damaged(CA_KEY_FILE));
    assert!(matches!(store.init(), Err(CertStoreError::Damaged { .. })));
    assert!(matches!(
        store.sign_request(REFERENCE_CSR, "c"),
        Err(CertStoreError::Damaged { .. })
    ));
}

#[test]
fn nss_database_is_never_overwritten() {
    let (_tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    fs::write(store.dir().join("cert9.db"), b"").unwrap();
    fs::write(store.ca_cert_path(), REFERENCE_CA).unwrap();
    assert_eq!(store.state().unwrap(), StoreState::NssDatabase);
    let err = store.init().unwrap_err();
    assert!(matches!(err, CertStoreError::NssDatabase { .. }), "{err}");
    assert_eq!(fs::read(store.ca_cert_path()).unwrap(), REFERENCE_CA);
    assert!(matches!(
        store.sign_request(REFERENCE_CSR, "c"),
        Err(CertStoreError::NssDatabase { .. })
    ));
    // The public CA of the reference still loads, for the client verifier.
    let ca = store.load_ca_certs().unwrap();
    assert_eq!(parse(&ca[0]).subject().to_string(), "CN=QNet CA");
}

#[test]
fn signs_the_reference_node_request() {
    let (_tmp, store) = store();
    store.init().unwrap();
    let path = store.sign_request(REFERENCE_CSR, "testcluster").unwrap();
    assert_eq!(path, store.dir().join("cluster-testcluster.crt"));
    assert_eq!(mode(&path), 0o644);
    let der = fs::read(&path).unwrap();
    let cert = parse(&der);
    assert_eq!(cert.subject().to_string(), "CN=testcluster");
    assert_eq!(cert.issuer().to_string(), "CN=QNet CA");
    assert_eq!(cert.raw_serial(), [103]);
    assert!(cert.extensions().is_empty());
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(REFERENCE_CSR)
            .unwrap();
    assert_eq!(
        cert.public_key().raw,
        csr.certification_request_info.subject_pki.raw,
        "the certificate carries the node's key"
    );
    let ca_der = store.load_ca_certs().unwrap().remove(0);
    cert.verify_signature(Some(parse(&ca_der).public_key()))
        .unwrap();
    assert!(cluster_name_matches(
        b"testcluster",
        &crate::cert::name::from_cert_der(&der).unwrap()
    ));

    // Serials keep counting; PEM requests work too.
    let pem = format!(
        "-----BEGIN NEW CERTIFICATE REQUEST-----\n{}\n-----END NEW CERTIFICATE REQUEST-----\n",
        base64(REFERENCE_CSR)
    );
    let path = store.sign_request(pem.as_bytes(), "other").unwrap();
    assert_eq!(parse(&fs::read(path).unwrap()).raw_serial(), [104]);
    assert_eq!(
        fs::read_to_string(store.dir().join(SERIAL_FILE)).unwrap(),
        "104\n"
    );
}

#[test]
fn rejects_bad_requests_and_names() {
    let (_tmp, store) = store();
    store.init().unwrap();
    for name in ["", "a/b", "/etc/passwd", "a\0"] {
        assert!(
            matches!(
                store.sign_request(REFERENCE_CSR, name),
                Err(CertStoreError::BadClusterName { .. })
            ),
            "{name:?}"
        );
    }
    let mut tampered = REFERENCE_CSR.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = store.sign_request(&tampered, "c").unwrap_err();
    assert!(matches!(err, CertStoreError::BadRequest { .. }), "{err}");
    assert!(
        err.to_string().starts_with("certificate request: "),
        "{err}"
    );
    assert!(matches!(
        store.sign_request(b"garbage", "c"),
        Err(CertStoreError::BadRequest { .. })
    ));
    // Nothing was consumed by the failures.
    assert_eq!(
        fs::read_to_string(store.dir().join(SERIAL_FILE)).unwrap(),
        "102\n"
    );
}

#[test]
fn uninitialised_store_errors_name_the_directory() {
    let (_tmp, store) = store();
    let err = store.sign_request(REFERENCE_CSR, "c").unwrap_err();
    assert!(
        matches!(err, CertStoreError::NotInitialized { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&*store.dir().to_string_lossy()));
    let err = store.load_server_identity().unwrap_err();
    assert!(
        matches!(err, CertStoreError::NotInitialized { .. }),
        "{err}"
    );
    let err = store.load_ca_certs().unwrap_err();
    assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
}

#[test]
fn migrated_reference_store_signs_with_the_rsa_ca() {
    let (_tmp, store) = store();
    fs::create_dir_all(store.dir()).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/reference");
    for name in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE] {
        fs::copy(src.join(name), store.dir().join(name)).unwrap();
    }
    fs::write(store.dir().join("cert9.db"), b"").unwrap();
    fs::write(store.dir().join(SERIAL_FILE), b"103\n").unwrap();
    assert_eq!(store.state().unwrap(), StoreState::Complete);
    assert_eq!(
        store.ensure_initialized().unwrap(),
        InitOutcome::AlreadyExists
    );
    let der = fs::read(store.sign_request(REFERENCE_CSR, "testcluster").unwrap()).unwrap();
    let cert = parse(&der);
    assert_eq!(cert.raw_serial(), [104]);
    let ca_der = store.load_ca_certs().unwrap().remove(0);
    let ca = parse(&ca_der);
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    cert.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn add_months_clamps_the_day() {
    let at = |y, m, d| {
        let month = time::Month::try_from(m).unwrap();
        let date = time::Date::from_calendar_date(y, month, d).unwrap();
        OffsetDateTime::UNIX_EPOCH.replace_date(date)
    };
    assert_eq!(add_months(at(2024, 2, 29), 1200), at(2124, 2, 29));
    assert_eq!(add_months(at(2024, 2, 29), 12), at(2025, 2, 28));
    assert_eq!(add_months(at(2026, 11, 25), 1), at(2026, 12, 25));
    assert_eq!(add_months(at(2026, 11, 25), 2), at(2027, 1, 25));
    assert_eq!(add_months(at(2026, 1, 31), 1), at(2026, 2, 28));
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- crash safety -------------------------------------------------------

const CRASH_CHILD_ENV: &str = "QNETD_CERTSTORE_CRASH_DIR";

/// Not a test on its own: the writer that `crash_never_leaves_a_half_store`
/// runs in a child process (this test binary, re-executed) and SIGKILLs.
#[test]
fn crash_child_writer() {
    let Some(root) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    for i in 0.. {
        let store = CertStore::open(root.join(format!("s{i}")));
        store.init().unwrap();
        for j in 0..3 {
            store.sign_request(REFERENCE_CSR, &format!("c{j}")).unwrap();
        }
    }
}

/// Checks one store directory after a crash: either not initialised (and
/// then `init` recovers it) or complete and fully usable.
fn check_after_crash(store: &CertStore) -> (StoreState, bool) {
    let leftovers = fs::read_dir(store.dir()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(TMP_PREFIX)
    });
    let state = store.state().unwrap();
    match state {
        StoreState::Absent | StoreState::Incomplete => {
            assert_eq!(store.init().unwrap(), InitOutcome::Created);
        }
        StoreState::Complete => {}
        other => panic!("{}: {other:?}", store.dir().display()),
    }
    let ca_der = store.load_ca_certs().unwrap().remove(0);
    let ca = parse(&ca_der);
    let id = store.load_server_identity().unwrap();
    parse(&id.cert_chain[0])
        .verify_signature(Some(ca.public_key()))
        .unwrap();
    let key = KeyPair::try_from(&id.key).unwrap();
    assert_eq!(
        key.public_key_raw(),
        parse(&id.cert_chain[0])
            .public_key()
            .subject_public_key
            .data
            .as_ref()
    );
    let serial = store.read_serial().unwrap();
    for entry in fs::read_dir(store.dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("cluster-") {
            let der = fs::read(store.dir().join(&name)).unwrap();
            let cert = parse(&der);
            cert.verify_signature(Some(ca.public_key())).unwrap();
            let cert_serial = cert.serial.to_u64_digits()[0];
            assert!(
                cert_serial <= serial,
                "{name}: serial {cert_serial} > counter {serial}"
            );
        }
    }
    // And it keeps working.
    store.sign_request(REFERENCE_CSR, "after-crash").unwrap();
    (state, leftovers)
}

#[test]
fn crash_never_leaves_a_half_store() {
    // The test re-executes its own binary; under qemu-user (make
    // test-aarch64/test-armv7) there is no binfmt_misc to run it.
    if std::env::var_os("QNETD_TEST_EMULATED").is_some() {
        eprintln!("skipped under emulation: cannot exec the test binary");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = RandomState::new().build_hasher().finish() | 1;
    let (mut checked, mut incomplete, mut leftovers) = (0, 0, 0);
    for round in 0..16 {
        let root = tmp.path().join(format!("r{round}"));
        fs::create_dir(&root).unwrap();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "cert::store::tests::crash_child_writer",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The kill waits until the writer has begun its first store (its
        // start-up takes long on a loaded machine), then xorshift picks
        // 0..100 ms, so kills land at every stage of init and sign.
        let first = root.join("s0");
        for _ in 0..120_000 {
            if first.exists() {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the writer exited before its first store"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(first.exists(), "the writer never began a store");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 100));
        child.kill().unwrap();
        child.wait().unwrap();
        for entry in fs::read_dir(&root).unwrap() {
            let (state, tmp_files) = check_after_crash(&CertStore::open(entry.unwrap().path()));
            checked += 1;
            incomplete += usize::from(state != StoreState::Complete);
            leftovers += usize::from(tmp_files);
        }
    }
    eprintln!(
        "16 kills: {checked} stores checked, {incomplete} caught before completion, \
         {leftovers} with temporary files left"
    );
    assert!(checked >= 16, "the writer made only {checked} stores");
}

#[test]
fn a_directory_other_users_can_write_is_refused() {
    let (tmp, store) = store();
    store.init().unwrap();
    // Group-writable with our own group (or root's) is the reference's
    // 0770 store: accepted.
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o770)).unwrap();
    assert!(store.ensure_initialized().is_ok());
    let mut modes = vec![0o757, 0o777];
    if rustix::process::geteuid().is_root() {
        // A foreign group that may write.
        std::os::unix::fs::chown(store.dir(), None, Some(65534)).unwrap();
        modes.insert(0, 0o770);
    }
    for mode in modes {
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(mode)).unwrap();
        for e in [
            store.load_server_identity().unwrap_err(),
            store
                .sign_request(REFERENCE_CSR, "testcluster")
                .unwrap_err(),
            store.ensure_initialized().unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(
                matches!(e, CertStoreError::UnsafeDirectory { .. }),
                "{mode:o}: {text}"
            );
            assert!(text.contains("lets other users write it"), "{text}");
        }
    }
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o750)).unwrap();
    assert!(store.ensure_initialized().is_ok());
    // A fresh store in a world-writable directory is not even created.
    let open = tmp.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        CertStore::open(&open).init(),
        Err(CertStoreError::UnsafeDirectory { .. })
    ));
    assert_eq!(fs::read_dir(&open).unwrap().count(), 0);
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        return; // only root can give a directory away
    }
    let (tmp, store) = store();
    store.init().unwrap();
    std::os::unix::fs::chown(store.dir(), Some(65534), None).unwrap();
    let e = store.load_server_identity().unwrap_err().to_string();
    assert!(e.contains("owned by uid 65534"), "{e}");
    // Unless that user owns the parent too (and could replace it anyway).
    std::os::unix::fs::chown(tmp.path(), Some(65534), None).unwrap();
    assert!(store.load_server_identity().is_ok());
}

#[test]
fn a_ca_certificate_that_does_not_match_the_ca_key_is_refused() {
    let (_b, other) = store();
    let (_a, store) = store();
    store.init().unwrap();
    other.init().unwrap();
    fs::copy(other.ca_cert_path(), store.ca_cert_path()).unwrap();
    let e = store.ensure_initialized().unwrap_err();
    assert!(matches!(e, CertStoreError::CaKeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match the CA key"), "{e}");
    assert!(matches!(
        store.sign_request(REFERENCE_CSR, "testcluster"),
        Err(CertStoreError::CaKeyMismatch { .. })
    ));
    assert!(!store.dir().join("cluster-testcluster.crt").exists());
}

#[test]
fn signing_records_the_index_and_unpair_revokes() {
    let (_tmp, store) = store();
    store.init().unwrap();
    assert!(store.issued().unwrap().is_empty());
    let path = store.sign_request(REFERENCE_CSR, "testcluster").unwrap();
    let signed = store
        .sign_and_record(REFERENCE_CSR, "testcluster", "pve2")
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), signed.der);
    let serial = parse(&signed.der).tbs_certificate.serial.clone();
    assert_eq!(serial, signed.serial.into());
    let issued = store.issued().unwrap();
    assert_eq!(
        issued
            .iter()
            .map(|e| (e.serial, e.node.as_str()))
            .collect::<Vec<_>>(),
        vec![(103, "-"), (104, "pve2")]
    );
    assert!(store.has_live_certs("testcluster").unwrap());
    assert!(!store.has_live_certs("other").unwrap());
    assert_eq!(store.revoke_cluster("testcluster").unwrap(), vec![103, 104]);
    assert!(!store.has_live_certs("testcluster").unwrap());
    assert!(store.revoke_cluster("testcluster").unwrap().is_empty());
}
