//! Input that breaks naive replicators: a folder with 100,000 entries, names
//! at the length limit and full of odd bytes, clocks that disagree (this
//! host's clock skewed with libfaketime; a cluster's clock skewed through the
//! mtimes its writes carry), and a corrupt data plane (a chunk manifest that
//! lists itself, a chunk longer than its entry says).

use crate::harness::*;
use filer_sync::pb::filer::{CreateEntryRequest, Entry, FileChunk, FileChunkManifest};
use filer_sync::state::{Direction, State};
use filer_sync::volume::{fid, ChunkSink, Http, Placement};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

fn create(c: &Cluster, dir: &str, e: Entry) {
    let mut req = CreateEntryRequest::new();
    req.directory = dir.into();
    req.entry = Some(e).into();
    c.client().create(&req).unwrap();
}

/// Names and sizes in one folder, through gRPC listing (no per-file reads).
fn listing(c: &Cluster, dir: &str) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    c.client()
        .list(dir, |e| {
            let size = e.attributes.as_ref().map_or(0, |a| a.file_size);
            out.push((e.name.clone(), size, e.content.clone()));
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn a_folder_with_100k_entries_replicates_and_verifies() {
    let n: usize = std::env::var("HUGE_DIR_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let a = Cluster::start();
    let b = Cluster::start();
    a.mkdir("/huge");
    let t = Instant::now();
    let threads = 8;
    std::thread::scope(|s| {
        for k in 0..threads {
            let a = &a;
            s.spawn(move || {
                let client = a.client();
                let mtime = filer_sync::util::now_ns() / 1_000_000_000;
                for i in (k..n).step_by(threads) {
                    let mut req = CreateEntryRequest::new();
                    req.directory = "/huge".into();
                    let name = format!("entry-{i:06}.txt");
                    req.entry = Some(inline_entry(&name, i.to_string().as_bytes(), mtime)).into();
                    client.create(&req).unwrap();
                }
            });
        }
    });
    println!("created {n} entries in {:.0?}", t.elapsed());
    let state = temp_state("huge");
    let t = Instant::now();
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    println!("replicated {n} entries in {:.0?}", t.elapsed());
    let (la, lb) = (listing(&a, "/huge"), listing(&b, "/huge"));
    assert_eq!(la.len(), n);
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (la.iter().collect(), lb.iter().collect());
    let only_a: Vec<_> = sa.difference(&sb).take(5).collect();
    let only_b: Vec<_> = sb.difference(&sa).take(5).collect();
    assert!(
        la == lb,
        "the listings differ: {} on A, {} on B; only on A {only_a:?}; only on B {only_b:?}",
        la.len(),
        lb.len()
    );
    let (code, out) = verify(&a, &b, &["--a-path", "/huge", "--b-path", "/huge"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn names_at_the_length_limit_and_full_of_odd_characters() {
    let a = Cluster::start();
    let b = Cluster::start();
    let mtime = filer_sync::util::now_ns() / 1_000_000_000;
    let names = [
        "x".repeat(255),
        "é".repeat(127), // 254 bytes of two-byte characters
        "日本語のファイル名".repeat(9),
        "emoji 🦀🚀 name".into(),
        "tab\there".into(),
        "new\nline".into(),
        "back\\slash".into(),
        "quote\"s and 'single'".into(),
        "percent %2F %00 %zz".into(),
        "question?and#hash&amp=1+plus".into(),
        "-leading-dash".into(),
        " leading and trailing space ".into(),
        ".hidden".into(),
        "...".into(),
        "semi;colon,comma=equals".into(),
        "\u{7f}del and \u{1}control".into(),
        "zero\u{200b}width".into(),
        "NFC-é vs NFD-e\u{301}".into(),
    ];
    for (i, name) in names.iter().enumerate() {
        create(
            &a,
            "/odd",
            inline_entry(name, format!("content {i}").as_bytes(), mtime),
        );
    }
    // A deep chain: 40 levels of long folder names.
    let mut deep = String::from("/odd");
    for i in 0..40 {
        deep = format!("{deep}/{}{i}", "d".repeat(40));
    }
    a.put(&format!("{deep}/leaf.bin"), &bytes(3, 70_000));
    // Rename an odd name to another odd name.
    a.mv("/odd/.hidden", "/odd/renamed 🦀 ?#");
    let state = temp_state("odd");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    let (la, lb) = (listing(&a, "/odd"), listing(&b, "/odd"));
    assert_eq!(la.len(), names.len() + 1, "{la:?}");
    assert_eq!(la, lb);
    assert_same(&a.tree("/odd"), &b.tree("/odd"));
}

/// Runs filer-sync with this host's clock moved by `offset` ("-2h", "+2h"),
/// through libfaketime's thread-safe variant (gRPC runs many threads).
fn skewed_once(a: &Cluster, b: &Cluster, state: &str, offset: &str) -> (i32, String, Duration) {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        std::path::Path::new(lib).exists(),
        "libfaketime is missing: make deps installs the faketime package"
    );
    let env = [
        ("LD_PRELOAD", lib),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    // The library works: `date` under it is off by the offset.
    let probe = Command::new("date").arg("+%s").envs(env).output().unwrap();
    let faked: i64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    let real = filer_sync::util::now_ns() / 1_000_000_000;
    assert!(
        (faked - real).abs() > 3000,
        "faketime did not move the clock"
    );
    let (a, b) = (a.addr(), b.addr());
    // Now and then (once in CI, once in 194 runs under load here) the
    // preloaded clock hangs the process in its first gRPC call, before its
    // first line: gRPC's timers wait in the kernel (futex, epoll), whose
    // clock the library does not fake, for deadlines reckoned by the faked
    // one. In the hang caught here every thread sat in such a wait and the
    // main one in GetFilerConfiguration, its own deadline never firing. No
    // skewed host mixes clocks so; such a run is retried, its threads'
    // stacks printed. A run that got as far as its first line (both filers'
    // connections made) and then hung still fails the test.
    for _ in 0..3 {
        let t = Instant::now();
        let silent = Some(Duration::from_secs(30));
        let passive = ["--active-passive"];
        if let Some((code, err)) = sync_once_watched(&a, &b, state, &passive, &env, silent) {
            return (code, err, t.elapsed());
        }
    }
    panic!("filer-sync under libfaketime hung at start-up three times running");
}

#[test]
fn clock_skew_neither_skips_nor_hangs() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..20 {
        a.put(&format!("/skew/f{i}.txt"), format!("file {i}").as_bytes());
    }
    // This host 2 h behind the clusters: a local "now" would call the run
    // caught up at the first event and copy nothing.
    let state = temp_state("skew-behind");
    let (code, err, took) = skewed_once(&a, &b, &state, "-2h");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("clock is"), "the skew is reported: {err}");
    assert_same(&a.tree("/skew"), &b.tree("/skew"));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // This host 2 h ahead: a local "now" would wait two hours for the
    // source's heartbeats to reach it.
    for i in 20..30 {
        a.put(&format!("/skew/f{i}.txt"), format!("file {i}").as_bytes());
    }
    let (code, err, took) = skewed_once(&a, &b, &state, "+2h");
    assert_eq!(code, 0, "{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_same(&a.tree("/skew"), &b.tree("/skew"));
}

#[test]
fn a_cluster_whose_clock_runs_ahead_wins_conflicts_and_both_converge() {
    let a = Cluster::start();
    let b = Cluster::start();
    let now = filer_sync::util::now_ns() / 1_000_000_000;
    // B's clock runs 2 h ahead: its writes carry mtimes 2 h in the future.
    // The same paths are then written on A, later in real time.
    for i in 0..5 {
        create(
            &b,
            "/cs",
            inline_entry(&format!("f{i}"), b"from B (clock ahead)", now + 7200),
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..5 {
        create(&a, "/cs", inline_entry(&format!("f{i}"), b"from A", now));
    }
    // A's clock runs 2 h behind for a new file: old mtimes still replicate.
    create(
        &a,
        "/cs",
        inline_entry("old", b"stamped in the past", now - 7200),
    );
    let state = temp_state("skew-conflict");
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/cs"), &b.tree("/cs"));
    // Last writer by mtime: B's skewed stamps win on both sides.
    assert_eq!(a.get("/cs/f0").unwrap(), b"from B (clock ahead)");
    assert_eq!(b.get("/cs/old").unwrap(), b"stamped in the past");
    // And nothing ping-pongs afterwards.
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("done: 0 events").count(), 2, "{err}");
}

/// Writes `data` over the needle `file_id` on the cluster's volume server
/// (a blob that must name its own id can only be written once it has one).
fn overwrite_needle(c: &Cluster, file_id: &str, data: &[u8]) {
    let boundary = "filer-sync-it-25";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n"
    );
    let body = [
        head.as_bytes(),
        data,
        format!("\r\n--{boundary}--\r\n").as_bytes(),
    ]
    .concat();
    let mut r = http()
        .post(&format!("http://127.0.0.1:{}/{file_id}", c.volume))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert!(status < 300, "POST {file_id}: {status} {text}");
}

/// A file entry named `name` of `size` bytes whose one chunk is `chunk`.
fn entry_with(name: &str, size: u64, chunk: FileChunk) -> Entry {
    let mut e = inline_entry(name, b"", 1_700_000_000);
    e.attributes.as_mut().unwrap().file_size = size;
    e.chunks = vec![chunk];
    e
}

/// Issue #25: a manifest chunk that lists itself recursed until the stack
/// overflowed (a crash loop), and a chunk longer than its entry says was
/// read whole into memory. Both are corrupt input: the sync ledgers each
/// file, copies nothing of it, and goes on with the rest.
#[test]
fn a_self_listing_manifest_and_an_overlong_chunk_are_ledgered_not_fatal() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/hostile/before.txt", b"before");
    let sink = ChunkSink::new(
        a.client(),
        false,
        Http::new(Duration::from_secs(30)),
        Placement::default(),
    );
    // A manifest chunk whose blob lists its own file id, as a manifest
    // again. weed's filer resolves the manifests of an entry it creates
    // (to free the chunks the entry replaces) and would itself loop on
    // that blob until the call's deadline: the entry is created over a
    // sound manifest, and the blob overwritten with the loop after.
    let data = sink
        .upload("/hostile/loop.bin", "loop.bin", "", &bytes(4, 100))
        .unwrap();
    let manifest = |id: &str, is_manifest: bool| {
        let mut c = FileChunk::new();
        c.fid = Some(fid::parse(id).unwrap()).into();
        (c.size, c.modified_ts_ns, c.is_chunk_manifest) = (100, 1, is_manifest);
        let mut m = FileChunkManifest::new();
        m.chunks.push(c);
        protobuf::Message::write_to_bytes(&m).unwrap()
    };
    let id = sink
        .upload("/hostile/loop.bin", "", "", &manifest(&data, false))
        .unwrap();
    let mut c = FileChunk::new();
    (c.file_id, c.size, c.modified_ts_ns, c.is_chunk_manifest) = (id.clone(), 100, 1, true);
    create(&a, "/hostile", entry_with("loop.bin", 100, c));
    overwrite_needle(&a, &id, &manifest(&id, true));
    // A 20,000-byte blob under an entry that says 1,000.
    let id = sink
        .upload("/hostile/long.bin", "long.bin", "", &bytes(5, 20_000))
        .unwrap();
    let mut c = FileChunk::new();
    (c.file_id, c.size, c.modified_ts_ns) = (id, 1000, 1);
    create(&a, "/hostile", entry_with("long.bin", 1000, c));
    a.put("/hostile/after.txt", b"after");

    let state = temp_state("hostile-data");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 1, "{err}");
    for name in ["loop.bin", "long.bin"] {
        assert!(err.contains(&format!("failed: /hostile/{name}")), "{err}");
        let on_b = b.client().lookup("/hostile", name).unwrap();
        assert!(on_b.is_none(), "{name} reached B: {on_b:?}");
    }
    assert!(err.contains("listed again within the same file"), "{err}");
    assert!(err.contains("the entry says 1000"), "{err}");
    assert_eq!(b.get("/hostile/before.txt").unwrap(), b"before");
    assert_eq!(b.get("/hostile/after.txt").unwrap(), b"after");
    let key = Direction {
        source_sig: a.client().configuration().unwrap().signature,
        source_path: "/".into(),
        target_sig: b.client().configuration().unwrap().signature,
        target_path: "/".into(),
        shard: None,
    };
    let s = State::open(std::path::Path::new(&state)).unwrap();
    let mut ledgered: Vec<String> = s
        .failures(&key)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    ledgered.sort();
    assert_eq!(ledgered, ["/hostile/long.bin", "/hostile/loop.bin"]);
    // The next run starts after them: nothing left to do, nothing retried.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
}
