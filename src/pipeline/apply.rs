//! Applying one window: level by level (see `plan`) on the direction's event
//! pool, the window's deletes weighed against `--max-delete` first, each
//! action retried until its fault passes, superseded on the source, or
//! recorded in the failure ledger; what to commit is handed back to the run
//! loop in `mod.rs`, which alone commits.

use super::window::DeleteBudget;
use super::{fenced, plan, Flow, Pools};
use crate::apply::{Ahead, Outcome, Parked, Planned, Replayed, Transfer};
use crate::error::{Error, ErrorKind, Result};
use crate::filer::Event;
use crate::paths::join_path;
use crate::replicate::{event_paths, Action};
use crate::retry::{retry, Policy};
use crate::state::{Commit, Failure};
use rayon::prelude::*;
use rayon::ThreadPool;
use std::time::Instant;

/// What applying part of a window did: what to commit, and what a dry run
/// would have changed.
#[derive(Default)]
struct Done {
    commit: Commit,
    planned: Vec<Planned>,
}

impl Done {
    fn merge(&mut self, other: Done) {
        self.commit.merge(other.commit);
        self.planned.extend(other.planned);
    }
}

/// A window's events with the actions planned for each, and the events
/// refused (ledgered with their reason, never applied).
pub(super) struct PlannedWindow {
    events: Vec<Event>,
    actions: Vec<Vec<Action>>,
    refused: Vec<Failure>,
}

impl PlannedWindow {
    /// Plans `window`. An event the source gave with names that are not
    /// one path component each is refused; the window goes on.
    pub(super) fn of(f: &Flow, window: Vec<Event>) -> PlannedWindow {
        let mut refused = Vec::new();
        let actions = window
            .iter()
            .map(|ev| {
                f.scope.plan(ev).unwrap_or_else(|e| {
                    refused.push(Failure {
                        event_ts_ns: ev.ts_ns,
                        path: shown(&event_paths(ev)),
                        error: e.to_string(),
                    });
                    Vec::new()
                })
            })
            .collect();
        PlannedWindow {
            events: window,
            actions,
            refused,
        }
    }

    /// Its events, in log order.
    pub(super) fn events(&self) -> &[Event] {
        &self.events
    }

    /// Copies ahead the chunks of what the window writes (see
    /// `Applier::copy_ahead`), but those of its first `checked` events:
    /// replayed, they are most often moot, and their chunks are left alone.
    pub(super) fn copy_ahead<'f>(
        &self,
        f: &'f Flow,
        chunks: &ThreadPool,
        checked: usize,
    ) -> Ahead<'f> {
        let began = Instant::now();
        let fresh = self.actions.iter().skip(checked).flatten();
        let ahead = f.applier.copy_ahead(fresh, chunks);
        log::debug!(
            "{}: copying ahead took {:.1} ms",
            f.name,
            began.elapsed().as_secs_f64() * 1000.0
        );
        ahead
    }
}

