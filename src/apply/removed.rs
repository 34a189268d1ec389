//! Active-active: the file versions a cluster's own users removed lately
//! (deleted, or moved away from their path), as the direction reading that
//! cluster's log sees them go by. The opposite direction, writing into that
//! cluster, weighs an event for a path it finds empty against the version
//! removed there, as it would have had the event come first: the other
//! cluster weighed the same two versions the same way, so both end alike (a
//! file written on B that lost to A's newer version, which A then moved
//! away, is not made on A afterwards; a replayed event does not bring back
//! a version the cluster had and removed since).
//!
//! Unless the other cluster never weighed them: a version its users made
//! at a path after the sync had carried the removal there is newer than the
//! removal whatever the clocks say, and is made. The order is the
//! cluster's log's: the sync's removal at the path (carrying the other
//! cluster's event of a known time), then the user's new version. In
//! memory, bounded in count and age: a hint that narrows a race, not a
//! ledger.

use crate::filer::Event;
use crate::paths::join_path;
use crate::pb::filer::Entry;
use crate::replicate::conflict::same_version;
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
    /// What the cluster's users removed, by path, and when (the log's
    /// time).
    by_users: Recent<(Entry, i64)>,
    /// The other cluster's log time of the removal the sync is carrying to
    /// a path here (noted before the call).
    carrying: Recent<i64>,
    /// The same once the cluster's log shows the removal, until a user's
    /// version is made at the path.
    by_sync: Recent<i64>,
    /// Versions users made at a path after the sync removed one there:
    /// (the carried removal's time, the version made).
    made_after: Recent<(i64, Entry)>,
}

/// A map bounded in count and age.
struct Recent<V> {
    by_path: HashMap<String, (V, Instant)>,
    /// Paths in the order they were noted, for the bounds.
    order: VecDeque<(String, Instant)>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            by_path: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V: Clone> Recent<V> {
    const MOST: usize = 50_000;
    const AGE: Duration = Duration::from_secs(600);

    fn insert(&mut self, path: String, v: V) {
        let now = Instant::now();
        self.by_path.insert(path.clone(), (v, now));
        self.order.push_back((path, now));
        while self.order.len() > Self::MOST
            || self
                .order
                .front()
                .is_some_and(|(_, at)| at.elapsed() > Self::AGE)
        {
            let (p, at) = self.order.pop_front().unwrap();
            if self.by_path.get(&p).is_some_and(|(_, a)| *a == at) {
                self.by_path.remove(&p);
            }
        }
    }

    fn get(&self, path: &str) -> Option<V> {
        self.by_path
            .get(path)
            .filter(|(_, at)| at.elapsed() <= Self::AGE)
            .map(|(v, _)| v.clone())
    }

    fn take(&mut self, path: &str) -> Option<V> {
        let (v, at) = self.by_path.remove(path)?;
        (at.elapsed() <= Self::AGE).then_some(v)
    }
}

impl Removed {
    /// Notes what an event of the cluster's log at `ts_ns` does: the old
    /// entry of a delete, or of a move to another path, is removed (by the
    /// sync when `by_sync`); a user's new entry at a path the sync removed
    /// a version from is made after that removal.
    pub fn note(
        &self,
        directory: &str,
        old: Option<&Entry>,
        new: Option<(String, &Entry)>,
        by_sync: bool,
        ts_ns: i64,
    ) {
        let mut i = self.inner.lock().unwrap();
        let new_path = new.as_ref().map(|(p, _)| p.as_str());
        let old_path = old.map(|o| join_path(directory, &o.name));
        if let (Some(old), Some(path)) = (old, &old_path) {
            if new_path != Some(path.as_str()) {
                if by_sync {
                    let carried = i.carrying.get(path).unwrap_or(0);
                    i.by_sync.insert(path.clone(), carried);
                } else {
                    i.by_users.insert(path.clone(), (old.clone(), ts_ns));
                }
            }
        }
        if let Some((path, entry)) = new {
            if by_sync || old_path.as_deref() == Some(path.as_str()) {
                return;
            }
            if let Some(carried) = i.by_sync.take(&path) {
                i.made_after.insert(path, (carried, entry.clone()));
            }
        }
    }

    /// The sync is about to remove the entry at `path`, carrying the other
    /// cluster's event logged there at `ts_ns`.
    pub fn carrying(&self, path: &str, ts_ns: i64) {
        let mut i = self.inner.lock().unwrap();
        i.carrying.insert(path.to_string(), ts_ns);
    }

