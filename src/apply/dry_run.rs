//! `--dry-run`: what an action would change on the target, worked out from
//! read-only lookups and nothing else. A plan remembers what it has already
//! planned (an entry it would create, a path it would delete or move away),
//! so that later events of the same run are weighed against the target as
//! the plan would have left it rather than as it still is. Writes nothing,
//! anywhere: no target call but lookups, no chunk moved.

use super::source::version;
use super::{same_entry, Applier};
use crate::error::Result;
use crate::paths::is_under;
use crate::paths::{join_path, split_path};
use crate::pb::filer::Entry;
use crate::replicate::conflict::{self, size, Verdict};
use crate::replicate::Action;
use std::collections::HashMap;
use std::sync::Mutex;

/// A change a dry run would make on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub op: Op,
    /// The target path the change ends at.
    pub path: String,
    /// For a move: where the entry is now.
    pub from: Option<String>,
    /// The file's size in bytes (0 for folders).
    pub size: u64,
    pub is_directory: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
    Move,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Move => "move",
        }
    }
}

/// The target as this run's plan would have left it: `Some(version)` for an
/// entry the plan writes, `None` for one it deletes or moves away (and all
/// below it). Paths not in it are as the target has them.
#[derive(Debug, Default)]
pub struct Overlay(Mutex<HashMap<String, Option<Seen>>>);

/// What the plan wrote at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    version: u64,
    size: u64,
    is_directory: bool,
}

/// What the target has at a path, as far as the plan knows.
enum Found {
    Absent,
    Planned(Seen),
    Target(Box<Entry>),
}

impl Found {
    fn is_present(&self) -> bool {
        !matches!(self, Found::Absent)
    }

    fn size(&self) -> u64 {
        match self {
            Found::Absent => 0,
            Found::Planned(s) => s.size,
            Found::Target(e) => size(e),
        }
    }
}

impl Overlay {
    /// What the plan says of `path`: `Some(None)` gone (it or a folder
    /// above it was deleted or moved away), `None` not planned.
    fn get(&self, path: &str) -> Option<Option<Seen>> {
        let m = self.0.lock().unwrap();
        if let Some(s) = m.get(path) {
            return Some(*s);
        }
        let mut p = path;
        while p != "/" {
            p = split_path(p).0;
            if let Some(None) = m.get(p) {
                return Some(None);
            }
        }
        None
    }

    fn wrote(&self, path: String, e: &Entry) {
        let seen = Seen {
            version: version(e),
            size: size(e),
            is_directory: e.is_directory,
        };
        self.0.lock().unwrap().insert(path, Some(seen));
    }

    fn removed(&self, path: &str) {
        let mut m = self.0.lock().unwrap();
        m.retain(|k, _| !is_under(k, path));
        m.insert(path.to_string(), None);
    }
}

impl Applier {
    /// What `action` would change on the target, or `None` when the target
    /// already is as the action would leave it (or keeps its own version by
    /// the active-active rules).
    pub(super) fn plan_dry(&self, action: &Action, ts_ns: i64) -> Result<Option<Planned>> {
        let plan = &self.dry_plan;
        match action {
            Action::Upsert {
                dir, entry, base, ..
            } => {
                let path = join_path(dir, &entry.name);
                let found = self.found(dir, &entry.name)?;
                let op = match &found {
                    Found::Absent => Some(Op::Create),
                    Found::Planned(s) if s.version == version(entry) => None,
                    Found::Target(t) if same_entry(entry, t) => None,
                    Found::Target(t)
                        if self.newer_target_wins
                            && conflict::weigh(entry, base.as_deref(), false, t).verdict
                                == Verdict::Target =>
                    {
                        None
                    }
                    _ => Some(Op::Update),
                };
                if op.is_some() {
                    plan.wrote(path.clone(), entry);
                }
                Ok(op.map(|op| Planned {
                    op,
                    path,
                    from: None,
                    size: size(entry),
                    is_directory: entry.is_directory,
                }))
            }
            Action::Delete {
                dir, name, base, ..
            } => {
                let path = join_path(dir, name);
                let found = self.found(dir, name)?;
                let kept = match &found {
                    Found::Target(t) => {
                        self.newer_target_wins
                            && conflict::delete_keeps(t, base.as_deref(), false, ts_ns)
                    }
                    _ => false,
                };
                if !found.is_present() || kept {
                    return Ok(None);
                }
                plan.removed(&path);
                Ok(Some(Planned {
                    op: Op::Delete,
                    size: found.size(),
                    is_directory: match &found {
                        Found::Planned(s) => s.is_directory,
                        Found::Target(t) => t.is_directory,
                        Found::Absent => false,
                    },
                    path,
                    from: None,
                }))
            }
            Action::Rename {
                old_dir,
                old_name,
                entry,
                ..
            } => {
                if !self.found(old_dir, old_name)?.is_present() {
                    // Nothing to move: the new entry is written from the event.
                    return self.plan_dry(&action.new_entry_only(), ts_ns);
                }
                let (from, path) = (join_path(old_dir, old_name), action.target());
                plan.removed(&from);
                plan.wrote(path.clone(), entry);
                Ok(Some(Planned {
                    op: Op::Move,
                    path,
                    from: Some(from),
                    size: size(entry),
                    is_directory: entry.is_directory,
                }))
            }
        }
    }

    /// The target's entry at `dir/name` as the plan would have left it.
    fn found(&self, dir: &str, name: &str) -> Result<Found> {
        Ok(match self.dry_plan.get(&join_path(dir, name)) {
            Some(Some(seen)) => Found::Planned(seen),
            Some(None) => Found::Absent,
            None => match self.lookup_target(dir, name)? {
                Some(e) => Found::Target(Box::new(e)),
                None => Found::Absent,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mtime: i64, size: u64) -> Entry {
        let mut e = Entry::new();
        e.name = name.into();
        let a = e.attributes.mut_or_insert_default();
        a.mtime = mtime;
        a.file_size = size;
        e
    }

    #[test]
    fn the_overlay_is_the_target_as_the_plan_leaves_it() {
        let o = Overlay::default();
        assert_eq!(o.get("/d/f"), None, "unplanned: ask the target");
        o.wrote("/d/f".into(), &file("f", 1, 10));
        let seen = o.get("/d/f").unwrap().unwrap();
        assert_eq!((seen.size, seen.version), (10, version(&file("f", 1, 10))));
        o.removed("/d");
        assert_eq!(o.get("/d/f"), Some(None), "gone with its folder");
        assert_eq!(o.get("/d/g/h"), Some(None), "all below a removed folder");
        assert_eq!(o.get("/dx"), None, "a sibling with a common prefix");
        o.wrote("/d/new".into(), &file("new", 2, 3));
        assert!(o.get("/d/new").unwrap().is_some(), "made again after");
    }
}
