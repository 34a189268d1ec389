//! The state file's process lock: `<state>.lock`, held with an exclusive
//! `flock` for as long as a sync runs, holding that process's PID. A second
//! process on the same state file (a cron run overlapping the last one) is
//! refused instead of applying the same windows twice at once.

use crate::error::{Error, ErrorKind, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct Lock {
    _file: File,
}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the lock or says who holds it.
pub fn acquire(state: &Path) -> Result<Lock> {
    let path = lock_path(state);
    super::private::folder_for(&path)?;
    let mut file = super::private::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::state(format!("lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            let _ = file.flush();
            Ok(Lock { _file: file })
        }
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Busy,
            format!(
                "state file {} is in use by another filer-sync process{}; nothing was done",
                state.display(),
                holder(&mut file)
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            ),
        )),
        Err(TryLockError::Error(e)) => {
            Err(Error::state(format!("lock file {}: {e}", path.display())))
        }
    }
}

/// The PID of the process running on this state file now, if any.
pub fn running(state: &Path) -> Option<u32> {
    let mut file = File::open(lock_path(state)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(holder(&mut file).unwrap_or(0)),
    }
}

fn holder(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("filer-sync-lock-{}", std::process::id()));
        let state = dir.join("s.db");
        let first = acquire(&state).unwrap();
        assert_eq!(running(&state), Some(std::process::id()));
        let e = acquire(&state).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Busy);
        assert!(
            e.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(first);
        assert_eq!(running(&state), None);
        let _again = acquire(&state).unwrap();
    }
}
