//! `filer-sync verify`: walks both folders and reports every difference by
//! class; `--repair` then copies A's version over each one, deletes what is
//! only on B, and verifies again. `Compare` (connect, walk, repair) also
//! serves `migrate`.

use super::Peers;
use crate::apply::{Applier, Mode, Outcome, Transfer};
use crate::config::{Pair, Side, VerifyOptions};
use crate::error::{Error, Result};
use crate::filer::FilerClient;
use crate::paths::{split_path, under};
use crate::pb::filer::Entry;
use crate::replicate::Action;
use crate::retry::{retry, Cancel, Policy};
use crate::util::json_str;
use crate::verify::{classify, Class, Diff, Walk};
use crate::volume::throttle::Throttle;
use crate::volume::{self, ChunkSink, ChunkSource};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A pair of folders, connected, ready to walk and repair.
pub(super) struct Compare<'p> {
    pub pair: &'p Pair,
    pub peers: Peers,
    /// A's and B's HTTP agents.
    http: (volume::Http, volume::Http),
    /// Repairs in parallel.
    walkers: rayon::ThreadPool,
    /// Lists the folders of a level in parallel. A pool of its own: a
    /// listing waits for the repair of what came before it (the walk's
    /// queue is short), which must not wait for the listing's threads.
    listers: rayon::ThreadPool,
    chunks: rayon::ThreadPool,
    cancel: Cancel,
    /// `--bwlimit`, shared with the run that walks.
    throttle: Option<Arc<Throttle>>,
}

