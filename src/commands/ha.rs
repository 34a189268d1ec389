//! `sync --ha`: stands by until this instance holds the pair's lock (on A's
//! filer, `crate::ha`), then runs the directions as the active instance (a
//! `Term`) until the lock is lost, when it stands by again, or a stop is
//! asked, when it releases the lock so that a standby takes over at once.
//! On becoming active, each direction starts from the newer of its own
//! checkpoint and the one the last active instance shared on the target's
//! KV, never going back. The role goes to the state file for `status`, and
//! `ha_active` is served on the metrics port in both roles.
//!
//! The group's terms are numbered on B's KV as well: each term takes the
//! next number (its fencing number, logged and recorded with each window),
//! and the lock filer's generation of the grant. A grant whose generation
//! is not above the last one recorded comes from a lock filer that forgot
//! its locks (restarted): the last holder may still act, by its own clock,
//! for up to a TTL, so the new term holds the lock that long before it
//! applies anything.

use super::term::Term;
use crate::config::Ha;
use crate::error::{ErrorKind, Result};
use crate::ha::Lease;
use crate::pipeline;
use crate::retry::{retry, Cancel, Policy};
use crate::state::{reference, Direction, HaRole, State};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn run(
    term: &Term,
    mut state: State,
    cancel: &Cancel,
    metrics: Option<TcpListener>,
    ha: &Ha,
) -> Result<bool> {
    let peers = term.peers;
    let name = link_name(term, ha);
    let unsharded = || super::shards::refuse_unsharded(term.peers, &name, cancel);
    unsharded()?;
    let lease = Arc::new(Lease::new(
        peers.a.clone(),
        name.clone(),
        crate::ha::owner(),
        ha.ttl,
    ));
    log::info!(
        "ha: lock {:?} on {} as {:?}, held for {} s without a renewal",
        lease.name(),
        peers.a.addr(),
        lease.owner(),
        ha.ttl.as_secs()
    );
    let listener = || metrics.as_ref().and_then(|l| l.try_clone().ok());
    loop {
        set_active(term, false);
        let since = crate::util::now_ns();
        let standby = |holder: Option<&str>| {
            record(&state, &lease, "standby", holder.unwrap_or(""), since);
        };
        log::info!("ha: standing by");
        let waited = pipeline::alongside(listener(), term.stats, None, || {
            lease.acquire(cancel, &standby)
        });
        match waited {
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        // A sharded instance may have recorded its count meanwhile.
        if let Err(e) = unsharded() {
            lease.release();
            return Err(e);
        }
        if !fence(term, &lease, cancel)? {
            if cancel.is_cancelled() {
                // Stopped while holding: a standby takes over at once.
                lease.release();
                return Ok(true);
            }
            continue;
        }
        log::info!(
            "ha: active, lock generation {} (another instance's windows are fenced off)",
            lease.generation()
        );
        set_active(term, true);
        record(&state, &lease, "active", lease.owner(), lease.since_ns());
        let r = adopt_shared(term, &mut state, cancel)
            .and_then(|()| term.run(&mut state, cancel, listener(), Some(&lease)));
        if lease.was_lost() && !cancel.is_cancelled() {
            if let Err(e) = &r {
                log::warn!("ha: the active term ended: {e}");
            }
            continue;
        }
        lease.release();
        return r;
    }
}

/// The lock name of the pair: `--ha-name`, or derived from the pair and
/// mode (`crate::ha::name_for`).
pub(super) fn link_name(term: &Term, ha: &Ha) -> String {
    let (cfg, peers) = (term.cfg, term.peers);
    ha.name.clone().unwrap_or_else(|| {
        crate::ha::name_for(
            !cfg.active_passive,
            (peers.sig_a(), &cfg.a.path),
            (peers.sig_b(), &cfg.b.path),
        )
    })
}

fn set_active(term: &Term, active: bool) {
    for s in term.stats {
        s.ha_active.store(i64::from(active), Ordering::Relaxed);
    }
}

/// Writes this instance's role for `status` (a failure only loses that).
pub(super) fn record(state: &State, lease: &Lease, role: &str, holder: &str, since_ns: i64) {
    let r = HaRole {
        lock_name: lease.name().to_string(),
        role: role.to_string(),
        owner: lease.owner().to_string(),
        holder: holder.to_string(),
        generation: lease.generation(),
        since_ns,
        updated_ns: crate::util::now_ns(),
    };
    if let Err(e) = state.set_ha_role(&r) {
        log::warn!("ha: role not recorded in the state file: {e}");
    }
}

/// Moves each direction's checkpoint up to the one the last active instance
/// shared on its target's KV, when that is newer. A shard that has no
/// checkpoint yet, here or shared, starts where the whole link stood (its
/// checkpoint here or shared): moving a link to shards re-copies nothing.
pub(super) fn adopt_shared(term: &Term, state: &mut State, cancel: &Cancel) -> Result<()> {
    let shared = |target: &crate::filer::FilerClient, d: &Direction| -> Result<Option<i64>> {
        let key = d.shared_key();
        let raw = retry("KvGet", Policy::FOREVER, cancel, || target.kv_get(&key))?;
        Ok(reference::decode(&raw))
    };
    for (target, d) in super::term::directions(term.cfg, term.peers) {
        let own = state.checkpoint(&d)?;
        let mut from = shared(target, &d)?;
        let whole_link = d.shard.is_some() && own.is_none() && from.is_none();
        if whole_link {
            let link = d.unsharded();
            from = shared(target, &link)?.max(state.checkpoint(&link)?);
        }
        let whose = match whole_link {
            true => "the whole link's checkpoint",
            false => "the shared checkpoint",
        };
        let Some(from) = from else {
            continue;
        };
        let own = own.unwrap_or(0);
        if from > own {
            log::info!(
                "ha: {} {} -> {}{}: starting from {whose} {} (this instance's own: {})",
                target.addr(),
                d.source_path,
                d.target_path,
                d.shard.map(|s| format!(" {s}")).unwrap_or_default(),
                crate::util::utc(from),
                if own > 0 {
                    crate::util::utc(own)
                } else {
                    "none".into()
                }
            );
            state.set_checkpoint(&d, from)?;
            // What the instance that shared the checkpoint knew of the
            // versions the source was past goes with it (those kept here
            // are older); none shared, none known.
            if !whole_link {
                let key = d.behind_key();
                let raw = retry("KvGet", Policy::FOREVER, cancel, || target.kv_get(&key))?;
                let marks = crate::state::decode_marks(&raw).unwrap_or_default();
                state.replace_behind(&d, &marks)?;
            }
        }
    }
    Ok(())
}

/// Numbers the term that begins (see the module's note) and, after a lock
/// filer that forgot its locks, holds the lock a TTL before the term
/// applies. False when the lock was lost meanwhile.
pub(super) fn fence(term: &Term, lease: &Lease, cancel: &Cancel) -> Result<bool> {
    let kv = &term.peers.b;
    let key = format!("filer-sync.ha.term.{}", lease.name()).into_bytes();
    let raw = retry("KvGet", Policy::FOREVER, cancel, || kv.kv_get(&key))?;
    let (last, last_granted) = parse_term(&raw);
    let granted = lease.generation();
    let number = last + 1;
    let record = format!("{number} {granted}");
    retry("KvPut", Policy::FOREVER, cancel, || {
        kv.kv_put(&key, record.as_bytes())
    })?;
    lease.fence(number);
    if last > 0 && granted <= last_granted {
        log::warn!(
            "ha: the lock filer granted generation {granted}, not above the {last_granted} \
             recorded: it forgot its locks (restarted); holding the lock {:?} before applying, \
             until the last holder has stopped",
            lease.ttl()
        );
        return Ok(lease.hold_for(lease.ttl(), cancel));
    }
    Ok(true)
}

/// A term record: "NUMBER GRANTED" (none yet: 0 0).
fn parse_term(raw: &[u8]) -> (i64, i64) {
    let text = String::from_utf8_lossy(raw);
    let mut n = text
        .split_whitespace()
        .map(|v| v.parse::<i64>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn term_records_parse() {
        assert_eq!(super::parse_term(b""), (0, 0));
        assert_eq!(super::parse_term(b"7 3"), (7, 3));
        assert_eq!(super::parse_term(b"junk"), (0, 0));
    }
}
