//! `sync --ha`: one active instance among several, elected with the source
//! filer's own `DistributedLock`. A `Lease` takes the lock (standing by and
//! retrying while another instance holds it), renews it every third of its
//! time to live with a deadline on each call, and judges by its own clock
//! whether it still holds it: the lock filer's expiry starts when a request
//! reaches it, after this side sent it, so "sent + TTL" (less a margin) ends
//! before the filer could grant the lock to anyone else. Past that point the
//! holder must apply and commit nothing more: `valid` says so, and `keep`
//! cancels the active term's token so that every retry winds down.
//!
//! How a lock answer reads is a pure function (`read`), table-tested.

use crate::error::{Error, ErrorKind, Result};
use crate::filer::FilerClient;
use crate::pb::filer::{LockRequest, LockResponse, UnlockRequest};
use crate::retry::Cancel;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one answer of the lock filer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Held: keep this token for the next renewal.
    Held { token: String, generation: i64 },
    /// Another instance holds it.
    Taken { owner: String },
    /// The lock this side held is gone (expired, taken over, or lost with a
    /// restarted filer): it is no longer the holder.
    Lost(String),
    /// Anything else (a forwarding failure between filers): try again.
    Failed(String),
}

/// Reads a `LockResponse` (errors come back in `error` with gRPC status OK).
pub fn read(r: &LockResponse) -> Answer {
    if r.error.is_empty() && !r.renew_token.is_empty() {
        return Answer::Held {
            token: r.renew_token.clone(),
            generation: r.generation,
        };
    }
    if !r.lock_owner.is_empty() {
        return Answer::Taken {
            owner: r.lock_owner.clone(),
        };
    }
    let lost = ["token mismatch", "expired lock", "new lock"];
    if lost.iter().any(|l| r.error.contains(l)) {
        return Answer::Lost(r.error.clone());
    }
    Answer::Failed(if r.error.is_empty() {
        "the lock filer answered without a token".into()
    } else {
        r.error.clone()
    })
}

/// The lock name of a pair: instances started with the same pair and mode
/// form one group without naming it.
pub fn name_for(
    two_way: bool,
    (sig_a, a_path): (i32, &str),
    (sig_b, b_path): (i32, &str),
) -> String {
    let mode = if two_way { "both-ways" } else { "one-way" };
    format!("filer-sync {mode} {sig_a}:{a_path} -> {sig_b}:{b_path}")
}

/// This instance, as the lock's `owner` names it.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{host} pid {}", std::process::id())
}

/// How one renewal went.
enum Renewal {
    Renewed,
    /// Not answered (the hold may still last: try again).
    Failed,
    /// The hold is gone for good.
    Gone,
}

/// The current hold, while there is one.
#[derive(Debug, Clone)]
struct Held {
    token: String,
    /// When the request that last renewed it was sent.
    renewed: Instant,
}

pub struct Lease {
    filer: FilerClient,
    name: String,
    owner: String,
    ttl: Duration,
    held: Mutex<Option<Held>>,
    /// The generation of the current hold (0: none yet): the lock filer's,
    /// then the term's fencing number (`fence`), recorded with each
    /// committed window.
    generation: AtomicI64,
    /// When the current hold began (this host's clock, ns).
    since_ns: AtomicI64,
    /// The hold ended without a request to stop (renewals failed, the lock
    /// was lost or taken over).
    lost: AtomicBool,
}

