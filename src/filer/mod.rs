//! The filer gRPC client: one shared grpcio environment, a channel per filer
//! with keepalive and reconnect backoff, a timeout on every unary call, and
//! typed wrappers that turn the filer's in-band `error` fields into `Error`s.
//! It never retries by itself; callers wrap calls in `retry::retry`.

pub mod addr;
mod rpc;
pub mod subscribe;

pub use addr::FilerAddr;
pub use subscribe::{Event, StreamItem, Subscription};

use crate::error::{Error, ErrorKind, Result};
use crate::pb::filer::*;
use grpcio::{CallOption, ChannelBuilder, Client, EnvBuilder, Environment};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

#[derive(Clone)]
pub struct FilerClient {
    addr: FilerAddr,
    client: Client,
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
        let tls = security.tls.clone();
        FilerClient {
            addr: addr.clone(),
            client: Client::new(channel(addr, tls.as_deref())),
            timeout,
            tls,
        }
    }

    pub fn addr(&self) -> &FilerAddr {
        &self.addr
    }

    fn opt(&self) -> CallOption {
        CallOption::default().timeout(self.timeout)
    }

    fn ctx(&self, what: &str) -> String {
        format!("filer {} (gRPC {}) {what}", self.addr, self.addr.grpc())
    }

    fn wrap(&self, what: &str, e: grpcio::Error) -> Error {
        let e = Error::from(e);
        let hint = if e.kind() == ErrorKind::Transient && what == "GetFilerConfiguration" {
            " (is the filer running, and is this its gRPC port? give HOST:HTTPPORT or \
                HOST:HTTPPORT.GRPCPORT)"
        } else {
            ""
        };
        Error::new(e.kind(), format!("{}: {e}{hint}", self.ctx(what)))
    }

    pub fn configuration(&self) -> Result<GetFilerConfigurationResponse> {
        self.client
            .unary_call(
                &rpc::GET_FILER_CONFIGURATION,
                &GetFilerConfigurationRequest::new(),
                self.opt(),
            )
            .map_err(|e| self.wrap("GetFilerConfiguration", e))
    }

    /// The filer's clock (ns since the epoch), so that "now" means the
    /// source's now even when the clusters' and this host's clocks differ.
    pub fn now_ns(&self) -> Result<i64> {
        self.client
            .unary_call(&rpc::PING, &PingRequest::new(), self.opt())
            .map(|r| r.start_time_ns)
            .map_err(|e| self.wrap("Ping", e))
    }

    /// Looks up one entry; `Ok(None)` when the filer says it does not exist.
    pub fn lookup(&self, directory: &str, name: &str) -> Result<Option<Entry>> {
        let mut req = LookupDirectoryEntryRequest::new();
        req.directory = directory.to_string();
        req.name = name.to_string();
        match self
            .client
            .unary_call(&rpc::LOOKUP_DIRECTORY_ENTRY, &req, self.opt())
        {
            Ok(mut r) => Ok(r.entry.take()),
            Err(e) => {
                let e = self.wrap("LookupDirectoryEntry", e);
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
        const PAGE: u32 = 1024;
        let mut start = String::new();
        loop {
            let page = self.list_page(directory, &start, PAGE)?;
            let n = page.len();
            for entry in page {
                start = entry.name.clone();
                f(entry)?;
            }
            if n < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Lists one directory in a single request when it holds at most `most`
    /// entries; `Ok(None)` when it holds more.
    pub fn list_at_most(&self, directory: &str, most: u32) -> Result<Option<Vec<Entry>>> {
        let page = self.list_page(directory, "", most + 1)?;
        Ok((page.len() <= most as usize).then_some(page))
    }

    /// The first entry of `directory` in name order (`None`: it is empty
    /// or missing).
    pub fn first(&self, directory: &str) -> Result<Option<Entry>> {
        match self.list_page(directory, "", 1) {
            Ok(page) => Ok(page.into_iter().next()),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` entries of `directory` after the name `start`.
    fn list_page(&self, directory: &str, start: &str, limit: u32) -> Result<Vec<Entry>> {
        let mut req = ListEntriesRequest::new();
        req.directory = directory.to_string();
        req.startFromFileName = start.to_string();
        req.inclusiveStartFrom = false;
        req.limit = limit;
        let stream = self
            .client
            .server_streaming(&rpc::LIST_ENTRIES, &req, self.opt())
            .map_err(|e| self.wrap("ListEntries", e))?;
        let mut out = Vec::new();
        for item in futures::executor::block_on_stream(stream) {
            let mut resp = item.map_err(|e| self.wrap("ListEntries", e))?;
            out.extend(resp.entry.take());
        }
        Ok(out)
    }

    pub fn create(&self, req: &CreateEntryRequest) -> Result<()> {
        let r = self
            .client
            .unary_call(&rpc::CREATE_ENTRY, req, self.opt())
            .map_err(|e| self.wrap("CreateEntry", e))?;
        let code = r.error_code.enum_value_or_default();
        if !r.error.is_empty() || code != FilerError::OK {
            let kind = match code {
                FilerError::ENTRY_ALREADY_EXISTS
                | FilerError::EXISTING_IS_FILE
                | FilerError::EXISTING_IS_DIRECTORY
                    if req.o_excl =>
                {
                    ErrorKind::Exists
                }
                _ => ErrorKind::Remote,
            };
            return Err(Error::new(
                kind,
                format!(
                    "{} {}/{}: {} ({code:?})",
                    self.ctx("CreateEntry"),
                    req.directory,
                    req.entry.name,
                    r.error
                ),
            ));
        }
        Ok(())
    }

    pub fn update(&self, req: &UpdateEntryRequest) -> Result<()> {
        self.client
            .unary_call(&rpc::UPDATE_ENTRY, req, self.opt())
            .map_err(|e| self.wrap("UpdateEntry", e))
            .map(|_| ())
    }

    pub fn delete(&self, req: &DeleteEntryRequest) -> Result<()> {
        let r = self
            .client
            .unary_call(&rpc::DELETE_ENTRY, req, self.opt())
            .map_err(|e| self.wrap("DeleteEntry", e))?;
        if !r.error.is_empty() && !r.error.contains("not found") {
            return Err(Error::remote(format!(
                "{} {}/{}: {}",
                self.ctx("DeleteEntry"),
                req.directory,
                req.name,
                r.error
            )));
        }
        Ok(())
    }

    pub fn rename(&self, req: &AtomicRenameEntryRequest) -> Result<()> {
        self.client
            .unary_call(&rpc::ATOMIC_RENAME_ENTRY, req, self.opt())
            .map_err(|e| self.wrap("AtomicRenameEntry", e))
            .map(|_| ())
    }

    pub fn assign(&self, req: &AssignVolumeRequest) -> Result<AssignVolumeResponse> {
        let r = self
            .client
            .unary_call(&rpc::ASSIGN_VOLUME, req, self.opt())
            .map_err(|e| self.wrap("AssignVolume", e))?;
        if !r.error.is_empty() {
            // The master answers "no free volumes" while it grows new ones: passing.
            return Err(Error::transient(format!(
                "{}: {}",
                self.ctx("AssignVolume"),
                r.error
            )));
        }
        Ok(r)
    }

    pub fn lookup_volume(&self, vid: &str) -> Result<Vec<Location>> {
        let mut req = LookupVolumeRequest::new();
        req.volume_ids.push(vid.to_string());
        // A volume the master cannot place right now (its server is down or
        // restarting) comes back as an error: passing, as far as anyone can
        // tell from here, so it is retried rather than ledgered.
        let mut r = self
            .client
            .unary_call(&rpc::LOOKUP_VOLUME, &req, self.opt())
            .map_err(|e| {
                let e = self.wrap("LookupVolume", e);
                Error::transient(e.to_string())
            })?;
        let locs = r
            .locations_map
            .remove(vid)
            .map(|l| l.locations)
            .unwrap_or_default();
        if locs.is_empty() {
            return Err(Error::transient(format!(
                "{}: volume {vid} has no location (is its volume server down?)",
                self.ctx("LookupVolume")
            )));
        }
        Ok(locs)
    }

    pub fn kv_get(&self, key: &[u8]) -> Result<Vec<u8>> {
        let mut req = KvGetRequest::new();
        req.key = key.to_vec();
        let r = self
            .client
            .unary_call(&rpc::KV_GET, &req, self.opt())
            .map_err(|e| self.wrap("KvGet", e))?;
        if !r.error.is_empty() {
            return Err(Error::remote(format!("{}: {}", self.ctx("KvGet"), r.error)));
        }
        Ok(r.value)
    }

    pub fn kv_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut req = KvPutRequest::new();
        req.key = key.to_vec();
        req.value = value.to_vec();
        let r = self
            .client
            .unary_call(&rpc::KV_PUT, &req, self.opt())
            .map_err(|e| self.wrap("KvPut", e))?;
        if !r.error.is_empty() {
            return Err(Error::remote(format!("{}: {}", self.ctx("KvPut"), r.error)));
        }
        Ok(())
    }

    /// One `DistributedLock` call (take or renew), given up after `deadline`.
    /// The filer forwards it to the filer that owns the name.
    pub fn lock(&self, req: &LockRequest, deadline: Duration) -> Result<LockResponse> {
        self.client
            .unary_call(
                &rpc::DISTRIBUTED_LOCK,
                req,
                CallOption::default().timeout(deadline),
            )
            .map_err(|e| self.wrap("DistributedLock", e))
    }

    pub fn unlock(&self, req: &UnlockRequest) -> Result<UnlockResponse> {
        self.client
            .unary_call(&rpc::DISTRIBUTED_UNLOCK, req, self.opt())
            .map_err(|e| self.wrap("DistributedUnlock", e))
    }

    /// Opens a metadata stream on a channel of its own, as the reference does,
    /// so that a long stream never queues behind unary calls.
    pub fn subscribe(&self, req: &SubscribeMetadataRequest) -> Result<Subscription> {
        let client = Client::new(channel(&self.addr, self.tls.as_deref()));
        let stream = client
            .server_streaming(&rpc::SUBSCRIBE_METADATA, req, CallOption::default())
            .map_err(|e| self.wrap("SubscribeMetadata", e))?;
        Ok(Subscription::new(
            client,
            stream,
            self.ctx("SubscribeMetadata"),
        ))
    }
}

fn channel(addr: &FilerAddr, tls: Option<&crate::security::Tls>) -> grpcio::Channel {
    let b = ChannelBuilder::new(environment())
        .max_receive_message_len(MAX_MESSAGE)
        .max_send_message_len(MAX_MESSAGE)
        .keepalive_time(Duration::from_secs(30))
        .keepalive_timeout(Duration::from_secs(20))
        .keepalive_permit_without_calls(true)
        .initial_reconnect_backoff(Duration::from_millis(200))
        .max_reconnect_backoff(Duration::from_secs(5));
    match tls {
        Some(t) => b.set_credentials(t.credentials()).connect(&addr.grpc()),
        None => b.connect(&addr.grpc()),
    }
}
