//! Long-running mode: follows the source continuously, rides out a target
//! filer restart and a lost source stream, keeps chunk traffic on the filers
//! in proxy mode, and stops cleanly on SIGTERM with the checkpoint committed.

use crate::harness::*;
use std::time::{Duration, Instant};

fn start(a: &Cluster, b: &Cluster, state: &str, extra: &[&str]) -> Running {
    Running(
        one_way_sync(&a.addr(), &b.addr(), state)
            .args(extra)
            .spawn()
            .unwrap(),
    )
}

fn write_batch(a: &Cluster, tag: &str, n: u64) {
    for i in 0..n {
        a.put(&format!("/live/{tag}/f{i}.bin"), &bytes(i, 3000));
    }
}

fn converged(a: &Cluster, b: &Cluster) -> bool {
    a.tree("/live") == b.tree("/live")
}

#[test]
fn follows_through_restarts_and_stops_on_sigterm() {
    let mut a = Cluster::start();
    let mut b = Cluster::start();
    let state = temp_state("follow");
    let mut child = start(&a, &b, &state, &[]);
    write_batch(&a, "one", 30);
    eventually(60, "first batch on B", || converged(&a, &b));

    b.restart_filer();
    write_batch(&a, "two", 30);
    eventually(90, "second batch after the target filer restarted", || {
        converged(&a, &b)
    });

    a.restart_filer();
    write_batch(&a, "three", 30);
    eventually(90, "third batch after the source stream was lost", || {
        converged(&a, &b)
    });

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Everything was committed: a catch-up run finds nothing to do.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("done: 0 events"), "{err}");
}

/// Remote TCP ports of the sockets process `pid` holds (IPv4 and IPv6 loopback).
fn remote_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(l) = std::fs::read_link(fd.path()) {
            let l = l.to_string_lossy().into_owned();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && inodes.contains(cols[9]) {
                if let Some(p) = cols[2].rsplit(':').next() {
                    ports.push(u16::from_str_radix(p, 16).unwrap());
                }
            }
        }
    }
    ports
}

/// Runs a continuous sync of a few chunked files and returns the ports its
/// sockets were connected to once the data had arrived.
fn ports_used(proxy: bool) -> (Vec<u16>, Cluster, Cluster) {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..5 {
        a.put(&format!("/live/p{i}.bin"), &bytes(i, 100_000));
    }
    let state = temp_state("ports");
    // Copied from the log by the long-running process, whose sockets are read.
    let extra: &[&str] = if proxy {
        &["--a-filer-proxy", "--b-filer-proxy", "--bootstrap", "log"]
    } else {
        &["--bootstrap", "log"]
    };
    let child = start(&a, &b, &state, extra);
    eventually(60, "files on B", || converged(&a, &b));
    let ports = remote_ports(child.id());
    drop(child);
    (ports, a, b)
}

#[test]
fn filer_proxy_never_connects_to_volume_servers() {
    let (ports, a, b) = ports_used(true);
    assert!(
        !ports.contains(&a.volume) && !ports.contains(&b.volume),
        "{ports:?}"
    );
    assert!(
        ports.contains(&a.filer) || ports.contains(&b.filer),
        "HTTP to the filers: {ports:?}"
    );
    // Control: without the proxy flags the same check does see volume servers.
    let (ports, a, b) = ports_used(false);
    assert!(
        ports.contains(&a.volume) || ports.contains(&b.volume),
        "{ports:?}"
    );
}

#[test]
fn rides_out_volume_server_outages_on_either_side() {
    let mut a = Cluster::start();
    let mut b = Cluster::start();
    let state = temp_state("volume-outage");
    let _sync = start(&a, &b, &state, &[]);
    write_batch(&a, "before", 10);
    eventually(60, "first batch on B", || converged(&a, &b));
    // Target volume server down: uploads fail and are retried, nothing is skipped.
    b.stop("volume");
    write_batch(&a, "target-down", 10);
    std::thread::sleep(Duration::from_secs(5));
    b.start_volume();
    eventually(120, "writes made while B's volume server was down", || {
        converged(&a, &b)
    });
    // Source volume server down: the new entries' chunks cannot be read until it is back.
    write_batch(&a, "source-down", 10);
    a.stop("volume");
    std::thread::sleep(Duration::from_secs(5));
    a.start_volume();
    eventually(
        120,
        "writes whose chunks were unreadable for a while",
        || converged(&a, &b),
    );
    drop(_sync);
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("failed: "),
        "nothing went to the failure ledger: {err}"
    );
}

