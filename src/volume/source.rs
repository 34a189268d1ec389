//! Reading chunks from one cluster (`ChunkSource`): a chunk by file id,
//! straight from a volume server (locations looked up through the filer and
//! trusted for a minute) or through the filer's proxy, with a cut download
//! resumed by Range requests and a body bounded by its declared size; and
//! small chunks read ahead for a batch, many per request round trip
//! (`read_ahead`). Holds only the location cache and what was read ahead;
//! knows nothing of entries or of the target.

use super::transfer::{host_of, target_of, Server};
use super::wire::{Request, Wire};
use super::{fid, throttle, Http, Size, AHEAD_DEPTH};
use crate::error::{Error, ErrorKind, Result};
use crate::filer::FilerClient;
use crate::pb::filer::Location;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a volume → location answer is trusted before asking again.
const LOCATION_TTL: Duration = Duration::from_secs(60);
/// A cut download is resumed with a Range request this many times.
const RESUMES: u32 = 5;

/// Reads chunks from one cluster.
pub struct ChunkSource {
    filer: FilerClient,
    proxy: bool,
    http: Http,
    locations: Mutex<HashMap<String, (Vec<String>, Instant)>>,
    /// Chunks read ahead (`read_ahead`), by file id, until `download` takes
    /// them or `forget_ahead` drops them.
    ahead: Mutex<HashMap<String, Vec<u8>>>,
    throttle: Option<Arc<throttle::Throttle>>,
    signer: Option<Arc<crate::security::ReadSigner>>,
}

impl ChunkSource {
    pub fn new(filer: FilerClient, proxy: bool, http: Http) -> ChunkSource {
        ChunkSource {
            filer,
            proxy,
            http,
            locations: Mutex::new(HashMap::new()),
            ahead: Mutex::new(HashMap::new()),
            throttle: None,
            signer: None,
        }
    }

    /// Signs direct volume reads (a source with `jwt.signing.read.key`);
    /// the filer proxy mints its own tokens.
    pub fn with_read_signer(mut self, s: Option<Arc<crate::security::ReadSigner>>) -> ChunkSource {
        self.signer = s;
        self
    }

    /// Limits the bytes this source reads per second (shared with others).
    pub fn with_throttle(mut self, t: Option<Arc<throttle::Throttle>>) -> ChunkSource {
        self.throttle = t;
        self
    }

    /// The URLs to try for a file id, in order; with `deleted_too`, a
    /// volume server serves the chunk even when it is marked deleted.
    fn urls(&self, file_id: &str, deleted_too: bool) -> Result<Vec<String>> {
        if self.proxy {
            // Every filer of the cluster, the one in turn first.
            let first = self.filer.live_addr().clone();
            let mut addrs = self.filer.addrs();
            addrs.sort_by_key(|a| *a != first);
            return Ok(addrs
                .iter()
                .map(|a| {
                    self.http
                        .url(&a.http(), &format!("/?proxyChunkId={file_id}"))
                })
                .collect());
        }
        let vid = fid::volume_id(file_id)?;
        let cached = {
            let map = self.locations.lock().unwrap();
            map.get(vid)
                .filter(|(_, at)| at.elapsed() < LOCATION_TTL)
                .map(|(l, _)| l.clone())
        };
        let hosts = match cached {
            Some(h) => h,
            None => {
                let locs = self.filer.lookup_volume(vid)?;
                let hosts: Vec<String> = locs.iter().map(|l: &Location| l.url.clone()).collect();
                self.locations
                    .lock()
                    .unwrap()
                    .insert(vid.to_string(), (hosts.clone(), Instant::now()));
                hosts
            }
        };
        let query = if deleted_too { "?readDeleted=true" } else { "" };
        Ok(hosts
            .iter()
            .map(|h| self.http.url(h, &format!("/{file_id}{query}")))
            .collect())
    }

    fn forget(&self, file_id: &str) {
        if let Ok(vid) = fid::volume_id(file_id) {
            self.locations.lock().unwrap().remove(vid);
        }
    }

