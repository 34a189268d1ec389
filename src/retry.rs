//! One retry helper for every remote call: retries only what
//! `Error::is_retryable` says is passing, with capped exponential backoff,
//! and gives up early when the process is asked to stop.

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every retry loop and the pipeline to wind down.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
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
/// tries, or a stop is requested (then the last error comes back as `Interrupted`).
pub fn retry<T>(what: &str, policy: Policy, mut f: impl FnMut() -> Result<T>) -> Result<T> {
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
                if stop_requested() {
                    return Err(Error::new(ErrorKind::Interrupted, e.to_string()));
                }
                log::warn!("{what}: {e}; retry {tried} in {delay:?}");
                sleep_unless_stopped(delay);
                delay = (delay * 2).min(policy.max);
            }
        }
    }
}

/// Sleeps in small steps so that a stop request is noticed within ~100 ms.
pub fn sleep_unless_stopped(d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() && !stop_requested() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
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
        let v = retry("t", FAST, || {
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
        let e = retry("t", FAST, || -> Result<()> {
            n += 1;
            Err(Error::remote("400"))
        })
        .unwrap_err();
        assert_eq!((n, e.kind()), (1, ErrorKind::Remote));
    }

    #[test]
    fn gives_up_after_tries() {
        let mut n = 0;
        let e = retry("t", FAST, || -> Result<()> {
            n += 1;
            Err(Error::transient("reset"))
        })
        .unwrap_err();
        assert_eq!((n, e.is_retryable()), (3, true));
    }
}
