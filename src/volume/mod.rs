//! Chunk bytes over HTTP (ureq): download a chunk by file id from the source
//! cluster and upload it to the target cluster, either straight to volume
//! servers (LookupVolume / AssignVolume through the filer) or through a
//! filer's `/?proxyChunkId=` proxy. Connections and how bodies are read
//! (timeouts on no progress, bodies bounded by their declared size) live in
//! `transfer`.
//! It knows nothing of entries or events; `apply` decides what to copy.

pub mod fid;
mod probe;
mod source;
pub mod throttle;
pub mod transfer;
mod wire;

use wire::Request;

pub use probe::probe;
pub use source::ChunkSource;
pub use transfer::{Http, Server, Size};

use crate::error::{Error, Result};
use crate::filer::FilerClient;
use crate::pb::filer::{
    AssignVolumeRequest, CreateEntryRequest, DeleteEntryRequest, Entry, FileChunk,
};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where and how uploads land on the target cluster.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub collection: String,
    pub replication: String,
    pub ttl_sec: i32,
    pub disk_type: String,
}

/// What an upload sends: bytes in memory, or a stream of known length.
enum Body<'a> {
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read, u64),
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Stream(_, n) => *n,
        }
    }
}

/// File ids asked for at once by one AssignVolume for one target folder.
const ASSIGN_BATCH: i32 = 16;

/// File ids asked for at once when all folders share them (`with_shared_ids`).
const SHARED_BATCH: i32 = 128;

/// Expected bytes one batch of file ids may stand for: fewer ids are asked
/// for when chunks are large. A master charges each id's expected size to
/// its volume until heartbeats report the real size, marks the volume full
/// when the charges reach its limit, and holds assigns up while it grows new
/// volumes; without a size hint it charges 1 MB per id.
const BATCH_BYTES: u64 = 64 << 20;

/// Requests written at once on one connection when chunks are read or
/// written ahead for a batch (`ChunkSource::read_ahead`,
/// `ChunkSink::write_ahead`).
pub const AHEAD_DEPTH: usize = 64;

/// An upload across its attempts (see `ChunkSink::upload_with`).
#[derive(Debug, Default)]
pub struct Upload {
    lease: Option<Lease>,
    tries: u32,
}

impl Upload {
    /// Attempts on one file id before another is taken.
    const SAME_ID: u32 = 3;
}

/// An assigned file id not yet written.
#[derive(Debug, Clone)]
struct Lease {
    file_id: String,
    /// Volume server `host:port`.
    url: String,
    /// Write JWT, if the cluster signs writes.
    auth: String,
}

/// Writes chunks into one cluster.
pub struct ChunkSink {
    filer: FilerClient,
    proxy: bool,
    http: Http,
    placement: Placement,
    /// Unused file ids from batch assigns, per pool (`pool_of`; taken from
    /// the end, the oldest first).
    leases: Mutex<HashMap<String, Vec<Lease>>>,
    /// Pools being topped up.
    topping: Mutex<std::collections::HashSet<String>>,
    /// The target's bucket folder when folders may share file ids.
    buckets: Option<String>,
    /// The target filer has path-specific storage rules (its filer.conf):
    /// every folder then has a pool of its own.
    rules: AtomicBool,
    /// Recent upload sizes (a moving average, bytes; 0 before the first):
    /// the size hint of batch assigns.
    typical: AtomicU64,
    /// Unused copies whose delete failed (their volume server away), and
    /// when they were last tried: tried again while uploads go on.
    unfreed: Mutex<(Vec<String>, Option<Instant>)>,
    /// Carried by the throwaway entries that free copies made through the
    /// filer proxy (the source's signatures: the opposite direction leaves
    /// them alone).
    signatures: Vec<i32>,
    /// Copies written ahead (`write_ahead`), by (target path, source file
    /// id): their file ids, until `take_ahead` takes or `forget_ahead`
    /// frees them.
    ahead: Mutex<HashMap<(String, String), String>>,
}

/// A chunk `ChunkSink::write_ahead` is to copy: the target path, name and
/// MIME type of its file (as `upload` takes them), the source file id it
/// is a copy of, and its bytes.
pub struct WriteAhead<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub mime: &'a str,
    pub source: &'a str,
    pub data: &'a [u8],
}

