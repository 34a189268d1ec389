//! The filer gRPC client: one shared grpcio environment, a channel per filer
//! with keepalive and reconnect backoff, a timeout on every unary call, and
//! typed wrappers that turn the filer's in-band `error` fields into `Error`s.
//! It never retries by itself; callers wrap calls in `retry::retry`.
//!
//! A client may name several filers of one cluster (sharing a filer store):
//! calls take turns among them, and one whose call failed as passing (down,
//! unreachable, too slow) is passed over for a while, so that the caller's
//! retry goes to another.

pub mod addr;
mod mutate;
pub mod rpc;
mod slot;
pub mod subscribe;

pub use addr::FilerAddr;
pub use subscribe::{Event, StreamItem, Subscription};

use crate::error::{Error, ErrorKind, Result};
use crate::pb::filer::*;
use grpcio::{CallOption, ChannelBuilder, Client, EnvBuilder, Environment};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// gRPC's default 4 MiB is too small for batched metadata responses.
const MAX_MESSAGE: i32 = 1 << 30;

fn environment() -> Arc<Environment> {
    static ENV: OnceLock<Arc<Environment>> = OnceLock::new();
    ENV.get_or_init(|| {
        Arc::new(
            EnvBuilder::new()
                .cq_count(2)
                .name_prefix("filer-sync-grpc")
                .build(),
        )
    })
    .clone()
}

/// How long a filer whose call failed as passing is passed over, when the
/// client has others.
const PASS_OVER: Duration = Duration::from_secs(5);

/// One filer of the cluster.
struct Endpoint {
    addr: FilerAddr,
    client: Client,
    /// Passed over until then (ms since `epoch()`; 0: never failed).
    down_until_ms: AtomicU64,
    /// Calls failed as passing since the last that succeeded.
    failed: AtomicU32,
    /// Its stream of entry creations.
    mutations: mutate::Mutations,
}

/// A creation sent on a filer's stream (`FilerClient::send_create`).
pub struct SentCreate {
    /// The filer's index in `ends`.
    at: usize,
    o_excl: bool,
    sent: mutate::Sent,
}

