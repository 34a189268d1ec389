//! How much a walk may delete on its target, and what a delete costs. A
//! walk one way deletes what only B holds, and each delete is recursive, so
//! deletes are counted in entries (a folder and everything below it), never
//! in top-level paths. By default a walk that would delete more than half
//! of a non-empty target folder, and more than a small floor, deletes
//! nothing and pauses: a source that reads as empty (a lost store, a folder
//! emptied by mistake) must not empty the replica. `--max-delete N` is the
//! operator's consent to at most N entries. A walk lists what is below a
//! folder only B holds too, so the entries it would delete are its
//! differences only on B, and the folder's size is what it listed of B.
//! `allowed` and `topmost` are pure and table-tested; `count_below` (for
//! a delete the log brings) only lists.

use crate::error::{Error, ErrorKind, Result};
use crate::filer::FilerClient;
use crate::paths::{join_path, parent};
use crate::retry::{retry, Cancel, Policy};
use std::collections::HashSet;

/// Deletes of up to this many entries never need consent.
pub const FLOOR: u64 = 100;

/// Whether deleting `n` entries of the `total` a target folder holds may go
/// ahead: within `max` when the operator set one, else within half the
/// folder or the floor.
pub fn allowed(n: u64, total: u64, max: Option<u64>) -> bool {
    match max {
        Some(max) => n <= max,
        None => n <= FLOOR || n <= total / 2,
    }
}

/// The entries below folder `dir` on `c`, all depths; counting stops once
/// it passes `cap`.
pub fn count_below(c: &FilerClient, dir: &str, cap: u64, cancel: &Cancel) -> Result<u64> {
    let mut n = 0u64;
    let mut folders = vec![dir.to_string()];
    while let Some(d) = folders.pop() {
        let mut sub = Vec::new();
        let listed = retry(&format!("ListEntries {d}"), Policy::SHORT, cancel, || {
            sub.clear();
            let mut k = 0u64;
            c.list(&d, |e| {
                k += 1;
                if e.is_directory {
                    sub.push(join_path(&d, &e.name));
                }
                Ok(())
            })
            .map(|()| k)
        });
        n += match listed {
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            r => r?,
        };
        if n > cap {
            break;
        }
        folders.extend(sub);
    }
    Ok(n)
}

/// The paths to delete so that all of `only_b` (shallowest first, or in
/// name order) goes: those below a folder that goes are deleted with it.
pub fn topmost(only_b: &[String]) -> Vec<&String> {
    let mut gone: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for p in only_b {
        let mut up = parent(p);
        let covered = loop {
            if gone.contains(up) {
                break true;
            }
            if up == "/" || up.is_empty() {
                break false;
            }
            up = parent(up);
        };
        if !covered {
            gone.insert(p);
            out.push(p);
        }
    }
    out
}

/// The error that pauses a walk which would delete `n` of `total` entries
/// under `folder` (`examples`: a few of the paths it would delete).
pub fn refused(
    what: &str,
    (n, total): (u64, u64),
    folder: &str,
    max: Option<u64>,
    examples: &[String],
) -> Error {
    let rule = match max {
        Some(max) => format!("more than --max-delete {max}"),
        None => {
            format!("more than half of the {total} entries B holds there (and more than {FLOOR})")
        }
    };
    Error::new(
        ErrorKind::Paused,
        format!(
            "{what} paused before deleting: it would delete {n} entries under {folder} on B, \
             {rule}; nothing was deleted. They are only on B (e.g. {}). If A is right (check \
             that its folder and its filer store are the ones you mean), rerun with \
             --max-delete {n}",
            examples.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_deletes_need_consent() {
        // (deletes, target size, --max-delete, allowed)
        let table = [
            (0, 0, None, true),
            (FLOOR, FLOOR, None, true),
            (FLOOR + 1, FLOOR + 1, None, false),
            (500, 1000, None, true),
            (501, 1000, None, false),
            (900, 1000, None, false),
            (900, 1000, Some(900), true),
            (901, 1000, Some(900), false),
            (2, 1000, Some(1), false),
            (1, 1000, Some(1), true),
            (1, 1000, Some(0), false),
            (u64::MAX, u64::MAX, None, false),
        ];
        for (n, total, max, ok) in table {
            assert_eq!(allowed(n, total, max), ok, "{n} of {total}, max {max:?}");
        }
    }

    #[test]
    fn a_folder_that_goes_takes_what_is_below_it() {
        let only_b: Vec<String> = ["/a", "/a-b", "/a/x", "/a/x/y", "/b/c", "/b/c/d", "/b/e"]
            .map(String::from)
            .to_vec();
        let kept: Vec<&str> = topmost(&only_b).into_iter().map(|s| s.as_str()).collect();
        assert_eq!(kept, ["/a", "/a-b", "/b/c", "/b/e"]);
        assert!(topmost(&[]).is_empty());
    }

    #[test]
    fn a_refusal_says_how_to_consent() {
        let e = refused("first run", (900, 1000), "/data", None, &["/x".into()]);
        assert_eq!(e.kind(), ErrorKind::Paused);
        let m = e.to_string();
        assert!(m.contains("900 entries under /data") && m.contains("--max-delete 900"));
        assert!(m.contains("nothing was deleted") && m.contains("/x"), "{m}");
    }
}
