//! The Prometheus endpoint: a minimal HTTP/1.1 responder on a listener the
//! command opened, answering `GET /metrics` with the text exposition of the
//! live counters (`stats`). Names and labels follow the
//! reference's `SeaweedFS_filerSync_*` metrics. Runs on one thread the
//! pipeline starts, non-blocking so that no client can hold up another;
//! reads counters, writes nothing else.

use crate::stats::Stats;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one client may take to ask and be answered.
const CLIENT_TIME: Duration = Duration::from_secs(2);
/// Clients served at once; one more drops the oldest.
const CLIENTS: usize = 64;
/// The longest request head read; a longer one is answered as it stands.
const HEAD_MAX: usize = 8192;

/// Answers every HTTP request on `listener` until `done`. One thread serves
/// every scrape without blocking on any: each connection is read and
/// written as far as it goes on every pass, so a client that connects and
/// sends nothing (or reads nothing) holds up no other, and is dropped
/// after `CLIENT_TIME`.
pub fn serve(listener: std::net::TcpListener, all: &[Arc<Stats>], done: &AtomicBool) {
    let _ = listener.set_nonblocking(true);
    let mut clients: Vec<Client> = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let mut moved = false;
        while let Ok((conn, _)) = listener.accept() {
            if conn.set_nonblocking(true).is_ok() {
                if clients.len() >= CLIENTS {
                    clients.remove(0);
                }
                clients.push(Client::new(conn));
                moved = true;
            }
        }
        clients.retain_mut(|c| {
            let (keep, progress) = c.step(all);
            moved |= progress;
            keep
        });
        // Idle, a scrape is accepted within 100 ms; with clients open, their
        // sockets are looked at every few ms.
        if !moved {
            let pause = if clients.is_empty() { 100 } else { 5 };
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
}

/// One scrape in progress: the request head read so far, then the answer
/// and how much of it is sent.
struct Client {
    conn: TcpStream,
    head: Vec<u8>,
    answer: Vec<u8>,
    sent: usize,
    since: Instant,
}

impl Client {
    fn new(conn: TcpStream) -> Client {
        Client {
            conn,
            head: Vec::new(),
            answer: Vec::new(),
            sent: 0,
            since: Instant::now(),
        }
    }

    /// Reads and writes what the socket takes now: (whether to keep the
    /// client, whether any byte moved). A client is dropped (closed) once
    /// answered, gone, or out of time.
    fn step(&mut self, all: &[Arc<Stats>]) -> (bool, bool) {
        use std::io::ErrorKind::{Interrupted, WouldBlock};
        if self.since.elapsed() > CLIENT_TIME {
            return (false, false);
        }
        let mut moved = false;
        if self.answer.is_empty() {
            let mut buf = [0u8; 1024];
            // The whole head is read before answering: closing with unread
            // bytes would reset the connection and lose the answer.
            while !self.head.windows(4).any(|w| w == b"\r\n\r\n") && self.head.len() < HEAD_MAX {
                match self.conn.read(&mut buf) {
                    Ok(0) => return (false, moved),
                    Ok(n) => {
                        self.head.extend_from_slice(&buf[..n]);
                        moved = true;
                    }
                    Err(e) if e.kind() == WouldBlock => return (true, moved),
                    Err(e) if e.kind() == Interrupted => {}
                    Err(_) => return (false, moved),
                }
            }
            self.answer = answer(&self.head, all).into_bytes();
        }
        while self.sent < self.answer.len() {
            match self.conn.write(&self.answer[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    moved = true;
                }
                Err(e) if e.kind() == WouldBlock => return (true, moved),
                Err(e) if e.kind() == Interrupted => {}
                Err(_) => return (false, moved),
            }
        }
        (false, moved)
    }
}

/// The whole HTTP answer to a request head.
fn answer(head: &[u8], all: &[Arc<Stats>]) -> String {
    let (status, body) = if head.starts_with(b"GET /metrics") || head.starts_with(b"GET / ") {
        ("200 OK", exposition(all))
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The Prometheus text exposition of all directions.
pub fn exposition(all: &[Arc<Stats>]) -> String {
    let mut out = String::new();
    type Read = fn(&Stats) -> f64;
    let series: [(&str, &str, &str, Read); 15] = [
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
            "streams_opened_total",
            "counter",
            "metadata streams opened from the source (with --shards: starts and restarts of the \
             instance's shared stream that fed this shard)",
            |s| s.streams_opened.load(Relaxed) as f64,
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
    // A shard this instance does not hold shows only whether it holds it
    // (`ha_active` 0): its other series are another instance's to serve.
    let served: Vec<&Arc<Stats>> = all
        .iter()
        .filter(|s| s.shard.is_none() || s.ha_active.load(Relaxed) == 1)
        .collect();
    for (name, kind, help, f) in series {
        header(&mut out, name, kind, help);
        for s in &served {
            sample(&mut out, name, s, "", f(s));
        }
    }
    let help = "differences rescans found and repaired, by class (as verify names them)";
    header(&mut out, "rescan_differences_total", "counter", help);
    for s in &served {
        for (class, n) in s.rescan_differences.lock().unwrap().iter() {
            let class = format!("class=\"{}\",", esc(class));
            sample(&mut out, "rescan_differences_total", s, &class, *n as f64);
        }
    }
    if all.iter().any(|s| s.ha_active.load(Relaxed) >= 0) {
        let help = "--ha: 1 while this instance is the active one (with --shards: holds the \
                    shard), 0 standing by";
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
        let help = "--ha: the link's shards this instance holds (without --shards the link is \
                    one shard: 1 while active)";
        header(&mut out, "shards_held", "gauge", help);
        if let Some(first) = all.first() {
            let mut held: Vec<Option<u32>> = all
                .iter()
                .filter(|s| s.ha_active.load(Relaxed) == 1)
                .map(|s| s.shard)
                .collect();
            held.dedup();
            let link = Stats::new("", &first.source, &first.target, &first.client, &first.path);
            sample(&mut out, "shards_held", &link, "", held.len() as f64);
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
    let shard = s
        .shard
        .map(|i| format!(",shard=\"{i}\""))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "SeaweedFS_filerSync_{name}{{{extra}sourceFiler=\"{}\",targetFiler=\"{}\",\
         clientName=\"{}\",path=\"{}\"{shard}}} {value}",
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

    /// GETs `path` from the endpoint at `addr`: the answer, and how long it took.
    fn scrape(addr: std::net::SocketAddr, path: &str) -> (String, Duration) {
        let t = Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        (text, t.elapsed())
    }

    #[test]
    fn silent_clients_do_not_starve_a_scrape() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = Arc::new(Stats::new("A→B", "a:1", "b:1", "c", "/"));
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let all = std::slice::from_ref(&s);
            let done = &done;
            scope.spawn(move || serve(listener, all, done));
            // Ten clients that connect and say nothing, one that says half
            // a request: each would have held a one-at-a-time server for
            // CLIENT_TIME.
            let mut silent: Vec<TcpStream> =
                (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
            let mut half = TcpStream::connect(addr).unwrap();
            half.write_all(b"GET /metr").unwrap();
            silent.push(half);
            let scrapes: Vec<_> = (0..4)
                .map(|_| scope.spawn(move || scrape(addr, "/metrics")))
                .collect();
            for s in scrapes {
                let (text, took) = s.join().unwrap();
                assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
                assert!(text.contains("SeaweedFS_filerSync_up{"), "{text}");
                assert!(took < CLIENT_TIME / 2, "{took:?}");
            }
            let (text, _) = scrape(addr, "/other");
            assert!(text.starts_with("HTTP/1.1 404"), "{text}");
            // The silent ones are let go once their time is up.
            let mut buf = [0u8; 16];
            silent[0].set_read_timeout(Some(CLIENT_TIME * 3)).unwrap();
            assert_eq!(silent[0].read(&mut buf).unwrap_or(0), 0);
            done.store(true, Ordering::SeqCst);
        });
    }

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
        assert_eq!(value("streams_opened_total"), "0");
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
        assert_eq!(text.matches("# TYPE").count(), 16);
        assert!(
            text.contains("SeaweedFS_filerSync_source_silent_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn a_shards_series_carry_its_label_and_only_its_holder_serves_them() {
        let shard = |i: u32, held: bool| {
            let mut s = Stats::new("A→B", "a:1", "b:1", "c", "/");
            s.shard = Some(i);
            s.ha_active.store(i64::from(held), Relaxed);
            Arc::new(s)
        };
        let all = [shard(0, true), shard(1, false), shard(2, true)];
        all[0].committed.store(5, Relaxed);
        let text = exposition(&all);
        let labels = "sourceFiler=\"a:1\",targetFiler=\"b:1\",clientName=\"c\",path=\"/\"";
        assert!(
            text.contains(&format!("events_processed_total{{{labels},shard=\"0\"}} 5")),
            "{text}"
        );
        // Shard 1 is another instance's: only whether this one holds it.
        assert!(
            text.contains(&format!("ha_active{{{labels},shard=\"1\"}} 0")),
            "{text}"
        );
        assert!(!text.contains("lag_seconds{sourceFiler=\"a:1\",targetFiler=\"b:1\",clientName=\"c\",path=\"/\",shard=\"1\"}"), "{text}");
        assert!(
            text.contains(&format!("shards_held{{{labels}}} 2")),
            "{text}"
        );
        // Without --ha: neither.
        let plain = exposition(&[Arc::new(Stats::new("A→B", "a:1", "b:1", "c", "/"))]);
        assert!(!plain.contains("shards_held") && !plain.contains("shard=\""));
    }
}
