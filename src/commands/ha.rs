//! `sync --ha`: stands by until this instance holds the pair's lock (on A's
//! filer, `crate::ha`), then runs the directions as the active instance (a
//! `Term`) until the lock is lost, when it stands by again, or a stop is
//! asked, when it releases the lock so that a standby takes over at once.
//! On becoming active, each direction starts from the newer of its own
//! checkpoint and the one the last active instance shared on the target's
//! KV, never going back. The role goes to the state file for `status`, and
//! `ha_active` is served on the metrics port in both roles.

use super::sync::Term;
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
    let (cfg, peers) = (term.cfg, term.peers);
    let name = ha.name.clone().unwrap_or_else(|| {
        crate::ha::name_for(
            !cfg.active_passive,
            (peers.sig_a(), &cfg.a.path),
            (peers.sig_b(), &cfg.b.path),
        )
    });
    let lease = Arc::new(Lease::new(
        peers.a.clone(),
        name,
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

fn set_active(term: &Term, active: bool) {
    for s in term.stats {
        s.ha_active.store(i64::from(active), Ordering::Relaxed);
    }
}

/// Writes this instance's role for `status` (a failure only loses that).
fn record(state: &State, lease: &Lease, role: &str, holder: &str, since_ns: i64) {
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
/// shared on its target's KV, when that is newer.
fn adopt_shared(term: &Term, state: &mut State, cancel: &Cancel) -> Result<()> {
    let (cfg, peers) = (term.cfg, term.peers);
    let mut directions = vec![(
        &peers.b,
        Direction {
            source_sig: peers.sig_a(),
            source_path: cfg.a.path.clone(),
            target_sig: peers.sig_b(),
            target_path: cfg.b.path.clone(),
        },
    )];
    if !cfg.active_passive {
        directions.push((
            &peers.a,
            Direction {
                source_sig: peers.sig_b(),
                source_path: cfg.b.path.clone(),
                target_sig: peers.sig_a(),
                target_path: cfg.a.path.clone(),
            },
        ));
    }
    for (target, d) in directions {
        let key = reference::key(d.source_sig, &d.source_path, &d.target_path);
        let shared = retry("KvGet", Policy::FOREVER, cancel, || target.kv_get(&key))?;
        let Some(shared) = reference::decode(&shared) else {
            continue;
        };
        let own = state.checkpoint(&d)?.unwrap_or(0);
        if shared > own {
            log::info!(
                "ha: {} {} -> {}: starting from the shared checkpoint {} (this instance's \
                 own: {})",
                target.addr(),
                d.source_path,
                d.target_path,
                crate::util::utc(shared),
                if own > 0 {
                    crate::util::utc(own)
                } else {
                    "none".into()
                }
            );
            state.set_checkpoint(&d, shared)?;
        }
    }
    Ok(())
}
