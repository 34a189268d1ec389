//! `filer-sync sync`: validated config → connected clients → pipeline flows
//! → a summary and exit code. Talks to the network only after the config is
//! valid, and checks both filers before writing anything.

use super::Peers;
use crate::apply::{Applier, Mode, Op, Planned};
use crate::config::{Side, SyncConfig};
use crate::error::{Error, Result};
use crate::filer::FilerClient;
use crate::pipeline::{self, Flow};
use crate::replicate::Scope;
use crate::state::{Direction, State};
use crate::util::json_str;
use crate::volume::{self, ChunkSink, ChunkSource};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// Runs `sync`; Ok(true) when everything was applied, Ok(false) when some
/// events failed for good (listed in the log and the state file).
pub fn sync(cfg: &SyncConfig) -> Result<bool> {
    let peers = Peers::connect(
        (&cfg.a.addr, &cfg.a.security),
        (&cfg.b.addr, &cfg.b.security),
        Duration::from_secs(cfg.timeout_secs),
    )?;
    let (sig_a, sig_b) = (peers.sig_a(), peers.sig_b());
    if sig_a == sig_b
        && (crate::paths::is_under(&cfg.a.path, &cfg.b.path)
            || crate::paths::is_under(&cfg.b.path, &cfg.a.path))
    {
        return Err(Error::usage(format!(
            "-a {} and -b {} are the same filer store (signature {sig_a}) with overlapping folders {} and {}: it would sync into itself",
            cfg.a.addr, cfg.b.addr, cfg.a.path, cfg.b.path
        )));
    }
    let _lock = crate::state::lock::acquire(&cfg.state)?;
    let state = if cfg.dry_run {
        State::open_dry(&cfg.state)?
    } else {
        State::open(&cfg.state)?
    };
    peers.check(&state)?;
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
    let pa = (&cfg.a, &peers.a, sig_a, peers.conf_a.dir_buckets.as_str());
    let pb = (&cfg.b, &peers.b, sig_b, peers.conf_b.dir_buckets.as_str());
    let mut flows = vec![flow(cfg, pa, pb, &throttle)];
    if !cfg.active_passive {
        flows.push(flow(cfg, pb, pa, &throttle));
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
    let printer = PlanPrinter::new(cfg.json, flows.iter().map(|f| f.name.clone()).collect());
    let mut ok = true;
    let mut first_err = None;
    let results = pipeline::run_all(flows, reporting, &printer);
    if cfg.dry_run {
        printer.summary();
    }
    for r in results {
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
    throttle: &Option<std::sync::Arc<crate::volume::throttle::Throttle>>,
) -> Flow {
    let key = Direction {
        source_sig: sig_s,
        source_path: src.path.clone(),
        target_sig: sig_t,
        target_path: dst.path.clone(),
    };
    let http = volume::Http::new(Duration::from_secs(cfg.timeout_secs.max(30)));
    let name = format!("{}→{}", src.label, dst.label);
    let stats = std::sync::Arc::new(crate::pipeline::stats::Stats::new(
        &name,
        &src.addr.to_string(),
        &dst.addr.to_string(),
        &format!("filer-sync_{}_To_{}", src.path, dst.path),
        &src.path,
    ));
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
        },
        applier: Applier::new(
            (
                s.clone(),
                ChunkSource::new(s.clone(), src.proxy, http.clone())
                    .with_throttle(throttle.clone())
                    .with_read_signer(src.security.read.clone()),
            ),
            (
                t.clone(),
                ChunkSink::new(t.clone(), dst.proxy, http, dst.placement.clone())
                    .with_shared_ids(buckets_t),
            ),
            &dst.path,
            Mode::of(!cfg.active_passive, cfg.dry_run),
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
        debug_events: src.debug,
        debug_actions: dst.debug,
    }
}

/// Changes and bytes by operation.
type Tally = BTreeMap<Op, (u64, u64)>;

/// Prints a dry run's plan on stdout as it comes, one line per change
/// (`--json`: one JSON object per line), and a summary per direction at the
/// end. A closed stdout (`| head`) ends the printing, not the run.
struct PlanPrinter {
    json: bool,
    /// Per direction, in first-seen order: changes and bytes by operation.
    totals: Mutex<Vec<(String, Tally)>>,
    closed: std::sync::atomic::AtomicBool,
}

impl PlanPrinter {
    fn new(json: bool, flows: Vec<String>) -> PlanPrinter {
        PlanPrinter {
            json,
            totals: Mutex::new(flows.into_iter().map(|f| (f, BTreeMap::new())).collect()),
            closed: Default::default(),
        }
    }

    fn line(p: &Planned, flow: &str, json: bool) -> String {
        let dir = if p.is_directory { "/" } else { "" };
        if json {
            let from = p
                .from
                .as_deref()
                .map(|f| format!(",\"from\":{}", json_str(f)))
                .unwrap_or_default();
            format!(
                "{{\"direction\":{},\"op\":{},\"path\":{}{from},\"size\":{},\"dir\":{}}}",
                json_str(flow),
                json_str(p.op.as_str()),
                json_str(&p.path),
                p.size,
                p.is_directory
            )
        } else {
            let from = p
                .from
                .as_deref()
                .map(|f| format!("{f}{dir} -> "))
                .unwrap_or_default();
            format!(
                "{flow} {:<6} {from}{}{dir} ({} bytes)",
                p.op.as_str(),
                p.path,
                p.size
            )
        }
    }

    fn print(&self, text: &str) {
        use std::io::Write;
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    /// One line per direction: what it would have changed.
    fn summary(&self) {
        for (flow, by_op) in self.totals.lock().unwrap().iter() {
            let get = |op| by_op.get(&op).copied().unwrap_or((0, 0));
            let ops = [Op::Create, Op::Update, Op::Delete, Op::Move];
            let bytes: u64 = [Op::Create, Op::Update].iter().map(|&op| get(op).1).sum();
            let text = if self.json {
                let fields: Vec<String> = ops
                    .iter()
                    .map(|&op| format!("\"{}\":{}", op.as_str(), get(op).0))
                    .collect();
                format!(
                    "{{\"direction\":{},\"summary\":{{{},\"bytes\":{bytes}}}}}",
                    json_str(flow),
                    fields.join(",")
                )
            } else {
                let parts: Vec<String> = ops
                    .iter()
                    .map(|&op| format!("{} {}", get(op).0, op.as_str()))
                    .collect();
                format!(
                    "{flow} dry run: would {} ({bytes} bytes to copy); nothing was changed",
                    parts.join(", ")
                )
            };
            self.print(&text);
        }
    }
}

impl pipeline::Observer for PlanPrinter {
    fn planned(&self, flow: &str, changes: &[Planned]) {
        {
            let mut totals = self.totals.lock().unwrap();
            let Some((_, by_op)) = totals.iter_mut().find(|(f, _)| f == flow) else {
                return;
            };
            for p in changes {
                let t = by_op.entry(p.op).or_default();
                t.0 += 1;
                t.1 += p.size;
            }
        }
        let text: Vec<String> = changes
            .iter()
            .map(|p| Self::line(p, flow, self.json))
            .collect();
        self.print(&text.join("\n"));
    }
}
