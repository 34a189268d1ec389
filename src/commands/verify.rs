//! `filer-sync verify` and `filer-sync migrate`. Verify walks both folders
//! and reports every difference by class (`--repair` then copies A's version
//! over each one, deletes what is only on B, and verifies again). Migrate is
//! a one-shot copy that does not need the metadata log's past: it records its
//! start as the A→B checkpoint, copies the whole tree, replays the log from
//! that start to catch what changed meanwhile, and verifies. A killed
//! migration resumes from the same start: copying is idempotent.

use super::json_str;
use crate::apply::{Applier, Mode, Transfer};
use crate::cli::SyncConfig;
use crate::error::Result;
use crate::filer::{split_path, FilerClient};
use crate::replicate::Action;
use crate::state::{Direction, State};
use crate::verify::{Class, Diff, Walk};
use crate::volume::{self, ChunkSink, ChunkSource};
use std::collections::BTreeMap;
use std::time::Duration;

/// What verify may do besides reporting.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub checksum: bool,
    pub json: bool,
    pub repair: bool,
}

struct Pair {
    a: FilerClient,
    b: FilerClient,
    sig_a: i32,
    sig_b: i32,
    http: volume::Http,
    walkers: rayon::ThreadPool,
    chunks: rayon::ThreadPool,
}

fn connect(cfg: &SyncConfig) -> Result<Pair> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let a = FilerClient::connect_with(&cfg.a.addr, &cfg.a.security, timeout);
    let b = FilerClient::connect_with(&cfg.b.addr, &cfg.b.security, timeout);
    let sig_a = a.configuration()?.signature;
    let sig_b = b.configuration()?.signature;
    Ok(Pair {
        a,
        b,
        sig_a,
        sig_b,
        http: volume::Http::new(Duration::from_secs(cfg.timeout_secs.max(30))),
        walkers: crate::pipeline::pool("verify", "walk", cfg.workers.min(16))?,
        chunks: crate::pipeline::pool("verify", "chunk", cfg.chunk_workers)?,
    })
}

impl Pair {
    fn diffs(&self, cfg: &SyncConfig, checksum: bool) -> Result<Vec<Diff>> {
        Walk {
            a: &self.a,
            b: &self.b,
            a_path: &cfg.a.path,
            b_path: &cfg.b.path,
            checksum,
            http: &self.http,
            pool: &self.walkers,
        }
        .diffs()
    }

    /// Copies A's version over every differing path (parents first); with
    /// `delete_extra`, removes what exists only on B. Returns what failed.
    fn repair(&self, cfg: &SyncConfig, diffs: &[Diff], delete_extra: bool) -> Vec<String> {
        let applier = Applier::new(
            (
                self.a.clone(),
                ChunkSource::new(self.a.clone(), cfg.a.proxy, self.http.clone())
                    .with_read_signer(cfg.a.security.read.clone()),
            ),
            (
                self.b.clone(),
                ChunkSink::new(
                    self.b.clone(),
                    cfg.b.proxy,
                    self.http.clone(),
                    cfg.b.placement.clone(),
                ),
            ),
            &cfg.b.path,
            Mode::Follow,
        );
        // One action per path, in path order so that parents come first.
        let mut by_path: BTreeMap<&str, &Diff> = BTreeMap::new();
        for d in diffs {
            by_path.entry(d.rel.as_str()).or_insert(d);
        }
        let mut failed = Vec::new();
        for (rel, d) in by_path {
            let target = Walk::full(&cfg.b.path, rel);
            let (dir, name) = split_path(&target);
            let action = match (&d.a, d.class) {
                (Some(entry), _) => Action::Upsert {
                    dir: dir.to_string(),
                    entry: entry.clone(),
                    signatures: vec![self.sig_a],
                    source: Walk::full(&cfg.a.path, rel),
                    change: crate::replicate::Change::Changed,
                },
                (None, Class::OnlyOnB) if delete_extra => Action::Delete {
                    dir: dir.to_string(),
                    name: name.to_string(),
                    signatures: vec![self.sig_a],
                    old_mtime_ns: 0,
                },
                _ => continue,
            };
            if let Err(e) = applier.apply(
                &action,
                0,
                Transfer {
                    pool: &self.chunks,
                    deleted_too: true,
                },
            ) {
                failed.push(format!("{target}: {e}"));
            }
        }
        failed
    }
}

fn report(diffs: &[Diff], json: bool) {
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
        println!(
            "{{\"equal\":{},\"differences\":[{}],\"counts\":{{{}}}}}",
            diffs.is_empty(),
            items.join(","),
            cs.join(",")
        );
        return;
    }
    for d in diffs {
        println!("{}: {}", d.class.name(), d.rel);
    }
    if diffs.is_empty() {
        println!("equal");
    } else {
        let cs: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("{} differences ({})", diffs.len(), cs.join(", "));
    }
}

/// `verify`: Ok(true) when the folders are equal (after repair, if asked).
pub fn verify(cfg: &SyncConfig, opts: Options) -> Result<bool> {
    let pair = connect(cfg)?;
    let diffs = pair.diffs(cfg, opts.checksum)?;
    if !opts.repair || diffs.is_empty() {
        report(&diffs, opts.json);
        return Ok(diffs.is_empty());
    }
    log::info!("{} differences; repairing", diffs.len());
    for f in pair.repair(cfg, &diffs, true) {
        log::error!("repair failed: {f}");
    }
    let after = pair.diffs(cfg, opts.checksum)?;
    report(&after, opts.json);
    Ok(after.is_empty())
}

/// `migrate`: Ok(true) when B's folder equals A's at the end.
pub fn migrate(cfg: &SyncConfig) -> Result<bool> {
    let pair = connect(cfg)?;
    let key = Direction {
        source_sig: pair.sig_a,
        source_path: cfg.a.path.clone(),
        target_sig: pair.sig_b,
        target_path: cfg.b.path.clone(),
    };
    {
        let _lock = crate::state::lock::acquire(&cfg.state)?;
        let mut st = State::open(&cfg.state)?;
        st.check_side(&cfg.a.addr.to_string(), pair.sig_a)?;
        st.check_side(&cfg.b.addr.to_string(), pair.sig_b)?;
        match st.checkpoint(&key)? {
            Some(ts) => log::info!("resuming the migration started at {}", super::utc(ts)),
            None => {
                let start = crate::state::now_ns();
                st.set_checkpoint(&key, start)?;
                log::info!(
                    "migration starts at {}: copying the tree",
                    super::utc(start)
                );
            }
        }
        let diffs = pair.diffs(cfg, false)?;
        log::info!(
            "{} entries to copy",
            diffs.iter().filter(|d| d.a.is_some()).count()
        );
        for f in pair.repair(cfg, &diffs, false) {
            log::error!("copy failed: {f}");
        }
    }
    log::info!("tree copied; replaying what changed since the start");
    let replay_ok = super::sync(cfg)?;
    let diffs = pair.diffs(cfg, false)?;
    report(&diffs, false);
    Ok(replay_ok && diffs.is_empty())
}
