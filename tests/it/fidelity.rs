//! What one-way replication must carry exactly: attributes (mode, uid, gid,
//! mtime with ns, crtime, mime, symlink target, extended attributes),
//! appends and truncates, chunk manifests, deletes kept with --b-no-delete,
//! the failure ledger for a chunk that is gone for good, and --dry-run
//! (a plan on stdout, nothing written: not the target, not the state file).

use crate::harness::*;
use filer_sync::pb::filer::*;
use filer_sync::state::{Direction, State};
use filer_sync::volume::{fid, ChunkSink, Placement};
use std::time::Duration;

fn create(c: &Cluster, dir: &str, e: Entry) {
    let mut req = CreateEntryRequest::new();
    req.directory = dir.into();
    req.entry = Some(e).into();
    c.client().create(&req).unwrap();
}

#[test]
fn attributes_appends_truncates_and_symlinks() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/m/attr.txt", b"attributes change, content does not");
    a.put("/m/app.txt", b"first line\n");
    a.put("/m/trunc.bin", &bytes(7, 50_000));
    let state = temp_state("attrs");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");

    a.edit("/m/attr.txt", |e| {
        let at = e.attributes.as_mut().unwrap();
        at.file_mode = 0o600;
        at.uid = 1234;
        at.gid = 5678;
        at.mtime += 10;
        at.mtime_ns = 123_456_789;
        at.crtime -= 100;
        at.mime = "text/x-filer-sync".into();
        e.extended.insert("Seaweed-Owner".into(), b"chris".to_vec());
    });
    let append = http()
        .put(&format!("{}?op=append", a.url("/m/app.txt")))
        .send(&b"second line\n"[..])
        .unwrap();
    assert!(append.status().as_u16() < 300);
    a.put("/m/trunc.bin", &bytes(7, 1000));
    let mut link = Entry::new();
    link.name = "link".into();
    let mut at = FuseAttributes::new();
    at.file_mode = 0o777 | (1 << 27);
    at.mtime = 1_700_000_000;
    at.mtime_ns = 42;
    at.symlink_target = "/m/attr.txt".into();
    link.attributes = Some(at).into();
    create(&a, "/m", link);

    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    let (ta, tb) = (a.tree("/m"), b.tree("/m"));
    assert_same(&ta, &tb);
    let attr = &tb["/attr.txt"];
    assert_eq!(
        (attr.mode, attr.mtime.1, attr.mime.as_str()),
        (0o600, 123_456_789, "text/x-filer-sync")
    );
    assert_eq!(tb["/link"].symlink, "/m/attr.txt");
    assert_eq!(b.get("/m/app.txt").unwrap(), b"first line\nsecond line\n");
    assert_eq!(b.get("/m/trunc.bin").unwrap(), bytes(7, 1000));
    let eb = b.entry("/m/attr.txt");
    let at = eb.attributes.unwrap();
    assert_eq!((at.uid, at.gid), (1234, 5678));
    assert_eq!(at.crtime, a.entry("/m/attr.txt").attributes.unwrap().crtime);
}

