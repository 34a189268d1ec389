//! One metadata stream per direction for all the shards an instance holds
//! (`sync --ha --shards N`): the hub reads the source's log once and hands
//! each event to the flow of every shard it touches (a move across shards
//! to both; the others see a cursor move, as with a stream of their own).
//!
//! Each flow joins at its own checkpoint and must see exactly what a
//! subscription of its own from there would show: nothing it has already
//! committed, nothing lost. The stream is read in log order, but the time
//! an event carries is not monotonic (it is taken before the event enters
//! the log), so a flow is placed in a shared stream by an event, not by a
//! time: its gate opens right after the event its checkpoint stands on
//! (`Gate::After`; then it is exact), or, when the stream starts at that
//! event's time (a filer serves only what is timed after it), passes all
//! but that event (`Gate::Except`). A checkpoint that stands on no known
//! event (adopted from the target's KV after a takeover, or the whole
//! link's) opens at the first event carrying a time `MARGIN` before it
//! (`Gate::From`): a few events already applied come again, as after any
//! takeover, and none is lost (an event is logged well within `MARGIN` of
//! the time it carries).
//!
//! A flow that joins behind the stream (the hub has read past its
//! checkpoint) restarts the stream from the oldest point any flow needs:
//! every flow already in is placed again by the last event it was handed,
//! so none sees anything twice or misses anything. Joins arriving together
//! (the shards taken at once, the re-subscriptions after a lost stream) are
//! gathered for a moment so that they cost one restart. A stream that
//! breaks ends for every flow, which re-subscribes from its checkpoint as
//! with a stream of its own (the source is checked again first). The
//! slowest flow paces the stream: each has a queue of two windows.

use super::{request, Flow, Keep};
use crate::error::{Error, Result};
use crate::filer::{Event, FilerAddr, FilerClient, StreamItem};
use crate::pb::filer::SubscribeMetadataRequest;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far the time an event carries may lag the point where it enters
/// the log (measured in microseconds to milliseconds; a filer under load
/// may take longer): a gate waiting for an event gives up once the stream
/// is this far past it, and a gate opened by time opens this early.
pub const MARGIN: i64 = 1_000_000_000;

/// Joins closer together than this are gathered into one (re)start.
const GATHER: Duration = Duration::from_millis(150);

/// An event of the log: its time and fingerprint (`Event::fingerprint`;
/// 0: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub ts_ns: i64,
    pub fingerprint: i64,
}

/// Where a flow's share of the stream begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Right after this event (withheld itself).
    After(Mark),
    /// Everything but this event: the stream starts at its time, and a
    /// filer serves only what comes after it (should it serve the event
    /// again, it is withheld, once).
    Except(Mark),
    /// At the first event carrying this time or one `MARGIN` older.
    From(i64),
    /// Not before the stream restarts (the flow joined behind it).
    Held,
}

/// What a gate does with one item of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Deliver,
    Withhold,
    /// The event the gate waits for is not in this stream (the stream is
    /// `MARGIN` past it): the flow must be placed again by time.
    Lost,
}

impl Gate {
    /// The gate of a flow that stands at `at`, in a stream read from
    /// `start` (never after `at.ts_ns`).
    pub fn at(at: Mark, start: i64) -> Gate {
        match at.fingerprint {
            0 if at.ts_ns <= start => Gate::Open,
            0 => Gate::From(at.ts_ns),
            // Waiting for the event there would wait for one the filer does
            // not serve (only what is timed after `since_ns`), and give the
            // flow up as lost a MARGIN later (a quiet shard's checkpoint
            // is the stream's start as often as not).
            _ if at.ts_ns <= start => Gate::Except(at),
            _ => Gate::After(at),
        }
    }

    /// Passes an event (with its fingerprint) or a cursor move (`None`)
    /// at `ts` through the gate, opening it when its point is reached.
    pub fn pass(&mut self, ts: i64, fingerprint: Option<i64>) -> Pass {
        match *self {
            Gate::Open => Pass::Deliver,
            Gate::After(m) => {
                if fingerprint == Some(m.fingerprint) && ts == m.ts_ns {
                    *self = Gate::Open;
                    Pass::Withhold
                } else if ts > m.ts_ns.saturating_add(MARGIN) {
                    Pass::Lost
                } else {
                    Pass::Withhold
                }
            }
            Gate::Except(m) => {
                if fingerprint == Some(m.fingerprint) && ts == m.ts_ns {
                    *self = Gate::Open;
                    Pass::Withhold
                } else {
                    if ts > m.ts_ns.saturating_add(MARGIN) {
                        *self = Gate::Open;
                    }
                    Pass::Deliver
                }
            }
            Gate::Held => Pass::Withhold,
            // An event from a MARGIN before; or a cursor move past the time
            // (the stream has read all before it: nothing it needs was
            // withheld).
            Gate::From(t) => {
                let opens = match fingerprint {
                    Some(_) => ts >= t.saturating_sub(MARGIN),
                    None => ts >= t,
                };
                if opens {
                    *self = Gate::Open;
                    Pass::Deliver
                } else {
                    Pass::Withhold
                }
            }
        }
    }
}

