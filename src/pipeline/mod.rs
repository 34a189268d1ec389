//! The replication engine, one direction at a time, and the only place that
//! spawns threads. Stages, in the order data flows:
//! subscriber thread (source stream → bounded queue of `StreamItem`s) →
//! window (up to `batch_size` events or `window` time) → plan (event → actions,
//! levels of independent events) → apply (each level in parallel on the worker
//! pool, chunks on the chunk pool) → commit (one SQLite transaction: checkpoint =
//! newest ts of the window, counters, failure ledger). A window is committed
//! only when every event in it is applied or recorded as failed, so a crash
//! replays at most one window, and applying is idempotent.
//!
//! This file holds the run loop (subscribe, window, apply, commit,
//! re-subscribe) and the threads around it; `window` gathers a window and
//! keeps its budgets, `apply` applies one, `plan` orders its events.

mod apply;
pub mod hub;
pub mod plan;
mod window;

use apply::{apply_window, PlannedWindow};
use window::{collect_window, replay_horizon, Care, DeleteBudget, Replay};

use crate::apply::{Applier, Planned, Removed};
use crate::error::{Error, ErrorKind, Result};
use crate::filer::{Event, FilerAddr, StreamItem};
use crate::ha::Lease;
use crate::pb::filer::SubscribeMetadataRequest;
use crate::replicate::{event_paths, Scope};
use crate::retry::{retry, Cancel, Policy};
use crate::state::{Commit, Direction, Failure, State};
use crate::stats::Stats;
use crossbeam_channel::{bounded, Receiver};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Everything one direction needs to run.
pub struct Flow {
    /// "A→B", for logs.
    pub name: String,
    pub scope: Scope,
    pub applier: Applier,
    pub key: Direction,
    pub state_path: PathBuf,
    /// Start reading the log here (source clock, ns), replacing the checkpoint.
    pub from_ns: Option<i64>,
    /// Plan only: the state file is read, never written (the run commits to
    /// a private copy in memory), and nothing is written to the target.
    pub dry_run: bool,
    pub batch_size: usize,
    pub window: Duration,
    pub workers: usize,
    pub chunk_workers: usize,
    /// Cron mode: stop once caught up with the source's time at start.
    pub once: bool,
    /// More deletes than this on the target within a minute pause the direction.
    pub max_delete: Option<u64>,
    /// The source's stream may be silent this long (see `Subscription`).
    pub stall: Duration,
    /// Log every received event.
    pub debug_events: bool,
    /// Live counters, read by progress and metrics.
    pub stats: std::sync::Arc<Stats>,
    /// Log every applied action.
    pub debug_actions: bool,
    /// This run's stop: cancelled by a signal, or by a direction that
    /// failed for good (the run's other direction then stops too).
    pub cancel: Cancel,
    /// `--ha`: the lock this run holds. Nothing is applied or committed
    /// once it is no longer valid, and each commit also goes to the
    /// target's KV (in `weed filer.sync`'s key format), where the instance
    /// that takes over finds it.
    pub lease: Option<std::sync::Arc<Lease>>,
    /// Active-active: where to note what the source's users remove, for the
    /// opposite direction (`apply::Removed`); noted as events arrive.
    pub removed_at_source: Option<std::sync::Arc<Removed>>,
    /// This run's first-run walk set the checkpoint: no window was applied
    /// past it, only the walk (whose end the state keeps as
    /// `careful_until`).
    pub walked: bool,
    /// `--shards`: the instance's one stream of this direction, shared by
    /// the shards it holds (`hub`); None: a stream of this flow's own.
    pub hub: Option<std::sync::Arc<hub::Hub>>,
}

/// What a direction did in this run: its live counters as they ended, and
/// the events that failed for good.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: std::sync::Arc<Stats>,
    pub failures: Vec<Failure>,
}

static EPOCH: AtomicI32 = AtomicI32::new(0);

fn client_id() -> i32 {
    let t = crate::util::now_ns() as u64;
    ((t ^ (u64::from(std::process::id()) << 20)) & 0x7fff_ffff) as i32
}

