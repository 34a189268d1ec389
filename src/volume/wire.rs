//! The hot path's HTTP/1.1 over plain TCP: one request with a body held in
//! memory (or none), one answer read whole up to a bound, on a kept-alive
//! connection of the calling thread. This is every small chunk's GET and
//! POST, twice per file; ureq, which carries everything else (HTTPS,
//! streamed bodies, deletes), spent about a fifth of the sync's CPU on
//! them: a request and response model built per call, and a probe of the
//! pooled socket on its return and again on its reuse (three system calls
//! each). Here a connection is taken from the thread's few, written once,
//! read once and put back; its timeouts are set when it is opened.
//!
//! Knows nothing of chunks: callers judge the status and the body.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a connection may take to open.
const CONNECT: Duration = Duration::from_secs(10);
/// The longest answer head read.
const HEAD_MAX: usize = 64 * 1024;
/// Connections a thread keeps open (over all hosts and clients).
const KEPT: usize = 8;

/// Plain-HTTP requests on the calling thread's connections, each read or
/// write failing once it moves no byte for `idle`.
#[derive(Debug, Clone)]
pub struct Wire {
    idle: Duration,
    /// Tells this client's connections from another's (with another idle).
    id: u64,
}

/// An answer read whole.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// The length the answer announced (Content-Length).
    pub length: Option<u64>,
    /// The body: whole when it fits the bound given; one byte past the
    /// bound when it is longer (the caller finds that out); empty when its
    /// announced length is already past the bound (not read).
    pub body: Vec<u8>,
}

/// One of the requests `Wire::send_all` sends: `method target`, its
/// headers, and its body made of `parts`.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub parts: Vec<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// A GET of `target`, with its Authorization header if any.
    pub fn get(target: &'a str, authorization: Option<&'a str>) -> Request<'a> {
        Request {
            method: "GET",
            target,
            headers: authorization
                .map(|a| ("Authorization", a))
                .into_iter()
                .collect(),
            parts: Vec::new(),
        }
    }
}

/// A kept-alive connection, with whose it is and where it goes.
struct Conn {
    client: u64,
    host: String,
    stream: TcpStream,
}

thread_local! {
    static CONNS: RefCell<Vec<Conn>> = const { RefCell::new(Vec::new()) };
}

