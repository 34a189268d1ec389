//! Where the applier may write: every create, update, rename and delete it
//! sends to the target names an entry proven here to lie strictly inside
//! the synced target folder (`--b-path`, or `--a-path` for B→A) and to be
//! made of admitted names only (`paths::admit_dir`, `paths::admit_name`).
//! Names are checked where they enter (events, listings); this is the last
//! word, at the point of writing, whatever the path was built from (a
//! looked-up entry, a stand-in folder, a path a rename left behind). Pure.

use crate::error::{Error, Result};
use crate::paths::{admit_dir, admit_name, is_under, join_path};

/// Ok when the target entry `name` in the folder `dir` lies strictly inside
/// `root`: `dir` is clean and `root` or below it, and `name` is one path
/// component. Else refused (`ErrorKind::Refused`): nothing is written.
pub(super) fn inside(root: &str, dir: &str, name: &str) -> Result<()> {
    let why = if let Err(why) = admit_dir(dir) {
        format!("its folder is not a clean absolute path ({why})")
    } else if let Err(why) = admit_name(name) {
        format!("its name is not one path component ({why})")
    } else if !is_under(dir, root) {
        format!("it is outside the target folder {root}")
    } else {
        return Ok(());
    };
    Err(Error::refused(format!(
        "refused to write {:?} on the target: {why}",
        join_path(dir, name)
    )))
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn only_entries_strictly_inside_the_folder_are_written() {
        let table: &[(&str, &str, &str, bool)] = &[
            ("/dst", "/dst", "a", true),
            ("/dst", "/dst/sub/deeper", "a", true),
            ("/", "/", "a", true),
            ("/", "/x/y", "a", true),
            // The folder itself, its parent, its siblings.
            ("/dst", "/", "dst", false),
            ("/dst", "/", "private", false),
            ("/dst", "/dstx", "a", false),
            ("/dst", "/private", "a", false),
            // Steps and odd names.
            ("/dst", "/dst", "..", false),
            ("/dst", "/dst", ".", false),
            ("/dst", "/dst", "", false),
            ("/dst", "/dst", "a/b", false),
            ("/dst", "/dst", "x\0y", false),
            ("/dst", "/dst/..", "private", false),
            ("/dst", "/dst/sub/../..", "a", false),
            ("/dst", "/dst/./sub", "a", false),
            ("/dst", "/dst/", "a", false),
            ("/", "/", "..", false),
            ("/", "/", "", false),
        ];
        for (root, dir, name, ok) in table {
            let r = inside(root, dir, name);
            assert_eq!(r.is_ok(), *ok, "{root} {dir} {name:?}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.kind(), crate::error::ErrorKind::Refused);
                assert!(!e.is_retryable());
            }
        }
    }
}
