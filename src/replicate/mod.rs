//! Event → actions, pure (no I/O): classification of a metadata event,
//! scope and exclude filters, loop prevention by signature, and mapping of
//! source paths onto the target folder. Everything the pipeline does to a
//! target starts as an `Action` planned here; an event whose names are not
//! admitted (`Event::admit`) plans nothing and is refused.

pub mod conflict;
pub mod glob;

use crate::error::Result;
use crate::filer::Event;
use crate::paths::{clean, is_under, join_path};
use crate::pb::filer::Entry;

/// What one direction replicates and how.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Source folder, normalised ("/" or "/x/y" without a trailing slash).
    pub source_path: String,
    /// Target folder the source folder maps onto.
    pub target_path: String,
    /// Source paths (prefixes or globs) whose entries never replicate.
    pub excludes: Vec<String>,
    /// The target filer's signature: events already carrying it are skipped.
    pub target_sig: i32,
    /// With false, deletes are dropped and renames only create (weed's doDeleteFiles=false).
    pub deletes: bool,
    /// Full-mesh mode: forward only events whose first signature (their
    /// origin) is this, the source filer's own signature.
    pub origin_only: Option<i32>,
    /// `--shards`: only the paths of this shard of the folder replicate
    /// (a move out of it deletes, a move into it creates).
    pub shard: Option<crate::shard::Shard>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Make the target entry at `dir/entry.name` equal the source entry,
    /// which the event saw at source path `source`.
    Upsert {
        dir: String,
        entry: Entry,
        signatures: Vec<i32>,
        source: String,
        change: Change,
        /// The version this one replaced at the same path on the source
        /// (its event's old entry), for the three-way rule; none for a
        /// create.
        base: Option<Box<Entry>>,
    },
    Delete {
        dir: String,
        name: String,
        signatures: Vec<i32>,
        /// The entry the source deleted, as it was then (none: unknown).
        base: Option<Box<Entry>>,
    },
    /// Move the target entry; if the old one is missing, upsert the new one.
    Rename {
        old_dir: String,
        old_name: String,
        /// The mtime (ns) of the entry the source moved, as it was then.
        old_mtime_ns: i64,
        new_dir: String,
        entry: Entry,
        signatures: Vec<i32>,
        source: String,
        /// The source path the entry moved from.
        old_source: String,
    },
}

/// What an upsert's event says about the target, before asking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New to this scope (no old version in it): the target most likely
    /// lacks it.
    Created,
    /// A file written anew in place: its chunks share nothing with the
    /// version it replaces, so nothing on the target can be reused.
    Rewritten,
    /// Anything else (attributes, appends, folders, a repair).
    Changed,
    /// A walk listed the target and found nothing at this path: created
    /// exclusively without a lookup first (see `apply::route`).
    Missing,
}

impl Change {
    /// How `new` at the same path differs from `old`.
    pub fn between(old: &Entry, new: &Entry) -> Change {
        let old_ids: std::collections::HashSet<String> = old
            .chunks
            .iter()
            .map(crate::volume::fid::of_chunk)
            .collect();
        let shares = new
            .chunks
            .iter()
            .any(|c| old_ids.contains(&crate::volume::fid::of_chunk(c)));
        if old.is_directory || new.is_directory || shares {
            Change::Changed
        } else {
            Change::Rewritten
        }
    }
}

impl Action {
    /// The source path and version an upsert or rename brings, if any.
    pub fn source_version(&self) -> Option<(&str, &Entry)> {
        match self {
            Action::Upsert { source, entry, .. } | Action::Rename { source, entry, .. } => {
                Some((source, entry))
            }
            Action::Delete { .. } => None,
        }
    }

    /// A rename's new entry as an upsert of its own (written from the
    /// event when there is nothing to move); other actions as they are.
    pub fn new_entry_only(&self) -> Action {
        match self {
            Action::Rename {
                new_dir,
                entry,
                signatures,
                source,
                ..
            } => Action::Upsert {
                dir: new_dir.clone(),
                entry: entry.clone(),
                signatures: signatures.clone(),
                source: source.clone(),
                change: Change::Changed,
                base: None,
            },
            other => other.clone(),
        }
    }

