//! The local SQLite state file: each side's filer signature, one checkpoint
//! per replication direction, and the ledger of events that failed for good.
//! WAL mode, a versioned schema upgraded in place, and exactly one
//! transaction per `commit` so a checkpoint never moves without its ledger.
//! Only the pipeline's committing thread holds a `State`.

pub mod lock;
mod private;
pub mod reference;

use crate::error::{Error, Result};
use crate::shard::Shard;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// Schema migrations; entry i brings the file from version i to i+1.
const MIGRATIONS: &[&str] = &[
    // v1: signatures and checkpoints.
    "CREATE TABLE sides (
        address TEXT PRIMARY KEY,
        signature INTEGER NOT NULL,
        first_seen_ns INTEGER NOT NULL
     );
     CREATE TABLE checkpoints (
        source_sig INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        PRIMARY KEY (source_sig, source_path, target_sig, target_path)
     );",
    // v2: counters per direction and the failure ledger.
    "ALTER TABLE checkpoints ADD COLUMN updated_ns INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE checkpoints ADD COLUMN events_applied INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE checkpoints ADD COLUMN bytes_applied INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE failures (
        id INTEGER PRIMARY KEY,
        source_sig INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        event_ts_ns INTEGER NOT NULL,
        path TEXT NOT NULL,
        error TEXT NOT NULL,
        at_ns INTEGER NOT NULL
     );",
    // v3: the conflict ledger (active-active).
    "CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        source_sig INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        path TEXT NOT NULL,
        source_mtime_ns INTEGER NOT NULL,
        source_size INTEGER NOT NULL,
        source_origin INTEGER NOT NULL,
        target_mtime_ns INTEGER NOT NULL,
        target_size INTEGER NOT NULL,
        winner TEXT NOT NULL,
        at_ns INTEGER NOT NULL
     );",
    // v4: which event the checkpoint stands on (its fingerprint; 0 unknown),
    // so that only that event is dropped when the filer serves it again.
    "ALTER TABLE checkpoints ADD COLUMN last_event INTEGER NOT NULL DEFAULT 0;",
    // v5: events up to this time (source clock) may follow a replayed
    // version that was skipped (see `Applier::skipped_replayed`).
    "ALTER TABLE checkpoints ADD COLUMN replay_horizon_ns INTEGER NOT NULL DEFAULT 0;",
    // v6: `sync --ha`: this instance's role, and the lock generation (a
    // fencing number) each window was committed under.
    "ALTER TABLE checkpoints ADD COLUMN ha_generation INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE ha (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        lock_name TEXT NOT NULL,
        role TEXT NOT NULL,
        owner TEXT NOT NULL,
        holder TEXT NOT NULL,
        generation INTEGER NOT NULL,
        since_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
     );",
    // v7: events up to this time (source clock) may already be on the
    // target: a first-run walk copied the trees while they were logged.
    "ALTER TABLE checkpoints ADD COLUMN careful_until_ns INTEGER NOT NULL DEFAULT 0;",
    // v8: the last walk of each direction (a first run, a log gap, a
    // periodic rescan), as `status` shows it.
    "CREATE TABLE walks (
        source_sig INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        why TEXT NOT NULL,
        started_ns INTEGER NOT NULL,
        ended_ns INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        classes TEXT NOT NULL,
        repaired INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        error TEXT NOT NULL,
        PRIMARY KEY (source_sig, source_path, target_sig, target_path)
     );",
    // v9: deletes made on each target lately (`--max-delete` counts them
    // across runs: a cron job starts with what the last one deleted).
    "CREATE TABLE deletes (
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        at_ns INTEGER NOT NULL,
        n INTEGER NOT NULL
     );",
    // v10: active-active, target paths whose version the source had moved
    // on from when this process skipped the newer ones (`Dirs::behind`):
    // the later delete or move of the path takes that version, also after a
    // restart past the skipping event.
    "CREATE TABLE behind (
        source_sig INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        target_sig INTEGER NOT NULL,
        target_path TEXT NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (source_sig, source_path, target_sig, target_path, path)
     );",
    // v11: `sync --ha --shards N`: every shard of the link as this instance
    // last saw it (owner, shared checkpoint), for `status`.
    "CREATE TABLE shards (
        shard INTEGER NOT NULL,
        count INTEGER NOT NULL,
        direction TEXT NOT NULL,
        owner TEXT NOT NULL,
        held INTEGER NOT NULL,
        checkpoint_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (shard, direction)
     );",
];

pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// One replication direction, as the checkpoint is keyed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Direction {
    pub source_sig: i32,
    pub source_path: String,
    pub target_sig: i32,
    pub target_path: String,
    /// `--shards`: the shard of the link this direction carries (None: all
    /// of it, as before shards existed).
    pub shard: Option<Shard>,
}

/// Between a sharded direction's source folder and its shard in the state
/// file: a clean path never holds "//", so no folder reads as a shard.
const SHARD_MARK: &str = "//";

