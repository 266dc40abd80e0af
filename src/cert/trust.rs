//! Checks that the certificate store can be trusted before it is used.
//!
//! * The directory must not be writable by other users: anyone who can
//!   write it can swap the CA certificate the daemon trusts, or the key it
//!   signs with. Refused: world-writable directories, group-writable ones
//!   whose group is neither root's (gid 0) nor ours (the reference's
//!   `certutil -i` makes the store 0770 with the group of
//!   `/etc/corosync/qnetd`, so a migrated store must pass), and directories
//!   owned by anyone but us, root, or the owner of the parent directory
//!   (who can replace the directory anyway; the reference gives the store
//!   the parent's owner when run as root).
//! * The CA certificate must belong to the CA key: a store whose
//!   `qnetd-cacert.crt` was replaced would otherwise trust one CA and sign
//!   with another, and nodes given the CA certificate could not verify
//!   what `certutil -s` signs.
//!
//! The reference does neither (NSS reads whatever the directory holds).

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use rcgen::{KeyPair, PublicKeyData as _};
use rustls::pki_types::CertificateDer;

use super::store::{CertStoreError, Result, io_err};

/// Refuses a store directory that users other than us (and root) can
/// write. A missing directory passes: it will be created with a safe mode.
pub(super) fn check_dir(dir: &Path) -> Result<()> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", dir)(e)),
    };
    let unsafe_dir = |reason: String| CertStoreError::UnsafeDirectory {
        dir: dir.to_path_buf(),
        reason,
    };
    let mode = meta.permissions().mode();
    let group = meta.gid();
    let our_group = rustix::process::getegid().as_raw();
    let group_ok = group == 0 || group == our_group;
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && !group_ok) {
        return Err(unsafe_dir(format!(
            "mode {:04o} with group {group} lets other users write it (use chmod go-w)",
            mode & 0o7777
        )));
    }
    let owner = meta.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner != me && owner != 0 && Some(owner) != parent_owner(dir) {
        return Err(unsafe_dir(format!(
            "it is owned by uid {owner}, not by us (uid {me}) or root"
        )));
    }
    Ok(())
}

fn parent_owner(dir: &Path) -> Option<u32> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::metadata(parent).ok().map(|m| m.uid())
}

/// Refuses a CA certificate whose public key is not the CA key's.
pub(super) fn check_ca_pair(
    ca_cert: &CertificateDer<'_>,
    cert_path: &Path,
    ca_key: &KeyPair,
    key_path: &Path,
) -> Result<()> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(ca_cert).map_err(|_| CertStoreError::BadPem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        })?;
    if cert.tbs_certificate.subject_pki.raw != ca_key.subject_public_key_info().as_slice() {
        return Err(CertStoreError::CaKeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    Ok(())
}
