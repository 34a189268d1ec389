//! How an `Applier` writes to the target, once `mod.rs` has decided what to
//! write: deletes, missing parent folders made with their source's
//! attributes, exclusive creates and outright replaces (`write_unseen`, which
//! falls back to the looked-up path when the target is not as the event
//! implies), updates, and the looked-up upsert that copies chunks, weighs a
//! conflict and frees what it does not keep. Every write is confined under
//! the target folder and goes through the retry helper; nothing here decides
//! whether an action should be applied.

use super::copy::{self, Copied};
use super::{chunk_ids, same_entry, Applier, Outcome, Parked, Transfer};
use crate::error::{ErrorKind, Result};
use crate::paths::{join_path, parent, split_path};
use crate::pb::filer::*;
use crate::replicate::conflict::{self, mtime_ns, size, Verdict};
use crate::retry::retry;
use crate::state::Conflict;
use crate::volume::fid;
use std::collections::HashMap;

/// How `write_unseen` writes.
#[derive(Clone, Copy)]
pub(super) enum Write {
    /// CreateEntry with o_excl: fails when the entry is there.
    Create,
    /// CreateEntry without o_excl: the filer makes the entry when it is
    /// missing and replaces it when it is there (freeing the old chunks the
    /// new entry does not name), as an UpdateEntry would.
    Replace,
}

impl Applier {
    /// Deletes a target entry with everything below it and its chunks (the
    /// target's chunks are its own copies). A missing entry is not an error.
    pub(super) fn delete(&self, dir: &str, name: &str, signatures: &[i32]) -> Result<()> {
        self.delete_as(dir, name, signatures, true)
    }