impl ChunkSink {
    pub fn new(filer: FilerClient, proxy: bool, http: Http, placement: Placement) -> ChunkSink {
        ChunkSink {
            filer,
            proxy,
            http,
            placement,
            leases: Mutex::new(HashMap::new()),
            topping: Default::default(),
            buckets: None,
            rules: AtomicBool::new(true),
            typical: AtomicU64::new(0),
            unfreed: Default::default(),
            signatures: Vec::new(),
            ahead: Default::default(),
        }
    }

    /// Signs the throwaway entries that free copies made through the filer
    /// proxy (see `free_through_filer`).
    pub fn with_signatures(mut self, signatures: Vec<i32>) -> ChunkSink {
        self.signatures = signatures;
        self
    }

    /// Lets all target folders share one pool of file ids (one per bucket
    /// below `dir_buckets`, whose collection is the bucket's) while the
    /// target filer has no path-specific storage rules: AssignVolume then
    /// answers the same for every folder. The rules are looked at again
    /// before each refill, so rules made meanwhile are followed from then on.
    /// An empty `dir_buckets` (a filer that does not say) means `/buckets`.
    pub fn with_shared_ids(mut self, dir_buckets: &str) -> ChunkSink {
        let b = dir_buckets.trim_end_matches('/');
        self.buckets = Some(if b.is_empty() { "/buckets" } else { b }.to_string());
        self.look_at_rules();
        self
    }

    /// Reads the target's filer.conf: any location rule (or a file too large
    /// to hold inline, or no answer) counts as rules.
    fn look_at_rules(&self) {
        let found = self.filer.lookup("/etc/seaweedfs", "filer.conf");
        let rules = match &found {
            Ok(None) => false,
            Ok(Some(e)) => {
                !e.chunks.is_empty() || e.content.windows(14).any(|w| w == b"locationPrefix")
            }
            Err(_) => true,
        };
        let before = self.rules.swap(rules, Ordering::Relaxed);
        if rules && !before {
            log::info!(
                "the target filer has path-specific storage rules: file ids are assigned per \
                 folder"
            );
            self.leases.lock().unwrap().clear();
        }
    }

    fn shared(&self) -> bool {
        self.buckets.is_some() && !self.rules.load(Ordering::Relaxed)
    }

    /// The pool of file ids serving the target folder `dir`: the folder
    /// itself, or when shared its bucket ("" outside buckets).
    fn pool_of(&self, dir: &str) -> String {
        match &self.buckets {
            Some(b) if self.shared() => bucket_of(dir, b),
            _ => dir.to_string(),
        }
    }

    /// Ids per AssignVolume: a batch of the pool's kind, fewer for large
    /// uploads (at most `BATCH_BYTES` of typical uploads). A pool refills
    /// below half of it and keeps at most one.
    fn batch(&self) -> i32 {
        let most = if self.shared() {
            SHARED_BATCH
        } else {
            ASSIGN_BATCH
        };
        let typical = self.typical.load(Ordering::Relaxed).max(1);
        (BATCH_BYTES / typical).clamp(1, most as u64) as i32
    }

    /// Takes a file id for `path`: from the ids left over by an earlier
    /// batch assign for the same pool, else from a new AssignVolume that
    /// asks for a batch of ids at once (the ids after the first are the
    /// next needle keys with the same cookie, kept in plain form: `fid::nth`),
    /// which cuts master round trips for small files.
    fn lease(&self, path: &str) -> Result<Lease> {
        let pool = self.pool_of(crate::paths::split_path(path).0);
        if let Some(l) = self
            .leases
            .lock()
            .unwrap()
            .get_mut(&pool)
            .and_then(|q| q.pop())
        {
            return Ok(l);
        }
        self.assign(path)
    }

    /// Tops up the file ids for the target folder `dir` once they run
    /// low (`claim_top_up`, then `refill`), in the calling thread.
    pub fn top_up(&self, dir: &str) {
        if self.claim_top_up(dir) {
            self.refill(dir);
        }
    }

    /// True when the ids for `dir` run low (under half a batch) and no
    /// refill is under way for its pool; the caller must then `refill(dir)`.
    /// The applier refills off the entry's path, so that a slow
    /// AssignVolume (a master growing volumes holds it up for a second or
    /// more) delays no file: the ids left last the round trip.
    pub fn claim_top_up(&self, dir: &str) -> bool {
        let pool = self.pool_of(dir);
        let low = self
            .leases
            .lock()
            .unwrap()
            .get(&pool)
            .is_some_and(|q| q.len() < self.batch() as usize / 2);
        low && self.topping.lock().unwrap().insert(pool)
    }

