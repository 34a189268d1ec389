//! The replica survives the operator's mistakes and the source's disasters,
//! on real clusters: a mistyped source folder is refused before anything is
//! written, a walk that would delete most of the target pauses until the
//! operator consents with `--max-delete`, and deletes are counted in entries
//! (a folder is everything below it). Each refusal is proven by counting the
//! target's files after the refused run.

use crate::faults::{FaultProxy, Mode};
use crate::harness::*;
use filer_sync::pb::filer::CreateEntryRequest;
use std::time::Duration;

/// `n` small files `f{i}.txt` under `dir` on `c`, made through gRPC (fast).
fn fill(c: &Cluster, dir: &str, n: usize) {
    let client = c.client();
    let now = filer_sync::util::now_ns() / 1_000_000_000;
    for i in 0..n {
        let mut req = CreateEntryRequest::new();
        req.directory = dir.into();
        req.entry = Some(inline_entry(&format!("f{i}.txt"), b"replica", now)).into();
        client.create(&req).unwrap();
    }
}

fn files(t: &Tree) -> usize {
    t.len()
}

#[test]
fn a_missing_source_folder_is_refused_and_the_target_untouched() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/data/real.txt", b"the folder that was meant");
    b.mkdir("/data");
    fill(&b, "/data", 120);
    let before = b.tree("/data");
    assert_eq!(files(&before), 120);
    let state = temp_state("missing-root");
    let typo = ["--a-path", "/dta", "--b-path", "/data"];
    // One way, a first run: the walk would have made B's folder empty.
    let (code, err) = once(&a, &b, &state, &typo);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("A has no folder /dta") && err.contains("--a-path"),
        "{err}"
    );
    assert_same(&before, &b.tree("/data"));
    // verify --repair and migrate refuse it alike.
    let (aa, ba) = (a.addr(), b.addr());
    let mut args = vec!["verify", "-a", &aa, "-b", &ba, "--repair"];
    args.extend_from_slice(&typo);
    let (code, err) = run_sync(&args, Duration::from_secs(60));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("A has no folder /dta"), "{err}");
    let state2 = temp_state("missing-root-migrate");
    let mut args = vec!["migrate", "-a", &aa, "-b", &ba, "--state", &state2];
    args.extend_from_slice(&typo);
    let (code, err) = run_sync(&args, Duration::from_secs(60));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("A has no folder /dta"), "{err}");
    assert_same(&before, &b.tree("/data"));
    // A folder that comes later is no mistake while B holds nothing there.
    let state3 = temp_state("missing-root-later");
    let (code, err) = once(
        &a,
        &b,
        &state3,
        &["--a-path", "/later", "--b-path", "/later"],
    );
    assert_eq!(code, 0, "{err}");
    // The folder as meant works.
    let (code, err) = once(&a, &b, &state, &["--a-path", "/data", "--b-path", "/data"]);
    assert_eq!(code, 4, "deleting 120 of 121 needs consent: {err}");
    // A's file was copied (copies never need consent); B lost nothing.
    let after = b.tree("/data");
    assert!(before.keys().all(|k| after.contains_key(k)) && after.len() == 121);
}

#[test]
fn a_walk_that_would_delete_most_of_the_target_pauses_until_consent() {
    let a = Cluster::start();
    let b = Cluster::start();
    // A keeps 20 of B's 200 files: a first run one way would delete 90 %
    // of B's folder.
    a.mkdir("/r");
    fill(&a, "/r", 20);
    b.mkdir("/r");
    fill(&b, "/r", 200);
    let state = temp_state("big-delete");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("would delete 180 entries under /") && err.contains("--max-delete 180"),
        "{err}"
    );
    assert_eq!(files(&b.tree("/r")), 200, "nothing deleted");
    // verify --repair weighs the same deletes.
    let (aa, ba) = (a.addr(), b.addr());
    let args = ["verify", "-a", &aa, "-b", &ba, "--repair"];
    let (code, err) = run_sync(&args, Duration::from_secs(60));
    assert_eq!(code, 4, "{err}");
    assert_eq!(files(&b.tree("/r")), 200, "verify --repair deleted nothing");
    // Consent: exactly the count the refusal named.
    let (code, err) = once(&a, &b, &state, &["--max-delete", "180"]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/r"), &b.tree("/r"));
}