/// The point a stream shared by flows standing at `marks` is read from:
/// the oldest.
pub fn start_of(marks: impl IntoIterator<Item = Mark>) -> i64 {
    marks.into_iter().map(|m| m.ts_ns).min().unwrap_or(0)
}

/// True when a flow standing at `since` can join a stream that has read up
/// to `read_ts` without restarting it: the stream is `MARGIN` short of it.
pub fn joins_running(read_ts: i64, since: i64) -> bool {
    read_ts.saturating_add(MARGIN) <= since
}

/// One flow fed by the hub.
struct Sub {
    name: String,
    keep: Keep,
    tx: Sender<Result<StreamItem>>,
    stats: Arc<crate::stats::Stats>,
    gate: Gate,
    /// The last event of the stream this flow was handed (of its shard or
    /// not) or, before any, its checkpoint.
    at: Mark,
}

/// What the stream is opened with (the joining flow's, alike for all).
#[derive(Clone)]
struct Source {
    client: FilerClient,
    req: SubscribeMetadataRequest,
    stall: Duration,
}

#[derive(Default)]
struct Inner {
    subs: Vec<Sub>,
    source: Option<Source>,
    /// A serving thread runs.
    running: bool,
    /// The stream must be read again from the oldest point needed.
    restart: bool,
    /// The newest time the stream has read.
    read_ts: i64,
    last_join: Option<Instant>,
    /// Streams opened so far (logged).
    opened: u64,
}

/// One direction's shared stream (see the module's note).
pub struct Hub {
    name: String,
    inner: Mutex<Inner>,
    heard: Arc<AtomicI64>,
}

impl Hub {
    /// `name` names the direction in logs ("A→B").
    pub fn new(name: &str) -> Arc<Hub> {
        Arc::new(Hub {
            name: name.to_string(),
            inner: Mutex::default(),
            heard: Arc::default(),
        })
    }

    /// `f`'s share of the stream from its checkpoint `since` (standing on
    /// the event `fingerprint`, 0: unknown), as `subscribe` gives it.
    pub fn join(
        self: &Arc<Self>,
        f: &Flow,
        since: i64,
        fingerprint: i64,
    ) -> Result<(Receiver<Result<StreamItem>>, FilerAddr)> {
        let (tx, rx) = bounded(f.batch_size.max(16) * 2);
        let at = Mark {
            ts_ns: since,
            fingerprint,
        };
        let mut inner = self.inner.lock().unwrap();
        inner.source = Some(Source {
            client: f.applier.source().clone(),
            req: request(f, since),
            stall: f.stall,
        });
        let joins = inner.running && !inner.restart && joins_running(inner.read_ts, since);
        if inner.running && !joins {
            inner.restart = true;
        }
        // Behind the stream: nothing until it is read again from here.
        let gate = match joins {
            true => Gate::at(at, i64::MIN),
            false => Gate::Held,
        };
        inner.last_join = Some(Instant::now());
        inner.subs.push(Sub {
            name: f.name.clone(),
            keep: Keep::of(f),
            tx,
            stats: f.stats.clone(),
            gate,
            at,
        });
        if !inner.running {
            inner.running = true;
            let hub = self.clone();
            std::thread::Builder::new()
                .name(format!("{} hub", self.name))
                .spawn(move || hub.serve())
                .map_err(|e| {
                    inner.running = false;
                    inner.subs.pop();
                    Error::state(format!("spawn the shared stream: {e}"))
                })?;
        }
        Ok((rx, f.applier.source().addr().clone()))
    }