    /// One AssignVolume for `dir`'s pool, its ids kept behind those left.
    pub fn refill(&self, dir: &str) {
        let pool = self.pool_of(dir);
        if self.buckets.is_some() {
            self.look_at_rules();
        }
        let base = if pool.is_empty() { "/" } else { pool.as_str() };
        let probe = crate::paths::join_path(base, ".filer-sync-lease");
        match self.assign(&probe) {
            Ok(first) => {
                if let Some(q) = self.leases.lock().unwrap().get_mut(&self.pool_of(dir)) {
                    q.insert(0, first);
                }
            }
            Err(e) => log::debug!("topping up file ids for {dir}: {e}"),
        }
        self.topping.lock().unwrap().remove(&pool);
    }

    /// File ids kept for the target folder `dir` (for tests and debugging).
    pub fn spare_ids(&self, dir: &str) -> usize {
        self.leases
            .lock()
            .unwrap()
            .get(&self.pool_of(dir))
            .map_or(0, Vec::len)
    }

    /// One AssignVolume for a batch of ids: returns the first, keeps the
    /// others for `path`'s pool behind those it has already. Each id is
    /// announced at the typical upload size (`upload` counts every upload
    /// before it asks), and the batch covers at most `BATCH_BYTES` of them.
    fn assign(&self, path: &str) -> Result<Lease> {
        let pool = self.pool_of(crate::paths::split_path(path).0);
        let mut req = AssignVolumeRequest::new();
        req.count = self.batch();
        req.collection = self.placement.collection.clone();
        req.replication = self.placement.replication.clone();
        req.ttl_sec = self.placement.ttl_sec;
        req.disk_type = self.placement.disk_type.clone();
        req.path = path.to_string();
        req.expected_data_size = self.typical.load(Ordering::Relaxed).max(1);
        let assigned = self.filer.assign(&req)?;
        let url = assigned
            .location
            .as_ref()
            .map(|l| l.url.clone())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::transient(format!(
                    "AssignVolume gave {} without a location",
                    assigned.file_id
                ))
            })?;
        let lease = |file_id: String| Lease {
            file_id,
            url: url.clone(),
            auth: assigned.auth.clone(),
        };
        // A write token is minted for one id: only batch without one.
        if assigned.count > 1 && assigned.auth.is_empty() {
            let mut leases = self.leases.lock().unwrap();
            if leases.len() > 4096 {
                leases.clear();
            }
            let q = leases.entry(pool).or_default();
            let mut fresh = (1..assigned.count as u64)
                .rev()
                .map(|i| Ok(lease(fid::nth(&assigned.file_id, i)?)))
                .collect::<Result<Vec<Lease>>>()?;
            fresh.append(q);
            // At most a batch is kept (workers that found the pool empty at
            // once each assigned one): the ids beyond it are dropped unused,
            // which bounds how long ids taken under old storage rules last.
            let extra = fresh.len().saturating_sub(self.batch() as usize);
            fresh.drain(..extra);
            *q = fresh;
        }
        Ok(lease(assigned.file_id.clone()))
    }

    /// Assigns a file id on the target and uploads `data` under it; returns the new file id.
    /// `path` is the target path, which lets the filer apply its path-specific rules.
    pub fn upload(&self, path: &str, name: &str, mime: &str, data: &[u8]) -> Result<String> {
        let mut up = Upload::default();
        let r = self.upload_with(path, name, mime, data, &mut up);
        if r.is_err() {
            self.abandon(up);
        }
        r
    }

    /// One attempt of an upload that may take several (`up` carries it
    /// from one to the next): the file id of a failed attempt is tried
    /// again, since a POST whose answer was lost may have stored the
    /// needle and writing it again replaces it instead of leaving it
    /// behind; after `Upload::SAME_ID` attempts it is freed and another id
    /// taken (its volume may have gone read-only or away).
    pub fn upload_with(
        &self,
        path: &str,
        name: &str,
        mime: &str,
        data: &[u8],
        up: &mut Upload,
    ) -> Result<String> {
        self.upload_body(path, (name, mime), Body::Bytes(data), up)
    }

    /// `upload_with` from a stream of `len` bytes, never all in memory.
    pub fn upload_stream(
        &self,
        path: &str,
        (name, mime): (&str, &str),
        (body, len): (&mut dyn Read, u64),
        up: &mut Upload,
    ) -> Result<String> {
        self.upload_body(path, (name, mime), Body::Stream(body, len), up)
    }

    fn upload_body(
        &self,
        path: &str,
        (name, mime): (&str, &str),
        data: Body,
        up: &mut Upload,
    ) -> Result<String> {
        self.free_later();
        self.count_size(data.len());
        if up.tries >= Upload::SAME_ID {
            self.abandon(std::mem::take(up));
        }
        let lease = match &up.lease {
            Some(l) => l.clone(),
            None => {
                let l = self.lease(path)?;
                up.lease = Some(l.clone());
                l
            }
        };
        up.tries += 1;
        let r = self.post(&lease, name, mime, data);
        if r.is_err() {
            // The volume may have gone read-only or away: ask afresh next time.
            self.leases.lock().unwrap().clear();
        }
        r
    }

    /// Counts an upload of `n` bytes into the typical size.
    fn count_size(&self, n: u64) {
        let t = &self.typical;
        let _ = t.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
            Some(if avg == 0 { n } else { (avg * 7 + n) / 8 }.max(1))
        });
    }

    /// Writes ahead copies of small chunks a batch is about to copy: each
    /// gets a file id as `upload` would give it, and per volume server
    /// `AHEAD_DEPTH` POSTs go out at once on one connection
    /// (`Wire::send_all`; a volume server takes them at about half its CPU
    /// per upload one by one). The copies stored are kept for `take_ahead`;
    /// the ids of the rest are freed (a POST whose answer was not read may
    /// have stored its needle), and their chunks are left to `upload`, as
    /// is everything through the filer proxy or over HTTPS. Returns the
    /// items written, by index.
    pub fn write_ahead(&self, items: &[WriteAhead]) -> Vec<usize> {
        let Some(wire) = self.http.wire().filter(|_| !self.proxy) else {
            return Vec::new();
        };
        self.free_later();
        let mut by_host: HashMap<String, Vec<(usize, Lease)>> = HashMap::new();
        // Ids are taken until one cannot be (the rest wait for `upload`'s
        // retries) or one comes with a write token: such ids are assigned
        // one per call, which the workers do in parallel, not this thread.
        for (i, it) in items.iter().enumerate() {
            self.count_size(it.data.len() as u64);
            let Ok(lease) = self.lease(it.path) else {
                break;
            };
            let signed = !lease.auth.is_empty();
            by_host
                .entry(lease.url.clone())
                .or_default()
                .push((i, lease));
            if signed {
                break;
            }
        }
        let (mut written, mut unused) = (Vec::new(), Vec::new());
        let mut ahead = Vec::new();
        for (host, all) in &by_host {
            for round in all.chunks(AHEAD_DEPTH) {
                let posts: Vec<Post> = round
                    .iter()
                    .map(|(i, lease)| self.post_of(lease, items[*i].name, items[*i].mime))
                    .collect();
                let requests: Vec<Request> = posts
                    .iter()
                    .zip(round)
                    .map(|(p, (i, _))| p.request(items[*i].data))
                    .collect();
                let answers = wire
                    .send_all(host, &requests, 64 * 1024)
                    .unwrap_or_else(|e| {
                        log::debug!("writing ahead to {host}: {e}");
                        Vec::new()
                    });
                for (k, (i, lease)) in round.iter().enumerate() {
                    let stored = answers.get(k).and_then(|a| {
                        let id = (lease.file_id.clone(), items[*i].data.len() as u64);
                        self.posted(&posts[k], (a.status, &a.body), id).ok()
                    });
                    match stored {
                        Some(id) => {
                            let it = &items[*i];
                            ahead.push(((it.path.to_string(), it.source.to_string()), id));
                            written.push(*i);
                        }
                        None => unused.push(lease.file_id.clone()),
                    }
                }
            }
        }
        if !unused.is_empty() {
            // The volume may have gone read-only or away: ask afresh.
            self.leases.lock().unwrap().clear();
            self.discard(&unused);
        }
        log::debug!(
            "wrote ahead {} of {} chunks to {} volume servers",
            written.len(),
            items.len(),
            by_host.len()
        );
        self.ahead.lock().unwrap().extend(ahead);
        written
    }

    /// The copy written ahead of source chunk `source` for the file at
    /// target path `path`, taken: the caller's write names it, or frees it.
    pub fn take_ahead(&self, path: &str, source: &str) -> Option<String> {
        let key = (path.to_string(), source.to_string());
        self.ahead.lock().unwrap().remove(&key)
    }

    /// Frees the copies written ahead for `items` that no write took.
    pub fn forget_ahead(&self, items: &[(String, String)]) {
        let unused: Vec<String> = {
            let mut ahead = self.ahead.lock().unwrap();
            items.iter().filter_map(|k| ahead.remove(k)).collect()
        };
        if !unused.is_empty() {
            self.discard(&unused);
        }
    }

    /// Frees the file id of an upload given up (its needle may have been
    /// stored by an attempt whose answer was lost).
    pub fn abandon(&self, up: Upload) {
        if let Some(l) = up.lease {
            self.discard(&[l.file_id]);
        }
    }

    /// Frees chunks uploaded but left unused, best effort: a chunk that
    /// cannot be freed (a cluster that signs writes) is named in a warning
    /// and left to `weed shell volume.fsck`; one whose volume is away is
    /// tried again later (`free_later`).
    pub fn discard(&self, file_ids: &[String]) {
        // Directly, one by one; behind the filer proxy (volume servers out
        // of reach), all at once by the filer.
        let groups: Vec<&[String]> = match self.proxy {
            true => vec![file_ids],
            false => file_ids.chunks(1).collect(),
        };
        let mut left = Vec::new();
        for ids in groups.into_iter().filter(|ids| !ids.is_empty()) {
            let r = match self.proxy {
                true => self.free_through_filer(ids),
                false => self.delete(&ids[0]),
            };
            match r {
                Ok(()) => log::debug!("freed unused chunks {ids:?} on the target"),
                Err(e) if e.is_retryable() => left.extend(ids.iter().cloned()),
                Err(e) => log::warn!(
                    "chunks {ids:?} were copied to the target but are not used, and could not be \
                        freed ({e}); `weed shell volume.fsck` finds them"
                ),
            }
        }
        if !left.is_empty() {
            log::debug!(
                "{} unused chunks to free once their volume answers",
                left.len()
            );
            let mut u = self.unfreed.lock().unwrap();
            u.0.extend(left);
            u.1 = Some(Instant::now());
        }
    }

    /// Tries again to free the unused copies whose volume was away, at most
    /// every few seconds.
    pub fn free_later(&self) {
        let ids = {
            let mut u = self.unfreed.lock().unwrap();
            if u.0.is_empty() || u.1.is_some_and(|at| at.elapsed() < Duration::from_secs(3)) {
                return;
            }
            u.1 = Some(Instant::now());
            std::mem::take(&mut u.0)
        };
        self.discard(&ids);
    }

    /// Frees copies made through the filer proxy, whose volume servers are
    /// out of reach: a throwaway file at the target's root names them and
    /// is deleted with its data, so the filer frees them. It lives for the
    /// two calls, carrying the sync's signatures like its other writes.
    fn free_through_filer(&self, file_ids: &[String]) -> Result<()> {
        let now = crate::util::now_ns();
        let mut e = Entry::new();
        e.name = format!(".filer-sync-unused-{now}-{}", std::process::id());
        let a = e.attributes.mut_or_insert_default();
        (a.mtime, a.crtime, a.file_mode) = (now / 1_000_000_000, now / 1_000_000_000, 0o600);
        for (i, id) in file_ids.iter().enumerate() {
            let mut c = FileChunk::new();
            (c.file_id, c.offset, c.size) = (id.clone(), i as i64, 1);
            e.chunks.push(c);
        }
        let mut req = CreateEntryRequest::new();
        req.directory = "/".into();
        req.entry = Some(e.clone()).into();
        req.is_from_other_cluster = true;
        req.signatures = self.signatures.clone();
        self.filer.create(&req)?;
        let mut del = DeleteEntryRequest::new();
        del.directory = "/".into();
        del.name = e.name;
        del.is_delete_data = true;
        del.is_from_other_cluster = true;
        del.signatures = self.signatures.clone();
        self.filer.delete(&del)
    }

    fn delete(&self, file_id: &str) -> Result<()> {
        let locations = self.filer.lookup_volume(fid::volume_id(file_id)?)?;
        let l = locations
            .first()
            .ok_or_else(|| Error::remote("no location for its volume"))?;
        let url = self.http.url(&l.url, &format!("/{file_id}"));
        let mut resp = self
            .http
            .agent()
            .delete(&url)
            .call()
            .map_err(|e| self.http.fail(Server::Volume, &l.url, e))?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => {
                let body = resp.body_mut().read_to_string().unwrap_or_default();
                Err(self
                    .http
                    .refusal(Server::Volume, &l.url, s, &body)
                    .unwrap_or_else(|| Error::from(ureq::Error::StatusCode(s)))
                    .context(format!("DELETE {url}")))
            }
        }
    }

    /// The request that uploads a chunk under `lease`'s file id: straight
    /// to a volume server, a PUT of the bare bytes (the volume server then
    /// reads the body in large pieces, where a multipart body is scanned
    /// for its boundary 4 KiB at a time: a quarter of its CPU on 4 MiB
    /// chunks); through the filer proxy, or for data whose type is a form's
    /// (a volume server reads a bare `application/x-www-form-urlencoded`
    /// body as its form and stores an empty needle: curl's default type),
    /// the multipart POST every SeaweedFS client sends. The volume server
    /// stores the same needle either way: the name from the disposition,
    /// the MIME type from the content type.
    fn post_of(&self, lease: &Lease, name: &str, mime: &str) -> Post {
        let file_id = &lease.file_id;
        let (server, host, rest) = if self.proxy {
            let filer = self.filer.live_addr().http();
            (Server::Filer, filer, format!("/?proxyChunkId={file_id}"))
        } else {
            (Server::Volume, lease.url.clone(), format!("/{file_id}"))
        };
        let url = self.http.url(&host, &rest);
        let name = header_safe(name);
        let mime = header_mime(mime).map(str::to_string);
        let (method, frame) = match self.proxy || mime.as_deref().is_some_and(is_form) {
            true => ("POST", Frame::multipart(&name, mime.as_deref())),
            false => {
                let disposition = format!("inline; filename=\"{name}\"");
                ("PUT", Frame::Bare { disposition, mime })
            }
        };
        let bearer = (!lease.auth.is_empty()).then(|| format!("Bearer {}", lease.auth));
        Post {
            server,
            method,
            host,
            rest,
            url,
            frame,
            bearer,
        }
    }

    fn post(&self, lease: &Lease, name: &str, mime: &str, data: Body) -> Result<String> {
        let sent = (lease.file_id.clone(), data.len());
        let p = self.post_of(lease, name, mime);
        let (server, host, url) = (p.server, &p.host, &p.url);
        let (head, tail) = p.frame.around();
        let len = head.len() as u64 + data.len() + tail.len() as u64;
        // A small body goes out in one piece (one send instead of three),
        // plain HTTP by `wire`; a large one streams from the caller's
        // buffer or stream, never copied.
        let whole;
        let mut body: Box<dyn std::io::Read + '_> = match data {
            Body::Bytes(data) if len <= ONE_PIECE as u64 => {
                if let Some(wire) = self.http.wire() {
                    let r = p.request(data);
                    let a = wire
                        .call(p.method, host, &p.rest, &r.headers, &r.parts, 64 * 1024)
                        .map_err(|e| Error::from(e).context(p.what()))?;
                    return self.posted(&p, (a.status, &a.body), sent);
                }
                whole = [head, data, tail].concat();
                Box::new(&whole[..])
            }
            Body::Bytes(data) => Box::new(head.chain(data).chain(tail)),
            Body::Stream(data, n) => Box::new(head.chain(data.take(n)).chain(tail)),
        };
        let agent = self.http.agent();
        let post = match p.method {
            "PUT" => agent.put(url),
            _ => agent.post(url),
        };
        let mut post = post.header("Content-Length", len.to_string());
        for (k, v) in p.headers() {
            post = post.header(k, v);
        }
        let mut resp = post
            .send(ureq::SendBody::from_reader(&mut body))
            .map_err(|e| self.http.fail(server, host, e).context(p.what()))?;
        let status = resp.status().as_u16();
        let text = transfer::short_body(&mut resp);
        self.posted(&p, (status, text.as_bytes()), sent)
    }

    /// What the answer (`status`, its body) to upload `p` of `sent` bytes
    /// under `file_id` says: the file id stored, or why not. A stored size
    /// other than the bytes sent fails the upload: a server that took the
    /// body for something else (a form) answers 201 for an empty needle.
    fn posted(
        &self,
        p: &Post,
        (status, body): (u16, &[u8]),
        (file_id, sent): (String, u64),
    ) -> Result<String> {
        let text = String::from_utf8_lossy(body);
        if let Some(e) = self.http.refusal(p.server, &p.host, status, &text) {
            return Err(e);
        }
        if !(200..300).contains(&status) {
            return Err(
                Error::from(ureq::Error::StatusCode(status)).context(format!(
                    "{}: {}",
                    p.what(),
                    text.trim()
                )),
            );
        }
        if let Some(err) = json_error(&text) {
            return Err(Error::remote(format!("{}: {err}", p.what())));
        }
        // 204: the needle was there already, the same.
        let stored = json_size(&text);
        if status != 204 && stored != sent {
            return Err(Error::remote(format!(
                "{}: the {} stored {stored} of the {sent} bytes sent",
                p.what(),
                p.server.name()
            )));
        }
        Ok(file_id)
    }
}

