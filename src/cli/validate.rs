//! Validation of the flags `mod.rs` defines: each subcommand's arguments
//! turned into a plain config value (`validate`), with every refusal a usage
//! error that names its flag, and the default state file's path. Shared
//! checks live once here (`SyncArgs::pair` for every command on a pair of
//! folders). Never touches the network.

use super::{CheckpointArgs, MigrateArgs, StatusArgs, SyncArgs, VerifyArgs};
use crate::config::{
    Bootstrap, CheckpointAction, CheckpointConfig, Ha, Pair, Rescan, Side, SyncConfig,
    VerifyOptions,
};
use crate::error::{Error, Result};
use crate::filer::FilerAddr;
use crate::paths::{is_under, normalize_folder};
use crate::volume::Placement;
use argh::FromArgs;
use std::path::PathBuf;

impl SyncArgs {
    /// The flags of `sync` for A's folder onto B's, one way, everything else
    /// at argh's defaults (parsed, so that the defaults have one home), for
    /// the subcommands that reuse its validation.
    fn one_way(a: &str, b: &str, a_path: &str, b_path: &str) -> Result<SyncArgs> {
        let flags = [
            "-a",
            a,
            "-b",
            b,
            "--a-path",
            a_path,
            "--b-path",
            b_path,
            "--active-passive",
            "--once",
        ];
        SyncArgs::from_args(&["sync"], &flags)
            .map_err(|e| Error::usage(e.output.trim_end().to_string()))
    }
}

impl VerifyArgs {
    pub fn validate(&self) -> Result<(Pair, VerifyOptions)> {
        let mut s = SyncArgs::one_way(&self.a, &self.b, &self.a_path, &self.b_path)?;
        s.a_filer_proxy = self.a_filer_proxy;
        s.b_filer_proxy = self.b_filer_proxy;
        s.a_security = self.a_security.clone();
        s.b_security = self.b_security.clone();
        s.timeout_secs = self.timeout_secs;
        s.workers = self.workers;
        let opts = VerifyOptions {
            checksum: self.checksum,
            json: self.json,
            repair: self.repair,
            max_delete: self.max_delete,
        };
        if opts.max_delete.is_some() && !opts.repair {
            return Err(Error::usage(
                "--max-delete bounds what --repair deletes; without --repair verify deletes \
                 nothing: drop it, or add --repair",
            ));
        }
        Ok((s.pair()?, opts))
    }
}

impl MigrateArgs {
    pub fn validate(&self) -> Result<SyncConfig> {
        let mut s = SyncArgs::one_way(&self.a, &self.b, &self.a_path, &self.b_path)?;
        s.a_filer_proxy = self.a_filer_proxy;
        s.b_filer_proxy = self.b_filer_proxy;
        s.a_security = self.a_security.clone();
        s.b_security = self.b_security.clone();
        s.timeout_secs = self.timeout_secs;
        s.state = self.state.clone();
        s.bwlimit = self.bwlimit.clone();
        s.validate()
    }
}

impl StatusArgs {
    pub fn validate(&self) -> Result<Vec<PathBuf>> {
        if !self.state.is_empty() {
            return Ok(self.state.clone());
        }
        let dir = state_dir()?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "db"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if files.is_empty() {
            return Err(Error::usage(format!(
                "no state files in {}; pass --state FILE",
                dir.display()
            )));
        }
        Ok(files)
    }
}