    /// `delete`; not `recursive`, a folder that holds entries stays (the
    /// filer refuses).
    pub(super) fn delete_as(
        &self,
        dir: &str,
        name: &str,
        signatures: &[i32],
        recursive: bool,
    ) -> Result<()> {
        self.confined(dir, name)?;
        let mut req = DeleteEntryRequest::new();
        req.directory = dir.to_string();
        req.name = name.to_string();
        req.is_delete_data = true;
        req.is_recursive = recursive;
        req.ignore_recursive_error = recursive;
        req.is_from_other_cluster = true;
        req.signatures = signatures.to_vec();
        retry("DeleteEntry", self.calls, &self.cancel, || {
            self.target.delete(&req)
        })
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
    pub(super) fn ensure_parent(
        &self,
        dir: &str,
        source_dir: &str,
        signatures: &[i32],
    ) -> Result<()> {
        // A folder the target's users removed lately is looked up again,
        // whatever the hint says (it predates the removal).
        let known = self.dirs.lock().unwrap().is_known(dir)
            && self.removals().is_none_or(|r| r.get(dir).is_none());
        if !self.inside(dir) || source_dir == "/" || known {
            return Ok(());
        }
        let (pd, name) = split_path(dir);
        if self.lookup_target(pd, name)?.is_none() {
            let spd = parent(source_dir);
            let mut e = self.source_folder(source_dir)?.unwrap_or_else(|| {
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

    /// A folder this process just made on the target: it is fresh.
    fn made_dir(&self, dir: &str, entry: &Entry) {
        if entry.is_directory {
            self.dirs
                .lock()
                .unwrap()
                .remember_made(&join_path(dir, &entry.name));
        }
    }

    /// Active-active, after a move into the target folder `dir`: the folder
    /// is weighed against the source's (`source_dir`) as an upsert of it
    /// would be, once per window. A filer that makes a missing folder for a
    /// move logs no event for it, so nothing else would carry its
    /// attributes to a target that holds that folder already (kept there
    /// over the source's delete of it, say): the clusters would keep two
    /// versions of one folder until a rescan.
    pub(super) fn level_folder(
        &self,
        dir: &str,
        source_dir: &str,
        signatures: &[i32],
        via: Transfer,
    ) -> Result<()> {
        if !self.newer_target_wins || !self.inside(dir) || source_dir == "/" {
            return Ok(());
        }
        if !self
            .source_view
            .lock()
            .unwrap()
            .levelled
            .insert(dir.to_string())
        {
            return Ok(());
        }
        let Some(mut folder) = self.source_folder(source_dir)? else {
            return Ok(());
        };
        let (pd, name) = split_path(dir);
        folder.name = name.to_string();
        self.upsert(pd, &folder, None, signatures, source_dir, via, Vec::new())?;
        Ok(())
    }

    /// The folder at `source_path` as the source holds it now, when that
    /// differs from the event's `entry`. Concurrent writes into a new folder
    /// each create it (the filer makes missing parents), and the log's order
    /// of those creations need not be the store's: the last one logged may
    /// not be the one that stayed. A folder that is gone or a file now:
    /// the event as it is (the events that follow say what became of it).
    pub(super) fn folder_now(&self, source_path: &str, entry: &Entry) -> Result<Option<Entry>> {
        let found = self.source_folder(source_path)?.map(|mut now| {
            // Written under the event's (admitted) name, never the one the
            // lookup's answer carries.
            now.name.clone_from(&entry.name);
            now
        });
        Ok(found.filter(|now| !same_entry(now, entry)))
    }

    /// The folder at `source_path` on the source now (none: gone, or a
    /// file there).
    fn source_folder(&self, source_path: &str) -> Result<Option<Entry>> {
        let (dir, name) = split_path(source_path);
        let found = retry("LookupDirectoryEntry", self.calls, &self.cancel, || {
            self.source.lookup(dir, name)
        })?;
        Ok(found.filter(|e| e.is_directory))
    }

    /// Creates `entry` in the target folder `dir`, carrying the signatures;
    /// with `exclusive`, fails (`ErrorKind::Exists`) when it is there.
    fn create(&self, dir: &str, entry: Entry, signatures: &[i32], exclusive: bool) -> Result<()> {
        self.confined(dir, &entry.name)?;
        self.create_now(&self.create_request(dir, entry, signatures, exclusive))
    }

    fn create_now(&self, req: &CreateEntryRequest) -> Result<()> {
        retry("CreateEntry", self.calls, &self.cancel, || {
            self.target.create(req)
        })
    }

    /// The request `create` sends, its path confined already.
    fn create_request(
        &self,
        dir: &str,
        entry: Entry,
        signatures: &[i32],
        exclusive: bool,
    ) -> CreateEntryRequest {
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
        req
    }

    /// `write_unseen` with `via.park`: the creation is sent and left
    /// unanswered, with the copies made for it (taken from `fresh`);
    /// `Err(req)` when the target filer has no mutation stream to send it
    /// on.
    fn park(
        &self,
        req: CreateEntryRequest,
        bytes: u64,
        fresh: &mut Vec<copy::Fresh>,
    ) -> std::result::Result<Parked, CreateEntryRequest> {
        let (dir, name) = (req.directory.clone(), req.entry.name.clone());
        let is_dir = req.entry.is_directory;
        let sent = self.target.send_create(req)?;
        Ok(Parked {
            sent,
            dir,
            name,
            is_dir,
            bytes,
            fresh: std::mem::take(fresh),
        })
    }

    /// A parked creation's outcome once the filer answered it. On failure
    /// its chunk copies are freed unless the target names them (the
    /// creation may have landed) and the action is to be applied again
    /// without parking: that path weighs what the target holds.
    pub fn settle(&self, p: Parked) -> Result<Outcome> {
        let written = p
            .sent
            .and_then(|sent| self.target.finish_create(sent, &p.dir, &p.name));
        match written {
            Ok(()) => {
                if p.is_dir {
                    self.dirs
                        .lock()
                        .unwrap()
                        .remember_made(&join_path(&p.dir, &p.name));
                }
                Ok(Outcome {
                    bytes: p.bytes,
                    ..Outcome::default()
                })
            }
            Err(e) => {
                self.free_unless_named(&p.dir, &p.name, &p.fresh);
                Err(e)
            }
        }
    }

    /// Writes `src` without asking the target first: its chunks are copied
    /// and the entry created exclusively (a new entry in a fresh folder) or
    /// written over (a file written anew, one-way: nothing to reuse, nothing
    /// to weigh; whether the target has it or not, as when this run skipped
    /// a version the source had replaced since). Should the target not be as
    /// expected (it has the new entry, or a folder at its path), the
    /// looked-up path decides, with the chunks copied here on offer; those
    /// it does not keep are freed.
    pub(super) fn write_unseen(
        &self,
        dir: &str,
        src: &Entry,
        signatures: &[i32],
        source_path: &str,
        via: Transfer,
        how: Write,
    ) -> Result<Outcome> {
        let path = join_path(dir, &src.name);
        let Copied {
            entry,
            bytes,
            mut fresh,
        } = self.copy_entry(via, src, &HashMap::new(), &path)?;
        let ready = self.confined(dir, &entry.name).and_then(|()| match how {
            Write::Create => Ok(()),
            Write::Replace => self.ensure_parent(dir, parent(source_path), signatures),
        });
        let copied;
        let written = match ready {
            Ok(()) => {
                let exclusive = matches!(how, Write::Create);
                let mut req = self.create_request(dir, entry, signatures, exclusive);
                if via.park {
                    match self.park(req, bytes, &mut fresh) {
                        Ok(parked) => {
                            return Ok(Outcome {
                                bytes,
                                parked: Some(parked),
                                ..Outcome::default()
                            })
                        }
                        Err(unsent) => req = unsent,
                    }
                }
                copied = req.entry.chunks.clone();
                self.create_now(&req)
            }
            Err(e) => {
                copied = entry.chunks;
                Err(e)
            }
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
                log::debug!(
                    "{path} is not on the target as its event implies ({e}); comparing \
                    before writing"
                );
                let out = self.upsert(dir, src, None, signatures, source_path, via, copied);
                self.free_unless_named(dir, &src.name, &fresh);
                out.map(|o| Outcome {
                    bytes: o.bytes + bytes,
                    ..o
                })
            }
            Err(e) => {
                self.free_unless_named(dir, &src.name, &fresh);
                Err(e)
            }
        }
    }

    /// Frees the copies in `fresh` that the target's entry at `dir/name`
    /// does not name: a write that failed (or that was decided otherwise)
    /// leaves none behind. When the target cannot be asked, they are kept
    /// rather than risk freeing a chunk in use (a write whose answer was lost
    /// may have landed).
    fn free_unless_named(&self, dir: &str, name: &str, fresh: &[copy::Fresh]) {
        if fresh.is_empty() {
            return;
        }
        match self.lookup_target(dir, name) {
            Ok(t) => self.free_unkept(fresh, &t.iter().flat_map(chunk_ids).collect()),
            Err(e) => log::warn!(
                "{}: {} chunk copies kept, the target could not be asked ({e})",
                join_path(dir, name),
                fresh.len()
            ),
        }
    }

    fn update(&self, dir: &str, entry: Entry, signatures: &[i32]) -> Result<()> {
        self.confined(dir, &entry.name)?;
        let mut req = UpdateEntryRequest::new();
        req.directory = dir.to_string();
        req.entry = Some(entry).into();
        req.is_from_other_cluster = true;
        req.signatures = signatures.to_vec();
        retry("UpdateEntry", self.calls, &self.cancel, || {
            self.target.update(&req)
        })
    }

    pub(super) fn lookup_target(&self, dir: &str, name: &str) -> Result<Option<Entry>> {
        retry("LookupDirectoryEntry", self.calls, &self.cancel, || {
            self.target.lookup(dir, name)
        })
    }

    /// Makes the target entry equal `src` after looking at what the target
    /// has. `spare` are target copies of source chunks made already.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn upsert(
        &self,
        dir: &str,
        src: &Entry,
        base: Option<&Entry>,
        signatures: &[i32],
        source_path: &str,
        via: Transfer,
        spare: Vec<FileChunk>,
    ) -> Result<Outcome> {
        let spare_was_empty = spare.is_empty();
        let existing = self.lookup_target(dir, &src.name)?;
        // Active-active, nothing there: the target may have had a version
        // here that its own users removed or moved away since (logged on
        // its side, seen by the opposite direction). Had this event come
        // before that, it would have been weighed against that version; so
        // it is now, as the other cluster weighed them.
        if existing.is_none() && self.newer_target_wins {
            let path = join_path(dir, &src.name);
            if let Some((gone, gone_ns)) = self.removals().and_then(|r| r.removed_at(&path)) {
                if conflict::same_version(src, &gone) {
                    // Made there once (a replayed event), and removed since.
                    log::debug!("{path}: the target had this version and removed it since");
                    return Ok(Outcome {
                        skipped: true,
                        ..Outcome::default()
                    });
                }
                // Made by the source's users after the sync had carried
                // this removal there: newer than it, whatever the clocks.
                let after = self
                    .removed_there
                    .as_ref()
                    .is_some_and(|r| r.made_after(source_path, src, gone_ns));
                let behind =
                    self.dirs.lock().unwrap().is_behind(&path) || self.skipped_over(&path, &gone);
                let r = conflict::weigh(src, base, behind, &gone);
                if after {
                    log::debug!("{path}: made on the source after the removal here reached it");
                } else if r.verdict == Verdict::Target && !src.is_directory {
                    log::debug!(
                        "{path}: the target removed a version that wins over this one; not made"
                    );
                    return Ok(Outcome {
                        skipped: true,
                        conflict: r.conflict.then(|| Conflict {
                            path,
                            source_mtime_ns: mtime_ns(src),
                            source_size: size(src),
                            source_origin: signatures.first().copied().unwrap_or(0),
                            target_mtime_ns: mtime_ns(&gone),
                            target_size: size(&gone),
                            source_won: false,
                        }),
                        ..Outcome::default()
                    });
                }
            }
        }
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
                let path = join_path(dir, &src.name);
                if self.source_replaced(source_path, src)? {
                    if base.is_some_and(|b| conflict::same_version(b, t)) {
                        // The target holds a version the source had seen.
                        self.dirs.lock().unwrap().mark_behind(path);
                    }
                    return Ok(Outcome {
                        skipped: true,
                        ..Outcome::default()
                    });
                }
                let behind = self.dirs.lock().unwrap().is_behind(&path);
                let r = conflict::weigh(src, base, behind, t);
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
                        "conflict at {path}: {} version wins (source mtime {} ns, target mtime {} \
                            ns)",
                        if c.source_won {
                            "the source's"
                        } else {
                            "the target's"
                        },
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
        let mut reuse: HashMap<String, FileChunk> = spare
            .into_iter()
            .chain(existing.iter().flat_map(|t| t.chunks.iter().cloned()))
            .map(|c| (fid::source_of_chunk(&c), c))
            .filter(|(source, _)| !source.is_empty())
            .collect();
        // Source chunks that are copies of the target's own chunks (a file
        // written on the target, copied to the source, changed there in its
        // attributes only): their bytes are here already.
        if let Some(t) = &existing {
            let own: HashMap<String, &FileChunk> =
                t.chunks.iter().map(|c| (fid::of_chunk(c), c)).collect();
            for c in &src.chunks {
                if let Some(t) = own.get(&fid::source_of_chunk(c)) {
                    reuse.insert(fid::of_chunk(c), (*t).clone());
                }
            }
        }
        let Copied {
            entry,
            bytes,
            fresh,
        } = self.copy_entry(via, src, &reuse, &path)?;
        let type_changed = existing
            .as_ref()
            .is_some_and(|t| t.is_directory != src.is_directory);
        // Offered to a second look should the exclusive create below fail.
        let copied = if existing.is_none() && spare_was_empty {
            entry.chunks.clone()
        } else {
            Vec::new()
        };
        let written = (|| {
            if type_changed {
                self.delete(dir, &src.name, signatures)?;
            }
            if existing.is_some() && !type_changed {
                self.update(dir, entry, signatures)
            } else {
                self.ensure_parent(dir, parent(source_path), signatures)?;
                // Nothing was there when looked at: created exclusively, so
                // that a write made there since is weighed, not overwritten.
                // (Once: the second time, as before, it is written over.)
                self.create(
                    dir,
                    entry,
                    signatures,
                    existing.is_none() && spare_was_empty,
                )?;
                if existing.is_none() {
                    self.made_dir(dir, src);
                }
                Ok(())
            }
        })();
        match written {
            Err(e) if e.kind() == ErrorKind::Exists && spare_was_empty => {
                log::debug!("{path} was written on the target meanwhile; comparing again");
                let out = self.upsert(dir, src, base, signatures, source_path, via, copied);
                self.free_unless_named(dir, &src.name, &fresh);
                return out.map(|o| Outcome {
                    bytes: o.bytes + bytes,
                    ..o
                });
            }
            Err(e) => {
                self.free_unless_named(dir, &src.name, &fresh);
                return Err(e);
            }
            Ok(()) => {}
        }
        self.dirs.lock().unwrap().caught_up(&path);
        Ok(Outcome {
            bytes,
            conflict: conflict_seen,
            ..Outcome::default()
        })
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