impl Direction {
    /// The source folder as the state file keys it: the folder, and for a
    /// shard "//shard I of N" after it (a shard-less direction keeps the
    /// key it always had).
    pub fn stored_source(&self) -> String {
        match self.shard {
            None => self.source_path.clone(),
            Some(s) => format!(
                "{}{SHARD_MARK}shard {} of {}",
                self.source_path, s.index, s.count
            ),
        }
    }

    /// The folder and shard of a stored source (`stored_source`).
    fn parse_stored(stored: &str) -> (String, Option<Shard>) {
        let parsed = stored.split_once(SHARD_MARK).and_then(|(path, s)| {
            let (i, n) = s.strip_prefix("shard ")?.split_once(" of ")?;
            let shard = Shard {
                index: i.parse().ok()?,
                count: n.parse().ok()?,
            };
            Some((path.to_string(), Some(shard)))
        });
        parsed.unwrap_or_else(|| (stored.to_string(), None))
    }

    /// The same direction without its shard (the whole link).
    pub fn unsharded(&self) -> Direction {
        Direction {
            shard: None,
            ..self.clone()
        }
    }

    /// Its key on the target's KV for the marks behind (`Commit::behind`)
    /// that go with the shared checkpoint: "filer-sync.behind " and
    /// `shared_key`.
    pub fn behind_key(&self) -> Vec<u8> {
        let mut k = b"filer-sync.behind ".to_vec();
        k.extend_from_slice(&self.shared_key());
        k
    }

    /// Its key on the target's KV, where `--ha` instances share the
    /// checkpoint: `weed filer.sync`'s for the whole link, and that key
    /// after "filer-sync.shard I of N " for a shard.
    pub fn shared_key(&self) -> Vec<u8> {
        let key = reference::key(self.source_sig, &self.source_path, &self.target_path);
        match self.shard {
            None => key,
            Some(s) => {
                let mut k = format!("filer-sync.shard {} of {} ", s.index, s.count).into_bytes();
                k.extend_from_slice(&key);
                k
            }
        }
    }
}

/// An event that could not be applied and will not be retried by this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub event_ts_ns: i64,
    pub path: String,
    pub error: String,
}

/// The same path changed on both clusters; `source_won` tells which version stayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Target path.
    pub path: String,
    pub source_mtime_ns: i64,
    pub source_size: u64,
    /// Signature of the cluster where the source version was written.
    pub source_origin: i32,
    pub target_mtime_ns: i64,
    pub target_size: u64,
    pub source_won: bool,
}

/// What one window adds to the state, committed atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub ts_ns: i64,
    /// Fingerprint of the event at `ts_ns` (0: none known).
    pub last_event: i64,
    pub events: u64,
    pub bytes: u64,
    pub failures: Vec<Failure>,
    pub conflicts: Vec<Conflict>,
    /// Raises the direction's replay horizon (0: leaves it).
    pub replay_horizon_ns: i64,
    /// Events skipped because the source had moved on from their version
    /// (counted for the run's summary, not stored).
    pub superseded: u64,
    /// `--ha`: the lock generation the window was applied under (0: none).
    pub generation: i64,
    /// Raises the time up to which events are checked on the source before
    /// they apply (0: leaves it): the end of a first-run walk.
    pub careful_until_ns: i64,
    /// Entries the window deleted on the target (counted at all depths),
    /// for `--max-delete` across runs.
    pub deletes: u64,
    /// Active-active: the target paths known to hold a version the source
    /// is past, when they changed in the window (None: unchanged); they
    /// replace the direction's set (see `State::behind`).
    pub behind: Option<Vec<String>>,
}

/// A direction's last walk of both folders, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalkRecord {
    /// "first run", "log gap" or "rescan".
    pub why: String,
    pub started_ns: i64,
    pub ended_ns: i64,
    /// Entries listed, both sides.
    pub entries: u64,
    /// Differences found, by `verify` class, in class order.
    pub classes: Vec<(String, u64)>,
    /// Entries copied or deleted to repair them.
    pub repaired: u64,
    /// Repairs that failed.
    pub failed: u64,
    /// Why the walk stopped short ("" when it ended).
    pub error: String,
}

impl WalkRecord {
    /// Differences found, all classes together.
    pub fn differences(&self) -> u64 {
        self.classes.iter().map(|(_, n)| n).sum()
    }
}

/// `sync --ha`: what this instance is, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaRole {
    pub lock_name: String,
    /// "active" or "standby".
    pub role: String,
    /// This instance, as the lock names its owner.
    pub owner: String,
    /// Who holds the lock, as far as this instance knows ("" unknown).
    pub holder: String,
    pub generation: i64,
    /// Since when it has this role (this host's clock, ns).
    pub since_ns: i64,
    pub updated_ns: i64,
}

/// `sync --ha --shards N`: one shard of one direction as this instance last
/// saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSeen {
    pub shard: Shard,
    /// "A→B" or "B→A".
    pub direction: String,
    /// Who holds its lock ("" nobody, as far as the lock filer said).
    pub owner: String,
    /// This instance holds it.
    pub held: bool,
    /// Its checkpoint as shared on the target's KV (0: none yet).
    pub checkpoint_ns: i64,
    /// When this was seen (this host's clock, ns).
    pub updated_ns: i64,
}

