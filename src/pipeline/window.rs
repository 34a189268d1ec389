//! A window in the making: gathering the next window from the subscription
//! (`collect_window`: up to `batch_size` events or the window's time, the
//! replayed checkpoint event dropped, cron mode's end seen), which of its
//! events may already be on the target (`Care`, `replay_horizon`), and the
//! `--max-delete` budget that a window's deletes are counted against. Pure
//! bookkeeping over a queue and the clock: nothing here writes anywhere.

use super::Flow;
use crate::error::Result;
use crate::filer::{Event, StreamItem};
use crate::replicate::event_paths;
use crate::retry::{retry, Policy};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The event a subscription serves again. The filer positions a
/// subscription by its log's own monotonic time, from the checkpoint on, so
/// the event the checkpoint stands on comes back. Only that exact event is
/// dropped: the time an event carries is taken before it enters the log, so
/// it is not monotonic, and an event after the checkpoint may carry an older
/// time (dropping by time lost one of 100,000 concurrent creates).
#[derive(Debug)]
pub(super) struct Replay {
    pub(super) ts_ns: i64,
    /// 0: unknown (a checkpoint set by hand or by an older version); then
    /// nothing is dropped and the event is applied again, harmlessly.
    pub(super) fingerprint: i64,
}

impl Replay {
    fn is_replay(&mut self, ev: &Event) -> bool {
        let hit =
            self.fingerprint != 0 && ev.ts_ns == self.ts_ns && ev.fingerprint() == self.fingerprint;
        if hit {
            self.fingerprint = 0;
        }
        hit
    }
}

/// `--max-delete`: deletes on the target within any minute. A mass delete
/// that arrives in many small windows adds up instead of slipping through a
/// few at a time.
pub(super) struct DeleteBudget {
    pub(super) max: u64,
    recent: std::collections::VecDeque<(Instant, u64)>,
}

impl DeleteBudget {
    pub(super) const SPAN: Duration = Duration::from_secs(60);

    pub(super) fn new(max: u64) -> DeleteBudget {
        DeleteBudget {
            max,
            recent: Default::default(),
        }
    }

    /// Books `n` deletes made by an earlier run at `at_ns` (this host's
    /// clock, ns).
    pub(super) fn book_past(&mut self, at_ns: i64, n: u64) {
        let age = Duration::from_nanos((crate::util::now_ns() - at_ns).max(0) as u64);
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        self.recent.push_back((at, n));
    }

    /// Books `n` deletes at `now`, or returns the total they would make.
    pub(super) fn take(&mut self, now: Instant, n: u64) -> std::result::Result<(), u64> {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= Self::SPAN)
        {
            self.recent.pop_front();
        }
        let total = self.recent.iter().map(|(_, k)| k).sum::<u64>() + n;
        if total > self.max {
            return Err(total);
        }
        if n > 0 {
            self.recent.push_back((now, n));
        }
        Ok(())
    }
}

/// Gathers the next window: waits for a first event, then takes more until
/// the window is full or its time is up; with `queued_only`, never waits
/// for a first event (returns nothing when none is queued). The replayed
/// checkpoint event is dropped. Returns the events and, when the stream
/// ended, how. Sets `caught_up` in cron mode once the source has nothing
/// older than the start time left.
pub(super) fn collect_window(
    f: &Flow,
    rx: &Receiver<Result<StreamItem>>,
    (start_ns, queued_only): (i64, bool),
    replay: &mut Replay,
    caught_up: &mut bool,
) -> (Vec<Event>, Option<Result<()>>) {
    let mut events = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        if f.cancel.is_cancelled() || (f.once && *caught_up) {
            return (events, None);
        }
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(200),
        };
        let item = match queued_only && events.is_empty() {
            false => rx.recv_timeout(wait),
            true => match rx.try_recv() {
                Ok(item) => Ok(item),
                Err(TryRecvError::Empty) => return (events, None),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            },
        };
        match item {
            Ok(Ok(StreamItem::Event(ev))) if replay.is_replay(&ev) => {}
            Ok(Ok(StreamItem::Event(ev))) => {
                if f.once && ev.ts_ns > start_ns {
                    *caught_up = true;
                    return (events, None);
                }
                f.stats.received.fetch_add(1, Ordering::Relaxed);
                f.stats.saw_source_time(ev.ts_ns);
                if f.debug_events {
                    log::info!("{}: received {} {:?}", f.name, ev.ts_ns, event_paths(&ev));
                }
                events.push(ev);
                deadline.get_or_insert_with(|| Instant::now() + f.window);
                if events.len() >= f.batch_size {
                    return (events, None);
                }
            }
            Ok(Ok(StreamItem::Idle(ts))) => {
                f.stats.saw_source_time(ts);
                if f.once && ts >= start_ns {
                    *caught_up = true;
                }
                if !events.is_empty() {
                    return (events, None);
                }
            }
            Ok(Ok(StreamItem::Skipped(_))) => {}
            Ok(Err(e)) => return (events, Some(Err(e))),
            Err(RecvTimeoutError::Timeout) => {
                if deadline.is_some() {
                    return (events, None);
                }
                f.applier.tidy();
            }
            Err(RecvTimeoutError::Disconnected) => return (events, Some(Ok(()))),
        }
    }
}

