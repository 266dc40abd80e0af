//! The lock file (`utils_flock`): one running instance per lock file.
//!
//! The directory is created if missing (mode 0770, errors ignored), the
//! file is opened or created with mode 0640, locked exclusively without
//! waiting, truncated and given our PID. Like the reference, the file is
//! left in place at exit; only the lock goes away with the process.

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
            .open(path)
            .map_err(|e| Error::io(format!("open lock file {}", path.display()), e))?;
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
}
