//! `filer-sync sync`: validated config → connected, checked filers → one
//! `term` (or, with `--ha`, one per time this instance is active) → an
//! outcome. Talks to the network only after the config is valid, and checks
//! both filers before writing anything.

use super::term::{direction_stats, Term};
use super::Peers;
use crate::config::SyncConfig;
use crate::error::{Error, Result};
use crate::retry::Cancel;
use crate::state::State;
use crate::volume::Http;
use std::time::Duration;

/// Runs `sync`; Ok(true) when everything was applied, Ok(false) when some
/// events failed for good (listed in the log and the state file).
pub fn sync(cfg: &SyncConfig, cancel: &Cancel) -> Result<bool> {
    let peers = Peers::connect(
        ('A', &cfg.a.filers(), &cfg.a.security),
        ('B', &cfg.b.filers(), &cfg.b.security),
        Duration::from_secs(cfg.timeout_secs),
    )?;
    let http = |s: &crate::config::Side| Http::for_side(s.label, cfg.timeout_secs, &s.security);
    peers.probe_http((&cfg.a, &cfg.b), (&http(&cfg.a), &http(&cfg.b)), false)?;
    let (sig_a, sig_b) = (peers.sig_a(), peers.sig_b());
    if sig_a == sig_b
        && (crate::paths::is_under(&cfg.a.path, &cfg.b.path)
            || crate::paths::is_under(&cfg.b.path, &cfg.a.path))
    {
        return Err(Error::usage(format!(
            "-a {} and -b {} are the same filer store (signature {sig_a}) with overlapping \
                folders {} and {}: it would sync into itself",
            cfg.a.addr, cfg.b.addr, cfg.a.path, cfg.b.path
        )));
    }
    let _lock = crate::state::lock::acquire(&cfg.state)?;
    let mut state = if cfg.dry_run {
        State::open_dry(&cfg.state)?
    } else {
        State::open(&cfg.state)?
    };
    peers.check(&state)?;
    log::info!(
        "filer A {} (signature {sig_a}) {}, filer B {} (signature {sig_b}) {}; state {}",
        cfg.a.named(),
        cfg.a.path,
        cfg.b.named(),
        cfg.b.path,
        cfg.state.display()
    );
    let metrics =
        match cfg.metrics {
            Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
                Error::usage(format!("--metrics-port: cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
    let mut stats = vec![std::sync::Arc::new(direction_stats(&cfg.a, &cfg.b))];
    if !cfg.active_passive {
        stats.push(std::sync::Arc::new(direction_stats(&cfg.b, &cfg.a)));
    }
    let term = Term {
        cfg,
        peers: &peers,
        stats: &stats,
        hubs: &[],
    };
    match (&cfg.ha, cfg.shards) {
        (None, _) => term.run(&mut state, cancel, metrics, None),
        (Some(ha), Some(n)) => super::shards::run(cfg, &peers, state, cancel, metrics, ha, n),
        (Some(ha), None) => super::ha::run(&term, state, cancel, metrics, ha),
    }
}
