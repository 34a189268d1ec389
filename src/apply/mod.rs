//! Applies one planned `Action` to the target filer: looks up what the target
//! already has, copies the chunks it lacks (in parallel on the chunk pool,
//! reusing target chunks whose source id is unchanged), and writes the entry
//! with the event's signatures so that it never echoes back. Idempotent: an
//! action applied twice leaves the target as applying it once does.
//!
//! Two writes skip the target lookup: a new source entry in a target folder
//! this process made itself (a fresh folder) is created exclusively, and,
//! one-way, a file written anew in place is written over outright. Should
//! the target not be as the event implies (its own users wrote there), the
//! write fails and the looked-up path decides, reusing the chunks already copied
//! and freeing those it does not keep. One-way, the events a folder's move
//! logs for the entries below it are not applied at all once this process
//! has moved the folder on the target: the entries went along unchanged.
//!
//! This file holds the `Applier` and what it decides (the route an action
//! takes, renames, deletes weighed against the target, a window's end);
//! `write` holds how it writes, `copy` how chunks move.

mod confine;
mod copy;
mod dirs;
mod dry_run;
mod removed;
mod route;
mod source;
mod write;

pub use copy::{Ahead, Transfer};

pub use dry_run::{Op, Planned};
pub use removed::Removed;
pub use source::Replayed;

use dirs::Dirs;
use route::{route, Known, Route};
use source::SourceView;
use write::Write;

use crate::error::{ErrorKind, Result};
use crate::filer::FilerClient;
use crate::paths::{join_path, parent, split_path};
use crate::pb::filer::*;
use crate::replicate::conflict::{self, mtime_ns, size};
use crate::replicate::Action;
use crate::retry::retry;
use crate::retry::{Cancel, Policy};
use crate::state::Conflict;
use crate::volume::{fid, ChunkSink, ChunkSource};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

pub struct Applier {
    source: FilerClient,
    target: FilerClient,
    chunks_in: ChunkSource,
    /// Shared with the file-id refills `apply` starts on the chunk pool.
    chunks_out: std::sync::Arc<ChunkSink>,
    /// Active-active: the target keeps its version when it wins by
    /// `conflict::resolve` (newer mtime, ties broken the same on both sides).
    newer_target_wins: bool,
    /// Only plan: look, and write nothing (see `dry_run`).
    dry_run: bool,
    /// What a dry run has planned so far.
    dry_plan: dry_run::Overlay,
    /// Target folders known to exist and those this process made.
    dirs: std::sync::Mutex<Dirs>,
    /// The synced folder on the target: `ensure_parent` makes folders below
    /// it only (it and its ancestors are not the source's to describe).
    target_root: String,
    /// Entries moved along with a folder are trusted to be the source's for
    /// events after this time only (source clock; see `skipped_replayed`).
    moves_trusted_after_ns: std::sync::atomic::AtomicI64,
    /// Active-active: what the target's own users removed lately, as the
    /// opposite direction read it from the target's log.
    removed_here: Option<std::sync::Arc<Removed>>,
    /// A replayed action was met: what the target's users removed is
    /// awaited before it is first consulted (`removals`).
    replaying: std::sync::atomic::AtomicBool,
    /// `await_removals` ran.
    removals_awaited: std::sync::atomic::AtomicBool,
    /// Active-active: what the source's own users removed lately.
    removed_there: Option<std::sync::Arc<Removed>>,
    /// Active-active: versions skipped where the target had nothing and no
    /// removal of its was known yet (see `skipped_over`).
    skipped_unseen: std::sync::Mutex<HashMap<String, Skipped>>,
    /// Target folders renames may have left empty, with their source path
    /// and the signatures to remove them with (see `end_window`).
    vacated: std::sync::Mutex<BTreeMap<String, (String, Vec<i32>)>>,
    /// One way: target folders moving entry by entry (their source folder
    /// moved onto a folder): the only ones a rename out of them may leave
    /// to be removed. A folder merely gone from its source path (an
    /// ancestor moved since) is not one: the later move brings it along,
    /// in one rename. (Both ways, every folder moves entry by entry, and
    /// each brings its own folder along.)
    moving: std::sync::Mutex<HashSet<String>>,
    /// Source folders listed in this window for `source_replaced`.
    source_view: std::sync::Mutex<SourceView>,
    /// How every remote call is retried: here, at the call, and nowhere
    /// above (a whole action is never tried again, so chunks are copied
    /// once).
    calls: Policy,
    /// Ends the retries when the run winds down.
    cancel: Cancel,
}

