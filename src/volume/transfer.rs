//! How chunk bytes cross the wire: the keep-alive HTTP agents of one
//! cluster (`Http`), plain or HTTPS as that cluster's `[https.client]`
//! says, whose transfers time out when they stop moving bytes rather than
//! after a fixed duration; what a TLS or scheme failure toward that cluster
//! means, in words an operator acts on (`Http::fail`, `Http::refusal`);
//! and bodies read against the size their entry declares (`Size`), never
//! further and never into a buffer sized by the peer before its bytes
//! arrive. Holds the agents and nothing else; knows nothing of file ids,
//! locations or entries.

use super::wire::Wire;
use crate::error::{Error, ErrorKind, Result};
use crate::security::{Https, Security};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Keep-alive HTTP agents toward one cluster, shared by all threads, each
/// thread always taking the same one. ureq rescans its whole idle pool on
/// every request (per-host counts, O(idle²)); one agent holding every
/// connection of 40 threads spent ~5 % of the sync's CPU there. A few small
/// pools keep that scan short while a thread still finds its own
/// connections warm. HTTPS connections stay in the pools as plain ones do.
#[derive(Clone)]
pub struct Http {
    agents: Arc<Vec<ureq::Agent>>,
    /// The cluster's letter, for messages ('A', 'B').
    side: char,
    /// `[https.client]` of the cluster: every URL toward it is https.
    https: Option<Arc<Https>>,
    /// Small plain-HTTP transfers (none toward an HTTPS cluster).
    wire: Option<Wire>,
}

/// What kind of server of a cluster a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Volume,
    Filer,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Volume => "volume server",
            Server::Filer => "filer",
        }
    }

    /// The security.toml section that makes such a server speak HTTPS.
    fn section(self) -> &'static str {
        match self {
            Server::Volume => "[https.volume]",
            Server::Filer => "[https.filer]",
        }
    }
}

/// What a Go HTTPS server answers a plain HTTP request with (status 400).
const PLAIN_TO_HTTPS: &str = "Client sent an HTTP request to an HTTPS server";

impl Http {
    const AGENTS: usize = 8;

    /// Agents toward side `side` for `--timeout-secs`, HTTPS when its
    /// security file says so: chunk transfers get at least 30 s of
    /// silence, since a volume server answers an upload only once the
    /// needle is stored and sent to its replicas, moving no byte on our
    /// connection meanwhile.
    pub fn for_side(side: char, secs: u64, security: &Security) -> Http {
        Http::with(
            side,
            Duration::from_secs(secs.max(30)),
            security.https.clone(),
        )
    }

    /// Plain HTTP agents on which a request fails once it moves no byte
    /// for `idle` (see `with`).
    pub fn new(idle: Duration) -> Http {
        Http::with('?', idle, None)
    }

