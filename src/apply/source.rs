//! What the source holds now, for events the log replays or that name a
//! version the source has moved on from: `source_replaced` (a folder asked
//! about often in a window is listed once, `SourceView`), what a replayed
//! action still has to do (`replayed`), and the bound after which entries
//! moved along with a folder are trusted again.

use super::{chunk_ids, Applier};
use crate::error::Result;
use crate::paths::{join_path, split_path};
use crate::pb::filer::*;
use crate::replicate::conflict::{self, mtime_ns};
use crate::replicate::{Action, Change};
use crate::retry::{retry, Policy};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// What the source holds in folders where this window asked about many
/// versions (`source_replaced`): such a folder is listed once instead of
/// looked up entry by entry. Valid in the window it was listed in only:
/// every event of a window was logged before any listing made while it is
/// applied, so a listing is at least as new as each of them, as a lookup
/// made then would be. Hints: forgetting them is always safe.
#[derive(Debug, Default)]
pub struct SourceView {
    /// Versions asked about per folder in this window.
    asked: HashMap<String, u32>,
    /// Listed folders: name → `version` of each entry; `None`: too big.
    listed: HashMap<String, Option<HashMap<String, u64>>>,
    /// Target folders levelled with the source's in this window (see
    /// `Applier::level_folder`).
    pub(super) levelled: std::collections::HashSet<String>,
}

impl SourceView {
    /// A folder is listed once this many versions in it were asked about.
    const LIST_AFTER: u32 = 4;
    /// Folders with more entries than this are looked up entry by entry.
    const MOST: u32 = 1000;

    /// A new window: listings made before it may be older than its events.
    pub fn new_window(&mut self) {
        self.asked.clear();
        self.listed.clear();
        self.levelled.clear();
    }

    /// What the listing of `dir` says about `name`: `Some(None)` for not
    /// there, `None` when `dir` is not listed.
    fn known(&self, dir: &str, name: &str) -> Option<Option<u64>> {
        let names = self.listed.get(dir)?.as_ref()?;
        Some(names.get(name).copied())
    }

    /// Counts a question about `dir`; true when it is time to list it.
    fn ask(&mut self, dir: &str) -> bool {
        if self.listed.contains_key(dir) {
            return false;
        }
        let n = self.asked.entry(dir.to_string()).or_default();
        *n += 1;
        *n == Self::LIST_AFTER
    }
}

/// A version of an entry as `source_replaced` compares them: mtime, chunk
/// ids and the content fingerprint, hashed.
pub(super) fn version(e: &Entry) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    mtime_ns(e).hash(&mut h);
    chunk_ids(e).hash(&mut h);
    conflict::fingerprint(e).hash(&mut h);
    h.finish()
}

/// True when the target's version `t` is one the source had when it wrote
/// `entry` over `base`: `base` itself, or `entry` (applied here before the
/// source moved on). Only such a version is behind. A version the target's
/// own users wrote is a contender, however the skipped `entry` would have
/// fared against it: the source's next version meets it in
/// `conflict::resolve`, as the opposite direction weighs the two. Marking
/// it behind because the skipped version would have won let each cluster
/// take the other's version at one path (two writes on either side in the
/// same second, the earlier ones skipped as replayed: the sharded race's
/// seed 489570232).
fn replaces(entry: &Entry, base: Option<&Entry>, t: &Entry) -> bool {
    base.is_some_and(|b| conflict::same_version(b, t)) || conflict::same_version(entry, t)
}

/// What `Applier::replayed` makes of a replayed action.
#[derive(Debug)]
pub enum Replayed {
    /// Apply it as planned.
    AsPlanned,
    /// Skip it: the source has moved on from the version it brings.
    Moot,
    /// A rename whose old entry on the target is not the one the source
    /// moved: write the new entry alone (this upsert).
    NewOnly(Box<Action>),
}

impl Applier {
    /// The pipeline skipped a replayed version the source has moved on from
    /// (see `source_replaced`), leaving the target's copy behind: the event
    /// that brings its successor may be one a folder's move logs for the
    /// entries below it, so those are applied even where this process moved
    /// the folder, until `trust_moves_after` names a time past the successor.
    pub fn skipped_replayed(&self) {
        self.trust_moves_after(i64::MAX);
    }

    /// Entries moved along with a folder are the source's again for events
    /// after `ts_ns` (an earlier run's skips, from the state file; or this
    /// run's, once the window that made them is done).
    pub fn trust_moves_after(&self, ts_ns: i64) {
        self.moves_trusted_after_ns.store(ts_ns, Ordering::Relaxed);
    }

