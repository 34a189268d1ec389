//! Command-line flags (argh): the top-level options and each subcommand's
//! flags with their help text, and a unit test per flag. The only module that
//! knows argh; `validate` turns the parsed flags into plain config values.

mod validate;

use crate::error::{Error, Result};
use argh::FromArgs;
use std::path::PathBuf;

#[derive(FromArgs, Debug)]
/// filer-sync: keep SeaweedFS clusters in sync through their filers.
/// Exit codes: 0 success, 1 failure (or differences found), 2 usage error,
/// 3 another filer-sync holds the state file, 4 a direction paused by
/// --max-delete.
pub struct Cli {
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted after the command
    #[argh(option)]
    pub log_format: Option<String>,
    #[argh(subcommand)]
    pub cmd: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// `--log-format`, given before the command or after it (once).
    pub fn log_format(&self) -> Result<LogFormat> {
        let given = match (self.log_format.as_deref(), self.cmd.log_format()) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "--log-format: give it once, before or after the command",
                ))
            }
            (before, after) => before.or(after).unwrap_or("text"),
        };
        match given {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(Error::usage(format!(
                "--log-format {other:?}: give text or json"
            ))),
        }
    }
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    Sync(SyncArgs),
    Verify(VerifyArgs),
    Migrate(MigrateArgs),
    Status(StatusArgs),
    Checkpoint(CheckpointArgs),
}

