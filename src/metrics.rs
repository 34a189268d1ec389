//! The Prometheus endpoint: a minimal HTTP/1.1 responder on a listener the
//! command opened, answering `GET /metrics` with the text exposition of the
//! live counters (`stats`). Names and labels follow the
//! reference's `SeaweedFS_filerSync_*` metrics. Runs on a thread the
//! pipeline starts; reads counters, writes nothing else.

use crate::stats::Stats;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Answers every HTTP request on `listener` until `done`.
pub fn serve(listener: std::net::TcpListener, all: &[Arc<Stats>], done: &AtomicBool) {
    use std::io::{Read, Write};
    let _ = listener.set_nonblocking(true);
    while !done.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if req.starts_with("GET /metrics") || req.starts_with("GET / ")
                {
                    ("200 OK", exposition(all))
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The Prometheus text exposition of all directions.
pub fn exposition(all: &[Arc<Stats>]) -> String {
    let mut out = String::new();
    type Read = fn(&Stats) -> f64;
    let series: [(&str, &str, &str, Read); 14] = [
        (
            "sync_offset",
            "gauge",
            "checkpoint of the direction, ns since the epoch",
            |s| s.checkpoint_ns.load(Relaxed) as f64,
        ),
        (
            "lag_seconds",
            "gauge",
            "how far the checkpoint is behind the source",
            |s| s.lag_seconds(),
        ),
        (
            "source_silent_seconds",
            "gauge",
            "seconds since the source's stream sent anything (idle: under ~5, its heartbeat; \
             growing: stalled or unreachable)",
            |s| s.silent_seconds(),
        ),
        ("in_flight_jobs", "gauge", "events being applied now", |s| {
            s.in_flight.load(Relaxed) as f64
        }),
        (
            "events_received_total",
            "counter",
            "events read from the source",
            |s| s.received.load(Relaxed) as f64,
        ),
        (
            "events_processed_total",
            "counter",
            "events committed to the target",
            |s| s.committed.load(Relaxed) as f64,
        ),
        (
            "events_failed_total",
            "counter",
            "events that failed for good (see the state file)",
            |s| s.failed.load(Relaxed) as f64,
        ),
        (
            "processed_bytes_total",
            "counter",
            "chunk bytes copied",
            |s| s.bytes.load(Relaxed) as f64,
        ),
        (
            "conflicts_total",
            "counter",
            "same-path changes on both sides, resolved by last writer wins",
            |s| s.conflicts.load(Relaxed) as f64,
        ),
        (
            "events_superseded_total",
            "counter",
            "events not applied because the source had replaced their version since",
            |s| s.superseded.load(Relaxed) as f64,
        ),
        (
            "rescan_entries_total",
            "counter",
            "entries listed by rescans, both sides",
            |s| s.rescan_entries.load(Relaxed) as f64,
        ),
        (
            "rescan_last_success_timestamp_seconds",
            "gauge",
            "when the last rescan ended without error (0: none yet)",
            |s| s.rescan_done_ns.load(Relaxed) as f64 / 1e9,
        ),
        (
            "paused",
            "gauge",
            "1 once the direction paused for a human (--max-delete, or a source store replaced)",
            |s| f64::from(u8::from(s.paused.load(Relaxed))),
        ),
        (
            "up",
            "gauge",
            "1 while the direction runs, 0 once paused",
            |s| f64::from(u8::from(!s.paused.load(Relaxed))),
        ),
    ];
    for (name, kind, help, f) in series {
        header(&mut out, name, kind, help);
        for s in all {
            sample(&mut out, name, s, "", f(s));
        }
    }
    let help = "differences rescans found and repaired, by class (as verify names them)";
    header(&mut out, "rescan_differences_total", "counter", help);
    for s in all {
        for (class, n) in s.rescan_differences.lock().unwrap().iter() {
            let class = format!("class=\"{}\",", esc(class));
            sample(&mut out, "rescan_differences_total", s, &class, *n as f64);
        }
    }
    if all.iter().any(|s| s.ha_active.load(Relaxed) >= 0) {
        let help = "--ha: 1 while this instance is the active one, 0 standing by";
        header(&mut out, "ha_active", "gauge", help);
        for s in all {
            sample(
                &mut out,
                "ha_active",
                s,
                "",
                s.ha_active.load(Relaxed) as f64,
            );
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP SeaweedFS_filerSync_{name} {help}");
    let _ = writeln!(out, "# TYPE SeaweedFS_filerSync_{name} {kind}");
}

/// One sample of series `name` for the direction `s`, with its labels
/// (`extra` first: `class="…",` or nothing).
fn sample(out: &mut String, name: &str, s: &Stats, extra: &str, value: f64) {
    let _ = writeln!(
        out,
        "SeaweedFS_filerSync_{name}{{{extra}sourceFiler=\"{}\",targetFiler=\"{}\",\
         clientName=\"{}\",path=\"{}\"}} {value}",
        esc(&s.source),
        esc(&s.target),
        esc(&s.client),
        esc(&s.path),
    );
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_series_with_labels() {
        let s = Arc::new(Stats::new(
            "A→B",
            "127.0.0.1:8888",
            "127.0.0.1:9888",
            "filer-sync_/_To_/",
            "/",
        ));
        s.received.store(10, Relaxed);
        s.committed.store(7, Relaxed);
        s.superseded.store(3, Relaxed);
        s.checkpoint_ns.store(1_000_000_000, Relaxed);
        let text = exposition(std::slice::from_ref(&s));
        let line = concat!(
            "SeaweedFS_filerSync_events_processed_total{sourceFiler=\"127.0.0.1:8888\",",
            "targetFiler=\"127.0.0.1:9888\",clientName=\"filer-sync_/_To_/\",path=\"/\"} 7"
        );
        assert!(text.contains(line), "{text}");
        let value = |name: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("SeaweedFS_filerSync_{name}{{")))
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            line.rsplit(' ').next().unwrap().to_string()
        };
        assert_eq!(value("events_superseded_total"), "3");
        assert!(
            !text.contains("rescan_differences_total{"),
            "none found yet"
        );
        assert_eq!(value("sync_offset"), "1000000000");
        assert!(value("lag_seconds").parse::<f64>().unwrap() > 0.0);
        assert_eq!((value("paused").as_str(), value("up").as_str()), ("0", "1"));
        s.paused.store(true, Relaxed);
        s.rescan_differences
            .lock()
            .unwrap()
            .insert("missing on B".into(), 2);
        let text = exposition(&[s]);
        assert!(
            text.contains("rescan_differences_total{class=\"missing on B\",sourceFiler="),
            "{text}"
        );
        assert!(
            text.contains("} 1\n# HELP SeaweedFS_filerSync_up"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 15);
        assert!(
            text.contains("SeaweedFS_filerSync_source_silent_seconds{"),
            "{text}"
        );
    }
}
