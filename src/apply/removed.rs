//! Active-active: the file versions a cluster's own users removed lately
//! (deleted, or moved away from their path), as the direction reading that
//! cluster's log sees them go by. The opposite direction, writing into that
//! cluster, weighs an event for a path it finds empty against the version
//! removed there, as it would have had the event come first: the other
//! cluster weighed the same two versions the same way, so both end alike (a
//! file written on B that lost to A's newer version, which A then moved
//! away, is not made on A afterwards; a replayed event does not bring back
//! a version the cluster had and removed since). In memory, bounded in count
//! and age: a hint that narrows a race, not a ledger.

use crate::filer::Event;
use crate::paths::join_path;
use crate::pb::filer::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Removed {
    inner: Mutex<Inner>,
    /// The cluster's log has been read up to here (its clock, ns).
    read_ns: AtomicI64,
}

#[derive(Default)]
struct Inner {
    by_path: HashMap<String, (Entry, Instant)>,
    /// Paths in the order they were noted, for the bounds.
    order: VecDeque<(String, Instant)>,
}

impl Removed {
    const MOST: usize = 50_000;
    const AGE: Duration = Duration::from_secs(600);

    /// Notes what a source event removes: the old entry of a delete, or of
    /// a move to another path.
    pub fn note(&self, directory: &str, old: Option<&Entry>, new_path: Option<String>) {
        let Some(old) = old else {
            return;
        };
        let path = join_path(directory, &old.name);
        if new_path.as_deref() == Some(path.as_str()) {
            return;
        }
        let now = Instant::now();
        let mut i = self.inner.lock().unwrap();
        i.by_path.insert(path.clone(), (old.clone(), now));
        i.order.push_back((path, now));
        while i.order.len() > Self::MOST
            || i.order
                .front()
                .is_some_and(|(_, at)| at.elapsed() > Self::AGE)
        {
            let (p, at) = i.order.pop_front().unwrap();
            if i.by_path.get(&p).is_some_and(|(_, a)| *a == at) {
                i.by_path.remove(&p);
            }
        }
    }

    /// Notes what an event of the cluster's log removes (see `note`).
    pub fn note_event(&self, ev: &Event) {
        let n = &ev.notification;
        let new_dir = match n.new_parent_path.as_str() {
            "" => ev.directory.as_str(),
            p => p,
        };
        let new = n.new_entry.as_ref().map(|e| join_path(new_dir, &e.name));
        self.note(&ev.directory, n.old_entry.as_ref(), new);
        self.read_up_to(ev.ts_ns);
    }

    /// The cluster's log has been read up to `ts_ns` (an event's time, or
    /// an idle heartbeat's).
    pub fn read_up_to(&self, ts_ns: i64) {
        self.read_ns.fetch_max(ts_ns, Ordering::SeqCst);
    }

    /// Waits (at most `most`) until the cluster's log has been read up to
    /// `now_ns`, its clock now: what its users removed until now is noted.
    /// A resumed run replays its first window at once; the opposite
    /// direction, which notes the removals, starts reading at the same
    /// moment, and an event replayed before it had read them would bring
    /// back what the cluster removed since. True when caught up.
    pub fn wait_read(&self, now_ns: i64, most: Duration, cancel: &crate::retry::Cancel) -> bool {
        let until = Instant::now() + most;
        while self.read_ns.load(Ordering::SeqCst) < now_ns {
            if Instant::now() >= until || cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The version last removed at `path`, if it was noted lately.
    pub fn get(&self, path: &str) -> Option<Entry> {
        let i = self.inner.lock().unwrap();
        i.by_path
            .get(path)
            .filter(|(_, at)| at.elapsed() <= Self::AGE)
            .map(|(e, _)| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mtime: i64) -> Entry {
        let mut e = Entry::new();
        e.name = name.into();
        e.attributes.mut_or_insert_default().mtime = mtime;
        e
    }

    #[test]
    fn deletes_and_moves_away_are_noted() {
        let r = Removed::default();
        r.note("/d", Some(&file("gone", 1)), None);
        r.note("/d", Some(&file("moved", 2)), Some("/e/moved".into()));
        r.note("/d", Some(&file("changed", 3)), Some("/d/changed".into()));
        let mut dir = file("sub", 4);
        dir.is_directory = true;
        r.note("/d", Some(&dir), None);
        r.note("/d", None, Some("/d/new".into()));
        assert_eq!(r.get("/d/gone").map(|e| e.name), Some("gone".into()));
        assert_eq!(r.get("/d/moved").map(|e| e.name), Some("moved".into()));
        assert!(
            r.get("/d/changed").is_none(),
            "an update in place removes nothing"
        );
        assert!(r.get("/d/sub").is_some_and(|e| e.is_directory));
        r.note("/d", Some(&file("gone", 9)), None);
        let mtime = r.get("/d/gone").unwrap().attributes.unwrap().mtime;
        assert_eq!(mtime, 9, "the latest removal counts");
    }

    #[test]
    fn it_is_bounded_in_count() {
        let r = Removed::default();
        for i in 0..Removed::MOST + 10 {
            r.note("/d", Some(&file(&format!("f{i}"), 1)), None);
        }
        assert!(r.get("/d/f0").is_none());
        assert!(r.get(&format!("/d/f{}", Removed::MOST + 9)).is_some());
        assert!(r.inner.lock().unwrap().by_path.len() <= Removed::MOST);
    }
}