impl Command {
    /// `--log-format` as given after the command.
    fn log_format(&self) -> Option<&str> {
        match self {
            Command::Sync(a) => a.log_format.as_deref(),
            Command::Verify(a) => a.log_format.as_deref(),
            Command::Migrate(a) => a.log_format.as_deref(),
            Command::Status(a) => a.log_format.as_deref(),
            Command::Checkpoint(a) => a.log_format.as_deref(),
        }
    }
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sync")]
/// Replicate changes between filer A and filer B: both ways by default,
/// A to B only with --active-passive. Resumes from the checkpoint in the
/// state file; --once stops when caught up (cron mode).
pub struct SyncArgs {
    /// filer A as HOST:PORT (gRPC on PORT+10000) or HOST:PORT.GRPCPORT; several
    /// filers of one cluster (one filer store) separated by commas
    #[argh(option, short = 'a')]
    pub a: String,
    /// filer B as -a (one filer, or several of one cluster)
    #[argh(option, short = 'b')]
    pub b: String,
    /// replicate only A to B (B is a follower)
    #[argh(switch)]
    pub active_passive: bool,
    /// forward only changes that originated on the source cluster (for a full mesh: every change
    /// travels its direct link only)
    #[argh(switch)]
    pub origin_only: bool,
    /// folder on A to sync (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub a_path: String,
    /// folder on B to sync (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub b_path: String,
    /// path prefix or glob on A whose entries are not replicated (repeatable)
    #[argh(option)]
    pub a_exclude: Vec<String>,
    /// path prefix or glob on B whose entries are not replicated (repeatable)
    #[argh(option)]
    pub b_exclude: Vec<String>,
    /// move A's chunk bytes through A's filer instead of its volume servers
    #[argh(switch)]
    pub a_filer_proxy: bool,
    /// move B's chunk bytes through B's filer instead of its volume servers
    #[argh(switch)]
    pub b_filer_proxy: bool,
    /// log every event read from A and every change applied to A
    #[argh(switch)]
    pub a_debug: bool,
    /// log every event read from B and every change applied to B
    #[argh(switch)]
    pub b_debug: bool,
    /// security.toml of A (SeaweedFS format): gRPC TLS from [grpc], HTTPS from [https.client],
    /// chunk-read tokens from [jwt.signing.read]; none given: weed's search path
    #[argh(option)]
    pub a_security: Option<PathBuf>,
    /// security.toml of B (as --a-security)
    #[argh(option)]
    pub b_security: Option<PathBuf>,
    /// CA certificate (PEM) that signed A's gRPC server certificates; overrides --a-security
    #[argh(option)]
    pub a_grpc_ca: Option<PathBuf>,
    /// client certificate (PEM) for mutual TLS with A; overrides --a-security
    #[argh(option)]
    pub a_grpc_cert: Option<PathBuf>,
    /// private key (PEM) of --a-grpc-cert
    #[argh(option)]
    pub a_grpc_key: Option<PathBuf>,
    /// CA certificate (PEM) that signed B's gRPC server certificates; overrides --b-security
    #[argh(option)]
    pub b_grpc_ca: Option<PathBuf>,
    /// client certificate (PEM) for mutual TLS with B; overrides --b-security
    #[argh(option)]
    pub b_grpc_cert: Option<PathBuf>,
    /// private key (PEM) of --b-grpc-cert
    #[argh(option)]
    pub b_grpc_key: Option<PathBuf>,
    /// collection for chunks written to A
    #[argh(option, default = "String::new()")]
    pub a_collection: String,
    /// collection for chunks written to B
    #[argh(option, default = "String::new()")]
    pub b_collection: String,
    /// replication (e.g. 001) for chunks written to A
    #[argh(option, default = "String::new()")]
    pub a_replication: String,
    /// replication (e.g. 001) for chunks written to B
    #[argh(option, default = "String::new()")]
    pub b_replication: String,
    /// TTL in seconds for chunks written to A
    #[argh(option, default = "0")]
    pub a_ttl_sec: i32,
    /// TTL in seconds for chunks written to B
    #[argh(option, default = "0")]
    pub b_ttl_sec: i32,
    /// disk type (hdd, ssd, ...) for chunks written to A
    #[argh(option, default = "String::new()")]
    pub a_disk: String,
    /// disk type (hdd, ssd, ...) for chunks written to B
    #[argh(option, default = "String::new()")]
    pub b_disk: String,
    /// never delete on A: deletes are dropped, renames only create
    #[argh(switch)]
    pub a_no_delete: bool,
    /// never delete on B: deletes are dropped, renames only create
    #[argh(switch)]
    pub b_no_delete: bool,
    /// start reading A's log at this time (ms since the epoch), replacing the checkpoint
    #[argh(option, default = "0")]
    pub a_from_ts_ms: i64,
    /// start reading B's log at this time (ms since the epoch), replacing the checkpoint
    #[argh(option, default = "0")]
    pub b_from_ts_ms: i64,
    /// events applied in parallel per direction (default 32)
    #[argh(option, default = "32")]
    pub workers: usize,
    /// chunk transfers in parallel per direction (default 8)
    #[argh(option, default = "8")]
    pub chunk_workers: usize,
    /// most events in one window, and differences a first-run walk repairs together (default 1000)
    #[argh(option, default = "1000")]
    pub batch_size: usize,
    /// longest a window waits for more events after its first one, in ms (default 0: take what the
    /// stream has queued, so a quiet stream applies at once and a busy one fills windows)
    #[argh(option, default = "0")]
    pub batch_window_ms: u64,
    /// the SQLite state file (default: $XDG_STATE_HOME or ~/.local/state,
    /// /filer-sync/<a>_<a-path>__<b>_<b-path>.db)
    #[argh(option)]
    pub state: Option<PathBuf>,
    /// how a direction without a checkpoint starts: walk (default: copy the trees, then follow the
    /// log from now) or log (replay the whole metadata log, as weed filer.sync does)
    #[argh(option, default = "String::from(\"walk\")")]
    pub bootstrap: String,
    /// catch up to the sources' time at start, commit, and exit (cron mode)
    #[argh(switch)]
    pub once: bool,
    /// print the changes a sync would make (one line each, then a summary) and change nothing:
    /// neither the targets nor the state file
    #[argh(switch)]
    pub dry_run: bool,
    /// with --dry-run: print the plan as JSON lines
    #[argh(switch)]
    pub json: bool,
    /// delete at most N entries on a target: per walk (all depths; default: up to half of the
    /// target folder, or 100), and within any minute while following (default: no limit)
    #[argh(option)]
    pub max_delete: Option<u64>,
    /// limit chunk bytes moved per second, all directions together (e.g. 10M, 512K)
    #[argh(option)]
    pub bwlimit: Option<String>,
    /// seconds before a gRPC call is given up, and a chunk transfer that moves no byte (at
    /// least 30; a slow one that keeps moving is never cut) (default 10)
    #[argh(option, default = "10")]
    pub timeout_secs: u64,
    /// re-subscribe when a source sends nothing for this many seconds, not even its 5 s
    /// heartbeat (default 60)
    #[argh(option, default = "60")]
    pub stall_secs: u64,
    /// serve Prometheus metrics on this port (SeaweedFS_filerSync_*)
    #[argh(option)]
    pub metrics_port: Option<u16>,
    /// address for --metrics-port (default 127.0.0.1; 0.0.0.0 to be scraped from elsewhere)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    pub metrics_ip: String,
    /// seconds between progress lines (default: 1 on a terminal, 10 otherwise)
    #[argh(option)]
    pub progress_secs: Option<u64>,
    /// following: walk both folders this often and repair what differs (default 21600, six
    /// hours; 0: never)
    #[argh(option)]
    pub rescan_secs: Option<u64>,
    /// entries listed per second during a rescan, both sides together (default 2000)
    #[argh(option, default = "2000")]
    pub rescan_rate: u64,
    /// high availability: run several instances (own state files, other hosts) on the same
    /// pair; one holds a lock on A's filer and runs, the others stand by and take over
    #[argh(switch)]
    pub ha: bool,
    /// with --ha: the lock's name (default: derived from the pair and mode)
    #[argh(option)]
    pub ha_name: Option<String>,
    /// with --ha: seconds the lock lives without a renewal (default 6; a standby takes over
    /// within about TTL + TTL/3 of the active's death)
    #[argh(option, default = "6")]
    pub ha_ttl_secs: u64,
    /// with --ha: split the link's work into N shards (by the first path component below the
    /// folder) that the instances share, each holding about N/K of them when K run; N is
    /// recorded on B's first run and a later run with another N is refused (1 to 256)
    #[argh(option)]
    pub shards: Option<u32>,
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted before the command
    #[argh(option)]
    pub log_format: Option<String>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
/// Compare A's folder with B's and report every difference by class
/// (missing on B, only on B, type, size, mtime, etag, chunk coverage; with
/// --checksum also content). Exits 0 when equal, 1 when different.
pub struct VerifyArgs {
    /// filer A as HOST:PORT or HOST:PORT.GRPCPORT, or several of one cluster
    #[argh(option, short = 'a')]
    pub a: String,
    /// filer B as -a (one filer, or several of one cluster)
    #[argh(option, short = 'b')]
    pub b: String,
    /// folder on A (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub a_path: String,
    /// folder on B (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub b_path: String,
    /// also compare file contents (reads every file on both sides)
    #[argh(switch)]
    pub checksum: bool,
    /// print JSON instead of text
    #[argh(switch)]
    pub json: bool,
    /// copy A's version over every difference, delete what is only on B, verify again
    #[argh(switch)]
    pub repair: bool,
    /// with --repair: delete at most N entries on B (default: up to half of B's folder, or 100)
    #[argh(option)]
    pub max_delete: Option<u64>,
    /// read A's chunks through A's filer
    #[argh(switch)]
    pub a_filer_proxy: bool,
    /// write B's chunks through B's filer
    #[argh(switch)]
    pub b_filer_proxy: bool,
    /// security.toml of A (SeaweedFS format): gRPC TLS from [grpc], HTTPS from [https.client],
    /// chunk-read tokens from [jwt.signing.read]; none given: weed's search path
    #[argh(option)]
    pub a_security: Option<PathBuf>,
    /// security.toml of B (as --a-security)
    #[argh(option)]
    pub b_security: Option<PathBuf>,
    /// directories listed in parallel (default 8)
    #[argh(option, default = "8")]
    pub workers: usize,
    /// seconds before a gRPC call is given up, and a chunk transfer that moves no byte (at
    /// least 30; a slow one that keeps moving is never cut) (default 10)
    #[argh(option, default = "10")]
    pub timeout_secs: u64,
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted before the command
    #[argh(option)]
    pub log_format: Option<String>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "migrate")]
/// One-shot copy of A's folder to B for scripted migrations: records its
/// start, copies the whole tree (no need for the metadata log's past),
/// replays the log from the start to catch changes made meanwhile, then
/// verifies. Rerun after a kill to resume. Exits 0 when B equals A.
pub struct MigrateArgs {
    /// filer A (the source) as HOST:PORT or HOST:PORT.GRPCPORT, or several, comma-separated
    #[argh(option, short = 'a')]
    pub a: String,
    /// filer B (the target), as -a
    #[argh(option, short = 'b')]
    pub b: String,
    /// folder on A (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub a_path: String,
    /// folder on B (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub b_path: String,
    /// read A's chunks through A's filer
    #[argh(switch)]
    pub a_filer_proxy: bool,
    /// write B's chunks through B's filer
    #[argh(switch)]
    pub b_filer_proxy: bool,
    /// security.toml of A (SeaweedFS format): gRPC TLS from [grpc], HTTPS from [https.client],
    /// chunk-read tokens from [jwt.signing.read]; none given: weed's search path
    #[argh(option)]
    pub a_security: Option<PathBuf>,
    /// security.toml of B (as --a-security)
    #[argh(option)]
    pub b_security: Option<PathBuf>,
    /// the SQLite state file (default as for sync)
    #[argh(option)]
    pub state: Option<PathBuf>,
    /// limit chunk bytes copied per second (e.g. 10M, 512K): a migration between data
    /// centres shares their link with everything else
    #[argh(option)]
    pub bwlimit: Option<String>,
    /// seconds before a gRPC call is given up, and a chunk transfer that moves no byte (at
    /// least 30; a slow one that keeps moving is never cut) (default 10)
    #[argh(option, default = "10")]
    pub timeout_secs: u64,
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted before the command
    #[argh(option)]
    pub log_format: Option<String>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
/// Show each direction of a state file: checkpoint and lag, events and bytes
/// applied, failures, conflicts, and whether a sync is running on it.
/// Exits 1 when a direction has failures.
pub struct StatusArgs {
    /// state file(s) to show (default: every file in the default state folder)
    #[argh(option)]
    pub state: Vec<PathBuf>,
    /// print JSON instead of text
    #[argh(switch)]
    pub json: bool,
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted before the command
    #[argh(option)]
    pub log_format: Option<String>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "checkpoint")]
/// Show, set or reset a direction's checkpoint, or import/export the
/// checkpoint `weed filer.sync` keeps in the target filer (to switch tools
/// without re-bootstrapping). ACTION is show, set, reset, import or export.
pub struct CheckpointArgs {
    /// show | set | reset | import | export
    #[argh(positional)]
    pub action: String,
    /// filer A as HOST:PORT or HOST:PORT.GRPCPORT, or several of one cluster (needed
    /// except for show)
    #[argh(option, short = 'a')]
    pub a: Option<String>,
    /// filer B as -a (needed except for show)
    #[argh(option, short = 'b')]
    pub b: Option<String>,
    /// folder on A (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub a_path: String,
    /// folder on B (default /)
    #[argh(option, default = "String::from(\"/\")")]
    pub b_path: String,
    /// security.toml of A (SeaweedFS format): gRPC TLS from [grpc], HTTPS from [https.client],
    /// chunk-read tokens from [jwt.signing.read]; none given: weed's search path
    #[argh(option)]
    pub a_security: Option<PathBuf>,
    /// security.toml of B (as --a-security)
    #[argh(option)]
    pub b_security: Option<PathBuf>,
    /// the direction's source side: a (A→B, default) or b (B→A)
    #[argh(option, default = "String::from(\"a\")")]
    pub from: String,
    /// for set: the new checkpoint, ms since the epoch
    #[argh(option)]
    pub ts_ms: Option<i64>,
    /// the state file (default: as `sync` derives it from -a/-b and the folders)
    #[argh(option)]
    pub state: Option<PathBuf>,
    /// seconds before a gRPC call is given up (default 10)
    #[argh(option, default = "10")]
    pub timeout_secs: u64,
    /// log lines as text (default) or json (one object per line: time, level, target, direction,
    /// message); also accepted before the command
    #[argh(option)]
    pub log_format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncConfig;