    /// Notes what an event of the cluster's log does (see `note`); an event
    /// carrying `sync_sig` was written there by the sync (true then).
    pub fn note_event(&self, ev: &Event, sync_sig: i32) -> bool {
        let n = &ev.notification;
        if ev.admit().is_err() {
            // Its paths name nothing sound; the window refuses it.
            self.read_up_to(ev.ts_ns);
            return false;
        }
        let new_dir = match n.new_parent_path.as_str() {
            "" => ev.directory.as_str(),
            p => p,
        };
        let new = n
            .new_entry
            .as_ref()
            .map(|e| (join_path(new_dir, &e.name), e));
        let by_sync = sync_sig != 0 && n.signatures.contains(&sync_sig);
        self.note(&ev.directory, n.old_entry.as_ref(), new, by_sync, ev.ts_ns);
        self.read_up_to(ev.ts_ns);
        by_sync
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

    /// The version the cluster's users last removed at `path`, if it was
    /// noted lately.
    pub fn get(&self, path: &str) -> Option<Entry> {
        self.removed_at(path).map(|(e, _)| e)
    }

    /// `get`, with the time (the cluster's log's) of the removal.
    pub fn removed_at(&self, path: &str) -> Option<(Entry, i64)> {
        self.inner.lock().unwrap().by_users.get(path)
    }

    /// Whether the cluster's users made `version` at `path` after the sync
    /// had carried there the other cluster's removals up to `ts_ns` (its
    /// log's time).
    pub fn made_after(&self, path: &str, version: &Entry, ts_ns: i64) -> bool {
        let i = self.inner.lock().unwrap();
        i.made_after
            .get(path)
            .is_some_and(|(carried, made)| carried >= ts_ns && same_version(&made, version))
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

    fn at(path: &str, e: &Entry) -> Option<(String, Entry)> {
        Some((path.to_string(), e.clone()))
    }

    fn note(r: &Removed, old: Option<&Entry>, new: Option<(String, Entry)>, by_sync: bool) {
        let new = new.as_ref().map(|(p, e)| (p.clone(), e));
        r.note("/d", old, new, by_sync, 50);
    }

    #[test]
    fn deletes_and_moves_away_are_noted() {
        let r = Removed::default();
        note(&r, Some(&file("gone", 1)), None, false);
        note(
            &r,
            Some(&file("moved", 2)),
            at("/e/moved", &file("moved", 2)),
            false,
        );
        note(
            &r,
            Some(&file("changed", 3)),
            at("/d/changed", &file("changed", 4)),
            false,
        );
        let mut dir = file("sub", 4);
        dir.is_directory = true;
        note(&r, Some(&dir), None, false);
        note(&r, None, at("/d/new", &file("new", 5)), false);
        assert_eq!(r.get("/d/gone").map(|e| e.name), Some("gone".into()));
        assert_eq!(r.get("/d/moved").map(|e| e.name), Some("moved".into()));
        assert!(
            r.get("/d/changed").is_none(),
            "an update in place removes nothing"
        );
        assert!(r.get("/d/sub").is_some_and(|e| e.is_directory));
        note(&r, Some(&file("gone", 9)), None, false);
        let mtime = r.get("/d/gone").unwrap().attributes.unwrap().mtime;
        assert_eq!(mtime, 9, "the latest removal counts");
        note(&r, Some(&file("synced", 1)), None, true);
        assert!(
            r.get("/d/synced").is_none(),
            "the sync's removals are not the users'"
        );
    }

    #[test]
    fn a_version_made_after_the_syncs_removal_is_known_as_such() {
        let v0 = file("f", 7);
        let v1 = file("f", 7_000_000_001);
        // The log in order: the sync removes v0, carrying the other
        // cluster's removal logged there at 100, then a user creates v1.
        let r = Removed::default();
        r.carrying("/d/f", 100);
        note(&r, Some(&v0), None, true);
        note(&r, None, at("/d/f", &v1), false);
        assert!(r.made_after("/d/f", &v1, 100));
        assert!(r.made_after("/d/f", &v1, 99));
        assert!(!r.made_after("/d/f", &v1, 101), "a removal not carried yet");
        assert!(!r.made_after("/d/f", &v0, 100), "only the version made");
        assert!(!r.made_after("/d/g", &v1, 100));
        // The other order: the user's version came first; the sync then
        // replaced it and removed that.
        let r = Removed::default();
        note(&r, None, at("/d/f", &v1), false);
        r.carrying("/d/f", 100);
        note(&r, Some(&v1), at("/d/f", &v0), true);
        note(&r, Some(&v0), None, true);
        assert!(!r.made_after("/d/f", &v1, 0));
        // A version moved onto the path by a user counts as made there; one
        // the sync wrote there does not.
        let r = Removed::default();
        r.carrying("/d/f", 100);
        note(&r, Some(&v0), None, true);
        note(&r, None, at("/d/f", &v0), true);
        assert!(!r.made_after("/d/f", &v0, 0));
        r.note(
            "/e",
            Some(&file("x", 3)),
            Some(("/d/f".into(), &v1)),
            false,
            60,
        );
        assert!(r.made_after("/d/f", &v1, 100));
        // A removal the sync made without noting what it carried counts as
        // carrying nothing.
        let r = Removed::default();
        note(&r, Some(&v0), None, true);
        note(&r, None, at("/d/f", &v1), false);
        assert!(!r.made_after("/d/f", &v1, 1));
    }

    #[test]
    fn it_is_bounded_in_count() {
        let r = Removed::default();
        let most = Recent::<i64>::MOST;
        for i in 0..most + 10 {
            note(&r, Some(&file(&format!("f{i}"), 1)), None, false);
        }
        assert!(r.get("/d/f0").is_none());
        assert!(r.get(&format!("/d/f{}", most + 9)).is_some());
        assert!(r.inner.lock().unwrap().by_users.by_path.len() <= most);
        assert_eq!(r.removed_at(&format!("/d/f{}", most + 9)).unwrap().1, 50);
    }
}
