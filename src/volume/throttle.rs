//! `--bwlimit`: a token bucket on chunk bytes, shared by every transfer of
//! the process. Callers take tokens for the bytes they moved and sleep as
//! long as the bucket is in debt. One second of burst. A throttled stream
//! reads in slices of a quarter second's worth, so that its bytes flow
//! steadily instead of in bursts far apart.

use crate::error::{Error, Result};
use crate::retry::Cancel;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    rate: f64,
    bucket: Mutex<(Instant, f64)>,
    /// Cuts a wait short when the run winds down.
    cancel: Cancel,
}

impl Throttle {
    pub fn new(bytes_per_sec: u64, cancel: Cancel) -> Throttle {
        Throttle {
            rate: bytes_per_sec as f64,
            bucket: Mutex::new((Instant::now(), bytes_per_sec as f64)),
            cancel,
        }
    }

    /// Accounts for `n` bytes, sleeping until they fit the rate.
    pub fn take(&self, n: u64) {
        let wait = {
            let mut b = self.bucket.lock().unwrap();
            let now = Instant::now();
            let refill = now.duration_since(b.0).as_secs_f64() * self.rate;
            b.0 = now;
            b.1 = (b.1 + refill).min(self.rate) - n as f64;
            if b.1 < 0.0 {
                Duration::from_secs_f64(-b.1 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            self.cancel.sleep(wait);
        }
    }
}

/// A stream read within a throttle (none: read as it comes).
pub struct Throttled<'a, R> {
    inner: R,
    throttle: Option<&'a Throttle>,
}

impl<'a, R: Read> Throttled<'a, R> {
    pub fn new(inner: R, throttle: Option<&'a Throttle>) -> Throttled<'a, R> {
        Throttled { inner, throttle }
    }
}

impl<R: Read> Read for Throttled<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(t) = self.throttle else {
            return self.inner.read(buf);
        };
        // A quarter second's worth at most (1 KiB at least): a whole
        // buffer at a low rate would be one burst, then seconds of
        // silence on both connections, which a volume server's idle
        // timeout (30 s by default) takes for a dead peer.
        let most = ((t.rate / 4.0) as usize).max(1024).min(buf.len());
        let n = self.inner.read(&mut buf[..most])?;
        t.take(n as u64);
        Ok(n)
    }
}

/// Parses a rate like `512K`, `10M`, `1.5G` or `2000000` (bytes per second;
/// K/M/G are powers of 1024, an optional trailing `B` or `/s` is allowed).
pub fn parse_rate(s: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "--bwlimit {s:?}: give bytes per second like 500K, 10M or 1G"
        ))
    };
    let t = s.trim().trim_end_matches("/s").trim_end_matches(['B', 'b']);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1024.0),
        Some('M') => (&t[..t.len() - 1], 1024.0 * 1024.0),
        Some('G') => (&t[..t.len() - 1], 1024.0 * 1024.0 * 1024.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let r = (v * mult) as u64;
    if !v.is_finite() || r < 1024 {
        return Err(bad());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("10M").unwrap(), 10 << 20);
        assert_eq!(parse_rate("512k").unwrap(), 512 << 10);
        assert_eq!(parse_rate("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_rate("2000000").unwrap(), 2_000_000);
        assert_eq!(parse_rate("10MB/s").unwrap(), 10 << 20);
        for bad in ["", "fast", "-1M", "10", "M"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_throttled_stream_reads_in_slices() {
        let t = Throttle::new(64 << 10, Cancel::new());
        let mut r = Throttled::new(std::io::repeat(1), Some(&t));
        let mut buf = vec![0u8; 1 << 20];
        assert_eq!(r.read(&mut buf).unwrap(), 16 << 10);
        let slow = Throttle::new(1024, Cancel::new());
        let mut r = Throttled::new(std::io::repeat(1), Some(&slow));
        assert_eq!(r.read(&mut buf).unwrap(), 1024);
        assert_eq!(r.read(&mut buf[..10]).unwrap(), 10);
        let mut free = Throttled::new(std::io::repeat(1), None);
        assert_eq!(free.read(&mut buf).unwrap(), 1 << 20);
    }

    #[test]
    fn throttle_holds_the_rate() {
        let t = Throttle::new(1 << 20, Cancel::new());
        let start = Instant::now();
        // The first second is burst; the next 512 KiB must wait ~0.5 s.
        t.take(1 << 20);
        t.take(512 << 10);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }
}
