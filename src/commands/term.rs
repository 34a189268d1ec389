//! One term of `sync`: the directions run together until they end (cron
//! mode), a stop is asked, or (`--ha`) the lock is lost. Owns bootstrapping a
//! direction without a checkpoint, building each direction's pipeline flow
//! and its live counters; `sync` starts one term, `ha` one per time this
//! instance becomes active. Knows nothing of leases beyond keeping one.

use super::render::Renderer;
use super::Peers;
use crate::apply::{Applier, Mode, Removed};
use crate::config::{Side, SyncConfig};
use crate::error::{ErrorKind, Result};
use crate::filer::FilerClient;
use crate::pipeline::{self, Flow};
use crate::replicate::Scope;
use crate::retry::{retry, Cancel, Policy};
use crate::state::{Direction, State};
use crate::volume::throttle::Throttle;
use crate::volume::{self, ChunkSink, ChunkSource};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What one run of the directions needs: without `--ha` the process's one
/// run; with it, each time this instance becomes the active one.
pub struct Term<'a> {
    pub cfg: &'a SyncConfig,
    pub peers: &'a Peers,
    /// Each direction's live counters, kept across terms.
    pub stats: &'a [std::sync::Arc<crate::stats::Stats>],
    /// `--shards`: each direction's stream shared by the shards this
    /// instance holds (`pipeline::hub`); empty: each flow its own stream.
    pub hubs: &'a [Arc<crate::pipeline::hub::Hub>],
}

