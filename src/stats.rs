//! Live counters per direction, shared by the pipeline (which updates them),
//! the progress renderer and the Prometheus endpoint (which read them). A
//! leaf: it knows nothing of who reads or writes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug)]
pub struct Stats {
    pub name: String,
    pub source: String,
    pub target: String,
    pub client: String,
    pub path: String,
    pub received: AtomicU64,
    /// Events committed (applied, unchanged, or ledgered as failed).
    pub committed: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub conflicts: AtomicU64,
    /// Events skipped: the source had replaced their version since.
    pub superseded: AtomicU64,
    pub in_flight: AtomicU64,
    /// Last committed checkpoint (ns).
    pub checkpoint_ns: AtomicI64,
    /// Newest source time seen on the stream, heartbeats included (ns).
    pub source_ns: AtomicI64,
    /// This host's clock when `source_ns` was last seen (ns).
    source_seen_at: AtomicI64,
    /// The direction stopped for a human (`--max-delete`, a replaced
    /// source store).
    pub paused: AtomicBool,
    /// Entries listed by rescans, both sides.
    pub rescan_entries: AtomicU64,
    /// Differences rescans found (and repaired), by `verify` class.
    pub rescan_differences: Mutex<BTreeMap<String, u64>>,
    /// Entries the running rescan has listed so far; `u64::MAX` while
    /// none runs.
    pub rescan_listed: AtomicU64,
    /// When the last rescan ended without error (this host's clock, ns).
    pub rescan_done_ns: AtomicI64,
    /// When the source's stream last broke (this host's clock, ns; 0: not
    /// since the last rescan began). See `rescan_due_early`.
    pub stream_lost_at: AtomicI64,
    /// When the source's stream last sent anything, heartbeats included
    /// (this host's clock, ns; when the direction began, before it did).
    pub heard_at: std::sync::Arc<AtomicI64>,
    /// Metadata streams opened for this direction: its subscriptions, or
    /// with `--shards` the (re)starts of the instance's shared stream that
    /// fed it: one per run, and one more for each lost or restarted stream.
    pub streams_opened: AtomicU64,
    /// `--ha`: 1 while this instance is the active one, 0 standing by;
    /// -1 without `--ha`. With `--shards`: 1 while it holds this shard.
    pub ha_active: AtomicI64,
    /// `--shards`: the shard this direction carries (its metrics say so).
    pub shard: Option<u32>,
}

impl Stats {
    pub fn new(name: &str, source: &str, target: &str, client: &str, path: &str) -> Stats {
        Stats {
            name: name.into(),
            source: source.into(),
            target: target.into(),
            client: client.into(),
            path: path.into(),
            received: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            superseded: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            checkpoint_ns: AtomicI64::new(0),
            source_ns: AtomicI64::new(0),
            source_seen_at: AtomicI64::new(0),
            paused: AtomicBool::new(false),
            rescan_entries: AtomicU64::new(0),
            rescan_differences: Mutex::new(BTreeMap::new()),
            rescan_listed: AtomicU64::new(u64::MAX),
            rescan_done_ns: AtomicI64::new(0),
            stream_lost_at: AtomicI64::new(0),
            ha_active: AtomicI64::new(-1),
            streams_opened: AtomicU64::new(0),
            shard: None,
            heard_at: std::sync::Arc::new(AtomicI64::new(crate::util::now_ns())),
        }
    }

    /// How long the source's stream has sent nothing: a few seconds at
    /// most while it is idle (the filer's heartbeat comes every 5 s), and
    /// growing while it is stalled or unreachable.
    pub fn silent_seconds(&self) -> f64 {
        let since = crate::util::now_ns() - self.heard_at.load(Relaxed);
        since.max(0) as f64 / 1e9
    }

    /// The stream showed the source's clock at `ts_ns` (an event's time or
    /// an idle heartbeat).
    pub fn saw_source_time(&self, ts_ns: i64) {
        if self.source_ns.fetch_max(ts_ns, Relaxed) <= ts_ns {
            self.source_seen_at.store(crate::util::now_ns(), Relaxed);
        }
    }

    /// The source's stream broke: a rescan is due once it answers again.
    pub fn stream_lost(&self) {
        let now = crate::util::now_ns();
        let _ = self
            .stream_lost_at
            .compare_exchange(0, now, Relaxed, Relaxed);
    }

