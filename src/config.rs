//! The validated configuration of every subcommand: plain values that the
//! commands and the engine read and that `cli` (the only module that knows
//! argh) produces. It sits below both, so that neither imports the other.

use crate::filer::FilerAddr;
use crate::security::Security;
use crate::volume::Placement;
use std::path::PathBuf;

/// One side as the user described it.
#[derive(Debug, Clone)]
pub struct Side {
    pub label: char,
    /// The first filer named: it names the cluster (state file, messages).
    pub addr: FilerAddr,
    /// The cluster's other filers named, if any.
    pub more: Vec<FilerAddr>,
    pub path: String,
    pub excludes: Vec<String>,
    pub proxy: bool,
    pub debug: bool,
    pub placement: Placement,
    pub deletes: bool,
    pub from_ts_ms: i64,
    pub security: Security,
}

impl Side {
    /// Every filer named for this side, the first first.
    pub fn filers(&self) -> Vec<FilerAddr> {
        std::iter::once(self.addr.clone())
            .chain(self.more.iter().cloned())
            .collect()
    }

    /// The filers as the user gave them (comma-separated).
    pub fn named(&self) -> String {
        let all: Vec<String> = self.filers().iter().map(|a| a.to_string()).collect();
        all.join(",")
    }
}

/// The validated `sync` configuration.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub a: Side,
    pub b: Side,
    pub active_passive: bool,
    pub origin_only: bool,
    pub workers: usize,
    pub chunk_workers: usize,
    pub batch_size: usize,
    pub batch_window_ms: u64,
    /// How a direction without a checkpoint starts.
    pub bootstrap: Bootstrap,
    pub state: PathBuf,
    pub once: bool,
    pub dry_run: bool,
    /// The dry run's plan as JSON lines.
    pub json: bool,
    pub max_delete: Option<u64>,
    /// Bytes per second.
    pub bwlimit: Option<u64>,
    pub timeout_secs: u64,
    /// A source stream silent this long is re-subscribed.
    pub stall_secs: u64,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    pub progress_secs: Option<u64>,
    /// Periodic rescans (one way, following).
    pub rescan: Option<Rescan>,
    /// `--ha`: one active instance among several.
    pub ha: Option<Ha>,
    /// `--ha --shards N`: the link's work split into N shards that the
    /// instances share (`crate::shard`).
    pub shards: Option<u32>,
    /// The shard one term runs (set per term by `commands::shards`, never
    /// from flags): its directions, walks and checkpoints cover that shard.
    pub shard: Option<crate::shard::Shard>,
}

/// Leader election among instances of one pair (`crate::ha`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha {
    /// The lock's name; None: derived from the pair and mode.
    pub name: Option<String>,
    pub ttl: std::time::Duration,
}

/// A walk of both folders every so often that repairs what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescan {
    pub every_secs: u64,
    /// Entries listed per second, both sides together.
    pub rate: u64,
}

impl SyncConfig {
    /// The two folders this sync joins, as verify compares them.
    pub fn pair(&self) -> Pair {
        Pair {
            a: self.a.clone(),
            b: self.b.clone(),
            timeout_secs: self.timeout_secs,
            workers: self.workers,
            chunk_workers: self.chunk_workers,
        }
    }
}

/// How a direction that has no checkpoint yet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Copy the trees by a walk, then follow the log from the source's
    /// clock at the walk's start: what the log no longer holds is copied too.
    Walk,
    /// Replay the source's whole metadata log (what it still holds).
    Log,
}

/// Two filers and a folder on each: what `verify` compares (and repairs) and
/// what `migrate` copies.
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: Side,
    pub b: Side,
    /// Seconds before a gRPC call is given up.
    pub timeout_secs: u64,
    /// Directories listed in parallel.
    pub workers: usize,
    /// Chunk transfers in parallel while repairing.
    pub chunk_workers: usize,
}

/// What `verify` may do besides reporting.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    pub checksum: bool,
    pub json: bool,
    pub repair: bool,
    /// With `repair`: deletes on B allowed, in entries (see `verify::deletes`).
    pub max_delete: Option<u64>,
}

/// What `checkpoint` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointAction {
    Show,
    Set,
    Reset,
    Import,
    Export,
}

/// The validated `checkpoint` configuration.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    pub action: CheckpointAction,
    pub a: Option<Vec<FilerAddr>>,
    pub b: Option<Vec<FilerAddr>>,
    pub a_path: String,
    pub b_path: String,
    pub from: char,
    pub ts_ms: i64,
    pub state: PathBuf,
    pub a_security: Security,
    pub b_security: Security,
    /// Seconds before a gRPC call is given up.
    pub timeout_secs: u64,
}
