//! Importing the reference's NSS database (`qnetd certutil --import-nss`).
//!
//! A host that ran the Debian `corosync-qnetd` has its CA and server keys in
//! the NSS database `corosync-qnetd-certutil -i` made (nicknames `QNet CA`
//! and `QNetd Cert`). Its nodes trust that CA, so instead of a new store
//! [`import`] exports both keys with the NSS tools such a host has
//! (`pk12util`, from libnss3-tools) to PKCS#12, converts them with
//! `openssl pkcs12`, checks them, and writes our PEM files:
//!
//! ```text
//!  qnetd-server.key, qnetd-server.crt    written first
//!  serial.txt, qnetd-cacert.crt          only if absent (the reference's are reused)
//!  qnetd-ca.key                          written last
//! ```
//!
//! Every file goes through the store's atomic write, under the store's
//! lock. Until `qnetd-ca.key` exists the directory still reads as an NSS
//! database, so an interrupted import is simply run again. The NSS files
//! are only read. The PKCS#12 files live in a private (0700) temporary
//! directory that is removed afterwards.
//!
//! Checks before anything is written: each key matches its certificate, the
//! server certificate is issued by the CA, and an existing
//! `qnetd-cacert.crt` is the same CA (the file the nodes were given).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::{error, fmt};

use rcgen::{KeyPair, PublicKeyData as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::atomic::{sync_dir, write_atomic};
use super::lock::{DirLock, new_file_owner};
use super::store::{
    CA_CERT_FILE, CA_KEY_FILE, CertStore, CertStoreError, NSS_DB_FILES, PRIVATE_MODE, PUBLIC_MODE,
    SERIAL_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, StoreState,
};

/// Nickname of the CA in the reference's database (`CA_NICKNAME`).
pub const NSS_CA_NICKNAME: &str = "QNet CA";
/// Nickname of the server certificate (`SERVER_NICKNAME`).
pub const NSS_SERVER_NICKNAME: &str = "QNetd Cert";
/// The reference's empty database password file (`PWD_FILE`).
const NSS_PWD_FILE: &str = "pwdfile.txt";
/// Passphrase of the transient PKCS#12 files; they are protected by their
/// 0700 directory, not by it.
const P12_PASSPHRASE: &str = "qnetd-import-nss";

/// Why an import failed. Each variant names the file, tool or check.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportNssError {
    /// The directory holds no `cert9.db`/`cert8.db`.
    NotNss {
        /// The directory given.
        dir: PathBuf,
    },
    /// The store already has our keys: nothing to import.
    AlreadyImported {
        /// The store directory.
        dir: PathBuf,
    },
    /// A tool could not be run or failed.
    Tool {
        /// The program (`pk12util`, `openssl`).
        tool: &'static str,
        /// What it was doing.
        what: String,
        /// Its error output or the reason it did not run.
        detail: String,
    },
    /// The exported keys and certificates do not fit together.
    Mismatch {
        /// What does not fit.
        what: String,
    },
    /// Reading or writing the store failed.
    Store(CertStoreError),
}

impl fmt::Display for ImportNssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotNss { dir } => write!(
                f,
                "{} holds no NSS database (cert9.db or cert8.db)",
                dir.display()
            ),
            Self::AlreadyImported { dir } => write!(
                f,
                "{} already holds {CA_KEY_FILE}: the store exists, nothing was imported",
                dir.display()
            ),
            Self::Tool { tool, what, detail } => write!(
                f,
                "{tool} failed to {what}: {detail} (install libnss3-tools and openssl)"
            ),
            Self::Mismatch { what } => write!(f, "not imported: {what}"),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl error::Error for ImportNssError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CertStoreError> for ImportNssError {
    fn from(e: CertStoreError) -> Self {
        Self::Store(e)
    }
}

type Result<T, E = ImportNssError> = std::result::Result<T, E>;

/// A key and its certificate, as exported.
struct Identity {
    key: KeyPair,
    cert: CertificateDer<'static>,
    /// The certificate as `openssl` printed it (PEM, without bag attributes).
    cert_pem: String,
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("qnetd-import-nss-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| CertStoreError::Io {
                op: "create",
                path: path.clone(),
                source: e,
            })?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Imports the CA and server keys of the NSS database in `nss_dir` into
/// `store` (which may be the same directory). See the [module docs](self).
///
/// # Errors
/// [`ImportNssError`]: no NSS database, a store that already has keys, a
/// missing or failing tool, keys that do not fit, a write error.
pub fn import(nss_dir: &Path, store: &CertStore) -> Result<()> {
    if !NSS_DB_FILES.iter().any(|f| nss_dir.join(f).is_file()) {
        return Err(ImportNssError::NotNss {
            dir: nss_dir.to_path_buf(),
        });
    }
    let dir = store.dir();
    let _lock = DirLock::acquire(dir, true)?;
    if matches!(store.state()?, StoreState::Complete) || dir.join(CA_KEY_FILE).exists() {
        return Err(ImportNssError::AlreadyImported {
            dir: dir.to_path_buf(),
        });
    }

    let tmp = TempDir::new()?;
    let ca = export(nss_dir, NSS_CA_NICKNAME, &tmp.0)?;
    let server = export(nss_dir, NSS_SERVER_NICKNAME, &tmp.0)?;
    check(&ca, &server)?;
    let existing_ca = dir.join(CA_CERT_FILE);
    if existing_ca.exists() {
        let pem = fs::read(&existing_ca).map_err(|e| CertStoreError::Io {
            op: "read",
            path: existing_ca.clone(),
            source: e,
        })?;
        let same = CertificateDer::pem_slice_iter(&pem)
            .filter_map(std::result::Result::ok)
            .any(|c| c == ca.cert);
        if !same {
            return Err(ImportNssError::Mismatch {
                what: format!(
                    "{} is not the CA of the NSS database",
                    existing_ca.display()
                ),
            });
        }
    }
    let serial = nss_serial(nss_dir)?;

    let owner = new_file_owner(dir)?;
    write_atomic(
        dir,
        SERVER_KEY_FILE,
        server.key.serialize_pem().as_bytes(),
        PRIVATE_MODE,
        owner,
    )?;
    write_atomic(
        dir,
        SERVER_CERT_FILE,
        server.cert_pem.as_bytes(),
        PUBLIC_MODE,
        owner,
    )?;
    if !dir.join(SERIAL_FILE).exists()
        && let Some(serial) = serial
    {
        write_atomic(
            dir,
            SERIAL_FILE,
            format!("{serial}\n").as_bytes(),
            PUBLIC_MODE,
            owner,
        )?;
    }
    if !existing_ca.exists() {
        write_atomic(
            dir,
            CA_CERT_FILE,
            ca.cert_pem.as_bytes(),
            PUBLIC_MODE,
            owner,
        )?;
    }
    sync_dir(dir)?;
    write_atomic(
        dir,
        CA_KEY_FILE,
        ca.key.serialize_pem().as_bytes(),
        PRIVATE_MODE,
        owner,
    )?;
    sync_dir(dir)?;
    // What the daemon will load.
    store.load_server_identity()?;
    Ok(())
}