#[test]
fn chunk_manifests_are_rewritten_for_the_target() {
    let a = Cluster::start();
    let b = Cluster::start();
    let ca = a.client();
    let sink = ChunkSink::new(
        ca.clone(),
        false,
        filer_sync::volume::Http::new(Duration::from_secs(30)),
        Placement::default(),
    );
    // Three data chunks, listed by a manifest chunk, as weed does past 10,000 chunks.
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes(100 + i, 70_000)).collect();
    let mut manifest = FileChunkManifest::new();
    let mut offset = 0i64;
    for p in &parts {
        let id = sink.upload("/man/big.bin", "big.bin", "", p).unwrap();
        let mut c = FileChunk::new();
        c.fid = Some(fid::parse(&id).unwrap()).into();
        c.offset = offset;
        c.size = p.len() as u64;
        c.modified_ts_ns = 1;
        manifest.chunks.push(c);
        offset += p.len() as i64;
    }
    let blob = protobuf::Message::write_to_bytes(&manifest).unwrap();
    let mid = sink
        .upload("/man/big.bin", "", "application/octet-stream", &blob)
        .unwrap();
    let mut mc = FileChunk::new();
    mc.file_id = mid;
    mc.offset = 0;
    mc.size = offset as u64;
    mc.is_chunk_manifest = true;
    mc.modified_ts_ns = 2;
    let mut e = Entry::new();
    e.name = "big.bin".into();
    let mut at = FuseAttributes::new();
    at.file_size = offset as u64;
    at.file_mode = 0o644;
    at.mtime = 1_700_000_000;
    e.attributes = Some(at).into();
    e.chunks = vec![mc];
    create(&a, "/man", e);
    let whole: Vec<u8> = parts.concat();
    assert_eq!(
        a.get("/man/big.bin").unwrap(),
        whole,
        "the source filer resolves the manifest"
    );

    let state = temp_state("manifest");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(b.get("/man/big.bin").unwrap(), whole);
    let eb = b.entry("/man/big.bin");
    assert_eq!(eb.chunks.len(), 1);
    assert!(
        eb.chunks[0].is_chunk_manifest,
        "the target keeps a manifest chunk"
    );
    let src_ids: Vec<String> = a
        .entry("/man/big.bin")
        .chunks
        .iter()
        .map(fid::of_chunk)
        .collect();
    assert!(
        !src_ids.contains(&fid::of_chunk(&eb.chunks[0])),
        "the target manifest is its own"
    );
}

#[test]
fn no_delete_keeps_target_entries() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/nd/keep.txt", b"deleted on A later");
    a.put("/nd/old-name.txt", b"renamed on A later");
    let state = temp_state("nodelete");
    let (code, err) = once(&a, &b, &state, &["--b-no-delete"]);
    assert_eq!(code, 0, "{err}");
    a.delete("/nd/keep.txt");
    a.mv("/nd/old-name.txt", "/nd/new-name.txt");
    let (code, err) = once(&a, &b, &state, &["--b-no-delete"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(b.get("/nd/keep.txt").unwrap(), b"deleted on A later");
    assert_eq!(b.get("/nd/old-name.txt").unwrap(), b"renamed on A later");
    assert_eq!(b.get("/nd/new-name.txt").unwrap(), b"renamed on A later");
}

/// What a state file holds of each direction (checkpoint, when it was
/// committed, counters, ledgers), to tell that a run left it as it was.
fn positions(state: &str) -> Vec<String> {
    State::open_existing(std::path::Path::new(state))
        .unwrap()
        .directions()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{:?} ts {} at {} events {} bytes {} failures {} conflicts {}",
                d.key, d.ts_ns, d.updated_ns, d.events, d.bytes, d.failures, d.conflicts
            )
        })
        .collect()
}