/// A skipped version and the base it replaced on the source.
type Skipped = (Entry, Option<Box<Entry>>);

/// How an `Applier` treats the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One-way: the target becomes the source's copy.
    Follow,
    /// Active-active: the target's own newer versions win (`conflict`).
    TwoWay,
    /// Look only: plan what `Follow` would do and write nothing.
    DryRun,
    /// Look only: plan what `TwoWay` would do and write nothing.
    DryRunTwoWay,
}

impl Mode {
    pub fn of(two_way: bool, dry_run: bool) -> Mode {
        match (two_way, dry_run) {
            (false, false) => Mode::Follow,
            (true, false) => Mode::TwoWay,
            (false, true) => Mode::DryRun,
            (true, true) => Mode::DryRunTwoWay,
        }
    }
}

/// A delete as `conflict::delete_keeps` weighs it against the target.
#[derive(Clone, Copy)]
struct Deleted<'a> {
    /// The entry the source deleted, as it had it.
    base: Option<&'a Entry>,
    /// The target's version is one the source had replaced.
    behind: bool,
    /// When the source logged the delete (its clock).
    ts_ns: i64,
}

/// A creation sent to the target and not yet answered (see
/// `Transfer::park`), with what settling it needs.
pub struct Parked {
    sent: crate::error::Result<crate::filer::SentCreate>,
    dir: String,
    name: String,
    is_dir: bool,
    bytes: u64,
    fresh: Vec<copy::Fresh>,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Parked({})", join_path(&self.dir, &self.name))
    }
}

/// What applying an action did, for counters, logs and the conflict ledger.
#[derive(Debug, Default)]
pub struct Outcome {
    pub bytes: u64,
    pub skipped: bool,
    pub conflict: Option<Conflict>,
    /// Dry run: the change it would have made.
    pub planned: Option<Planned>,
    /// The creation was sent and not yet answered (`Transfer::park`): this
    /// outcome is not the last word, `Applier::settle` gives it.
    pub parked: Option<Parked>,
}

impl Applier {
    /// An applier from `source` (its chunks read through `chunks_in`) onto
    /// the folder `target_root` of `target` (chunks written by `chunks_out`).
    pub fn new(
        (source, chunks_in): (FilerClient, ChunkSource),
        (target, chunks_out): (FilerClient, ChunkSink),
        target_root: &str,
        mode: Mode,
        cancel: Cancel,
    ) -> Applier {
        Applier {
            source,
            target,
            chunks_in,
            chunks_out: std::sync::Arc::new(chunks_out),
            newer_target_wins: matches!(mode, Mode::TwoWay | Mode::DryRunTwoWay),
            dry_run: matches!(mode, Mode::DryRun | Mode::DryRunTwoWay),
            dry_plan: Default::default(),
            dirs: Default::default(),
            target_root: target_root.to_string(),
            moves_trusted_after_ns: Default::default(),
            vacated: Default::default(),
            moving: Default::default(),
            removed_here: None,
            replaying: Default::default(),
            removals_awaited: Default::default(),
            removed_there: None,
            skipped_unseen: Default::default(),
            source_view: Default::default(),
            calls: Policy::FOREVER,
            cancel,
        }
    }

    /// Active-active: what the users of each side removed lately: `here`
    /// (the target; fed by the opposite direction, which reads the
    /// target's log) and `there` (the source; fed by this direction).
    pub fn know_removals(&mut self, here: std::sync::Arc<Removed>, there: std::sync::Arc<Removed>) {
        self.removed_here = Some(here);
        self.removed_there = Some(there);
    }

    /// Gives a remote call up after a few tries instead of waiting for the
    /// remote to come back (a one-shot repair reports what failed).
    pub fn giving_up(self) -> Applier {
        Applier {
            calls: Policy::SHORT,
            ..self
        }
    }

    /// Housekeeping while the stream is quiet: unused copies whose volume
    /// was away are freed once it answers.
    pub fn tidy(&self) {
        self.chunks_out.free_later();
    }