    /// Opens the stream for the flows in, reads it and hands it out, until
    /// no flow is left.
    fn serve(self: Arc<Self>) {
        let mut stream: Option<Receiver<Result<StreamItem>>> = None;
        loop {
            let mut inner = self.inner.lock().unwrap();
            if inner.subs.is_empty() {
                inner.running = false;
                return;
            }
            if stream.is_none() || inner.restart {
                // Gather the joins arriving together.
                let waited = Instant::now();
                while inner
                    .last_join
                    .is_some_and(|t| t.elapsed() < GATHER && waited.elapsed() < GATHER * 8)
                {
                    drop(inner);
                    std::thread::sleep(GATHER / 3);
                    inner = self.inner.lock().unwrap();
                }
                inner.restart = false;
                let start = start_of(inner.subs.iter().map(|s| s.at));
                for s in &mut inner.subs {
                    s.gate = Gate::at(s.at, start);
                }
                inner.read_ts = start;
                inner.opened += 1;
                let (n, opened) = (inner.subs.len(), inner.opened);
                let source = inner.source.clone().expect("set by a join");
                drop(inner);
                stream = None;
                match self.open(&source, start) {
                    Ok((rx, via)) => {
                        for s in &self.inner.lock().unwrap().subs {
                            s.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
                        }
                        log::info!(
                            "{}: one stream for the {n} shard flows held: reading {} on {via} \
                             from {} (stream {opened} of this instance)",
                            self.name,
                            source.req.path_prefix,
                            if start == 0 {
                                "the beginning of the log".to_string()
                            } else {
                                format!("ts {start}")
                            }
                        );
                        stream = Some(rx);
                    }
                    Err(e) => self.hand_out(Err(e)),
                }
                continue;
            }
            drop(inner);
            let Some(rx) = &stream else { continue };
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(item) => {
                    let end = item.is_err();
                    self.hand_out(item);
                    if end {
                        stream = None;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.hand_out(Err(Error::transient("stream closed")));
                    stream = None;
                }
            }
        }
    }

    /// Opens the stream from `start` on a reader thread of its own, which
    /// ends when the stream does or once the hub drops its queue.
    fn open(
        &self,
        source: &Source,
        start: i64,
    ) -> Result<(Receiver<Result<StreamItem>>, FilerAddr)> {
        let mut req = source.req.clone();
        req.since_ns = start;
        // A restart without a join meanwhile reuses the client id: a filer
        // refuses an epoch it knows for it ("duplicated local subscription",
        // the old stream not yet gone on its side), and every flow would go
        // back to its checkpoint, rejoin and restart again, for ever.
        req.client_epoch = super::next_epoch();
        let stream = source
            .client
            .subscribe(&req)?
            .watched(source.stall, self.heard.clone());
        let via = stream.filer().clone();
        let rx = super::read(format!("{} hub stream", self.name), stream, 1024, |i| i)?;
        Ok((rx, via))
    }

    /// Hands one item to every flow whose gate passes it; an error ends the
    /// stream for all (each re-subscribes from its checkpoint).
    fn hand_out(&self, item: Result<StreamItem>) {
        let mut inner = self.inner.lock().unwrap();
        let heard = self.heard.load(Ordering::Relaxed);
        let (ts, mark) = match &item {
            Err(_) => {
                for s in std::mem::take(&mut inner.subs) {
                    let e = match &item {
                        Err(e) => Error::new(e.kind(), e.to_string()),
                        Ok(_) => unreachable!(),
                    };
                    let _ = s.tx.send(Err(e));
                }
                return;
            }
            Ok(StreamItem::Event(ev)) => (ev.ts_ns, Some(mark(ev))),
            Ok(StreamItem::Idle(ts) | StreamItem::Skipped(ts)) => (*ts, None),
        };
        inner.read_ts = inner.read_ts.max(ts);
        let mut restart = false;
        inner.subs.retain_mut(|s| {
            s.stats.heard_at.store(heard, Ordering::Relaxed);
            match s.gate.pass(ts, mark.map(|m| m.fingerprint)) {
                Pass::Withhold => return true,
                Pass::Lost => {
                    log::warn!(
                        "{}: the event at ts {} that the shared stream was to resume this flow \
                         after is not in the log; reading again from a second before it",
                        s.name,
                        s.at.ts_ns
                    );
                    s.at.fingerprint = 0;
                    s.gate = Gate::Held;
                    restart = true;
                    return true;
                }
                Pass::Deliver => {}
            }
            if let Some(m) = mark {
                s.at = m;
            }
            let item = match &item {
                Ok(i) => s.keep.pass(Ok(i.clone())),
                Err(_) => unreachable!(),
            };
            s.tx.send(item).is_ok()
        });
        inner.restart |= restart;
    }
}

