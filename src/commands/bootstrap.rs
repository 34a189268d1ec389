//! The first run of a direction that has no checkpoint: the source's metadata
//! log may no longer hold its past (retention, a crashed filer), so the trees
//! are copied by a walk (the `verify` engine, level by level, in parallel),
//! and the log is followed from the source's clock at the walk's start, which
//! brings what changed while it ran. One way, B becomes A's copy (B-only
//! entries deleted unless `--b-no-delete`, within `--max-delete`); both ways,
//! what one side lacks is copied from the other and a path both hold in
//! different versions goes to the newer (a conflict, ledgered). Excluded
//! paths are not walked. The checkpoints are recorded only once the walk is
//! done: a run stopped halfway walks again (equal entries are skipped). A
//! copy that fails for good (a chunk gone) goes to the failure ledger, as a
//! failed event does, and the run goes on.

use super::log_start::lost_since;
use super::verify::{one_per_path, Compare, Staged};
use super::Peers;
use crate::config::{Bootstrap, Side, SyncConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::paths::under;
use crate::replicate::conflict::{self, mtime_ns, size};
use crate::replicate::left_out;
use crate::replicate::Action;
use crate::retry::{retry, Cancel, Policy};
use crate::state::{Commit, Conflict, Direction, Failure, State, WalkRecord};
use crate::stats::Stats;
use crate::util::utc;
use crate::verify::{deletes, Class, Diff};
use crate::volume::throttle::Throttle;
use crate::volume::{ChunkSource, Http};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// What a first run did.
#[derive(Default)]
pub struct FirstRun {
    /// The copies that failed for good (ledgered).
    pub failures: Vec<Failure>,
    /// The directions it walked: nothing but the walk was applied past
    /// their checkpoints.
    pub walked: Vec<Direction>,
}

/// Walks and copies when a direction of `cfg` has no checkpoint yet
/// (unless `--bootstrap log`), or when its checkpoint is older than the
/// start of its source's metadata log (the events between are gone; see
/// `log_start`); then records each such direction's checkpoint at its
/// source's clock before the walk, and (as `careful_until_ns`) its clock
/// after: the events logged while the walk ran may already be on the
/// target. A dry run never walks (it plans from the log alone: a walk's
/// copies are not planned), nor does a mesh link (`--origin-only`: a walk
/// would carry every cluster's entries over every link, not only its
/// source's own); there a lost stretch of log is only reported.
pub fn first_run(
    cfg: &SyncConfig,
    peers: &Peers,
    state: &mut State,
    cancel: &Cancel,
    throttle: &Option<Arc<Throttle>>,
) -> Result<FirstRun> {
    let two_way = !cfg.active_passive;
    let may_walk = !cfg.dry_run && !cfg.origin_only;
    let key = |(s, sig_s): (&Side, i32), (t, sig_t): (&Side, i32)| Direction {
        source_sig: sig_s,
        source_path: s.path.clone(),
        target_sig: sig_t,
        target_path: t.path.clone(),
        shard: cfg.shard,
    };
    let (a, b) = ((&cfg.a, peers.sig_a()), (&cfg.b, peers.sig_b()));
    let mut fresh = Vec::new();
    let mut gaps = 0;
    for (on, (src, dst), client) in [(true, (a, b), &peers.a), (two_way, (b, a), &peers.b)] {
        let k = key(src, dst);
        if !on || src.0.from_ts_ms != 0 {
            continue;
        }
        let walk = match state.position(&k)? {
            None => cfg.bootstrap == Bootstrap::Walk,
            Some(at) => {
                let chunks = ChunkSource::new(
                    client.clone(),
                    src.0.proxy,
                    Http::for_side(src.0.label, cfg.timeout_secs, &src.0.security),
                )
                .with_read_signer(src.0.security.read.clone());
                // Not knowing where the log begins must not stop the run:
                // it is followed as before.
                let lost = retry("where the log begins", Policy::SHORT, cancel, || {
                    lost_since(client, &chunks, at)
                })
                .unwrap_or_else(|e| {
                    log::warn!(
                        "{}→{}: where {}'s metadata log begins is unknown ({e}); it is followed \
                         from the checkpoint",
                        src.0.label,
                        dst.0.label,
                        src.0.label
                    );
                    None
                });
                if let Some(begins) = lost {
                    log::warn!(
                        "{}→{}: the checkpoint ({}) is older than the start of {}'s metadata \
                         log ({}): the events between are gone (log retention, fs.log.purge). {}",
                        src.0.label,
                        dst.0.label,
                        utc(at.0),
                        src.0.label,
                        utc(begins),
                        if may_walk {
                            "A walk of both folders repairs what they missed"
                        } else {
                            "Run `filer-sync verify --repair` on the pair to repair what they \
                             missed"
                        }
                    );
                    gaps += 1;
                }
                lost.is_some()
            }
        };
        if walk && may_walk {
            let start = retry("source clock", Policy::SHORT, cancel, || client.now_ns())?;
            fresh.push((k, start, client));
        }
    }
    if fresh.is_empty() {
        return Ok(FirstRun::default());
    }
    log::info!(
        "{}: copying {} {} {} {} by a walk; the log is followed from now on",
        if gaps > 0 { "log gap" } else { "first run" },
        cfg.a.path,
        if two_way { "<->" } else { "->" },
        cfg.b.path,
        if two_way { "both ways" } else { "one way" },
    );
    let why = if gaps > 0 { "log gap" } else { "first run" };
    let walked = match copy_by_walk(cfg, peers, (cancel, throttle), why, None, &[]) {
        Ok(w) => w,
        Err(e) => {
            for (k, start, _) in &fresh {
                state.record_walk(k, &Walked::stopped(why, *start, &e))?;
            }
            return Err(e);
        }
    };
    let (failed, mut conflicts) = (walked.failed, walked.conflicts);
    let failures = ledgered(why, failed.into_iter().chain(walked.refused));
    let mut walked_keys = Vec::new();
    for (i, (k, start, client)) in fresh.into_iter().enumerate() {
        state.record_walk(&k, &walked.record)?;
        let first = i == 0;
        let end = retry("source clock", Policy::SHORT, cancel, || client.now_ns())?;
        let commit = Commit {
            ts_ns: start,
            careful_until_ns: end,
            conflicts: if first {
                std::mem::take(&mut conflicts)
            } else {
                vec![]
            },
            failures: if first { failures.clone() } else { vec![] },
            ..Commit::default()
        };
        state.commit(&k, &commit)?;
        walked_keys.push(k);
    }
    Ok(FirstRun {
        failures,
        walked: walked_keys,
    })
}

/// A walk's (path, error) pairs as the failure ledger keeps them: no
/// event time, the walk named in the error.
pub fn ledgered(why: &str, failed: impl IntoIterator<Item = (String, String)>) -> Vec<Failure> {
    failed
        .into_iter()
        .map(|(path, error)| Failure {
            event_ts_ns: 0,
            path,
            error: format!("{why} walk: {error}"),
        })
        .collect()
}

/// What a walk found and did.
pub struct Walked {
    /// As the state keeps it (`State::record_walk`).
    pub record: WalkRecord,
    /// (target path, error) of the copies that failed.
    pub failed: Vec<(String, String)>,
    /// (path as listed, why) of the listed names refused (`Walk::refused`):
    /// neither compared nor copied; ledgered.
    pub refused: Vec<(String, String)>,
    pub conflicts: Vec<Conflict>,
}

impl Walked {
    /// The record of a walk that began at `started_ns` (this host's clock)
    /// and stopped short with `e`.
    pub fn stopped(why: &str, started_ns: i64, e: &Error) -> WalkRecord {
        WalkRecord {
            why: why.into(),
            started_ns,
            ended_ns: crate::util::now_ns(),
            error: e.to_string(),
            ..WalkRecord::default()
        }
    }
}

/// Weighs deleting `only_b` (paths relative to B's folder, shallowest
/// first, all depths) from B's `folder`, of which a walk listed `listed_b`
/// entries: the paths to delete (what is below a folder goes with it), or
/// the refusal that pauses the walk (see `deletes`).
pub(super) fn weigh_deletes<'p>(
    folder: &str,
    only_b: &'p [String],
    listed_b: u64,
    max: Option<u64>,
    what: &str,
) -> Result<Vec<&'p String>> {
    let n = only_b.len() as u64;
    if !deletes::allowed(n, listed_b, max) {
        let examples: Vec<String> = only_b.iter().take(3).map(|r| under(folder, r)).collect();
        return Err(deletes::refused(
            what,
            (n, listed_b),
            folder,
            max,
            &examples,
        ));
    }
    Ok(deletes::topmost(only_b))
}