#[test]
fn deletes_are_counted_in_entries_not_top_level_paths() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/big/keep.txt", b"kept on both");
    b.put("/big/keep.txt", b"kept on both");
    b.mkdir("/big/sub");
    fill(&b, "/big/sub", 1000);
    let state = temp_state("count-entries");
    // One top-level path, 1,001 entries: --max-delete 1 deletes nothing.
    let (code, err) = once(&a, &b, &state, &["--max-delete", "1"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("more than --max-delete 1"), "{err}");
    assert_eq!(files(&b.tree("/big/sub")), 1000, "nothing deleted");
    // Without a budget the default rule weighs the whole folder: 1,001 of
    // 1,003 entries is more than half.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("would delete 1001 entries"), "{err}");
    assert_eq!(files(&b.tree("/big/sub")), 1000, "nothing deleted");
    let (code, err) = once(&a, &b, &state, &["--max-delete", "1001"]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/big"), &b.tree("/big"));
}

#[test]
fn walks_leave_each_clusters_system_folder_alone() {
    let a = Cluster::start();
    let b = Cluster::start();
    let plant = |c: &Cluster, dir: &str, name: &str| {
        let mut req = CreateEntryRequest::new();
        req.directory = dir.into();
        req.entry = Some(inline_entry(name, b"this cluster's own", 1)).into();
        c.client().create(&req).unwrap();
    };
    // B's own metadata log, and A's own system data; a topic a user made.
    plant(&b, "/topics/.system/log/2026-12-06", "01-00.b0b0b0b0");
    plant(&a, "/topics/.system/mine", "a.txt");
    a.put("/topics/ns/t/data.txt", b"a user's topic");
    a.put("/d/x.txt", b"x");
    let state = temp_state("system-folder");
    // A one-way first run of the whole tree: B's log is neither deleted
    // (it is only on B) nor joined by A's.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(b
        .get("/topics/.system/log/2026-12-06/01-00.b0b0b0b0")
        .is_some());
    assert!(b.get("/topics/.system/mine/a.txt").is_none());
    assert_eq!(
        b.get("/topics/ns/t/data.txt").as_deref(),
        Some(&b"a user's topic"[..])
    );
    // verify compares neither, and --repair touches neither.
    let (code, out) = verify(&a, &b, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(b
        .get("/topics/.system/log/2026-12-06/01-00.b0b0b0b0")
        .is_some());
    assert!(b.get("/topics/.system/mine/a.txt").is_none());
}

fn metric(port: u16, name: &str, source: &str) -> Option<f64> {
    let text = http()
        .get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find(|l| {
            l.starts_with(&format!("SeaweedFS_filerSync_{name}{{"))
                && l.contains(&format!("sourceFiler=\"{source}"))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A's filer comes back on an empty store while the sync follows with a
/// rescan every second: its direction pauses for a human (the log says
/// why, the `paused` metric is 1), every rescan after refuses, and B keeps
/// every file; `checkpoint reset` then accepts the new store, and the next
/// run's walk pauses before deleting B's files.
#[test]
fn a_source_back_on_an_empty_store_is_never_mirrored() {
    let mut a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/keep");
    fill(&a, "/keep", 150);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = temp_state("empty-store");
    let (aa, ba) = (a.addr(), b.addr());
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["sync", "-a", &aa, "-b", &ba, "--state", &state])
        .args(["--rescan-secs", "1", "--metrics-port", &port.to_string()]);
    let (_sync, log) = spawn_logged(cmd, "empty-store");
    eventually(60, "A's files on B", || b.tree("/keep").len() == 150);
    let before = b.tree("/keep");
    a.restart_filer_on_empty_store();
    a.mkdir("/keep");
    let read = || std::fs::read_to_string(&log).unwrap();
    eventually(60, "A→B paused, visible in the metrics", || {
        metric(port, "paused", &aa) == Some(1.0)
    });
    assert!(read().contains("store was replaced or reset"), "{}", read());
    // Several rescan periods pass, each refused; B loses nothing.
    let refusals = || {
        read()
            .lines()
            .filter(|l| l.contains("rescan: ") && l.contains("now has filer store signature"))
            .count()
    };
    eventually(60, "three refused rescans", || refusals() >= 3);
    assert_same(&before, &b.tree("/keep"));
    drop(_sync);
    // The operator accepts the new store; a first run one way would make
    // B empty, and pauses before deleting anything.
    let (code, out) = checkpoint(&a, &b, &state, "reset", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted"), "{out}");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 4, "{err}");
    assert_same(&before, &b.tree("/keep"));
}

/// Waits until the metrics show A's stream silent for `secs` at least.
fn silent_for(port: u16, a: &Cluster, secs: f64) {
    let source = format!("127.0.0.1:{}", a.filer);
    eventually(60, "the silence in the metrics", || {
        metric(port, "source_silent_seconds", &source).is_some_and(|s| s >= secs)
    });
}

/// Both stall tests: a one-way sync whose A is reached through `proxy`,
/// re-subscribing after 10 s of silence, serving metrics; B has A's /st.
fn stalled_sync(
    a: &Cluster,
    b: &Cluster,
    proxy: &FaultProxy,
    name: &str,
) -> (Running, u16, std::path::PathBuf) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a_addr = format!("127.0.0.1:{}.{}", a.filer, proxy.port);
    let mut cmd = one_way_sync(&a_addr, &b.addr(), &temp_state(name));
    cmd.args(["--stall-secs", "10", "--metrics-port", &port.to_string()]);
    let (sync, log) = spawn_logged(cmd, name);
    a.put("/st/first.txt", b"before the stall");
    eventually(60, "the first file on B", || {
        b.get("/st/first.txt").is_some()
    });
    (sync, port, log)
}

/// The source's stream stays connected (pings answered) and sends
/// nothing while A is written: the silence shows in the metrics, the sync
/// re-subscribes after --stall-secs, and everything reaches B.
#[test]
fn a_hung_subscription_is_seen_and_re_subscribed() {
    let a = Cluster::start();
    let b = Cluster::start();
    let proxy = FaultProxy::start_h2(a.filer + 10000);
    let (_sync, port, log) = stalled_sync(&a, &b, &proxy, "hung");
    proxy.set(Mode::HoldData);
    for i in 0..20 {
        a.put(
            &format!("/st/during-{i}.txt"),
            b"written while the stream hung",
        );
    }
    silent_for(port, &a, 5.0);
    let read = || std::fs::read_to_string(&log).unwrap();
    eventually(60, "the stall noticed", || {
        read().contains("a stalled subscription")
    });
    proxy.set(Mode::Pass);
    eventually(60, "everything on B", || b.tree("/st").len() == 21);
    assert_same(&a.tree("/st"), &b.tree("/st"));
}

/// A's gRPC port is blackholed (connections held open, nothing forwarded)
/// for 20 s while A is written: the silence shows while it lasts, and
/// after the heal everything reaches B.
#[test]
fn a_blackholed_source_heals_and_its_silence_shows() {
    let a = Cluster::start();
    let b = Cluster::start();
    let proxy = FaultProxy::start(a.filer + 10000);
    let (_sync, port, _log) = stalled_sync(&a, &b, &proxy, "blackhole");
    proxy.set(Mode::Stall);
    let began = std::time::Instant::now();
    for i in 0..20 {
        a.put(&format!("/st/during-{i}.txt"), b"written while blackholed");
    }
    silent_for(port, &a, 10.0);
    while began.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.set(Mode::Pass);
    eventually(60, "everything on B after the heal", || {
        b.tree("/st").len() == 21
    });
    assert_same(&a.tree("/st"), &b.tree("/st"));
}

/// While following, `--max-delete` counts a folder's delete as everything
/// below it (a folder moved out of the synced folder is one delete on the
/// target), and remembers across runs what was deleted within the minute:
/// a cron job cannot delete N a run.
#[test]
fn the_follow_budget_counts_entries_and_spans_runs() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/data/sub");
    fill(&a, "/data", 12);
    fill(&a, "/data/sub", 30);
    let state = temp_state("follow-budget");
    let pair = ["--a-path", "/data", "--b-path", "/data"];
    let (code, err) = once(&a, &b, &state, &pair);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/data"), &b.tree("/data"));
    let budget = [&pair[..], &["--max-delete", "10", "--bootstrap", "log"]].concat();
    for i in 0..6 {
        a.delete(&format!("/data/f{i}.txt"));
    }
    let (code, err) = once(&a, &b, &state, &budget);
    assert_eq!(code, 0, "6 deletes within 10: {err}");
    for i in 6..12 {
        a.delete(&format!("/data/f{i}.txt"));
    }
    // The run before deleted 6 within the minute: 6 more would make 12.
    // (Windows within the budget may go through first, never past it.)
    let (code, err) = once(&a, &b, &state, &budget);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("more than --max-delete 10"), "{err}");
    let left = (6..12)
        .filter(|i| b.get(&format!("/data/f{i}.txt")).is_some())
        .count();
    assert!(left >= 2, "{} deletes past --max-delete 10", 12 - left);
    // One folder of 30 files moved out of the synced folder: one delete on
    // B that takes 31 entries, past 25 whatever the minute held before.
    a.mv("/data/sub", "/elsewhere");
    let consent = [&pair[..], &["--max-delete", "100"]].concat();
    let (code, err) = once(
        &a,
        &b,
        &state,
        &[&pair[..], &["--max-delete", "25"]].concat(),
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("more than --max-delete 25"), "{err}");
    assert_eq!(b.tree("/data/sub").len(), 30, "nothing of it deleted");
    let (code, err) = once(&a, &b, &state, &consent);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/data"), &b.tree("/data"));
}