    /// Agents on which a request fails once it moves no byte for `idle`:
    /// each socket read and write must make progress within it (ureq's
    /// per-read and per-write limits restart with every operation), and
    /// the head of an answer must arrive within it. A body has no total
    /// deadline: a 64 MiB chunk under `--bwlimit` or on a slow link takes
    /// as long as it takes while bytes flow, where a deadline on the whole
    /// body failed it at the same point on every retry. The throttle's
    /// sleeps between reads are not socket waits and do not count.
    fn with(side: char, idle: Duration, https: Option<Arc<Https>>) -> Http {
        let agent = || -> ureq::Agent {
            let mut c = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_recv_response(Some(idle))
                .timeout_per_read(Some(idle))
                .timeout_per_write(Some(idle))
                .max_idle_connections(64)
                .max_idle_connections_per_host(16);
            if let Some(h) = &https {
                c = c.tls_config(h.tls());
            }
            c.build().into()
        };
        Http {
            agents: Arc::new((0..Self::AGENTS).map(|_| agent()).collect()),
            side,
            wire: https.is_none().then(|| Wire::new(idle)),
            https,
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

    /// The client for a request with a body in memory and an answer read
    /// whole, when the cluster speaks plain HTTP (`wire`).
    pub fn wire(&self) -> Option<&Wire> {
        self.wire.as_ref()
    }

    /// "https" when the cluster's `[https.client]` is on, else "http".
    pub fn scheme(&self) -> &'static str {
        if self.https.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The URL of `rest` ("/3,01637037d6", "/?proxyChunkId=…") on the
    /// server at `host` (host:port), in the cluster's scheme.
    pub fn url(&self, host: &str, rest: &str) -> String {
        format!("{}://{host}{rest}", self.scheme())
    }

    /// The flag that gives this side's security file.
    fn flag(&self) -> String {
        format!("--{}-security", self.side.to_ascii_lowercase())
    }

    /// An answer that says the server at `host` speaks only HTTPS while
    /// it was asked over plain HTTP (status 400 and Go's words in `body`).
    /// Such a request never succeeds: not retryable (`ErrorKind::Usage`).
    pub fn refusal(&self, server: Server, host: &str, status: u16, body: &str) -> Option<Error> {
        (status == 400 && body.contains(PLAIN_TO_HTTPS) && self.https.is_none()).then(|| {
            Error::usage(format!(
                "{}'s {} {host} speaks only HTTPS ({}) and was asked over plain HTTP: give {} \
                 a security.toml whose [https.client] has enabled = true and the ca that signed \
                 the server's certificate (and cert/key if the server demands a client \
                 certificate)",
                self.side,
                server.name(),
                server.section(),
                self.flag()
            ))
        })
    }

    /// A failed request to the server at `host` as an error: a TLS failure
    /// that no retry cures (a certificate the CA does not sign, a host name
    /// it does not name, a client certificate missing or refused, a server
    /// that speaks plain HTTP where HTTPS was asked) says what to fix and is
    /// not retryable (`ErrorKind::Usage`); anything else as `Error::from`.
    pub fn fail(&self, server: Server, host: &str, e: ureq::Error) -> Error {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let (side, name) = (self.side, server.name());
        let origin = self
            .https
            .as_ref()
            .map_or_else(String::new, |h| h.origin.clone());
        let why = if has(&[
            "wrong version number",
            "packet length too long",
            "record layer failure",
        ]) {
            format!(
                "it does not speak HTTPS (it answered the TLS handshake in plain text): turn \
                 on {} on {side}'s {name}s, or take [https.client] out of {origin} if {side} \
                 serves plain HTTP",
                server.section()
            )
        } else if has(&["hostname mismatch", "ip address mismatch"]) {
            format!(
                "its certificate does not name the address {host} (a subjectAltName, IP:… for \
                 an address): reissue it, or reach {side} by a name it holds"
            )
        } else if has(&["certificate has expired", "certificate is not yet valid"]) {
            "its certificate is out of its validity dates: renew it".to_string()
        } else if has(&[
            "unable to get local issuer",
            "unable to get issuer",
            "self-signed",
            "self signed",
        ]) {
            format!(
                "its certificate is not signed by the CA that [https.client] ca in {origin} \
                 names: give the CA that signed {side}'s {} certificates",
                server.section()
            )
        } else if has(&["certificate verify failed"]) {
            format!(
                "its certificate does not verify against [https.client] ca in {origin}: give \
                 the CA that signed {side}'s {} certificates, and a certificate fit for a \
                 server",
                server.section()
            )
        } else if has(&[
            "certificate required",
            "alert handshake failure",
            "alert unknown ca",
            "alert bad certificate",
            "alert certificate unknown",
        ]) {
            match self.https.as_ref().is_some_and(|h| h.client_cert) {
                true => format!(
                    "it refused the client certificate of [https.client] in {origin}: give one \
                     signed by the CA in the server's {} ca",
                    server.section()
                ),
                false => format!(
                    "it demands a client certificate ({} has a ca) and none is given: set \
                     [https.client] cert and key in {}",
                    server.section(),
                    if origin.is_empty() {
                        self.flag()
                    } else {
                        origin.clone()
                    }
                ),
            }
        } else {
            return Error::from(e);
        };
        Error::usage(format!("{side}'s {name} {host}: {why} (TLS: {text})"))
    }
}

/// A short answer's body (an error's words, an upload's JSON), read whole
/// up to 64 KiB so that the connection goes back to the pool; "" when it
/// cannot be read.
pub fn short_body(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    resp.body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default()
}

/// The host:port of a URL ("https://h:1/x" → "h:1").
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The path and query of a URL ("http://h:1/x?y" → "/x?y"), as `url`
/// builds them (always with a path).
pub fn target_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
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
    /// The most bytes the body may have.
    pub fn limit(self) -> u64 {
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
            let http = Http::for_side('A', secs, &Security::default());
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

    /// Agents for side B with `[https.client] enabled` and nothing else
    /// (the system's roots, no client certificate).
    fn https_b() -> Http {
        let dir = std::env::temp_dir().join(format!("fs-https-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("security.toml");
        std::fs::write(&toml, "[https.client]\nenabled = true\n").unwrap();
        let s = Security::load(&crate::security::Given {
            flag: "b",
            file: Some(&toml),
            ..Default::default()
        })
        .unwrap();
        Http::for_side('B', 30, &s)
    }

    #[test]
    fn https_asked_of_a_plain_server_is_named_and_not_retried() {
        // What a Go HTTP server answers a TLS ClientHello with.
        let url = peer(|mut c| {
            let mut b = [0u8; 512];
            let _ = c.read(&mut b);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        });
        let http = https_b();
        assert_eq!(http.scheme(), "https");
        let url = url.replacen("http://", "https://", 1);
        let host = host_of(&url).to_string();
        let e = http.agent().get(&url).call().map(|_| ()).unwrap_err();
        let e = http.fail(Server::Volume, &host, e);
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "B's volume server {host}: it does not speak HTTPS"
            )),
            "{text}"
        );
    }

    #[test]
    fn tls_failures_are_worded_by_cause_and_others_left_alone() {
        let http = https_b();
        let io = |m: &str| ureq::Error::Io(std::io::Error::other(m.to_string()));
        for (msg, want) in [
            (
                "certificate verify failed (unable to get local issuer certificate)",
                "not signed by the CA",
            ),
            (
                "certificate verify failed (IP address mismatch)",
                "does not name the address",
            ),
            (
                "certificate verify failed (certificate has expired)",
                "validity dates",
            ),
            (
                "certificate verify failed (self-signed certificate)",
                "not signed by the CA",
            ),
            (
                "certificate verify failed (unsupported certificate purpose)",
                "does not verify",
            ),
            (
                "ssl/tls alert certificate required",
                "demands a client certificate",
            ),
            ("tlsv1 alert unknown ca", "demands a client certificate"),
        ] {
            let e = http.fail(Server::Filer, "h:1", io(msg));
            assert_eq!(e.kind(), ErrorKind::Usage, "{msg}");
            let text = e.to_string();
            assert!(
                text.starts_with("B's filer h:1: ") && text.contains(want),
                "{msg}: {text}"
            );
        }
        for e in [io("connection reset by peer"), ureq::Error::StatusCode(503)] {
            assert!(http.fail(Server::Volume, "h:1", e).is_retryable());
        }
        // Go's answer to plain HTTP, for agents that sent plain HTTP only.
        let body = "Client sent an HTTP request to an HTTPS server.\n";
        let plain = Http::for_side('A', 30, &Security::default());
        let e = plain.refusal(Server::Volume, "h:1", 400, body).unwrap();
        assert!(e.to_string().contains("speaks only HTTPS") && !e.is_retryable());
        assert!(plain
            .refusal(Server::Volume, "h:1", 400, "bad fid")
            .is_none());
        assert!(http.refusal(Server::Volume, "h:1", 400, body).is_none());
        assert_eq!(host_of("https://h:1/3,01?x=1"), "h:1");
        assert_eq!(host_of("http://h:2?proxyChunkId=1"), "h:2");
        assert_eq!(target_of("https://h:1/3,01?x=1"), "/3,01?x=1");
        assert_eq!(target_of("http://h:2/?proxyChunkId=1"), "/?proxyChunkId=1");
    }
}