/// An upload's request, but its data: where it goes and how the data is
/// framed.
struct Post {
    server: Server,
    method: &'static str,
    /// host:port, and the path and query there.
    host: String,
    rest: String,
    url: String,
    frame: Frame,
    bearer: Option<String>,
}

/// How an upload's data is framed for the server.
enum Frame {
    /// The bare bytes; the name and MIME type in the request's headers.
    Bare {
        disposition: String,
        mime: Option<String>,
    },
    /// A one-part `multipart/form-data` body: its content type, the bytes
    /// before the data and those after it.
    Multipart {
        content_type: String,
        head: Vec<u8>,
        tail: Vec<u8>,
    },
}

impl Frame {
    /// The multipart frame of data named `name` of type `mime`. The data
    /// itself is sent from the caller's buffer, never copied.
    fn multipart(name: &str, mime: Option<&str>) -> Frame {
        let boundary = "filer-sync-7d1f0c2a9b3e4d5f";
        let mime = mime.unwrap_or("application/octet-stream");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        );
        Frame::Multipart {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            head: head.into_bytes(),
            tail: format!("\r\n--{boundary}--\r\n").into_bytes(),
        }
    }

    /// The bytes sent before the data and after it.
    fn around(&self) -> (&[u8], &[u8]) {
        match self {
            Frame::Bare { .. } => (&[], &[]),
            Frame::Multipart { head, tail, .. } => (head, tail),
        }
    }
}

