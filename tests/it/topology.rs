//! Active-active and topologies on 2–4 real clusters: equal-mtime conflicts
//! converge to one winner (and are ledgered), one write is applied exactly
//! once per cluster (no ping-pong), chains, fan-out, a pair with a passive
//! follower, per-folder strategies, and a full mesh with --origin-only.

use crate::faults::{FaultProxy, Mode};
use crate::harness::*;
use filer_sync::pb::filer::*;
use std::process::Command;
use std::time::Duration;

/// A long-running `filer-sync sync` that is killed when dropped.
struct Link(#[allow(dead_code)] Running);

impl Link {
    fn start(a: &Cluster, b: &Cluster, extra: &[&str]) -> Link {
        let state = temp_state("link");
        let child = Command::new(bin())
            .args([
                "sync",
                "-a",
                &a.addr(),
                "-b",
                &b.addr(),
                "--state",
                &state,
                "--batch-window-ms",
                "50",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        Link(Running(child))
    }
}

/// Waits until every cluster holds the same tree of `n` entries below `root`;
/// on time-out, fails showing how they differ.
fn converge(cs: &[&Cluster], root: &str, n: usize, secs: u64) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if all_equal(cs, root) && cs[0].tree(root).len() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let first = cs[0].tree(root);
    for c in &cs[1..] {
        assert_same(&first, &c.tree(root));
    }
    panic!(
        "equal but {} entries instead of {n}: {:?}",
        first.len(),
        first.keys().collect::<Vec<_>>()
    );
}

/// Waits until each link (source, target) has carried a file written on its
/// source now, below `root`: a link applies its source's log in order, so
/// whatever it was to do with what came before is done (or, for what must
/// not travel, would have been). A fact to wait for instead of a pause.
fn settled(links: &[(&Cluster, &Cluster)], root: &str) {
    for (s, t) in links {
        settled_into(s, root, t, root);
    }
}

/// `settled` for one link that maps `s_root` on its source onto `t_root`.
fn settled_into(s: &Cluster, s_root: &str, t: &Cluster, t_root: &str) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("sentinel-{n}.txt");
    s.put(
        &format!("{s_root}/{name}"),
        b"written after what is checked",
    );
    let there = format!("{t_root}/{name}");
    eventually(90, &format!("{there} carried"), || t.get(&there).is_some());
}

fn all_equal(cs: &[&Cluster], root: &str) -> bool {
    let first = cs[0].tree(root);
    cs[1..].iter().all(|c| c.tree(root) == first)
}

#[test]
fn equal_mtime_conflicts_converge_and_are_ledgered() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..10 {
        let name = format!("f{i}.txt");
        a.put(
            &format!("/cf/{name}"),
            format!("version written on A, {i}").as_bytes(),
        );
        b.put(
            &format!("/cf/{name}"),
            format!("version written on B, {i}!").as_bytes(),
        );
        for c in [&a, &b] {
            c.edit(&format!("/cf/{name}"), |e| {
                let at = e.attributes.as_mut().unwrap();
                (at.mtime, at.mtime_ns) = (1_700_000_000, 777);
            });
        }
    }
    let state = temp_state("conflict");
    let (aa, ba) = (a.addr(), b.addr());
    let (code, err) = run_sync(
        &["sync", "-a", &aa, "-b", &ba, "--once", "--state", &state],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/cf"), &b.tree("/cf"));
    let s = filer_sync::state::State::open(std::path::Path::new(&state)).unwrap();
    let conflicts = s.conflicts().unwrap();
    for i in 0..10 {
        let p = format!("/cf/f{i}.txt");
        let rows: Vec<_> = conflicts.iter().filter(|c| c.path == p).collect();
        assert!(
            !rows.is_empty(),
            "no conflict recorded for {p}: {conflicts:?}"
        );
        // Every row for the path names the same surviving content.
        let on_a = a.get(&p).unwrap();
        assert!(
            rows.iter().all(|c| {
                let winner_size = if c.source_won {
                    c.source_size
                } else {
                    c.target_size
                };
                winner_size == on_a.len() as u64
            }),
            "{rows:?}"
        );
    }
}

/// How many events in a cluster's log since `since_ns` end at `path` (as
/// the new entry) or, with `with_old`, also start there. Reads until idle.
fn log_events(c: &Cluster, path: &str, since_ns: i64, with_old: bool) -> usize {
    let at = |x: &protobuf::MessageField<Entry>, dir: &str| {
        x.as_ref()
            .is_some_and(|en| filer_sync::paths::join_path(dir, &en.name) == path)
    };
    let mut n = 0;
    c.read_log(since_ns, |e| {
        let nn = &e.notification;
        let new_dir = if nn.new_parent_path.is_empty() {
            &e.directory
        } else {
            &nn.new_parent_path
        };
        if at(&nn.new_entry, new_dir) || (with_old && at(&nn.old_entry, &e.directory)) {
            n += 1;
        }
    });
    n
}

#[test]
fn one_write_is_applied_once_per_cluster() {
    let a = Cluster::start();
    let b = Cluster::start();
    let since = filer_sync::util::now_ns();
    let _link = Link::start(&a, &b, &[]);
    a.put("/pp/one.txt", b"exactly once");
    eventually(60, "the write on B", || b.get("/pp/one.txt").is_some());
    settled(&[(&b, &a), (&a, &b)], "/sentinels");
    assert_eq!(log_events(&a, "/pp/one.txt", since, true), 1, "A's log");
    assert_eq!(log_events(&b, "/pp/one.txt", since, true), 1, "B's log");
}

#[test]
fn chain_fan_out_and_passive_follower() {
    let a = Cluster::start();
    let b = Cluster::start();
    let c = Cluster::start();
    let d = Cluster::start();
    // Chain A↔B↔C.
    let ab = Link::start(&a, &b, &[]);
    let bc = Link::start(&b, &c, &[]);
    a.put("/chain/from-a.txt", b"a");
    c.put("/chain/from-c.txt", b"c");
    b.put("/chain/sub/from-b.bin", &bytes(1, 100_000));
    eventually(90, "chain converged", || {
        all_equal(&[&a, &b, &c], "/chain") && a.tree("/chain").len() == 4
    });
    drop((ab, bc));
    // Fan-out A→B, A→C, A→D.
    let _f: Vec<Link> = [&b, &c, &d]
        .iter()
        .map(|t| {
            Link::start(
                &a,
                t,
                &["--active-passive", "--a-path", "/fan", "--b-path", "/fan"],
            )
        })
        .collect();
    for i in 0..10 {
        a.put(&format!("/fan/{i}.txt"), format!("{i}").as_bytes());
    }
    eventually(90, "fan-out converged", || {
        all_equal(&[&a, &b, &c, &d], "/fan") && d.tree("/fan").len() == 10
    });
    drop(_f);
    // Active-active pair A↔B with a passive follower B→C, on /pair.
    let _ab = Link::start(&a, &b, &["--a-path", "/pair", "--b-path", "/pair"]);
    let _bc = Link::start(
        &b,
        &c,
        &["--active-passive", "--a-path", "/pair", "--b-path", "/pair"],
    );
    a.put("/pair/a.txt", b"a");
    b.put("/pair/b.txt", b"b");
    eventually(90, "pair and follower converged", || {
        all_equal(&[&a, &b, &c], "/pair") && c.tree("/pair").len() == 2
    });
    // Writes on the follower stay there.
    c.put("/pair/only-c.txt", b"c");
    settled(&[(&b, &c)], "/pair/sentinels");
    assert!(a.get("/pair/only-c.txt").is_none() && b.get("/pair/only-c.txt").is_none());
}

#[test]
fn per_folder_strategies_in_separate_processes() {
    let a = Cluster::start();
    let b = Cluster::start();
    let _x = Link::start(&a, &b, &["--a-path", "/x", "--b-path", "/y"]);
    let _p = Link::start(
        &a,
        &b,
        &[
            "--active-passive",
            "--a-path",
            "/pub",
            "--b-path",
            "/www/pub",
        ],
    );
    a.put("/x/from-a.txt", b"a");
    b.put("/y/from-b.txt", b"b");
    a.put("/pub/index.html", b"<h1>hi</h1>");
    b.put("/www/pub/local.html", b"stays on B");
    eventually(90, "folders converged", || {
        a.tree("/x") == b.tree("/y")
            && b.get("/www/pub/index.html").is_some()
            && a.get("/x/from-b.txt").is_some()
    });
    settled_into(&a, "/pub/sentinels", &b, "/www/pub/sentinels");
    assert!(
        a.get("/pub/local.html").is_none(),
        "the /pub link is one way"
    );
}

#[test]
fn full_mesh_with_origin_only_converges_under_renames() {
    let cs = [Cluster::start(), Cluster::start(), Cluster::start()];
    let _links = [
        Link::start(&cs[0], &cs[1], &["--origin-only"]),
        Link::start(&cs[1], &cs[2], &["--origin-only"]),
        Link::start(&cs[2], &cs[0], &["--origin-only"]),
    ];
    let since = filer_sync::util::now_ns();
    // Every cluster writes and renames in its own subtree, at the same time.
    std::thread::scope(|s| {
        for (k, c) in cs.iter().enumerate() {
            s.spawn(move || {
                for i in 0..10 {
                    c.put(
                        &format!("/mesh/c{k}/d{i}/f.txt"),
                        format!("{k}-{i}").as_bytes(),
                    );
                }
                for i in 0..10 {
                    c.mv(
                        &format!("/mesh/c{k}/d{i}"),
                        &format!("/mesh/c{k}/renamed{i}"),
                    );
                }
                c.mv(
                    &format!("/mesh/c{k}/renamed0/f.txt"),
                    &format!("/mesh/c{k}/top.txt"),
                );
            });
        }
    });
    let refs: Vec<&Cluster> = cs.iter().collect();
    // Per cluster: its folder, 10 renamed dirs, 9 files left in them, top.txt.
    let want = 3 * (1 + 10 + 9 + 1);
    converge(&refs, "/mesh", want, 120);
    let links: Vec<(&Cluster, &Cluster)> = refs
        .iter()
        .flat_map(|s| {
            refs.iter()
                .filter(|t| !std::ptr::eq(*s, **t))
                .map(|t| (*s, *t))
        })
        .collect();
    settled(&links, "/sentinels");
    assert!(all_equal(&refs, "/mesh"), "stayed converged");
    // No duplicate application: each file's final name was created once per cluster.
    for c in &cs {
        assert_eq!(log_events(c, "/mesh/c1/top.txt", since, false), 1);
    }
}

#[test]
fn mixed_deployment_with_weed_filer_sync_does_not_loop() {
    let a = Cluster::start();
    let b = Cluster::start();
    let c = Cluster::start();
    let since = filer_sync::util::now_ns();
    // A↔B run by the reference, B↔C by filer-sync.
    let _weed = Running(
        Command::new(weed())
            .args(["filer.sync", "-a", &a.addr(), "-b", &b.addr()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _ours = Link::start(&b, &c, &[]);
    a.put("/mix/from-a.txt", b"a");
    c.put("/mix/from-c.txt", b"c");
    b.put("/mix/from-b.txt", b"b");
    converge(&[&a, &b, &c], "/mix", 3, 90);
    settled(&[(&a, &b), (&b, &a), (&b, &c), (&c, &b)], "/sentinels");
    assert!(all_equal(&[&a, &b, &c], "/mix"), "stayed converged");
    for path in ["/mix/from-a.txt", "/mix/from-b.txt", "/mix/from-c.txt"] {
        for (name, cl) in [("A", &a), ("B", &b), ("C", &c)] {
            assert_eq!(
                log_events(cl, path, since, true),
                1,
                "{path} in {name}'s log"
            );
        }
    }
}

/// Both ways, a file deleted on A and changed on B without A having seen
/// the change (written after the delete, or before it but not yet on A),
/// before the sync sees either: the change wins, as between two writes, and
/// both clusters keep it. (Deleting B's copy while B's own event carried it
/// to A left the clusters different, or lost the write on both, by which
/// direction ran first.) The delete of the version B has still deletes it,
/// even one dated in the future.
#[test]
fn a_change_the_deleting_cluster_never_saw_wins_over_the_delete() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/dw/rewritten.txt", b"the first version, on both");
    a.put("/dw/gone.txt", b"deleted on A, untouched on B");
    // A copy of the deleted version is deleted, even when its mtime is in
    // the future (a file restored from a host whose clock ran ahead).
    a.put("/dw/future.txt", b"dated a day ahead");
    a.edit("/dw/future.txt", |e| {
        e.attributes.as_mut().unwrap().mtime += 86_400;
    });
    let state = temp_state("delete-write");
    a.put("/dw/raced.txt", b"the first version, on both");
    a.put("/dw/behind.txt", b"the first version, on both");
    a.put("/dw/folder/seen.txt", b"in a folder A deletes");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/dw"), &b.tree("/dw"));
    // Written on B before A deleted it, and not yet on A when it did: A
    // deleted the version it had, not B's.
    b.put("/dw/raced.txt", b"written on B before A deleted its copy");
    // A change on B dated before the version A deletes (B's clock behind).
    b.put("/dw/behind.txt", b"written on B by a clock an hour behind");
    b.edit("/dw/behind.txt", |e| {
        e.attributes.as_mut().unwrap().mtime -= 3600;
    });
    // A file written into a folder that A deletes with all it holds.
    b.put(
        "/dw/folder/new.txt",
        b"written on B into a folder A deletes",
    );
    std::thread::sleep(Duration::from_millis(20));
    a.delete("/dw/folder");
    a.delete("/dw/behind.txt");
    a.delete("/dw/raced.txt");
    a.delete("/dw/rewritten.txt");
    a.delete("/dw/gone.txt");
    a.delete("/dw/future.txt");
    std::thread::sleep(Duration::from_millis(20));
    b.put("/dw/rewritten.txt", b"written on B after A deleted it");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/dw"), &b.tree("/dw"));
    for c in [&a, &b] {
        assert_eq!(
            c.get("/dw/rewritten.txt").as_deref(),
            Some(&b"written on B after A deleted it"[..])
        );
        assert_eq!(
            c.get("/dw/raced.txt").as_deref(),
            Some(&b"written on B before A deleted its copy"[..])
        );
        assert_eq!(
            c.get("/dw/behind.txt").as_deref(),
            Some(&b"written on B by a clock an hour behind"[..])
        );
        assert_eq!(
            c.get("/dw/folder/new.txt").as_deref(),
            Some(&b"written on B into a folder A deletes"[..])
        );
        assert_eq!(c.get("/dw/folder/seen.txt"), None, "A had seen it");
        assert_eq!(c.get("/dw/gone.txt"), None);
        assert_eq!(c.get("/dw/future.txt"), None);
    }
    let s = filer_sync::state::State::open(std::path::Path::new(&state)).unwrap();
    let conflicts = s.conflicts().unwrap();
    for kept in [
        "/dw/rewritten.txt",
        "/dw/raced.txt",
        "/dw/behind.txt",
        "/dw/folder",
    ] {
        assert!(
            conflicts.iter().any(|c| c.path == kept && !c.source_won),
            "the kept write at {kept} is ledgered: {conflicts:?}"
        );
    }
}

/// Moves meet the other cluster's writes (found by the randomized two-way
/// test). A move carries what the moving cluster moved and nothing else: a
/// file written on B into a folder that A moved away stays where B wrote
/// it, on both clusters (a whole-folder move on B carried it along, and B's
/// own event then brought it back to A at its old path), and a file that B
/// changed while A moved it stays at its old path beside the moved version.
/// Two folders moved onto one new name, one on each cluster, merge there
/// entry by entry (a whole-folder move failed on the non-empty destination,
/// for good), a file both bring under one name settled the same way on both.
#[test]
fn moves_take_only_what_the_moving_cluster_moved() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/fm/d/one.txt", b"one");
    a.put("/fm/d/sub/two.txt", b"two");
    a.put("/fm/x/from-x.txt", b"x");
    a.put("/fm/x/both.txt", b"x's version");
    a.put("/fm/y/from-y.txt", b"y");
    a.put("/fm/y/both.txt", b"y's version");
    a.put("/fm/f/changed.txt", b"the first version, on both");
    let state = temp_state("moves-meet-writes");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/fm"), &b.tree("/fm"));
    a.mv("/fm/d", "/fm/e");
    b.put(
        "/fm/d/sub/written-on-b.txt",
        b"written on B into a folder A moved",
    );
    a.mv("/fm/x", "/fm/m");
    b.mv("/fm/y", "/fm/m");
    a.mv("/fm/f/changed.txt", "/fm/f/moved.txt");
    b.put("/fm/f/changed.txt", b"changed on B while A moved it");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/fm"), &b.tree("/fm"));
    for c in [&a, &b] {
        let text = |p: &str| c.get(p).map(|v| String::from_utf8_lossy(&v).into_owned());
        assert_eq!(text("/fm/e/one.txt").as_deref(), Some("one"));
        assert_eq!(text("/fm/e/sub/two.txt").as_deref(), Some("two"));
        assert_eq!(
            text("/fm/d/sub/written-on-b.txt").as_deref(),
            Some("written on B into a folder A moved")
        );
        assert_eq!(text("/fm/e/sub/written-on-b.txt"), None, "not A's to move");
        assert_eq!(text("/fm/d/one.txt"), None);
        assert_eq!(text("/fm/m/from-x.txt").as_deref(), Some("x"));
        assert_eq!(text("/fm/m/from-y.txt").as_deref(), Some("y"));
        assert!(text("/fm/m/both.txt").is_some());
        assert_eq!(
            text("/fm/f/moved.txt").as_deref(),
            Some("the first version, on both")
        );
        assert_eq!(
            text("/fm/f/changed.txt").as_deref(),
            Some("changed on B while A moved it")
        );
    }
    let tree = a.tree("/fm");
    for gone in ["x", "y"] {
        assert!(
            !tree.contains_key(&format!("/{gone}")),
            "/fm/{gone} moved away on both"
        );
    }
}

/// Changes that keep the mtime (an extended attribute such as an S3 tag,
/// a mode) reach the other cluster whichever way the equal-mtime tie-break
/// would go: the target still holds the version the change replaced, so
/// the change applies and is no conflict. Sixteen files, so that a rule
/// that loses such a change half the time cannot pass by luck.
#[test]
fn changes_that_keep_the_mtime_reach_the_other_cluster() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..16 {
        a.put(&format!("/meta/f{i}.txt"), format!("file {i}").as_bytes());
    }
    let state = temp_state("meta-only");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/meta"), &b.tree("/meta"));
    // Half changed on A, half on B; the mtime stays.
    for i in 0..16 {
        let (c, side) = if i < 8 { (&a, "A") } else { (&b, "B") };
        c.edit(&format!("/meta/f{i}.txt"), |e| {
            e.extended.insert(
                "Seaweed-X-Amz-Tagging-team".into(),
                side.as_bytes().to_vec(),
            );
            e.attributes.as_mut().unwrap().file_mode ^= 0o004;
        });
    }
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/meta"), &b.tree("/meta"));
    // Only metadata travelled: each side's chunks are there already.
    assert_eq!(err.matches(", 0 bytes copied,").count(), 2, "{err}");
    for i in 0..16 {
        let side = if i < 8 { "A" } else { "B" };
        for c in [&a, &b] {
            let e = c.entry(&format!("/meta/f{i}.txt"));
            assert_eq!(
                e.extended
                    .get("Seaweed-X-Amz-Tagging-team")
                    .map(Vec::as_slice),
                Some(side.as_bytes()),
                "f{i}: the tag written on {side}"
            );
        }
    }
    let s = filer_sync::state::State::open(std::path::Path::new(&state)).unwrap();
    assert_eq!(
        s.conflicts().unwrap(),
        vec![],
        "no conflict: each side changed its own"
    );
}

/// Writes `data` at `path` on `c` as if it came from the cluster whose
/// signature is `from`: the filer logs it, but a sync into that cluster
/// never receives it (the filer leaves out the events that carry the
/// subscriber's signature). A change the log does not bring.
fn plant(c: &Cluster, path: &str, data: &[u8], from: i32) {
    let (dir, name) = filer_sync::paths::split_path(path);
    let now = filer_sync::util::now_ns() / 1_000_000_000;
    let mut req = CreateEntryRequest::new();
    req.directory = dir.into();
    req.entry = Some(inline_entry(name, data, now)).into();
    req.signatures = vec![from];
    c.client().create(&req).unwrap();
}

/// Both ways, following, with a rescan every second: what the logs do not
/// bring (files planted on each side as if they had come from the other)
/// reaches the other cluster, while both sides write, rewrite and retag
/// their files all along and B's side of the sync is slowed; no rescan
/// writes a difference that was only on its way (each file ends as its
/// writer last wrote it, and the rescans wrote the planted files only).
#[test]
fn rescans_both_ways_repair_without_reverting_fresh_changes() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/rr/seed.txt", b"seed");
    // B's gRPC through a proxy that can slow it: the changes A's writer
    // makes then stay on their way to B long enough for rescans to meet
    // them.
    let slow_b = FaultProxy::start(b.filer + 10000);
    let b_addr = format!("127.0.0.1:{}.{}", b.filer, slow_b.port);
    let mut cmd = Command::new(bin());
    cmd.args(["sync", "-a", &a.addr(), "-b", &b_addr])
        .args(["--state", &temp_state("rescan-both")])
        .args(["--batch-window-ms", "50"])
        .args(["--rescan-secs", "1", "--rescan-rate", "100000"])
        // Every event received and change applied, in the log a failure
        // names.
        .args(["--a-debug", "--b-debug"]);
    let (_sync, log) = spawn_logged(cmd, "rescan-both");
    converge(&[&a, &b], "/rr", 1, 60);
    let (sig_a, sig_b) = (
        a.client().configuration().unwrap().signature,
        b.client().configuration().unwrap().signature,
    );
    plant(
        &a,
        "/rr/planted-on-a.txt",
        b"only the rescan brings this to B",
        sig_b,
    );
    plant(
        &b,
        "/rr/planted-on-b.txt",
        b"only the rescan brings this to A",
        sig_a,
    );
    let rescans = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("rescan: ") && l.contains(" entries listed, "))
            .count()
    };
    // Files whose tags change once each while their mtime stays an hour
    // old: a walk that met one between the change and its event would see
    // an old difference, and the tie-break could put the old tag back for
    // good.
    const TAG: &str = "Seaweed-X-Amz-Tagging-round";
    const TAGGED: usize = 160;
    for (c, side) in [(&a, "a"), (&b, "b")] {
        for i in 0..TAGGED {
            let path = format!("/rr/{side}/t{i}.txt");
            c.put(&path, b"tagged");
            c.edit(&path, |e| e.attributes.as_mut().unwrap().mtime -= 3600);
        }
    }
    let n = 1 + 2 + 2 * (1 + TAGGED);
    converge(&[&a, &b], "/rr", n, 90);
    // Each side rewrites its own files and tags the next of its tagged ones
    // while rescans run; two rounds stay on their way at most (each round
    // waits until the one before the last has arrived), so that the sync
    // keeps up and rescans settle.
    slow_b.set(Mode::Latency(Duration::from_millis(100)));
    let before = rescans();
    let mut last = std::collections::BTreeMap::new();
    let tag_of = |c: &Cluster, path: &str| c.entry(path).extended.get(TAG).cloned();
    for round in 0..TAGGED / 4 {
        for (c, side) in [(&a, "a"), (&b, "b")] {
            let path = format!("/rr/{side}/f{}.txt", round % 4);
            let data = format!("{side} version {round}");
            c.put(&path, data.as_bytes());
            last.insert(path, data);
            for i in 0..4 {
                c.edit(&format!("/rr/{side}/t{}.txt", round * 4 + i), |e| {
                    e.extended.insert(TAG.into(), side.as_bytes().to_vec());
                });
            }
        }
        if round >= 2 {
            let t = (round - 2) * 4;
            eventually(60, "the round before the last", || {
                tag_of(&b, &format!("/rr/a/t{t}.txt")).is_some()
                    && tag_of(&a, &format!("/rr/b/t{t}.txt")).is_some()
            });
        }
    }
    let during = rescans() - before;
    assert!(during >= 2, "{during} rescans ended while both sides wrote");
    slow_b.set(Mode::Pass);
    converge(&[&a, &b], "/rr", n + 8, 90);
    for (path, data) in &last {
        for c in [&a, &b] {
            assert_eq!(
                c.get(path).as_deref(),
                Some(data.as_bytes()),
                "{path}: its last version"
            );
        }
    }
    for side in ["a", "b"] {
        for i in 0..TAGGED {
            let path = format!("/rr/{side}/t{i}.txt");
            for c in [&a, &b] {
                assert_eq!(
                    tag_of(c, &path).as_deref(),
                    Some(side.as_bytes()),
                    "{path}: its tag"
                );
            }
        }
        for i in 0..TAGGED {
            let path = format!("/rr/{side}/t{i}.txt");
            for c in [&a, &b] {
                let mtime = c.entry(&path).attributes.unwrap_or_default().mtime;
                let age = filer_sync::util::now_ns() / 1_000_000_000 - mtime;
                assert!(
                    age > 1800,
                    "{path}: the mtime set an hour back ({age} s old)"
                );
            }
        }
    }
    // The rescans wrote the two planted files and nothing else: a
    // difference on its way (the walk met it before its event arrived) was
    // left to the events, not copied as a conflict.
    let text = std::fs::read_to_string(&log).unwrap();
    let copied: u64 = text
        .lines()
        .filter(|l| l.contains("rescan: "))
        .filter_map(|l| {
            l.split(" entries copied")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let rescans: Vec<&str> = text.lines().filter(|l| l.contains("rescan: ")).collect();
    assert_eq!(
        copied,
        2,
        "the rescans (log {}):\n{}",
        log.display(),
        rescans.join("\n")
    );
}