    /// The target paths marked behind (see `Dirs::behind`) when they
    /// changed since the last call: what the next checkpoint keeps.
    pub fn take_behind(&self) -> Option<Vec<String>> {
        self.dirs.lock().unwrap().take_behind()
    }

    /// Marks behind that the last checkpoint kept (a new process).
    pub fn restore_behind(&self, paths: Vec<String>) {
        self.dirs.lock().unwrap().restore_behind(paths);
    }

    /// The version `action` carries was skipped (the source had replaced or
    /// removed it since). The first version of an entry in a fresh folder is
    /// thus not on the target, and one-way, nobody else puts it there.
    pub fn skipped_version(&self, action: &Action) {
        if let Action::Upsert {
            dir,
            entry,
            change: Change::Created,
            ..
        } = action
        {
            let mut dirs = self.dirs.lock().unwrap();
            if !entry.is_directory && !self.newer_target_wins && dirs.is_fresh(dir) {
                dirs.skipped_first(join_path(dir, &entry.name));
            }
        }
        self.mark_if_behind(action);
    }

    /// Active-active, the version `action` brings was skipped (the source
    /// had replaced it since). Where it would have replaced the target's
    /// version — the target still holds the version it replaced (its
    /// base), or one that loses to it as a conflict would be settled, or
    /// the same holds of the version the target's users removed lately —
    /// the target's version is one the source is past: a later delete of
    /// the path takes it (see `conflict::delete_keeps`), a later move
    /// carries it, and a later version follows. Skipping must decide as
    /// applying would have, or the other cluster, which sees only the
    /// outcome, decides otherwise.
    pub fn mark_if_behind(&self, action: &Action) {
        let Action::Upsert {
            dir, entry, base, ..
        } = action
        else {
            return;
        };
        if !self.newer_target_wins {
            return;
        }
        let path = join_path(dir, &entry.name);
        let held = match self.lookup_target(dir, &entry.name) {
            Ok(Some(t)) => Some(t),
            Ok(None) => {
                let removed = self.removals().and_then(|r| r.get(&path));
                if removed.is_none() {
                    // The target's removal may not have been read yet: the
                    // skip is weighed when a version meets it (`skipped_over`).
                    let mut skipped = self.skipped_unseen.lock().unwrap();
                    if skipped.len() >= 10_000 {
                        skipped.clear();
                    }
                    skipped.insert(path.clone(), (entry.clone(), base.clone()));
                }
                removed
            }
            Err(_) => None,
        };
        if held.is_some_and(|t| replaces(entry, base.as_deref(), &t)) {
            log::debug!("{path}: the target holds a version the source is past");
            self.dirs.lock().unwrap().mark_behind(path);
        }
    }

    /// Active-active: a version skipped at `path` while the target had
    /// nothing there would have replaced `removed`, the version the
    /// target's users removed (as `mark_if_behind` weighs it).
    pub(super) fn skipped_over(&self, path: &str, removed: &Entry) -> bool {
        let skipped = self.skipped_unseen.lock().unwrap().remove(path);
        skipped.is_some_and(|(e, base)| replaces(&e, base.as_deref(), removed))
    }

    /// A new window begins: what was learnt of the source for the last one
    /// may be older than the events of this one.
    pub fn new_window(&self) {
        self.source_view.lock().unwrap().new_window();
    }

    /// True while a skip of a replayed version awaits its time bound.
    pub fn skip_pending(&self) -> bool {
        self.moves_trusted_after_ns.load(Ordering::Relaxed) == i64::MAX
    }