impl Compare<'_> {
    pub fn connect(pair: &Pair, cancel: Cancel) -> Result<Compare<'_>> {
        let timeout = Duration::from_secs(pair.timeout_secs);
        Ok(Compare {
            peers: Peers::connect(
                ('A', &pair.a.filers(), &pair.a.security),
                ('B', &pair.b.filers(), &pair.b.security),
                timeout,
            )?,
            pair,
            http: (
                volume::Http::for_side('A', pair.timeout_secs, &pair.a.security),
                volume::Http::for_side('B', pair.timeout_secs, &pair.b.security),
            ),
            // Copies as many at once as a sync's windows apply events.
            walkers: crate::pipeline::pool("verify", "walk", pair.workers)?,
            listers: crate::pipeline::pool("verify", "list", pair.workers.min(8))?,
            chunks: crate::pipeline::pool("verify", "chunk", pair.chunk_workers)?,
            cancel,
            throttle: None,
        })
    }

    /// Checks both sides' chunk servers (`Peers::probe_http`), and their
    /// filers too with `filers_too`.
    pub fn probe(&self, filers_too: bool) -> Result<()> {
        self.peers.probe_http(
            (&self.pair.a, &self.pair.b),
            (&self.http.0, &self.http.1),
            filers_too,
        )
    }

    /// Chunk bytes read within `throttle` (`--bwlimit`).
    pub fn with_throttle(self, throttle: Option<Arc<Throttle>>) -> Self {
        Compare { throttle, ..self }
    }

    pub fn walk(&self, checksum: bool) -> Walk<'_> {
        Walk {
            a: &self.peers.a,
            b: &self.peers.b,
            a_path: &self.pair.a.path,
            b_path: &self.pair.b.path,
            checksum,
            http: (&self.http.0, &self.http.1),
            pool: &self.listers,
            cancel: &self.cancel,
            skip: None,
            pace: None,
            listed: None,
            listed_b: None,
            missing_a: crate::verify::MissingA::RefusedIfBHolds,
            refused: Default::default(),
        }
    }

    /// Writes onto one side's folder what the other holds, one way: onto
    /// B from A (`onto_b`), or onto A from B. Its calls wait for a filer
    /// that is away (`Applier::giving_up` for a one-shot repair).
    pub fn applier(&self, onto_b: bool) -> Applier {
        let ((src, s), (dst, t)) = self.sides(onto_b);
        let (src_http, dst_http, conf_t) = if onto_b {
            (&self.http.0, &self.http.1, &self.peers.conf_b)
        } else {
            (&self.http.1, &self.http.0, &self.peers.conf_a)
        };
        Applier::new(
            (
                s.clone(),
                ChunkSource::new(s.clone(), src.proxy, src_http.clone())
                    .with_throttle(self.throttle.clone())
                    .with_read_signer(src.security.read.clone()),
            ),
            (
                t.clone(),
                // File ids as a sync's own applier takes them: shared by
                // the target's folders (per bucket), in large batches.
                ChunkSink::new(
                    t.clone(),
                    dst.proxy,
                    dst_http.clone(),
                    dst.placement.clone(),
                )
                .with_shared_ids(&conf_t.dir_buckets)
                .with_signatures(vec![s_sig(&self.peers, onto_b)]),
            ),
            &dst.path,
            Mode::Follow,
            self.cancel.clone(),
        )
    }

    /// (source side, its client), (target side, its client).
    fn sides(&self, onto_b: bool) -> SidesOf<'_> {
        let (a, b) = ((&self.pair.a, &self.peers.a), (&self.pair.b, &self.peers.b));
        if onto_b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// Makes `rel` on the other side `entry`, the version one side holds.
    pub fn copy(&self, onto_b: bool, rel: &str, entry: Entry) -> Action {
        self.copy_as(onto_b, rel, entry, crate::replicate::Change::Changed)
    }

    /// `copy` of an entry the other side was listed without.
    pub fn copy_missing(&self, onto_b: bool, rel: &str, entry: Entry) -> Action {
        self.copy_as(onto_b, rel, entry, crate::replicate::Change::Missing)
    }

    fn copy_as(
        &self,
        onto_b: bool,
        rel: &str,
        mut entry: Entry,
        change: crate::replicate::Change,
    ) -> Action {
        let ((src, _), (dst, _)) = self.sides(onto_b);
        let target = under(&dst.path, rel);
        // Written under the name the walk listed (and admitted), never one
        // a later lookup's answer carries.
        entry.name = split_path(&target).1.to_string();
        Action::Upsert {
            dir: split_path(&target).0.to_string(),
            entry,
            signatures: vec![s_sig(&self.peers, onto_b)],
            source: under(&src.path, rel),
            change,
            base: None,
        }
    }

    /// Removes `rel` from B.
    pub fn delete_on_b(&self, rel: &str) -> Action {
        let target = under(&self.pair.b.path, rel);
        let (dir, name) = split_path(&target);
        Action::Delete {
            dir: dir.to_string(),
            name: name.to_string(),
            signatures: vec![self.peers.sig_a()],
            base: None,
        }
    }

    /// Copies A's version over every differing path; with `delete_extra`,
    /// removes what exists only on B. Returns what failed.
    pub fn repair(
        &self,
        applier: &Applier,
        diffs: Vec<Diff>,
        delete_extra: bool,
    ) -> Vec<(String, String)> {
        let work = one_per_path(diffs)
            .into_iter()
            .filter_map(|(rel, d)| match (d.a, d.class) {
                (Some(entry), _) => Some(self.copy(true, &rel, entry)),
                (None, Class::OnlyOnB) if delete_extra => Some(self.delete_on_b(&rel)),
                _ => None,
            })
            .map(|a| (applier, a))
            .collect();
        self.apply_all(work, &|_| {})
    }

    /// The differences of `level` whose entries both sides still hold as
    /// the walk listed them (`classify` finds nothing between the two), in
    /// parallel; the rest changed since, and are left to the events.
    pub fn as_listed(&self, level: Vec<(String, Diff)>) -> Result<Vec<(String, Diff)>> {
        let now = |c: &FilerClient, root: &str, rel: &str| {
            let path = under(root, rel);
            let (dir, name) = split_path(&path);
            retry("LookupDirectoryEntry", Policy::SHORT, &self.cancel, || {
                c.lookup(dir, name)
            })
        };
        let kept: Vec<Result<Option<(String, Diff)>>> = self.walkers.install(|| {
            level
                .into_par_iter()
                .map(|(rel, d)| {
                    let a = now(&self.peers.a, &self.pair.a.path, &rel)?;
                    let b = now(&self.peers.b, &self.pair.b.path, &rel)?;
                    let same = |listed: &Option<Entry>, now: &Option<Entry>| {
                        classify(listed.as_ref(), now.as_ref()).is_empty()
                    };
                    Ok((same(&d.a, &a) && same(&d.b, &b)).then_some((rel, d)))
                })
                .collect()
        });
        kept.into_iter().filter_map(Result::transpose).collect()
    }

    /// Applies each action with its applier, its small chunks copied ahead
    /// first (`apply_staged`).
    pub fn apply_all(
        &self,
        work: Vec<(&Applier, Action)>,
        applied: &(dyn Fn(&Action) + Sync),
    ) -> Vec<(String, String)> {
        let (staged, ()) = self.stage_while(work, || ());
        self.apply_staged(staged, applied)
    }

    /// Copies ahead the small chunks `work` will copy (`Applier::copy_ahead`)
    /// on the chunk pool while `during` runs on this thread: a walk applies
    /// the batch before while the next one's chunks travel, as a sync's
    /// windows do.
    pub fn stage_while<'w, R: Send>(
        &self,
        work: Vec<(&'w Applier, Action)>,
        during: impl FnOnce() -> R + Send,
    ) -> (Staged<'w>, R) {
        let mut appliers: Vec<&Applier> = work.iter().map(|(ap, _)| *ap).collect();
        appliers.sort_by_key(|ap| *ap as *const Applier);
        appliers.dedup_by(|x, y| std::ptr::eq(*x, *y));
        let mut ahead = Vec::new();
        let out = self.chunks.in_place_scope(|s| {
            s.spawn(|_| {
                ahead = appliers
                    .iter()
                    .map(|ap| {
                        let for_it = work.iter().filter(|(x, _)| std::ptr::eq(*x, *ap));
                        ap.copy_ahead(for_it.map(|(_, a)| a), &self.chunks)
                    })
                    .collect();
            });
            during()
        });
        (Staged { work, ahead }, out)
    }

    /// Applies each action of `staged` with its applier, in parallel (a
    /// level's paths are independent: `Walk::levels` hands over folders
    /// before what is in them). Returns what failed: (target path, error);
    /// `applied` hears of the rest.
    pub fn apply_staged(
        &self,
        staged: Staged,
        applied: &(dyn Fn(&Action) + Sync),
    ) -> Vec<(String, String)> {
        let Staged {
            work,
            ahead: _ahead,
        } = staged;
        let via = Transfer {
            pool: &self.chunks,
            deleted_too: true,
            park: false,
        };
        let failed = |action: &Action, e: Error| Some((action.target(), e.to_string()));
        // Each creation is parked (`Transfer::park`): sent, and its answer
        // waited for once all are sent.
        let tried: Vec<_> = self.walkers.install(|| {
            work.par_iter()
                .map(|(applier, action)| {
                    let park = Transfer { park: true, ..via };
                    match applier.apply(action, 0, park) {
                        Ok(Outcome {
                            parked: Some(p), ..
                        }) => (None, Some(p)),
                        Ok(_) => {
                            applied(action);
                            (None, None)
                        }
                        Err(e) => (failed(action, e), None),
                    }
                })
                .collect()
        });
        let mut out = Vec::new();
        for ((applier, action), (failure, parked)) in work.iter().zip(tried) {
            out.extend(failure);
            let Some(parked) = parked else { continue };
            // A creation the target refused is applied again unparked.
            let again = |e: Error| {
                log::debug!("{}: {e}; applying it again", action.target());
                applier.apply(action, 0, via)
            };
            match applier.settle(parked).or_else(again) {
                Ok(_) => applied(action),
                Err(e) => out.extend(failed(action, e)),
            }
        }
        out
    }
}