    /// The signatures the action carries (its source's first).
    pub fn signatures(&self) -> &[i32] {
        match self {
            Action::Upsert { signatures, .. }
            | Action::Delete { signatures, .. }
            | Action::Rename { signatures, .. } => signatures,
        }
    }

    /// The target path the action ends at (for logs and the failure ledger).
    pub fn target(&self) -> String {
        match self {
            Action::Upsert { dir, entry, .. }
            | Action::Rename {
                new_dir: dir,
                entry,
                ..
            } => join_path(dir, &entry.name),
            Action::Delete { dir, name, .. } => join_path(dir, name),
        }
    }

    /// The target path the action removes an entry from, if any: a
    /// delete's, or a move's old path.
    pub fn removes(&self) -> Option<String> {
        match self {
            Action::Upsert { .. } => None,
            Action::Delete { dir, name, .. } => Some(join_path(dir, name)),
            Action::Rename {
                old_dir, old_name, ..
            } => Some(join_path(old_dir, old_name)),
        }
    }
}

impl Scope {
    /// A source path replicates when it is strictly below the source folder
    /// (the folder itself is the target's root), in the direction's shard,
    /// and neither it nor an ancestor is excluded. A path that is not clean (`.`, `..`, empty
    /// components) is never in scope: by its letters it may be below the
    /// folder while it names a path outside.
    pub fn contains(&self, path: &str) -> bool {
        if clean(path) != path || path == self.source_path || !is_under(path, &self.source_path) {
            return false;
        }
        self.in_shard(path) && !left_out(&self.excludes, path)
    }

    /// True without shards, or when `path` (below the folder) is this
    /// direction's shard's.
    pub fn in_shard(&self, path: &str) -> bool {
        self.shard
            .is_none_or(|s| s.holds_path(&self.source_path, path))
    }

    /// Maps a source path inside the folder (`contains`) onto the target.
    pub fn map(&self, path: &str) -> String {
        let rel = if self.source_path == "/" {
            path
        } else {
            // Never sliced by length: a path from a peer that is not inside
            // the folder must not panic here (it maps to the root, which no
            // write may touch; see `apply`'s confinement).
            path.strip_prefix(self.source_path.as_str()).unwrap_or("")
        };
        if rel.is_empty() || rel == "/" {
            return self.target_path.clone();
        }
        if self.target_path == "/" {
            rel.to_string()
        } else {
            format!("{}{rel}", self.target_path)
        }
    }

    /// Plans what one event does to the target; refuses (`ErrorKind::Refused`)
    /// an event whose names or folders are not admitted (`Event::admit`).
    pub fn plan(&self, ev: &Event) -> Result<Vec<Action>> {
        ev.admit()?;
        Ok(self.plan_admitted(ev))
    }

