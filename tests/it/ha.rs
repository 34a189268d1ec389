//! `sync --ha` on real clusters: three instances with their own state files
//! elect one active through A's filer's DistributedLock; SIGKILLed actives
//! are replaced by a standby within the documented bound, an active cut off
//! from the lock's filer stops applying before its lease could run out, a
//! restarted lock filer (which forgets every lock) leaves one active, and
//! no two instances ever apply windows at the same time (checked from every
//! instance's log of applied windows).

use crate::faults::FaultProxy;
use crate::harness::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TTL: &str = "3";

/// One `sync --ha` instance, its stderr in a file.
struct Instance {
    run: Option<Running>,
    log: std::path::PathBuf,
    state: String,
}

impl Instance {
    fn start(a_addr: &str, b: &Cluster, n: usize) -> Instance {
        let state = temp_state(&format!("ha-{n}"));
        let log = std::path::PathBuf::from(format!("{state}.log"));
        let mut i = Instance {
            run: None,
            log,
            state,
        };
        i.restart(a_addr, b);
        i
    }

    /// (Re)starts it on its state file, appending to its log.
    fn restart(&mut self, a_addr: &str, b: &Cluster) {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // What the last process said of its role is history now.
        std::io::Write::write_all(&mut log, Self::STARTED.as_bytes()).unwrap();
        let child = Command::new(bin())
            .args(["sync", "-a", a_addr, "-b", &b.addr(), "--active-passive"])
            .args(["--ha", "--ha-ttl-secs", TTL, "--rescan-secs", "0"])
            .args(["--batch-window-ms", "50", "--state", &self.state])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.run = Some(Running(child));
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    const STARTED: &'static str = "--- (re)started by the test ---\n";

    /// Running, and its last word on the role is "active".
    fn is_active(&self) -> bool {
        let text = self.text();
        let this_run = text.rsplit(Self::STARTED).next().unwrap_or_default();
        self.run.is_some()
            && this_run
                .lines()
                .rfind(|l| l.contains("ha: active") || l.contains("ha: standing by"))
                .is_some_and(|l| l.contains("ha: active"))
    }

    fn kill(&mut self) {
        drop(self.run.take()); // SIGKILL and reap
    }
}

/// Every window an instance logged as applied: (start ns, end ns,
/// generation, instance).
fn windows(all: &[Instance]) -> Vec<(i64, i64, i64, usize)> {
    let mut out = Vec::new();
    for (n, i) in all.iter().enumerate() {
        for l in i.text().lines() {
            let Some(rest) = l.split("ha window applied from ").nth(1) else {
                continue;
            };
            let nums: Vec<i64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            // from S to E ns, K events, generation G
            out.push((nums[0], nums[1], nums[3], n));
        }
    }
    out.sort();
    out
}

/// No two windows of different instances overlap in time, and a later
/// instance's windows carry a higher generation.
fn assert_fenced(all: &[Instance]) {
    let w = windows(all);
    for pair in w.windows(2) {
        let ((s1, e1, g1, i1), (s2, _, g2, i2)) = (pair[0], pair[1]);
        if i1 != i2 {
            assert!(
                e1 <= s2,
                "instance {i1}'s window ({s1}..{e1}, generation {g1}) overlaps instance {i2}'s \
                 (from {s2}, generation {g2})"
            );
            assert!(g2 > g1, "generations {g1} then {g2}");
        }
    }
}

/// A steady writer on A until dropped; returns how many files it wrote (a
/// write refused while A's filer restarts is not counted, nor compared).
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    fn start(a: &Cluster, root: &str) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, s) = (a.url(root), stop.clone());
        let thread = std::thread::spawn(move || {
            let agent = http();
            let mut n = 0u64;
            let mut wrote = 0;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let r = agent
                    .put(&format!("{url}/d{}/f{n}.bin", n % 7))
                    .send(&bytes(n, 1000 + (n as usize % 5) * 700)[..]);
                if r.is_ok_and(|r| r.status().as_u16() < 300) {
                    wrote += 1;
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(15));
            }
            wrote
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn active_one(all: &[Instance], within: u64) -> usize {
    let mut found = None;
    eventually(within, "one active instance", || {
        let active: Vec<usize> = (0..all.len()).filter(|&n| all[n].is_active()).collect();
        found = active.first().copied();
        active.len() == 1
    });
    found.unwrap()
}

/// Three instances; the active one is SIGKILLed three times in a row while
/// A takes a steady load: a standby takes over each time within TTL + TTL/3
/// and the start-up of a term (asserted under 30 s; TTL 3 s here), and B
/// ends equal to A with nothing missing.
#[test]
fn a_standby_takes_over_when_the_active_dies() {
    let a = Cluster::start();
    let b = Cluster::start();
    let writer = Writer::start(&a, "/ha");
    let mut all: Vec<Instance> = (0..3).map(|n| Instance::start(&a.addr(), &b, n)).collect();
    let mut active = active_one(&all, 60);
    let mut takeovers = Vec::new();
    for _ in 0..3 {
        // Mid-work: the active has committed windows of its own.
        eventually(30, "the active instance to apply windows", || {
            windows(&all).iter().any(|w| w.3 == active)
        });
        let before = windows(&all).len();
        all[active].kill();
        let killed = Instant::now();
        let next = active_one(&all, 30);
        takeovers.push(killed.elapsed());
        assert_ne!(next, active);
        eventually(30, "the new active instance to apply windows", || {
            windows(&all).len() > before && windows(&all).iter().any(|w| w.3 == next)
        });
        all[active].restart(&a.addr(), &b);
        active = next;
    }
    let wrote = writer.finish();
    eventually(60, "B to equal A", || a.tree("/ha") == b.tree("/ha"));
    assert_same(&a.tree("/ha"), &b.tree("/ha"));
    assert!(wrote > 100, "the writer wrote {wrote} files");
    assert_fenced(&all);
    eprintln!("takeovers after SIGKILL: {takeovers:?}");
    // status names the role of each instance.
    let (_, out) = run_sync(
        &["status", "--json", "--state", &all[active].state],
        Duration::from_secs(30),
    );
    assert!(out.contains("\"role\":\"active\""), "{out}");
}

/// The active instance reaches A's filer (and so the lock) through a proxy
/// that stops passing bytes; it still reaches B. It stops applying before
/// its lease could have run out, a standby takes over, and no window of
/// the two overlaps; B ends equal to A.
#[test]
fn an_active_cut_off_from_the_lock_stops_applying() {
    let a = Cluster::start();
    let b = Cluster::start();
    let proxy = FaultProxy::start(a.filer + 10000);
    let through_proxy = format!("127.0.0.1:{}.{}", a.filer, proxy.port);
    let writer = Writer::start(&a, "/hc");
    let mut all = vec![Instance::start(&through_proxy, &b, 10)];
    active_one(&all, 60);
    all.push(Instance::start(&a.addr(), &b, 11));
    eventually(30, "the first instance to apply windows", || {
        windows(&all).iter().any(|w| w.3 == 0)
    });
    proxy.set(crate::faults::Mode::Stall);
    eventually(30, "the first instance to step down", || {
        all[0].text().contains("no longer the active instance")
    });
    eventually(30, "the second instance to take over", || {
        all[1].is_active()
    });
    eventually(30, "the second instance to apply windows", || {
        windows(&all).iter().any(|w| w.3 == 1)
    });
    proxy.set(crate::faults::Mode::Pass);
    proxy.cut();
    let wrote = writer.finish();
    eventually(60, "B to equal A", || a.tree("/hc") == b.tree("/hc"));
    assert_same(&a.tree("/hc"), &b.tree("/hc"));
    assert!(wrote > 50, "the writer wrote {wrote} files");
    assert_fenced(&all);
}

/// A's filer, which holds the lock (a single-filer cluster), restarts twice
/// while two instances run: once stopped as a supervisor does (SIGTERM; it
/// takes about 15 s, longer than the lease) under a steady load, once
/// SIGKILLed and started again at once (the new filer answers a renewal
/// with a lock it never granted). Each time the lock is forgotten: the
/// group elects again (a window of a higher generation follows), ends with
/// exactly one active, never with two applying at once, and B equals A.
#[test]
fn a_restarted_lock_filer_leaves_one_active_and_loses_nothing() {
    let mut a = Cluster::start();
    let b = Cluster::start();
    let all: Vec<Instance> = (0..2)
        .map(|n| Instance::start(&a.addr(), &b, 20 + n))
        .collect();
    let newest = |all: &[Instance]| windows(all).iter().map(|w| w.2).max();
    let writer = Writer::start(&a, "/hr");
    let first = active_one(&all, 60);
    eventually(30, "the active instance to apply windows", || {
        windows(&all).iter().any(|w| w.3 == first)
    });
    let before = newest(&all).unwrap();
    a.restart_filer_gracefully();
    eventually(
        60,
        "a window of a new term after the graceful restart",
        || newest(&all) > Some(before),
    );
    active_one(&all, 30);
    let wrote = writer.finish();
    eventually(60, "B to equal A", || a.tree("/hr") == b.tree("/hr"));
    // A SIGKILLed filer loses the tail of its log (what any log follower
    // would miss, see follow.rs): the writes stop before it.
    let before = newest(&all).unwrap();
    a.restart_filer();
    for n in 0..20 {
        a.put(&format!("/hr/after/{n}.txt"), &bytes(n, 500));
    }
    eventually(60, "a window of a new term after the SIGKILL", || {
        newest(&all) > Some(before)
    });
    active_one(&all, 30);
    eventually(60, "B to equal A", || a.tree("/hr") == b.tree("/hr"));
    assert_same(&a.tree("/hr"), &b.tree("/hr"));
    assert!(wrote > 100, "the writer wrote {wrote} files");
    assert_fenced(&all);
    let said: Vec<String> = all.iter().map(|i| i.text()).collect();
    eprintln!(
        "lock answers after the SIGKILL restart: {:?}",
        said.iter()
            .flat_map(|t| t.lines().filter(|l| l.contains("ha: the lock")))
            .collect::<Vec<_>>()
    );
}

/// What an active instance knew of the versions its source had moved past
/// (`Dirs::behind`, which decides a later delete or move of those paths)
/// is shared on B's KV with the checkpoint, and an instance that takes the
/// checkpoint over takes those marks with it, in place of its own older
/// ones. Planted here as an active instance would have shared them: a
/// standby's own state file holds a mark from an older term.
#[test]
fn a_takeover_adopts_the_marks_shared_with_the_checkpoint() {
    use filer_sync::state::{encode_marks, Commit, Direction, State};
    let a = Cluster::start();
    let b = Cluster::start();
    let (sig_a, sig_b) = (
        a.client().configuration().unwrap().signature,
        b.client().configuration().unwrap().signature,
    );
    let d = Direction {
        source_sig: sig_a,
        source_path: "/".into(),
        target_sig: sig_b,
        target_path: "/".into(),
        shard: None,
    };
    let state = temp_state("ha-marks");
    let mut i = Instance {
        run: None,
        log: std::path::PathBuf::from(format!("{state}.log")),
        state,
    };
    let path = std::path::Path::new(&i.state).to_path_buf();
    let old = filer_sync::util::now_ns() - 60_000_000_000;
    State::open(&path)
        .unwrap()
        .commit(
            &d,
            &Commit {
                ts_ns: old,
                behind: Some(vec!["/older/term".into()]),
                ..Commit::default()
            },
        )
        .unwrap();
    let shared = vec!["/m/a.bin".to_string(), "/m/b c.bin".to_string()];
    let kv = b.client();
    kv.kv_put(&d.behind_key(), &encode_marks(&shared)).unwrap();
    kv.kv_put(
        &d.shared_key(),
        &filer_sync::state::reference::encode(old + 30_000_000_000),
    )
    .unwrap();
    i.restart(&a.addr(), &b);
    eventually(60, "the shared checkpoint taken over", || {
        i.text().contains("starting from the shared checkpoint")
    });
    i.kill();
    assert_eq!(State::open(&path).unwrap().behind(&d).unwrap(), shared);
}