impl CheckpointArgs {
    pub fn validate(&self) -> Result<CheckpointConfig> {
        let action = match self.action.as_str() {
            "show" => CheckpointAction::Show,
            "set" => CheckpointAction::Set,
            "reset" => CheckpointAction::Reset,
            "import" => CheckpointAction::Import,
            "export" => CheckpointAction::Export,
            other => {
                return Err(Error::usage(format!(
                    "checkpoint {other:?}: give show, set, reset, import or export"
                )))
            }
        };
        let addr = |flag: &str, v: &Option<String>| -> Result<Option<Vec<FilerAddr>>> {
            v.as_deref()
                .map(|s| FilerAddr::parse_list(s).map_err(|e| e.context(flag)))
                .transpose()
        };
        let a = addr("-a", &self.a)?;
        let b = addr("-b", &self.b)?;
        let folder = |flag: &str, p: &str| {
            normalize_folder(p).ok_or_else(|| {
                Error::usage(format!("{flag} {p:?}: give an absolute folder like /data"))
            })
        };
        let a_path = folder("--a-path", &self.a_path)?;
        let b_path = folder("--b-path", &self.b_path)?;
        let from = match self.from.as_str() {
            "a" | "A" => 'a',
            "b" | "B" => 'b',
            other => return Err(Error::usage(format!("--from {other:?}: give a or b"))),
        };
        let ts_ms = match (action, self.ts_ms) {
            (CheckpointAction::Set, Some(t)) if t >= 0 => t,
            (CheckpointAction::Set, _) => {
                return Err(Error::usage(
                    "checkpoint set needs --ts-ms N (ms since the epoch, ≥ 0)",
                ))
            }
            (_, _) => 0,
        };
        if action != CheckpointAction::Show && (a.is_none() || b.is_none()) {
            return Err(Error::usage(format!(
                "checkpoint {}: give -a and -b, the filers of the pair",
                self.action
            )));
        }
        let state = match (&self.state, &a, &b) {
            (Some(p), _, _) => p.clone(),
            (None, Some(a), Some(b)) => default_state_path(&a[0], &a_path, &b[0], &b_path)?,
            _ => {
                return Err(Error::usage(
                    "checkpoint show: give --state FILE, or -a and -b",
                ))
            }
        };
        Ok(CheckpointConfig {
            action,
            a,
            b,
            a_path,
            b_path,
            from,
            ts_ms,
            state,
            a_security: crate::security::Security::load(&crate::security::Given {
                flag: "a",
                file: self.a_security.as_deref(),
                ..Default::default()
            })?,
            b_security: crate::security::Security::load(&crate::security::Given {
                flag: "b",
                file: self.b_security.as_deref(),
                ..Default::default()
            })?,
            timeout_secs: match self.timeout_secs {
                t @ 1..=3600 => t,
                t => return Err(Error::usage(format!("--timeout-secs {t}: give 1 to 3600"))),
            },
        })
    }
}

