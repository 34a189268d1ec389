//! Live counters per direction, shared by the pipeline (which updates them),
//! the progress reporter and the Prometheus endpoint (which read them).
//! Names follow the reference's `SeaweedFS_filerSync_*` metrics.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

#[derive(Debug)]
pub struct Stats {
    pub name: String,
    pub source: String,
    pub target: String,
    pub client: String,
    pub path: String,
    pub received: AtomicU64,
    /// Events committed (applied, unchanged, or ledgered as failed).
    pub applied: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub conflicts: AtomicU64,
    /// Events skipped: the source had replaced their version since.
    pub superseded: AtomicU64,
    pub in_flight: AtomicU64,
    /// Last committed checkpoint (ns).
    pub checkpoint_ns: AtomicI64,
    /// Newest source time seen on the stream, heartbeats included (ns).
    pub source_ns: AtomicI64,
}

impl Stats {
    pub fn new(name: &str, source: &str, target: &str, client: &str, path: &str) -> Stats {
        Stats {
            name: name.into(),
            source: source.into(),
            target: target.into(),
            client: client.into(),
            path: path.into(),
            received: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            superseded: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            checkpoint_ns: AtomicI64::new(0),
            source_ns: AtomicI64::new(0),
        }
    }

    /// Seconds between the newest source time seen and the checkpoint while
    /// received events wait to be committed; 0 when all are committed.
    pub fn lag_seconds(&self) -> f64 {
        if self.received.load(Relaxed) <= self.applied.load(Relaxed) {
            return 0.0;
        }
        let cp = self.checkpoint_ns.load(Relaxed);
        (self.source_ns.load(Relaxed) - cp).max(0) as f64 / 1e9
    }
}

/// The Prometheus text exposition of all directions.
pub fn prometheus(all: &[std::sync::Arc<Stats>]) -> String {
    let mut out = String::new();
    type Read = fn(&Stats) -> f64;
    let series: [(&str, &str, &str, Read); 10] = [
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
            |s| s.applied.load(Relaxed) as f64,
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
        ("up", "gauge", "1 while the direction runs", |_| 1.0),
    ];
    for (name, kind, help, f) in series {
        let _ = writeln!(out, "# HELP SeaweedFS_filerSync_{name} {help}");
        let _ = writeln!(out, "# TYPE SeaweedFS_filerSync_{name} {kind}");
        for s in all {
            let _ = writeln!(
                out,
                "SeaweedFS_filerSync_{name}{{sourceFiler=\"{}\",targetFiler=\"{}\",clientName=\"{}\",path=\"{}\"}} {}",
                esc(&s.source),
                esc(&s.target),
                esc(&s.client),
                esc(&s.path),
                f(s)
            );
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A progress line for all directions: events/s, MB/s, lag and an ETA
/// from how fast the lag shrinks between two samples.
pub struct Progress {
    last: Vec<(u64, u64, f64)>,
    at: Instant,
}

impl Progress {
    pub fn new(n: usize) -> Progress {
        Progress {
            last: vec![(0, 0, 0.0); n],
            at: Instant::now(),
        }
    }

    pub fn line(&mut self, all: &[std::sync::Arc<Stats>]) -> String {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        let mut parts = Vec::new();
        for (s, last) in all.iter().zip(self.last.iter_mut()) {
            let ev = s.applied.load(Relaxed);
            let by = s.bytes.load(Relaxed);
            let lag = s.lag_seconds();
            let shrink = (last.2 - lag) / dt;
            let eta = if lag > 1.0 && shrink > 0.0 {
                format!(", ETA {:.0}s", lag / shrink)
            } else {
                String::new()
            };
            parts.push(format!(
                "{}: {:.0} ev/s, {:.1} MB/s, lag {:.1}s{eta}, {} applied, {} failed",
                s.name,
                (ev - last.0) as f64 / dt,
                (by - last.1) as f64 / dt / 1e6,
                lag,
                ev,
                s.failed.load(Relaxed)
            ));
            *last = (ev, by, lag);
        }
        parts.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
        s.applied.store(7, Relaxed);
        s.superseded.store(3, Relaxed);
        s.checkpoint_ns.store(1_000_000_000, Relaxed);
        s.source_ns.store(3_500_000_000, Relaxed);
        let text = prometheus(&[s]);
        assert!(text.contains("SeaweedFS_filerSync_events_processed_total{sourceFiler=\"127.0.0.1:8888\",targetFiler=\"127.0.0.1:9888\",clientName=\"filer-sync_/_To_/\",path=\"/\"} 7"), "{text}");
        assert!(
            text.contains("SeaweedFS_filerSync_lag_seconds{") && text.contains("} 2.5\n"),
            "{text}"
        );
        assert!(
            text.lines().any(
                |l| l.starts_with("SeaweedFS_filerSync_events_superseded_total{")
                    && l.ends_with("} 3")
            ),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 10);
    }

    #[test]
    fn progress_reports_rates() {
        let s = Arc::new(Stats::new("A→B", "a", "b", "c", "/"));
        let mut p = Progress::new(1);
        s.applied.store(100, Relaxed);
        let line = p.line(std::slice::from_ref(&s));
        assert!(
            line.starts_with("A→B: ") && line.contains("100 applied"),
            "{line}"
        );
    }
}