    fn plan_admitted(&self, ev: &Event) -> Vec<Action> {
        let n = &ev.notification;
        if self.target_sig != 0 && n.signatures.contains(&self.target_sig) {
            return vec![];
        }
        if let Some(origin) = self.origin_only {
            if n.signatures.first().is_some_and(|s| *s != origin) {
                return vec![];
            }
        }
        let new_dir = if n.new_parent_path.is_empty() {
            ev.directory.as_str()
        } else {
            n.new_parent_path.as_str()
        };
        let old = n
            .old_entry
            .as_ref()
            .map(|e| join_path(&ev.directory, &e.name))
            .filter(|p| self.contains(p));
        let new = n
            .new_entry
            .as_ref()
            .map(|e| join_path(new_dir, &e.name))
            .filter(|p| self.contains(p));
        let signatures = n.signatures.clone();
        let base = || n.old_entry.as_ref().map(|e| Box::new(e.clone()));
        let upsert = |path: &str, change: Change| {
            let target = self.map(path);
            let (dir, _) = crate::paths::split_path(&target);
            Action::Upsert {
                dir: dir.to_string(),
                entry: n.new_entry.as_ref().cloned().unwrap_or_default(),
                signatures: signatures.clone(),
                source: path.to_string(),
                // Only an event that replaced a version in place has one.
                base: if change == Change::Created {
                    None
                } else {
                    base()
                },
                change,
            }
        };
        match (old, new) {
            (None, None) => vec![],
            (None, Some(p)) => vec![upsert(&p, Change::Created)],
            (Some(p), None) => {
                if !self.deletes {
                    return vec![];
                }
                let target = self.map(&p);
                let (dir, name) = crate::paths::split_path(&target);
                vec![Action::Delete {
                    dir: dir.to_string(),
                    name: name.to_string(),
                    signatures,
                    base: base(),
                }]
            }
            (Some(o), Some(p)) if o == p => {
                // Both entries are there: `old` and `new` were made from them.
                let change = match (n.old_entry.as_ref(), n.new_entry.as_ref()) {
                    (Some(old), Some(new)) => Change::between(old, new),
                    _ => Change::Changed,
                };
                vec![upsert(&p, change)]
            }
            (Some(o), Some(p)) => {
                if !self.deletes {
                    return vec![upsert(&p, Change::Created)];
                }
                let old_target = self.map(&o);
                let (old_dir, old_name) = crate::paths::split_path(&old_target);
                let new_target = self.map(&p);
                let (new_dir, _) = crate::paths::split_path(&new_target);
                vec![Action::Rename {
                    old_dir: old_dir.to_string(),
                    old_name: old_name.to_string(),
                    // The version the rename moved, by its mtime.
                    old_mtime_ns: n.old_entry.as_ref().map_or(0, conflict::mtime_ns),
                    new_dir: new_dir.to_string(),
                    entry: n.new_entry.as_ref().cloned().unwrap_or_default(),
                    signatures,
                    source: p,
                    old_source: o,
                }]
            }
        }
    }
}

/// The source paths an event touches (old and new), for ordering.
pub fn event_paths(ev: &Event) -> Vec<String> {
    let n = &ev.notification;
    let mut out = Vec::with_capacity(2);
    if let Some(e) = n.old_entry.as_ref() {
        out.push(join_path(&ev.directory, &e.name));
    }
    if let Some(e) = n.new_entry.as_ref() {
        let dir = if n.new_parent_path.is_empty() {
            &ev.directory
        } else {
            &n.new_parent_path
        };
        let p = join_path(dir, &e.name);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn ancestors_and_self(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

/// Each cluster's own: its filer's metadata log and system data. A filer
/// serves no events for it; a walk must neither copy it to the other
/// cluster nor delete the other cluster's.
const SYSTEM: &str = "/topics/.system";

/// S3 multipart uploads in progress live under /buckets/NAME/.uploads/: not data yet.
/// True when `path` never replicates: it or an ancestor matches one of
/// `excludes` (prefixes or globs), it is an S3 multipart upload in
/// progress (its parts become an object's chunks when it completes), or it
/// is in the filer's own system folder (`SYSTEM`). Matched on the path
/// cleaned (`paths::clean`): `/x/../private` is `/private`, whatever its
/// letters.
pub fn left_out(excludes: &[String], path: &str) -> bool {
    let path = &*clean(path);
    is_multipart_upload(path)
        || is_under(path, SYSTEM)
        || excludes.iter().any(|x| {
            if glob::is_glob(x) {
                ancestors_and_self(path).any(|p| glob::matches(x, p))
            } else {
                is_under(path, x)
            }
        })
}

/// The folder each filer makes for itself above `SYSTEM`, when it first
/// writes its log: a walk looks inside it (topics users made replicate),
/// but never copies or deletes the folder itself: one cluster's filer may
/// simply not have made it yet, and deleting it would take the other's
/// log with it.
pub fn is_scaffold(path: &str) -> bool {
    path == crate::paths::parent(SYSTEM)
}

fn is_multipart_upload(path: &str) -> bool {
    path.starts_with("/buckets/") && path.split('/').nth(3).is_some_and(|s| s == ".uploads")
}

#[cfg(test)]
mod tests;
