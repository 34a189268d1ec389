//! One retry helper for every remote call: retries only what
//! `Error::is_retryable` says is passing, with capped exponential backoff,
//! and gives up early when its `Cancel` token is cancelled. Each remote call
//! is retried here, at the call, and nowhere above it.

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request to wind down, passed down one run: `main` cancels the root
/// on SIGINT/SIGTERM; a direction that fails for good cancels its run's
/// token (a child of the root), so that the run's other direction stops
/// too, and nothing else. A cancelled token stays cancelled.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    /// This token's flag and its ancestors'.
    flags: Vec<Arc<AtomicBool>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel {
            flags: vec![Arc::default()],
        }
    }

    /// A token cancelled with this one, that can also be cancelled alone.
    pub fn child(&self) -> Cancel {
        let mut flags = self.flags.clone();
        flags.push(Arc::default());
        Cancel { flags }
    }

    pub fn cancel(&self) {
        if let Some(own) = self.flags.last() {
            own.store(true, Ordering::SeqCst);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flags.iter().any(|f| f.load(Ordering::SeqCst))
    }

    /// Sleeps in small steps so that a cancel is noticed within ~100 ms.
    pub fn sleep(&self, d: Duration) {
        let step = Duration::from_millis(100);
        let mut left = d;
        while !left.is_zero() && !self.is_cancelled() {
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tries in all; `None` retries until it succeeds, fails for good, or stop is requested.
    pub tries: Option<u32>,
    pub first: Duration,
    pub max: Duration,
}

impl Policy {
    /// For calls whose failure the caller can survive (lookups, single RPCs).
    pub const SHORT: Policy = Policy {
        tries: Some(5),
        first: Duration::from_millis(200),
        max: Duration::from_secs(3),
    };
    /// For work that must not be skipped: keep going until the remote is back.
    pub const FOREVER: Policy = Policy {
        tries: None,
        first: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };
}

/// Runs `f` until it succeeds, fails with a non-retryable error, runs out of
/// tries, or `cancel` is cancelled (then the last error comes back as
/// `Interrupted`).
pub fn retry<T>(
    what: &str,
    policy: Policy,
    cancel: &Cancel,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut delay = policy.first;
    let mut tried = 0u32;
    loop {
        tried += 1;
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => {
                if policy.tries.is_some_and(|n| tried >= n) {
                    return Err(e);
                }
                if cancel.is_cancelled() {
                    return Err(Error::new(ErrorKind::Interrupted, e.to_string()));
                }
                log::warn!("{what}: {e}; retry {tried} in {delay:?}");
                cancel.sleep(delay);
                delay = (delay * 2).min(policy.max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Policy = Policy {
        tries: Some(3),
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[test]
    fn retries_transient_then_succeeds() {
        let mut n = 0;
        let v = retry("t", FAST, &Cancel::new(), || {
            n += 1;
            if n < 3 {
                Err(Error::transient("reset"))
            } else {
                Ok(n)
            }
        });
        assert_eq!(v.unwrap(), 3);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let mut n = 0;
        let e = retry("t", FAST, &Cancel::new(), || -> Result<()> {
            n += 1;
            Err(Error::remote("400"))
        })
        .unwrap_err();
        assert_eq!((n, e.kind()), (1, ErrorKind::Remote));
    }

    #[test]
    fn a_cancel_reaches_children_not_parents() {
        let root = Cancel::new();
        let (run, other) = (root.child(), root.child());
        run.cancel();
        assert!(run.is_cancelled() && !root.is_cancelled() && !other.is_cancelled());
        root.cancel();
        assert!(other.is_cancelled());
        let mut n = 0;
        let e = retry("t", FAST, &run, || -> Result<()> {
            n += 1;
            Err(Error::transient("reset"))
        })
        .unwrap_err();
        assert_eq!((n, e.kind()), (1, ErrorKind::Interrupted));
    }

    #[test]
    fn gives_up_after_tries() {
        let mut n = 0;
        let e = retry("t", FAST, &Cancel::new(), || -> Result<()> {
            n += 1;
            Err(Error::transient("reset"))
        })
        .unwrap_err();
        assert_eq!((n, e.is_retryable()), (3, true));
    }
}
