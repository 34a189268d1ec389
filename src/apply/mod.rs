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

mod dry_run;

pub use dry_run::{Op, Planned};

use crate::error::{Error, ErrorKind, Result};
use crate::filer::FilerClient;
use crate::paths::{join_path, parent, split_path};
use crate::pb::filer::*;
use crate::replicate::conflict::{self, mtime_ns, size, Verdict};
use crate::replicate::{Action, Change};
use crate::retry::{retry, Policy};
use crate::state::Conflict;
use crate::volume::{fid, ChunkSink, ChunkSource};
use protobuf::Message;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
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
    /// Source folders listed in this window for `source_replaced`.
    source_view: std::sync::Mutex<SourceView>,
}

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
}

impl Dirs {
    const MOST: usize = 20_000;

    fn bound(&mut self) {
        let n = self.known.len() + self.fresh.len() + self.moved.len() + self.absent.len();
        if n > Self::MOST {
            *self = Dirs::default();
        }
    }

    fn remember_known(&mut self, dir: &str) {
        self.known.insert(dir.to_string());
        self.bound();
    }

    /// `dir` was made by this process: it exists and is fresh.
    fn remember_made(&mut self, dir: &str) {
        self.known.insert(dir.to_string());
        self.fresh.insert(dir.to_string());
        self.bound();
    }

    fn remember_moved(&mut self, dir: String) {
        self.moved.insert(dir);
        self.bound();
    }

    /// `path` was deleted or moved: folders at and below it are unknown.
    fn forget(&mut self, path: &str) {
        self.known.retain(|k| !crate::paths::is_under(k, path));
        self.fresh.retain(|k| !crate::paths::is_under(k, path));
        if !self.absent.is_empty() {
            self.absent.retain(|k| !crate::paths::is_under(k, path));
        }
    }

    /// `path` is below a folder this process moved away (so it is gone).
    fn moved_along(&self, path: &str) -> bool {
        !self.moved.is_empty()
            && self
                .moved
                .iter()
                .any(|m| m != path && crate::paths::is_under(path, m))
    }

    /// Something was made at `path`: folders above it exist again, and so
    /// does `path`.
    fn made(&mut self, path: &str) {
        self.absent.remove(path);
        if !self.moved.is_empty() {
            self.moved.retain(|m| !crate::paths::is_under(path, m));
        }
    }
}

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
fn version(e: &Entry) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    mtime_ns(e).hash(&mut h);
    chunk_ids(e).hash(&mut h);
    conflict::fingerprint(e).hash(&mut h);
    h.finish()
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

/// How `write_unseen` writes.
#[derive(Clone, Copy)]
enum Write {
    /// CreateEntry with o_excl: fails when the entry is there.
    Create,
    /// CreateEntry without o_excl: the filer makes the entry when it is
    /// missing and replaces it when it is there (freeing the old chunks the
    /// new entry does not name), as an UpdateEntry would.
    Replace,
}

/// What applying an action did, for counters, logs and the conflict ledger.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub bytes: u64,
    pub skipped: bool,
    pub conflict: Option<Conflict>,
    /// Dry run: the change it would have made.
    pub planned: Option<Planned>,
}

/// How one apply moves chunk bytes.
#[derive(Clone, Copy)]
pub struct Transfer<'a> {
    /// Where chunks are copied in parallel (owned by the pipeline).
    pub pool: &'a rayon::ThreadPool,
    /// Also read chunks the source has deleted: a volume serves their bytes
    /// until it is vacuumed. Without it, such a chunk is `NotFound`: most
    /// often the version was replaced or removed since (see
    /// `source_replaced`), and its bytes need not travel.
    pub deleted_too: bool,
}

