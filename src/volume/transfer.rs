//! How chunk bytes cross the wire: the keep-alive HTTP agents (`Http`),
//! whose transfers time out when they stop moving bytes rather than after
//! a fixed duration, and bodies read against the size their entry declares
//! (`Size`), never further and never into a buffer sized by the peer
//! before its bytes arrive. Holds the agents and nothing else; knows
//! nothing of file ids, locations or entries.

use crate::error::{Error, ErrorKind, Result};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keep-alive HTTP agents shared by all threads, each thread always taking
/// the same one. ureq rescans its whole idle pool on every request (per-host
/// counts, O(idle²)); one agent holding every connection of 40 threads spent
/// ~5 % of the sync's CPU there. A few small pools keep that scan short
/// while a thread still finds its own connections warm.
#[derive(Clone)]
pub struct Http {
    agents: Arc<Vec<ureq::Agent>>,
}

impl Http {
    const AGENTS: usize = 8;

    /// Agents for `--timeout-secs`: chunk transfers get at least 30 s of
    /// silence, since a volume server answers an upload only once the
    /// needle is stored and sent to its replicas, moving no byte on our
    /// connection meanwhile.
    pub fn for_timeout_secs(secs: u64) -> Http {
        Http::new(Duration::from_secs(secs.max(30)))
    }

    /// Agents on which a request fails once it moves no byte for `idle`:
    /// each socket read and write must make progress within it (ureq's
    /// per-read and per-write limits restart with every operation), and
    /// the head of an answer must arrive within it. A body has no total
    /// deadline: a 64 MiB chunk under `--bwlimit` or on a slow link takes
    /// as long as it takes while bytes flow, where a deadline on the whole
    /// body failed it at the same point on every retry. The throttle's
    /// sleeps between reads are not socket waits and do not count.
    pub fn new(idle: Duration) -> Http {
        let agent = || -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_recv_response(Some(idle))
                .timeout_per_read(Some(idle))
                .timeout_per_write(Some(idle))
                .max_idle_connections(64)
                .max_idle_connections_per_host(16)
                .build()
                .into()
        };
        Http {
            agents: Arc::new((0..Self::AGENTS).map(|_| agent()).collect()),
        }
    }

    /// The calling thread's agent.
    pub fn agent(&self) -> &ureq::Agent {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        &self.agents[SLOT.with(|s| *s) % self.agents.len()]
    }
}

/// The length a chunk body must have, from its entry (never from the peer
/// that sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Exactly this many bytes: a plain chunk, whose entry says so.
    Exact(u64),
    /// At most this many: an encrypted chunk or a manifest, whose stored
    /// length the entry does not give.
    AtMost(u64),
}

/// Bytes reserved ahead of a body: its declared size up to this, the rest
/// grown as bytes arrive (a size from the wire may be anything).
const PREALLOC_MAX: u64 = 4 << 20;

impl Size {
    fn limit(self) -> u64 {
        match self {
            Size::Exact(n) | Size::AtMost(n) => n,
        }
    }

    /// An empty buffer for the body.
    pub fn buffer(self) -> Vec<u8> {
        Vec::with_capacity(self.limit().min(PREALLOC_MAX) as usize)
    }

    /// Refuses a body the peer announces (`Content-Length`, from byte
    /// `from` on) to be longer than allowed, before any of it is read.
    pub fn admit(self, announced: Option<u64>, from: u64) -> Result<()> {
        match announced {
            Some(n) if from.saturating_add(n) > self.limit() => {
                Err(self.mismatch(from.saturating_add(n)))
            }
            _ => Ok(()),
        }
    }

    /// Reads the rest of `r` into `body`, stopping one byte past the
    /// limit: a longer body is found out (`check`) without being held.
    pub fn read_into(self, r: impl Read, body: &mut Vec<u8>) -> std::io::Result<()> {
        let room = (self.limit().saturating_add(1)).saturating_sub(body.len() as u64);
        r.take(room).read_to_end(body).map(|_| ())
    }

    /// Whether a whole body of `n` bytes is what was declared; a body of
    /// another length is corrupt, not a passing fault: reading it again
    /// gives the same bytes.
    pub fn check(self, n: u64) -> Result<()> {
        match self {
            Size::Exact(want) if n != want => Err(self.mismatch(n)),
            Size::AtMost(max) if n > max => Err(self.mismatch(n)),
            _ => Ok(()),
        }
    }

    fn mismatch(self, n: u64) -> Error {
        let what = match self {
            Size::Exact(want) => format!("the entry says {want}"),
            Size::AtMost(max) => format!("at most {max} allowed"),
        };
        let got = if n > self.limit() {
            format!("more than {} bytes", self.limit())
        } else {
            format!("{n} bytes")
        };
        Error::new(ErrorKind::Corrupt, format!("body of {got}, {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// A peer on 127.0.0.1 that runs `f` on its first connection.
    fn peer(f: impl FnOnce(TcpStream) + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = l.accept() {
                f(conn)
            }
        });
        format!("http://{addr}/3,01637037d6")
    }

    /// Reads the request head, so that the peer's silence is its own.
    fn read_head(c: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut b = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
            seen.push(b[0]);
        }
    }

