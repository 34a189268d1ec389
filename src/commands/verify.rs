//! `filer-sync verify`: walks both folders and reports every difference by
//! class; `--repair` then copies A's version over each one, deletes what is
//! only on B, and verifies again. `Compare` (connect, walk, repair) also
//! serves `migrate`.

use super::Peers;
use crate::apply::{Applier, Mode, Transfer};
use crate::config::{Pair, VerifyOptions};
use crate::error::Result;
use crate::paths::{split_path, under};
use crate::replicate::Action;
use crate::retry::Cancel;
use crate::util::json_str;
use crate::verify::{Class, Diff, Walk};
use crate::volume::{self, ChunkSink, ChunkSource};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// A pair of folders, connected, ready to walk and repair.
pub(super) struct Compare<'p> {
    pub pair: &'p Pair,
    pub peers: Peers,
    http: volume::Http,
    /// Lists folders of a level in parallel, and repairs in parallel.
    walkers: rayon::ThreadPool,
    chunks: rayon::ThreadPool,
    cancel: Cancel,
}

impl Compare<'_> {
    pub fn connect(pair: &Pair, cancel: Cancel) -> Result<Compare<'_>> {
        let timeout = Duration::from_secs(pair.timeout_secs);
        Ok(Compare {
            peers: Peers::connect(
                (&pair.a.addr, &pair.a.security),
                (&pair.b.addr, &pair.b.security),
                timeout,
            )?,
            pair,
            http: volume::Http::new(Duration::from_secs(pair.timeout_secs.max(30))),
            walkers: crate::pipeline::pool("verify", "walk", pair.workers.min(16))?,
            chunks: crate::pipeline::pool("verify", "chunk", pair.chunk_workers)?,
            cancel,
        })
    }

    pub fn walk(&self, checksum: bool) -> Walk<'_> {
        Walk {
            a: &self.peers.a,
            b: &self.peers.b,
            a_path: &self.pair.a.path,
            b_path: &self.pair.b.path,
            checksum,
            http: &self.http,
            pool: &self.walkers,
            cancel: &self.cancel,
        }
    }

    /// Writes onto B's folder what A's holds, one way.
    pub fn applier(&self) -> Applier {
        let (a, b) = (&self.pair.a, &self.pair.b);
        Applier::new(
            (
                self.peers.a.clone(),
                ChunkSource::new(self.peers.a.clone(), a.proxy, self.http.clone())
                    .with_read_signer(a.security.read.clone()),
            ),
            (
                self.peers.b.clone(),
                ChunkSink::new(
                    self.peers.b.clone(),
                    b.proxy,
                    self.http.clone(),
                    b.placement.clone(),
                ),
            ),
            &b.path,
            Mode::Follow,
            self.cancel.clone(),
        )
        .giving_up()
    }

    /// Copies A's version over every differing path, in parallel (a
    /// level's paths are independent: `Walk::levels` hands over folders
    /// before what is in them); with `delete_extra`, removes what exists
    /// only on B. Returns what failed.
    pub fn repair(&self, applier: &Applier, diffs: Vec<Diff>, delete_extra: bool) -> Vec<String> {
        // One action per path.
        let mut by_path: BTreeMap<String, Diff> = BTreeMap::new();
        for d in diffs {
            by_path.entry(d.rel.clone()).or_insert(d);
        }
        let (a, b, sig_a) = (&self.pair.a, &self.pair.b, self.peers.sig_a());
        let one = |(rel, d): (String, Diff)| -> Option<String> {
            let target = under(&b.path, &rel);
            let (dir, name) = split_path(&target);
            let action = match (d.a, d.class) {
                (Some(entry), _) => Action::Upsert {
                    dir: dir.to_string(),
                    entry,
                    signatures: vec![sig_a],
                    source: under(&a.path, &rel),
                    change: crate::replicate::Change::Changed,
                    base: None,
                },
                (None, Class::OnlyOnB) if delete_extra => Action::Delete {
                    dir: dir.to_string(),
                    name: name.to_string(),
                    signatures: vec![sig_a],
                    old_mtime_ns: 0,
                    base: None,
                },
                _ => return None,
            };
            let via = Transfer {
                pool: &self.chunks,
                deleted_too: true,
            };
            let r = applier.apply(&action, 0, via);
            r.err().map(|e| format!("{target}: {e}"))
        };
        self.walkers
            .install(|| by_path.into_par_iter().filter_map(one).collect())
    }
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

/// `verify`: Ok(true) when the folders are equal (after repair, if asked).
pub fn verify(pair: &Pair, opts: VerifyOptions) -> Result<bool> {
    let cmp = Compare::connect(pair, Cancel::new())?;
    let diffs = cmp.walk(opts.checksum).diffs()?;
    if !opts.repair || diffs.is_empty() {
        report(&diffs, opts.json);
        return Ok(diffs.is_empty());
    }
    log::info!("{} differences; repairing", diffs.len());
    let applier = cmp.applier();
    // Parents first: a level at a time, shallowest first.
    let mut by_depth: BTreeMap<usize, Vec<Diff>> = BTreeMap::new();
    for d in diffs {
        by_depth
            .entry(d.rel.matches('/').count())
            .or_default()
            .push(d);
    }
    for (_, level) in by_depth {
        for f in cmp.repair(&applier, level, true) {
            log::error!("repair failed: {f}");
        }
    }
    let after = cmp.walk(opts.checksum).diffs()?;
    report(&after, opts.json);
    Ok(after.is_empty())
}