    /// The source's stream broke since the last rescan began and has
    /// answered since (an event or a heartbeat): the filer may have been
    /// restarted, and a filer killed loses the events it held only in
    /// memory, so a rescan should not wait for its period.
    pub fn rescan_due_early(&self) -> bool {
        let lost = self.stream_lost_at.load(Relaxed);
        lost != 0 && self.source_seen_at.load(Relaxed) > lost
    }

    /// Whether everything the source logged up to `ts_ns` (its clock) is
    /// committed: the checkpoint passed it (windows commit in log order),
    /// or the stream showed that time (an event or a heartbeat; it shows
    /// times in order) and no received event waits.
    pub fn applied_up_to(&self, ts_ns: i64) -> bool {
        self.checkpoint_ns.load(Relaxed) >= ts_ns
            || (self.source_ns.load(Relaxed) >= ts_ns
                && self.received.load(Relaxed) <= self.committed.load(Relaxed))
    }

    /// How far the checkpoint is behind the source while received events
    /// wait to be committed (0 when all are committed): the newest source
    /// time seen, advanced by the time passed since it was seen, minus the
    /// checkpoint. It keeps growing while a window is stuck (a target down),
    /// and takes no clock of this host's as the source's.
    pub fn lag_seconds(&self) -> f64 {
        self.lag_at(crate::util::now_ns())
    }

    fn lag_at(&self, now_ns: i64) -> f64 {
        if self.received.load(Relaxed) <= self.committed.load(Relaxed) {
            return 0.0;
        }
        let since_seen = (now_ns - self.source_seen_at.load(Relaxed)).max(0);
        let source_now = self.source_ns.load(Relaxed) + since_seen;
        (source_now - self.checkpoint_ns.load(Relaxed)).max(0) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescan_is_due_early_once_a_broken_stream_answers_again() {
        let s = Stats::new("A→B", "a", "b", "c", "/");
        s.saw_source_time(10);
        assert!(!s.rescan_due_early());
        s.stream_lost();
        assert!(!s.rescan_due_early(), "not before the stream answers");
        let lost = s.stream_lost_at.load(Relaxed);
        s.stream_lost();
        assert_eq!(
            s.stream_lost_at.load(Relaxed),
            lost,
            "the first loss counts"
        );
        while crate::util::now_ns() <= lost {
            std::hint::spin_loop();
        }
        s.saw_source_time(20);
        assert!(s.rescan_due_early());
        s.stream_lost_at.store(0, Relaxed);
        assert!(!s.rescan_due_early(), "not again once the rescan began");
    }

    #[test]
    fn applied_up_to_a_time_once_the_stream_passed_it_and_nothing_waits() {
        let s = Stats::new("A→B", "a", "b", "c", "/");
        assert!(!s.applied_up_to(100));
        s.saw_source_time(100);
        assert!(s.applied_up_to(100));
        assert!(!s.applied_up_to(101));
        s.received.store(3, Relaxed);
        s.committed.store(2, Relaxed);
        assert!(!s.applied_up_to(100), "an event waits");
        s.committed.store(3, Relaxed);
        assert!(s.applied_up_to(100));
        // Events keep coming: a checkpoint past the time tells.
        s.received.store(9, Relaxed);
        s.checkpoint_ns.store(120, Relaxed);
        assert!(s.applied_up_to(110));
        assert!(!s.applied_up_to(130));
    }

    #[test]
    fn lag_grows_while_events_wait_and_is_zero_when_all_are_committed() {
        let s = Stats::new("A→B", "a", "b", "c", "/");
        s.checkpoint_ns.store(1_000_000_000, Relaxed);
        s.source_ns.store(3_500_000_000, Relaxed);
        s.source_seen_at.store(10_000_000_000, Relaxed);
        assert_eq!(s.lag_at(10_000_000_000), 0.0, "nothing received");
        s.received.store(10, Relaxed);
        s.committed.store(7, Relaxed);
        assert_eq!(s.lag_at(10_000_000_000), 2.5);
        // A stuck window: the stream's time stands still, the lag does not.
        assert_eq!(s.lag_at(70_000_000_000), 62.5);
        s.committed.store(10, Relaxed);
        assert_eq!(s.lag_at(70_000_000_000), 0.0);
    }
}