/// How a run shows its progress, and what else it does on the side.
pub struct Reporting<'a> {
    /// Serves Prometheus text on this listener while the run lasts.
    pub metrics: Option<std::net::TcpListener>,
    /// `Observer::progress` this often.
    pub every: Duration,
    /// A job run this often while the directions run (a rescan), on a
    /// thread of its own; sooner when a source's stream broke and answers
    /// again (`Stats::rescan_due_early`).
    pub periodic: Option<(Duration, &'a (dyn Fn() + Sync))>,
    /// `--ha`: the lock the run holds, renewed on a thread of its own; the
    /// run ends when it is lost.
    pub lease: Option<&'a Lease>,
}

/// Runs `f` (a phase outside the directions' run: standing by for the
/// lock, a first run's walk) while serving the metrics of `all` on
/// `metrics` and, with `lease`, keeping the lock `f` needs (its term's token
/// is cancelled when the lock is lost).
pub fn alongside<R>(
    metrics: Option<std::net::TcpListener>,
    all: &[std::sync::Arc<Stats>],
    lease: Option<(&Lease, &Cancel)>,
    f: impl FnOnce() -> R,
) -> R {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        if let Some(listener) = metrics {
            let done = &done;
            s.spawn(move || crate::metrics::serve(listener, all, done));
        }
        if let Some((lease, term)) = lease {
            let done = &done;
            s.spawn(move || lease.keep(term, done));
        }
        let r = f();
        done.store(true, Ordering::SeqCst);
        r
    })
}

/// What the engine tells its caller as it runs; the caller renders it (the
/// engine itself prints nothing).
pub trait Observer: Sync {
    /// A dry run's window: the changes it would make, in log order.
    fn planned(&self, flow: &str, changes: &[Planned]);
    /// Every `Reporting::every`, the live counters of all directions;
    /// `last` once when the run ends.
    fn progress(&self, all: &[std::sync::Arc<Stats>], last: bool);
}

/// Runs several directions side by side until each ends (cron mode) or a stop
/// is requested; returns their summaries in the same order.
pub fn run_all(
    flows: Vec<Flow>,
    reporting: Reporting,
    observer: &dyn Observer,
) -> Vec<Result<Summary>> {
    let cancel = flows.first().map(|f| f.cancel.clone()).unwrap_or_default();
    let all: Vec<std::sync::Arc<Stats>> = flows.iter().map(|f| f.stats.clone()).collect();
    let keep = reporting.lease.map(|l| (l, &cancel));
    alongside(reporting.metrics, &all, keep, || {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            {
                let (all, done, every) = (&all, &done, reporting.every);
                s.spawn(move || report_progress(all, done, every, observer));
            }
            if let Some((every, job)) = reporting.periodic {
                let (done, cancel, all) = (&done, &cancel, &all);
                s.spawn(move || loop {
                    let until = Instant::now() + every;
                    let mut early = false;
                    while Instant::now() < until
                        && !done.load(Ordering::SeqCst)
                        && !cancel.is_cancelled()
                        && !early
                    {
                        cancel.sleep(Duration::from_millis(200));
                        early = all.iter().any(|s| s.rescan_due_early());
                    }
                    if done.load(Ordering::SeqCst) || cancel.is_cancelled() {
                        return;
                    }
                    if early {
                        // A rescan leaves entries changed lately to the
                        // events (see `copy_by_walk`); what a crashed filer
                        // lost was written before it came back.
                        log::info!(
                            "a source's stream broke and answers again (a restarted filer may \
                             have lost what it held in memory): the periodic job runs in {} s",
                            SETTLE.as_secs()
                        );
                        cancel.sleep(SETTLE);
                    }
                    for s in all.iter() {
                        s.stream_lost_at.store(0, Ordering::Relaxed);
                    }
                    job();
                });
            }
            let results = run_directions(s, flows, observer);
            done.store(true, Ordering::SeqCst);
            results
        })
    })
}

/// How long after a broken stream answers again the periodic job runs.
const SETTLE: Duration = Duration::from_secs(5);

/// Hands the live counters to `observer` every `every` until `done`.
fn report_progress(
    all: &[std::sync::Arc<Stats>],
    done: &std::sync::atomic::AtomicBool,
    every: Duration,
    observer: &dyn Observer,
) {
    let mut next = Instant::now() + every;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next {
            next += every;
            observer.progress(all, false);
        }
    }
    observer.progress(all, true);
}