/// One direction's row, for status displays.
#[derive(Debug, Clone)]
pub struct DirectionStatus {
    pub key: Direction,
    pub ts_ns: i64,
    pub updated_ns: i64,
    pub events: u64,
    pub bytes: u64,
    pub failures: u64,
    pub conflicts: u64,
}

impl Commit {
    /// Adds another part of the same window.
    pub fn merge(&mut self, other: Commit) {
        self.events += other.events;
        self.bytes += other.bytes;
        self.superseded += other.superseded;
        self.failures.extend(other.failures);
        self.conflicts.extend(other.conflicts);
        self.deletes += other.deletes;
    }
}

pub struct State {
    conn: Connection,
    path: PathBuf,
}

/// A file that is not SQLite is bad input (exit 2), not a passing fault.
fn not_a_state_file(path: &Path) -> impl Fn(rusqlite::Error) -> Error + Copy + '_ {
    move |e| {
        Error::usage(format!(
            "state file {}: {e} (is it a filer-sync state file? move it away or pass another \
                --state)",
            path.display()
        ))
    }
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        Self::open_at(path, SCHEMA_VERSION)
    }

    /// Opens (creating if needed) and upgrades the file to `version`.
    fn open_at(path: &Path, version: usize) -> Result<State> {
        let ctx = not_a_state_file(path);
        private::folder_for(path)?;
        private::create_file(path)?;
        let conn = Connection::open(path).map_err(ctx)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(ctx)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(ctx)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(ctx)?;
        Self::upgraded(conn, path, version)
    }

    /// `conn` (the file at `path`, or a copy of it) brought to `version`.
    fn upgraded(conn: Connection, path: &Path, version: usize) -> Result<State> {
        let mut state = State {
            conn,
            path: path.to_path_buf(),
        };
        state
            .migrate(version)
            .map_err(|e| e.context(path.display()))?;
        Ok(state)
    }

    /// A private copy of the state file in memory, for a dry run: it reads
    /// as the file does (an absent file reads as a new one) and takes every
    /// commit, and the file itself stays as it was.
    pub fn open_dry(path: &Path) -> Result<State> {
        let ctx = not_a_state_file(path);
        let mut conn = Connection::open_in_memory().map_err(ctx)?;
        if path.is_file() {
            conn.restore(rusqlite::MAIN_DB, path, rusqlite::backup::NO_PROGRESS)
                .map_err(ctx)?;
        }
        Self::upgraded(conn, path, SCHEMA_VERSION)
    }

    /// Opens a state file that must exist already (for read-mostly tools).
    pub fn open_existing(path: &Path) -> Result<State> {
        if !path.is_file() {
            return Err(Error::usage(format!(
                "state file {} does not exist (pass --state with the file a sync used)",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Every direction with a checkpoint, with its counters.
    pub fn directions(&self) -> Result<Vec<DirectionStatus>> {
        let mut stmt = self.conn.prepare(
            "SELECT c.source_sig, c.source_path, c.target_sig, c.target_path, c.ts_ns, c.updated_ns,
                    c.events_applied, c.bytes_applied,
                    (SELECT count(*) FROM failures f
                        WHERE f.source_sig=c.source_sig AND f.source_path=c.source_path
                        AND f.target_sig=c.target_sig AND f.target_path=c.target_path),
                    (SELECT count(*) FROM conflicts x
                        WHERE x.source_sig=c.source_sig AND x.source_path=c.source_path
                        AND x.target_sig=c.target_sig AND x.target_path=c.target_path)
             FROM checkpoints c ORDER BY c.source_sig, c.source_path, c.target_sig, c.target_path",
        )?;
        let rows = stmt.query_map([], |r| {
            let (source_path, shard) = Direction::parse_stored(&r.get::<_, String>(1)?);
            Ok(DirectionStatus {
                key: Direction {
                    source_sig: r.get(0)?,
                    source_path,
                    target_sig: r.get(2)?,
                    target_path: r.get(3)?,
                    shard,
                },
                ts_ns: r.get(4)?,
                updated_ns: r.get(5)?,
                events: r.get::<_, i64>(6)? as u64,
                bytes: r.get::<_, i64>(7)? as u64,
                failures: r.get::<_, i64>(8)? as u64,
                conflicts: r.get::<_, i64>(9)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The addresses recorded for a signature (most recent first).
    pub fn addresses(&self, signature: i32) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT address FROM sides WHERE signature = ?1 ORDER BY first_seen_ns DESC",
        )?;
        let rows = stmt.query_map([signature], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a direction's checkpoint (the next run starts from the
    /// beginning of the log). Returns whether there was one.
    pub fn reset_checkpoint(&mut self, d: &Direction) -> Result<bool> {
        let source = d.stored_source();
        let key = params![d.source_sig, source, d.target_sig, d.target_path];
        let n = self.conn.execute(
            "DELETE FROM checkpoints WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 AND \
                target_path=?4",
            key,
        )?;
        self.conn.execute(
            "DELETE FROM behind WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 AND \
                target_path=?4",
            key,
        )?;
        Ok(n > 0)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(v as usize)
    }

    fn migrate(&mut self, target: usize) -> Result<()> {
        let have = self.version()?;
        if have > SCHEMA_VERSION {
            return Err(Error::usage(format!(
                "schema version {have} is newer than this filer-sync understands \
                    ({SCHEMA_VERSION}); use a newer filer-sync"
            )));
        }
        if have == 0 {
            let tables: i64 = self.conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table'",
                [],
                |r| r.get(0),
            )?;
            if tables > 0 {
                return Err(Error::usage(
                    "holds tables but no filer-sync schema version: not a filer-sync state file; \
                        pass another --state",
                ));
            }
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(have) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Records a side's signature, or refuses when the address now answers
    /// with another signature (it is another cluster than before).
    pub fn check_side(&self, address: &str, signature: i32) -> Result<()> {
        match self.side_signature(address)? {
            Some(s) if s != signature => Err(Error::usage(format!(
                "filer {address} now has signature {signature}, but state file {} recorded {s}: \
                 it is another cluster (or its store was reset). Refusing to apply a foreign \
                 checkpoint; pass another --state, or run `filer-sync checkpoint reset` to start \
                 over",
                self.path.display()
            ))),
            Some(_) => Ok(()),
            None => {
                self.conn.execute(
                    "INSERT INTO sides (address, signature, first_seen_ns) VALUES (?1, ?2, ?3)",
                    params![address, signature, crate::util::now_ns()],
                )?;
                Ok(())
            }
        }
    }

    /// The signature recorded for `address`, if any.
    pub fn side_signature(&self, address: &str) -> Result<Option<i32>> {
        Ok(self
            .conn
            .query_row(
                "SELECT signature FROM sides WHERE address = ?1",
                [address],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Forgets the signature `old` recorded for `address`, and every
    /// checkpoint from or to that store: the next `check_side` records the
    /// signature it answers with now (an operator accepting a filer whose
    /// store was replaced).
    pub fn forget_side(&self, address: &str, old: i32) -> Result<()> {
        self.conn
            .execute("DELETE FROM sides WHERE address = ?1", [address])?;
        for table in ["checkpoints", "behind"] {
            self.conn.execute(
                &format!("DELETE FROM {table} WHERE source_sig = ?1 OR target_sig = ?1"),
                [old],
            )?;
        }
        Ok(())
    }

    pub fn checkpoint(&self, d: &Direction) -> Result<Option<i64>> {
        Ok(self.position(d)?.map(|(ts, _)| ts))
    }

    /// The checkpoint and the fingerprint of the event it stands on.
    pub fn position(&self, d: &Direction) -> Result<Option<(i64, i64)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT ts_ns, last_event FROM checkpoints WHERE source_sig=?1 AND source_path=?2 \
                    AND target_sig=?3 AND target_path=?4",
                params![d.source_sig, d.stored_source(), d.target_sig, d.target_path],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Events up to this time may follow a replayed version a run skipped
    /// (0: none did).
    pub fn replay_horizon(&self, d: &Direction) -> Result<i64> {
        self.horizon(d, "replay_horizon_ns")
    }

    /// Events up to this time may already be on the target (0: none): a
    /// first-run walk copied the trees while they were logged.
    pub fn careful_until(&self, d: &Direction) -> Result<i64> {
        self.horizon(d, "careful_until_ns")
    }

    fn horizon(&self, d: &Direction, column: &str) -> Result<i64> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {column} FROM checkpoints WHERE source_sig=?1 AND source_path=?2 \
                        AND target_sig=?3 AND target_path=?4"
                ),
                params![d.source_sig, d.stored_source(), d.target_sig, d.target_path],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Sets the checkpoint outright (start-time overrides, operator tools).
    pub fn set_checkpoint(&mut self, d: &Direction, ts_ns: i64) -> Result<()> {
        self.commit(
            d,
            &Commit {
                ts_ns,
                ..Commit::default()
            },
        )
    }

    /// Moves the direction's checkpoint to `c.ts_ns`, adds the counters and
    /// records failures, all in one transaction.
    pub fn commit(&mut self, d: &Direction, c: &Commit) -> Result<()> {
        let now = crate::util::now_ns();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO checkpoints (source_sig, source_path, target_sig, target_path, ts_ns,
                 updated_ns, events_applied, bytes_applied, last_event, replay_horizon_ns,
                 ha_generation, careful_until_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (source_sig, source_path, target_sig, target_path) DO UPDATE SET
               ts_ns = excluded.ts_ns, updated_ns = excluded.updated_ns,
               last_event = excluded.last_event, ha_generation = excluded.ha_generation,
               events_applied = events_applied + excluded.events_applied,
               bytes_applied = bytes_applied + excluded.bytes_applied,
               replay_horizon_ns = MAX(replay_horizon_ns, excluded.replay_horizon_ns),
               careful_until_ns = MAX(careful_until_ns, excluded.careful_until_ns)",
            params![
                d.source_sig,
                d.stored_source(),
                d.target_sig,
                d.target_path,
                c.ts_ns,
                now,
                c.events as i64,
                c.bytes as i64,
                c.last_event,
                c.replay_horizon_ns,
                c.generation,
                c.careful_until_ns
            ],
        )?;
        if c.deletes > 0 {
            tx.execute(
                "INSERT INTO deletes (target_sig, target_path, at_ns, n) VALUES (?1, ?2, ?3, ?4)",
                params![d.target_sig, d.target_path, now, c.deletes as i64],
            )?;
            tx.execute(
                "DELETE FROM deletes WHERE at_ns < ?1",
                [now - Self::DELETES_KEPT.as_nanos() as i64],
            )?;
        }
        if let Some(paths) = &c.behind {
            store_behind(&tx, d, paths)?;
        }
        record_failures(&tx, d, &c.failures, now, false)?;
        for c in &c.conflicts {
            tx.execute(
                "INSERT INTO conflicts (source_sig, source_path, target_sig, target_path, path,
                   source_mtime_ns, source_size, source_origin, target_mtime_ns, target_size,
                   winner, at_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    d.source_sig,
                    d.stored_source(),
                    d.target_sig,
                    d.target_path,
                    c.path,
                    c.source_mtime_ns,
                    c.source_size as i64,
                    c.source_origin,
                    c.target_mtime_ns,
                    c.target_size as i64,
                    if c.source_won { "source" } else { "target" },
                    now
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `--ha`: the marks behind that the instance whose checkpoint this one
    /// adopts shared with it (see `Direction::behind_key`) replace those
    /// kept here, which are older.
    pub fn replace_behind(&mut self, d: &Direction, paths: &[String]) -> Result<()> {
        let tx = self.conn.transaction()?;
        store_behind(&tx, d, paths)?;
        tx.commit()?;
        Ok(())
    }

    /// The target paths of `d` that held a version the source was past at
    /// the last commit (see `Commit::behind`).
    pub fn behind(&self, d: &Direction) -> Result<Vec<String>> {
        let mut q = self.conn.prepare(
            "SELECT path FROM behind WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 \
             AND target_path=?4 ORDER BY path",
        )?;
        let rows = q.query_map(
            params![d.source_sig, d.stored_source(), d.target_sig, d.target_path],
            |r| r.get::<_, String>(0),
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// How long deletes are remembered (longer than any budget's span).
    const DELETES_KEPT: std::time::Duration = std::time::Duration::from_secs(3600);

    /// The deletes committed on `d`'s target since `since_ns` (this host's
    /// clock): (when, entries), oldest first.
    pub fn deletes_since(&self, d: &Direction, since_ns: i64) -> Result<Vec<(i64, u64)>> {
        let mut q = self.conn.prepare(
            "SELECT at_ns, n FROM deletes WHERE target_sig = ?1 AND target_path = ?2 AND \
             at_ns >= ?3 ORDER BY at_ns",
        )?;
        let rows = q.query_map(params![d.target_sig, d.target_path, since_ns], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records this instance's role (`sync --ha`).
    pub fn set_ha_role(&self, r: &HaRole) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO ha (id, lock_name, role, owner, holder, generation, since_ns,
               updated_ns)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.lock_name,
                r.role,
                r.owner,
                r.holder,
                r.generation,
                r.since_ns,
                r.updated_ns
            ],
        )?;
        Ok(())
    }

    /// Replaces what this instance last saw of the link's shards.
    pub fn set_shards_seen(&mut self, seen: &[ShardSeen]) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM shards", [])?;
        for s in seen {
            tx.execute(
                "INSERT OR REPLACE INTO shards (shard, count, direction, owner, held,
                   checkpoint_ns, updated_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.shard.index,
                    s.shard.count,
                    s.direction,
                    s.owner,
                    s.held,
                    s.checkpoint_ns,
                    s.updated_ns
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The link's shards as this instance last saw them, by shard.
    pub fn shards_seen(&self) -> Result<Vec<ShardSeen>> {
        let mut q = self.conn.prepare(
            "SELECT shard, count, direction, owner, held, checkpoint_ns, updated_ns FROM shards
             ORDER BY shard, direction",
        )?;
        let rows = q.query_map([], |r| {
            Ok(ShardSeen {
                shard: Shard {
                    index: r.get(0)?,
                    count: r.get(1)?,
                },
                direction: r.get(2)?,
                owner: r.get(3)?,
                held: r.get(4)?,
                checkpoint_ns: r.get(5)?,
                updated_ns: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records `w` as the direction's last walk.
    pub fn record_walk(&self, d: &Direction, w: &WalkRecord) -> Result<()> {
        let classes: Vec<String> = w.classes.iter().map(|(c, n)| format!("{c}={n}")).collect();
        self.conn.execute(
            "INSERT OR REPLACE INTO walks (source_sig, source_path, target_sig, target_path, why,
               started_ns, ended_ns, entries, classes, repaired, failed, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                d.source_sig,
                d.stored_source(),
                d.target_sig,
                d.target_path,
                w.why,
                w.started_ns,
                w.ended_ns,
                w.entries as i64,
                classes.join(";"),
                w.repaired as i64,
                w.failed as i64,
                w.error
            ],
        )?;
        Ok(())
    }

    /// The direction's last walk, if it had one.
    pub fn last_walk(&self, d: &Direction) -> Result<Option<WalkRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT why, started_ns, ended_ns, entries, classes, repaired, failed, error
                 FROM walks WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3
                   AND target_path=?4",
                params![d.source_sig, d.stored_source(), d.target_sig, d.target_path],
                |r| {
                    let classes: String = r.get(4)?;
                    Ok(WalkRecord {
                        why: r.get(0)?,
                        started_ns: r.get(1)?,
                        ended_ns: r.get(2)?,
                        entries: r.get::<_, i64>(3)? as u64,
                        classes: classes
                            .split(';')
                            .filter_map(|c| c.rsplit_once('='))
                            .map(|(c, n)| (c.to_string(), n.parse().unwrap_or(0)))
                            .collect(),
                        repaired: r.get::<_, i64>(5)? as u64,
                        failed: r.get::<_, i64>(6)? as u64,
                        error: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    /// The role last recorded by `sync --ha` on this file, if any.
    pub fn ha_role(&self) -> Result<Option<HaRole>> {
        Ok(self
            .conn
            .query_row(
                "SELECT lock_name, role, owner, holder, generation, since_ns, updated_ns
                 FROM ha WHERE id = 1",
                [],
                |r| {
                    Ok(HaRole {
                        lock_name: r.get(0)?,
                        role: r.get(1)?,
                        owner: r.get(2)?,
                        holder: r.get(3)?,
                        generation: r.get(4)?,
                        since_ns: r.get(5)?,
                        updated_ns: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every conflict recorded, in all directions, oldest first.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, source_mtime_ns, source_size, source_origin, target_mtime_ns, target_size,
                winner
             FROM conflicts ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Conflict {
                path: r.get(0)?,
                source_mtime_ns: r.get(1)?,
                source_size: r.get::<_, i64>(2)? as u64,
                source_origin: r.get(3)?,
                target_mtime_ns: r.get(4)?,
                target_size: r.get::<_, i64>(5)? as u64,
                source_won: r.get::<_, String>(6)? == "source",
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds `failures` found outside a window (a rescan's refused names)
    /// to the ledger, leaving the checkpoint as it is. One already there
    /// (same path, same error: each rescan meets it again) is not added
    /// twice.
    pub fn ledger(&self, d: &Direction, failures: &[Failure]) -> Result<()> {
        record_failures(&self.conn, d, failures, crate::util::now_ns(), true)
    }

    pub fn failures(&self, d: &Direction) -> Result<Vec<Failure>> {
        let mut stmt = self.conn.prepare(
            "SELECT event_ts_ns, path, error FROM failures
             WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 AND target_path=?4
             ORDER BY id",
        )?;
        let rows = stmt.query_map(
            params![d.source_sig, d.stored_source(), d.target_sig, d.target_path],
            |r| {
                Ok(Failure {
                    event_ts_ns: r.get(0)?,
                    path: r.get(1)?,
                    error: r.get(2)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Makes `paths` the marks behind of `d` (see `Commit::behind`).
fn store_behind(tx: &rusqlite::Transaction, d: &Direction, paths: &[String]) -> Result<()> {
    let source = d.stored_source();
    tx.execute(
        "DELETE FROM behind WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 \
         AND target_path=?4",
        params![d.source_sig, source, d.target_sig, d.target_path],
    )?;
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO behind (source_sig, source_path, target_sig, target_path,
           path) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in paths {
        insert.execute(params![
            d.source_sig,
            source,
            d.target_sig,
            d.target_path,
            p
        ])?;
    }
    Ok(())
}

/// The marks behind as `--ha` instances share them on the target's KV: a
/// version byte, then each path as a big-endian u32 length and its bytes.
pub fn encode_marks(paths: &[String]) -> Vec<u8> {
    let mut out = vec![1u8];
    for p in paths {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// `encode_marks` read back; None for a value that is not one (an empty
/// value: none shared).
pub fn decode_marks(v: &[u8]) -> Option<Vec<String>> {
    let Some((1, mut v)) = v.split_first() else {
        return None;
    };
    let mut out = Vec::new();
    while !v.is_empty() {
        let n = u32::from_be_bytes(v.get(..4)?.try_into().ok()?) as usize;
        out.push(String::from_utf8(v.get(4..4 + n)?.to_vec()).ok()?);
        v = &v[4 + n..];
    }
    Some(out)
}

/// Inserts `failures` into the ledger of `d` at `now`; with `once`, those
/// the ledger holds already (same path and error) are left out.
fn record_failures(
    conn: &rusqlite::Connection,
    d: &Direction,
    failures: &[Failure],
    now: i64,
    once: bool,
) -> Result<()> {
    for f in failures {
        conn.execute(
            "INSERT INTO failures (source_sig, source_path, target_sig, target_path,
               event_ts_ns, path, error, at_ns)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
             WHERE NOT ?9 OR NOT EXISTS (SELECT 1 FROM failures
               WHERE source_sig=?1 AND source_path=?2 AND target_sig=?3 AND target_path=?4
                 AND path=?6 AND error=?7)",
            params![
                d.source_sig,
                d.stored_source(),
                d.target_sig,
                d.target_path,
                f.event_ts_ns,
                f.path,
                f.error,
                now,
                once
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("filer-sync-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("state.db")
    }

    fn dir() -> Direction {
        Direction {
            source_sig: -5,
            source_path: "/a".into(),
            target_sig: 7,
            target_path: "/b".into(),
            shard: None,
        }
    }

    #[test]
    fn the_horizons_only_rise() {
        let p = tmp("horizon");
        let mut s = State::open(&p).unwrap();
        assert_eq!(s.replay_horizon(&dir()).unwrap(), 0);
        assert_eq!(s.careful_until(&dir()).unwrap(), 0);
        for (ts, horizon) in [(10, 0), (20, 500), (30, 0), (40, 300)] {
            let c = Commit {
                ts_ns: ts,
                replay_horizon_ns: horizon,
                careful_until_ns: horizon * 2,
                ..Commit::default()
            };
            s.commit(&dir(), &c).unwrap();
        }
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.replay_horizon(&dir()).unwrap(), 500);
        assert_eq!(s.careful_until(&dir()).unwrap(), 1000);
        assert_eq!(s.checkpoint(&dir()).unwrap(), Some(40));
    }

    #[test]
    fn a_shard_has_its_own_checkpoint_and_the_link_keeps_its_key() {
        let p = tmp("shards");
        let mut s = State::open(&p).unwrap();
        let shard = |index| Direction {
            shard: Some(Shard { index, count: 8 }),
            ..dir()
        };
        s.set_checkpoint(&dir(), 10).unwrap();
        s.set_checkpoint(&shard(3), 30).unwrap();
        s.set_checkpoint(&shard(5), 50).unwrap();
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.checkpoint(&dir()).unwrap(), Some(10));
        assert_eq!(s.checkpoint(&shard(3)).unwrap(), Some(30));
        assert_eq!(s.checkpoint(&shard(4)).unwrap(), None);
        let keys: Vec<Direction> = s.directions().unwrap().into_iter().map(|d| d.key).collect();
        assert_eq!(keys, vec![dir(), shard(3), shard(5)]);
        assert_eq!(shard(3).stored_source(), "/a//shard 3 of 8");
        assert_eq!(dir().stored_source(), "/a", "the key it always had");
        assert_eq!(shard(3).unsharded(), dir());
        let k = shard(3).shared_key();
        assert!(k.starts_with(b"filer-sync.shard 3 of 8 sync./a"), "{k:?}");
        assert_eq!(dir().shared_key(), reference::key(-5, "/a", "/b"));
    }

    #[test]
    fn marks_behind_travel_on_the_kv_and_replace_older_ones() {
        let paths = vec!["/b/x".to_string(), "/b/line\nbreak é".to_string()];
        assert_eq!(decode_marks(&encode_marks(&paths)), Some(paths.clone()));
        assert_eq!(decode_marks(&encode_marks(&[])), Some(vec![]));
        assert_eq!(decode_marks(b""), None, "none shared");
        assert_eq!(decode_marks(&[1, 0, 0, 0, 9, b'x']), None, "cut short");
        assert_eq!(decode_marks(&[2]), None, "another format");
        assert!(dir().behind_key().starts_with(b"filer-sync.behind sync."));
        let p = tmp("behind-kv");
        let mut s = State::open(&p).unwrap();
        s.commit(
            &dir(),
            &Commit {
                ts_ns: 5,
                behind: Some(vec!["/b/old".into()]),
                ..Commit::default()
            },
        )
        .unwrap();
        s.replace_behind(&dir(), &paths).unwrap();
        let mut want = paths.clone();
        want.sort();
        assert_eq!(s.behind(&dir()).unwrap(), want);
        assert_eq!(
            s.checkpoint(&dir()).unwrap(),
            Some(5),
            "the checkpoint stays"
        );
    }

    #[test]
    fn marks_behind_are_kept_with_the_checkpoint_that_passed_them() {
        let p = tmp("behind");
        let mut s = State::open(&p).unwrap();
        let with = |ts: i64, behind: Option<Vec<&str>>| Commit {
            ts_ns: ts,
            behind: behind.map(|b| b.into_iter().map(String::from).collect()),
            ..Commit::default()
        };
        s.commit(&dir(), &with(10, Some(vec!["/b/x", "/b/y"])))
            .unwrap();
        // A window that changed none leaves them; one that did replaces them.
        s.commit(&dir(), &with(20, None)).unwrap();
        drop(s);
        let mut s = State::open(&p).unwrap();
        assert_eq!(s.behind(&dir()).unwrap(), ["/b/x", "/b/y"]);
        s.commit(&dir(), &with(30, Some(vec!["/b/y"]))).unwrap();
        assert_eq!(s.behind(&dir()).unwrap(), ["/b/y"]);
        let other = Direction {
            target_path: "/c".into(),
            ..dir()
        };
        assert!(s.behind(&other).unwrap().is_empty(), "per direction");
        assert!(s.reset_checkpoint(&dir()).unwrap());
        assert!(
            s.behind(&dir()).unwrap().is_empty(),
            "reset with its checkpoint"
        );
    }

    #[test]
    fn the_last_walk_is_kept() {
        let p = tmp("walks");
        let s = State::open(&p).unwrap();
        assert_eq!(s.last_walk(&dir()).unwrap(), None);
        let w = WalkRecord {
            why: "rescan".into(),
            started_ns: 5,
            ended_ns: 9,
            entries: 40,
            classes: vec![("missing on B".into(), 2), ("content".into(), 1)],
            repaired: 3,
            failed: 0,
            error: String::new(),
        };
        s.record_walk(&dir(), &WalkRecord::default()).unwrap();
        s.record_walk(&dir(), &w).unwrap();
        drop(s);
        let s = State::open(&p).unwrap();
        let got = s.last_walk(&dir()).unwrap().unwrap();
        assert_eq!(got, w);
        assert_eq!(got.differences(), 3);
    }

    #[test]
    fn create_commit_reopen() {
        let p = tmp("reopen");
        let mut s = State::open(&p).unwrap();
        assert_eq!(s.version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.checkpoint(&dir()).unwrap(), None);
        let fail = Failure {
            event_ts_ns: 3,
            path: "/a/x".into(),
            error: "gone".into(),
        };
        s.commit(
            &dir(),
            &Commit {
                ts_ns: 42,
                events: 2,
                bytes: 10,
                failures: vec![fail.clone()],
                ..Commit::default()
            },
        )
        .unwrap();
        let conflict = Conflict {
            path: "/b/x".into(),
            source_mtime_ns: 5,
            source_size: 1,
            source_origin: -5,
            target_mtime_ns: 5,
            target_size: 2,
            source_won: false,
        };
        s.commit(
            &dir(),
            &Commit {
                ts_ns: 50,
                events: 1,
                bytes: 5,
                conflicts: vec![conflict.clone()],
                ..Commit::default()
            },
        )
        .unwrap();
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.checkpoint(&dir()).unwrap(), Some(50));
        let d = &s.directions().unwrap()[0];
        assert_eq!((d.events, d.bytes, d.failures, d.conflicts), (3, 15, 1, 1));
        assert_eq!(s.failures(&dir()).unwrap(), vec![fail.clone()]);
        assert_eq!(s.conflicts().unwrap(), vec![conflict]);
        // Failures found outside a window (a rescan's refused names) are
        // ledgered once however often they are met; the checkpoint stays.
        let refused = Failure {
            event_ts_ns: 0,
            path: "/a/..".into(),
            error: "refused".into(),
        };
        for _ in 0..3 {
            s.ledger(&dir(), std::slice::from_ref(&refused)).unwrap();
        }
        assert_eq!(s.failures(&dir()).unwrap(), vec![fail, refused]);
        assert_eq!(s.checkpoint(&dir()).unwrap(), Some(50));
        let other = Direction {
            target_path: "/c".into(),
            ..dir()
        };
        assert_eq!(s.checkpoint(&other).unwrap(), None);
    }

    #[test]
    fn upgrade_from_v1_keeps_checkpoints() {
        let p = tmp("upgrade");
        let s = State::open_at(&p, 1).unwrap();
        assert_eq!(s.version().unwrap(), 1);
        s.conn
            .execute("INSERT INTO checkpoints VALUES (-5, '/a', 7, '/b', 99)", [])
            .unwrap();
        drop(s);
        let s = State::open(&p).unwrap();
        assert_eq!(s.version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.checkpoint(&dir()).unwrap(), Some(99));
        let d = &s.directions().unwrap()[0];
        assert_eq!((d.ts_ns, d.events, d.bytes), (99, 0, 0));
    }

    #[test]
    fn signature_change_is_refused() {
        let s = State::open(&tmp("sig")).unwrap();
        s.check_side("127.0.0.1:8888", 11).unwrap();
        s.check_side("127.0.0.1:8888", 11).unwrap();
        let e = s.check_side("127.0.0.1:8888", 12).unwrap_err();
        assert!(e.to_string().contains("another cluster"), "{e}");
    }

    #[test]
    fn the_state_its_wal_and_its_lock_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let p = tmp("private").with_file_name("deeper").join("state.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut s = State::open(&p).unwrap();
        s.set_checkpoint(&dir(), 7).unwrap();
        let _held = lock::acquire(&p).unwrap();
        let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", p.display()));
        for f in ["", "-wal", "-shm", ".lock"] {
            assert!(with(f).exists(), "{f} is there");
            assert_eq!(mode(&with(f)), 0o600, "state{f}");
        }
        for d in [p.parent().unwrap(), p.parent().unwrap().parent().unwrap()] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        // A file already there keeps the mode its owner gave it.
        let q = tmp("shared");
        std::fs::create_dir_all(q.parent().unwrap()).unwrap();
        std::fs::write(&q, b"").unwrap();
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o640)).unwrap();
        State::open(&q).unwrap();
        assert_eq!(mode(&q), 0o640);
    }

    #[test]
    fn foreign_files_are_refused() {
        let p = tmp("foreign");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"this is not sqlite at all, just text padding it out").unwrap();
        assert!(State::open(&p).is_err());
        let q = tmp("othersqlite");
        std::fs::create_dir_all(q.parent().unwrap()).unwrap();
        let c = Connection::open(&q).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        let e = State::open(&q).err().unwrap();
        assert!(e.to_string().contains("not a filer-sync state file"), "{e}");
    }
}