impl Wire {
    pub fn new(idle: Duration) -> Wire {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Wire {
            idle,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Sends `method target` (a path and query) to `host` (host:port) with
    /// `headers` and the body made of `parts` (assembled with the head into
    /// one buffer, one send), and reads the answer, its body up to `limit`
    /// bytes (see `Answer::body`). A kept connection the server has closed
    /// meanwhile is found out by its first read or write and the request
    /// sent again on a new one, once.
    pub fn call(
        &self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
        parts: &[&[u8]],
        limit: u64,
    ) -> io::Result<Answer> {
        let mut bytes = Vec::new();
        request(&mut bytes, (method, host, target), headers, parts);
        self.on_connection(host, |s| exchange(s, &bytes, limit))
    }

    /// Sends `requests` to `host`, all written at once on one connection
    /// (HTTP/1.1 pipelining: a volume server answers them in order from
    /// one read, at less than half its CPU per request one by one), and
    /// reads their answers in order, each body up to `limit` bytes. Ends
    /// early, with fewer answers than requests, at an answer that is not
    /// framed by its length or is longer than `limit`, or when the
    /// connection breaks after the first answer: the caller sends the rest
    /// one by one (a request whose answer was not read may have been
    /// carried out).
    pub fn send_all(
        &self,
        host: &str,
        requests: &[Request],
        limit: u64,
    ) -> io::Result<Vec<Answer>> {
        let mut bytes = Vec::new();
        for r in requests {
            request(&mut bytes, (r.method, host, r.target), &r.headers, &r.parts);
        }
        self.on_connection(host, |s| pipelined(s, &bytes, requests.len(), limit))
    }

    /// Runs `exchange` on a kept connection to `host`, or on a new one when
    /// there is none or the kept one turns out closed by the server
    /// (`Failure::Stale`: nothing of an answer came; sent again, once).
    fn on_connection<T>(
        &self,
        host: &str,
        exchange: impl Fn(&mut TcpStream) -> Result<(T, bool), Failure>,
    ) -> io::Result<T> {
        if let Some(mut c) = self.take(host) {
            match exchange(&mut c.stream) {
                Ok((answer, keep)) => {
                    self.put_back(c, keep);
                    return Ok(answer);
                }
                Err(Failure::Stale(_)) => {}
                Err(Failure::Io(e)) => return Err(e),
            }
        }
        let mut c = self.open(host)?;
        match exchange(&mut c.stream) {
            Ok((answer, keep)) => {
                self.put_back(c, keep);
                Ok(answer)
            }
            Err(Failure::Stale(e) | Failure::Io(e)) => Err(e),
        }
    }

    fn take(&self, host: &str) -> Option<Conn> {
        CONNS.with(|c| {
            let mut conns = c.borrow_mut();
            let i = conns
                .iter()
                .rposition(|c| c.client == self.id && c.host == host)?;
            Some(conns.remove(i))
        })
    }

    fn put_back(&self, c: Conn, keep: bool) {
        if !keep {
            return;
        }
        CONNS.with(|conns| {
            let mut conns = conns.borrow_mut();
            if conns.len() >= KEPT {
                conns.remove(0);
            }
            conns.push(c);
        });
    }

    fn open(&self, host: &str) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
        for addr in host.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(self.idle))?;
                    stream.set_write_timeout(Some(self.idle))?;
                    return Ok(Conn {
                        client: self.id,
                        host: host.to_string(),
                        stream,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// How an exchange failed: before any byte of an answer on a connection
/// that may have been closed while kept (`Stale`), or otherwise.
enum Failure {
    Stale(io::Error),
    Io(io::Error),
}

/// Writes `request` and reads one answer; with it, whether the connection
/// can carry another request.
fn exchange(s: &mut TcpStream, request: &[u8], limit: u64) -> Result<(Answer, bool), Failure> {
    s.write_all(request).map_err(Failure::Stale)?;
    let mut buf = Vec::with_capacity(8192);
    let (head, end) = read_head(s, &mut buf, 0)?;
    let mut rest = buf.split_off(end);
    let framed = head.chunked || head.answer.length.is_some() || !head.has_body;
    let keep = head.keep_alive && framed;
    let mut answer = head.answer;
    if !head.has_body {
        return Ok((answer, keep && rest.is_empty()));
    }
    let read = if head.chunked {
        read_chunked(s, &mut rest, limit, &mut answer.body)
    } else if let Some(n) = answer.length {
        if n > limit {
            // Refused unread: the connection holds the rest of it.
            return Ok((answer, false));
        }
        read_exact_body(s, &mut rest, n, &mut answer.body)
    } else {
        read_to_close(s, rest, limit, &mut answer.body).map(|()| false)
    };
    match read {
        Ok(whole) => Ok((answer, keep && whole)),
        Err(e) => Err(Failure::Io(timed_out(e))),
    }
}

/// Writes `requests` (`n` of them) and reads their answers in order, as
/// `Wire::send_all` says; with them, whether the connection stands at the
/// next answer.
fn pipelined(
    s: &mut TcpStream,
    requests: &[u8],
    n: usize,
    limit: u64,
) -> Result<(Vec<Answer>, bool), Failure> {
    s.write_all(requests).map_err(Failure::Stale)?;
    let mut out = Vec::with_capacity(n);
    // What has been read; the answers taken so far end at `at`. Each body
    // is copied out at its own size: one read holds many answers, and a
    // body that kept the read's buffer would hold all of them.
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut at = 0;
    while out.len() < n {
        if at >= 32 * 1024 || at == buf.len() {
            buf.drain(..at);
            at = 0;
        }
        let (head, end) = match read_head(s, &mut buf, at) {
            Ok(h) => h,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => return Ok((out, false)),
        };
        let mut answer = head.answer;
        at = end;
        if head.has_body {
            let Some(len) = answer.length.filter(|&l| !head.chunked && l <= limit) else {
                return Ok((out, false));
            };
            let len = len as usize;
            if fill_to(s, &mut buf, end + len).is_err() {
                return Ok((out, false));
            }
            answer.body = buf[end..end + len].to_vec();
            at = end + len;
        }
        out.push(answer);
        if !head.keep_alive {
            return Ok((out, false));
        }
    }
    let at_next = at == buf.len();
    Ok((out, at_next))
}

/// Appends to `out` a request: `method target` to `host`, with `headers`
/// and the body made of `parts` (one buffer, to be sent with one write).
fn request(
    out: &mut Vec<u8>,
    (method, host, target): (&str, &str, &str),
    headers: &[(&str, &str)],
    parts: &[&[u8]],
) {
    use std::fmt::Write as _;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if method != "GET" || len > 0 {
        let _ = write!(head, "Content-Length: {len}\r\n");
    }
    head.push_str("\r\n");
    out.reserve(head.len() + len);
    out.extend_from_slice(head.as_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Reads until `buf` holds a whole answer head from `from` on; what it
/// says, and where its body starts in `buf`. A connection that ends (or
/// fails) before any byte is `Failure::Stale`.
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>, from: usize) -> Result<(Head, usize), Failure> {
    let end = loop {
        if let Some(i) = find(&buf[from..], b"\r\n\r\n") {
            break from + i + 4;
        }
        let none = buf.len() == from;
        if buf.len() - from > HEAD_MAX {
            return Err(Failure::Io(bad("an answer head over 64 KiB")));
        }
        match fill(s, buf) {
            Ok(0) if none => return Err(Failure::Stale(closed())),
            Ok(0) => return Err(Failure::Io(closed())),
            Ok(_) => {}
            Err(e) if none && e.kind() != io::ErrorKind::WouldBlock => {
                return Err(Failure::Stale(e))
            }
            Err(e) => return Err(Failure::Io(timed_out(e))),
        }
    };
    let head = parse_head(&buf[from..end]).map_err(Failure::Io)?;
    Ok((head, end))
}

/// What an answer head says.
struct Head {
    answer: Answer,
    chunked: bool,
    keep_alive: bool,
    has_body: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| bad("an answer head not in UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| bad(&format!("a status line {status_line:?}")))?;
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("a status line {status_line:?}")));
    }
    let mut h = Head {
        answer: Answer {
            status,
            ..Answer::default()
        },
        chunked: false,
        keep_alive: version == "HTTP/1.1",
        has_body: !matches!(status, 100..=199 | 204 | 304),
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(&format!("a header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value
                    .parse()
                    .map_err(|_| bad(&format!("Content-Length {value:?}")))?;
                if h.answer.length.is_some_and(|m| m != n) {
                    return Err(bad("two Content-Lengths"));
                }
                h.answer.length = Some(n);
            }
            "transfer-encoding" => {
                h.chunked = value.to_ascii_lowercase().ends_with("chunked");
                if !h.chunked {
                    return Err(bad(&format!("Transfer-Encoding {value:?}")));
                }
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    h.keep_alive = false;
                } else if v.contains("keep-alive") {
                    h.keep_alive = true;
                }
            }
            _ => {}
        }
    }
    if h.chunked {
        // A chunked body's length is its chunks'.
        h.answer.length = None;
    }
    Ok(h)
}

/// Reads `n` body bytes: those already in `rest`, then the socket's. True:
/// the connection stands at the next answer.
fn read_exact_body(
    s: &mut TcpStream,
    rest: &mut Vec<u8>,
    n: u64,
    body: &mut Vec<u8>,
) -> io::Result<bool> {
    let n = n as usize;
    if rest.len() >= n {
        let extra = rest.len() > n;
        rest.truncate(n);
        *body = std::mem::take(rest);
        return Ok(!extra);
    }
    body.reserve_exact(n);
    body.append(rest);
    let have = body.len();
    body.resize(n, 0);
    s.read_exact(&mut body[have..])?;
    Ok(true)
}

/// Reads a chunked body into `body`, up to one byte past `limit`. True:
/// whole, and the connection stands at the next answer.
fn read_chunked(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: u64,
    body: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut at = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[at..], b"\r\n") {
                break at + i;
            }
            if buf.len() - at > 1024 {
                return Err(bad("a chunk size line over 1 KiB"));
            }
            if fill(s, buf)? == 0 {
                return Err(closed());
            }
        };
        let line = std::str::from_utf8(&buf[at..line_end]).map_err(|_| bad("a chunk size"))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| bad("a chunk size"))?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                if let Some(i) = find(&buf[at..], b"\r\n") {
                    if i == 0 {
                        return Ok(at + 2 == buf.len());
                    }
                    at += i + 2;
                } else if fill(s, buf)? == 0 {
                    return Err(closed());
                }
            }
        }
        if (body.len() as u64).saturating_add(size) > limit {
            let room = (limit.saturating_add(1) - body.len() as u64) as usize;
            fill_to(s, buf, at + room)?;
            body.extend_from_slice(&buf[at..at + room]);
            return Ok(false);
        }
        let size = size as usize;
        fill_to(s, buf, at + size + 2)?;
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
        if at > 64 * 1024 {
            buf.drain(..at);
            at = 0;
        }
    }
}

