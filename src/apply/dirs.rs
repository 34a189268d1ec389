//! Target folders as this process has seen them: hints that save lookups
//! (a folder known to exist, one this process made and that holds only what
//! it wrote, one it moved away with all below it, a first version it skipped
//! in a fresh folder). Forgetting them is always safe; they are bounded.

use crate::paths::is_under;
use std::collections::HashSet;

/// Target folders seen by this process: hints that save lookups; forgetting
/// them is always safe. A delete or rename forgets those at and below its
/// paths; past `Dirs::MOST` folders all are forgotten, which bounds both the
/// memory of a long follow and the scan each delete or rename makes.
#[derive(Debug, Default)]
pub struct Dirs {
    /// Known to exist on the target (see `ensure_parent`).
    known: HashSet<String>,
    /// Made on the target by this process: it holds only what this process
    /// wrote into it, unless someone else wrote there meanwhile.
    fresh: HashSet<String>,
    /// Moved away on the target by this process, with all below them; until
    /// something is made below one again.
    moved: HashSet<String>,
    /// Entries of fresh folders whose first version this process skipped
    /// (the source had replaced or removed it since): not on the target
    /// until something is made there.
    absent: HashSet<String>,
    /// Active-active: paths whose newer source versions this process
    /// skipped (the source had replaced them since), so the target's
    /// version there is one the source had seen and moved on from. Not a
    /// hint: a later delete or move of the path decides by it, so it is
    /// never dropped to bound memory, and it is kept with each checkpoint
    /// (`take_behind`, `restore_behind`): a window committed past the
    /// skipped event is not replayed after a restart.
    behind: HashSet<String>,
    /// `behind` changed since the last `take_behind`.
    behind_changed: bool,
}

impl Dirs {
    const MOST: usize = 20_000;

    fn bound(&mut self) {
        let n = self.known.len() + self.fresh.len() + self.moved.len() + self.absent.len();
        if n > Self::MOST {
            *self = Dirs {
                behind: std::mem::take(&mut self.behind),
                behind_changed: self.behind_changed,
                ..Dirs::default()
            };
        }
    }

    pub fn remember_known(&mut self, dir: &str) {
        self.known.insert(dir.to_string());
        self.bound();
    }

    /// `dir` was made by this process: it exists and is fresh.
    pub fn remember_made(&mut self, dir: &str) {
        self.known.insert(dir.to_string());
        self.fresh.insert(dir.to_string());
        self.bound();
    }

    pub fn remember_moved(&mut self, dir: String) {
        self.moved.insert(dir);
        self.bound();
    }

    /// `path` was deleted or moved: folders at and below it are unknown.
    pub fn forget(&mut self, path: &str) {
        self.forget_places(path);
        if !self.behind.is_empty() {
            let before = self.behind.len();
            self.behind.retain(|k| !is_under(k, path));
            self.behind_changed |= self.behind.len() != before;
        }
    }

    /// A folder at `path` moves entry by entry: the folders at and below it
    /// are unknown, but what is known of each entry's version stays with
    /// it until its own move.
    pub fn forget_places(&mut self, path: &str) {
        self.known.retain(|k| !is_under(k, path));
        self.fresh.retain(|k| !is_under(k, path));
        if !self.absent.is_empty() {
            self.absent.retain(|k| !is_under(k, path));
        }
    }

    /// Active-active: the target's version at `path` is one the source had
    /// and replaced (this process skipped the newer ones).
    pub fn mark_behind(&mut self, path: String) {
        self.behind_changed |= self.behind.insert(path);
    }

    pub fn is_behind(&self, path: &str) -> bool {
        self.behind.contains(path)
    }

    /// The target's entry at `path` was written from the source's current
    /// version.
    pub fn caught_up(&mut self, path: &str) {
        if !self.behind.is_empty() {
            self.behind_changed |= self.behind.remove(path);
        }
    }

    /// The paths marked behind, when they changed since the last call.
    pub fn take_behind(&mut self) -> Option<Vec<String>> {
        if !std::mem::take(&mut self.behind_changed) {
            return None;
        }
        let mut paths: Vec<String> = self.behind.iter().cloned().collect();
        paths.sort();
        Some(paths)
    }

    /// The marks a checkpoint kept (see `take_behind`).
    pub fn restore_behind(&mut self, paths: Vec<String>) {
        self.behind.extend(paths);
    }

    /// `path` is below a folder this process moved away (so it is gone).
    pub fn moved_along(&self, path: &str) -> bool {
        !self.moved.is_empty() && self.moved.iter().any(|m| m != path && is_under(path, m))
    }