/// The plan lines of a dry run's output (stdout), whatever RUST_LOG says.
fn dry_run(a: &Cluster, b: &Cluster, state: &str, extra: &[&str]) -> String {
    let mut args = vec!["--dry-run"];
    args.extend_from_slice(extra);
    let (code, out) = once_env(a, b, state, &args, &[("RUST_LOG", "off")]);
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn a_dry_run_changes_nothing_and_the_real_run_then_copies_everything() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..20 {
        a.put(&format!("/dr/f{i}.txt"), format!("file {i}").as_bytes());
    }
    a.put("/dr/sub/b.bin", &bytes(3, 100_000));
    b.put("/dr/only-on-b.txt", b"b");
    let before = b.tree("/");
    let state = temp_state("dryrun");

    // A first run, dry: the plan reaches stdout with logging off, the
    // target and the state file stay as they were (none was there).
    let out = dry_run(&a, &b, &state, &[]);
    for i in 0..20 {
        let line = format!(
            "A→B create /dr/f{i}.txt ({} bytes)",
            format!("file {i}").len()
        );
        assert!(out.contains(&line), "{line} missing from:\n{out}");
    }
    assert!(
        out.contains("A→B create /dr/sub/b.bin (100000 bytes)"),
        "{out}"
    );
    assert!(out.contains("A→B create /dr/sub/ (0 bytes)"), "{out}");
    // B made /dr itself (for its own file): A's folder attributes go over it.
    assert!(out.contains("A→B update /dr/ (0 bytes)"), "{out}");
    assert!(
        out.contains(
            "A→B dry run: would 22 create, 1 update, 0 delete, 0 move (100130 bytes to \
            copy); nothing was changed"
        ),
        "{out}"
    );
    let json = dry_run(&a, &b, &state, &["--json"]);
    assert!(
        json.lines().any(|l| l
            == concat!(
                r#"{"direction":"A→B","op":"create","path":"/dr/sub/b.bin","#,
                r#""size":100000,"dir":false}"#
            )),
        "{json}"
    );
    assert!(
        json.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{json}"
    );
    assert_eq!(b.tree("/"), before);
    assert!(
        !std::path::Path::new(&state).exists(),
        "a dry run made the state file"
    );

    // The real run after it copies everything.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    for i in 0..20 {
        let want = format!("file {i}");
        assert_eq!(b.get(&format!("/dr/f{i}.txt")).unwrap(), want.as_bytes());
    }
    assert_eq!(b.get("/dr/sub/b.bin").unwrap(), bytes(3, 100_000));

    // A dry run over a checkpoint plans the changes since and leaves the
    // checkpoint, the counters and the target where they were.
    a.put("/dr/new.txt", b"new");
    a.delete("/dr/f0.txt");
    a.mv("/dr/f1.txt", "/dr/g1.txt");
    a.put("/dr/f2.txt", b"rewritten");
    let (kept, on_b) = (positions(&state), b.tree("/"));
    let out = dry_run(&a, &b, &state, &[]);
    for line in [
        "A→B create /dr/new.txt (3 bytes)",
        "A→B delete /dr/f0.txt (6 bytes)",
        "A→B move   /dr/f1.txt -> /dr/g1.txt (6 bytes)",
        "A→B update /dr/f2.txt (9 bytes)",
        "A→B dry run: would 1 create, 1 update, 1 delete, 1 move (12 bytes to copy); nothing was \
            changed",
    ] {
        assert!(out.contains(line), "{line} missing from:\n{out}");
    }
    assert_eq!(positions(&state), kept, "the dry run moved the state");
    assert_eq!(b.tree("/"), on_b);
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(b.get("/dr/new.txt").unwrap(), b"new");
    assert_eq!(b.get("/dr/f0.txt"), None);
    assert_eq!(b.get("/dr/f1.txt"), None);
    assert_eq!(b.get("/dr/g1.txt").unwrap(), b"file 1");
    assert_eq!(b.get("/dr/f2.txt").unwrap(), b"rewritten");
    assert_ne!(positions(&state), kept, "the real run commits");

    // Both ways, each direction plans its own changes; neither side moves.
    let (on_a, on_b) = (a.tree("/"), b.tree("/"));
    let two = temp_state("dryrun-two-way");
    let args = ["--dry-run", "--json"];
    let (code, out) = sync_once_env(&a.addr(), &b.addr(), &two, &args, &[("RUST_LOG", "off")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            r#"{"direction":"B→A","op":"create","path":"/dr/only-on-b.txt","size":1,"dir":false}"#
        ),
        "{out}"
    );
    assert!(out.contains(r#"{"direction":"A→B","summary":{"#), "{out}");
    assert!(out.contains(r#"{"direction":"B→A","summary":{"#), "{out}");
    assert_eq!((a.tree("/"), b.tree("/")), (on_a, on_b));
}

#[test]
fn a_chunk_gone_for_good_is_ledgered_and_does_not_wedge() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/bad/before.txt", b"before");
    a.put("/bad/real.bin", &bytes(1, 20_000));
    // An entry whose chunk never existed on A's volume servers.
    let mut e = a.entry("/bad/real.bin");
    let mut gone = e.chunks[0].fid.clone().unwrap();
    gone.file_key += 7777;
    e.chunks[0].fid = Some(gone).into();
    e.chunks[0].file_id.clear();
    e.name = "broken.bin".into();
    create(&a, "/bad", e);
    a.put("/bad/after.txt", b"after");
    let state = temp_state("ledger");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("failed: /bad/broken.bin"), "{err}");
    assert_eq!(b.get("/bad/after.txt").unwrap(), b"after");
    assert_eq!(b.get("/bad/real.bin").unwrap(), bytes(1, 20_000));
    assert!(b.get("/bad/broken.bin").is_none());
    let s = State::open(std::path::Path::new(&state)).unwrap();
    let key = Direction {
        source_sig: a.client().configuration().unwrap().signature,
        source_path: "/".into(),
        target_sig: b.client().configuration().unwrap().signature,
        target_path: "/".into(),
        shard: None,
    };
    let failures = s.failures(&key).unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].path, "/bad/broken.bin");
    assert!(
        s.checkpoint(&key).unwrap().unwrap() > failures[0].event_ts_ns,
        "checkpoint moved past it"
    );
    // status shows the ledger and exits 1 while a direction has failures.
    let out = std::process::Command::new(bin())
        .args(["status", "--state", &state])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not running") && text.contains("; 1 failures; 0 conflicts"),
        "{text}"
    );
    assert!(text.contains("failed: /bad/broken.bin"), "{text}");
    assert!(
        text.contains(&format!("{} / (signature ", a.addr())),
        "{text}"
    );
    // The next run starts after it: nothing left to do.
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn chunks_replaced_on_the_target_are_freed() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..20 {
        a.put(&format!("/gc/f{i}.bin"), &bytes(i, 5000));
    }
    let state = temp_state("gc");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    // Batch-assigned ids included: B's copies of 20 files in one folder.
    let old: Vec<String> = (0..20)
        .flat_map(|i| b.entry(&format!("/gc/f{i}.bin")).chunks)
        .map(|c| filer_sync::volume::fid::of_chunk(&c))
        .collect();
    for i in 0..10 {
        a.put(&format!("/gc/f{i}.bin"), &bytes(100 + i, 6000));
    }
    for i in 10..20 {
        a.delete(&format!("/gc/f{i}.bin"));
    }
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/gc"), &b.tree("/gc"));
    // B's filer frees the replaced chunks in the background: every one of
    // them must end up gone from its volume server.
    let gone = |fid: &String| {
        let url = format!("http://127.0.0.1:{}/{fid}", b.volume);
        http().get(&url).call().unwrap().status().as_u16() == 404
    };
    eventually(30, "B's volume server frees the replaced chunks", || {
        old.iter().all(gone)
    });
    let log = std::fs::read_to_string(b.dir.join("filer.log")).unwrap();
    assert!(!log.contains("Parse cookie error"), "{log}");
}