/// The time bound for events that may follow a replayed version this run
/// skipped: the successor was logged before the check found it, so before
/// the source's clock now; a minute on top covers a filer that stamps an
/// event a moment after its store shows the change. Without the source's
/// clock, this host's plus an hour.
pub(super) fn replay_horizon(f: &Flow) -> i64 {
    const MINUTE: i64 = 60_000_000_000;
    match retry(
        &format!("{}: source clock", f.name),
        Policy::SHORT,
        &f.cancel,
        || f.applier.source().now_ns(),
    ) {
        Ok(now) => now + MINUTE,
        Err(e) => {
            log::warn!("{}: source clock unknown ({e}); using this host's", f.name);
            crate::util::now_ns() + 60 * MINUTE
        }
    }
}

/// Which events may already be on the target, and so are checked on the
/// source before they apply: replayed, they must not bring back what later
/// events moved or removed (see `apply_one`).
#[derive(Clone)]
pub(super) struct Care {
    /// The next this many events (a window a stopped process may have
    /// applied past its checkpoint).
    pub(super) events: usize,
    /// Every event up to this time (source clock; a first-run walk's end).
    pub(super) until_ns: i64,
}

impl Care {
    /// How many of the first events of `window` (in log order) to check.
    pub(super) fn take(&mut self, window: &[Event]) -> usize {
        let counted = self.events.min(window.len());
        self.events -= counted;
        let timed = window
            .iter()
            .take_while(|e| e.ts_ns <= self.until_ns)
            .count();
        counted.max(timed)
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;
    use crate::pb::filer::{Entry, EventNotification};

    fn ev(ts_ns: i64, name: &str) -> Event {
        let mut e = Entry::new();
        e.name = name.into();
        let mut n = EventNotification::new();
        n.new_entry = Some(e).into();
        Event {
            ts_ns,
            directory: "/d".into(),
            notification: n,
        }
    }

    #[test]
    fn only_the_event_the_checkpoint_stands_on_is_dropped() {
        let at = ev(100, "a");
        let mut r = Replay {
            ts_ns: 100,
            fingerprint: at.fingerprint(),
        };
        // After the checkpoint in the log but stamped earlier: new.
        assert!(!r.is_replay(&ev(90, "late")));
        // Another event with the very same time: new.
        assert!(!r.is_replay(&ev(100, "twin")));
        assert!(r.is_replay(&at));
        // Dropped once only.
        assert!(!r.is_replay(&at));
        // Unknown (hand-set checkpoint): nothing is dropped.
        let mut unknown = Replay {
            ts_ns: 100,
            fingerprint: 0,
        };
        assert!(!unknown.is_replay(&at));
        assert_ne!(ev(100, "a").fingerprint(), ev(101, "a").fingerprint());
    }

    #[test]
    fn care_covers_a_count_of_events_or_a_time_whichever_reaches_further() {
        let w = |ts: &[i64]| ts.iter().map(|&t| ev(t, "x")).collect::<Vec<_>>();
        // (events, until, windows, checked in each)
        type Row<'a> = (usize, i64, &'a [&'a [i64]], &'a [usize]);
        let table: &[Row] = &[
            // Nothing to check: a fresh log start, or after a walk in this run
            // once its end is past.
            (0, 0, &[&[1, 2, 3]], &[0]),
            // A resume: the count carries over windows, then stops.
            (4, 0, &[&[1, 2, 3], &[4, 5, 6], &[7]], &[3, 1, 0]),
            // After a walk: events up to its end, however many.
            (0, 5, &[&[1, 2, 3], &[4, 5, 6], &[7]], &[3, 2, 0]),
            // A resume after a walk: the further of the two.
            (2, 3, &[&[1, 2, 3, 4]], &[3]),
            (3, 1, &[&[1, 2, 3, 4]], &[3]),
        ];
        for (events, until_ns, windows, want) in table {
            let mut care = Care {
                events: *events,
                until_ns: *until_ns,
            };
            let got: Vec<usize> = windows.iter().map(|ts| care.take(&w(ts))).collect();
            assert_eq!(&got, want, "events {events}, until {until_ns}");
        }
    }
}

#[cfg(test)]
mod delete_budget_tests {
    use super::*;

    #[test]
    fn deletes_add_up_over_a_minute() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut b = DeleteBudget::new(5);
        assert_eq!(b.take(at(0), 3), Ok(()));
        assert_eq!(b.take(at(10), 2), Ok(()));
        // A sixth delete within the minute: paused, and nothing booked.
        assert_eq!(b.take(at(20), 1), Err(6));
        assert_eq!(b.take(at(30), 0), Ok(()));
        // A minute after the first three, they no longer count.
        assert_eq!(b.take(at(60), 3), Ok(()));
        assert_eq!(b.take(at(61), 1), Err(6));
        // One window over the limit on its own.
        assert_eq!(DeleteBudget::new(5).take(at(0), 6), Err(6));
    }
}
