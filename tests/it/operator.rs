//! Operator tools and safety rails on real clusters: the state-file lock
//! (cron overlap), --max-delete, --bwlimit, status, and checkpoints,
//! including import from and export to `weed filer.sync`'s own checkpoint.

use crate::harness::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_second_process_on_the_same_state_is_refused() {
    let a = Cluster::start();
    let b = Cluster::start();
    let state = temp_state("lock");
    let (aa, ba) = (a.addr(), b.addr());
    let mut first = Running(one_way_sync(&aa, &ba, &state).spawn().unwrap());
    eventually(30, "the first process to hold the lock", || {
        filer_sync::state::lock::running(std::path::Path::new(&state)).is_some()
    });
    a.put("/lock/x.txt", b"x");
    let (code, err) = once(&a, &b, &state, &[]);
    let first_pid = first.id();
    let _ = first.0.kill();
    let _ = first.0.wait();
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("in use by another filer-sync process")
            && err.contains(&format!("pid {first_pid}")),
        "{err}"
    );
    // Once the first is gone, the next run goes ahead.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn max_delete_pauses_instead_of_emptying_the_target() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..20 {
        a.put(&format!("/md/f{i}.txt"), b"keep me");
    }
    let state = temp_state("maxdelete");
    let (code, err) = once(&a, &b, &state, &["--max-delete", "5"]);
    assert_eq!(code, 0, "{err}");
    for i in 0..20 {
        a.delete(&format!("/md/f{i}.txt"));
    }
    let (code, err) = once(&a, &b, &state, &["--max-delete", "5"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("paused") && err.contains("--max-delete 5"),
        "{err}"
    );
    // Deletes that arrived in earlier windows of the same minute went
    // through while they stayed within the budget; never more than 5.
    let left = b.tree("/md").len();
    assert!(
        left >= 15,
        "{} deletes reached B past --max-delete 5",
        20 - left
    );
    // Let it through deliberately.
    let (code, err) = once(&a, &b, &state, &["--max-delete", "100"]);
    assert_eq!(code, 0, "{err}");
    assert!(b.tree("/md").is_empty());
}

#[test]
fn bwlimit_slows_chunk_bytes() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..3 {
        a.put(&format!("/bw/{i}.bin"), &bytes(i, 1 << 20));
    }
    let state = temp_state("bwlimit");
    let t = Instant::now();
    let (code, err) = once(&a, &b, &state, &["--bwlimit", "1M"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/bw"), &b.tree("/bw"));
    // 3 MiB at 1 MiB/s with one second of burst: at least ~2 s.
    assert!(took >= Duration::from_millis(1800), "took {took:?}");
}

fn weed_sync(a: &Cluster, b: &Cluster) -> Running {
    Running(
        Command::new(weed())
            .args([
                "filer.sync",
                "-a",
                &a.addr(),
                "-b",
                &b.addr(),
                "-isActivePassive",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn events_applied(stderr: &str) -> u64 {
    let i = stderr.find("A→B done: ").expect("summary line");
    stderr[i + "A→B done: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn switch_from_weed_filer_sync_by_importing_its_checkpoint() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..20 {
        a.put(&format!("/sw/before{i}.txt"), b"copied by weed filer.sync");
    }
    let weed_run = weed_sync(&a, &b);
    eventually(60, "weed filer.sync copied the first files", || {
        b.tree("/sw").len() == 20
    });
    // The reference saves only when an event arrives 3 s after its last save, and on SIGTERM.
    std::thread::sleep(Duration::from_secs(4));
    a.put("/sw/trigger.txt", b"makes weed save its checkpoint");
    eventually(30, "the trigger on B", || {
        b.get("/sw/trigger.txt").is_some()
    });
    unsafe { libc::kill(weed_run.id() as i32, libc::SIGTERM) };
    let mut weed_run = weed_run;
    let _ = weed_run.0.wait();

    let state = temp_state("import");
    let (code, err) = checkpoint(&a, &b, &state, "import", &[]);
    assert_eq!(code, 0, "{err}");
    for i in 0..5 {
        a.put(&format!("/sw/after{i}.txt"), b"copied by filer-sync");
    }
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/sw"), &b.tree("/sw"));
    // Only what came after the reference's last save was replayed.
    let n = events_applied(&err);
    assert!((5..=8).contains(&n), "{n} events replayed:\n{err}");

    // Status shows the imported-then-advanced checkpoint.
    let out = Command::new(bin())
        .args(["status", "--state", &state, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains("\"running_pid\":null") && json.contains(&format!("\"events_applied\":{n}")),
        "{json}"
    );
}

#[test]
fn switch_back_by_exporting_for_weed_filer_sync() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/back/old.txt", b"before the exported checkpoint");
    std::thread::sleep(Duration::from_millis(200));
    let state = temp_state("export");
    let now_ms = (filer_sync::util::now_ns() / 1_000_000).to_string();
    let (code, err) = checkpoint(&a, &b, &state, "set", &["--ts-ms", &now_ms]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = checkpoint(&a, &b, &state, "export", &[]);
    assert_eq!(code, 0, "{err}");
    let sig_a = a.client().configuration().unwrap().signature;
    let v = b
        .client()
        .kv_get(&filer_sync::state::reference::key(sig_a, "/", "/"))
        .unwrap();
    assert_eq!(
        filer_sync::state::reference::decode(&v),
        Some(now_ms.parse::<i64>().unwrap() * 1_000_000)
    );
    // weed filer.sync resumes from it: the older file stays behind, a new one goes.
    let weed_run = weed_sync(&a, &b);
    a.put("/back/new.txt", b"after");
    eventually(60, "weed filer.sync copied the new file", || {
        b.get("/back/new.txt").is_some()
    });
    drop(weed_run);
    assert!(
        b.get("/back/old.txt").is_none(),
        "weed started from our checkpoint, not from the beginning"
    );

    let (code, err) = checkpoint(&a, &b, &state, "reset", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        b.get("/back/old.txt").unwrap(),
        b"before the exported checkpoint",
        "reset replays from the start"
    );
}

#[test]
fn metrics_and_progress_while_following() {
    let a = Cluster::start();
    let b = Cluster::start();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = temp_state("metrics");
    let (aa, ba) = (a.addr(), b.addr());
    let mut child = Running(
        one_way_sync(&aa, &ba, &state)
            .args(["--metrics-port", &port.to_string(), "--progress-secs", "1"])
            // Counted as events: the files written before it start come from the log.
            .args(["--bootstrap", "log"])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for i in 0..25 {
        a.put(&format!("/met/{i}.bin"), &bytes(i, 10_000));
    }
    let url = format!("http://127.0.0.1:{port}/metrics");
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("SeaweedFS_filerSync_{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let mut text = String::new();
    eventually(60, "metrics to count the events", || {
        text = http()
            .get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        value(&text, "events_processed_total") >= 26.0
    });
    assert!(
        text.contains(&format!("sourceFiler=\"{aa}\",targetFiler=\"{ba}\"")),
        "{text}"
    );
    assert!(value(&text, "processed_bytes_total") >= 250_000.0, "{text}");
    assert!(value(&text, "sync_offset") > 1e18, "{text}");
    assert_eq!(value(&text, "events_failed_total"), 0.0, "{text}");
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(child.0.wait().unwrap().success(), "{err}");
    assert!(
        err.contains("A→B: ") && err.contains(" ev/s, ") && err.contains(" applied, 0 failed"),
        "{err}"
    );
}