impl Lease {
    pub fn new(filer: FilerClient, name: String, owner: String, ttl: Duration) -> Lease {
        Lease {
            filer,
            name,
            owner,
            ttl,
            held: Mutex::new(None),
            generation: AtomicI64::new(0),
            since_ns: AtomicI64::new(0),
            lost: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Replaces the lock filer's generation with the term's fencing number
    /// (`commands::ha::fence`: a restarted lock filer counts from 1 again).
    pub fn fence(&self, number: i64) {
        self.generation.store(number, Ordering::SeqCst);
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn since_ns(&self) -> i64 {
        self.since_ns.load(Ordering::SeqCst)
    }

    /// The part of the TTL kept back from the local deadline, for a lock
    /// filer whose clock runs a little fast.
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(200))
    }

    /// True while this instance may act: a renewal sent less than TTL (less
    /// the margin) ago succeeded. Judged by this host's monotonic clock.
    pub fn valid(&self) -> bool {
        let held = self.held.lock().unwrap();
        held.as_ref()
            .is_some_and(|h| h.renewed.elapsed() + self.margin() < self.ttl)
    }

    /// True when the last hold ended by itself (not released).
    pub fn was_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// One lock call with `token` ("" to acquire), within `deadline`.
    fn call(&self, token: &str, deadline: Duration) -> Result<(Instant, Answer)> {
        let mut req = LockRequest::new();
        req.name = self.name.clone();
        req.seconds_to_lock = self.ttl.as_secs().max(1) as i64;
        req.renew_token = token.to_string();
        req.owner = self.owner.clone();
        let sent = Instant::now();
        let r = self.filer.lock(&req, deadline)?;
        Ok((sent, read(&r)))
    }

    /// Tries once to take the lock: Ok(None) when taken, Ok(Some(holder))
    /// when another instance holds it.
    pub fn try_acquire(&self) -> Result<Option<String>> {
        match self.call("", self.ttl / 3)? {
            (sent, Answer::Held { token, generation }) => {
                *self.held.lock().unwrap() = Some(Held {
                    token,
                    renewed: sent,
                });
                self.generation.store(generation, Ordering::SeqCst);
                self.since_ns.store(crate::util::now_ns(), Ordering::SeqCst);
                self.lost.store(false, Ordering::SeqCst);
                Ok(None)
            }
            (_, Answer::Taken { owner }) => Ok(Some(owner)),
            (_, Answer::Lost(e) | Answer::Failed(e)) => Err(Error::new(
                ErrorKind::Transient,
                format!("lock {:?}: {e}", self.name),
            )),
        }
    }

    /// Stands by until the lock is taken (Ok) or `cancel` asks to stop
    /// (Interrupted). `waiting` hears who holds it after each try (None:
    /// the lock filer could not be asked).
    pub fn acquire(&self, cancel: &Cancel, waiting: &dyn Fn(Option<&str>)) -> Result<()> {
        let every = self.ttl / 3;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "stopped while standing by",
                ));
            }
            match self.try_acquire() {
                Ok(None) => return Ok(()),
                Ok(Some(holder)) => waiting(Some(&holder)),
                Err(e) => {
                    log::warn!("ha: {e}");
                    waiting(None);
                }
            }
            cancel.sleep(every);
        }
    }

    /// Renews once.
    fn renew(&self) -> Renewal {
        let Some(token) = self.held.lock().unwrap().as_ref().map(|h| h.token.clone()) else {
            return Renewal::Gone;
        };
        let left = self.left();
        if left.is_zero() {
            return Renewal::Gone;
        }
        match self.call(&token, (self.ttl / 3).min(left)) {
            Ok((sent, Answer::Held { token, .. })) => {
                if let Some(h) = self.held.lock().unwrap().as_mut() {
                    h.token = token;
                    h.renewed = sent;
                }
                Renewal::Renewed
            }
            Ok((_, Answer::Taken { owner })) => {
                log::error!("ha: the lock {:?} is held by {owner} now", self.name);
                Renewal::Gone
            }
            Ok((_, Answer::Lost(e))) => {
                log::error!("ha: the lock {:?} is lost ({e})", self.name);
                Renewal::Gone
            }
            Ok((_, Answer::Failed(e))) => {
                log::warn!("ha: renewing {:?}: {e}", self.name);
                Renewal::Failed
            }
            Err(e) => {
                log::warn!("ha: renewing {:?}: {e}", self.name);
                Renewal::Failed
            }
        }
    }

    /// Time left before the local deadline of the current hold.
    fn left(&self) -> Duration {
        let held = self.held.lock().unwrap();
        held.as_ref().map_or(Duration::ZERO, |h| {
            self.ttl
                .saturating_sub(self.margin())
                .saturating_sub(h.renewed.elapsed())
        })
    }

    /// Keeps the lock while the active term runs: renews every third of the
    /// TTL and, once the hold is gone (a renewal refused, or none succeeded
    /// before the local deadline), cancels `term` and returns. Also returns
    /// when `done` is set (the term ended by itself).
    pub fn keep(&self, term: &Cancel, done: &AtomicBool) {
        self.keep_while(term, &|| !done.load(Ordering::SeqCst));
    }

    /// Keeps the lock for `d` (renewing as `keep` does) before the term
    /// applies anything; false when the hold was lost meanwhile.
    pub fn hold_for(&self, d: Duration, cancel: &Cancel) -> bool {
        let until = Instant::now() + d;
        let term = cancel.child();
        self.keep_while(&term, &|| Instant::now() < until);
        !self.was_lost() && !cancel.is_cancelled()
    }

    fn keep_while(&self, term: &Cancel, going: &dyn Fn() -> bool) {
        let step = Duration::from_millis(50);
        let renewed = self.held.lock().unwrap().as_ref().map(|h| h.renewed);
        let mut next = renewed.unwrap_or_else(Instant::now) + self.ttl / 3;
        loop {
            if !going() || term.is_cancelled() {
                return;
            }
            if !self.valid() {
                break;
            }
            if Instant::now() >= next {
                // A failed try is repeated sooner, while the hold lasts.
                next = Instant::now()
                    + match self.renew() {
                        Renewal::Renewed => self.ttl / 3,
                        Renewal::Failed => self.ttl / 6,
                        Renewal::Gone => break,
                    };
                continue;
            }
            std::thread::sleep(step);
        }
        log::error!(
            "ha: no longer the active instance (generation {}): applying stops; standing by",
            self.generation()
        );
        *self.held.lock().unwrap() = None;
        self.lost.store(true, Ordering::SeqCst);
        term.cancel();
    }

    /// Gives the lock up (a stop was asked): a standby takes over at once
    /// instead of waiting for the TTL.
    pub fn release(&self) {
        self.give_back(log::Level::Info);
    }

    /// Gives the lock up, saying so at `level` (a probe's at Debug).
    pub fn give_back(&self, level: log::Level) {
        let Some(h) = self.held.lock().unwrap().take() else {
            return;
        };
        let mut req = UnlockRequest::new();
        req.name = self.name.clone();
        req.renew_token = h.token;
        match self.filer.unlock(&req) {
            Ok(r) if r.error.is_empty() => log::log!(level, "ha: lock {:?} released", self.name),
            Ok(r) => log::warn!("ha: releasing {:?}: {}", self.name, r.error),
            Err(e) => log::warn!("ha: releasing {:?}: {e}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(token: &str, owner: &str, error: &str, generation: i64) -> LockResponse {
        let mut r = LockResponse::new();
        r.renew_token = token.into();
        r.lock_owner = owner.into();
        r.error = error.into();
        r.generation = generation;
        r
    }

    #[test]
    fn lock_answers_read_as_the_filer_means_them() {
        let held = |t: &str, g| Answer::Held {
            token: t.into(),
            generation: g,
        };
        let cases = [
            (resp("t1", "", "", 3), held("t1", 3)),
            // A renewal: a new token, the same generation.
            (resp("t2", "", "", 3), held("t2", 3)),
            (
                resp("", "host-b pid 7", "lock already owned by host-b pid 7", 0),
                Answer::Taken {
                    owner: "host-b pid 7".into(),
                },
            ),
            (
                resp("", "", "lock: token mismatch", 0),
                Answer::Lost("lock: token mismatch".into()),
            ),
            (
                resp("", "", "lock: non-empty token on an expired lock", 0),
                Answer::Lost("lock: non-empty token on an expired lock".into()),
            ),
            // The lock filer restarted: the lock is unknown.
            (
                resp("", "", "lock: non-empty token on a new lock", 0),
                Answer::Lost("lock: non-empty token on a new lock".into()),
            ),
            (
                resp("", "", "rpc error: connection refused", 0),
                Answer::Failed("rpc error: connection refused".into()),
            ),
            (
                resp("", "", "", 0),
                Answer::Failed("the lock filer answered without a token".into()),
            ),
        ];
        for (i, (r, want)) in cases.iter().enumerate() {
            assert_eq!(&read(r), want, "case {i}");
        }
    }

    #[test]
    fn one_pair_and_mode_make_one_lock_name() {
        let n = name_for(false, (1, "/a"), (2, "/b"));
        assert_eq!(n, name_for(false, (1, "/a"), (2, "/b")));
        assert_ne!(n, name_for(true, (1, "/a"), (2, "/b")));
        assert_ne!(n, name_for(false, (1, "/a"), (2, "/c")));
        assert_ne!(n, name_for(false, (3, "/a"), (2, "/b")));
    }
}
