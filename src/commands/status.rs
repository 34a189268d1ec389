//! `filer-sync status`: what each state file says about each direction —
//! checkpoint and lag, events and bytes applied, failures, conflicts, and
//! whether a process is running on it now. Reads only the state files.

use crate::error::Result;
use crate::state::{self, lock, DirectionStatus, HaRole, ShardSeen, State, WalkRecord};
use crate::util::{json_str, utc};
use std::fmt::Write;
use std::path::PathBuf;

/// One direction, ready to print.
struct Row {
    from: String,
    to: String,
    d: DirectionStatus,
    recent_failures: Vec<state::Failure>,
    /// Its last walk of both folders (a first run, a log gap, a rescan).
    walk: Option<WalkRecord>,
}

/// A state file, and the process on it.
struct File<'a> {
    path: &'a std::path::Path,
    /// The PID of the sync running on it.
    running: Option<u32>,
    /// `sync --ha`: the role it recorded last.
    ha: Option<HaRole>,
    /// `sync --ha --shards`: the link's shards as it last saw them.
    shards: Vec<ShardSeen>,
}

/// What `--ha` says of a file's instance: its role while it runs.
fn role(f: &File) -> Option<String> {
    let ha = f.ha.as_ref()?;
    Some(match f.running {
        Some(_) => ha.role.clone(),
        None => format!("stopped (last {})", ha.role),
    })
}

/// Prints the status of each state file; Ok(false) if any direction has failures.
pub fn status(states: &[PathBuf], json: bool) -> Result<bool> {
    let now = crate::util::now_ns();
    let mut clean = true;
    let mut out = String::new();
    let mut docs = Vec::new();
    for path in states {
        let st = State::open_existing(path)?;
        let running = lock::running(path);
        let ha = st.ha_role()?;
        let mut rows = Vec::new();
        for d in st.directions()? {
            let name = |sig: i32, p: &str| -> Result<String> {
                let addr = st
                    .addresses(sig)?
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "?".into());
                Ok(format!("{addr} {p} (signature {sig})"))
            };
            let mut recent = st.failures(&d.key)?;
            recent.reverse();
            recent.truncate(5);
            clean &= d.failures == 0;
            rows.push(Row {
                from: format!(
                    "{}{}",
                    name(d.key.source_sig, &d.key.source_path)?,
                    d.key.shard.map(|s| format!(" {s}")).unwrap_or_default()
                ),
                to: name(d.key.target_sig, &d.key.target_path)?,
                walk: st.last_walk(&d.key)?,
                d,
                recent_failures: recent,
            });
        }
        let shards = st.shards_seen()?;
        let file = File {
            path,
            running,
            ha,
            shards,
        };
        if json {
            docs.push(json_doc(&file, &rows, now));
        } else {
            text(&mut out, &file, &rows, now);
        }
    }
    if json {
        crate::util::say(format!("[{}]", docs.join(",")));
    } else {
        crate::util::say(out.trim_end());
    }
    Ok(clean)
}

fn lag_s(r: &Row, now: i64) -> f64 {
    if r.d.ts_ns > 0 {
        (now - r.d.ts_ns) as f64 / 1e9
    } else {
        f64::NAN
    }
}