impl Term<'_> {
    /// Bootstraps a direction without a checkpoint, then runs the
    /// directions until they end (cron mode), a stop is asked (`cancel`),
    /// or (`lease`) the lock is lost.
    pub fn run(
        &self,
        state: &mut State,
        cancel: &Cancel,
        metrics: Option<std::net::TcpListener>,
        lease: Option<&std::sync::Arc<crate::ha::Lease>>,
    ) -> Result<bool> {
        let (cfg, peers) = (self.cfg, self.peers);
        // This run's stop: a signal, a direction that failed for good, or
        // (--ha) the lock lost.
        let run = cancel.child();
        let throttle = cfg
            .bwlimit
            .map(|r| std::sync::Arc::new(Throttle::new(r, run.clone())));
        let listener = metrics.as_ref().and_then(|l| l.try_clone().ok());
        let keep = lease.map(|l| (&**l, &run));
        let walk = pipeline::alongside(listener, self.stats, keep, || {
            super::bootstrap::first_run(cfg, peers, state, &run, &throttle)
        })?;
        let pa = (
            &cfg.a,
            &peers.a,
            peers.sig_a(),
            peers.conf_a.dir_buckets.as_str(),
        );
        let pb = (
            &cfg.b,
            &peers.b,
            peers.sig_b(),
            peers.conf_b.dir_buckets.as_str(),
        );
        let mut flows = vec![flow(cfg, pa, pb, (&throttle, &run), &self.stats[0])];
        if !cfg.active_passive {
            flows.push(flow(cfg, pb, pa, (&throttle, &run), &self.stats[1]));
            // Each direction notes what its source's users remove, for the
            // other direction, which writes there.
            let removed = [Arc::new(Removed::default()), Arc::new(Removed::default())];
            for (i, f) in flows.iter_mut().enumerate() {
                f.removed_at_source = Some(removed[i].clone());
                f.applier
                    .know_removals(removed[1 - i].clone(), removed[i].clone());
            }
        }
        for (i, f) in flows.iter_mut().enumerate() {
            f.hub = self.hubs.get(i).cloned();
            f.lease = lease.cloned();
            f.walked = walk.walked.contains(&f.key);
        }
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        // Following: a walk every so often repairs what the log missed (a
        // crashed source filer, writes on the passive side), at the rescan
        // pace (see `copy_by_walk`).
        let pace = cfg.rescan.map(|r| Throttle::new(r.rate, run.clone()));
        if cfg.rescan.is_some() {
            // Every class is served from 0, so that rates and alerts see it.
            for s in self.stats {
                let mut by_class = s.rescan_differences.lock().unwrap();
                for c in crate::verify::Class::ALL {
                    by_class.entry(c.name().to_string()).or_default();
                }
            }
        }
        let stats = self.stats[0].clone();
        let key = flows[0].key.clone();
        let rescan = || {
            let since = match retry("source clock", Policy::SHORT, &run, || peers.a.now_ns()) {
                Ok(t) => t,
                Err(e) => return log::warn!("rescan skipped: {e}"),
            };
            let settled = Some((since, pace.as_ref()));
            let (why, started) = ("rescan", crate::util::now_ns());
            let walk = (&run, &throttle);
            let mut refused = Vec::new();
            let record =
                match super::bootstrap::copy_by_walk(cfg, peers, walk, why, settled, self.stats) {
                    Ok(w) => {
                        refused = w.refused;
                        let r = w.record;
                        stats.rescan_entries.fetch_add(r.entries, Ordering::Relaxed);
                        let mut by_class = stats.rescan_differences.lock().unwrap();
                        for (class, n) in &r.classes {
                            *by_class.entry(class.clone()).or_default() += n;
                        }
                        if w.failed.is_empty() {
                            stats.rescan_done_ns.store(r.ended_ns, Ordering::Relaxed);
                        }
                        for (path, e) in &w.failed {
                            log::error!("rescan: {path}: {e}");
                        }
                        r
                    }
                    Err(e) => {
                        // A refusal (a missing folder, a big delete) is for
                        // the operator; a passing fault only delays.
                        match e.kind() {
                            ErrorKind::Paused | ErrorKind::Usage => log::error!("rescan: {e}"),
                            _ => log::warn!("rescan: {e}"),
                        }
                        super::bootstrap::Walked::stopped(why, started, &e)
                    }
                };
            // Refused names go to the ledger, as a first run's do.
            let refused = super::bootstrap::ledgered(why, refused);
            if let Err(e) = State::open(&cfg.state).and_then(|s| {
                s.record_walk(&key, &record)?;
                s.ledger(&key, &refused)
            }) {
                log::warn!("rescan: not recorded in the state file: {e}");
            }
        };
        let reporting = pipeline::Reporting {
            metrics,
            every: Duration::from_secs(cfg.progress_secs.unwrap_or(if terminal { 1 } else { 10 })),
            periodic: cfg.rescan.map(|r| {
                (
                    Duration::from_secs(r.every_secs),
                    &rescan as &(dyn Fn() + Sync),
                )
            }),
            lease: lease.map(|l| &**l),
        };
        let names = flows.iter().map(|f| f.name.clone()).collect();
        let renderer = Renderer::new(cfg.json, names, terminal);
        let mut ok = walk.failures.is_empty();
        for f in &walk.failures {
            eprintln!("failed: {}: {}", f.path, f.error);
        }
        let mut first_err = None;
        let results = pipeline::run_all(flows, reporting, &renderer);
        if cfg.dry_run {
            renderer.summary();
        }
        for r in results {
            match r {
                Ok(sum) => {
                    let st = &sum.stats;
                    log::info!(
                        "{} done: {} events ({} skipped: the source had replaced their version \
                            since), {} bytes copied, {} failed; checkpoint ts {}",
                        st.name,
                        st.committed.load(Ordering::Relaxed),
                        st.superseded.load(Ordering::Relaxed),
                        st.bytes.load(Ordering::Relaxed),
                        sum.failures.len(),
                        st.checkpoint_ns.load(Ordering::Relaxed)
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
                // Asked to stop (SIGINT/SIGTERM, or --ha's lock lost) while a
                // window waited on a filer: it is not committed and will be
                // applied again; the stop itself is no failure.
                Err(e) if e.kind() == ErrorKind::Interrupted && run.is_cancelled() => {
                    log::warn!("stopped: {e}; the window in flight was not committed");
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
}

/// The directions of `cfg` (A→B, then B→A both ways), each with the filer
/// it writes to, keyed as their checkpoints are (`cfg.shard`'s).
pub(super) fn directions<'p>(
    cfg: &SyncConfig,
    peers: &'p Peers,
) -> Vec<(&'p FilerClient, Direction)> {
    let key = |src: &Side, sig_s, dst: &Side, sig_t| Direction {
        source_sig: sig_s,
        source_path: src.path.clone(),
        target_sig: sig_t,
        target_path: dst.path.clone(),
        shard: cfg.shard,
    };
    let (sig_a, sig_b) = (peers.sig_a(), peers.sig_b());
    let mut out = vec![(&peers.b, key(&cfg.a, sig_a, &cfg.b, sig_b))];
    if !cfg.active_passive {
        out.push((&peers.a, key(&cfg.b, sig_b, &cfg.a, sig_a)));
    }
    out
}

/// The live counters of the direction from `src` to `dst`.
pub(super) fn direction_stats(src: &Side, dst: &Side) -> crate::stats::Stats {
    crate::stats::Stats::new(
        &format!("{}→{}", src.label, dst.label),
        &src.addr.to_string(),
        &dst.addr.to_string(),
        &client_name(src, dst),
        &src.path,
    )
}

/// The subscription's client name, as the reference names it (its metrics
/// carry it too).
fn client_name(src: &Side, dst: &Side) -> String {
    format!("filer-sync_{}_To_{}", src.path, dst.path)
}

/// A side: its flags, its filer, the filer's signature and bucket folder.
type Peer<'a> = (&'a Side, &'a FilerClient, i32, &'a str);

fn flow(
    cfg: &SyncConfig,
    (src, s, sig_s, _): Peer,
    (dst, t, sig_t, buckets_t): Peer,
    (throttle, run): (&Option<std::sync::Arc<Throttle>>, &Cancel),
    stats: &std::sync::Arc<crate::stats::Stats>,
) -> Flow {
    let key = Direction {
        source_sig: sig_s,
        source_path: src.path.clone(),
        target_sig: sig_t,
        target_path: dst.path.clone(),
        shard: cfg.shard,
    };
    let secs = cfg.timeout_secs;
    let (src_http, dst_http) = (
        volume::Http::for_side(src.label, secs, &src.security),
        volume::Http::for_side(dst.label, secs, &dst.security),
    );
    let (stats, name) = (stats.clone(), stats.name.clone());
    Flow {
        stats,
        name,
        scope: Scope {
            source_path: src.path.clone(),
            target_path: dst.path.clone(),
            excludes: src.excludes.clone(),
            target_sig: sig_t,
            deletes: dst.deletes,
            origin_only: cfg.origin_only.then_some(sig_s),
            shard: cfg.shard,
        },
        applier: Applier::new(
            (
                s.clone(),
                ChunkSource::new(s.clone(), src.proxy, src_http)
                    .with_throttle(throttle.clone())
                    .with_read_signer(src.security.read.clone()),
            ),
            (
                t.clone(),
                ChunkSink::new(t.clone(), dst.proxy, dst_http, dst.placement.clone())
                    .with_shared_ids(buckets_t)
                    .with_signatures(vec![sig_s]),
            ),
            &dst.path,
            Mode::of(!cfg.active_passive, cfg.dry_run),
            run.clone(),
        ),
        key,
        state_path: cfg.state.clone(),
        from_ns: (src.from_ts_ms > 0).then(|| src.from_ts_ms.saturating_mul(1_000_000)),
        dry_run: cfg.dry_run,
        batch_size: cfg.batch_size,
        window: Duration::from_millis(cfg.batch_window_ms),
        workers: cfg.workers,
        chunk_workers: cfg.chunk_workers,
        once: cfg.once,
        max_delete: cfg.max_delete,
        stall: Duration::from_secs(cfg.stall_secs),
        debug_events: src.debug,
        debug_actions: dst.debug,
        cancel: run.clone(),
        lease: None,
        removed_at_source: None,
        walked: false,
        hub: None,
    }
}
