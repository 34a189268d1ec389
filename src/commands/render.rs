//! How a run shows itself to a person: the `pipeline::Observer` that turns
//! the engine's reports into text (the engine prints nothing itself). One
//! renderer per run; it owns stdout for the dry-run plan and stderr for the
//! progress line.

use crate::apply::{Op, Planned};
use crate::pipeline::Observer;
use crate::stats::Stats;
use crate::util::json_str;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Changes and bytes by operation.
type Tally = BTreeMap<Op, (u64, u64)>;

/// Renders what a run reports: a dry run's plan on stdout as it comes, one
/// line per change (`--json`: one JSON object per line) and a summary per
/// direction at the end; progress on stderr, a live line on a terminal and
/// a log line otherwise. A closed stdout (`| head`) ends the printing, not
/// the run.
pub struct Renderer {
    json: bool,
    /// Per direction, in the flows' order: changes and bytes by operation.
    totals: Mutex<Vec<(String, Tally)>>,
    closed: AtomicBool,
    terminal: bool,
    progress: Mutex<Progress>,
}

impl Renderer {
    pub fn new(json: bool, flows: Vec<String>, terminal: bool) -> Renderer {
        Renderer {
            json,
            progress: Mutex::new(Progress::new(flows.len())),
            totals: Mutex::new(flows.into_iter().map(|f| (f, BTreeMap::new())).collect()),
            closed: Default::default(),
            terminal,
        }
    }

    fn line(p: &Planned, flow: &str, json: bool) -> String {
        let dir = if p.is_directory { "/" } else { "" };
        if json {
            let from = p
                .from
                .as_deref()
                .map(|f| format!(",\"from\":{}", json_str(f)))
                .unwrap_or_default();
            format!(
                "{{\"direction\":{},\"op\":{},\"path\":{}{from},\"size\":{},\"dir\":{}}}",
                json_str(flow),
                json_str(p.op.as_str()),
                json_str(&p.path),
                p.size,
                p.is_directory
            )
        } else {
            let from = p
                .from
                .as_deref()
                .map(|f| format!("{f}{dir} -> "))
                .unwrap_or_default();
            format!(
                "{flow} {:<6} {from}{}{dir} ({} bytes)",
                p.op.as_str(),
                p.path,
                p.size
            )
        }
    }

    fn print(&self, text: &str) {
        use std::io::Write;
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    /// One line per direction: what it would have changed.
    pub fn summary(&self) {
        for (flow, by_op) in self.totals.lock().unwrap().iter() {
            let get = |op| by_op.get(&op).copied().unwrap_or((0, 0));
            let ops = [Op::Create, Op::Update, Op::Delete, Op::Move];
            let bytes: u64 = [Op::Create, Op::Update].iter().map(|&op| get(op).1).sum();
            let text = if self.json {
                let fields: Vec<String> = ops
                    .iter()
                    .map(|&op| format!("\"{}\":{}", op.as_str(), get(op).0))
                    .collect();
                format!(
                    "{{\"direction\":{},\"summary\":{{{},\"bytes\":{bytes}}}}}",
                    json_str(flow),
                    fields.join(",")
                )
            } else {
                let parts: Vec<String> = ops
                    .iter()
                    .map(|&op| format!("{} {}", get(op).0, op.as_str()))
                    .collect();
                format!(
                    "{flow} dry run: would {} ({bytes} bytes to copy); nothing was changed",
                    parts.join(", ")
                )
            };
            self.print(&text);
        }
    }
}

impl Observer for Renderer {
    fn planned(&self, flow: &str, changes: &[Planned]) {
        {
            let mut totals = self.totals.lock().unwrap();
            let Some((_, by_op)) = totals.iter_mut().find(|(f, _)| f == flow) else {
                return;
            };
            for p in changes {
                let t = by_op.entry(p.op).or_default();
                t.0 += 1;
                t.1 += p.size;
            }
        }
        let text: Vec<String> = changes
            .iter()
            .map(|p| Self::line(p, flow, self.json))
            .collect();
        self.print(&text.join("\n"));
    }

    fn progress(&self, all: &[Arc<Stats>], last: bool) {
        if last {
            if self.terminal {
                eprintln!();
            }
            return;
        }
        let line = self.progress.lock().unwrap().line(all);
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            log::info!("{line}");
        }
    }
}

/// A progress line for all directions: events/s, MB/s, lag and an ETA
/// from how fast the lag shrinks between two samples.
struct Progress {
    last: Vec<(u64, u64, f64)>,
    at: Instant,
}

impl Progress {
    fn new(n: usize) -> Progress {
        Progress {
            last: vec![(0, 0, 0.0); n],
            at: Instant::now(),
        }
    }

    fn line(&mut self, all: &[Arc<Stats>]) -> String {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        let mut parts = Vec::new();
        for (s, last) in all.iter().zip(self.last.iter_mut()) {
            let ev = s.committed.load(Relaxed);
            let by = s.bytes.load(Relaxed);
            let lag = s.lag_seconds();
            let shrink = (last.2 - lag) / dt;
            let eta = if lag > 1.0 && shrink > 0.0 {
                format!(", ETA {:.0}s", lag / shrink)
            } else {
                String::new()
            };
            let rescan = match s.rescan_listed.load(Relaxed) {
                u64::MAX => String::new(),
                n => format!(", rescan: {n} entries listed"),
            };
            parts.push(format!(
                "{}: {:.0} ev/s, {:.1} MB/s, lag {:.1}s{eta}, {} applied, {} failed{rescan}",
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

    #[test]
    fn progress_reports_rates() {
        let s = Arc::new(Stats::new("A→B", "a", "b", "c", "/"));
        let mut p = Progress::new(1);
        s.committed.store(100, Relaxed);
        let line = p.line(std::slice::from_ref(&s));
        assert!(
            line.starts_with("A→B: ") && line.contains("100 applied"),
            "{line}"
        );
        assert!(!line.contains("rescan"), "{line}");
        s.rescan_listed.store(1234, Relaxed);
        let line = p.line(std::slice::from_ref(&s));
        assert!(line.ends_with(", rescan: 1234 entries listed"), "{line}");
    }

    #[test]
    fn plan_lines_name_the_change() {
        let p = |op, from: Option<&str>, dir| Planned {
            op,
            path: "/d/b".into(),
            from: from.map(String::from),
            size: 5,
            is_directory: dir,
        };
        let text = Renderer::line(&p(Op::Create, None, false), "A→B", false);
        assert_eq!(text, "A→B create /d/b (5 bytes)");
        let text = Renderer::line(&p(Op::Move, Some("/d/a"), true), "A→B", false);
        assert_eq!(text, "A→B move   /d/a/ -> /d/b/ (5 bytes)");
        let json = Renderer::line(&p(Op::Move, Some("/d/a"), false), "A→B", true);
        assert_eq!(
            json,
            r#"{"direction":"A→B","op":"move","path":"/d/b","from":"/d/a","size":5,"dir":false}"#
        );
    }
}