/// One way, following: a rescan every few seconds repairs what the log does
/// not bring (here, writes made on B itself: a file deleted, one written
/// over, an extra file and folder), and a rescan over equal trees changes
/// nothing.
#[test]
fn a_rescan_repairs_what_the_log_does_not_bring() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..10 {
        a.put(&format!("/rs/f{i}.txt"), format!("file {i}").as_bytes());
    }
    let state = temp_state("rescan");
    let mut cmd = one_way_sync(&a.addr(), &b.addr(), &state);
    cmd.args(["--rescan-secs", "2", "--rescan-rate", "500"]);
    let (_sync, log) = spawn_logged(cmd, "rescan");
    let same = || a.tree("/rs") == b.tree("/rs");
    eventually(60, "the first copy on B", same);
    let text = || std::fs::read_to_string(&log).unwrap();
    eventually(30, "a rescan over equal trees", || {
        text().contains("rescan: ") && text().contains(" 0 differences, 0 entries copied")
    });
    b.delete("/rs/f1.txt");
    b.put("/rs/f2.txt", b"written over on B");
    b.put("/rs/extra.txt", b"only on B");
    b.put("/rs/extra-dir/x.txt", b"only on B");
    eventually(60, "B repaired by a rescan", same);
    assert!(
        text()
            .lines()
            .any(|l| l.contains("rescan: ") && !l.contains(" 0 differences")),
        "{}",
        text()
    );
}

/// One way, following, with the default six-hour period: the sync paused,
/// files written and a folder moved on A, A's filer killed (its log loses
/// what was still in memory) and restarted. When the stream answers again,
/// a rescan runs at once and brings what the log lost.
#[test]
fn a_broken_stream_brings_a_rescan_forward() {
    let mut a = Cluster::start();
    let b = Cluster::start();
    a.put("/rb/first.txt", b"before the pause");
    let state = temp_state("rescan-early");
    let (sync, log) = spawn_logged(one_way_sync(&a.addr(), &b.addr(), &state), "rescan-early");
    let same = || a.tree("/rb") == b.tree("/rb");
    eventually(60, "the first copy on B", same);
    let pid = sync.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    for i in 0..10 {
        a.put(
            &format!("/rb/late/g{i}.txt"),
            b"written while the sync was paused",
        );
    }
    a.mv("/rb/late", "/rb/moved");
    a.restart_filer();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    eventually(90, "what A's log lost, on B", || {
        a.tree("/rb") == b.tree("/rb")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stream broke and answers again"), "{text}");
    // `status` shows that rescan (the only one in six hours) by class.
    let mut json = String::new();
    eventually(30, "the rescan in the state file", || {
        json = run_sync(
            &["status", "--state", &state, "--json"],
            Duration::from_secs(30),
        )
        .1;
        json.contains("\"last_walk\":{\"why\":\"rescan\"")
    });
    assert!(json.contains("\"missing on B\":"), "{json}");
    assert!(!json.contains("\"differences\":0,"), "{json}");
    let (_, text) = run_sync(&["status", "--state", &state], Duration::from_secs(30));
    assert!(text.contains("last walk (rescan) "), "{text}");
}

/// Following a busy source (four writers at once), events that queue while
/// a window applies are read, planned and copied ahead meanwhile, as in a
/// catch-up; B ends equal to A, with no copy left unused.
#[test]
fn a_busy_stream_is_read_on_while_a_window_applies() {
    let a = Cluster::start();
    let b = Cluster::start();
    let state = temp_state("busy");
    let cmd = one_way_sync(&a.addr(), &b.addr(), &state);
    let (_sync, log) = spawn_logged_at(cmd, "busy", "info,filer_sync::pipeline=debug");
    let read_on = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("while the window before them applied")
    };
    // Rounds of 4 x 25 files written side by side, until a window was read
    // on (events queued behind one that applied).
    let mut rounds = 0u64;
    while !read_on() {
        assert!(
            rounds < 40,
            "no window read on after {} files",
            rounds * 100
        );
        std::thread::scope(|s| {
            for w in 0..4 {
                let a = &a;
                s.spawn(move || {
                    for i in 0..25 {
                        let n = rounds * 100 + w * 25 + i;
                        a.put(&format!("/busy/d{w}/f{n}.bin"), &bytes(n, 3000));
                    }
                });
            }
        });
        rounds += 1;
    }
    eventually(60, "B equal to A", || a.tree("/busy") == b.tree("/busy"));
    // volume.fsck leaves needles younger than a second alone.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(b.orphan_needles(), [], "copies left unused on B");
}
