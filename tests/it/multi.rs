//! Clusters with several filers sharing one filer store (Redis, as
//! production clusters share MySQL, Postgres or Redis): `-a A1,A2` and
//! `-b B1,B2`. The sync reads A's log through either filer (each serves the
//! whole cluster's log), writes through B's filers in turn, and carries on
//! through the others when one dies.

use crate::harness::*;
use std::path::Path;

fn both(c: &Cluster, other: u16) -> String {
    format!("127.0.0.1:{},127.0.0.1:{other}", c.filer)
}

/// The files under `/m` that `c` holds, through its current filer.
fn files(c: &Cluster) -> usize {
    c.tree("/m").values().filter(|n| !n.dir).count()
}

#[test]
fn a_sync_carries_on_when_a_filer_of_either_cluster_dies() {
    let shared = Opts {
        shared_store: true,
        ..Opts::default()
    };
    let mut a = Cluster::with(shared.clone());
    let mut b = Cluster::with(shared);
    let a2 = a.add_filer("filer2");
    let b2 = b.add_filer("filer2");
    let state = temp_state("multi");
    let mut cmd = one_way_sync(&both(&a, a2), &both(&b, b2), &state);
    // No rescan: what reaches B here comes through the log. A surviving
    // filer's stream can go silent when its peer dies (4.48: no event and
    // no heartbeat until re-subscribed), so stalls are noticed in 10 s.
    cmd.args([
        "--rescan-secs",
        "0",
        "--timeout-secs",
        "5",
        "--stall-secs",
        "10",
    ]);
    let (_sync, log) = spawn_logged(cmd, "multi");
    let a1 = a.filer;
    let write = |a: &Cluster, folder: &str| {
        for i in 0..10 {
            a.put(
                &format!("/m/{folder}/{i}.txt"),
                &bytes(i, 3000 + i as usize),
            );
        }
    };

    // Writes through each of A's filers reach B.
    write(&a, "one");
    a.filer = a2;
    write(&a, "two");
    eventually(60, "the writes through both of A's filers on B", || {
        files(&b) == 20
    });

    // A's first filer dies: the stream moves to the other.
    a.filer = a1;
    a.stop("filer");
    a.filer = a2;
    write(&a, "three");
    // A stream on A2 may stay open for about a minute, heartbeating,
    // before it goes silent and is re-subscribed (4.48's surviving filer
    // after its peer's death): the time allowed covers that.
    eventually(150, "the writes after A1 died on B", || files(&b) == 30);

    // B's first filer dies: the writes go through the other.
    b.stop("filer");
    b.filer = b2;
    write(&a, "four");
    eventually(90, "the writes after B1 died on B", || files(&b) == 40);
    assert_same(&a.tree("/m"), &b.tree("/m"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("failed for good"),
        "no event failed for good:\n{text}"
    );
}

#[test]
fn filers_of_different_clusters_in_one_list_are_refused() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/m/x.txt", b"x");
    let state = temp_state("mixed");
    let mixed = format!("{},{}", a.addr(), b.addr());
    let (code, out) = sync_once(&mixed, &b.addr(), &state, &["--active-passive"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("-a lists filers of different clusters"),
        "{out}"
    );
    assert!(!Path::new(&state).exists(), "no state file is made");
    assert!(b.get("/m/x.txt").is_none(), "nothing is written");
    // A list with a gap is a usage error too, before anything connects.
    let gap = format!("{},,{}", a.addr(), a.addr());
    let (code, out) = sync_once(&gap, &b.addr(), &state, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("empty item"), "{out}");
}