fn mark(ev: &Event) -> Mark {
    Mark {
        ts_ns: ev.ts_ns,
        fingerprint: ev.fingerprint(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn m(ts: i64, fp: i64) -> Mark {
        Mark {
            ts_ns: ts,
            fingerprint: fp,
        }
    }

    #[test]
    fn a_flow_is_placed_by_the_event_its_checkpoint_stands_on() {
        // The stream from 10 s: events in log order, the times they carry
        // not monotonic (the third was timed before the second).
        let log = [(10 * S, 1), (12 * S, 2), (12 * S - 5, 3), (13 * S, 4)];
        let through = |mut g: Gate| -> Vec<i64> {
            log.iter()
                .filter(|(ts, fp)| g.pass(*ts, Some(*fp)) == Pass::Deliver)
                .map(|(_, fp)| *fp)
                .collect()
        };
        // Standing on the second event: the third (carrying an older time)
        // is not lost, the second is not applied again.
        assert_eq!(through(Gate::at(m(12 * S, 2), 10 * S)), [3, 4]);
        // At the stream's start with a known event: what the stream serves
        // (only what comes after it; that event itself, if served, is not
        // handed on).
        assert_eq!(through(Gate::at(m(10 * S, 1), 10 * S)), [2, 3, 4]);
        assert_eq!(through(Gate::at(m(10 * S, 9), 10 * S)), [1, 2, 3, 4]);
        let mut g = Gate::at(m(10 * S, 1), 10 * S);
        assert_eq!(g.pass(12 * S, Some(2)), Pass::Deliver);
        assert_eq!(g, Gate::Open, "a MARGIN past it: it will not come");
        // No known event, at the start: everything, as a stream of its own.
        assert_eq!(through(Gate::at(m(10 * S, 0), 10 * S)), [1, 2, 3, 4]);
        // No known event, later: from a MARGIN before its time (a replay of
        // what came just before, never a loss).
        assert_eq!(through(Gate::at(m(12 * S + 5, 0), 10 * S)), [2, 3, 4]);
        assert_eq!(through(Gate::at(m(14 * S, 0), 10 * S)), [4]);
        // ... or at a cursor move past its time (nothing before withheld).
        let mut g = Gate::at(m(14 * S, 0), 10 * S);
        assert_eq!(g.pass(13 * S, None), Pass::Withhold);
        assert_eq!(g.pass(14 * S, None), Pass::Deliver);
        assert_eq!(g, Gate::Open);
        // Cursor moves never open a gate, and pass only once it is open.
        let mut g = Gate::at(m(12 * S, 2), 0);
        assert_eq!(g.pass(12 * S, None), Pass::Withhold);
        assert_eq!(g.pass(12 * S, Some(2)), Pass::Withhold);
        assert_eq!(g.pass(12 * S, None), Pass::Deliver);
        // A flow that joined behind the stream waits for its restart.
        let mut g = Gate::Held;
        assert_eq!(g.pass(12 * S, Some(2)), Pass::Withhold);
        assert_eq!(g.pass(99 * S, Some(3)), Pass::Withhold);
    }

    #[test]
    fn an_event_missing_from_the_stream_is_given_up_on_a_margin_past_it() {
        let mut g = Gate::at(m(12 * S, 9), 0);
        assert_eq!(g.pass(12 * S + MARGIN, Some(1)), Pass::Withhold);
        assert_eq!(g.pass(12 * S + MARGIN + 1, None), Pass::Lost);
        assert_eq!(g.pass(12 * S + MARGIN + 1, Some(2)), Pass::Lost);
    }

    #[test]
    fn a_join_behind_the_stream_restarts_it_from_the_oldest_point() {
        assert!(joins_running(10 * S, 12 * S));
        assert!(!joins_running(10 * S, 10 * S + MARGIN - 1), "too close");
        assert!(!joins_running(10 * S, 9 * S), "behind");
        assert_eq!(start_of([m(12 * S, 1), m(9 * S, 0), m(15 * S, 3)]), 9 * S);
        assert_eq!(start_of([]), 0);
        // Placed again in the restarted stream: the oldest without a known
        // event opens at once, the others by their events or times.
        assert_eq!(Gate::at(m(9 * S, 0), 9 * S), Gate::Open);
        assert_eq!(Gate::at(m(12 * S, 1), 9 * S), Gate::After(m(12 * S, 1)));
        assert_eq!(Gate::at(m(12 * S, 0), 9 * S), Gate::From(12 * S));
    }
}