/// Applies a planned window level by level (see `plan`), with its chunks
/// copied `ahead` already or copied ahead first; returns what to commit and
/// what a dry run planned. Fails only when a stop was requested mid-window
/// (nothing is committed then). The first `checked` events may have been
/// applied by a process that stopped before committing them: see
/// `apply_one`.
pub(super) fn apply_window(
    f: &Flow,
    pools: &Pools,
    window: PlannedWindow,
    (checked, ahead): (usize, Option<Ahead>),
    budget: &mut Option<DeleteBudget>,
) -> Result<(Commit, Vec<Planned>)> {
    f.applier.new_window();
    let mut deletes = 0;
    if let Some(b) = budget {
        // In entries: a folder's delete takes everything below it (a
        // filer logs a recursive delete's children too: counted once).
        let mut paths: Vec<String> = window
            .actions
            .iter()
            .flatten()
            .filter_map(|a| match a {
                Action::Delete { dir, name, .. } => Some(join_path(dir, name)),
                _ => None,
            })
            .collect();
        paths.sort();
        for p in crate::verify::deletes::topmost(&paths) {
            deletes += 1 + entries_below(f, p, b.max)?;
        }
        if let Err(total) = b.take(Instant::now(), deletes) {
            return Err(Error::new(
                ErrorKind::Paused,
                format!(
                    "{}: paused: the next window would make {total} deletes on the target within \
                     a minute, more than --max-delete {}; nothing of it was applied. Check the \
                     source, then rerun with a larger --max-delete to let it through",
                    f.name, b.max
                ),
            ));
        }
    }
    let _ahead = ahead.unwrap_or_else(|| window.copy_ahead(f, &pools.chunks, checked));
    let PlannedWindow {
        events,
        actions,
        refused,
    } = window;
    let paths: Vec<Vec<String>> = events.iter().map(event_paths).collect();
    let planned: Vec<(Event, Vec<Action>)> = events.into_iter().zip(actions).collect();
    let mut total = Done::default();
    total.commit.failures = refused;
    let unparked = Transfer {
        pool: &pools.chunks,
        deleted_too: false,
        park: false,
    };
    // An event of a level that runs in parallel leaves its creation
    // parked (`Transfer::park`): sent, its answer waited for once the
    // level's others are sent too.
    let apply_event = |i: usize, park: bool| -> Result<(Done, Option<Parked>)> {
        let mut d = Done::default();
        let (ev, actions) = &planned[i];
        d.commit.events += 1;
        let via = Transfer {
            park: park && actions.len() == 1,
            ..unparked
        };
        let mut parked = None;
        for a in actions {
            parked = apply_one(f, via, (ev, a, i < checked), &mut d)?;
        }
        Ok((d, parked))
    };
    for level in plan::levels(&paths) {
        // A level of one event (a live window, most often) is applied on
        // this thread: handing it to the pool costs two thread switches
        // and wakes idle workers one after another (live lag p50 1.10 ->
        // 1.01 ms, 4 same-run pairs).
        let results: Vec<Result<(Done, Option<Parked>)>> = match level[..] {
            [i] => vec![apply_event(i, false)],
            _ => pools
                .events
                .install(|| level.par_iter().map(|&i| apply_event(i, true)).collect()),
        };
        let mut parked = Vec::new();
        let mut failed = None;
        for (r, &i) in results.into_iter().zip(&level) {
            match r {
                Ok((d, p)) => {
                    total.merge(d);
                    parked.extend(p.map(|p| (i, p)));
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // Each parked creation is waited for, also once the level has
        // failed (a stop, a lost lease): a process that ends with creations
        // in flight cancels them, and a 4.48 filer running a cancelled one
        // can crash (a nil IntervalList in CompactFileChunks).
        for (i, p) in parked {
            let settled = f.applier.settle(p);
            if failed.is_some() {
                continue;
            }
            let (ev, actions) = &planned[i];
            let a = &actions[0];
            match settled {
                Ok(out) => applied(f, a, out, &mut total),
                Err(e) => {
                    log::debug!("{}: {}: {e}; applying it again", f.name, a.target());
                    if let Err(e) = apply_one(f, unparked, (ev, a, i < checked), &mut total) {
                        failed = Some(e);
                    }
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    if !f.dry_run {
        f.applier.end_window()?;
    }
    total.commit.deletes = deletes;
    Ok((total.commit, total.planned))
}

/// The entries below `path` on the target when it is a folder (counting
/// stops past `cap`), else 0.
fn entries_below(f: &Flow, path: &str, cap: u64) -> Result<u64> {
    let target = f.applier.target();
    let (dir, name) = crate::paths::split_path(path);
    let what = format!("LookupDirectoryEntry {path}");
    let found = retry(&what, Policy::FOREVER, &f.cancel, || {
        target.lookup(dir, name)
    })?;
    match found {
        Some(e) if e.is_directory => {
            crate::verify::deletes::count_below(target, path, cap, &f.cancel)
        }
        _ => Ok(0),
    }
}

/// An event's paths as the ledger and the log show them: old -> new, with
/// control characters (a NUL a peer put in a name) escaped.
fn shown(paths: &[String]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.escape_debug().to_string()).collect();
    shown.join(" -> ")
}

/// Applies one action, retrying passing faults until they pass (never
/// skipping an event); a permanent failure is either superseded on the
/// source (a lossless skip) or goes to the ledger. A `replayed` upsert or
/// rename whose version the source no longer holds is skipped (see
/// `Applier::replayed`): applied again after later events had moved
/// or removed it, it would bring back an entry (and its folders) that the
/// source has not got; the later events follow.
///
/// Chunks are first read as live only: a chunk the source has deleted most
/// often belongs to a version replaced or removed since (a catch-up over a
/// busy tree meets many), whose bytes need not travel: its event is skipped
/// once the source confirms it moved on, and the later events bring what
/// came next. Should the source still hold that version, the action is
/// applied again reading deleted chunks too, as the reference always does.
///
/// Chunks move `via` (its `deleted_too` set as above); a creation it parks
/// is returned, for the caller to settle.
fn apply_one(
    f: &Flow,
    via: Transfer,
    (ev, a, replayed): (&Event, &Action, bool),
    done: &mut Done,
) -> Result<Option<Parked>> {
    fenced(f)?;
    let c = &mut done.commit;
    let instead;
    let a = match replayed.then(|| f.applier.replayed(a)) {
        Some(Ok(Replayed::Moot)) => {
            f.applier.skipped_replayed();
            f.applier.mark_if_behind(a);
            c.superseded += 1;
            log::debug!(
                "{}: {} changed on the source since this replayed event; skipping it",
                f.name,
                a.target()
            );
            return Ok(None);
        }
        Some(Ok(Replayed::NewOnly(upsert))) => {
            instead = *upsert;
            &instead
        }
        // Unknown: applied as planned, as it was before the stop.
        _ => a,
    };
    // Every call inside is retried where it is made, until it succeeds
    // or fails for good: the action as a whole is tried once.
    let attempt = |deleted_too| {
        let via = Transfer { deleted_too, ..via };
        f.applier.apply(a, ev.ts_ns, via)
    };
    let mut result = attempt(false);
    if let (Err(e), Some((p, entry))) = (&result, a.source_version()) {
        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt) {
            if f.applier.source_replaced(p, entry).unwrap_or(false) {
                f.applier.skipped_version(a);
                c.superseded += 1;
                log::debug!(
                    "{}: {p} changed again on the source; skipping this version ({e})",
                    f.name
                );
                return Ok(None);
            }
            if e.kind() == ErrorKind::NotFound {
                result = attempt(true);
            }
        }
    }
    match result {
        // Settled by the caller (`apply_window`).
        Ok(Outcome {
            parked: Some(p), ..
        }) => Ok(Some(p)),
        Ok(out) => {
            applied(f, a, out, done);
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
        Err(e) => {
            done.commit.failures.push(Failure {
                event_ts_ns: ev.ts_ns,
                path: a.target(),
                error: e.to_string(),
            });
            Ok(None)
        }
    }
}

/// Counts what applying `a` did.
fn applied(f: &Flow, a: &Action, out: Outcome, done: &mut Done) {
    done.commit.bytes += out.bytes;
    done.commit.conflicts.extend(out.conflict);
    done.planned.extend(out.planned);
    if f.debug_actions {
        log::info!(
            "{}: {} {}",
            f.name,
            if out.skipped { "unchanged" } else { "applied" },
            a.target()
        );
    }
}
