//! Small leaf helpers that every layer may use and that use nothing of the
//! crate: the clock, how times and JSON strings are written, and FNV-1a.
//! Nothing here knows about filers, state or commands.

/// Hands what the allocator holds free back to the system, at most once a
/// second (called after each batch a first run's walk repairs; never while
/// the directions follow, whose events it would stall: it holds the
/// allocator's locks while it works). glibc keeps freed memory inside its
/// heaps for reuse, and a long walk's scattered frees left it holding more
/// and more: a first-run walk of 1M files peaked at 1.41 x its resident
/// memory at 10,000.
pub fn trim_heap() {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ns();
    let last = LAST.load(Ordering::Relaxed);
    if now - last < 1_000_000_000
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free pages of glibc's own heaps
        // to the kernel, under its own locks, from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// This host's clock, ns since the epoch (0 before it).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Formats ns since the epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ts_ns: i64) -> String {
    if ts_ns <= 0 {
        return "never".into();
    }
    let secs = ts_ns.div_euclid(1_000_000_000);
    let ms = ts_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 of a civil (proleptic Gregorian) date; the
/// inverse of the date `utc` writes (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `text` and a newline to stdout. A reader that went away (`| head`)
/// ends the process quietly with the status a Unix tool killed by SIGPIPE
/// has (141), instead of a panic: what was asked is done by then.
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        std::process::exit(141);
    }
}

/// A log record as one JSON object: time (UTC), level, target, the
/// direction when the message starts with one ("A→B: …"), and the message.
pub fn json_log_line(record: &log::Record) -> String {
    let msg = record.args().to_string();
    let direction = msg
        .split_once(": ")
        .filter(|(d, _)| d.contains('→') && !d.contains(' '))
        .map(|(d, _)| format!(",\"direction\":{}", json_str(d)))
        .unwrap_or_default();
    format!(
        "{{\"time\":{},\"level\":{},\"target\":{}{direction},\"message\":{}}}",
        json_str(&utc(now_ns())),
        json_str(record.level().as_str()),
        json_str(record.target()),
        json_str(&msg)
    )
}

/// FNV-1a, 64 bits: a fast hash that is the same on every host and run.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats() {
        assert_eq!(utc(0), "never");
        assert_eq!(utc(1), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123_000_000), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [1, 59, 11_016, 20_791, 100_000] {
            let date = utc(days * 86_400_000_000_000 + 1);
            let num = |r: std::ops::Range<usize>| date[r].parse::<i64>().unwrap();
            assert_eq!(
                days_from_civil(num(0..4), num(5..7), num(8..10)),
                days,
                "{date}"
            );
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(json_str("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn log_records_are_json_objects_with_their_direction() {
        let line = |msg: std::fmt::Arguments| {
            json_log_line(
                &log::Record::builder()
                    .args(msg)
                    .level(log::Level::Warn)
                    .target("filer_sync::pipeline")
                    .build(),
            )
        };
        let l = line(format_args!("A→B: stream lost (\"x\")"));
        assert!(l.starts_with("{\"time\":\"20"), "{l}");
        assert!(
            l.ends_with(concat!(
                r#","level":"WARN","target":"filer_sync::pipeline","#,
                r#""direction":"A→B","message":"A→B: stream lost (\"x\")"}"#
            )),
            "{l}"
        );
        assert!(!line(format_args!("conflict at /a: x")).contains("direction"));
    }

    #[test]
    fn fnv_1a_known_values() {
        let h = |s: &[u8]| {
            let mut f = Fnv::default();
            f.write(s);
            f.finish()
        };
        assert_eq!(h(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