impl Post {
    /// `METHOD url`, for messages.
    fn what(&self) -> String {
        format!("{} {}", self.method, self.url)
    }

    /// Its headers (the URL is its idempotency key).
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut h = vec![("Idempotency-Key", self.url.as_str())];
        match &self.frame {
            Frame::Bare { disposition, mime } => {
                h.push(("Content-Disposition", disposition.as_str()));
                h.extend(mime.as_deref().map(|m| ("Content-Type", m)));
            }
            Frame::Multipart { content_type, .. } => h.push(("Content-Type", content_type)),
        }
        h.extend(self.bearer.as_deref().map(|b| ("Authorization", b)));
        h
    }

    /// The whole request for `data`, to send in one piece.
    fn request<'a>(&'a self, data: &'a [u8]) -> Request<'a> {
        let (head, tail) = self.frame.around();
        Request {
            method: self.method,
            target: &self.rest,
            headers: self.headers(),
            parts: vec![head, data, tail],
        }
    }
}

/// The bucket folder (below `buckets`) holding `dir`, or "" outside buckets.
fn bucket_of(dir: &str, buckets: &str) -> String {
    dir.strip_prefix(buckets)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split('/').next())
        .filter(|name| !name.is_empty())
        .map(|name| format!("{buckets}/{name}"))
        .unwrap_or_default()
}