/// The reference's serial counter, so that new certificates never reuse a
/// serial number of this CA.
fn nss_serial(nss_dir: &Path) -> Result<Option<u64>> {
    let path = nss_dir.join(SERIAL_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| CertStoreError::BadSerial { path }.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CertStoreError::Io {
            op: "read",
            path,
            source: e,
        }
        .into()),
    }
}

/// Exports `nickname` from the database with `pk12util`, and reads the key
/// and certificate back with `openssl pkcs12`.
fn export(nss_dir: &Path, nickname: &str, tmp: &Path) -> Result<Identity> {
    let p12 = tmp.join("export.p12");
    let pass_file = tmp.join("pass");
    fs::write(&pass_file, P12_PASSPHRASE).map_err(|e| CertStoreError::Io {
        op: "write",
        path: pass_file.clone(),
        source: e,
    })?;
    let _ = fs::remove_file(&p12);
    let mut pk12util = Command::new("pk12util");
    pk12util
        .arg("-o")
        .arg(&p12)
        .args(["-n", nickname, "-d"])
        .arg(nss_dir)
        .arg("-w")
        .arg(&pass_file);
    let db_pwd = nss_dir.join(NSS_PWD_FILE);
    if db_pwd.is_file() {
        pk12util.arg("-k").arg(&db_pwd);
    } else {
        pk12util.args(["-K", ""]);
    }
    let what = format!("export {nickname:?} from {}", nss_dir.display());
    run("pk12util", &what, &mut pk12util)?;

    let mut openssl = Command::new("openssl");
    openssl
        .args(["pkcs12", "-in"])
        .arg(&p12)
        .args(["-passin"])
        .arg(format!("file:{}", pass_file.display()))
        .args(["-nodes", "-clcerts"]);
    let what = format!("read the PKCS#12 export of {nickname:?}");
    let text = run("openssl", &what, &mut openssl)?;
    let _ = fs::remove_file(&p12);

    let missing = || ImportNssError::Mismatch {
        what: format!("no certificate {nickname:?} in the NSS database"),
    };
    let cert_pem = pem_block(&text, "CERTIFICATE").ok_or_else(missing)?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| missing())?;
    let key_pem = pem_block(&text, "PRIVATE KEY").ok_or_else(|| ImportNssError::Mismatch {
        what: format!("no private key for {nickname:?} in the NSS database"),
    })?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| ImportNssError::Mismatch {
        what: format!("the key of {nickname:?} cannot sign: {e}"),
    })?;
    Ok(Identity {
        key,
        cert,
        cert_pem,
    })
}

/// Runs `cmd` and returns its standard output.
fn run(tool: &'static str, what: &str, cmd: &mut Command) -> Result<Vec<u8>> {
    let fail = |detail: String| ImportNssError::Tool {
        tool,
        what: what.to_owned(),
        detail,
    };
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{} ({})", stderr.trim(), out.status)));
    }
    Ok(out.stdout)
}

/// The first `-----BEGIN LABEL-----` block of `text`, as PEM text.
fn pem_block(text: &[u8], label: &str) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text.get(start..)?.find(&end)? + end.len();
    Some(format!("{}\n", text.get(start..stop)?))
}

fn parse<'a>(
    c: &'a CertificateDer<'static>,
    name: &str,
) -> Result<x509_parser::certificate::X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(c)
        .map(|(_, cert)| cert)
        .map_err(|e| ImportNssError::Mismatch {
            what: format!("the {name} certificate cannot be parsed: {e}"),
        })
}

/// Each key belongs to its certificate, and the server certificate names
/// the CA as its issuer (the TLS handshake checks the signature).
fn check(ca: &Identity, server: &Identity) -> Result<()> {
    let ca_cert = parse(&ca.cert, "CA")?;
    let server_cert = parse(&server.cert, "server")?;
    for (name, key, cert) in [
        ("CA", &ca.key, &ca_cert),
        ("server", &server.key, &server_cert),
    ] {
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(ImportNssError::Mismatch {
                what: format!("the {name} key does not belong to the {name} certificate"),
            });
        }
    }
    if server_cert.issuer().as_raw() != ca_cert.subject().as_raw() {
        return Err(ImportNssError::Mismatch {
            what: "the server certificate was not issued by the CA".to_owned(),
        });
    }
    Ok(())
}
