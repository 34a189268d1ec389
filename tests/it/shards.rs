//! `sync --ha --shards N` on real clusters: instances with their own state
//! files share a link's shards through A's filer's DistributedLock. Proven
//! here: the shards spread over the live instances and every one of them
//! applies a share; a SIGKILLed instance's shards are taken over and a new
//! instance gets its share; moves inside and across top-level folders and
//! deletes all end on B as on A; a single instance started later holds
//! every shard and loses nothing; another N is refused; a link that ran
//! without shards moves to shards without copying anything again; and both
//! ways with shards, conflicting writes included, converges.

use crate::harness::*;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TTL: &str = "3";

/// One `sync --ha --shards N` instance, its stderr in a file.
struct Instance {
    run: Option<Running>,
    log: std::path::PathBuf,
    state: String,
}

impl Instance {
    /// Starts one on a state file of its own, on the link `path` -> `path`.
    fn start(a: &Cluster, b: &Cluster, name: &str, (shards, path): (&str, &str)) -> Instance {
        Self::on_state(a, b, &temp_state(name), (shards, path))
    }

    fn on_state(a: &Cluster, b: &Cluster, state: &str, link: (&str, &str)) -> Instance {
        Self::spawn(a, b, state, link, &["--active-passive"])
    }

    fn spawn(
        a: &Cluster,
        b: &Cluster,
        state: &str,
        (shards, path): (&str, &str),
        extra: &[&str],
    ) -> Instance {
        let log = std::path::PathBuf::from(format!("{state}.{}.log", filer_sync::util::now_ns()));
        let child = Command::new(bin())
            .args(["sync", "-a", &a.addr(), "-b", &b.addr()])
            .args(extra)
            .args(["--ha", "--ha-ttl-secs", TTL, "--shards", shards])
            .args(["--a-path", path, "--b-path", path])
            .args(["--rescan-secs", "0", "--batch-window-ms", "50"])
            .args(["--state", state])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance {
            run: Some(Running(child)),
            log,
            state: state.to_string(),
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The shards it holds now, by its log (none once killed).
    fn holds(&self) -> BTreeSet<u32> {
        let mut held = BTreeSet::new();
        if self.run.is_none() {
            return held;
        }
        let shard = |l: &str, after: &str| {
            l.split(after)
                .nth(1)?
                .split('/')
                .next()?
                .parse::<u32>()
                .ok()
        };
        for l in self.text().lines() {
            if let Some(i) = shard(l, "shards: holding shard ") {
                held.insert(i);
            } else if let Some(i) = shard(l, "shards: shard ") {
                if l.contains(" given back") || l.contains(" lost") {
                    held.remove(&i);
                }
            }
        }
        held
    }

    /// Events it applied, by its log of windows.
    fn applied(&self) -> u64 {
        self.text()
            .lines()
            .filter_map(|l| {
                l.split("ns, ")
                    .nth(1)?
                    .split(" events")
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    fn kill(&mut self) {
        drop(self.run.take()); // SIGKILL and reap
    }
}

fn held_by_all(all: &[Instance]) -> Vec<BTreeSet<u32>> {
    all.iter().map(Instance::holds).collect()
}

/// Every shard of `n` held by exactly one live instance, each holding its
/// fair share (n/K or one more).
fn balanced(all: &[Instance], n: u32) -> bool {
    let live: Vec<BTreeSet<u32>> = all
        .iter()
        .filter(|i| i.run.is_some())
        .map(Instance::holds)
        .collect();
    let k = live.len() as u32;
    let union: BTreeSet<u32> = live.iter().flatten().copied().collect();
    let total: usize = live.iter().map(BTreeSet::len).sum();
    union.len() == n as usize
        && total == n as usize
        && live
            .iter()
            .all(|h| (n / k..=n.div_ceil(k)).contains(&(h.len() as u32)))
}

/// Writes, across 40 top-level folders of /sh: files, a move inside a
/// folder, a move to another folder, a folder moved into another, deletes.
fn workload(a: &Cluster, round: u64) {
    for n in 0..40u64 {
        let id = round * 100 + n;
        a.put(
            &format!("/sh/t{n}/f{id}.bin"),
            &bytes(id, 900 + (id as usize % 7) * 300),
        );
        a.put(&format!("/sh/t{n}/sub/g{id}.txt"), &bytes(id + 1, 200));
    }
    for n in 0..40u64 {
        let id = round * 100 + n;
        match n % 4 {
            0 => a.mv(
                &format!("/sh/t{n}/f{id}.bin"),
                &format!("/sh/t{n}/renamed{id}.bin"),
            ),
            1 => a.mv(
                &format!("/sh/t{n}/f{id}.bin"),
                &format!("/sh/t{}/moved{id}.bin", (n + 7) % 40),
            ),
            2 => a.delete(&format!("/sh/t{n}/sub/g{id}.txt")),
            _ => {}
        }
    }
    // A folder moved into another top-level folder (most likely another
    // shard): its whole subtree changes shards.
    a.mv(
        &format!("/sh/t{}/sub", round % 40),
        &format!("/sh/t{}/from{round}", (round + 11) % 40),
    );
}

/// Three instances, `--shards 8`, one way, while A is written across 40
/// top-level folders: the shards spread 3/3/2 and each applies a share; one
/// is SIGKILLed and its shards are taken over, a fourth joins and gets its
/// share; B ends equal to A. Then all stop, A changes, and a single
/// instance on a fresh state file takes all 8 and brings B level; another
/// N is refused (exit 2).
#[test]
fn instances_share_a_links_shards_and_take_over_a_dead_ones() {
    let a = Cluster::start();
    let b = Cluster::start();
    let n = 8;
    a.mkdir("/sh");
    let mut all: Vec<Instance> = (0..3)
        .map(|i| Instance::start(&a, &b, &format!("shards-{i}"), ("8", "/sh")))
        .collect();
    let started = Instant::now();
    eventually(60, "the 8 shards spread over 3 instances", || {
        balanced(&all, n)
    });
    let spread = started.elapsed();
    workload(&a, 0);
    eventually(90, "every instance to apply events", || {
        all.iter().all(|i| i.applied() > 0)
    });
    eventually(90, "B to equal A", || a.tree("/sh") == b.tree("/sh"));
    // A SIGKILL: the others take its shards once its locks run out.
    let dead = held_by_all(&all)[0].clone();
    assert!(!dead.is_empty());
    all[0].kill();
    let killed = Instant::now();
    workload(&a, 1);
    eventually(60, "the dead instance's shards taken over", || {
        balanced(&all, n)
    });
    let takeover = killed.elapsed();
    // A new instance gets its share from the others; it serves metrics.
    let port = free_port();
    let state = temp_state("shards-3");
    let metrics = ["--active-passive", "--metrics-port", &port.to_string()];
    all.push(Instance::spawn(&a, &b, &state, ("8", "/sh"), &metrics));
    let joined = Instant::now();
    eventually(60, "the new instance's share", || balanced(&all, n));
    let rebalance = joined.elapsed();
    workload(&a, 2);
    eventually(120, "B to equal A", || a.tree("/sh") == b.tree("/sh"));
    assert_same(&a.tree("/sh"), &b.tree("/sh"));
    let split: Vec<(usize, u64, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, inst)| (i, inst.applied(), inst.holds().len()))
        .collect();
    for &(i, applied, _) in &split {
        assert!(applied > 0, "instance {i} applied nothing: {split:?}");
        assert!(
            streams_opened(&all[i]) > 0,
            "instance {i}: no shared stream"
        );
    }
    // Its metrics count, for each shard it holds, the starts of the shared
    // stream that fed it: at least one, and at most every one it logged.
    let text = http()
        .get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let late = all.last().unwrap();
    for shard in late.holds() {
        let opened: f64 = text
            .lines()
            .filter(|l| l.starts_with("SeaweedFS_filerSync_streams_opened_total{"))
            .filter(|l| l.contains(&format!("shard=\"{shard}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!(
            opened >= 1.0 && opened <= streams_opened(late) as f64,
            "shard {shard}: {opened} streams opened, {} logged:\n{text}",
            streams_opened(late)
        );
    }
    eprintln!(
        "shards: spread over 3 in {spread:?}; after a SIGKILL (it held {dead:?}) all held again \
         in {takeover:?}; a new instance had its share in {rebalance:?}; (instance, events \
         applied, shards held at the end): {split:?}"
    );
    // status lists every shard with its owner.
    let (_, out) = run_sync(
        &["status", "--state", &all[1].state],
        Duration::from_secs(30),
    );
    assert!(out.contains("shard 7/8 A→B: held by"), "{out}");
    // Another N on the same link is refused, naming the one recorded.
    let (code, out) = run_sync(
        &[
            "sync",
            "-a",
            &a.addr(),
            "-b",
            &b.addr(),
            "--active-passive",
            "--ha",
            "--shards",
            "4",
            "--a-path",
            "/sh",
            "--b-path",
            "/sh",
            "--state",
            &temp_state("shards-other-n"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--shards 8"), "{out}");
    // All stop; A changes; one instance alone, on a state file of its own,
    // holds all 8 and loses nothing.
    for i in &mut all {
        i.kill();
    }
    workload(&a, 3);
    let alone = Instance::start(&a, &b, "shards-alone", ("8", "/sh"));
    eventually(60, "one instance holding all 8 shards", || {
        alone.holds().len() == 8
    });
    eventually(120, "B to equal A", || a.tree("/sh") == b.tree("/sh"));
    assert_same(&a.tree("/sh"), &b.tree("/sh"));
}

/// B's files' chunk ids, by path: a file copied again gets new ones.
fn file_ids(c: &Cluster, root: &str) -> Vec<(String, Vec<String>)> {
    c.tree(root)
        .into_iter()
        .filter(|(_, n)| !n.dir)
        .map(|(rel, _)| {
            let e = c.entry(&format!("{root}{rel}"));
            (rel, e.chunks.iter().map(|ch| ch.file_id.clone()).collect())
        })
        .collect()
}

/// A link synced without shards (a state file with its checkpoint) moves to
/// `--shards 4`: two instances, one on that state file and one on a new
/// one, copy nothing again (B's chunk ids are unchanged) and carry on with
/// what A writes next.
#[test]
fn moving_a_link_to_shards_copies_nothing_again() {
    let a = Cluster::start();
    let b = Cluster::start();
    for n in 0..12u64 {
        a.put(&format!("/mv/d{n}/f{n}.bin"), &bytes(n, 3000));
    }
    let state = temp_state("unsharded");
    let (code, out) = once(
        &a,
        &b,
        &state,
        &["--active-passive", "--a-path", "/mv", "--b-path", "/mv"],
    );
    assert_eq!(code, 0, "{out}");
    assert_same(&a.tree("/mv"), &b.tree("/mv"));
    let before = file_ids(&b, "/mv");
    let all = [
        Instance::on_state(&a, &b, &state, ("4", "/mv")),
        Instance::start(&a, &b, "sharded-new", ("4", "/mv")),
    ];
    eventually(60, "the 4 shards spread over 2 instances", || {
        balanced(&all, 4)
    });
    for n in 0..12u64 {
        a.put(&format!("/mv/d{n}/new{n}.txt"), &bytes(n + 50, 100));
    }
    eventually(90, "B to equal A", || a.tree("/mv") == b.tree("/mv"));
    let after: Vec<_> = file_ids(&b, "/mv")
        .into_iter()
        .filter(|(rel, _)| !rel.contains("/new"))
        .collect();
    assert_eq!(before, after, "files copied again");
    assert!(
        all[0]
            .text()
            .contains("starting from the whole link's checkpoint"),
        "{}",
        all[0].text()
    );
}

/// Both ways with shards: two instances, `--shards 4`, while both clusters
/// are written in many top-level folders, with moves across folders and
/// the same paths written on both sides: A and B converge.
#[test]
fn both_ways_with_shards_converges() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/bw");
    b.mkdir("/bw");
    let all: Vec<Instance> = (0..2)
        .map(|i| Instance::spawn(&a, &b, &temp_state(&format!("bw-{i}")), ("4", "/bw"), &[]))
        .collect();
    eventually(60, "the 4 shards spread over 2 instances", || {
        balanced(&all, 4)
    });
    for n in 0..16u64 {
        a.put(&format!("/bw/a{n}/f{n}.bin"), &bytes(n, 1500));
        b.put(&format!("/bw/b{n}/f{n}.bin"), &bytes(n + 100, 1500));
        // The same path on both sides: one version wins on both.
        a.put(&format!("/bw/both{}/x{n}.txt", n % 4), &bytes(n + 200, 300));
        b.put(&format!("/bw/both{}/x{n}.txt", n % 4), &bytes(n + 300, 300));
    }
    eventually(90, "B to hold A's files", || {
        b.get("/bw/a15/f15.bin").is_some() && a.get("/bw/b15/f15.bin").is_some()
    });
    for n in 0..16u64 {
        a.mv(
            &format!("/bw/a{n}/f{n}.bin"),
            &format!("/bw/b{}/from-a{n}.bin", (n + 5) % 16),
        );
        if n % 3 == 0 {
            b.delete(&format!("/bw/b{n}/f{n}.bin"));
        }
    }
    eventually(120, "A and B to converge", || {
        a.tree("/bw") == b.tree("/bw")
    });
    assert_same(&a.tree("/bw"), &b.tree("/bw"));
    for (i, inst) in all.iter().enumerate() {
        assert!(inst.applied() > 0, "instance {i} applied nothing");
    }
}

/// An instance restarted on its state file resumes each shard from its own
/// checkpoint, which stands on the shard's last event; the oldest of them
/// is where its shared stream starts. A filer reading its log from disk
/// serves only what is timed after that point (from memory, that event
/// too). The shard standing there once waited for its own last event, gave
/// it up as lost a MARGIN later and restarted the stream with the
/// subscription's client id and epoch, which the filer refused
/// ("duplicated local subscription") as long as the old stream lingered:
/// every flow went back to its checkpoint and the same happened again, the
/// shards standing still (the sharded random test's divergence, seed
/// 173132848). A's filer is restarted here so that its log is read from
/// disk.
#[test]
fn a_restarted_instance_resumes_a_quiet_shard_where_its_stream_starts() {
    let mut a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/qs");
    let folder_of = |shard| {
        (0..)
            .map(|i| format!("d{i}"))
            .find(|d| filer_sync::shard::Shard::of(d, 2) == Some(shard))
            .unwrap()
    };
    let (quiet, busy) = (folder_of(0), folder_of(1));
    let state = temp_state("quiet-shard");
    let mut first = Instance::on_state(&a, &b, &state, ("2", "/qs"));
    let b = &b;
    let on_b = |path: String| move || b.tree("/qs").keys().any(|k| k.ends_with(&path));
    // Written once it follows: the shard's checkpoint stands on its event.
    eventually(60, "the instance following A", || {
        streams_opened(&first) > 0
    });
    a.put(&format!("/qs/{quiet}/q0"), b"quiet");
    eventually(
        60,
        "the quiet shard's file on B",
        on_b(format!("{quiet}/q0")),
    );
    // The scenario needs the other shard's next event timed more than the
    // gate's MARGIN (1 s) after the quiet shard's last one.
    std::thread::sleep(Duration::from_millis(1500));
    a.put(&format!("/qs/{busy}/b0"), b"busy");
    eventually(60, "the busy shard's file on B", on_b(format!("{busy}/b0")));
    first.kill();
    a.restart_filer_gracefully();
    let second = Instance::on_state(&a, b, &state, ("2", "/qs"));
    eventually(60, "the restarted instance holding both shards", || {
        second.holds().len() == 2
    });
    a.put(&format!("/qs/{quiet}/q1"), b"quiet again");
    a.put(&format!("/qs/{busy}/b1"), b"busy again");
    eventually(60, "B to equal A", || a.tree("/qs") == b.tree("/qs"));
    let log = second.text();
    for refused in ["duplicated local subscription", "is not in the log"] {
        assert!(!log.contains(refused), "{refused}:\n{log}");
    }
}

/// Streams this instance opened for its shards (`pipeline::hub`: one per
/// direction at a time, reopened when a shard joins behind it).
fn streams_opened(i: &Instance) -> usize {
    i.text().matches(": one stream for the ").count()
}

/// The full-size form (about 40 s here): four instances,
/// `--shards 16`, one way, while A is written without pause across 40
/// top-level folders (files, moves inside and across folders, a folder
/// moved across, deletes); two instances SIGKILLed one after the other and
/// a fifth added, all while A is written. B ends equal to A, and every
/// instance applied a share of the events while it was alive, each reading
/// the source once per direction. Then all stop, A is written again, and
/// a single instance started later on a state file of its own holds all
/// 16 shards and brings B level. CHAOS=long (`make chaos`) writes longer
/// between the kills and the join.
#[test]
fn four_instances_sixteen_shards_two_killed_one_added() {
    let more = if std::env::var("CHAOS").is_ok_and(|v| v == "long") {
        5
    } else {
        1
    };
    let a = Cluster::start();
    let b = Cluster::start();
    let n = 16;
    a.mkdir("/sh");
    let mut all: Vec<Instance> = (0..4)
        .map(|i| Instance::start(&a, &b, &format!("big-{i}"), ("16", "/sh")))
        .collect();
    let started = Instant::now();
    eventually(60, "the 16 shards spread over 4 instances", || {
        balanced(&all, n)
    });
    let spread = started.elapsed();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rounds = std::sync::atomic::AtomicU64::new(0);
    let (mut takeover, mut rebalance) = (Duration::ZERO, Duration::ZERO);
    let mut dead = Vec::new();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut r = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                workload(&a, r);
                r += 1;
                rounds.store(r, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let written = || rounds.load(std::sync::atomic::Ordering::SeqCst);
        eventually(120, "every instance to apply events", || {
            all.iter().all(|i| i.applied() > 0)
        });
        dead.push(all[0].holds());
        all[0].kill();
        let killed = Instant::now();
        let r0 = written();
        eventually(120, "A written on after the first kill", || {
            written() >= r0 + more
        });
        dead.push(all[1].holds());
        all[1].kill();
        eventually(60, "the dead instances' shards taken over", || {
            balanced(&all, n)
        });
        takeover = killed.elapsed();
        all.push(Instance::start(&a, &b, "big-4", ("16", "/sh")));
        let joined = Instant::now();
        eventually(60, "the new instance's share", || balanced(&all, n));
        rebalance = joined.elapsed();
        eventually(120, "the new instance to apply events", || {
            all[4].applied() > 0
        });
        let r1 = written();
        eventually(120, "A written on after the join", || {
            written() >= r1 + more
        });
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        writer.join().unwrap();
    });
    eventually(240, "B to equal A", || a.tree("/sh") == b.tree("/sh"));
    assert_same(&a.tree("/sh"), &b.tree("/sh"));
    let split: Vec<(usize, u64, usize, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, inst)| (i, inst.applied(), inst.holds().len(), streams_opened(inst)))
        .collect();
    for &(i, applied, _, streams) in &split {
        assert!(applied > 0, "instance {i} applied nothing: {split:?}");
        assert!(streams > 0, "instance {i} never opened its shared stream");
    }
    eprintln!(
        "shards (16 over 4): {} rounds of A's workload; 16 shards over 4 in {spread:?}; two \
         SIGKILLs (they held {dead:?}): all held again {takeover:?} after the first; a fifth \
         instance had its share in {rebalance:?}; (instance, events applied, shards held at \
         the end, streams opened): {split:?}",
        rounds.load(std::sync::atomic::Ordering::SeqCst)
    );
    // All stop; A changes; one instance alone, started later on a state
    // file of its own, holds all 16 and loses nothing.
    for i in &mut all {
        i.kill();
    }
    workload(&a, rounds.load(std::sync::atomic::Ordering::SeqCst));
    let alone = Instance::start(&a, &b, "big-alone", ("16", "/sh"));
    let started = Instant::now();
    eventually(60, "one instance holding all 16 shards", || {
        alone.holds().len() == 16
    });
    eventually(120, "B to equal A", || a.tree("/sh") == b.tree("/sh"));
    assert_same(&a.tree("/sh"), &b.tree("/sh"));
    eprintln!(
        "shards (16 over 4): a single instance started later held all 16 and brought B level in \
         {:?}",
        started.elapsed()
    );
}

/// `checkpoint set|reset|export` on a link run with shards act on every
/// shard's checkpoint, here and on B's KV where the instances share them
/// (and where the newer one wins): set moves them all, export gives
/// weed filer.sync the oldest, reset removes them with the whole link's
/// (a shard without one starts where the link stood), so that the next
/// run walks.
#[test]
fn checkpoint_commands_act_on_every_shard() {
    use filer_sync::shard::Shard;
    use filer_sync::state::{reference, Direction, State};
    let a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/ck");
    for i in 0..8 {
        a.put(&format!("/ck/d{i}/f.txt"), b"x");
    }
    let state = temp_state("shard-ck");
    let mut one = Instance::on_state(&a, &b, &state, ("4", "/ck"));
    eventually(60, "B to equal A", || a.tree("/ck") == b.tree("/ck"));
    one.kill();
    let (sig_a, sig_b) = (
        a.client().configuration().unwrap().signature,
        b.client().configuration().unwrap().signature,
    );
    let shard = |index| Direction {
        source_sig: sig_a,
        source_path: "/ck".into(),
        target_sig: sig_b,
        target_path: "/ck".into(),
        shard: Some(Shard { index, count: 4 }),
    };
    let kv = b.client();
    let shared = |d: &Direction| reference::decode(&kv.kv_get(&d.shared_key()).unwrap());
    let ck = |action: &str, extra: &[&str]| {
        let paths = ["--a-path", "/ck", "--b-path", "/ck"];
        let (code, out) = checkpoint(&a, &b, &state, action, &[&paths[..], extra].concat());
        assert_eq!(code, 0, "checkpoint {action}: {out}");
        out
    };
    let ms = filer_sync::util::now_ns() / 1_000_000 - 5_000;
    let out = ck("set", &["--ts-ms", &ms.to_string()]);
    assert!(out.contains("each of the link's 4 shards"), "{out}");
    let path = std::path::PathBuf::from(&state);
    for i in 0..4 {
        let st = State::open(&path).unwrap();
        assert_eq!(
            st.checkpoint(&shard(i)).unwrap(),
            Some(ms * 1_000_000),
            "shard {i}"
        );
        assert_eq!(
            shared(&shard(i)),
            Some(ms * 1_000_000),
            "shard {i} on B's KV"
        );
    }
    // One shard further on B's KV: export gives the oldest.
    kv.kv_put(
        &shard(2).shared_key(),
        &reference::encode((ms + 1_000) * 1_000_000),
    )
    .unwrap();
    ck("export", &[]);
    let weed_key = reference::key(sig_a, "/ck", "/ck");
    assert_eq!(
        reference::decode(&kv.kv_get(&weed_key).unwrap()),
        Some(ms * 1_000_000)
    );
    ck("reset", &[]);
    let st = State::open(&path).unwrap();
    for i in 0..4 {
        assert_eq!(st.checkpoint(&shard(i)).unwrap(), None, "shard {i}");
        assert_eq!(shared(&shard(i)), None, "shard {i} on B's KV");
    }
    assert_eq!(st.checkpoint(&shard(0).unsharded()).unwrap(), None);
    assert_eq!(reference::decode(&kv.kv_get(&weed_key).unwrap()), None);
    // The next run walks: a file only B has goes (one way).
    b.put("/ck/d0/only-on-b.txt", b"y");
    let again = Instance::on_state(&a, &b, &state, ("4", "/ck"));
    eventually(60, "the walk deleting what only B has", || {
        a.tree("/ck") == b.tree("/ck")
    });
    assert!(again.text().contains("first run"), "{}", again.text());
}
