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
    let mut first = Command::new(bin())
        .args([
            "sync",
            "-a",
            &aa,
            "-b",
            &ba,
            "--active-passive",
            "--state",
            &state,
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    eventually(30, "the first process to hold the lock", || {
        filer_sync::state::lock::running(std::path::Path::new(&state)).is_some()
    });
    a.put("/lock/x.txt", b"x");
    let (code, err) = once(&a, &b, &state, &[]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("in use by another filer-sync process")
            && err.contains(&format!("pid {}", first.id())),
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
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("paused") && err.contains("--max-delete 5"),
        "{err}"
    );
    assert_eq!(b.tree("/md").len(), 20, "nothing deleted on B");
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