fn run_directions<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    flows: Vec<Flow>,
    observer: &'s dyn Observer,
) -> Vec<Result<Summary>> {
    let handles: Vec<_> = flows
        .into_iter()
        .map(|f| {
            std::thread::Builder::new()
                .name(format!("dir {}", f.name))
                .spawn_scoped(s, move || {
                    let r = run(&f, observer);
                    match &r {
                        // A paused direction stops alone; the others go on.
                        Err(e) if e.kind() == ErrorKind::Paused => {
                            f.stats.paused.store(true, Ordering::Relaxed);
                            log::error!("{e}");
                        }
                        // One direction failing for good ends the process's run.
                        Err(_) => f.cancel.cancel(),
                        Ok(_) => {}
                    }
                    r
                })
                .expect("spawn direction thread")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::state("a direction thread panicked")))
        })
        .collect()
}

/// Runs one direction: subscribe from the checkpoint, apply windows, commit,
/// and re-subscribe from the checkpoint whenever the stream breaks.
pub fn run(f: &Flow, observer: &dyn Observer) -> Result<Summary> {
    let mut state = if f.dry_run {
        State::open_dry(&f.state_path)?
    } else {
        State::open(&f.state_path)?
    };
    if let Some(ts) = f.from_ns {
        state.set_checkpoint(&f.key, ts)?;
    }
    // "Caught up" is judged against the source's clock, never this host's:
    // with skewed clocks a local time would stop too early or never.
    let start_ns = if f.once {
        let source_now = retry(
            &format!("{}: source clock", f.name),
            Policy::SHORT,
            &f.cancel,
            || f.applier.source().now_ns(),
        )?;
        let skew_ms = (source_now - crate::util::now_ns()) / 1_000_000;
        if skew_ms.abs() > 2_000 {
            log::warn!(
                "{}: the source filer's clock is {skew_ms} ms off this host's; caught-up is \
                    judged by the source's",
                f.name
            );
        }
        source_now
    } else {
        crate::util::now_ns()
    };
    let mut failures = Vec::new();
    let done = |failures| {
        Ok(Summary {
            stats: f.stats.clone(),
            failures,
        })
    };
    let workers = Pools {
        events: pool(&f.name, "worker", f.workers)?,
        chunks: pool(&f.name, "chunk", f.chunk_workers)?,
    };
    // What earlier runs deleted within the span counts too: a cron job
    // cannot delete N a run.
    let mut budget = match f.max_delete {
        None => None,
        Some(max) => {
            let since = crate::util::now_ns() - DeleteBudget::SPAN.as_nanos() as i64;
            let mut b = DeleteBudget::new(max);
            for (at_ns, n) in state.deletes_since(&f.key, since)? {
                b.book_past(at_ns, n);
            }
            Some(b)
        }
    };
    let mut care = Care {
        // Resuming from a checkpoint: the previous process may have applied
        // one window past it before it stopped (a kill between apply and
        // commit).
        events: match state.position(&f.key)? {
            Some((since, _)) if since > 0 && !f.walked => f.batch_size,
            _ => 0,
        },
        // A first-run walk copied the trees while these were logged.
        until_ns: state.careful_until(&f.key)?,
    };
    f.applier.trust_moves_after(state.replay_horizon(&f.key)?);
    f.applier.restore_behind(state.behind(&f.key)?);
    loop {
        let (since, stands_on) = state.position(&f.key)?.unwrap_or((0, 0));
        f.stats.checkpoint_ns.store(since, Ordering::Relaxed);
        if f.once && since >= start_ns {
            return done(failures);
        }
        // Every (re)subscription first asks whether the source is still the
        // store this direction replicates: a filer restarted on an empty
        // store breaks the stream, and comes back with a new signature.
        let side = f.name.chars().next().unwrap_or('?');
        let source = f.applier.source();
        crate::filer::same_source(side, source, f.key.source_sig, &f.cancel)?;
        let (rx, via) = match &f.hub {
            Some(hub) => hub.join(f, since, stands_on)?,
            None => subscribe(f, since)?,
        };
        log::info!(
            "{}: following {via} {} from {} into {}",
            f.name,
            f.scope.source_path,
            describe_ts(since),
            f.scope.target_path
        );
        let mut caught_up = false;
        let mut replay = Replay {
            ts_ns: since,
            fingerprint: stands_on,
        };
        // The window read on while the one before it applied.
        let mut next: Option<Next> = None;
        let ended = loop {
            let (window, stream_end, ahead) = match next.take() {
                Some(n) => {
                    caught_up = n.caught_up;
                    (n.window, n.stream_end, Some(n.ahead))
                }
                None => {
                    let at = (start_ns, false);
                    let (w, end) = collect_window(f, &rx, at, &mut replay, &mut caught_up);
                    (PlannedWindow::of(f, w), end, None)
                }
            };
            let events = window.events();
            if !events.is_empty() {
                let newest = events.last().map(|e| e.ts_ns).unwrap_or(since);
                let oldest = events.first().map_or(newest, |e| e.ts_ns);
                let last_event = events.last().map_or(0, Event::fingerprint);
                f.stats
                    .in_flight
                    .store(events.len() as u64, Ordering::Relaxed);
                let checked = care.take(events);
                let (began, size) = (Instant::now(), events.len());
                let began_ns = crate::util::now_ns();
                // Catching up (a full window), or with events queued behind
                // this one (a busy source): the next window is planned and
                // its chunks copied ahead while this one applies, so that
                // the volume servers work while the target filer does, and
                // a busy stream's events do not wait for a whole window
                // before their copies start (the probes' p99 lag under
                // 900 files/s: 54 -> 33 ms, 3 same-run pairs). Not under
                // --ha (nothing is written past the lease's fence) nor once
                // the stream ended or the cron run is caught up.
                let read_on = (size >= f.batch_size || !rx.is_empty())
                    && stream_end.is_none()
                    && !(f.once && caught_up)
                    && f.lease.is_none()
                    && !f.dry_run;
                fenced(f)?;
                let after = care.clone();
                let (commit, read) = std::thread::scope(|s| {
                    let reading = read_on.then(|| {
                        s.spawn(|| read_on_window(f, &rx, start_ns, &mut replay, after, &workers))
                    });
                    let commit = apply_window(f, &workers, window, (checked, ahead), &mut budget);
                    let read =
                        reading.map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                    (commit, read)
                });
                next = read;
                log::debug!(
                    "{}: a window of {size} events took {:.1} ms; its oldest was logged {:.1} \
                     ms before it began",
                    f.name,
                    began.elapsed().as_secs_f64() * 1000.0,
                    (began_ns - oldest) as f64 / 1e6
                );
                f.stats.in_flight.store(0, Ordering::Relaxed);
                let (mut commit, planned) = commit?;
                if !planned.is_empty() {
                    observer.planned(&f.name, &planned);
                }
                if f.applier.skip_pending() {
                    commit.replay_horizon_ns = replay_horizon(f);
                    f.applier.trust_moves_after(commit.replay_horizon_ns);
                }
                failures.extend(commit.failures.iter().cloned());
                for fl in &commit.failures {
                    log::error!("{}: {} failed: {}", f.name, fl.path, fl.error);
                }
                let st = &f.stats;
                st.failed
                    .fetch_add(commit.failures.len() as u64, Ordering::Relaxed);
                st.conflicts
                    .fetch_add(commit.conflicts.len() as u64, Ordering::Relaxed);
                st.superseded
                    .fetch_add(commit.superseded, Ordering::Relaxed);
                let (events, bytes) = (commit.events, commit.bytes);
                fenced(f)?;
                let generation = f.lease.as_ref().map_or(0, |l| l.generation());
                let behind = f.applier.take_behind();
                state.commit(
                    &f.key,
                    &Commit {
                        ts_ns: newest,
                        last_event,
                        generation,
                        behind: behind.clone(),
                        ..commit
                    },
                )?;
                if f.lease.is_some() {
                    share_checkpoint(f, newest, behind.as_deref());
                    log::info!(
                        "{}: ha window applied from {began_ns} to {} ns, {size} events, \
                         generation {generation}",
                        f.name,
                        crate::util::now_ns()
                    );
                }
                st.checkpoint_ns.store(newest, Ordering::Relaxed);
                st.committed.fetch_add(events, Ordering::Relaxed);
                st.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            if f.cancel.is_cancelled() {
                return done(failures);
            }
            if f.once && caught_up {
                return done(failures);
            }
            if let Some(end) = stream_end {
                break end;
            }
        };
        f.stats.stream_lost();
        match ended {
            Err(e) if e.is_retryable() || e.kind() == ErrorKind::Remote => {
                log::warn!(
                    "{}: stream lost ({e}); re-subscribing from the checkpoint",
                    f.name
                );
                f.cancel.sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
            Ok(()) => {
                log::warn!("{}: the source ended the stream; re-subscribing", f.name);
                f.cancel.sleep(Duration::from_millis(500));
            }
        }
        if f.cancel.is_cancelled() {
            return done(failures);
        }
    }
}

/// A window read while the one before it applied: its events planned,
/// its chunks copied ahead, how the stream stood after it.
struct Next<'f> {
    window: PlannedWindow,
    stream_end: Option<Result<()>>,
    caught_up: bool,
    ahead: crate::apply::Ahead<'f>,
}

/// Reads the next window when the stream has its first event queued (never
/// waiting for one: the window applying may be the last for a while; then
/// gathering it as any window, up to `--batch-window-ms`), plans it and
/// copies its chunks ahead. `care` is where the window applying leaves it.
fn read_on_window<'f>(
    f: &'f Flow,
    rx: &Receiver<Result<StreamItem>>,
    start_ns: i64,
    replay: &mut Replay,
    mut care: Care,
    pools: &Pools,
) -> Next<'f> {
    let mut caught_up = false;
    let (window, stream_end) = collect_window(f, rx, (start_ns, true), replay, &mut caught_up);
    if !window.is_empty() {
        log::debug!(
            "{}: read on {} events while the window before them applied",
            f.name,
            window.len()
        );
    }
    let window = PlannedWindow::of(f, window);
    let checked = care.take(window.events());
    let ahead = window.copy_ahead(f, &pools.chunks, checked);
    Next {
        window,
        stream_end,
        caught_up,
        ahead,
    }
}