/// Repairs whose small chunks are copied ahead (`Compare::stage_while`),
/// waiting for their turn to apply; dropped, what they copied ahead is
/// freed.
pub(super) struct Staged<'w> {
    work: Vec<(&'w Applier, Action)>,
    ahead: Vec<crate::apply::Ahead<'w>>,
}

impl Staged<'_> {
    /// How many actions wait.
    pub(super) fn len(&self) -> usize {
        self.work.len()
    }
}

/// (side, its client) for the source, then for the target.
type SidesOf<'a> = ((&'a Side, &'a FilerClient), (&'a Side, &'a FilerClient));

/// The signature of the side a copy comes from.
fn s_sig(peers: &Peers, from_a: bool) -> i32 {
    if from_a {
        peers.sig_a()
    } else {
        peers.sig_b()
    }
}

/// One difference per path (a path can differ in several classes), in
/// path order.
pub(super) fn one_per_path(diffs: Vec<Diff>) -> BTreeMap<String, Diff> {
    let mut by_path: BTreeMap<String, Diff> = BTreeMap::new();
    for d in diffs {
        by_path.entry(d.rel.clone()).or_insert(d);
    }
    by_path
}

pub(super) fn report(diffs: &[Diff], json: bool) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in diffs {
        *counts.entry(d.class.name()).or_default() += 1;
    }
    if json {
        let items: Vec<String> = diffs
            .iter()
            .map(|d| {
                format!(
                    "{{\"class\":{},\"path\":{}}}",
                    json_str(d.class.name()),
                    json_str(&d.rel)
                )
            })
            .collect();
        let cs: Vec<String> = counts
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        crate::util::say(format!(
            "{{\"equal\":{},\"differences\":[{}],\"counts\":{{{}}}}}",
            diffs.is_empty(),
            items.join(","),
            cs.join(",")
        ));
        return;
    }
    for d in diffs {
        crate::util::say(format!("{}: {}", d.class.name(), d.rel));
    }
    if diffs.is_empty() {
        crate::util::say("equal");
    } else {
        let cs: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        crate::util::say(format!("{} differences ({})", diffs.len(), cs.join(", ")));
    }
}