/// How long a rescan's repairs wait for the directions to apply what was
/// logged up to the walk's end.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// Waits until each direction (`live[i]`) has applied what its source
/// logged up to `ends[i]` (its source's clock); false after `SETTLE_LIMIT`.
fn settle(live: &[Arc<Stats>], ends: &[i64], cancel: &Cancel) -> Result<bool> {
    let limit = std::time::Instant::now() + SETTLE_LIMIT;
    loop {
        if live.iter().zip(ends).all(|(s, &end)| s.applied_up_to(end)) {
            return Ok(true);
        }
        if std::time::Instant::now() > limit {
            return Ok(false);
        }
        if cancel.is_cancelled() {
            return Err(Error::new(ErrorKind::Interrupted, "stopped"));
        }
        cancel.sleep(Duration::from_millis(100));
    }
}

/// Marks a running walk's live count (`Stats::rescan_listed`) as not
/// running again, however the walk ends.
struct Live<'a>(&'a AtomicU64);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.store(u64::MAX, Relaxed);
    }
}

/// Walks both folders and makes them agree as `first_run` says.
///
/// With `settled` (a source time and a pace), a rescan while the directions
/// run (their live counters in `live`, A→B first): the listings keep the
/// pace, and entries changed since that time are left to the events. Its
/// repairs wait until every direction has applied what its source logged
/// up to the walk's end, and then touch only the paths whose entries are
/// still as the walk listed them on both sides: a difference left then is
/// one the log did not bring (a lost event, a write on the passive side),
/// never a change on its way. Both ways, what one side lacks is copied
/// from the other and a path both hold in different versions goes to the
/// newer, as a first run does; nothing is deleted. What the walk has listed
/// so far shows in `live[0]` while it runs.
pub fn copy_by_walk(
    cfg: &SyncConfig,
    peers: &Peers,
    (cancel, throttle): (&Cancel, &Option<Arc<Throttle>>),
    why: &str,
    settled: Option<(i64, Option<&Throttle>)>,
    live: &[Arc<Stats>],
) -> Result<Walked> {
    let started_ns = crate::util::now_ns();
    let two_way = !cfg.active_passive;
    let pair = cfg.pair();
    let cmp = Compare::connect(&pair, cancel.clone())?.with_throttle(throttle.clone());
    // The clusters the run began with, not a store that replaced one since
    // (`Compare::connect` read the signatures anew).
    let began = (peers.sig_a(), peers.sig_b());
    if (cmp.peers.sig_a(), cmp.peers.sig_b()) != began {
        peers.unchanged(cancel)?;
    }
    // --a-debug / --b-debug: every change applied to that side.
    let applied = |a: &Action| {
        let onto_b = a.signatures().first() == Some(&peers.sig_a());
        let (on, dir) = if onto_b {
            (cfg.b.debug, "A→B")
        } else {
            (cfg.a.debug, "B→A")
        };
        if on {
            log::info!("{dir}: applied {} ({why})", a.target());
        }
    };
    // A shard's walk (`--shards`) covers that shard's top-level entries.
    let skip = |rel: &str| {
        left_out(&cfg.a.excludes, &under(&cfg.a.path, rel))
            || left_out(&cfg.b.excludes, &under(&cfg.b.path, rel))
            || cfg.shard.is_some_and(|s| !s.holds(rel))
    };
    let own = AtomicU64::new(0);
    let _live = live.first().map(|s| {
        s.rescan_listed.store(0, Relaxed);
        Live(&s.rescan_listed)
    });
    let listed = live.first().map_or(&own, |s| &s.rescan_listed);
    let listed_b = AtomicU64::new(0);
    let mut walk = cmp.walk(false);
    walk.skip = Some(&skip);
    walk.pace = settled.and_then(|(_, pace)| pace);
    walk.listed = Some(listed);
    walk.listed_b = Some(&listed_b);
    if two_way {
        walk.missing_a = crate::verify::MissingA::Empty;
    }
    // Left to the events: what changed since the walk began (a second of
    // margin for S3's whole-second mtimes).
    let recent = |e: &Option<crate::pb::filer::Entry>| {
        settled.is_some_and(|(since, _)| {
            e.as_ref()
                .is_some_and(|e| mtime_ns(e) >= since - 2_000_000_000)
        })
    };
    let (onto_b, onto_a) = (cmp.applier(true), cmp.applier(false));
    let mut copied = 0u64;
    // What only B holds, one way: deleted once the walk has weighed it all.
    let mut only_b = Vec::new();
    let mut classes: BTreeMap<Class, u64> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut conflicts = Vec::new();
    // A first run's batch whose chunks are copied ahead, applied by the
    // next call (a last call with nothing applies it).
    let mut staged = None;
    let mut repair = |level: Vec<(String, Diff)>| -> Result<()> {
        let mut work = Vec::new();
        for (rel, d) in level {
            if settled.is_some() {
                // A rescan's repairs are what the log did not bring: each is
                // named, so that an operator (and a test) can tell which.
                log::info!("{why}: repairing {rel} ({})", d.class.name());
            }
            match (d.a, d.b) {
                (Some(ea), None) => work.push((&onto_b, cmp.copy_missing(true, &rel, ea))),
                (None, Some(eb)) if two_way => {
                    work.push((&onto_a, cmp.copy_missing(false, &rel, eb)))
                }
                (None, Some(_)) if cfg.b.deletes => only_b.push(rel),
                (Some(ea), Some(eb)) => {
                    let a_wins = !two_way || conflict::compare(&ea, &eb) != Ordering::Less;
                    if two_way && !ea.is_directory && !eb.is_directory {
                        conflicts.push(Conflict {
                            path: under(&cfg.b.path, &rel),
                            source_mtime_ns: mtime_ns(&ea),
                            source_size: size(&ea),
                            source_origin: peers.sig_a(),
                            target_mtime_ns: mtime_ns(&eb),
                            target_size: size(&eb),
                            source_won: a_wins,
                        });
                    }
                    work.push(if a_wins {
                        (&onto_b, cmp.copy(true, &rel, ea))
                    } else {
                        (&onto_a, cmp.copy(false, &rel, eb))
                    });
                }
                _ => {}
            }
        }
        copied += work.len() as u64;
        if settled.is_some() {
            // A rescan's level is applied before the next is looked up.
            failed.extend(cmp.apply_all(work, &applied));
            return Ok(());
        }
        // A first run's batch has its chunks copied while the one before it
        // applies; an empty batch applies the last.
        let before = staged.take();
        let (n, m) = (work.len(), before.as_ref().map_or(0, Staged::len));
        if n > 0 && m > 0 {
            log::debug!("{why}: {n} differences copied ahead while the {m} before them applied");
        }
        let (next, done) = cmp.stage_while(work, || before.map(|b| cmp.apply_staged(b, &applied)));
        failed.extend(done.into_iter().flatten());
        staged = Some(next);
        // A first run's walk; a rescan's runs beside the directions.
        crate::util::trim_heap();
        Ok(())
    };
    // A rescan holds its differences, level by level, until they settle.
    let mut held = Vec::new();
    // A first run repairs a depth's differences (folders' batches) together,
    // up to a window's worth (--batch-size): their small chunks are copied
    // ahead together.
    let mut pending = Vec::new();
    walk.levels(|diffs| {
        let depth_done = diffs.is_empty();
        for (rel, d) in one_per_path(diffs) {
            if recent(&d.a) || recent(&d.b) {
                continue;
            }
            *classes.entry(d.class).or_default() += 1;
            pending.push((rel, d));
        }
        if settled.is_some() {
            if !pending.is_empty() {
                held.push(std::mem::take(&mut pending));
            }
            Ok(())
        } else if depth_done || pending.len() >= cfg.batch_size {
            repair(std::mem::take(&mut pending))
        } else {
            Ok(())
        }
    })?;
    if settled.is_none() {
        repair(Vec::new())?;
    }
    if !held.iter().all(Vec::is_empty) {
        let ends = [&peers.a, &peers.b]
            .iter()
            .take(live.len())
            .map(|c| retry("source clock", Policy::SHORT, cancel, || c.now_ns()))
            .collect::<Result<Vec<i64>>>()?;
        if settle(live, &ends, cancel)? {
            peers.unchanged(cancel)?;
            for level in held {
                repair(cmp.as_listed(level)?)?;
            }
        } else {
            log::warn!(
                "{why}: the sync did not apply what was logged up to the walk's end within {} \
                 s; its differences are left to the next rescan",
                SETTLE_LIMIT.as_secs()
            );
        }
    }
    if !only_b.is_empty() {
        peers.unchanged(cancel)?;
        let b = (&cfg.b.path, listed_b.load(Relaxed));
        let top = weigh_deletes(b.0, &only_b, b.1, cfg.max_delete, why)?;
        log::info!("{why}: deleting {} entries only on B", only_b.len());
        let work = top
            .into_iter()
            .map(|rel| (&onto_b, cmp.delete_on_b(rel)))
            .collect::<Vec<_>>();
        copied += work.len() as u64;
        failed.extend(cmp.apply_all(work, &applied));
    }
    let refused = walk.take_refused();
    for (path, e) in &refused {
        log::error!("{why}: {path}: {e}");
    }
    let record = WalkRecord {
        why: why.into(),
        started_ns,
        ended_ns: crate::util::now_ns(),
        entries: listed.load(Relaxed),
        classes: classes
            .into_iter()
            .map(|(c, n)| (c.name().to_string(), n))
            .collect(),
        repaired: copied - failed.len() as u64,
        failed: failed.len() as u64,
        error: String::new(),
    };
    log::info!(
        "{why}: {} entries listed, {} differences, {copied} entries copied or deleted \
            ({} failed), {} conflicts",
        record.entries,
        record.differences(),
        failed.len(),
        conflicts.len()
    );
    Ok(Walked {
        record,
        failed,
        refused,
        conflicts,
    })
}
