//! The metadata subscription as a blocking iterator. It unpacks batched
//! responses (first event in the top-level fields, the rest in `events`),
//! turns idle heartbeats and "filtered" markers into cursor moves, and drops
//! flush reports, so the consumer sees one item per event in log order. A
//! filer that stops sending anything (not even its idle heartbeat, every
//! 5 s) for the silence limit ends the stream with a passing error, so
//! that the follower re-subscribes: a hung subscription whose connection
//! still answers keepalives is otherwise never noticed.
//! `Event::admit` is where the names and folders of an event from a peer
//! are checked, before anything plans from them.

use crate::error::{Error, Result};
use crate::pb::filer::{EventNotification, SubscribeMetadataResponse};
use futures::Stream;
use grpcio::{Client, ClientSStreamReceiver};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One change from the source filer's metadata log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts_ns: i64,
    /// Parent directory of the old entry (and of the new one unless `new_parent_path` is set).
    pub directory: String,
    pub notification: EventNotification,
}

impl Event {
    /// Admits the event's names and folders (`paths::admit_name`,
    /// `paths::admit_dir`): its directory, its new parent, and the names of
    /// its old and new entries. An event that fails is refused whole (a
    /// move's sound side alone would misstate what happened). The root's
    /// own entry ("" in "/"), which a filer logs when the root's attributes
    /// change, is no name but is admitted: no scope holds it.
    pub fn admit(&self) -> Result<()> {
        let n = &self.notification;
        let refuse = |what: &str, value: &str, why: &str| {
            Err(Error::refused(format!(
                "refused from the source: the event's {what} {value:?}: {why}; not applied"
            )))
        };
        let new_dir = match n.new_parent_path.as_str() {
            "" => self.directory.as_str(),
            p => p,
        };
        let named = [
            ("old", &n.old_entry, "directory", self.directory.as_str()),
            ("new", &n.new_entry, "new parent", new_dir),
        ];
        for (which, entry, dir_is, dir) in named {
            let Some(e) = entry.as_ref() else { continue };
            if let Err(why) = crate::paths::admit_dir(dir) {
                return refuse(dir_is, dir, why);
            }
            if dir == "/" && e.name.is_empty() {
                continue;
            }
            if let Err(why) = crate::paths::admit_name(&e.name) {
                return refuse(
                    &format!("{which} entry name in {dir:?}"),
                    &e.name,
                    &format!("not one path component, {why}"),
                );
            }
        }
        Ok(())
    }