/// Upload bodies up to this size are assembled in one buffer before sending.
const ONE_PIECE: usize = 64 * 1024;

/// Percent-encodes a filer path for a URL, keeping `/` and unreserved characters.
pub fn url_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                s.push(b as char)
            }
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

/// `name` fit to be quoted as a header parameter: a quote and the control
/// characters (which would end the quotes or the header, or which no
/// header may carry) are replaced. The volume server keeps the name with
/// the needle, and nothing reads it back.
fn header_safe(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// The entry's MIME type as the upload states it: none when it is empty
/// or the generic `application/octet-stream` (the volume server then
/// guesses from the name, as for every upload without one), nor when it
/// is not a plain printable header value (a CR or LF would end the header
/// and let the entry write its own).
fn header_mime(mime: &str) -> Option<&str> {
    let printable = mime.bytes().all(|b| (0x20..0x7f).contains(&b));
    (!mime.is_empty() && printable && mime != "application/octet-stream").then_some(mime)
}

/// Whether a server that reads a request's form would read a body of type
/// `mime` as one.
fn is_form(mime: &str) -> bool {
    let t = mime.split(';').next().unwrap_or("").trim();
    t.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || t.get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
}

/// The `size` field of a volume server's JSON reply to an upload: the
/// bytes it stored (before any compression of its own); Go leaves out a
/// zero.
fn json_size(text: &str) -> u64 {
    let rest = json_value(text, "size").unwrap_or("");
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().unwrap_or(0)
}

/// The `error` field of a volume server's JSON reply, if it is set.
fn json_error(text: &str) -> Option<String> {
    let rest = json_value(text, "error")?.strip_prefix('"')?;
    let msg = &rest[..rest.find('"')?];
    (!msg.is_empty()).then(|| msg.to_string())
}

/// What follows the first `"key":` in a flat JSON reply (its value, then
/// the rest); none without the key.
fn json_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let i = text.find(&format!("\"{key}\""))?;
    let rest = text[i + key.len() + 2..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_are_encoded() {
        assert_eq!(url_path("/a b/ü%#?.txt"), "/a%20b/%C3%BC%25%23%3F.txt");
        assert_eq!(url_path("/plain/x-y_z.~"), "/plain/x-y_z.~");
    }

    #[test]
    fn folders_share_file_ids_per_bucket() {
        for (dir, pool) in [
            ("/", ""),
            ("/home/chris", ""),
            ("/buckets", ""),
            ("/bucketsx/a", ""),
            ("/buckets/photos", "/buckets/photos"),
            ("/buckets/photos/2026/11", "/buckets/photos"),
        ] {
            assert_eq!(bucket_of(dir, "/buckets"), pool, "{dir}");
        }
    }

    #[test]
    fn multipart_frames_one_part() {
        let f = Frame::multipart(&header_safe("a\"b.txt"), header_mime(""));
        let Frame::Multipart { content_type, .. } = &f else {
            panic!("not multipart")
        };
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let (head, tail) = f.around();
        let text = String::from_utf8([head, b"xyz", tail].concat()).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("filename=\"a_b.txt\""));
        assert!(text.contains("Content-Type: application/octet-stream\r\n\r\nxyz\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn a_mime_type_is_stated_only_when_it_says_more_than_bytes_and_cannot_write_headers() {
        for mime in [
            "",
            "application/octet-stream",
            "text/plain\r\nX-Injected: 1",
            "text/plain\nX-Injected: 1",
            "a\u{7f}b",
            "tëxt/x",
        ] {
            assert_eq!(header_mime(mime), None, "{mime:?}");
        }
        let plain = "text/plain; charset=utf-8";
        assert_eq!(header_mime(plain), Some(plain));
        assert_eq!(
            header_safe("a\r\nX: \"1\"\u{1}\u{7f}ü.txt"),
            "a__X: _1___ü.txt"
        );
    }

    #[test]
    fn form_types_are_told_from_others_as_a_go_server_tells_them() {
        for form in [
            "application/x-www-form-urlencoded",
            " Application/X-WWW-Form-Urlencoded; charset=utf-8",
            "multipart/form-data; boundary=x",
            "Multipart/Mixed",
        ] {
            assert!(is_form(form), "{form:?}");
        }
        for other in [
            "application/x-www-form-urlencodedX",
            "text/plain",
            "application/json",
        ] {
            assert!(!is_form(other), "{other:?}");
        }
    }

    #[test]
    fn the_stored_size_is_read_from_the_reply() {
        let reply = r#"{"name":"size 7.txt","size":4096,"eTag":"aeaa42e8","mime":"text/plain"}"#;
        assert_eq!(json_size(reply), 4096);
        // Go leaves out a zero: an empty needle.
        assert_eq!(json_size(r#"{"name":"f20.txt","eTag":"00000000"}"#), 0);
        assert_eq!(json_size(r#"{"size" : 12}"#), 12);
        assert_eq!(json_size(""), 0);
    }

    #[test]
    fn json_error_is_found_only_when_set() {
        assert_eq!(json_error(r#"{"name":"x","size":3}"#), None);
        assert_eq!(json_error(r#"{"error":""}"#), None);
        assert_eq!(
            json_error(r#"{"error": "volume 3 is read only"}"#).as_deref(),
            Some("volume 3 is read only")
        );
    }
}