    /// The source filer this applier reads from.
    pub fn source(&self) -> &FilerClient {
        &self.source
    }

    /// The target filer this applier writes to.
    pub fn target(&self) -> &FilerClient {
        &self.target
    }

    /// Applies `action`, planned from an event at `ts_ns` (source clock; 0
    /// for none), moving chunk bytes `via`. A dry run changes nothing and
    /// says what it would have changed (`Outcome::planned`).
    pub fn apply(&self, action: &Action, ts_ns: i64, via: Transfer) -> Result<Outcome> {
        if self.dry_run {
            return Ok(Outcome {
                skipped: true,
                planned: self.plan_dry(action, ts_ns)?,
                ..Outcome::default()
            });
        }
        let out = self.apply_now(action, ts_ns, via);
        if out.as_ref().is_ok_and(|o| o.bytes > 0) {
            let dir = split_path(&action.target()).0.to_string();
            if self.chunks_out.claim_top_up(&dir) {
                let sink = self.chunks_out.clone();
                via.pool.spawn(move || sink.refill(&dir));
            }
        }
        out
    }

    /// `apply` without the file-id refill it may start.
    fn apply_now(&self, action: &Action, ts_ns: i64, via: Transfer) -> Result<Outcome> {
        if let (Some(here), Some(path)) = (&self.removed_here, action.removes()) {
            here.carrying(&path, ts_ns);
        }
        let known = self.known_for(action, ts_ns);
        let way = route(route::Kind::of(action), known, self.newer_target_wins);
        let skipped = || {
            Ok(Outcome {
                skipped: true,
                ..Outcome::default()
            })
        };
        match action {
            Action::Upsert {
                dir,
                entry,
                signatures,
                source,
                base,
                ..
            } => {
                let now = match entry.is_directory {
                    true => self.folder_now(source, entry)?,
                    false => None,
                };
                let entry = now.as_ref().unwrap_or(entry);
                match way {
                    Route::Create => {
                        self.write_unseen(dir, entry, signatures, source, via, Write::Create)
                    }
                    Route::Replace => {
                        self.write_unseen(dir, entry, signatures, source, via, Write::Replace)
                    }
                    _ => self.upsert(
                        dir,
                        entry,
                        base.as_deref(),
                        signatures,
                        source,
                        via,
                        Vec::new(),
                    ),
                }
            }
            Action::Delete {
                dir,
                name,
                signatures,
                base,
            } => {
                if way == Route::SkipAbsent {
                    log::debug!(
                        "{} never reached the target: nothing to delete",
                        action.target()
                    );
                    return skipped();
                }
                if way == Route::DeleteUnlessKept {
                    let deleted = Deleted {
                        base: base.as_deref(),
                        behind: known.behind,
                        ts_ns,
                    };
                    if let Some(kept) = self.kept_over_delete(dir, name, signatures, deleted)? {
                        return Ok(kept);
                    }
                }
                self.delete(dir, name, signatures)?;
                Ok(Outcome::default())
            }
            Action::Rename {
                old_dir,
                old_name,
                new_dir,
                entry,
                signatures,
                source,
                old_source,
                ..
            } => {
                // Whatever this rename does, it may leave its old folder
                // empty, when that folder is moving entry by entry.
                self.vacating(old_dir, parent(old_source), signatures);
                if way == Route::SkipMovedAlong {
                    // One-way, the target's copy was the source's before the
                    // folder moved and moved with it unchanged, as on the
                    // source (unless a replayed version was skipped).
                    log::debug!("{} moved along with its folder", action.target());
                    return skipped();
                }
                let beside = way == Route::Move && self.rename(action, known.behind)?;
                // The old entry is gone (moved by this rename or by its
                // parent's), or stays as the target's own: make sure the new
                // one is exactly the source's.
                // A move onto a path the source had just removed the entry
                // of (the filer replaces an empty folder or a file there,
                // logging its delete first) replaced that version: it is
                // the base the new entry is weighed from.
                let base = self.removed_there.as_ref().and_then(|r| r.get(source));
                let out = self.upsert(
                    new_dir,
                    entry,
                    base.as_ref(),
                    signatures,
                    source,
                    via,
                    Vec::new(),
                )?;
                if beside {
                    // The version the source moved away, left beside the new
                    // path's own (weighed just now).
                    self.delete(old_dir, old_name, signatures)?;
                }
                self.level_folder(new_dir, parent(source), signatures, via)?;
                Ok(out)
            }
        }
    }