    /// Downloads a whole chunk (one marked deleted only with `deleted_too`),
    /// trying each location and resuming a cut body. The body must have
    /// `size` (a plain chunk's size from its entry; an upper bound for an
    /// encrypted chunk, whose stored size differs from the plaintext size,
    /// or a manifest); a longer one is refused without being held.
    pub fn download(&self, file_id: &str, size: Size, deleted_too: bool) -> Result<Vec<u8>> {
        // Read ahead live: the same bytes a read of deleted ones too gives.
        let ahead = self.ahead.lock().unwrap().remove(file_id);
        if let Some(body) = ahead.filter(|b| size.check(b.len() as u64).is_ok()) {
            return Ok(body);
        }
        let urls = self.urls(file_id, deleted_too)?;
        let mut last = Error::transient(format!("chunk {file_id}: no location"));
        for url in &urls {
            match self.get(url, file_id, size) {
                Ok(body) => {
                    if let Some(t) = &self.throttle {
                        t.take(body.len() as u64);
                    }
                    return Ok(body);
                }
                // Every copy is the same needle: another holds no other bytes.
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    return Err(e.context(format!("GET {url}")))
                }
                Err(e) => last = e.context(format!("GET {url}")),
            }
        }
        // Every server said the chunk is not there live: most likely it was
        // deleted, and the volume's locations still hold.
        if deleted_too || last.kind() != ErrorKind::NotFound {
            self.forget(file_id);
        }
        Err(last)
    }

    /// Reads ahead the chunks of `wanted` (file id, exact size: plain
    /// chunks a batch is about to copy), straight from their volume
    /// servers: per server, `AHEAD_DEPTH` GETs written at once on one
    /// connection (`Wire::send_all`). Returns those that came whole, by
    /// file id; the rest are left to `download`, as is everything when
    /// reads go through the filer, over HTTPS or under a throttle (whose
    /// pace a burst would break).
    pub fn read_ahead(&self, wanted: &[(String, u64)]) -> HashMap<String, Vec<u8>> {
        let mut got = HashMap::new();
        let Some(wire) = self.http.wire() else {
            return got;
        };
        if self.proxy || self.throttle.is_some() {
            return got;
        }
        // host → (file id, path and query, size)
        let mut by_host: HashMap<String, Vec<(&str, String, u64)>> = HashMap::new();
        for (id, size) in wanted {
            let Ok(urls) = self.urls(id, false) else {
                continue;
            };
            if let Some(url) = urls.first() {
                let at = (id.as_str(), target_of(url).to_string(), *size);
                by_host
                    .entry(host_of(url).to_string())
                    .or_default()
                    .push(at);
            }
        }
        let limit = wanted.iter().map(|w| w.1).max().unwrap_or(0);
        // One round after another on one connection: a batch's groups
        // (see `Applier::copy_ahead`) are what run side by side.
        for (host, all) in &by_host {
            for round in all.chunks(AHEAD_DEPTH) {
                let tokens: Vec<Option<String>> =
                    round.iter().map(|(id, ..)| self.bearer(id)).collect();
                let requests: Vec<Request> = round
                    .iter()
                    .zip(&tokens)
                    .map(|((_, target, _), t)| Request::get(target, t.as_deref()))
                    .collect();
                match wire.send_all(host, &requests, limit) {
                    Ok(answers) => got.extend(
                        answers
                            .into_iter()
                            .zip(round)
                            .filter(|(a, (.., size))| {
                                a.status == 200 && a.body.len() as u64 == *size
                            })
                            .map(|(a, (id, ..))| (id.to_string(), a.body)),
                    ),
                    Err(e) => log::debug!("reading ahead from {host}: {e}"),
                }
            }
        }
        log::debug!(
            "read ahead {} of {} chunks from {} volume servers",
            got.len(),
            wanted.len(),
            by_host.len()
        );
        got
    }

    /// Keeps chunks read ahead for `download` to take; returns their ids
    /// (for `forget_ahead`).
    pub fn keep_ahead(&self, bodies: HashMap<String, Vec<u8>>) -> Vec<String> {
        let ids = bodies.keys().cloned().collect();
        self.ahead.lock().unwrap().extend(bodies);
        ids
    }

    /// Drops what `read_ahead` kept of `ids` and `download` did not take.
    pub fn forget_ahead(&self, ids: &[String]) {
        let mut ahead = self.ahead.lock().unwrap();
        for id in ids {
            ahead.remove(id);
        }
    }

    /// Opens a chunk for reading as a stream (one marked deleted only with
    /// `deleted_too`) and hands `f` its body and length, read within the
    /// throttle; the bytes are never all in memory. `expected`, when given,
    /// must be the length the server announces. A body cut short fails `f`
    /// (the caller starts the chunk again).
    pub fn stream<T>(
        &self,
        file_id: &str,
        expected: Option<u64>,
        deleted_too: bool,
        f: impl FnOnce(&mut dyn Read, u64) -> Result<T>,
    ) -> Result<T> {
        let urls = self.urls(file_id, deleted_too)?;
        let mut last = Error::transient(format!("chunk {file_id}: no location"));
        for url in &urls {
            let mut resp = match self.open(url, file_id, None) {
                Ok(r) => r,
                Err(e) => {
                    last = e.context(format!("GET {url}"));
                    continue;
                }
            };
            let Some(len) = content_length(&resp) else {
                return Err(Error::transient(format!("GET {url}: no Content-Length")));
            };
            if let Some(e) = expected {
                Size::Exact(e)
                    .check(len)
                    .map_err(|e| e.context(format!("GET {url}: announced")))?;
            }
            let mut body = throttle::Throttled::new(
                resp.body_mut().with_config().limit(len).reader(),
                self.throttle.as_deref(),
            );
            return f(&mut body, len);
        }
        if deleted_too || last.kind() != ErrorKind::NotFound {
            self.forget(file_id);
        }
        Err(last)
    }

    /// The token that signs a direct read of `file_id`, when reads are
    /// signed.
    fn bearer(&self, file_id: &str) -> Option<String> {
        let s = self.signer.as_ref().filter(|_| !self.proxy)?;
        let now = crate::util::now_ns() / 1_000_000_000;
        Some(format!("Bearer {}", s.token(file_id, now as u64)))
    }

    /// Sends the GET for a chunk (from byte `from` on), checks the answer,
    /// and returns the response whose body is to be read.
    fn open(
        &self,
        url: &str,
        file_id: &str,
        from: Option<u64>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut req = self.http.agent().get(url);
        if let Some(token) = self.bearer(file_id) {
            req = req.header("Authorization", token);
        }
        if let Some(n) = from {
            req = req.header("Range", format!("bytes={n}-"));
        }
        let mut resp = req
            .call()
            .map_err(|e| self.http.fail(self.server(), host_of(url), e))?;
        let range = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A short error body is read, so that the connection goes back to
        // the pool instead of being closed.
        let status = resp.status().as_u16();
        self.judge(url, status, from, range.as_deref(), || {
            super::transfer::short_body(&mut resp)
        })?;
        Ok(resp)
    }

    fn server(&self) -> Server {
        match self.proxy {
            true => Server::Filer,
            false => Server::Volume,
        }
    }

    /// Whether an answer (`status`, its Content-Range, the words of its
    /// body, asked for only when the status is not a chunk's) is the chunk
    /// from byte `from` on.
    fn judge(
        &self,
        url: &str,
        status: u16,
        from: Option<u64>,
        range: Option<&str>,
        words: impl FnOnce() -> String,
    ) -> Result<()> {
        if !matches!(status, 200 | 206) {
            let body = words();
            if let Some(e) = self
                .http
                .refusal(self.server(), host_of(url), status, &body)
            {
                return Err(e);
            }
        }
        if let Some(n) = from {
            let starts_right = range.is_some_and(|v| v.starts_with(&format!("bytes {n}-")));
            if status != 206 || !starts_right {
                return Err(Error::transient(format!(
                    "resume at byte {n} answered {status} without a matching Content-Range"
                )));
            }
        } else if status == 401 {
            return Err(Error::remote(
                "HTTP status 401: the source cluster signs chunk reads (jwt.signing.read); give \
                    its security.toml with --a-security/--b-security, or read through its filer \
                    with --a-filer-proxy/--b-filer-proxy",
            ));
        } else if status != 200 {
            return Err(ureq::Error::StatusCode(status).into());
        }
        Ok(())
    }

    /// A whole chunk over plain HTTP (`Http::wire`), or `None` when the
    /// answer is a redirect (which ureq follows).
    fn get_by_wire(
        &self,
        wire: &Wire,
        url: &str,
        file_id: &str,
        size: Size,
    ) -> Result<Option<Vec<u8>>> {
        let token = self.bearer(file_id);
        let headers: Vec<(&str, &str)> = token
            .iter()
            .map(|t| ("Authorization", t.as_str()))
            .collect();
        let a = wire.call(
            "GET",
            host_of(url),
            target_of(url),
            &headers,
            &[],
            size.limit(),
        )?;
        if (300..400).contains(&a.status) {
            return Ok(None);
        }
        self.judge(url, a.status, None, None, || {
            String::from_utf8_lossy(&a.body).into_owned()
        })?;
        size.admit(a.length, 0)?;
        size.check(a.body.len() as u64)?;
        Ok(Some(a.body))
    }

    fn get(&self, url: &str, file_id: &str, size: Size) -> Result<Vec<u8>> {
        if let Some(wire) = self.http.wire() {
            if let Some(body) = self.get_by_wire(wire, url, file_id, size)? {
                return Ok(body);
            }
        }
        let mut body = size.buffer();
        let mut resumes = 0;
        loop {
            let from = (!body.is_empty()).then_some(body.len() as u64);
            let mut resp = self.open(url, file_id, from)?;
            size.admit(content_length(&resp), body.len() as u64)?;
            match size.read_into(resp.body_mut().as_reader(), &mut body) {
                Ok(()) => {
                    size.check(body.len() as u64)?;
                    return Ok(body);
                }
                Err(e) if resumes < RESUMES && !body.is_empty() => {
                    resumes += 1;
                    log::debug!("{url}: cut after {} bytes ({e}); resuming", body.len());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The length an answer announces for its body.
fn content_length(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    resp.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