/// `--ha`: fails (Interrupted) once the lock this run holds is no longer
/// valid by this host's clock: nothing more is applied or committed.
fn fenced(f: &Flow) -> Result<()> {
    match &f.lease {
        Some(l) if !l.valid() => Err(Error::new(
            ErrorKind::Interrupted,
            format!(
                "{}: no longer the active instance (lock generation {}); nothing more is \
                 applied",
                f.name,
                l.generation()
            ),
        )),
        _ => Ok(()),
    }
}

/// `--ha`: the committed checkpoint also goes to the target filer's KV, in
/// `weed filer.sync`'s key format (a shard's: `Direction::shared_key`),
/// where the instance that takes over reads it; so do the marks behind
/// that go with it when they changed (`Direction::behind_key`), first: a
/// stop between the two leaves newer marks with an older checkpoint, whose
/// replay settles the same paths again. A failure costs only a replay
/// after a takeover (or marks a takeover does not know): it is logged.
fn share_checkpoint(f: &Flow, ts_ns: i64, behind: Option<&[String]>) {
    let put = |what: &str, key: Vec<u8>, value: Vec<u8>| {
        if let Err(e) = retry("KvPut", Policy::SHORT, &f.cancel, || {
            f.applier.target().kv_put(&key, &value)
        }) {
            log::warn!("{}: {what} not shared on the target: {e}", f.name);
        }
    };
    if let Some(paths) = behind {
        put(
            "marks behind",
            f.key.behind_key(),
            crate::state::encode_marks(paths),
        );
    }
    put(
        "checkpoint",
        f.key.shared_key(),
        crate::state::reference::encode(ts_ns),
    );
}

