//! `filer-sync sync`: validated config → connected clients → pipeline flows
//! → a summary and exit code. Talks to the network only after the config is
//! valid, and checks both filers before writing anything.

use crate::apply::Applier;
use crate::cli::{Side, SyncConfig};
use crate::error::{Error, Result};
use crate::filer::FilerClient;
use crate::pipeline::{self, Flow};
use crate::replicate::Scope;
use crate::state::{Direction, State};
use crate::volume::{self, ChunkSink, ChunkSource};
use std::time::Duration;

/// Runs `sync`; Ok(true) when everything was applied, Ok(false) when some
/// events failed for good (listed in the log and the state file).
pub fn sync(cfg: &SyncConfig) -> Result<bool> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let a = FilerClient::connect_with(&cfg.a.addr, &cfg.a.security, timeout);
    let b = FilerClient::connect_with(&cfg.b.addr, &cfg.b.security, timeout);
    let (conf_a, conf_b) = (a.configuration()?, b.configuration()?);
    let (sig_a, sig_b) = (conf_a.signature, conf_b.signature);
    if sig_a == sig_b
        && (crate::replicate::is_under(&cfg.a.path, &cfg.b.path)
            || crate::replicate::is_under(&cfg.b.path, &cfg.a.path))
    {
        return Err(Error::usage(format!(
            "-a {} and -b {} are the same filer store (signature {sig_a}) with overlapping folders {} and {}: it would sync into itself",
            cfg.a.addr, cfg.b.addr, cfg.a.path, cfg.b.path
        )));
    }
    let _lock = crate::state::lock::acquire(&cfg.state)?;
    let mut state = State::open(&cfg.state)?;
    state.check_side(&cfg.a.addr.to_string(), sig_a)?;
    state.check_side(&cfg.b.addr.to_string(), sig_b)?;
    log::info!(
        "filer A {} (signature {sig_a}) {}, filer B {} (signature {sig_b}) {}; state {}",
        cfg.a.addr,
        cfg.a.path,
        cfg.b.addr,
        cfg.b.path,
        cfg.state.display()
    );
    let throttle = cfg
        .bwlimit
        .map(|r| std::sync::Arc::new(crate::volume::throttle::Throttle::new(r)));
    let pa = (&cfg.a, &a, sig_a, conf_a.dir_buckets.as_str());
    let pb = (&cfg.b, &b, sig_b, conf_b.dir_buckets.as_str());
    let mut flows = vec![flow(cfg, pa, pb, &mut state, &throttle)?];
    if !cfg.active_passive {
        flows.push(flow(cfg, pb, pa, &mut state, &throttle)?);
    }
    drop(state);
    let metrics =
        match cfg.metrics {
            Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
                Error::usage(format!("--metrics-port: cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let reporting = pipeline::Reporting {
        metrics,
        every: Duration::from_secs(cfg.progress_secs.unwrap_or(if terminal { 1 } else { 10 })),
        terminal,
    };
    let mut ok = true;
    let mut first_err = None;
    for r in pipeline::run_all(flows, reporting) {
        match r {
            Ok(sum) => {
                log::info!(
                    "{} done: {} events ({} skipped: the source had replaced their version since), {} bytes copied, {} failed; checkpoint ts {}",
                    sum.name,
                    sum.events,
                    sum.superseded,
                    sum.bytes,
                    sum.failures.len(),
                    sum.checkpoint_ns
                );
                if !sum.failures.is_empty() {
                    ok = false;
                    for f in &sum.failures {
                        eprintln!(
                            "failed: {} (event ts {}): {}",
                            f.path, f.event_ts_ns, f.error
                        );
                    }
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(ok),
    }
}

/// A side: its flags, its filer, the filer's signature and bucket folder.
type Peer<'a> = (&'a Side, &'a FilerClient, i32, &'a str);

fn flow(
    cfg: &SyncConfig,
    (src, s, sig_s, _): Peer,
    (dst, t, sig_t, buckets_t): Peer,
    state: &mut State,
    throttle: &Option<std::sync::Arc<crate::volume::throttle::Throttle>>,
) -> Result<Flow> {
    let key = Direction {
        source_sig: sig_s,
        source_path: src.path.clone(),
        target_sig: sig_t,
        target_path: dst.path.clone(),
    };
    if src.from_ts_ms > 0 {
        state.set_checkpoint(&key, src.from_ts_ms.saturating_mul(1_000_000))?;
    }
    let http = volume::Http::new(Duration::from_secs(cfg.timeout_secs.max(30)));
    let name = format!("{}→{}", src.label, dst.label);
    let stats = std::sync::Arc::new(crate::pipeline::stats::Stats::new(
        &name,
        &src.addr.to_string(),
        &dst.addr.to_string(),
        &format!("filer-sync_{}_To_{}", src.path, dst.path),
        &src.path,
    ));
    Ok(Flow {
        stats,
        name,
        source: s.clone(),
        scope: Scope {
            source_path: src.path.clone(),
            target_path: dst.path.clone(),
            excludes: src.excludes.clone(),
            target_sig: sig_t,
            deletes: dst.deletes,
            origin_only: cfg.origin_only.then_some(sig_s),
        },
        applier: Applier {
            source: s.clone(),
            target: t.clone(),
            chunks_in: ChunkSource::new(s.clone(), src.proxy, http.clone())
                .with_throttle(throttle.clone())
                .with_read_signer(src.security.read.clone()),
            chunks_out: std::sync::Arc::new(
                ChunkSink::new(t.clone(), dst.proxy, http, dst.placement.clone())
                    .with_shared_ids(buckets_t),
            ),
            newer_target_wins: !cfg.active_passive,
            dry_run: cfg.dry_run,
            dirs: Default::default(),
            moves_trusted_after_ns: Default::default(),
            source_view: Default::default(),
            target_root: dst.path.clone(),
        },
        key,
        state_path: cfg.state.clone(),
        batch_size: cfg.batch_size,
        window: Duration::from_millis(cfg.batch_window_ms),
        workers: cfg.workers,
        chunk_workers: cfg.chunk_workers,
        once: cfg.once,
        max_delete: cfg.max_delete,
        debug_events: src.debug,
        debug_actions: dst.debug,
    })
}
