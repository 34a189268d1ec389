//! The state file, its WAL and its lock are private to the user who runs
//! the sync: they name the clusters, their folders and the paths that
//! failed. What the tool creates for them is 0600, and a folder it creates
//! for them 0700; a file or folder already there keeps its mode (the
//! operator's to choose). SQLite gives the WAL and shared-memory files
//! the mode of the database file, so creating that one first is enough.

use crate::error::{Error, Result};
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates the folder `path` lives in, 0700, when it is missing.
pub fn folder_for(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::state(format!("state directory {}: {e}", dir.display())))
}

/// Options that create a missing file 0600.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// Creates `path` empty and 0600 when it is missing (SQLite takes an empty
/// file for a new database).
pub fn create_file(path: &Path) -> Result<()> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::state(format!("state file {}: {e}", path.display()))),
    }
}