/// The two thread pools of a direction: events (lanes) and chunk transfers.
struct Pools {
    events: rayon::ThreadPool,
    chunks: rayon::ThreadPool,
}

/// A named thread pool of `n` threads (for `flow`'s `what`).
pub fn pool(flow: &str, what: &str, n: usize) -> Result<rayon::ThreadPool> {
    let name = format!("{flow} {what}");
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(move |i| format!("{name} {i}"))
        .build()
        .map_err(|e| Error::state(format!("{flow} {what} pool: {e}")))
}

fn describe_ts(ts: i64) -> String {
    if ts == 0 {
        "the beginning of the log".into()
    } else {
        format!("ts {ts}")
    }
}

/// The subscription request of `f`'s direction from `since`.
fn request(f: &Flow, since: i64) -> SubscribeMetadataRequest {
    let mut req = SubscribeMetadataRequest::new();
    req.client_name = f.stats.client.clone();
    req.path_prefix = if f.scope.source_path.ends_with('/') {
        f.scope.source_path.clone()
    } else {
        format!("{}/", f.scope.source_path)
    };
    req.since_ns = since;
    // The filer leaves out what carries the signature (what the sync wrote
    // there), except where removals are noted: there the sync's own
    // removals are noted too, then passed on as skipped.
    req.signature = match f.removed_at_source {
        Some(_) => 0,
        None => f.scope.target_sig,
    };
    req.client_id = client_id();
    req.client_epoch = next_epoch();
    req.client_supports_batching = true;
    req.client_supports_idle_heartbeat = true;
    req
}

