//! `filer-sync checkpoint show|set|reset|import|export`: an operator's hands
//! on the checkpoints. `import` reads `weed filer.sync`'s checkpoint from the
//! target filer's KV store into the state file and `export` writes ours there
//! in its format, so an operator can switch tools either way without
//! re-bootstrapping. On a link run with `--shards` each acts on every
//! shard's checkpoint, here and on the target's KV where the instances
//! share them (`export`: the oldest).

use super::Peers;
use crate::config::{CheckpointAction, CheckpointConfig};
use crate::error::{Error, Result};
use crate::state::{reference, Direction, State};
use std::time::Duration;

pub fn checkpoint(cfg: &CheckpointConfig) -> Result<bool> {
    if cfg.action == CheckpointAction::Show {
        return super::status::status(std::slice::from_ref(&cfg.state), false);
    }
    let (a, b) = match (&cfg.a, &cfg.b) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(Error::usage(
                "checkpoint set|reset|import|export need -a and -b (the filers of the pair)",
            ))
        }
    };
    let peers = Peers::connect(
        ('A', a, &cfg.a_security),
        ('B', b, &cfg.b_security),
        Duration::from_secs(cfg.timeout_secs),
    )?;
    let (sig_a, sig_b) = (peers.sig_a(), peers.sig_b());
    let (ca, cb) = (&peers.a, &peers.b);
    let _lock = crate::state::lock::acquire(&cfg.state)?;
    let mut st = State::open(&cfg.state)?;
    // A reset is how an operator accepts a filer whose store was replaced
    // (a new signature at a known address): the old store's checkpoints go
    // with its record.
    if cfg.action == CheckpointAction::Reset {
        for (c, sig) in [(ca, sig_a), (cb, sig_b)] {
            let addr = c.addr().to_string();
            let Some(old) = st.side_signature(&addr)?.filter(|&old| old != sig) else {
                continue;
            };
            st.forget_side(&addr, old)?;
            crate::util::say(format!(
                "{addr}: its filer store signature is now {sig} (was {old}): accepted; the \
                 checkpoints of the old store are removed"
            ));
        }
    }
    peers.check(&st)?;
    let (src_sig, src_path, dst_sig, dst_path, target) = if cfg.from == 'a' {
        (sig_a, &cfg.a_path, sig_b, &cfg.b_path, cb)
    } else {
        (sig_b, &cfg.b_path, sig_a, &cfg.a_path, ca)
    };
    let key = Direction {
        source_sig: src_sig,
        source_path: src_path.clone(),
        target_sig: dst_sig,
        target_path: dst_path.clone(),
        shard: None,
    };
    let dir = format!(
        "{}→{}",
        cfg.from.to_ascii_uppercase(),
        if cfg.from == 'a' { 'B' } else { 'A' }
    );
    // A link run with --shards keeps a checkpoint per shard, here and on
    // the target's KV (where its --ha instances share them, and where the
    // newer one wins): each is set, removed or read there too.
    let shards =
        super::shards::recorded_for_pair(&peers, (sig_a, &cfg.a_path), (sig_b, &cfg.b_path))?;
    let each: Vec<Direction> = match shards {
        None => vec![key.clone()],
        Some(n) => (0..n)
            .map(|index| Direction {
                shard: Some(crate::shard::Shard { index, count: n }),
                ..key.clone()
            })
            .collect(),
    };
    let dir = match shards {
        None => dir,
        Some(n) => format!("{dir}, each of the link's {n} shards (here and on the target's KV)"),
    };
    let share = |d: &Direction, ts: Option<i64>| -> Result<()> {
        if shards.is_some() {
            target.kv_put(
                &d.shared_key(),
                &ts.map(reference::encode).unwrap_or_default(),
            )?;
        }
        Ok(())
    };
    match cfg.action {
        CheckpointAction::Show => unreachable!(),
        CheckpointAction::Set => {
            let ts = cfg.ts_ms.saturating_mul(1_000_000);
            for d in &each {
                st.set_checkpoint(d, ts)?;
                share(d, Some(ts))?;
            }
            crate::util::say(format!("{dir}: checkpoint set to {}", crate::util::utc(ts)));
        }
        CheckpointAction::Reset => {
            let mut had = false;
            for d in &each {
                had |= st.reset_checkpoint(d)?;
                share(d, None)?;
                if shards.is_some() {
                    target.kv_put(&d.behind_key(), b"")?;
                }
            }
            if shards.is_some() {
                // A shard without a checkpoint starts where the whole link
                // stood: that goes too.
                had |= st.reset_checkpoint(&key)?;
                share(&key, None)?;
            }
            crate::util::say(format!(
                "{dir}: {}; the next sync walks both folders to join them (one way, what only \
                 the target holds is deleted, and a delete of most of it pauses for \
                 --max-delete), then follows the log from then on; with --bootstrap log it \
                 replays the source's log from its beginning instead",
                if had {
                    "checkpoint removed"
                } else {
                    "there was no checkpoint"
                }
            ));
        }
        CheckpointAction::Import => {
            let mut v = target.kv_get(&reference::key(src_sig, src_path, dst_path))?;
            if reference::decode(&v).is_none() {
                v = target.kv_get(&reference::legacy_key(src_sig, src_path))?;
            }
            let ts = reference::decode(&v).ok_or_else(|| {
                Error::remote(format!(
                    "{dir}: the target filer holds no weed filer.sync checkpoint for {src_path} \
                        -> {dst_path}; nothing imported"
                ))
            })?;
            for d in &each {
                st.set_checkpoint(d, ts)?;
                share(d, Some(ts))?;
            }
            crate::util::say(format!(
                "{dir}: imported weed filer.sync's checkpoint {} ({ts})",
                crate::util::utc(ts)
            ));
        }
        CheckpointAction::Export => {
            // Sharded: the oldest shard's (the newer of its own here and the
            // one shared), so that weed filer.sync misses nothing.
            let mut oldest: Option<i64> = None;
            for d in &each {
                let shared = match shards {
                    Some(_) => reference::decode(&target.kv_get(&d.shared_key())?),
                    None => None,
                };
                let ts = st.checkpoint(d)?.max(shared).ok_or_else(|| {
                    Error::remote(format!(
                        "{dir}: {} no checkpoint to export",
                        match d.shard {
                            Some(s) => format!("{s} has"),
                            None => "the state file has".into(),
                        }
                    ))
                })?;
                oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
            }
            let ts = oldest.unwrap_or_default();
            target.kv_put(
                &reference::key(src_sig, src_path, dst_path),
                &reference::encode(ts),
            )?;
            crate::util::say(format!(
                "{dir}: exported checkpoint {} ({ts}) for weed filer.sync",
                crate::util::utc(ts)
            ));
        }
    }
    Ok(true)
}