    /// Something was made at `path`: folders above it exist again, and so
    /// does `path`.
    pub fn is_known(&self, dir: &str) -> bool {
        self.known.contains(dir)
    }

    pub fn is_fresh(&self, dir: &str) -> bool {
        self.fresh.contains(dir)
    }

    pub fn is_absent(&self, path: &str) -> bool {
        self.absent.contains(path)
    }

    /// The first version of `path`, in a fresh folder, was skipped: it is
    /// not on the target until something is made there.
    pub fn skipped_first(&mut self, path: String) {
        self.absent.insert(path);
        self.bound();
    }

    pub fn made(&mut self, path: &str) {
        self.absent.remove(path);
        if !self.moved.is_empty() {
            self.moved.retain(|m| !is_under(path, m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_below_a_moved_folder_are_gone_until_it_is_made_again() {
        let mut d = Dirs::default();
        assert!(!d.moved_along("/x/c"));
        d.moved.insert("/x".into());
        assert!(d.moved_along("/x/c"));
        assert!(d.moved_along("/x/c/deeper"));
        assert!(!d.moved_along("/x"), "the folder itself is its own event");
        assert!(!d.moved_along("/xy/c"));
        d.made("/other/f");
        assert!(d.moved_along("/x/c"));
        // Something made below it (the filer makes /x again): no longer known.
        d.made("/x/new");
        assert!(!d.moved_along("/x/c"));
    }

    #[test]
    fn a_skipped_first_version_is_absent_until_something_is_made_there() {
        let mut d = Dirs::default();
        d.absent.insert("/f/a".into());
        d.absent.insert("/f/b".into());
        d.absent.insert("/g/c".into());
        d.made("/f/a");
        assert!(!d.absent.contains("/f/a"), "made again");
        d.made("/f/b2");
        assert!(d.absent.contains("/f/b"), "only the path itself");
        d.forget("/g");
        assert!(!d.absent.contains("/g/c"), "forgotten below a moved folder");
        assert!(d.absent.contains("/f/b"));
    }

    #[test]
    fn a_folder_moving_entry_by_entry_leaves_its_entries_versions_known() {
        let mut d = Dirs::default();
        d.remember_made("/r/sub");
        d.mark_behind("/r/f".into());
        d.forget_places("/r");
        assert!(!d.is_known("/r/sub") && !d.is_fresh("/r/sub"));
        assert!(d.is_behind("/r/f"), "its own move carries it");
        d.forget("/r");
        assert!(!d.is_behind("/r/f"));
    }

    #[test]
    fn folder_hints_are_forgotten_below_a_path_and_bounded() {
        let mut d = Dirs::default();
        d.remember_made("/a/b");
        d.remember_known("/a/c");
        d.remember_made("/ab");
        d.forget("/a");
        assert!(!d.known.contains("/a/b") && !d.fresh.contains("/a/b"));
        assert!(!d.known.contains("/a/c"));
        assert!(
            d.fresh.contains("/ab"),
            "a sibling with a common prefix stays"
        );
        for i in 0..Dirs::MOST {
            d.remember_known(&format!("/k/{i}"));
        }
        assert!(d.known.len() + d.fresh.len() <= Dirs::MOST);
        assert!(
            !d.fresh.contains("/ab"),
            "all forgotten once past the bound"
        );
    }

    #[test]
    fn marks_behind_outlive_the_bound_and_go_to_the_checkpoint_when_changed() {
        let mut d = Dirs::default();
        assert_eq!(d.take_behind(), None, "nothing changed");
        d.mark_behind("/t/f".into());
        d.mark_behind("/t/e".into());
        assert_eq!(d.take_behind(), Some(vec!["/t/e".into(), "/t/f".into()]));
        assert_eq!(d.take_behind(), None, "taken");
        d.mark_behind("/t/f".into());
        assert_eq!(d.take_behind(), None, "marked already");
        for i in 0..=Dirs::MOST {
            d.remember_known(&format!("/k/{i}"));
        }
        assert!(d.is_behind("/t/f"), "not a hint: never dropped");
        d.caught_up("/t/f");
        assert_eq!(d.take_behind(), Some(vec!["/t/e".into()]));
        d.forget("/t");
        assert_eq!(d.take_behind(), Some(vec![]));
        let mut after_restart = Dirs::default();
        after_restart.restore_behind(vec!["/t/g".into()]);
        assert!(after_restart.is_behind("/t/g"));
        assert_eq!(
            after_restart.take_behind(),
            None,
            "as the checkpoint has it"
        );
    }
}