    /// What the folder hints say about `action` (see `route`). A delete or
    /// a rename forgets the hints at and below its paths on the way.
    fn known_for(&self, action: &Action, ts_ns: i64) -> Known {
        let mut dirs = self.dirs.lock().unwrap();
        match action {
            Action::Upsert { dir, .. } => Known {
                fresh_dir: dirs.is_fresh(dir),
                ..Known::default()
            },
            Action::Delete { dir, name, .. } => {
                let path = join_path(dir, name);
                let (absent, behind) = (dirs.is_absent(&path), dirs.is_behind(&path));
                dirs.forget(&path);
                Known {
                    absent,
                    behind,
                    ..Known::default()
                }
            }
            Action::Rename {
                old_dir,
                old_name,
                entry,
                ..
            } => {
                let old_path = join_path(old_dir, old_name);
                let behind = dirs.is_behind(&old_path);
                if entry.is_directory && self.newer_target_wins {
                    // Moved entry by entry (see `rename`): each entry's own
                    // move carries what is known of its version.
                    dirs.forget_places(&old_path);
                } else {
                    dirs.forget(&old_path);
                }
                dirs.forget(&action.target());
                if behind {
                    // The version that moves is one the source had replaced;
                    // so it stays at the new path until written anew there.
                    dirs.mark_behind(action.target());
                }
                // A folder's move is logged with one event per entry below
                // it after its own; this process moved them all already.
                Known {
                    moved_along: dirs.moved_along(&old_path),
                    moves_trusted: ts_ns > self.moves_trusted_after_ns.load(Ordering::Relaxed),
                    behind,
                    ..Known::default()
                }
            }
        }
    }

    /// Moves a rename's old target entry to its new name, when it is there
    /// and is what the source moved. True when the old target entry is to
    /// be removed once the new one is written.
    ///
    /// A folder moves whole (one AtomicRenameEntry), except where that would
    /// carry or clobber what the source never moved: active-active, where
    /// the target's users may have written into it since, and wherever the
    /// new path holds a folder already (two moves onto one name: the filer
    /// refuses to replace a non-empty folder). There it moves piecewise: the
    /// new folder is made (or weighed, when there) and each entry below
    /// follows with its own event, which the filer logs for every entry a
    /// folder's move carried; what is left (written on the target alone)
    /// stays, and the old folder goes once empty (`end_window`).
    ///
    /// Active-active, a file moves only while the target holds the version
    /// the source moved (or one it had replaced); a version changed on the
    /// target stays at the old path and its own event carries it over. A
    /// file whose new path is taken on the target is not moved over it: the
    /// new entry is weighed against the one there, and the old copy goes.
    fn rename(&self, action: &Action, behind: bool) -> Result<bool> {
        let Action::Rename {
            old_dir,
            old_name,
            old_mtime_ns,
            new_dir,
            entry,
            signatures,
            source,
            old_source,
        } = action
        else {
            return Ok(false);
        };
        let (old_path, new_path) = (join_path(old_dir, old_name), action.target());
        let Some(old) = self.lookup_target(old_dir, old_name)? else {
            log::debug!("{old_path} is not on the target: {new_path} is written from the event");
            return Ok(false);
        };
        let two_way = self.newer_target_wins;
        if two_way
            && !entry.is_directory
            && !Self::moved_version(&old, entry, *old_mtime_ns, behind)
        {
            log::debug!(
                "{old_path} changed on the target since the source moved it: it stays, and \
                 {new_path} is written from the event"
            );
            return Ok(false);
        }
        let taken = if two_way || entry.is_directory {
            self.lookup_target(new_dir, &entry.name)?
        } else {
            None
        };
        if entry.is_directory && (two_way || taken.as_ref().is_some_and(|t| t.is_directory)) {
            log::debug!("{old_path} moves to {new_path} entry by entry");
            self.moving.lock().unwrap().insert(old_path.clone());
            self.vacating(&old_path, old_source, signatures);
            return Ok(false);
        }
        if taken.is_some() && two_way {
            return Ok(true);
        }
        log::debug!("{old_path} moves to {new_path}");
        self.confined(old_dir, old_name)?;
        self.confined(new_dir, &entry.name)?;
        self.ensure_parent(new_dir, parent(source), signatures)?;
        let mut req = AtomicRenameEntryRequest::new();
        req.old_directory = old_dir.clone();
        req.old_name = old_name.clone();
        req.new_directory = new_dir.clone();
        req.new_name = entry.name.clone();
        req.signatures = signatures.clone();
        let r = retry("AtomicRenameEntry", self.calls, &self.cancel, || {
            self.target.rename(&req)
        });
        let mut dirs = self.dirs.lock().unwrap();
        dirs.made(&new_path);
        if r.is_ok() && entry.is_directory {
            dirs.remember_moved(old_path.clone());
        }
        drop(dirs);
        match r {
            // Gone meanwhile (moved with its parent) is fine; otherwise the
            // rename's own error, passing or not, decides.
            Err(e) if self.lookup_target(old_dir, old_name)?.is_some() => {
                Err(e.context(format!("rename {old_path} -> {new_path}")))
            }
            _ => Ok(false),
        }
    }