impl Endpoint {
    /// A call succeeded: the filer is taken in turn again.
    fn answered(&self) {
        if self.failed.load(Ordering::Relaxed) != 0 {
            self.failed.store(0, Ordering::Relaxed);
            self.down_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// A call failed as passing: passed over for `PASS_OVER`, doubled with
    /// each failure in a row up to a minute.
    fn failed(&self) -> Duration {
        let n = self.failed.fetch_add(1, Ordering::Relaxed).min(4);
        let d = (PASS_OVER * 2u32.pow(n)).min(Duration::from_secs(60));
        self.down_until_ms
            .store(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
        d
    }
}

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

#[derive(Clone)]
pub struct FilerClient {
    ends: Arc<[Endpoint]>,
    /// Whose turn is next.
    turn: Arc<AtomicUsize>,
    timeout: Duration,
    tls: Option<Arc<crate::security::Tls>>,
}

impl FilerClient {
    /// Builds a plaintext channel; nothing is sent until the first call.
    pub fn connect(addr: &FilerAddr, timeout: Duration) -> FilerClient {
        FilerClient::connect_with(addr, &crate::security::Security::default(), timeout)
    }

    /// Builds a channel with the side's TLS settings, if any.
    pub fn connect_with(
        addr: &FilerAddr,
        security: &crate::security::Security,
        timeout: Duration,
    ) -> FilerClient {
        FilerClient::connect_all(std::slice::from_ref(addr), security, timeout)
    }

    /// Builds a channel to each filer of one cluster (at least one).
    pub fn connect_all(
        addrs: &[FilerAddr],
        security: &crate::security::Security,
        timeout: Duration,
    ) -> FilerClient {
        assert!(!addrs.is_empty(), "a filer client needs a filer");
        let tls = security.tls.clone();
        let ends = addrs
            .iter()
            .map(|addr| Endpoint {
                addr: addr.clone(),
                client: Client::new(channel(addr, tls.as_deref())),
                down_until_ms: AtomicU64::new(0),
                failed: AtomicU32::new(0),
                mutations: mutate::Mutations::default(),
            })
            .collect();
        FilerClient {
            ends,
            turn: Arc::new(AtomicUsize::new(0)),
            timeout,
            tls,
        }
    }

    /// The first filer named: the one that names the cluster.
    pub fn addr(&self) -> &FilerAddr {
        &self.ends[0].addr
    }

    /// Every filer named.
    pub fn addrs(&self) -> Vec<FilerAddr> {
        self.ends.iter().map(|e| e.addr.clone()).collect()
    }

    /// The filer whose turn it is, for a call made outside this client (an
    /// HTTP transfer through a filer).
    pub fn live_addr(&self) -> &FilerAddr {
        &self.pick().addr
    }

    /// The next filer in turn that is not passed over (all passed over: the
    /// one that failed longest ago).
    fn pick(&self) -> &Endpoint {
        &self.ends[self.pick_index()]
    }

    /// `pick`, as an index into `ends`.
    fn pick_index(&self) -> usize {
        let n = self.ends.len();
        if n == 1 {
            return 0;
        }
        let now = now_ms();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let down = |i: usize| self.ends[i].down_until_ms.load(Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| down(i) <= now)
            .unwrap_or_else(|| (0..n).min_by_key(|&i| down(i)).unwrap())
    }

    fn opt(&self) -> CallOption {
        CallOption::default().timeout(self.timeout)
    }

    fn ctx(&self, e: &Endpoint, what: &str) -> String {
        format!("filer {} (gRPC {}) {what}", e.addr, e.addr.grpc())
    }

    fn wrap(&self, end: &Endpoint, what: &str, e: grpcio::Error) -> Error {
        self.judged(end, what, Error::from(e))
    }

    /// `wrap` for a failure already read as an `Error`.
    fn judged(&self, end: &Endpoint, what: &str, e: Error) -> Error {
        let hint = if e.kind() == ErrorKind::Transient && what == "GetFilerConfiguration" {
            " (is the filer running, and is this its gRPC port? give HOST:HTTPPORT or \
                HOST:HTTPPORT.GRPCPORT)"
        } else {
            ""
        };
        if e.kind() == ErrorKind::Transient && self.ends.len() > 1 {
            let d = end.failed();
            log::debug!("filer {} is passed over for {d:?}: {e}", end.addr);
        } else {
            end.answered();
        }
        Error::new(e.kind(), format!("{}: {e}{hint}", self.ctx(end, what)))
    }

    pub fn configuration(&self) -> Result<GetFilerConfigurationResponse> {
        self.configuration_of(self.pick())
    }

    /// What each filer named says of itself, in the order named.
    pub fn configurations(&self) -> Vec<(&FilerAddr, Result<GetFilerConfigurationResponse>)> {
        self.ends
            .iter()
            .map(|e| (&e.addr, self.configuration_of(e)))
            .collect()
    }

    fn configuration_of(&self, end: &Endpoint) -> Result<GetFilerConfigurationResponse> {
        end.client
            .unary_call(
                &rpc::GET_FILER_CONFIGURATION,
                &GetFilerConfigurationRequest::new(),
                self.opt(),
            )
            .map_err(|e| self.wrap(end, "GetFilerConfiguration", e))
            .inspect(|_| end.answered())
    }

    /// The filer's clock (ns since the epoch), so that "now" means the
    /// source's now even when the clusters' and this host's clocks differ.
    pub fn now_ns(&self) -> Result<i64> {
        let end = self.pick();
        end.client
            .unary_call(&rpc::PING, &PingRequest::new(), self.opt())
            .map(|r| r.start_time_ns)
            .map_err(|e| self.wrap(end, "Ping", e))
            .inspect(|_| end.answered())
    }

    /// Looks up one entry; `Ok(None)` when the filer says it does not exist.
    pub fn lookup(&self, directory: &str, name: &str) -> Result<Option<Entry>> {
        let end = self.pick();
        let mut req = LookupDirectoryEntryRequest::new();
        req.directory = directory.to_string();
        req.name = name.to_string();
        match end
            .client
            .unary_call(&rpc::LOOKUP_DIRECTORY_ENTRY, &req, self.opt())
        {
            Ok(mut r) => {
                end.answered();
                Ok(r.entry.take())
            }
            Err(e) => {
                let e = self.wrap(end, "LookupDirectoryEntry", e);
                if e.kind() == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Lists one directory page by page; `f` sees every entry in name order.
    pub fn list(&self, directory: &str, mut f: impl FnMut(Entry) -> Result<()>) -> Result<()> {
        paged(
            |start, n| self.list_after(directory, start, n),
            |e| f(e).map(|()| true),
        )
    }

    /// Lists one directory in a single request when it holds at most `most`
    /// entries; `Ok(None)` when it holds more.
    pub fn list_at_most(&self, directory: &str, most: u32) -> Result<Option<Vec<Entry>>> {
        let page = self.list_after(directory, "", most + 1)?;
        Ok((page.len() <= most as usize).then_some(page))
    }

    /// The first entry of `directory` in name order (`None`: it is empty
    /// or missing).
    pub fn first(&self, directory: &str) -> Result<Option<Entry>> {
        match self.list_after(directory, "", 1) {
            Ok(page) => Ok(page.into_iter().next()),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` entries of `directory` after the name `start` (from
    /// the first when empty), in the store's order.
    pub fn list_after(&self, directory: &str, start: &str, limit: u32) -> Result<Vec<Entry>> {
        let end = self.pick();
        let mut req = ListEntriesRequest::new();
        req.directory = directory.to_string();
        req.startFromFileName = start.to_string();
        req.inclusiveStartFrom = false;
        req.limit = limit;
        let stream = end
            .client
            .server_streaming(&rpc::LIST_ENTRIES, &req, self.opt())
            .map_err(|e| self.wrap(end, "ListEntries", e))
            .inspect(|_| end.answered())?;
        // The filer sends one message per entry: gathered on gRPC's own
        // threads, the page wakes this one once, not once an entry.
        let page = Arc::new(slot::Slot::default());
        let filled = page.clone();
        end.client.spawn(async move {
            use futures::StreamExt;
            let mut stream = stream;
            let mut out = Vec::new();
            let got = loop {
                match stream.next().await {
                    Some(Ok(mut resp)) => out.extend(resp.entry.take()),
                    Some(Err(e)) => break Err(e),
                    None => break Ok(out),
                }
            };
            filled.fill(got);
        });
        // The call's deadline ends the stream; the wait allows beyond it.
        page.wait(self.timeout + Duration::from_secs(10))
            .unwrap_or(Err(grpcio::Error::RemoteStopped))
            .map_err(|e| self.wrap(end, "ListEntries", e))
            .inspect(|_| end.answered())
    }

    /// Creates an entry: on the filer's mutation stream, or by a unary
    /// call where the filer has none.
    pub fn create(&self, req: &CreateEntryRequest) -> Result<()> {
        let end = self.pick();
        let r = self.create_on(end, req)?;
        self.created(end, (&req.directory, &req.entry.name, req.o_excl), r)
    }

    /// Sends a creation on a filer's mutation stream without waiting for
    /// its answer (`finish_create` takes it); `Err(req)` when the filer
    /// picked has no such stream (`create` asks it by a unary call).
    pub fn send_create(
        &self,
        req: CreateEntryRequest,
    ) -> std::result::Result<Result<SentCreate>, CreateEntryRequest> {
        let at = self.pick_index();
        let end = &self.ends[at];
        if end.mutations.unsupported() {
            return Err(req);
        }
        let o_excl = req.o_excl;
        Ok(match end.mutations.send(&end.client, req) {
            Ok(sent) => Ok(SentCreate { at, o_excl, sent }),
            Err(lost) => Err(self.lost(end, lost)),
        })
    }

    /// The outcome of a creation `send_create` sent, of `name` in `dir`, as
    /// `create` would give it.
    pub fn finish_create(&self, sent: SentCreate, dir: &str, name: &str) -> Result<()> {
        let end = &self.ends[sent.at];
        match sent.sent.wait(&end.mutations, self.timeout) {
            Ok(r) => {
                let r = self.answered(end, r);
                self.created(end, (dir, name, sent.o_excl), r)
            }
            Err(lost) => Err(self.lost(end, lost)),
        }
    }

    /// A creation's answer as a result: the filer's refusal as an error
    /// of its kind (`Exists` for an exclusive one the path holds already).
    fn created(
        &self,
        end: &Endpoint,
        (dir, name, o_excl): (&str, &str, bool),
        r: CreateEntryResponse,
    ) -> Result<()> {
        let code = r.error_code.enum_value_or_default();
        if !r.error.is_empty() || code != FilerError::OK {
            let kind = match code {
                FilerError::ENTRY_ALREADY_EXISTS
                | FilerError::EXISTING_IS_FILE
                | FilerError::EXISTING_IS_DIRECTORY
                    if o_excl =>
                {
                    ErrorKind::Exists
                }
                // The filer could not reach what it needed (its store, a
                // peer filer, a master): passing, and another filer of the
                // cluster may do.
                _ if crate::error::is_transient_text(&r.error) => ErrorKind::Transient,
                _ => ErrorKind::Remote,
            };
            return Err(Error::new(
                kind,
                format!(
                    "{} {dir}/{name}: {} ({code:?})",
                    self.ctx(end, "CreateEntry"),
                    r.error
                ),
            ));
        }
        Ok(())
    }

    /// A stream's answer to a creation, as a unary call's would be.
    fn answered(&self, end: &Endpoint, mut r: StreamMutateEntryResponse) -> CreateEntryResponse {
        end.answered();
        // A failure that a unary call ends with as its status comes
        // in the answer's `error` here, as its in-band refusals do.
        let mut answer = r.take_create_response();
        if answer.error.is_empty() {
            answer.error = r.error;
        }
        answer
    }

    /// A creation the stream did not answer, as a failed call.
    fn lost(&self, end: &Endpoint, lost: mutate::Lost) -> Error {
        match lost {
            mutate::Lost::Failed(e) => self.judged(end, "CreateEntry", e),
            mutate::Lost::Unsupported => self.judged(
                end,
                "CreateEntry",
                Error::transient("the filer has no StreamMutateEntry: asked by unary calls now"),
            ),
        }
    }

    /// One creation's answer, the same either way: a failure of the call
    /// as a failed unary call would be, the filer's refusal in the answer.
    fn create_on(&self, end: &Endpoint, req: &CreateEntryRequest) -> Result<CreateEntryResponse> {
        use mutate::Lost;
        let unary = || {
            end.client
                .unary_call(&rpc::CREATE_ENTRY, req, self.opt())
                .map_err(|e| self.wrap(end, "CreateEntry", e))
                .inspect(|_| end.answered())
        };
        if end.mutations.unsupported() {
            return unary();
        }
        match end.mutations.create(&end.client, req, self.timeout) {
            Ok(r) => Ok(self.answered(end, r)),
            Err(Lost::Unsupported) => {
                log::debug!(
                    "filer {} has no StreamMutateEntry: entries are created by unary calls",
                    end.addr
                );
                unary()
            }
            Err(Lost::Failed(e)) => Err(self.judged(end, "CreateEntry", e)),
        }
    }

    pub fn update(&self, req: &UpdateEntryRequest) -> Result<()> {
        let end = self.pick();
        end.client
            .unary_call(&rpc::UPDATE_ENTRY, req, self.opt())
            .map_err(|e| self.wrap(end, "UpdateEntry", e))
            .inspect(|_| end.answered())
            .map(|_| ())
    }

    pub fn delete(&self, req: &DeleteEntryRequest) -> Result<()> {
        let end = self.pick();
        let r = end
            .client
            .unary_call(&rpc::DELETE_ENTRY, req, self.opt())
            .map_err(|e| self.wrap(end, "DeleteEntry", e))
            .inspect(|_| end.answered())?;
        if !r.error.is_empty() && !r.error.contains("not found") {
            return Err(Error::remote(format!(
                "{} {}/{}: {}",
                self.ctx(end, "DeleteEntry"),
                req.directory,
                req.name,
                r.error
            )));
        }
        Ok(())
    }

    pub fn rename(&self, req: &AtomicRenameEntryRequest) -> Result<()> {
        let end = self.pick();
        end.client
            .unary_call(&rpc::ATOMIC_RENAME_ENTRY, req, self.opt())
            .map_err(|e| self.wrap(end, "AtomicRenameEntry", e))
            .inspect(|_| end.answered())
            .map(|_| ())
    }

    pub fn assign(&self, req: &AssignVolumeRequest) -> Result<AssignVolumeResponse> {
        let end = self.pick();
        let r = end
            .client
            .unary_call(&rpc::ASSIGN_VOLUME, req, self.opt())
            .map_err(|e| self.wrap(end, "AssignVolume", e))
            .inspect(|_| end.answered())?;
        if !r.error.is_empty() {
            // The master answers "no free volumes" while it grows new ones: passing.
            return Err(Error::transient(format!(
                "{}: {}",
                self.ctx(end, "AssignVolume"),
                r.error
            )));
        }
        Ok(r)
    }

    pub fn lookup_volume(&self, vid: &str) -> Result<Vec<Location>> {
        let end = self.pick();
        let mut req = LookupVolumeRequest::new();
        req.volume_ids.push(vid.to_string());
        // A volume the master cannot place right now (its server is down or
        // restarting) comes back as an error: passing, as far as anyone can
        // tell from here, so it is retried rather than ledgered.
        let mut r = end
            .client
            .unary_call(&rpc::LOOKUP_VOLUME, &req, self.opt())
            .map_err(|e| {
                let e = self.wrap(end, "LookupVolume", e);
                Error::transient(e.to_string())
            })?;
        end.answered();
        let locs = r
            .locations_map
            .remove(vid)
            .map(|l| l.locations)
            .unwrap_or_default();
        if locs.is_empty() {
            return Err(Error::transient(format!(
                "{}: volume {vid} has no location (is its volume server down?)",
                self.ctx(end, "LookupVolume")
            )));
        }
        Ok(locs)
    }

    /// The address (host:port) of one volume server of the cluster, if the
    /// filer knows one: the first volume id that has a location, asked one
    /// by one (a master hands ids out from 1 up; the filer fails a lookup
    /// that holds an unknown id, whatever else it found). None for a
    /// cluster without volumes yet.
    pub fn some_volume_server(&self) -> Option<String> {
        (1..=16u32)
            .filter_map(|vid| self.lookup_volume(&vid.to_string()).ok())
            .find_map(|locs| locs.into_iter().map(|l| l.url).find(|u| !u.is_empty()))
    }

    pub fn kv_get(&self, key: &[u8]) -> Result<Vec<u8>> {
        let end = self.pick();
        let mut req = KvGetRequest::new();
        req.key = key.to_vec();
        let r = end
            .client
            .unary_call(&rpc::KV_GET, &req, self.opt())
            .map_err(|e| self.wrap(end, "KvGet", e))
            .inspect(|_| end.answered())?;
        if !r.error.is_empty() {
            return Err(Error::remote(format!(
                "{}: {}",
                self.ctx(end, "KvGet"),
                r.error
            )));
        }
        Ok(r.value)
    }

    pub fn kv_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let end = self.pick();
        let mut req = KvPutRequest::new();
        req.key = key.to_vec();
        req.value = value.to_vec();
        let r = end
            .client
            .unary_call(&rpc::KV_PUT, &req, self.opt())
            .map_err(|e| self.wrap(end, "KvPut", e))
            .inspect(|_| end.answered())?;
        if !r.error.is_empty() {
            return Err(Error::remote(format!(
                "{}: {}",
                self.ctx(end, "KvPut"),
                r.error
            )));
        }
        Ok(())
    }

    /// One `DistributedLock` call (take or renew), given up after `deadline`.
    /// The filer forwards it to the filer that owns the name.
    pub fn lock(&self, req: &LockRequest, deadline: Duration) -> Result<LockResponse> {
        let end = self.pick();
        end.client
            .unary_call(
                &rpc::DISTRIBUTED_LOCK,
                req,
                CallOption::default().timeout(deadline),
            )
            .map_err(|e| self.wrap(end, "DistributedLock", e))
            .inspect(|_| end.answered())
    }

    pub fn unlock(&self, req: &UnlockRequest) -> Result<UnlockResponse> {
        let end = self.pick();
        end.client
            .unary_call(&rpc::DISTRIBUTED_UNLOCK, req, self.opt())
            .map_err(|e| self.wrap(end, "DistributedUnlock", e))
            .inspect(|_| end.answered())
    }

    /// Who holds the lock `name`, as the lock filer last heard (`None`:
    /// nobody; it may name a holder whose hold ran out less than a minute
    /// ago, before the filer swept it). For display only.
    pub fn lock_owner(&self, name: &str) -> Result<Option<String>> {
        let end = self.pick();
        let mut req = FindLockOwnerRequest::new();
        req.name = name.to_string();
        match end
            .client
            .unary_call(&rpc::FIND_LOCK_OWNER, &req, self.opt())
            .map_err(|e| self.wrap(end, "FindLockOwner", e))
        {
            Ok(r) => Ok(Some(r.owner).filter(|o| !o.is_empty())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens a metadata stream on a channel of its own, as the reference does,
    /// so that a long stream never queues behind unary calls.
    /// Subscribes through the next filer in turn. Its health is judged by
    /// the stream, not by the call's setup (which fails only later, on the
    /// first read): a stream that delivers marks its filer as answering, one
    /// lost marks it passed over, so that the next subscription goes to
    /// another filer of the cluster while this one is away.
    pub fn subscribe(&self, req: &SubscribeMetadataRequest) -> Result<Subscription> {
        let at = self.pick_index();
        let end = &self.ends[at];
        let client = Client::new(channel(&end.addr, self.tls.as_deref()));
        let stream = client
            .server_streaming(&rpc::SUBSCRIBE_METADATA, req, CallOption::default())
            .map_err(|e| self.wrap(end, "SubscribeMetadata", e))?;
        Ok(Subscription::new(
            client,
            stream,
            self.ctx(end, "SubscribeMetadata"),
            (self.ends.clone(), at),
        ))
    }
}

/// Lists a directory page by page: `page(start, n)` gives up to `n`
/// entries after the name `start` (from the first when empty), and `f`
/// sees each in turn until it answers false. A short page is the last.
pub fn paged(
    mut page: impl FnMut(&str, u32) -> Result<Vec<Entry>>,
    mut f: impl FnMut(Entry) -> Result<bool>,
) -> Result<()> {
    const PAGE: u32 = 1024;
    let mut start = String::new();
    loop {
        let entries = page(&start, PAGE)?;
        let n = entries.len();
        for entry in entries {
            start = entry.name.clone();
            if !f(entry)? {
                return Ok(());
            }
        }
        if n < PAGE as usize {
            return Ok(());
        }
    }
}

/// A gRPC stream's receive window, bytes.
const WINDOW: i32 = 1 << 20;

fn channel(addr: &FilerAddr, tls: Option<&crate::security::Tls>) -> grpcio::Channel {
    let b = ChannelBuilder::new(environment())
        .max_receive_message_len(MAX_MESSAGE)
        .max_send_message_len(MAX_MESSAGE)
        .keepalive_time(Duration::from_secs(30))
        .keepalive_timeout(Duration::from_secs(20))
        .keepalive_permit_without_calls(true)
        .initial_reconnect_backoff(Duration::from_millis(200))
        .max_reconnect_backoff(Duration::from_secs(5))
        // What a stream may have in flight towards this process: a fixed
        // HTTP/2 window. With BDP probing, gRPC widened it while a long
        // log was replayed, buffering megabytes of events ahead of the
        // reader (peak RSS grew with the log's length); 1 MiB a round trip
        // is still some 3,000 events per 1 ms on a LAN, 10 MB/s at 100 ms.
        .http2_bdp_probe(false)
        .stream_initial_window_size(WINDOW);
    match tls {
        Some(t) => b.set_credentials(t.credentials()).connect(&addr.grpc()),
        None => b.connect(&addr.grpc()),
    }
}

/// Fails (paused) when `side`'s filer `c` no longer has the filer store
/// signature `sig` it had: a filer that came back on an empty or another
/// store must never be mirrored (one way, its emptiness would delete the
/// target). Waits for a filer that is away.
pub fn same_source(
    side: char,
    c: &FilerClient,
    sig: i32,
    cancel: &crate::retry::Cancel,
) -> Result<()> {
    use crate::retry::{retry, Policy};
    let now = retry("GetFilerConfiguration", Policy::FOREVER, cancel, || {
        c.configuration()
    })?;
    if now.signature == sig {
        return Ok(());
    }
    Err(crate::error::Error::new(
        crate::error::ErrorKind::Paused,
        format!(
            "{side}'s filer {} now has filer store signature {}, not {sig}: its store was \
             replaced or reset (a lost disk, another filer.toml, a new volume), so what it holds \
             now is not what was replicated. Nothing more is read from it or written for it. If \
             the old store comes back, restart the sync; to accept the new store as the source, \
             run `filer-sync checkpoint reset` for the pair (the next run then walks both \
             folders, and one way a walk that would delete most of the target pauses)",
            c.addr(),
            now.signature
        ),
    ))
}