    fn parse(args: &[&str]) -> std::result::Result<SyncArgs, String> {
        SyncArgs::from_args(&["sync"], args).map_err(|e| e.output)
    }

    fn cfg(args: &[&str]) -> Result<SyncConfig> {
        parse(args).unwrap().validate()
    }

    const AB: [&str; 4] = ["-a", "127.0.0.1:8888", "-b", "127.0.0.1:9888"];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        let mut v = AB.to_vec();
        v.extend_from_slice(extra);
        v
    }

    /// `--log-format` before the command, or after it for every command;
    /// given in both places it is refused rather than one silently winning.
    #[test]
    fn flag_log_format_before_or_after_the_command() {
        let ab = ["-a", "h:1", "-b", "h:2"];
        let commands: [(&str, &[&str]); 5] = [
            ("sync", &ab),
            ("verify", &ab),
            ("migrate", &ab),
            ("status", &[]),
            ("checkpoint", &["show"]),
        ];
        let format = |args: &[&str]| {
            Cli::from_args(&["filer-sync"], args)
                .map_err(|e| e.output)
                .unwrap()
                .log_format()
        };
        for (cmd, rest) in commands {
            let plain: Vec<&str> = [&[cmd], rest].concat();
            assert_eq!(format(&plain).unwrap(), LogFormat::Text, "{cmd}");
            let before = [&["--log-format", "json", cmd], rest].concat();
            assert_eq!(format(&before).unwrap(), LogFormat::Json, "{cmd}");
            let after = [&[cmd], rest, &["--log-format", "json"]].concat();
            assert_eq!(format(&after).unwrap(), LogFormat::Json, "{cmd}");
            let bad = [&[cmd], rest, &["--log-format", "yaml"]].concat();
            let e = format(&bad).unwrap_err().to_string();
            assert!(
                e.contains("--log-format \"yaml\": give text or json"),
                "{e}"
            );
            let twice = [
                &["--log-format", "json", cmd],
                rest,
                &["--log-format", "text"],
            ]
            .concat();
            let e = format(&twice).unwrap_err().to_string();
            assert!(e.contains("give it once"), "{e}");
        }
    }

