//! Where a source's metadata log now begins, and whether a checkpoint lies
//! before it. The filer keeps its log as one file per minute under
//! `/topics/.system/log/DAY/HH-MM.FILER`; retention and `fs.log.purge`
//! remove the oldest. A checkpoint older than the first record left means
//! the events between are gone: following the log would silently skip them,
//! so the caller walks the trees instead (see `bootstrap`). The decision
//! (`lost_past`) and the record parsing are pure and table-tested.

use crate::error::Result;
use crate::filer::FilerClient;
use crate::pb::filer::LogEntry;
use crate::volume::{ChunkSource, Size};
use protobuf::Message;

/// The folder the filer writes its metadata log into.
const LOG_DIR: &str = "/topics/.system/log";
const DAY_NS: i64 = 86_400_000_000_000;

/// Where the source's log begins (source clock, ns) when it begins after
/// the checkpoint `(ts_ns, last_event)`, so that the events between are
/// gone; `None` when the log still holds them, or holds no file yet
/// (everything is still in the filer's memory).
pub fn lost_since(
    client: &FilerClient,
    chunks: &ChunkSource,
    checkpoint: (i64, i64),
) -> Result<Option<i64>> {
    let Some(day) = client.first(LOG_DIR)? else {
        return Ok(None);
    };
    let dir = format!("{LOG_DIR}/{}", day.name);
    let Some(file) = client.first(&dir)? else {
        return Ok(None);
    };
    let Some(minute) = minute_of(&day.name, &file.name) else {
        return Ok(None);
    };
    let first = || {
        file.chunks
            .iter()
            .filter(|c| c.offset == 0 && !c.is_chunk_manifest && c.cipher_key.is_empty())
            .find_map(|c| {
                let id = crate::volume::fid::of_chunk(c);
                match chunks.download(&id, Size::Exact(c.size), false) {
                    Ok(bytes) => first_record_ns(&bytes),
                    Err(e) => {
                        log::debug!("{dir}/{}: first record not read: {e}", file.name);
                        None
                    }
                }
            })
    };
    Ok(match lost_past(checkpoint, minute) {
        Some(lost) => lost.then_some(minute),
        // Its first record tells; unread, the log is taken to hold them.
        None => first().filter(|&begins| checkpoint.0 < begins),
    })
}

/// Whether events after the checkpoint `(ts_ns, last_event)` are gone from
/// a log whose oldest file is named after the minute starting at `minute`
/// (its records are stamped within that minute or later); `None`: only the
/// file's first record can tell. A checkpoint that stands on an event
/// (`last_event` set) saw that event in the log: a log that now begins
/// after it lost at least the file holding it. A checkpoint set otherwise
/// (a first run's walk, an operator) may precede the log's first record
/// with nothing logged between; then only a whole day purged before the
/// log's start counts (`fs.log.purge` removes days).
fn lost_past((ts_ns, last_event): (i64, i64), minute: i64) -> Option<bool> {
    const MINUTE_NS: i64 = 60_000_000_000;
    if last_event == 0 {
        Some(ts_ns.div_euclid(DAY_NS) < minute.div_euclid(DAY_NS))
    } else if ts_ns < minute {
        Some(true)
    } else if ts_ns >= minute + MINUTE_NS {
        Some(false)
    } else {
        None
    }
}

/// The time of the first record in the bytes of a log file: records are a
/// 4-byte big-endian length, then a `LogEntry`.
fn first_record_ns(bytes: &[u8]) -> Option<i64> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let entry = LogEntry::parse_from_bytes(bytes.get(4..4 + len)?).ok()?;
    (entry.ts_ns > 0).then_some(entry.ts_ns)
}

/// The start of the minute a log file is named after (`2026-12-04`,
/// `21-07.0a1b2c3d`; the filer names files in UTC).
fn minute_of(day: &str, file: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let mut d = day.split('-').map(num);
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let hm = file.split('.').next()?;
    let (h, mi) = hm.split_once('-')?;
    let (h, mi) = (num(h)?, num(mi)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || h > 23 || mi > 59 {
        return None;
    }
    let days = crate::util::days_from_civil(y, m, dd);
    Some(days * DAY_NS + (h * 60 + mi) * 60_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_000_000_000_000_000;

    #[test]
    fn a_checkpoint_before_the_log_lost_the_events_between() {
        const M: i64 = 60_000_000_000;
        let table = [
            // (checkpoint, last event, the oldest file's minute, lost)
            (T, 7, T - M, Some(false)),
            (T, 7, T - M + 1, None),
            (T, 7, T, None),
            (T, 7, T + 1, Some(true)),
            // Not standing on an event: only a whole day before counts.
            (T, 0, T + M, Some(false)),
            (T, 0, T + 2 * DAY_NS, Some(true)),
        ];
        for (ts, last, minute, lost) in table {
            assert_eq!(lost_past((ts, last), minute), lost, "{ts} {last} {minute}");
        }
    }

    #[test]
    fn the_first_record_and_the_file_names_are_read() {
        let mut e = LogEntry::new();
        e.ts_ns = T;
        let body = e.write_to_bytes().unwrap();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[0, 0, 0, 9, 1]);
        assert_eq!(first_record_ns(&bytes), Some(T));
        assert_eq!(first_record_ns(&bytes[..3]), None);
        assert_eq!(first_record_ns(&bytes[..body.len()]), None);
        // 2026-12-04 21:07 UTC.
        let at = minute_of("2026-12-04", "21-07.0a1b2c3d").unwrap();
        assert_eq!(crate::util::utc(at), "2026-12-04T21:07:00.000Z");
        for (day, file) in [
            ("2026-13-04", "21-07.x"),
            ("2026-12-04", "24-00.x"),
            ("2026-12", "21-07.x"),
            ("2026-12-04", "2107.x"),
            ("x", "y"),
        ] {
            assert_eq!(minute_of(day, file), None, "{day} {file}");
        }
    }
}
