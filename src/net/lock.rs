//! The lock file (`utils_flock`): one running instance per lock file.
//!
//! The directory is created if missing (mode 0770, errors ignored), the
//! file is opened or created with mode 0640, locked exclusively without
//! waiting, truncated and given our PID. Like the reference, the file is
//! left in place at exit; only the lock goes away with the process.
//!
//! Unlike the reference, the file is opened with `O_NOFOLLOW` and must be
//! a regular file: a symlink planted at the path (e.g. in a shared
//! directory) would otherwise make the daemon truncate its target and
//! write the PID into it. Either is refused with one line naming the path,
//! before anything is written.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::Error;

/// A held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

impl LockFile {
    /// Takes the lock at `path`.
    ///
    /// # Errors
    /// [`Error::AnotherInstance`] if another process holds it, or an I/O
    /// error naming the file.
    pub fn acquire(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o770)
                .create(dir);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .custom_flags(nofollow())
            .open(path)
            .map_err(|e| {
                let what = if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    format!(
                        "open lock file {}: it is a symbolic link, which is never followed",
                        path.display()
                    )
                } else {
                    format!("open lock file {}", path.display())
                };
                Error::io(what, e)
            })?;
        let is_file = file
            .metadata()
            .map_err(|e| Error::io(format!("stat lock file {}", path.display()), e))?
            .is_file();
        if !is_file {
            return Err(Error::io(
                format!("use lock file {}", path.display()),
                std::io::Error::other("not a regular file"),
            ));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                log::debug!("Lock file {} is held by another process", path.display());
                return Err(Error::AnotherInstance {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", path.display()), e));
            }
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io(format!("write lock file {}", path.display()), e))?;
        Ok(Self { _file: file })
    }
}

/// `O_NOFOLLOW` for [`OpenOptionsExt::custom_flags`].
fn nofollow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_the_same_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("qnetd-lock-test-{}", std::process::id()));
        let path = dir.join("sub/qnetd.pid");
        let first = LockFile::acquire(&path).unwrap();
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(content.trim(), std::process::id().to_string());
        assert!(matches!(
            LockFile::acquire(&path),
            Err(Error::AnotherInstance { .. })
        ));
        drop(first);
        assert!(LockFile::acquire(&path).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_or_a_directory_is_refused_and_left_alone() {
        let dir = std::env::temp_dir().join(format!("qnetd-lock-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        let link = dir.join("qnetd.pid");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = LockFile::acquire(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(LockFile::acquire(&sub).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