    #[test]
    fn defaults() {
        let c = cfg(&AB).unwrap();
        assert!(!c.active_passive && !c.once && !c.dry_run);
        assert_eq!((c.a.path.as_str(), c.b.path.as_str()), ("/", "/"));
        assert_eq!((c.workers, c.batch_size, c.batch_window_ms), (32, 1000, 0));
        assert!(c.a.deletes && c.b.deletes);
        assert!(c
            .state
            .to_string_lossy()
            .ends_with("filer-sync/127.0.0.1_8888___127.0.0.1_9888_.db"));
    }

    #[test]
    fn flag_a_b_required_and_parsed() {
        assert!(parse(&["-a", "h:1"]).is_err());
        let e = cfg(&["-a", "nonsense", "-b", "127.0.0.1:1"]).unwrap_err();
        assert!(
            e.to_string().starts_with("-a: filer address \"nonsense\""),
            "{e}"
        );
        let c = cfg(&["-a", "h:1.2", "-b", "h:3"]).unwrap();
        assert_eq!((c.a.addr.grpc_port, c.b.addr.grpc_port), (2, 10003));
    }

    #[test]
    fn flag_paths() {
        let c = cfg(&with(&[
            "--a-path",
            "/home/chris/",
            "--b-path",
            "/Users/chris",
        ]))
        .unwrap();
        assert_eq!(
            (c.a.path.as_str(), c.b.path.as_str()),
            ("/home/chris", "/Users/chris")
        );
        assert!(cfg(&with(&["--a-path", "home"]))
            .unwrap_err()
            .to_string()
            .contains("--a-path"));
    }