    /// Tells this event from another with the same time: FNV-1a over its
    /// time, directory, names and the new entry's mtime and size. Never 0.
    pub fn fingerprint(&self) -> i64 {
        let n = &self.notification;
        let (old, new) = (n.old_entry.as_ref(), n.new_entry.as_ref());
        let attr = new.and_then(|e| e.attributes.as_ref());
        let mut h = crate::util::Fnv::default();
        let mut eat = |bytes: &[u8]| {
            h.write(bytes);
            h.write(&[0xff]);
        };
        eat(&self.ts_ns.to_le_bytes());
        eat(self.directory.as_bytes());
        eat(old.map_or(&b""[..], |e| e.name.as_bytes()));
        eat(new.map_or(&b""[..], |e| e.name.as_bytes()));
        eat(n.new_parent_path.as_bytes());
        eat(&attr.map_or(0, |a| a.mtime).to_le_bytes());
        eat(&attr.map_or(0, |a| a.mtime_ns).to_le_bytes());
        eat(&attr.map_or(0, |a| a.file_size).to_le_bytes());
        match h.finish() {
            0 => 1,
            h => h as i64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Event(Event),
    /// The source has nothing newer than this time (idle heartbeat).
    Idle(i64),
    /// The server skipped events up to this time (filtered marker).
    Skipped(i64),
}

pub struct Subscription {
    // Keeps the channel alive as long as the stream.
    _client: Client,
    /// `None` once ended (dropping the receiver cancels the call).
    stream: Option<ClientSStreamReceiver<SubscribeMetadataResponse>>,
    pending: VecDeque<StreamItem>,
    ctx: String,
    /// The cluster's filers and which one serves the stream: told how the
    /// stream goes (see `FilerClient::subscribe`).
    ends: (Arc<[super::Endpoint]>, usize),
    /// How long the filer may send nothing at all.
    silence: Duration,
    /// When the filer last sent anything (this host's clock, ns), for
    /// whoever watches the stream.
    heard: Arc<AtomicI64>,
}

/// Wakes the thread that waits on the stream.
struct Unpark(std::thread::Thread);

impl futures::task::ArcWake for Unpark {
    fn wake_by_ref(me: &Arc<Self>) {
        me.0.unpark();
    }
}

/// The next message of `stream`, waiting at most `limit` (`None`: nothing
/// came). Polls on this thread: no runtime.
fn next_within<S: Stream + Unpin>(stream: &mut S, limit: Duration) -> Option<Option<S::Item>> {
    let waker = futures::task::waker(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // No deadline past what an Instant can hold (`Duration::MAX`: unwatched).
    let deadline = Instant::now().checked_add(limit);
    loop {
        if let Poll::Ready(item) = std::pin::Pin::new(&mut *stream).poll_next(&mut cx) {
            return Some(item);
        }
        match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
            Some(left) if left.is_zero() => return None,
            Some(left) => std::thread::park_timeout(left),
            None => std::thread::park(),
        }
    }
}

impl Subscription {
    pub(super) fn new(
        client: Client,
        stream: ClientSStreamReceiver<SubscribeMetadataResponse>,
        ctx: String,
        ends: (Arc<[super::Endpoint]>, usize),
    ) -> Subscription {
        Subscription {
            _client: client,
            stream: Some(stream),
            pending: VecDeque::new(),
            ctx,
            ends,
            silence: Duration::MAX,
            heard: Arc::default(),
        }
    }

    /// Ends the stream when the filer sends nothing for `silence`, and
    /// notes in `heard` when it last sent anything.
    pub fn watched(mut self, silence: Duration, heard: Arc<AtomicI64>) -> Subscription {
        self.silence = silence;
        self.heard = heard;
        self
    }
}

/// Turns one response into the items it carries, in order.
pub fn unpack(mut resp: SubscribeMetadataResponse, out: &mut VecDeque<StreamItem>) {
    let batch = std::mem::take(&mut resp.events);
    unpack_one(resp, out);
    for r in batch {
        unpack_one(r, out);
    }
}

fn unpack_one(mut r: SubscribeMetadataResponse, out: &mut VecDeque<StreamItem>) {
    if r.ts_ns == 0 {
        // Flush report (flushed_ts_ns) or an empty frame: no position to move to.
        return;
    }
    match r.event_notification.take() {
        None => out.push_back(StreamItem::Idle(r.ts_ns)),
        Some(n) if n.old_entry.is_none() && n.new_entry.is_none() => {
            out.push_back(StreamItem::Skipped(r.ts_ns))
        }
        Some(n) => out.push_back(StreamItem::Event(Event {
            ts_ns: r.ts_ns,
            directory: r.directory,
            notification: n,
        })),
    }
}

impl Subscription {
    /// The filer that serves the stream.
    pub fn filer(&self) -> &super::FilerAddr {
        &self.serving().addr
    }

    fn serving(&self) -> &super::Endpoint {
        &self.ends.0[self.ends.1]
    }

    /// The stream is lost: with other filers to go to, this one is passed
    /// over for a while.
    fn lost(&self) {
        if self.ends.0.len() > 1 {
            let d = self.serving().failed();
            log::debug!("filer {} is passed over for {d:?}", self.serving().addr);
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<StreamItem>;

    fn next(&mut self) -> Option<Result<StreamItem>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let stream = self.stream.as_mut()?;
            let Some(next) = next_within(stream, self.silence) else {
                self.stream = None;
                self.lost();
                return Some(Err(Error::transient(format!(
                    "{}: nothing from the filer for {} s, not even its idle heartbeat (every \
                     5 s): a stalled subscription",
                    self.ctx,
                    self.silence.as_secs()
                ))));
            };
            self.heard.store(crate::util::now_ns(), Ordering::Relaxed);
            match next? {
                Ok(resp) => {
                    self.serving().answered();
                    unpack(resp, &mut self.pending)
                }
                Err(e) => {
                    let e = Error::from(e);
                    if e.is_retryable() {
                        self.lost();
                    }
                    return Some(Err(Error::new(e.kind(), format!("{}: {e}", self.ctx))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::filer::Entry;

    fn resp(ts: i64, name: Option<&str>) -> SubscribeMetadataResponse {
        let mut r = SubscribeMetadataResponse::new();
        r.ts_ns = ts;
        r.directory = "/d".into();
        if let Some(name) = name {
            let mut n = EventNotification::new();
            let mut e = Entry::new();
            e.name = name.into();
            n.new_entry = Some(e).into();
            r.event_notification = Some(n).into();
        }
        r
    }

    fn event(dir: &str, old: Option<&str>, new: Option<&str>, new_parent: &str) -> Event {
        let named = |n: &str| {
            let mut e = Entry::new();
            e.name = n.into();
            e
        };
        let mut n = EventNotification::new();
        n.old_entry = old.map(named).into();
        n.new_entry = new.map(named).into();
        n.new_parent_path = new_parent.into();
        Event {
            ts_ns: 1,
            directory: dir.into(),
            notification: n,
        }
    }

    #[test]
    fn events_are_admitted_only_with_sound_names_and_folders() {
        // (directory, old name, new name, new parent, admitted)
        type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, bool);
        let table: &[Row] = &[
            ("/d", None, Some("a"), "", true),
            ("/d", Some("a"), Some("b"), "/e", true),
            ("/d", Some("a"), None, "", true),
            // The root's own entry.
            ("/", None, Some(""), "", true),
            ("/", Some(""), Some(""), "", true),
            ("/d", None, Some(".."), "", false),
            ("/d", None, Some("."), "", false),
            ("/d", None, Some(""), "", false),
            ("/d", None, Some("a/b"), "", false),
            ("/d", None, Some("x\0y"), "", false),
            ("/d", Some(".."), None, "", false),
            ("/d", Some("a"), Some(".."), "/e", false),
            ("/d", Some("a"), Some("a"), "/d/../private", false),
            ("/d/../private", Some("a"), Some("a"), "", false),
            ("/d/", None, Some("a"), "", false),
            ("d", None, Some("a"), "", false),
            ("", None, Some("a"), "", false),
        ];
        for (dir, old, new, parent, ok) in table {
            let r = event(dir, *old, *new, parent).admit();
            assert_eq!(r.is_ok(), *ok, "{dir:?} {old:?} {new:?} {parent:?}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.kind(), crate::error::ErrorKind::Refused);
            }
        }
    }

    #[test]
    fn a_silent_stream_ends_at_its_limit_and_a_talking_one_goes_on() {
        let (mut tx, mut rx) = futures::channel::mpsc::channel::<u32>(4);
        let t = Instant::now();
        assert_eq!(next_within(&mut rx, Duration::from_millis(200)), None);
        assert!(t.elapsed() >= Duration::from_millis(200));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.try_send(7).unwrap();
        });
        assert_eq!(next_within(&mut rx, Duration::from_secs(10)), Some(Some(7)));
        sender.join().unwrap();
        // Unwatched: no deadline at all (an Instant cannot hold one).
        let (mut tx2, mut rx2) = futures::channel::mpsc::channel::<u32>(1);
        tx2.try_send(1).unwrap();
        assert_eq!(next_within(&mut rx2, Duration::MAX), Some(Some(1)));
        assert_eq!(
            next_within(&mut rx, Duration::from_secs(10)),
            Some(None),
            "ended"
        );
    }

    #[test]
    fn batches_heartbeats_and_flush_reports() {
        let mut out = VecDeque::new();
        let mut batch = resp(10, Some("a"));
        batch.events = vec![resp(11, Some("b")), resp(12, Some("c"))];
        unpack(batch, &mut out);
        unpack(resp(20, None), &mut out);
        let mut flush = resp(0, None);
        flush.flushed_ts_ns = 99;
        unpack(flush, &mut out);
        let mut filtered = resp(30, None);
        filtered.event_notification = Some(EventNotification::new()).into();
        unpack(filtered, &mut out);
        let got: Vec<String> = out
            .iter()
            .map(|i| match i {
                StreamItem::Event(e) => format!(
                    "E{}:{}",
                    e.ts_ns,
                    e.notification.new_entry.as_ref().unwrap().name
                ),
                StreamItem::Idle(t) => format!("I{t}"),
                StreamItem::Skipped(t) => format!("S{t}"),
            })
            .collect();
        assert_eq!(got, ["E10:a", "E11:b", "E12:c", "I20", "S30"]);
    }
}