    /// GETs `url` and reads its body whole: the error, and how long it took.
    fn fetch(http: &Http, url: &str) -> (Result<Vec<u8>>, Duration) {
        let t = Instant::now();
        let r = (|| -> Result<Vec<u8>> {
            let mut resp = http.agent().get(url).call()?;
            let mut body = Vec::new();
            resp.body_mut().as_reader().read_to_end(&mut body)?;
            Ok(body)
        })();
        (r, t.elapsed())
    }

    const IDLE: Duration = Duration::from_millis(600);

    /// A peer that reads the request, sends `first`, then holds the
    /// connection open in silence until the returned sender goes.
    fn stalling(first: &'static [u8]) -> (String, std::sync::mpsc::Sender<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let url = peer(move |mut c| {
            read_head(&mut c);
            let _ = c.write_all(first);
            let _ = rx.recv();
        });
        (url, tx)
    }

    #[test]
    fn a_stalled_peer_fails_after_the_idle_timeout() {
        for first in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc",
        ] {
            let (url, _hold) = stalling(first);
            let (r, took) = fetch(&Http::new(IDLE), &url);
            let e = r.unwrap_err();
            assert!(e.is_retryable(), "{e}");
            assert!(took >= IDLE && took < IDLE * 4, "{took:?}: {e}");
        }
    }

    #[test]
    fn a_slow_body_that_keeps_moving_outlasts_the_idle_timeout() {
        // Twelve bytes, one every IDLE/3: four times the idle timeout in all.
        let url = peer(move |mut c| {
            read_head(&mut c);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
            for b in b"0123456789ab" {
                std::thread::sleep(IDLE / 3);
                let _ = c.write_all(&[*b]);
            }
        });
        let (r, took) = fetch(&Http::new(IDLE), &url);
        assert_eq!(r.unwrap(), b"0123456789ab");
        assert!(took > IDLE * 3, "{took:?}");
    }

    #[test]
    fn an_upload_the_peer_stops_reading_fails_after_the_idle_timeout() {
        let (url, _hold) = stalling(b"");
        // Far more than the socket buffers hold, so that a write blocks.
        let body = std::io::repeat(7).take(256 << 20);
        let t = Instant::now();
        let e = Http::new(IDLE)
            .agent()
            .post(&url)
            .header("Content-Length", (256u64 << 20).to_string())
            .send(ureq::SendBody::from_owned_reader(body))
            .map(|_| ())
            .map_err(Error::from)
            .unwrap_err();
        let took = t.elapsed();
        assert!(e.is_retryable(), "{e}");
        assert!(took >= IDLE && took < IDLE * 8, "{took:?}: {e}");
    }

    #[test]
    fn timeout_secs_sets_the_idle_time_with_a_floor_and_no_body_deadline() {
        for (secs, idle) in [(10, 30), (30, 30), (120, 120)] {
            let http = Http::for_timeout_secs(secs);
            let c = http.agent().config();
            let idle = Some(Duration::from_secs(idle));
            assert_eq!((c.timeout_per_read(), c.timeout_per_write()), (idle, idle));
            let t = c.timeouts();
            assert_eq!((t.recv_body, t.send_body, t.global), (None, None, None));
        }
    }

    #[test]
    fn a_body_longer_than_declared_is_corrupt_and_not_held() {
        let body = std::io::repeat(1).take(10 << 20);
        let mut got = Size::Exact(100).buffer();
        Size::Exact(100).read_into(body, &mut got).unwrap();
        assert_eq!(got.len(), 101, "one byte past the limit, no more");
        let e = Size::Exact(100).check(got.len() as u64).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(!e.is_retryable());
        assert!(Size::Exact(100).check(100).is_ok());
        assert!(Size::Exact(100).check(99).is_err());
        assert!(Size::AtMost(100).check(99).is_ok());
        assert!(Size::AtMost(100).check(101).is_err());
        // An announced length beyond the limit is refused unread; a
        // resumed body counts the bytes it already has.
        assert!(Size::Exact(100).admit(Some(101), 0).is_err());
        assert!(Size::Exact(100).admit(Some(60), 40).is_ok());
        assert!(Size::Exact(100).admit(Some(61), 40).is_err());
        assert!(Size::AtMost(100).admit(None, 0).is_ok());
        assert!(Size::Exact(u64::MAX).admit(Some(u64::MAX), 5).is_ok());
    }

    #[test]
    fn a_huge_declared_size_reserves_little() {
        assert!(Size::Exact(u64::MAX).buffer().capacity() <= PREALLOC_MAX as usize);
        assert_eq!(Size::Exact(1000).buffer().capacity(), 1000);
    }
}