impl SyncArgs {
    /// The two sides and the limits that every command on a pair of
    /// folders shares (sync, verify, migrate).
    fn pair(&self) -> Result<Pair> {
        let side = |label: char,
                    addr: &str,
                    path: &str,
                    excludes: &[String],
                    proxy,
                    debug,
                    placement: Placement,
                    no_delete: bool,
                    from: i64,
                    security: crate::security::Given|
         -> Result<Side> {
            let flag = label.to_ascii_lowercase();
            let mut filers =
                FilerAddr::parse_list(addr).map_err(|e| e.context(format!("-{flag}")))?;
            let addr = filers.remove(0);
            let path = normalize_folder(path).ok_or_else(|| {
                Error::usage(format!(
                    "--{flag}-path {path:?}: give an absolute folder like /data (no //, . or ..)"
                ))
            })?;
            let mut ex = Vec::new();
            for x in excludes {
                let n = if crate::replicate::glob::is_glob(x) {
                    x.starts_with('/').then(|| x.clone())
                } else {
                    normalize_folder(x)
                };
                let n = n.ok_or_else(|| {
                    Error::usage(format!(
                        "--{flag}-exclude {x:?}: give an absolute path or glob like /data/tmp or \
                            /data/**.tmp"
                    ))
                })?;
                if !crate::replicate::glob::is_glob(&n) && is_under(&path, &n) {
                    return Err(Error::usage(format!(
                        "--{flag}-exclude {x:?} covers the whole synced folder {path}: nothing \
                            would replicate"
                    )));
                }
                ex.push(n);
            }
            if from < 0 {
                return Err(Error::usage(format!(
                    "--{flag}-from-ts-ms {from}: must be ≥ 0"
                )));
            }
            if placement.ttl_sec < 0 {
                return Err(Error::usage(format!(
                    "--{flag}-ttl-sec {}: must be ≥ 0",
                    placement.ttl_sec
                )));
            }
            Ok(Side {
                label,
                addr,
                more: filers,
                path,
                excludes: ex,
                proxy,
                debug,
                placement,
                deletes: !no_delete,
                from_ts_ms: from,
                security: crate::security::Security::load(&security)?,
            })
        };
        let a = side(
            'A',
            &self.a,
            &self.a_path,
            &self.a_exclude,
            self.a_filer_proxy,
            self.a_debug,
            Placement {
                collection: self.a_collection.clone(),
                replication: self.a_replication.clone(),
                ttl_sec: self.a_ttl_sec,
                disk_type: self.a_disk.clone(),
            },
            self.a_no_delete,
            self.a_from_ts_ms,
            crate::security::Given {
                flag: "a",
                file: self.a_security.as_deref(),
                ca: self.a_grpc_ca.as_deref(),
                cert: self.a_grpc_cert.as_deref(),
                key: self.a_grpc_key.as_deref(),
            },
        )?;
        let b = side(
            'B',
            &self.b,
            &self.b_path,
            &self.b_exclude,
            self.b_filer_proxy,
            self.b_debug,
            Placement {
                collection: self.b_collection.clone(),
                replication: self.b_replication.clone(),
                ttl_sec: self.b_ttl_sec,
                disk_type: self.b_disk.clone(),
            },
            self.b_no_delete,
            self.b_from_ts_ms,
            crate::security::Given {
                flag: "b",
                file: self.b_security.as_deref(),
                ca: self.b_grpc_ca.as_deref(),
                cert: self.b_grpc_cert.as_deref(),
                key: self.b_grpc_key.as_deref(),
            },
        )?;
        for (name, v) in [
            ("--workers", self.workers),
            ("--chunk-workers", self.chunk_workers),
        ] {
            if v == 0 || v > 1024 {
                return Err(Error::usage(format!("{name} {v}: give 1 to 1024")));
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            return Err(Error::usage(format!(
                "--timeout-secs {}: give 1 to 3600",
                self.timeout_secs
            )));
        }
        if a.addr == b.addr && (is_under(&a.path, &b.path) || is_under(&b.path, &a.path)) {
            return Err(Error::usage(format!(
                "-a and -b are the same filer {} with overlapping folders {} and {}: it would \
                    sync into itself",
                a.addr, a.path, b.path
            )));
        }
        Ok(Pair {
            a,
            b,
            timeout_secs: self.timeout_secs,
            workers: self.workers,
            chunk_workers: self.chunk_workers,
        })
    }

    pub fn validate(&self) -> Result<SyncConfig> {
        let Pair { a, b, .. } = self.pair()?;
        if self.active_passive {
            // B is only a target: flags about B as a source, or about A as
            // a target, would silently do nothing.
            let unused = [
                ("--b-exclude", !self.b_exclude.is_empty()),
                ("--b-from-ts-ms", self.b_from_ts_ms != 0),
                ("--a-no-delete", self.a_no_delete),
                ("--a-collection", !self.a_collection.is_empty()),
                ("--a-replication", !self.a_replication.is_empty()),
                ("--a-ttl-sec", self.a_ttl_sec != 0),
                ("--a-disk", !self.a_disk.is_empty()),
            ];
            if let Some((flag, _)) = unused.iter().find(|(_, given)| *given) {
                return Err(Error::usage(format!(
                    "{flag} has no effect with --active-passive (only A→B runs: A is never \
                        written, B is never read); drop it, or run both ways without \
                        --active-passive"
                )));
            }
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err(Error::usage(format!(
                "--batch-size {}: give 1 to 100000",
                self.batch_size
            )));
        }
        if self.json && !self.dry_run {
            return Err(Error::usage(
                "--json shapes the plan of --dry-run; add --dry-run, or drop --json",
            ));
        }
        if self.batch_window_ms > 60_000 {
            return Err(Error::usage(format!(
                "--batch-window-ms {}: give at most 60000",
                self.batch_window_ms
            )));
        }
        let state = match &self.state {
            Some(p) => p.clone(),
            None => default_state_path(&a.addr, &a.path, &b.addr, &b.path)?,
        };
        Ok(SyncConfig {
            a,
            b,
            active_passive: self.active_passive,
            origin_only: self.origin_only,
            workers: self.workers,
            chunk_workers: self.chunk_workers,
            batch_size: self.batch_size,
            batch_window_ms: self.batch_window_ms,
            bootstrap: match self.bootstrap.as_str() {
                "walk" => Bootstrap::Walk,
                "log" => Bootstrap::Log,
                other => {
                    return Err(Error::usage(format!(
                        "--bootstrap {other:?}: give walk or log"
                    )))
                }
            },
            state,
            once: self.once,
            dry_run: self.dry_run,
            json: self.json,
            max_delete: self.max_delete,
            bwlimit: self
                .bwlimit
                .as_deref()
                .map(crate::volume::throttle::parse_rate)
                .transpose()?,
            timeout_secs: self.timeout_secs,
            stall_secs: match self.stall_secs {
                10..=3600 => self.stall_secs,
                n => {
                    return Err(Error::usage(format!(
                        "--stall-secs {n}: give 10 to 3600 (the filer's heartbeat comes every 5 s)"
                    )))
                }
            },
            metrics: match self.metrics_port {
                None | Some(0) => None,
                Some(p) => Some(format!("{}:{p}", self.metrics_ip).parse().map_err(|_| {
                    Error::usage(format!(
                        "--metrics-ip {:?}: give an IP address like 127.0.0.1",
                        self.metrics_ip
                    ))
                })?),
            },
            progress_secs: match self.progress_secs {
                Some(0) => return Err(Error::usage("--progress-secs 0: give 1 or more")),
                p => p,
            },
            rescan: self.rescan()?,
            ha: self.ha()?,
            shards: self.shards()?,
            shard: None,
        })
    }
}

impl SyncArgs {
    /// `--rescan-secs` and `--rescan-rate`: while following, every six hours
    /// unless told otherwise; never on a mesh link (`--origin-only`: a walk
    /// would carry every cluster's entries over every link).
    fn rescan(&self) -> Result<Option<Rescan>> {
        if self.rescan_rate == 0 {
            return Err(Error::usage(
                "--rescan-rate 0: give 1 or more entries per second",
            ));
        }
        let asked = self.rescan_secs.filter(|s| *s > 0);
        if asked.is_some() && (self.once || self.dry_run || self.origin_only) {
            return Err(Error::usage(
                "--rescan-secs: rescans run while following (without --once or --dry-run), \
                 never on an --origin-only link; a first run copies by a walk in every mode",
            ));
        }
        let every = match self.rescan_secs {
            Some(0) => return Ok(None),
            Some(s) => s,
            None if !self.once && !self.dry_run && !self.origin_only => 6 * 3600,
            None => return Ok(None),
        };
        Ok(Some(Rescan {
            every_secs: every,
            rate: self.rescan_rate,
        }))
    }
}

impl SyncArgs {
    /// `--ha`, `--ha-name`, `--ha-ttl-secs`.
    fn ha(&self) -> Result<Option<Ha>> {
        if !self.ha {
            if self.ha_name.is_some() {
                return Err(Error::usage("--ha-name: give it with --ha"));
            }
            return Ok(None);
        }
        if self.once || self.dry_run {
            return Err(Error::usage(
                "--ha: standbys wait for a long-running active instance; a --once or --dry-run \
                 run needs no election (drop --ha)",
            ));
        }
        if !(2..=300).contains(&self.ha_ttl_secs) {
            return Err(Error::usage(format!(
                "--ha-ttl-secs {}: give 2 to 300 seconds",
                self.ha_ttl_secs
            )));
        }
        if self.ha_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(Error::usage("--ha-name: give a non-empty name"));
        }
        Ok(Some(Ha {
            name: self.ha_name.clone(),
            ttl: std::time::Duration::from_secs(self.ha_ttl_secs),
        }))
    }
}