    #[test]
    fn flag_excludes() {
        let c = cfg(&with(&[
            "--a-path",
            "/p",
            "--a-exclude",
            "/p/tmp/",
            "--a-exclude",
            "/p/**.swp",
        ]))
        .unwrap();
        assert_eq!(c.a.excludes, ["/p/tmp", "/p/**.swp"]);
        let e = cfg(&with(&["--a-path", "/p", "--a-exclude", "/"])).unwrap_err();
        assert!(
            e.to_string().contains("covers the whole synced folder"),
            "{e}"
        );
        assert!(cfg(&with(&["--b-exclude", "tmp"])).is_err());
    }

    #[test]
    fn flag_switches() {
        let c = cfg(&with(&[
            "--active-passive",
            "--origin-only",
            "--once",
            "--dry-run",
            "--a-filer-proxy",
            "--b-debug",
            "--b-no-delete",
        ]))
        .unwrap();
        assert!(c.active_passive && c.origin_only && c.once && c.dry_run && c.a.proxy && c.b.debug);
        assert!(!c.b.deletes && c.a.deletes && !c.b.proxy && !c.a.debug);
    }

    #[test]
    fn rescans_run_while_following() {
        let every =
            |extra: &[&'static str]| cfg(&with(extra)).unwrap().rescan.map(|r| r.every_secs);
        assert_eq!(
            every(&["--active-passive"]),
            Some(6 * 3600),
            "on by default"
        );
        assert_eq!(every(&[]), Some(6 * 3600), "both ways too");
        assert_eq!(
            every(&["--active-passive", "--rescan-secs", "60"]),
            Some(60)
        );
        assert_eq!(every(&["--rescan-secs", "60"]), Some(60));
        assert_eq!(every(&["--active-passive", "--rescan-secs", "0"]), None);
        assert_eq!(every(&["--active-passive", "--once"]), None, "cron mode");
        assert_eq!(every(&["--origin-only"]), None, "a mesh link");
        for bad in [
            &["--origin-only", "--rescan-secs", "60"][..],
            &["--active-passive", "--once", "--rescan-secs", "60"],
            &["--active-passive", "--rescan-rate", "0"],
        ] {
            let e = cfg(&with(bad)).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn ha_is_for_long_running_instances() {
        let c = cfg(&with(&["--ha"])).unwrap();
        let ha = c.ha.unwrap();
        assert_eq!((ha.name, ha.ttl.as_secs()), (None, 6));
        let c = cfg(&with(&["--ha", "--ha-name", "x", "--ha-ttl-secs", "9"])).unwrap();
        assert_eq!(c.ha.unwrap().name.as_deref(), Some("x"));
        assert!(cfg(&with(&[])).unwrap().ha.is_none());
        for bad in [
            &["--ha", "--once"][..],
            &["--ha", "--dry-run"],
            &["--ha", "--ha-ttl-secs", "1"],
            &["--ha-name", "x"],
            &["--ha", "--ha-name", " "],
        ] {
            let e = cfg(&with(bad)).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn shards_are_shared_by_ha_instances() {
        let c = cfg(&with(&["--ha", "--shards", "16"])).unwrap();
        assert_eq!((c.shards, c.shard), (Some(16), None));
        assert_eq!(cfg(&with(&["--ha"])).unwrap().shards, None);
        for bad in [
            &["--shards", "4"][..],
            &["--ha", "--shards", "0"],
            &["--ha", "--shards", "257"],
            &["--ha", "--shards", "4", "--origin-only"],
        ] {
            let e = cfg(&with(bad)).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn json_shapes_the_dry_run_plan_only() {
        assert!(cfg(&with(&["--dry-run", "--json"])).unwrap().json);
        let e = cfg(&with(&["--json"])).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Usage);
        assert!(e.to_string().contains("--dry-run"), "{e}");
    }

    #[test]
    fn flag_placement() {
        let c = cfg(&with(&[
            "--b-collection",
            "c1",
            "--b-replication",
            "001",
            "--b-ttl-sec",
            "60",
            "--b-disk",
            "ssd",
        ]))
        .unwrap();
        let p = &c.b.placement;
        assert_eq!(
            (
                p.collection.as_str(),
                p.replication.as_str(),
                p.ttl_sec,
                p.disk_type.as_str()
            ),
            ("c1", "001", 60, "ssd")
        );
        assert!(cfg(&with(&["--a-ttl-sec", "-1"])).is_err());
    }

    #[test]
    fn flag_numbers() {
        assert!(cfg(&with(&["--workers", "0"])).is_err());
        assert!(cfg(&with(&["--batch-size", "0"])).is_err());
        assert!(cfg(&with(&["--batch-window-ms", "100000"])).is_err());
        assert!(cfg(&with(&["--timeout-secs", "0"])).is_err());
        assert!(cfg(&with(&["--a-from-ts-ms", "-5"])).is_err());
        let c = cfg(&with(&[
            "--workers",
            "4",
            "--batch-size",
            "50",
            "--a-from-ts-ms",
            "1700000000000",
        ]))
        .unwrap();
        assert_eq!(
            (c.workers, c.batch_size, c.a.from_ts_ms),
            (4, 50, 1_700_000_000_000)
        );
        assert!(parse(&with(&["--workers", "x"])).is_err());
    }

    #[test]
    fn flag_safety_rails() {
        let c = cfg(&with(&["--max-delete", "100", "--bwlimit", "10M"])).unwrap();
        assert_eq!((c.max_delete, c.bwlimit), (Some(100), Some(10 << 20)));
        let c = cfg(&with(&["--metrics-port", "9327", "--progress-secs", "5"])).unwrap();
        assert_eq!(c.metrics.unwrap().to_string(), "127.0.0.1:9327");
        assert_eq!(c.progress_secs, Some(5));
        assert!(cfg(&with(&["--metrics-port", "1", "--metrics-ip", "nope"])).is_err());
        assert!(cfg(&with(&["--progress-secs", "0"])).is_err());
        let c = cfg(&AB).unwrap();
        assert_eq!((c.max_delete, c.bwlimit), (None, None));
        assert_eq!(c.stall_secs, 60);
        assert_eq!(cfg(&with(&["--stall-secs", "15"])).unwrap().stall_secs, 15);
        assert!(cfg(&with(&["--stall-secs", "5"])).is_err());
        assert!(cfg(&with(&["--bwlimit", "fast"]))
            .unwrap_err()
            .to_string()
            .contains("--bwlimit"));
    }

    #[test]
    fn flags_that_do_nothing_one_way_are_refused() {
        for extra in [
            &["--b-exclude", "/x"][..],
            &["--b-from-ts-ms", "5"],
            &["--a-no-delete"],
            &["--a-collection", "c"],
            &["--a-ttl-sec", "60"],
        ] {
            let mut args = with(&["--active-passive"]);
            args.extend_from_slice(extra);
            let e = cfg(&args).unwrap_err();
            assert!(
                e.to_string().contains(extra[0]) && e.to_string().contains("--active-passive"),
                "{e}"
            );
            // Both ways, the same flag means something.
            assert!(cfg(&with(extra)).is_ok(), "{extra:?}");
        }
        assert!(cfg(&with(&[
            "--active-passive",
            "--a-exclude",
            "/x",
            "--b-no-delete"
        ]))
        .is_ok());
    }

    #[test]
    fn flag_state_and_self_sync() {
        let c = cfg(&with(&["--state", "/tmp/x.db"])).unwrap();
        assert_eq!(c.state, PathBuf::from("/tmp/x.db"));
        let e = cfg(&[
            "-a", "h:1", "-b", "h:1", "--a-path", "/x", "--b-path", "/x/y",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("into itself"), "{e}");
        assert!(cfg(&["-a", "h:1", "-b", "h:1", "--a-path", "/x", "--b-path", "/y"]).is_ok());
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::config::{CheckpointAction, CheckpointConfig};

    fn cfg(args: &[&str]) -> Result<CheckpointConfig> {
        CheckpointArgs::from_args(&["checkpoint"], args)
            .map_err(|e| Error::usage(e.output))?
            .validate()
    }

    #[test]
    fn actions_and_their_needs() {
        let c = cfg(&["import", "-a", "h:1", "-b", "h:2", "--from", "b"]).unwrap();
        assert_eq!((c.action, c.from), (CheckpointAction::Import, 'b'));
        assert!(c.state.to_string_lossy().ends_with("h_1___h_2_.db"));
        let c = cfg(&["set", "-a", "h:1", "-b", "h:2", "--ts-ms", "5"]).unwrap();
        assert_eq!(c.ts_ms, 5);
        assert!(cfg(&["set", "-a", "h:1", "-b", "h:2"]).is_err());
        assert!(cfg(&["reset", "-a", "h:1"]).is_err());
        assert!(cfg(&["frob", "-a", "h:1", "-b", "h:2"]).is_err());
        assert!(cfg(&["show"]).is_err());
        assert!(cfg(&["show", "--state", "/tmp/x.db"]).is_ok());
        assert!(cfg(&["export", "-a", "h:1", "-b", "h:2", "--from", "c"]).is_err());
    }
}
