//! `filer-sync migrate`: a one-shot copy that does not need the metadata
//! log's past. It records its start (the source filer's clock) as the A→B
//! checkpoint, copies the whole tree level by level as the walk finds the
//! differences (in parallel, holding one level in memory), replays the log
//! from that start to catch what changed meanwhile, and verifies. A killed
//! migration resumes from the same start: copying is idempotent. `--bwlimit`
//! paces the copy and the replay alike.

use super::verify::{report, Compare};
use crate::config::SyncConfig;
use crate::error::Result;
use crate::retry::{retry, Cancel, Policy};
use crate::state::{Direction, State};
use crate::volume::throttle::Throttle;

/// `migrate`: Ok(true) when B's folder equals A's at the end.
pub fn migrate(cfg: &SyncConfig, cancel: &Cancel) -> Result<bool> {
    let pair = cfg.pair();
    let throttle = cfg
        .bwlimit
        .map(|r| std::sync::Arc::new(Throttle::new(r, cancel.clone())));
    let cmp = Compare::connect(&pair, cancel.clone())?.with_throttle(throttle);
    cmp.probe(false)?;
    let key = Direction {
        source_sig: cmp.peers.sig_a(),
        source_path: cfg.a.path.clone(),
        target_sig: cmp.peers.sig_b(),
        target_path: cfg.b.path.clone(),
        shard: None,
    };
    let refusals;
    {
        let _lock = crate::state::lock::acquire(&cfg.state)?;
        let mut st = State::open(&cfg.state)?;
        cmp.peers.check(&st)?;
        match st.checkpoint(&key)? {
            Some(ts) => log::info!("resuming the migration started at {}", crate::util::utc(ts)),
            None => {
                // The source's clock, as the sync's: the log is replayed
                // from this time on, by the time the source gives events.
                let start = retry("source clock", Policy::SHORT, cancel, || {
                    cmp.peers.a.now_ns()
                })?;
                st.set_checkpoint(&key, start)?;
                log::info!(
                    "migration starts at {}: copying the tree",
                    crate::util::utc(start)
                );
            }
        }
        let applier = cmp.applier(true).giving_up();
        let (mut copied, mut failed) = (0, 0);
        let mut walk = cmp.walk(false);
        walk.missing_a = crate::verify::MissingA::Refused;
        walk.levels(|diffs| {
            copied += diffs.iter().filter(|d| d.a.is_some()).count();
            for (path, e) in cmp.repair(&applier, diffs, false) {
                log::error!("copy failed: {path}: {e}");
                failed += 1;
            }
            Ok(())
        })?;
        // Names A listed that are not one path component: never copied,
        // ledgered as a sync's walk ledgers them.
        let refused = super::verify::refused(&walk);
        refusals = refused.len();
        st.ledger(&key, &super::bootstrap::ledgered("migrate", refused))?;
        log::info!("{copied} entries copied, {failed} failed, {refusals} names refused");
    }
    log::info!("tree copied; replaying what changed since the start");
    let replay_ok = super::sync(cfg, cancel)?;
    let diffs = cmp.walk(false).diffs()?;
    report(&diffs, false);
    Ok(replay_ok && diffs.is_empty() && refusals == 0)
}