    /// Every write to the target passes here first (`create`, `update`,
    /// `delete_as`, the rename in `rename`): the entry `dir`/`name` must
    /// lie strictly inside the synced folder, or nothing is written and
    /// the action is refused (see `confine`).
    fn confined(&self, dir: &str, name: &str) -> Result<()> {
        confine::inside(&self.target_root, dir, name)
    }

    /// True for a target folder strictly inside the synced one (which
    /// with its ancestors is not the source's to describe or remove).
    fn inside(&self, dir: &str) -> bool {
        dir != self.target_root && crate::paths::is_under(dir, &self.target_root)
    }

    /// A rename may leave the target folder `dir` (the source's
    /// `source_dir`) empty: `end_window` looks, if `dir` is moving entry
    /// by entry.
    fn vacating(&self, dir: &str, source_dir: &str, signatures: &[i32]) {
        if self.inside(dir) && (self.newer_target_wins || self.moving.lock().unwrap().contains(dir))
        {
            self.vacated.lock().unwrap().insert(
                dir.to_string(),
                (source_dir.to_string(), signatures.to_vec()),
            );
        }
    }

    /// The window is applied: a folder moving entry by entry that renames
    /// left empty on the target goes, when the source no longer has it
    /// either, and so do the folders above it that this leaves empty and
    /// that are moving too. Deepest first; a folder written
    /// into meanwhile stays (the delete is not recursive). Kept in memory
    /// only: a replayed window looks again, as each rename of it registers
    /// its folders anew.
    pub fn end_window(&self) -> Result<()> {
        let on_source = |p: &str| {
            let (d, n) = split_path(p);
            retry("LookupDirectoryEntry", self.calls, &self.cancel, || {
                self.source.lookup(d, n)
            })
        };
        let mut todo = std::mem::take(&mut *self.vacated.lock().unwrap());
        while let Some((path, (source_path, signatures))) = todo.pop_last() {
            // The source still having the folder (a file renamed within
            // it, the common case) settles it with one call.
            if on_source(&source_path)?.is_some() {
                continue;
            }
            let (dir, name) = split_path(&path);
            match self.lookup_target(dir, name)? {
                // Gone already: a process that stopped before committing
                // this window removed it, and maybe not the folders above
                // it, which are looked at as after a removal here (found by
                // `chaos_kill_9_at_random_moments`: a moved folder's old
                // place left behind, empty, on one cluster).
                None => {}
                Some(t) if t.is_directory && !self.holds_entries(&path)? => {
                    match self.delete_as(dir, name, &signatures, false) {
                        Ok(()) => {
                            log::debug!("{path}: left empty by moves, gone on the source: removed")
                        }
                        Err(e) if e.kind() == ErrorKind::Remote => {
                            log::debug!("{path} was written into meanwhile: it stays ({e})");
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Some(_) => continue,
            }
            self.dirs.lock().unwrap().forget(&path);
            let mut moving = self.moving.lock().unwrap();
            moving.remove(&path);
            if self.inside(dir) && (self.newer_target_wins || moving.contains(dir)) {
                let above = (parent(&source_path).to_string(), signatures);
                todo.entry(dir.to_string()).or_insert(above);
            }
        }
        Ok(())
    }

    /// Active-active: the target's `old` file is the version the source
    /// moved (`moved`, its mtime then `old_mtime_ns`), or one the source had
    /// before it (it is known to be `behind`); not a change of its own.
    fn moved_version(old: &Entry, moved: &Entry, old_mtime_ns: i64, behind: bool) -> bool {
        old_mtime_ns == 0
            || behind
            || conflict::same_version(old, moved)
            || mtime_ns(old) < old_mtime_ns
    }

    /// Active-active, a delete meets the target's entry: a change the
    /// deleting side never saw wins over the removal (`delete_yields_to`)
    /// and its own event carries it to the source, so both clusters keep it;
    /// deleting it here while that event re-created it there left them
    /// different. Returns the outcome of keeping it, or `None` to delete; a
    /// target lacking the entry has nothing to delete, and the outcome says
    /// so.
    fn kept_over_delete(
        &self,
        dir: &str,
        name: &str,
        signatures: &[i32],
        deleted: Deleted,
    ) -> Result<Option<Outcome>> {
        let Deleted { ts_ns, base, .. } = deleted;
        let Some(t) = self.lookup_target(dir, name)? else {
            return Ok(Some(Outcome {
                skipped: true,
                ..Outcome::default()
            }));
        };
        let path = join_path(dir, name);
        // A folder's delete is logged after one for each entry it held, so
        // what the target's folder still holds when its own delete arrives
        // is what the deleting side never saw: it stays, with its folder.
        let keeps = conflict::delete_keeps(&t, base, deleted.behind, ts_ns)
            || (t.is_directory && self.holds_entries(&path)?);
        if !keeps {
            return Ok(None);
        }
        log::warn!(
            "conflict at {path}: the target's version wins over the source's delete (deleted at \
                {ts_ns} ns, of the version of mtime {} ns; target mtime {} ns)",
            base.map_or(0, mtime_ns),
            mtime_ns(&t)
        );
        Ok(Some(Outcome {
            skipped: true,
            bytes: 0,
            conflict: Some(Conflict {
                path,
                source_mtime_ns: ts_ns,
                source_size: 0,
                source_origin: signatures.first().copied().unwrap_or(0),
                target_mtime_ns: mtime_ns(&t),
                target_size: size(&t),
                source_won: false,
            }),
            ..Outcome::default()
        }))
    }

    /// True when the target folder `path` holds any entry.
    fn holds_entries(&self, path: &str) -> Result<bool> {
        let listed = retry("ListEntries", self.calls, &self.cancel, || {
            self.target.list_at_most(path, 1)
        })?;
        Ok(!matches!(listed, Some(entries) if entries.is_empty()))
    }
}

pub(crate) fn chunk_ids(e: &Entry) -> Vec<String> {
    e.chunks.iter().map(fid::of_chunk).collect()
}

/// The target entry already is a copy of the source entry: same kind,
/// attributes, content, extended attributes, and chunks copied from exactly
/// the source's chunks.
pub fn same_entry(src: &Entry, t: &Entry) -> bool {
    let attrs = |e: &Entry| {
        e.attributes.as_ref().map(|a| {
            (
                a.file_size,
                a.mtime,
                a.mtime_ns,
                a.file_mode,
                a.uid,
                a.gid,
                a.crtime,
                a.mime.clone(),
                a.ttl_sec,
                a.symlink_target.clone(),
                a.md5.clone(),
            )
        })
    };
    let src_chunks: Vec<(String, i64, u64)> = src
        .chunks
        .iter()
        .map(|c| (fid::of_chunk(c), c.offset, c.size))
        .collect();
    let t_chunks: Vec<(String, i64, u64)> = t
        .chunks
        .iter()
        .map(|c| (fid::source_of_chunk(c), c.offset, c.size))
        .collect();
    src.is_directory == t.is_directory
        && attrs(src) == attrs(t)
        && src.content == t.content
        && src.extended == t.extended
        && src_chunks == t_chunks
}