    /// What to apply of `action`, replayed: a process that stopped before
    /// its commit may have applied it and what followed, so the target may
    /// be ahead of it. An upsert or a rename whose new version the source
    /// has replaced, moved or removed since is moot (the later events bring
    /// what came next): applied again, it would bring back the entry and
    /// the folders above it (stand-ins, their source folders having moved
    /// on), and the replayed move of such a folder would then find its
    /// destination taken (found by `chaos_kill_9_at_random_moments`). A
    /// rename moves the target's old entry only while that is the version
    /// the source moved, or an older one (this is its first application);
    /// a newer one was made there afterwards (a log rotated and written
    /// again) and stays, and the new entry is written from the event.
    pub fn replayed(&self, action: &Action) -> Result<Replayed> {
        self.replaying.store(true, Ordering::SeqCst);
        let moot = |source: &str, entry: &Entry| self.source_replaced(source, entry);
        match action {
            Action::Upsert { source, entry, .. } => Ok(if moot(source, entry)? {
                Replayed::Moot
            } else {
                Replayed::AsPlanned
            }),
            Action::Rename {
                old_dir,
                old_name,
                old_mtime_ns,
                entry,
                source,
                old_source,
                signatures,
                ..
            } => {
                // Applied or skipped, it may leave its old folder empty.
                self.vacating(old_dir, crate::paths::parent(old_source), signatures);
                // (An event without the old entry's mtime moves what is
                // there, as before.)
                let old = self.lookup_target(old_dir, old_name)?;
                let moved = |t: &Entry| *old_mtime_ns == 0 || mtime_ns(t) <= *old_mtime_ns;
                if old.as_ref().is_some_and(moved) {
                    return Ok(Replayed::AsPlanned);
                }
                if old.is_none() && !entry.is_directory {
                    self.carry_behind(&join_path(old_dir, old_name), &action.target(), moved)?;
                }
                if moot(source, entry)? {
                    return Ok(Replayed::Moot);
                }
                Ok(Replayed::NewOnly(Box::new(action.new_entry_only())))
            }
            Action::Delete { .. } => Ok(Replayed::AsPlanned),
        }
    }

    /// Active-active, a replayed move of a file whose old target entry is
    /// gone (an earlier process moved it, then stopped before committing):
    /// what was known of the version at `old_path` goes to `new_path`, where
    /// that process put it, as applying the move would have carried it
    /// (`known_for`). Known there: that the source was past it
    /// (`Dirs::behind`, restored from the checkpoint), or a version this run
    /// skipped at `old_path` where the target had nothing (`mark_if_behind`:
    /// the stopped process had moved its copy on), which would have
    /// replaced what `new_path` holds. Only when `new_path` holds a file
    /// `moved` could have brought there; when it holds nothing, that
    /// process moved it on again (a later move of its window), and what is
    /// known travels on to be weighed at the next move's replay.
    fn carry_behind(
        &self,
        old_path: &str,
        new_path: &str,
        moved: impl Fn(&Entry) -> bool,
    ) -> Result<()> {
        if !self.newer_target_wins {
            return Ok(());
        }
        let marked = self.dirs.lock().unwrap().is_behind(old_path);
        let skipped = self.skipped_unseen.lock().unwrap().get(old_path).cloned();
        if !marked && skipped.is_none() {
            return Ok(());
        }
        let (dir, name) = split_path(new_path);
        // Whether the mark goes to `new_path`, and whether the skip travels
        // on (nothing there yet).
        let (behind, travels) = match self.lookup_target(dir, name)? {
            Some(t) if !t.is_directory && moved(&t) => {
                let skip_replaces = skipped
                    .as_ref()
                    .is_some_and(|(e, base)| replaces(e, base.as_deref(), &t));
                (marked || skip_replaces, false)
            }
            Some(_) => return Ok(()),
            None => (marked, true),
        };
        if let Some(s) = skipped {
            let mut unseen = self.skipped_unseen.lock().unwrap();
            unseen.remove(old_path);
            if travels {
                unseen.insert(new_path.to_string(), s);
            }
        }
        if behind {
            let mut dirs = self.dirs.lock().unwrap();
            dirs.forget(old_path);
            dirs.mark_behind(new_path.to_string());
        }
        Ok(())
    }

    /// Active-active: what the target's users removed lately, as the
    /// opposite direction read it. Once a replay has begun, the first look
    /// waits for it to be read up to now (`await_removals`): most replayed
    /// actions never look (the target holds what they wrote), and a run
    /// taking over on a quiet cluster would otherwise wait for the filer's
    /// next idle heartbeat (up to 5 s) before its first window.
    pub(super) fn removals(&self) -> Option<&super::Removed> {
        if self.replaying.load(Ordering::SeqCst) {
            self.await_removals();
        }
        self.removed_here.as_deref()
    }

    /// Active-active, once per run, before what the target's users removed
    /// is first consulted for a replayed action: waits (up to a heartbeat's
    /// period of the filer, and a margin) until the opposite direction has
    /// read the target's log up to now, so that what they removed since
    /// this run's checkpoint is known (`Removed`) before a replayed event
    /// could bring it back.
    fn await_removals(&self) {
        let Some(removed) = &self.removed_here else {
            return;
        };
        if self.removals_awaited.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(now) = retry("target clock", Policy::SHORT, &self.cancel, || {
            self.target.now_ns()
        }) else {
            return;
        };
        let began = std::time::Instant::now();
        // The applying thread's name carries the direction's (the pools').
        let who = std::thread::current().name().unwrap_or("?").to_string();
        if !removed.wait_read(now, std::time::Duration::from_secs(8), &self.cancel) {
            log::warn!(
                "{who}: the opposite direction has not read the target's log up to now within \
                 8 s: replaying without knowing all that the target's users removed lately"
            );
        } else if began.elapsed() > std::time::Duration::from_secs(1) {
            log::info!(
                "{who}: waited {:.1} s for the opposite direction to read the target's log up \
                 to now before replaying",
                began.elapsed().as_secs_f64()
            );
        }
    }