#[test]
fn folders_a_filer_makes_by_itself_keep_the_source_attributes() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/imp/src/f.txt", b"moved into folders that are not there");
    // A's filer makes the missing folders itself, and logs no event for them.
    a.mv("/imp/src/f.txt", "/imp/made/by/move/f.txt");
    // B would stamp the folders it makes with a later time.
    std::thread::sleep(Duration::from_millis(1100));
    let state = temp_state("implicit");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/imp"), &b.tree("/imp"));
}

/// A new source entry in a folder the sync made on the target skips the
/// target lookup and is created exclusively. When the target has the entry
/// after all (its own users wrote there), the usual comparison decides and
/// the chunk copied for nothing is freed.
#[test]
fn a_new_entry_the_target_has_already_is_compared_before_it_is_written() {
    let a = Cluster::start();
    let b = Cluster::start();
    let state = temp_state("fresh");
    let log = std::env::temp_dir().join(format!("filer-sync-it-fresh-{}.log", std::process::id()));
    let (aa, ba) = (a.addr(), b.addr());
    let sync = Running(
        std::process::Command::new(bin())
            .args(["sync", "-a", &aa, "-b", &ba, "--state", &state])
            // The folder must be made by the log's events (a fresh folder).
            .args(["--bootstrap", "log"])
            .env("RUST_LOG", "filer_sync=debug")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    a.put("/fx/f0.txt", b"makes /fx on B");
    eventually(30, "/fx/f0.txt on B", || b.get("/fx/f0.txt").is_some());
    // With the sync paused, both write f.txt; B's version is the newer.
    let pid = sync.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    a.put("/fx/f.txt", b"A's, older");
    std::thread::sleep(Duration::from_millis(1100));
    b.put("/fx/f.txt", b"B's, newer");
    unsafe { libc::kill(pid, libc::SIGCONT) };
    eventually(30, "B's version on A", || {
        a.get("/fx/f.txt").as_deref() == Some(&b"B's, newer"[..])
    });
    let text = || std::fs::read_to_string(&log).unwrap();
    eventually(30, "the chunk A's copy left unused freed on B", || {
        text().contains("freed unused chunk")
    });
    drop(sync);
    let text = text();
    assert!(
        text.contains("/fx/f.txt is not on the target as its event implies"),
        "{text}"
    );
    assert!(!text.contains("could not be freed"), "{text}");
    assert_eq!(b.get("/fx/f.txt").unwrap(), b"B's, newer");
    assert_same(&a.tree("/fx"), &b.tree("/fx"));
    // A folder made by the next run: its files go in by exclusive create.
    for i in 0..20 {
        a.put(&format!("/fx/new/n{i}.txt"), &bytes(i, 3000));
    }
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/fx"), &b.tree("/fx"));
}

/// One-way, a file written anew in place is written over on the target
/// without a lookup, whether the target still has it or lost it meanwhile.
#[test]
fn a_rewritten_file_the_target_lost_is_written_again() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/rw/f.txt", b"version one");
    a.put("/rw/g.txt", b"kept");
    let state = temp_state("rewritten");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    let g_before = b.entry("/rw/g.txt").chunks[0].file_id.clone();
    b.delete("/rw/f.txt");
    a.put("/rw/f.txt", b"version two, all new chunks");
    a.put("/rw/g.txt", b"kept, and rewritten");
    let (code, err) = once_env(&a, &b, &state, &[], &[("RUST_LOG", "filer_sync=debug")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("is not on the target as its event implies"),
        "{err}"
    );
    assert!(!err.contains("could not be freed"), "{err}");
    assert_same(&a.tree("/rw"), &b.tree("/rw"));
    assert_eq!(b.get("/rw/f.txt").unwrap(), b"version two, all new chunks");
    // The version written over is gone with its chunk (freed by B's filer).
    let url = format!("http://127.0.0.1:{}/{g_before}", b.volume);
    eventually(30, "B's filer freed g.txt's old chunk", || {
        http().get(&url).call().unwrap().status().as_u16() == 404
    });
}

/// A rewritten file whose path holds a folder on the target (its own users
/// made one there) goes down the looked-up path, which replaces the folder.
#[test]
fn a_rewritten_file_over_a_target_folder_replaces_it() {
    let err = rewritten_over_a_target_folder("/rw2", 0);
    assert!(!err.contains("; applying it again"), "{err}");
}

/// The same, with siblings rewritten in the same window: the file's write
/// is one of a level's parked creations (sent, answered after the level's
/// others were sent), which the target refuses; it is applied again on the
/// looked-up path, and the siblings' parked writes land.
#[test]
fn a_parked_write_the_target_refuses_is_applied_again() {
    let err = rewritten_over_a_target_folder("/rw3", 5);
    assert!(
        err.lines()
            .any(|l| l.contains("A→B: /rw3/x: ") && l.ends_with("; applying it again")),
        "{err}"
    );
}

/// One-way, `dir`/x becomes a folder on B, then x and `siblings` files
/// beside it are written anew on A; the sync's debug log.
fn rewritten_over_a_target_folder(dir: &str, siblings: usize) -> String {
    let a = Cluster::start();
    let b = Cluster::start();
    let x = format!("{dir}/x");
    let sibling = |i| format!("{dir}/s{i}");
    a.put(&x, b"a file");
    for i in 0..siblings {
        a.put(&sibling(i), b"a sibling");
    }
    let state = temp_state("rewritten-folder");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    b.delete(&x);
    b.put(&format!("{x}/inside.txt"), b"B made x a folder");
    a.put(&x, b"the file, written anew");
    for i in 0..siblings {
        a.put(&sibling(i), format!("sibling {i}, written anew").as_bytes());
    }
    let (code, err) = once_env(&a, &b, &state, &[], &[("RUST_LOG", "filer_sync=debug")]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree(dir), &b.tree(dir));
    assert_eq!(b.get(&x).unwrap(), b"the file, written anew");
    for i in 0..siblings {
        assert_eq!(
            b.get(&sibling(i)).unwrap(),
            format!("sibling {i}, written anew").as_bytes()
        );
    }
    assert!(
        err.contains(&format!("{x} is not on the target as its event implies")),
        "{err}"
    );
    assert!(!err.contains("could not be freed"), "{err}");
    err
}

/// Collections of a cluster's volumes, by volume id (from its volume
/// server's status page).
fn volume_collections(c: &Cluster) -> std::collections::HashMap<u32, String> {
    let url = format!("http://127.0.0.1:{}/status", c.volume);
    let text = http()
        .get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.split("{\"Collection\":\"")
        .skip(1)
        .map(|v| {
            let collection = v[..v.find('"').unwrap()].to_string();
            let id = v[v.find("\"Id\":").unwrap() + 5..]
                .split(|ch: char| !ch.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (id, collection)
        })
        .collect()
}

/// The collections the chunks of the files below `dir` on `c` went to.
fn chunk_collections(c: &Cluster, dir: &str, names: &[String]) -> Vec<String> {
    let volumes = volume_collections(c);
    names
        .iter()
        .map(|n| {
            let e = c.entry(&format!("{dir}/{n}"));
            assert_eq!(e.chunks.len(), 1, "{dir}/{n}");
            let vid: u32 = fid::volume_id(&fid::of_chunk(&e.chunks[0]))
                .unwrap()
                .parse()
                .unwrap();
            volumes
                .get(&vid)
                .cloned()
                .unwrap_or_else(|| panic!("volume {vid} of {dir}/{n} not on the status page"))
        })
        .collect()
}

fn put_storage_rule(c: &Cluster, prefix: &str, collection: &str) {
    let conf = format!(
        "{{\"locations\":[{{\"locationPrefix\":\"{prefix}\",\"collection\":\"{collection}\"}}]}}"
    );
    c.put_with(
        "/etc/seaweedfs/filer.conf",
        conf.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    // The filer reloads its rules from its own metadata events: wait until
    // a write of its own under the prefix lands where the rule says.
    let probe = format!("{prefix}rule-probe");
    let (dir, name) = filer_sync::paths::split_path(probe.trim_end_matches('/'));
    eventually(30, "the filer follows its new storage rule", || {
        c.put(&probe, &bytes(9, 100));
        let at = chunk_collections(c, dir, &[name.to_string()]);
        c.delete(&probe);
        at == [collection]
    });
}

/// Copied chunks land where the target's path-specific storage rules
/// (filer.conf) put the target's own writes. File ids are shared across
/// folders only while the target has no rules; rules made while a sync
/// runs are followed from its next batch of ids on (at most 256 files
/// later).
#[test]
fn chunks_land_where_the_targets_storage_rules_say() {
    let a = Cluster::start();
    let b = Cluster::start();
    let names = |p: &str, n: u64| -> Vec<String> { (0..n).map(|i| format!("{p}{i}")).collect() };
    for (i, n) in names("f", 20).iter().enumerate() {
        a.put(&format!("/sr/plain/{n}"), &bytes(i as u64, 2000));
        a.put(&format!("/sr/ruled/{n}"), &bytes(i as u64 + 100, 2000));
    }
    put_storage_rule(&b, "/sr/ruled/", "ruled");
    let state = temp_state("rules");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(chunk_collections(&b, "/sr/ruled", &names("f", 20))
        .iter()
        .all(|c| c == "ruled"));
    assert!(chunk_collections(&b, "/sr/plain", &names("f", 20))
        .iter()
        .all(|c| c.is_empty()));

    // Rules made while a sync follows a target that had none.
    let (a, b) = (Cluster::start(), Cluster::start());
    let state = temp_state("rules-later");
    let _sync = Running(one_way_sync(&a.addr(), &b.addr(), &state).spawn().unwrap());
    for (i, n) in names("f", 50).iter().enumerate() {
        a.put(&format!("/later/plain/{n}"), &bytes(i as u64, 2000));
    }
    eventually(60, "plain files on B", || {
        b.get("/later/plain/f49").is_some()
    });
    put_storage_rule(&b, "/later/ruled/", "ruled");
    let ruled = names("g", 400);
    for (i, n) in ruled.iter().enumerate() {
        a.put(&format!("/later/ruled/{n}"), &bytes(i as u64, 2000));
    }
    eventually(120, "all ruled files on B", || {
        let mut n = 0;
        let listed = b.client().list("/later/ruled", |_| {
            n += 1;
            Ok(())
        });
        listed.is_ok() && n == ruled.len()
    });
    let got = chunk_collections(&b, "/later/ruled", &ruled);
    assert!(
        got[256..].iter().all(|c| c == "ruled"),
        "files past the first batch after the rule went elsewhere: {got:?}"
    );
}

/// File ids are asked for with the size the copies will have: a master
/// charges each id's expected size (1 MB without a hint) to its volume until
/// heartbeats report the real size, marks the volume full when the charges
/// reach its limit, and stalls assigns while it grows new ones. Copying
/// 2,000 small files (2 MB) into a fresh target must not fill a volume of
/// 256 MB on paper.
#[test]
fn small_files_do_not_make_the_target_grow_volumes() {
    let a = Cluster::start();
    let b = Cluster::start();
    for i in 0..2000u64 {
        a.put(&format!("/gv/d{}/f{i}", i % 20), &bytes(i, 1024));
    }
    let before = volume_collections(&b).len();
    let state = temp_state("grow");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/gv"), &b.tree("/gv"));
    let after = volume_collections(&b).len();
    println!("volumes on the target: {before} before, {after} after");
    // A master grows 7 volumes at a time (replication 000).
    assert!(
        after < before + 7,
        "the target grew from {before} to {after} volumes for 2 MB of files"
    );
}

/// What a volume server answers a direct read of `file_id` on `c` with:
/// the needle's MIME type and name, as a reader of the chunk sees them.
fn needle_heads(c: &Cluster, file_id: &str) -> (Option<String>, Option<String>) {
    let url = format!("http://127.0.0.1:{}/{file_id}", c.volume);
    let r = http()
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    let head = |k: &str| {
        r.headers()
            .get(k)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    (head("content-type"), head("content-disposition"))
}

/// The copies of chunks keep what their needles say of themselves (the
/// name and MIME type a direct read answers with), whichever way a copy is
/// written: small ones written ahead for a batch, one in one piece, a
/// larger one from memory, a large one streamed; names with a space, a
/// non-ASCII letter, a type with parameters, none at all, a form's type
/// (which a volume server reads a bare body of as its form).
#[test]
fn copied_needles_keep_their_name_and_mime_type() {
    let opts = Opts {
        filer_args: vec!["-maxMB=4".into()],
        ..Opts::default()
    };
    let a = Cluster::with(opts.clone());
    let b = Cluster::with(opts);
    let files: [(&str, Option<&str>, usize); 10] = [
        ("a.txt", None, 3000),
        ("b.json", Some("application/json"), 2000),
        ("c.png", Some("image/png"), 1500),
        ("d ü.html", Some("text/html; charset=utf-8"), 2500),
        ("e", Some("application/x-filer-sync-test"), 1000),
        ("f.bin", None, 4000),
        // curl's type for --data-binary: a bare body of it is read as a form.
        ("g.txt", Some("application/x-www-form-urlencoded"), 30),
        ("h.eml", Some("multipart/form-data; boundary=x"), 500),
        ("mid.dat", Some("application/octet-stream"), 200 << 10),
        ("big.csv", Some("text/csv"), 3 << 20),
    ];
    for (i, (name, mime, n)) in files.iter().enumerate() {
        let headers: Vec<(&str, &str)> = mime.iter().map(|m| ("Content-Type", *m)).collect();
        a.put_with(&format!("/nm/{name}"), &bytes(i as u64, *n), &headers);
    }
    let state = temp_state("needles");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/nm"), &b.tree("/nm"));
    for (name, _, _) in &files {
        let path = format!("/nm/{name}");
        let (ea, eb) = (a.entry(&path), b.entry(&path));
        assert_eq!(ea.chunks.len(), eb.chunks.len(), "{path}");
        assert!(!ea.chunks.is_empty(), "{path} has no chunk on A");
        for (ca, cb) in ea.chunks.iter().zip(&eb.chunks) {
            let (ida, idb) = (fid::of_chunk(ca), fid::of_chunk(cb));
            assert_ne!(ida, idb, "{path}: not a copy");
            assert_eq!(
                needle_heads(&a, &ida),
                needle_heads(&b, &idb),
                "{path}: needle {ida} on A, its copy {idb} on B"
            );
        }
    }
}