/// Logs the names `walk` refused (see `Walk::refused`), and returns them:
/// a folder holding one is not equal to its copy, whatever else agrees.
pub(super) fn refused(walk: &Walk) -> Vec<(String, String)> {
    let refused = walk.take_refused();
    for (path, why) in &refused {
        log::error!("{path}: {why}");
    }
    refused
}

/// `verify`: Ok(true) when the folders are equal (after repair, if asked)
/// and no listed name was refused.
pub fn verify(pair: &Pair, opts: VerifyOptions) -> Result<bool> {
    let cmp = Compare::connect(pair, Cancel::new())?;
    if opts.repair || opts.checksum {
        cmp.probe(opts.checksum)?;
    }
    let listed_b = std::sync::atomic::AtomicU64::new(0);
    let mut walk = cmp.walk(opts.checksum);
    walk.listed_b = Some(&listed_b);
    let diffs = walk.diffs()?;
    let clean = refused(&walk).is_empty();
    if !opts.repair || diffs.is_empty() {
        report(&diffs, opts.json);
        return Ok(diffs.is_empty() && clean);
    }
    let only_b: Vec<String> = one_per_path(diffs.clone())
        .into_iter()
        .filter(|(_, d)| d.a.is_none())
        .map(|(rel, _)| rel)
        .collect();
    super::bootstrap::weigh_deletes(
        &pair.b.path,
        &only_b,
        listed_b.into_inner(),
        opts.max_delete,
        "verify --repair",
    )?;
    log::info!("{} differences; repairing", diffs.len());
    let applier = cmp.applier(true).giving_up();
    // Parents first: a level at a time, shallowest first.
    let mut by_depth: BTreeMap<usize, Vec<Diff>> = BTreeMap::new();
    for d in diffs {
        by_depth
            .entry(d.rel.matches('/').count())
            .or_default()
            .push(d);
    }
    for (_, level) in by_depth {
        for (path, e) in cmp.repair(&applier, level, true) {
            log::error!("repair failed: {path}: {e}");
        }
    }
    let walk = cmp.walk(opts.checksum);
    let after = walk.diffs()?;
    let clean = refused(&walk).is_empty();
    report(&after, opts.json);
    Ok(after.is_empty() && clean)
}