impl SyncArgs {
    /// `--shards N`: with --ha only (the instances share the shards through
    /// the lock; one instance alone holds them all).
    fn shards(&self) -> Result<Option<u32>> {
        let Some(n) = self.shards else {
            return Ok(None);
        };
        if !self.ha {
            return Err(Error::usage(
                "--shards: the shards of a link are shared among --ha instances through A's \
                 filer's lock; add --ha (one instance alone holds every shard)",
            ));
        }
        if self.origin_only {
            return Err(Error::usage(
                "--shards: not on an --origin-only (mesh) link; run one instance per link",
            ));
        }
        if !(1..=256).contains(&n) {
            return Err(Error::usage(format!("--shards {n}: give 1 to 256")));
        }
        Ok(Some(n))
    }
}

/// `$XDG_STATE_HOME/filer-sync` or `~/.local/state/filer-sync`.
fn state_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .ok_or_else(|| {
            Error::usage("no HOME or XDG_STATE_HOME to put the state file in: pass --state FILE")
        })?;
    Ok(base.join("filer-sync"))
}

/// The default state file: one per pair of folders, in `state_dir()`.
fn default_state_path(a: &FilerAddr, a_path: &str, b: &FilerAddr, b_path: &str) -> Result<PathBuf> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = format!(
        "{}{}__{}{}.db",
        clean(&a.to_string()),
        clean(a_path),
        clean(&b.to_string()),
        clean(b_path)
    );
    Ok(state_dir()?.join(name))
}