fn text(out: &mut String, file: &File, rows: &[Row], now: i64) {
    let _ = writeln!(
        out,
        "{}: {}",
        file.path.display(),
        match file.running {
            Some(pid) => format!("running (pid {pid})"),
            None => "not running".into(),
        }
    );
    if let (Some(ha), Some(role)) = (&file.ha, role(file)) {
        let _ = writeln!(
            out,
            "  ha: {role} since {}, lock {:?} held by {}, generation {}; this instance is {}; \
             counters and ledgers below are this instance's own",
            utc(ha.since_ns),
            ha.lock_name,
            if ha.holder.is_empty() {
                "?"
            } else {
                &ha.holder
            },
            ha.generation,
            ha.owner
        );
    }
    if let Some(first) = file.shards.first() {
        let _ = writeln!(
            out,
            "  shards of the link, as this instance saw them {}: owner, checkpoint shared on the \
             target (lag)",
            utc(first.updated_ns)
        );
    }
    for s in &file.shards {
        let lag = if s.checkpoint_ns > 0 {
            format!("{:.1} s", (now - s.checkpoint_ns) as f64 / 1e9)
        } else {
            "none yet".into()
        };
        let _ = writeln!(
            out,
            "    {} {}: {}, checkpoint {} ({lag})",
            s.shard,
            s.direction,
            match (s.held, s.owner.is_empty()) {
                (true, _) => format!("held by this instance ({})", s.owner),
                (false, true) => "held by nobody".into(),
                (false, false) => format!("held by {}", s.owner),
            },
            if s.checkpoint_ns > 0 {
                utc(s.checkpoint_ns)
            } else {
                "-".into()
            }
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  no checkpoints yet");
    }
    for r in rows {
        let _ = writeln!(out, "  {} -> {}", r.from, r.to);
        let _ = writeln!(
            out,
            "    checkpoint {} (lag {:.1} s), committed {}",
            utc(r.d.ts_ns),
            lag_s(r, now),
            utc(r.d.updated_ns)
        );
        let _ = writeln!(
            out,
            "    applied {} events, {} bytes; {} failures; {} conflicts",
            r.d.events, r.d.bytes, r.d.failures, r.d.conflicts
        );
        if let Some(w) = &r.walk {
            let _ = writeln!(out, "    {}", walk_line(w));
        }
        for f in &r.recent_failures {
            let _ = writeln!(
                out,
                "    failed: {} (event {}): {}",
                f.path,
                utc(f.event_ts_ns),
                f.error
            );
        }
    }
}

/// "last walk (rescan) 2026-…, 1.2 s: 40 entries, 3 differences (missing
/// on B 2, content 1), 3 repaired, 0 failed".
fn walk_line(w: &WalkRecord) -> String {
    let classes: Vec<String> = w.classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let mut line = format!(
        "last walk ({}) {}, {:.1} s: {} entries, {} differences",
        w.why,
        utc(w.started_ns),
        (w.ended_ns - w.started_ns) as f64 / 1e9,
        w.entries,
        w.differences()
    );
    if !classes.is_empty() {
        let _ = write!(line, " ({})", classes.join(", "));
    }
    let _ = write!(line, ", {} repaired, {} failed", w.repaired, w.failed);
    if !w.error.is_empty() {
        let _ = write!(line, "; stopped short: {}", w.error);
    }
    line
}

fn walk_json(w: &Option<WalkRecord>) -> String {
    let Some(w) = w else {
        return "null".into();
    };
    let classes: Vec<String> = w
        .classes
        .iter()
        .map(|(c, n)| format!("{}:{n}", json_str(c)))
        .collect();
    format!(
        "{{\"why\":{},\"started_ns\":{},\"ended_ns\":{},\"entries\":{},\"differences\":{},\
         \"by_class\":{{{}}},\"repaired\":{},\"failed\":{},\"error\":{}}}",
        json_str(&w.why),
        w.started_ns,
        w.ended_ns,
        w.entries,
        w.differences(),
        classes.join(","),
        w.repaired,
        w.failed,
        if w.error.is_empty() {
            "null".into()
        } else {
            json_str(&w.error)
        }
    )
}

fn json_doc(file: &File, rows: &[Row], now: i64) -> String {
    let dirs: Vec<String> = rows
        .iter()
        .map(|r| {
            let fails: Vec<String> = r
                .recent_failures
                .iter()
                .map(|f| {
                    format!(
                        "{{\"path\":{},\"event_ts_ns\":{},\"error\":{}}}",
                        json_str(&f.path),
                        f.event_ts_ns,
                        json_str(&f.error)
                    )
                })
                .collect();
            let lag = lag_s(r, now);
            format!(
                "{{\"source\":{},\"target\":{},\"source_signature\":{},\"source_path\":{},\
                 \"target_signature\":{},\"target_path\":{},\"checkpoint_ts_ns\":{},\
                 \"lag_seconds\":{},\"committed_ts_ns\":{},\"events_applied\":{},\
                 \"bytes_applied\":{},\"failures\":{},\"conflicts\":{},\"recent_failures\":[{}],\
                 \"last_walk\":{},\"shard\":{}}}",
                json_str(&r.from),
                json_str(&r.to),
                r.d.key.source_sig,
                json_str(&r.d.key.source_path),
                r.d.key.target_sig,
                json_str(&r.d.key.target_path),
                r.d.ts_ns,
                if lag.is_finite() {
                    format!("{lag:.3}")
                } else {
                    "null".into()
                },
                r.d.updated_ns,
                r.d.events,
                r.d.bytes,
                r.d.failures,
                r.d.conflicts,
                fails.join(","),
                walk_json(&r.walk),
                r.d.key
                    .shard
                    .map(|s| format!("{{\"index\":{},\"count\":{}}}", s.index, s.count))
                    .unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    let ha = match (&file.ha, role(file)) {
        (Some(ha), Some(role)) => format!(
            "{{\"role\":{},\"lock_name\":{},\"owner\":{},\"holder\":{},\"generation\":{},\
             \"since_ns\":{},\"updated_ns\":{}}}",
            json_str(&role),
            json_str(&ha.lock_name),
            json_str(&ha.owner),
            json_str(&ha.holder),
            ha.generation,
            ha.since_ns,
            ha.updated_ns
        ),
        _ => "null".into(),
    };
    let shards: Vec<String> = file
        .shards
        .iter()
        .map(|s| {
            format!(
                "{{\"shard\":{},\"count\":{},\"direction\":{},\"owner\":{},\"held\":{},\
                 \"checkpoint_ts_ns\":{},\"seen_ns\":{}}}",
                s.shard.index,
                s.shard.count,
                json_str(&s.direction),
                json_str(&s.owner),
                s.held,
                s.checkpoint_ns,
                s.updated_ns
            )
        })
        .collect();
    format!(
        "{{\"state\":{},\"running_pid\":{},\"ha\":{ha},\"shards\":[{}],\"directions\":[{}]}}",
        json_str(&file.path.to_string_lossy()),
        file.running
            .map(|p| p.to_string())
            .unwrap_or_else(|| "null".into()),
        shards.join(","),
        dirs.join(",")
    )
}