/// Reads a body that ends when the server closes, up to one byte past
/// `limit`.
fn read_to_close(
    s: &mut TcpStream,
    rest: Vec<u8>,
    limit: u64,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    *body = rest;
    let room = limit.saturating_add(1).saturating_sub(body.len() as u64);
    s.take(room).read_to_end(body)?;
    body.truncate(limit.saturating_add(1).min(usize::MAX as u64) as usize);
    Ok(())
}

/// Appends what one read gives (0: the peer closed).
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let have = buf.len();
    buf.resize(have + 16 * 1024, 0);
    let r = loop {
        match s.read(&mut buf[have..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    buf.truncate(have + *r.as_ref().unwrap_or(&0));
    r
}

/// Reads until `buf` holds `len` bytes; the peer closing first is an
/// error.
fn fill_to(s: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    while buf.len() < len {
        if fill(s, buf)? == 0 {
            return Err(closed());
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP: {what}"))
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "HTTP: the server closed the connection",
    )
}

/// A read that waited out the idle time says so.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "HTTP: no byte moved for the idle timeout",
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    /// A server on 127.0.0.1 that answers each request of each connection
    /// with the next of `answers` (and closes a connection after each
    /// answer when `close_after` says so); returns its host:port and the
    /// number of connections it accepted.
    fn server(
        answers: Vec<&'static [u8]>,
        close_after: bool,
    ) -> (String, std::sync::Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let accepted = std::sync::Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut next = answers.into_iter();
            for conn in l.incoming() {
                let Ok(mut c) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                loop {
                    // The request head, then its body by Content-Length.
                    let mut seen = Vec::new();
                    let mut b = [0u8; 1];
                    while !seen.ends_with(b"\r\n\r\n") {
                        match c.read(&mut b) {
                            Ok(1) => seen.push(b[0]),
                            _ => break,
                        }
                    }
                    if !seen.ends_with(b"\r\n\r\n") {
                        break;
                    }
                    let text = String::from_utf8_lossy(&seen).to_lowercase();
                    let n: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    let mut body = vec![0; n];
                    c.read_exact(&mut body).unwrap();
                    let Some(a) = next.next() else { return };
                    c.write_all(a).unwrap();
                    // An HTTP/1.0 answer without a length ends at the close.
                    if close_after || a.starts_with(b"HTTP/1.0") {
                        break;
                    }
                }
            }
        });
        (host, accepted)
    }

    #[test]
    fn answers_by_length_chunks_or_close_and_keeps_what_it_can() {
        let (host, accepted) = server(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Range: bytes 0-4/5\r\n\r\nhello",
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.0 200 OK\r\n\r\nuntil close",
            ],
            false,
        );
        let w = Wire::new(Duration::from_secs(5));
        let a = w
            .call("GET", &host, "/3,01", &[("Range", "bytes=0-")], &[], 100)
            .unwrap();
        assert_eq!(
            (a.status, a.length, &a.body[..]),
            (200, Some(5), &b"hello"[..])
        );
        let a = w
            .call("POST", &host, "/3,02", &[], &[b"pay", b"load"], 100)
            .unwrap();
        assert_eq!((a.status, &a.body[..]), (201, &b"abcde"[..]));
        let a = w.call("GET", &host, "/x", &[], &[], 100).unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
        let a = w.call("GET", &host, "/y", &[], &[], 100).unwrap();
        assert_eq!(&a.body[..], b"until close");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for all four"
        );
    }

    #[test]
    fn pipelined_requests_read_their_answers_in_order_and_stop_at_one_not_framed_by_length() {
        let (host, accepted) = server(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree",
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nsix",
            ],
            false,
        );
        let w = Wire::new(Duration::from_secs(5));
        let got = |a: Vec<Answer>| -> Vec<(u16, Vec<u8>)> {
            a.into_iter().map(|a| (a.status, a.body)).collect()
        };
        let post = Request {
            method: "POST",
            target: "/3",
            headers: vec![("Content-Type", "text/plain")],
            parts: vec![b"pay", b"load"],
        };
        let first = w
            .send_all(
                &host,
                &[
                    Request::get("/1", None),
                    Request::get("/2", Some("Bearer t")),
                    post,
                ],
                10,
            )
            .unwrap();
        assert_eq!(
            got(first),
            [
                (200, b"one".to_vec()),
                (404, vec![]),
                (200, b"three".to_vec())
            ]
        );
        // Kept: the next three go on the same connection; the chunked
        // answer ends them, with the one before it taken.
        let gets: Vec<Request> = ["/4", "/5", "/6"].map(|t| Request::get(t, None)).into();
        let next = w.send_all(&host, &gets, 10).unwrap();
        assert_eq!(got(next), [(200, b"four".to_vec())]);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn pipelined_answers_read_together_each_hold_only_their_own_bytes() {
        // Ten answers of 1 KiB written at once: one read takes them all
        // in, and each body must not keep that read's buffer (a thousand
        // small chunks copied ahead would hold 16 KiB each).
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut seen = Vec::new();
            let mut b = [0u8; 4096];
            while seen.windows(4).filter(|w| w == b"\r\n\r\n").count() < 10 {
                let n = c.read(&mut b).unwrap();
                seen.extend_from_slice(&b[..n]);
            }
            let mut all = Vec::new();
            for i in 0..10u8 {
                all.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n");
                all.extend(std::iter::repeat_n(b'a' + i, 1024));
            }
            c.write_all(&all).unwrap();
            let _ = c.read(&mut b);
        });
        let w = Wire::new(Duration::from_secs(5));
        let gets: Vec<Request> = (0..10).map(|_| Request::get("/c", None)).collect();
        let got = w.send_all(&host, &gets, 4096).unwrap();
        assert_eq!(got.len(), 10);
        for (i, a) in got.iter().enumerate() {
            assert_eq!(a.body, vec![b'a' + i as u8; 1024]);
            assert_eq!(
                a.body.capacity(),
                1024,
                "answer {i} holds more than its body"
            );
        }
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_replaced_once() {
        let (host, accepted) = server(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
            ],
            true,
        );
        let w = Wire::new(Duration::from_secs(5));
        assert_eq!(w.call("GET", &host, "/1", &[], &[], 10).unwrap().body, b"a");
        // Kept, as the answer allowed; the server closed it since.
        assert_eq!(w.call("GET", &host, "/2", &[], &[], 10).unwrap().body, b"b");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_body_past_the_bound_is_not_held() {
        let (host, _) = server(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n0\r\n\r\n",
            ],
            true,
        );
        let w = Wire::new(Duration::from_secs(5));
        let a = w.call("GET", &host, "/1", &[], &[], 10).unwrap();
        assert_eq!((a.length, a.body.len()), (Some(50), 0), "refused unread");
        let a = w.call("GET", &host, "/2", &[], &[], 4).unwrap();
        assert_eq!(&a.body[..], b"01234", "one byte past the bound");
    }

    #[test]
    fn a_silent_server_fails_after_the_idle_time_and_garbage_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1024];
            let _ = c.read(&mut b);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            std::thread::sleep(Duration::from_secs(3));
        });
        let idle = Duration::from_millis(300);
        let t = Instant::now();
        let e = Wire::new(idle)
            .call("GET", &host, "/", &[], &[], 100)
            .unwrap_err();
        assert!(
            t.elapsed() >= idle && t.elapsed() < idle * 5,
            "{:?}",
            t.elapsed()
        );
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        let (host, _) = server(vec![b"SMTP ready\r\n\r\n"], true);
        let e = Wire::new(idle)
            .call("GET", &host, "/", &[], &[], 100)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }
}