impl Applier {
    /// An applier from `source` (its chunks read through `chunks_in`) onto
    /// the folder `target_root` of `target` (chunks written by `chunks_out`).
    pub fn new(
        (source, chunks_in): (FilerClient, ChunkSource),
        (target, chunks_out): (FilerClient, ChunkSink),
        target_root: &str,
        mode: Mode,
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
            source_view: Default::default(),
        }
    }

    /// The source filer this applier reads from.
    pub fn source(&self) -> &FilerClient {
        &self.source
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
        match action {
            Action::Upsert {
                dir,
                entry,
                signatures,
                source,
                change,
            } => match change {
                Change::Created if self.is_fresh(dir) => {
                    self.write_unseen(dir, entry, signatures, source, via, Write::Create)
                }
                Change::Rewritten if !self.newer_target_wins => {
                    self.write_unseen(dir, entry, signatures, source, via, Write::Replace)
                }
                _ => self.upsert(dir, entry, signatures, source, via, Vec::new()),
            },
            Action::Delete {
                dir,
                name,
                signatures,
                old_mtime_ns,
            } => {
                let path = join_path(dir, name);
                let absent = {
                    let mut dirs = self.dirs.lock().unwrap();
                    let absent = dirs.absent.contains(&path);
                    dirs.forget(&path);
                    absent
                };
                if absent && !self.newer_target_wins {
                    log::debug!("{path} never reached the target: nothing to delete");
                    return Ok(Outcome {
                        skipped: true,
                        ..Outcome::default()
                    });
                }
                if self.newer_target_wins {
                    let deleted = (ts_ns, *old_mtime_ns);
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
                ..
            } => {
                let mut req = AtomicRenameEntryRequest::new();
                req.old_directory = old_dir.clone();
                req.old_name = old_name.clone();
                req.new_directory = new_dir.clone();
                req.new_name = entry.name.clone();
                req.signatures = signatures.clone();
                let (old_path, new_path) = (join_path(old_dir, old_name), action.target());
                self.forget_dirs(&old_path);
                self.forget_dirs(&new_path);
                // A folder's move is logged with one event per entry below
                // it after its own; this process moved them all already.
                let moved_along = self.dirs.lock().unwrap().moved_along(&old_path);
                let trusted = ts_ns > self.moves_trusted_after_ns.load(Ordering::Relaxed);
                if moved_along && !self.newer_target_wins && trusted {
                    // One-way, the target's copy was the source's before the
                    // folder moved and moved with it unchanged, as on the
                    // source (unless a replayed version was skipped).
                    log::debug!("{new_path} moved along with its folder");
                    return Ok(Outcome {
                        skipped: true,
                        ..Outcome::default()
                    });
                }
                if !moved_along && self.lookup_target(old_dir, old_name)?.is_some() {
                    self.ensure_parent(new_dir, parent(source), signatures)?;
                    let r = retry("AtomicRenameEntry", Policy::SHORT, || {
                        self.target.rename(&req)
                    });
                    let mut dirs = self.dirs.lock().unwrap();
                    dirs.made(&new_path);
                    if r.is_ok() && entry.is_directory {
                        dirs.remember_moved(old_path);
                    }
                    drop(dirs);
                    if let Err(e) = r {
                        // Gone meanwhile (moved with its parent) is fine; otherwise
                        // the rename's own error, passing or not, decides.
                        if self.lookup_target(old_dir, old_name)?.is_some() {
                            return Err(e.context(format!(
                                "rename {} -> {new_path}",
                                join_path(old_dir, old_name)
                            )));
                        }
                    }
                }
                // The old entry is gone (moved by this rename or by its parent's):
                // make sure the new one is exactly the source's.
                self.upsert(new_dir, entry, signatures, source, via, Vec::new())
            }
        }
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
        (ts_ns, old_mtime_ns): (i64, i64),
    ) -> Result<Option<Outcome>> {
        let Some(t) = self.lookup_target(dir, name)? else {
            return Ok(Some(Outcome {
                skipped: true,
                ..Outcome::default()
            }));
        };
        if !conflict::delete_yields_to(&t, ts_ns, old_mtime_ns) {
            return Ok(None);
        }
        let path = join_path(dir, name);
        log::warn!(
            "conflict at {path}: the target's version wins over the source's delete (deleted at {ts_ns} ns, of the version of mtime {old_mtime_ns} ns; target mtime {} ns)",
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

    /// Deletes a target entry with everything below it and its chunks (the
    /// target's chunks are its own copies). A missing entry is not an error.
    fn delete(&self, dir: &str, name: &str, signatures: &[i32]) -> Result<()> {
        let mut req = DeleteEntryRequest::new();
        req.directory = dir.to_string();
        req.name = name.to_string();
        req.is_delete_data = true;
        req.is_recursive = true;
        req.ignore_recursive_error = true;
        req.is_from_other_cluster = true;
        req.signatures = signatures.to_vec();
        retry("DeleteEntry", Policy::SHORT, || self.target.delete(&req))
    }

    /// Makes sure the target folder `dir` exists, creating missing ones with
    /// the attributes of their source counterparts (`source_dir`, walking up
    /// together). A filer creates a missing parent by itself, stamped with
    /// its own clock; and a source filer that did so (a move into a folder
    /// that is not there) logs no event for it, so without this the folder's
    /// mtime would differ between the clusters.
    ///
    /// A source folder gone since the event (moved or removed: later events
    /// say where to) gets a stand-in that any source version outranks: the
    /// filer's mode and an mtime at the epoch. Left to the filer, it would
    /// carry the filer's clock, and active-active that newer version would
    /// win over the source's once the folder's own move brought it along.
    fn ensure_parent(&self, dir: &str, source_dir: &str, signatures: &[i32]) -> Result<()> {
        let inside = dir != self.target_root && crate::paths::is_under(dir, &self.target_root);
        if !inside || source_dir == "/" || self.dirs.lock().unwrap().known.contains(dir) {
            return Ok(());
        }
        let (pd, name) = split_path(dir);
        if self.lookup_target(pd, name)?.is_none() {
            let (spd, sname) = split_path(source_dir);
            let found = retry("LookupDirectoryEntry", Policy::SHORT, || {
                self.source.lookup(spd, sname)
            })?;
            let mut e = found.filter(|e| e.is_directory).unwrap_or_else(|| {
                log::debug!("{source_dir} is gone on the source; a stand-in folder goes to {dir}");
                stand_in_folder()
            });
            self.ensure_parent(pd, spd, signatures)?;
            e.name = name.to_string();
            e.chunks.clear();
            self.create(pd, e, signatures, false)?;
            self.dirs.lock().unwrap().remember_made(dir);
        }
        self.dirs.lock().unwrap().remember_known(dir);
        Ok(())
    }

    fn forget_dirs(&self, path: &str) {
        self.dirs.lock().unwrap().forget(path);
    }

    fn is_fresh(&self, dir: &str) -> bool {
        self.dirs.lock().unwrap().fresh.contains(dir)
    }

    /// A folder this process just made on the target: it is fresh.
    fn made_dir(&self, dir: &str, entry: &Entry) {
        if entry.is_directory {
            self.dirs
                .lock()
                .unwrap()
                .remember_made(&join_path(dir, &entry.name));
        }
    }

    /// Creates `entry` in the target folder `dir`, carrying the signatures;
    /// with `exclusive`, fails (`ErrorKind::Exists`) when it is there.
    fn create(&self, dir: &str, entry: Entry, signatures: &[i32], exclusive: bool) -> Result<()> {
        let mut req = CreateEntryRequest::new();
        req.directory = dir.to_string();
        req.entry = Some(entry).into();
        req.o_excl = exclusive;
        req.is_from_other_cluster = true;
        req.signatures = signatures.to_vec();
        self.dirs
            .lock()
            .unwrap()
            .made(&join_path(dir, &req.entry.name));
        retry("CreateEntry", Policy::SHORT, || self.target.create(&req))
    }

    /// Writes `src` without asking the target first: its chunks are copied
    /// and the entry created exclusively (a new entry in a fresh folder) or
    /// written over (a file written anew, one-way: nothing to reuse, nothing
    /// to weigh; whether the target has it or not, as when this run skipped
    /// a version the source had replaced since). Should the target not be as
    /// expected (it has the new entry, or a folder at its path), the
    /// looked-up path decides, with the chunks copied here on offer; those
    /// it does not keep are freed.
    fn write_unseen(
        &self,
        dir: &str,
        src: &Entry,
        signatures: &[i32],
        source_path: &str,
        via: Transfer,
        how: Write,
    ) -> Result<Outcome> {
        let path = join_path(dir, &src.name);
        let (entry, bytes) = self.copy_entry(via, src, &HashMap::new(), &path)?;
        let copied = entry.chunks.clone();
        let written = match how {
            Write::Create => self.create(dir, entry, signatures, true),
            Write::Replace => self
                .ensure_parent(dir, parent(source_path), signatures)
                .and_then(|()| self.create(dir, entry, signatures, false)),
        };
        // Create: the target has it. Replace: the filer refuses (the path
        // holds a folder there, which the looked-up path replaces).
        let unexpected = |k: ErrorKind| match how {
            Write::Create => k == ErrorKind::Exists,
            Write::Replace => k == ErrorKind::Remote,
        };
        match written {
            Ok(()) => {
                self.made_dir(dir, src);
                Ok(Outcome {
                    bytes,
                    ..Outcome::default()
                })
            }
            Err(e) if unexpected(e.kind()) => {
                log::debug!("{path} is not on the target as its event implies ({e}); comparing before writing");
                let out = self.upsert(dir, src, signatures, source_path, via, copied.clone());
                let kept: HashSet<String> = match self.lookup_target(dir, &src.name) {
                    Ok(t) => t.iter().flat_map(chunk_ids).collect(),
                    // Unknown: keep them rather than free a chunk in use.
                    Err(_) => return out,
                };
                let unused: Vec<String> = copied
                    .iter()
                    .map(fid::of_chunk)
                    .filter(|id| !kept.contains(id))
                    .collect();
                self.chunks_out.discard(&unused);
                out.map(|o| Outcome {
                    bytes: o.bytes + bytes,
                    ..o
                })
            }
            Err(e) => Err(e),
        }
    }

    fn update(&self, dir: &str, entry: Entry, signatures: &[i32]) -> Result<()> {
        let mut req = UpdateEntryRequest::new();
        req.directory = dir.to_string();
        req.entry = Some(entry).into();
        req.is_from_other_cluster = true;
        req.signatures = signatures.to_vec();
        retry("UpdateEntry", Policy::SHORT, || self.target.update(&req))
    }

    fn lookup_target(&self, dir: &str, name: &str) -> Result<Option<Entry>> {
        retry("LookupDirectoryEntry", Policy::SHORT, || {
            self.target.lookup(dir, name)
        })
    }

    /// Makes the target entry equal `src` after looking at what the target
    /// has. `spare` are target copies of source chunks made already.
    fn upsert(
        &self,
        dir: &str,
        src: &Entry,
        signatures: &[i32],
        source_path: &str,
        via: Transfer,
        spare: Vec<FileChunk>,
    ) -> Result<Outcome> {
        let existing = self.lookup_target(dir, &src.name)?;
        let mut conflict_seen = None;
        if let Some(t) = &existing {
            if same_entry(src, t) {
                return Ok(Outcome {
                    skipped: true,
                    ..Outcome::default()
                });
            }
            if self.newer_target_wins {
                // The log replays old versions: one the source has replaced
                // since is not a contender (its successor's event follows).
                if self.source_replaced(source_path, src)? {
                    return Ok(Outcome {
                        skipped: true,
                        ..Outcome::default()
                    });
                }
                let r = conflict::resolve(src, t);
                let path = join_path(dir, &src.name);
                let record = r.conflict.then(|| Conflict {
                    path: path.clone(),
                    source_mtime_ns: mtime_ns(src),
                    source_size: size(src),
                    source_origin: signatures.first().copied().unwrap_or(0),
                    target_mtime_ns: mtime_ns(t),
                    target_size: size(t),
                    source_won: r.verdict == Verdict::Source,
                });
                if let Some(c) = &record {
                    log::warn!(
                        "conflict at {path}: {} version wins (source mtime {} ns, target mtime {} ns)",
                        if c.source_won { "the source's" } else { "the target's" },
                        c.source_mtime_ns,
                        c.target_mtime_ns
                    );
                }
                if r.verdict == Verdict::Target {
                    return Ok(Outcome {
                        skipped: true,
                        bytes: 0,
                        conflict: record,
                        ..Outcome::default()
                    });
                }
                conflict_seen = record;
            }
        }
        let path = join_path(dir, &src.name);
        let reuse: HashMap<String, FileChunk> = spare
            .into_iter()
            .chain(existing.iter().flat_map(|t| t.chunks.iter().cloned()))
            .filter(|c| !c.source_file_id.is_empty())
            .map(|c| (c.source_file_id.clone(), c))
            .collect();
        let (entry, bytes) = self.copy_entry(via, src, &reuse, &path)?;
        let type_changed = existing
            .as_ref()
            .is_some_and(|t| t.is_directory != src.is_directory);
        if type_changed {
            self.delete(dir, &src.name, signatures)?;
        }
        if existing.is_some() && !type_changed {
            self.update(dir, entry, signatures)?;
        } else {
            self.ensure_parent(dir, parent(source_path), signatures)?;
            self.create(dir, entry, signatures, false)?;
            if existing.is_none() {
                self.made_dir(dir, src);
            }
        }
        Ok(Outcome {
            bytes,
            conflict: conflict_seen,
            ..Outcome::default()
        })
    }

    /// The target version of `src`: its chunks mapped by `copy_chunks`.
    fn copy_entry(
        &self,
        via: Transfer,
        src: &Entry,
        reuse: &HashMap<String, FileChunk>,
        path: &str,
    ) -> Result<(Entry, u64)> {
        let mime = src
            .attributes
            .as_ref()
            .map(|a| a.mime.clone())
            .unwrap_or_default();
        let (chunks, bytes) = self.copy_chunks(via, &src.chunks, reuse, path, &src.name, &mime)?;
        let mut entry = src.clone();
        entry.chunks = chunks;
        // Target chunks belong to this entry alone: hard links become copies.
        entry.hard_link_id.clear();
        entry.hard_link_counter = 0;
        Ok((entry, bytes))
    }

    /// Maps every source chunk to a target chunk: reused when the target
    /// already holds a copy of it, copied otherwise (in parallel). Should one
    /// fail, the copies made here are freed.
    fn copy_chunks(
        &self,
        via: Transfer,
        src: &[FileChunk],
        reuse: &HashMap<String, FileChunk>,
        path: &str,
        name: &str,
        mime: &str,
    ) -> Result<(Vec<FileChunk>, u64)> {
        // A chunk, its bytes copied, and whether it is a new copy.
        let one = |c: &FileChunk| -> Result<(FileChunk, u64, bool)> {
            let id = fid::of_chunk(c);
            if let Some(t) = reuse
                .get(&id)
                .filter(|t| t.offset == c.offset && t.size == c.size)
            {
                let mut kept = c.clone();
                kept.file_id = fid::of_chunk(t);
                kept.fid = Default::default();
                kept.source_file_id = id;
                kept.source_fid = Default::default();
                kept.is_compressed = t.is_compressed;
                return Ok((kept, 0, false));
            }
            let (copy, bytes) = if c.is_chunk_manifest {
                self.copy_manifest(via, c, path, name, mime)?
            } else {
                self.copy_chunk(c, path, name, mime, via.deleted_too)?
            };
            Ok((copy, bytes, true))
        };
        // One chunk (most files) is copied right here: a hop to the chunk
        // pool would only add two thread switches.
        let results: Vec<Result<(FileChunk, u64, bool)>> = if src.len() <= 1 {
            src.iter().map(one).collect()
        } else {
            via.pool.install(|| src.par_iter().map(one).collect())
        };
        let mut out = Vec::with_capacity(src.len());
        let mut bytes = 0;
        let mut failed = None;
        let mut copies = Vec::new();
        for r in results {
            match r {
                Ok((c, b, copied)) => {
                    if copied {
                        copies.push(c.file_id.clone());
                    }
                    out.push(c);
                    bytes += b;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => {
                self.chunks_out.discard(&copies);
                Err(e)
            }
            None => Ok((out, bytes)),
        }
    }

    fn copy_chunk(
        &self,
        c: &FileChunk,
        path: &str,
        name: &str,
        mime: &str,
        deleted_too: bool,
    ) -> Result<(FileChunk, u64)> {
        let id = fid::of_chunk(c);
        // Encrypted chunks are stored as ciphertext (+28 bytes): copy them verbatim.
        let plain = c.cipher_key.is_empty();
        let data = retry(&format!("download {id}"), Policy::FOREVER, || {
            self.chunks_in
                .download(&id, plain.then_some(c.size), deleted_too)
        })
        .map_err(|e| e.context(format!("chunk {id} of {path}")))?;
        let new_id = retry(&format!("upload {id}"), Policy::FOREVER, || {
            self.chunks_out.upload(path, name, mime, &data)
        })
        .map_err(|e| e.context(format!("chunk {id} of {path}")))?;
        let mut out = c.clone();
        out.file_id = new_id;
        out.fid = Default::default();
        out.source_file_id = id;
        out.source_fid = Default::default();
        if plain {
            // Downloaded without Accept-Encoding, the volume server sent plain bytes.
            out.is_compressed = false;
        }
        Ok((out, data.len() as u64))
    }

    /// A manifest chunk lists further chunks: copy those, then upload a
    /// manifest that names the target copies.
    fn copy_manifest(
        &self,
        via: Transfer,
        c: &FileChunk,
        path: &str,
        name: &str,
        mime: &str,
    ) -> Result<(FileChunk, u64)> {
        let id = fid::of_chunk(c);
        if !c.cipher_key.is_empty() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("chunk manifest {id} of {path} is encrypted; filer-sync cannot rewrite it"),
            ));
        }
        let blob = retry(&format!("download manifest {id}"), Policy::FOREVER, || {
            self.chunks_in.download(&id, None, via.deleted_too)
        })?;
        let manifest = FileChunkManifest::parse_from_bytes(&blob).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("chunk manifest {id} of {path}: {e}"),
            )
        })?;
        let (children, bytes) =
            self.copy_chunks(via, &manifest.chunks, &HashMap::new(), path, name, mime)?;
        let mut out_manifest = FileChunkManifest::new();
        out_manifest.chunks = children
            .into_iter()
            .map(|mut ch| {
                // weed stores manifest children by FileId message, not text.
                ch.fid = fid::parse(&ch.file_id).ok().into();
                ch.file_id.clear();
                ch.source_fid = fid::parse(&ch.source_file_id).ok().into();
                ch.source_file_id.clear();
                ch
            })
            .collect();
        let data = out_manifest
            .write_to_bytes()
            .map_err(|e| Error::remote(format!("encode manifest: {e}")))?;
        let new_id = retry(&format!("upload manifest {id}"), Policy::FOREVER, || {
            self.chunks_out
                .upload(path, "", "application/octet-stream", &data)
        })?;
        let mut out = c.clone();
        out.file_id = new_id;
        out.fid = Default::default();
        out.source_file_id = id;
        out.source_fid = Default::default();
        out.is_compressed = false;
        out.cipher_key.clear();
        Ok((out, bytes))
    }

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
            if !entry.is_directory && !self.newer_target_wins && dirs.fresh.contains(dir) {
                dirs.absent.insert(join_path(dir, &entry.name));
                dirs.bound();
            }
        }
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
                ..
            } => {
                // (An event without the old entry's mtime moves what is
                // there, as before.)
                let old = self.lookup_target(old_dir, old_name)?;
                if old.is_some_and(|t| *old_mtime_ns == 0 || mtime_ns(&t) <= *old_mtime_ns) {
                    return Ok(Replayed::AsPlanned);
                }
                if moot(source, entry)? {
                    return Ok(Replayed::Moot);
                }
                Ok(Replayed::NewOnly(Box::new(action.new_entry_only())))
            }
            Action::Delete { .. } => Ok(Replayed::AsPlanned),
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
            let listed = retry("ListEntries", Policy::SHORT, || {
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
        let now = retry("LookupDirectoryEntry", Policy::SHORT, || {
            self.source.lookup(dir, name)
        })?;
        Ok(now.is_none_or(|now| version(&now) != asked))
    }
}

/// A target folder standing in for a source folder that is gone: the mode a
/// filer gives the folders it makes, and an mtime (the epoch) older than any
/// version the source can send, so the source's attributes win when a later
/// event describes the folder where it went.
fn stand_in_folder() -> Entry {
    let mut e = Entry::new();
    e.is_directory = true;
    let a = e.attributes.mut_or_insert_default();
    a.file_mode = (1 << 31) | 0o771;
    a.crtime = crate::util::now_ns() / 1_000_000_000;
    e
}

fn chunk_ids(e: &Entry) -> Vec<String> {
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
        .map(|c| (c.source_file_id.clone(), c.offset, c.size))
        .collect();
    src.is_directory == t.is_directory
        && attrs(src) == attrs(t)
        && src.content == t.content
        && src.extended == t.extended
        && src_chunks == t_chunks
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
}