    /// True when the source no longer holds `entry` at `source_path` (it was
    /// replaced, moved or removed since the event): a later event in the log
    /// carries what came next, so skipping this version loses nothing.
    pub fn source_replaced(&self, source_path: &str, entry: &Entry) -> Result<bool> {
        let (dir, name) = split_path(source_path);
        let asked = version(entry);
        let list_now = {
            let mut view = self.source_view.lock().unwrap();
            if let Some(now) = view.known(dir, name) {
                return Ok(now != Some(asked));
            }
            view.ask(dir)
        };
        if list_now {
            let listed = retry("ListEntries", self.calls, &self.cancel, || {
                self.source.list_at_most(dir, SourceView::MOST)
            })?
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| (e.name.clone(), version(e)))
                    .collect()
            });
            let mut view = self.source_view.lock().unwrap();
            view.listed.insert(dir.to_string(), listed);
            if let Some(now) = view.known(dir, name) {
                return Ok(now != Some(asked));
            }
        }
        let now = retry("LookupDirectoryEntry", self.calls, &self.cancel, || {
            self.source.lookup(dir, name)
        })?;
        Ok(now.is_none_or(|now| version(&now) != asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_version_the_source_had_is_behind() {
        let v = |mtime: i64, size: u64| {
            let mut e = Entry::new();
            e.name = "k0".into();
            let a = e.attributes.mut_or_insert_default();
            a.mtime = mtime;
            a.file_size = size;
            e
        };
        let (base, skipped) = (v(10, 1), v(12, 900));
        // The target holds the version the skipped one replaced, or the
        // skipped one itself: behind.
        assert!(replaces(&skipped, Some(&base), &base));
        assert!(replaces(&skipped, Some(&base), &skipped));
        assert!(replaces(&skipped, None, &skipped));
        // A version of the target's own, older or in the same second and
        // losing the tie-break to the skipped one: a contender all the same.
        assert!(!replaces(&skipped, Some(&base), &v(11, 5)));
        assert!(!replaces(&skipped, Some(&base), &v(12, 700)));
        assert!(!replaces(&skipped, None, &v(12, 700)));
    }

    #[test]
    fn a_folder_is_listed_once_asked_about_often_and_only_for_its_window() {
        let mut v = SourceView::default();
        for _ in 1..SourceView::LIST_AFTER {
            assert!(!v.ask("/d"));
        }
        assert!(!v.ask("/e"), "counted per folder");
        assert!(v.ask("/d"), "time to list /d");
        assert_eq!(v.known("/d", "f"), None, "not listed yet");
        let mut f = Entry::new();
        f.name = "f".into();
        f.attributes.mut_or_insert_default().mtime = 5;
        v.listed
            .insert("/d".into(), Some([("f".to_string(), version(&f))].into()));
        assert!(!v.ask("/d"), "listed once");
        assert_eq!(v.known("/d", "f"), Some(Some(version(&f))));
        assert_eq!(v.known("/d", "g"), Some(None), "not there");
        v.listed.insert("/big".into(), None);
        assert_eq!(v.known("/big", "f"), None, "too big: looked up");
        v.new_window();
        assert_eq!(v.known("/d", "f"), None);
        assert!(!v.ask("/d"), "counting starts again");
    }

    #[test]
    fn a_version_is_its_mtime_chunks_and_content() {
        let mut a = Entry::new();
        a.name = "f".into();
        a.attributes.mut_or_insert_default().mtime = 5;
        let mut c = FileChunk::new();
        c.file_id = "3,01ab".into();
        a.chunks.push(c);
        let same = a.clone();
        assert_eq!(version(&a), version(&same));
        let mut newer = a.clone();
        newer.attributes.mut_or_insert_default().mtime_ns = 1;
        let mut other_chunk = a.clone();
        other_chunk.chunks[0].file_id = "3,01ac".into();
        let mut xattr = a.clone();
        xattr.extended.insert("k".into(), b"v".to_vec());
        for b in [newer, other_chunk, xattr] {
            assert_ne!(version(&a), version(&b));
        }
    }
}
