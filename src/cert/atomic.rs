//! Crash-safe writes: a synced temporary file renamed over the final name,
//! then the directory synced. A crash leaves either the old file or the new
//! one, plus at most a temporary file the next writer removes.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::store::{Result, io_err};

/// Prefix of temporary files; leftovers of a crash are removed under the lock.
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// Writes `data` to `dir/name` through a synced temporary file and a rename.
/// The caller syncs the directory.
pub(super) fn write_atomic(
    dir: &Path,
    name: &str,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{name}", std::process::id()));
    let dest = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let result = (|| {
        file.set_permissions(Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(data)?;
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write", &tmp)(e));
    }
    fs::rename(&tmp, &dest).map_err(io_err("rename into place", &dest))
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}