/// What one flow keeps of the items its stream reads, as they are read.
#[derive(Clone)]
pub(crate) struct Keep {
    /// A shard's flow (`--shards`) is passed only the events that touch
    /// its paths; the rest move its cursor only, as the filer's own
    /// "filtered" markers do. The filer cannot filter by a hash of names.
    scope: Option<Scope>,
    /// What the source's users remove is noted as it is read, ahead of the
    /// windows, for the opposite direction.
    removed: Option<std::sync::Arc<Removed>>,
    sync_sig: i32,
}

impl Keep {
    fn of(f: &Flow) -> Keep {
        Keep {
            scope: f.scope.shard.is_some().then(|| f.scope.clone()),
            removed: f.removed_at_source.clone(),
            sync_sig: f.scope.target_sig,
        }
    }

    /// The item as this flow takes it: an event of another shard, or one
    /// the sync itself wrote, becomes a cursor move.
    fn pass(&self, mut item: Result<StreamItem>) -> Result<StreamItem> {
        if let (Some(scope), Ok(StreamItem::Event(ev))) = (&self.scope, &item) {
            if !event_paths(ev).iter().any(|p| scope.in_shard(p)) {
                item = Ok(StreamItem::Skipped(ev.ts_ns));
            }
        }
        if let Some(r) = &self.removed {
            match &item {
                Ok(StreamItem::Event(ev)) => {
                    if r.note_event(ev, self.sync_sig) {
                        item = Ok(StreamItem::Skipped(ev.ts_ns));
                    }
                }
                Ok(StreamItem::Idle(ts) | StreamItem::Skipped(ts)) => r.read_up_to(*ts),
                Err(_) => {}
            }
        }
        item
    }
}

/// A subscription's epoch, new for each: a filer refuses one that is not
/// above every epoch it knows for the same client id.
fn next_epoch() -> i32 {
    EPOCH.fetch_add(1, Ordering::SeqCst) + 1
}

/// Starts the subscriber thread; it ends when the stream does, passing the
/// stream's last word (an error, or Ok at a clean end) as its final message.
fn subscribe(f: &Flow, since: i64) -> Result<(Receiver<Result<StreamItem>>, FilerAddr)> {
    let req = request(f, since);
    let stream = retry("SubscribeMetadata", Policy::FOREVER, &f.cancel, || {
        f.applier.source().subscribe(&req)
    })?
    .watched(f.stall, f.stats.heard_at.clone());
    f.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
    let via = stream.filer().clone();
    let keep = Keep::of(f);
    let rx = read(
        format!("{} stream", f.name),
        stream,
        f.batch_size.max(16) * 2,
        move |item| keep.pass(item),
    )?;
    Ok((rx, via))
}

/// Reads `stream` on a thread of its own into a queue of `cap` items, each
/// as `keep` passes it, until the stream ends (its last word, an error or
/// a clean end, is the last item) or the queue's reader is gone.
fn read(
    name: String,
    stream: crate::filer::Subscription,
    cap: usize,
    keep: impl Fn(Result<StreamItem>) -> Result<StreamItem> + Send + 'static,
) -> Result<Receiver<Result<StreamItem>>> {
    let (tx, rx) = bounded(cap);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            for item in stream {
                let item = keep(item);
                let end = item.is_err();
                if tx.send(item).is_err() || end {
                    return;
                }
            }
            let _ = tx.send(Err(Error::transient("stream closed")));
        })
        .map_err(|e| Error::state(format!("spawn {name}: {e}")))?;
    Ok(rx)
}
