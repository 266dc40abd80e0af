//! An exclusive `flock(2)` on the store directory, held by writers
//! (`init`, `sign_request`) so that two of them never mix two CAs, and the
//! owner that new files get when running as root.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::Path;

use super::store::{CertStoreError, DIR_MODE, Result, io_err};

/// An exclusive `flock(2)` on the store directory, released on drop.
pub(super) struct DirLock {
    _dir: File,
}

impl DirLock {
    pub(super) fn acquire(dir: &Path, create: bool) -> Result<Self> {
        if create && !dir.exists() {
            let owner = new_file_owner(dir)?;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(io_err("create directory", dir))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .map_err(io_err("change the owner of", dir))?;
            }
        }
        let file = File::open(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                CertStoreError::NotInitialized {
                    dir: dir.to_path_buf(),
                }
            } else {
                io_err("open", dir)(e)
            }
        })?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", dir)(e.into()))?;
        Ok(Self { _dir: file })
    }
}

/// The owner for new files when running as root: that of the directory
/// above the store, as the reference's `chown --reference`.
pub(super) fn new_file_owner(dir: &Path) -> Result<Option<(u32, u32)>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(meta) if (meta.uid(), meta.gid()) != (0, 0) => Ok(Some((meta.uid(), meta.gid()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("inspect", parent)(e)),
    }
}
