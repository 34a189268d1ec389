//! `verify` finds every class of difference and `--repair` fixes them;
//! `migrate` copies a tree without the log's past, survives a kill, and
//! catches writes made while it walks.

use crate::harness::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn verify_reports_each_class_and_repair_fixes_them() {
    let a = Cluster::start();
    let b = Cluster::start();
    for f in ["same", "mtime", "etag", "coverage", "content", "size"] {
        a.put(&format!("/v/{f}.bin"), &bytes(1, 300_000));
    }
    a.put("/v/t/inside.txt", b"t is a folder on A");
    let state = temp_state("verify");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out) = verify(&a, &b, &[]);
    assert_eq!((code, out.trim()), (0, "equal"));

    a.put("/v/missing.txt", b"only on A");
    b.put("/v/extra.txt", b"only on B");
    b.delete("/v/t");
    b.put("/v/t", b"a file on B");
    b.put("/v/size.bin", &bytes(1, 299_999));
    b.edit("/v/mtime.bin", |e| {
        e.attributes.as_mut().unwrap().mtime -= 60
    });
    let a_mtime = a.entry("/v/etag.bin").attributes.unwrap();
    b.put("/v/etag.bin", &bytes(2, 300_000));
    b.edit("/v/etag.bin", |e| {
        let at = e.attributes.as_mut().unwrap();
        (at.mtime, at.mtime_ns, at.md5) = (a_mtime.mtime, a_mtime.mtime_ns, vec![]);
    });
    b.edit("/v/coverage.bin", |e| {
        let c = &mut e.chunks[0];
        c.offset += 1000;
    });
    // Same size, mtime and ETag on record, other bytes: only --checksum sees it.
    let a_content = a.entry("/v/content.bin");
    b.put("/v/content.bin", &bytes(3, 300_000));
    b.edit("/v/content.bin", |e| {
        e.attributes = a_content.attributes.clone();
        for (c, src) in e.chunks.iter_mut().zip(&a_content.chunks) {
            c.e_tag = src.e_tag.clone();
        }
    });

    let (code, out) = verify(&a, &b, &["--json"]);
    assert_eq!(code, 1, "{out}");
    for (class, path) in [
        ("missing on B", "/missing.txt"),
        ("only on B", "/extra.txt"),
        ("type", "/t"),
        ("size", "/size.bin"),
        ("mtime", "/mtime.bin"),
        ("etag", "/etag.bin"),
        ("chunk coverage", "/coverage.bin"),
    ] {
        let want = format!("{{\"class\":\"{class}\",\"path\":\"/v{path}\"}}");
        assert!(out.contains(&want), "no {want} in {out}");
    }
    assert!(
        !out.contains("/v/content.bin") && !out.contains("/v/same.bin"),
        "{out}"
    );
    let (code, out) = verify(&a, &b, &["--checksum"]);
    assert_eq!(code, 1);
    assert!(out.contains("content: /v/content.bin"), "{out}");

    let (code, out) = verify(&a, &b, &["--checksum", "--repair"]);
    assert_eq!((code, out.trim()), (0, "equal"), "{out}");
    assert_same(&a.tree("/v"), &b.tree("/v"));
    assert_eq!(b.get("/v/content.bin").unwrap(), bytes(1, 300_000));
}

#[test]
fn migrate_copies_without_the_log_and_resumes_after_a_kill() {
    let a = Cluster::with(Opts {
        filer_args: vec!["-maxMB=1".into()],
        ..Opts::default()
    });
    let b = Cluster::start();
    for i in 0..40 {
        a.put(
            &format!("/mig/d{}/f{i}.bin", i % 5),
            &bytes(i, 150_000 + (i as usize % 3) * 700_000),
        );
    }
    let state = temp_state("migrate");
    let (aa, ba) = (a.addr(), b.addr());
    let args = [
        "migrate",
        "-a",
        aa.as_str(),
        "-b",
        ba.as_str(),
        "--a-path",
        "/mig",
        "--b-path",
        "/moved",
        "--state",
        &state,
    ];
    // Paced (about 34 MB at 4 MB/s), so that the kill lands mid-copy.
    let mut first = Command::new(bin())
        .args(args)
        .args(["--bwlimit", "4M"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let files = |t: &Tree| t.values().filter(|n| !n.dir).count();
    eventually(60, "the first files on B", || {
        b.client().lookup("/", "moved").unwrap().is_some() && files(&b.tree("/moved")) > 0
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let copied = files(&b.tree("/moved"));
    assert!(
        copied < 40,
        "the kill landed after the copy: {copied} files"
    );
    // Writes while the migration runs again are caught by the replay.
    let writer = {
        let url = a.url("/mig/late");
        std::thread::spawn(move || {
            for i in 0..20 {
                let r = http()
                    .put(&format!("{url}/l{i}.txt"))
                    .send(&b"late"[..])
                    .unwrap();
                assert!(r.status().as_u16() < 300);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (code, err) = run_sync(&args, Duration::from_secs(300));
    writer.join().unwrap();
    // Writes that landed after this run's replay began make it exit 1 ("not
    // equal yet"); one more run, with the writer done, must finish the job.
    assert!(code == 0 || err.contains("missing on B: /late/"), "{err}");
    let (code, err) = run_sync(&args, Duration::from_secs(300));
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/mig"), &b.tree("/moved"));
}

/// Folders larger than a listing page (1,024) and than a batch of
/// differences (2,048): every difference is found wherever it falls among
/// the pages, none is invented where the pages of A and B break at
/// different names, and `--repair` fixes them.
#[test]
fn folders_of_several_pages_are_merged_by_name() {
    let a = Cluster::start();
    let b = Cluster::start();
    let write = |c: &Cluster, names: Vec<String>| {
        let url = c.url("/big");
        let chunks: Vec<Vec<String>> = names
            .chunks(names.len() / 8 + 1)
            .map(|c| c.to_vec())
            .collect();
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|names| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let agent = http();
                    for n in names {
                        let r = agent.put(&format!("{url}/{n}")).send(n.as_bytes()).unwrap();
                        assert!(r.status().as_u16() < 300);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    };
    let name = |i: usize| format!("f{i:05}");
    // A: 3,000 files. B: the same but every 7th missing, plus 50 of its own
    // spread among them (so that B's pages break at other names).
    write(&a, (0..3000).map(name).collect());
    let mut on_b: Vec<String> = (0..3000).filter(|i| i % 7 != 0).map(name).collect();
    on_b.extend((0..50).map(|i| format!("f{:05}x", i * 60)));
    write(&b, on_b);
    let (code, out) = verify(&a, &b, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let count = |class: &str| out.matches(&format!("\"class\":\"{class}\"")).count();
    assert_eq!(count("missing on B"), 429, "every 7th of 3,000");
    assert_eq!(count("only on B"), 50);
    let (code, out) = verify(&a, &b, &["--repair"]);
    assert_eq!((code, out.trim()), (0, "equal"), "{out}");
    let (code, out) = verify(&a, &b, &[]);
    assert_eq!((code, out.trim()), (0, "equal"), "{out}");
    // A first run's walk repairs as it lists: more folders at one depth
    // than it lists at once, each handing its differences over, while the
    // repair of the first ones runs (the walk once waited on itself here).
    for d in 0..60 {
        a.put(&format!("/many/d{d}/f.txt"), b"x");
    }
    let state = temp_state("many");
    let args = ["--active-passive", "--a-path", "/many", "--b-path", "/many"];
    let (code, out) = once(&a, &b, &state, &args);
    assert_eq!(code, 0, "{out}");
    assert_same(&a.tree("/many"), &b.tree("/many"));
}

/// A folder larger than a walk holds whole (10,000 entries): B's side is
/// kept as prints, A's entries stream past them, and every class of
/// difference is still found (the differing ones looked up on B, the names
/// only B has picked from a second listing), then repaired.
#[test]
fn a_folder_too_large_to_hold_is_compared_by_prints() {
    use filer_sync::pb::filer::CreateEntryRequest;
    let a = Cluster::start();
    let b = Cluster::start();
    const N: usize = 10_300;
    let on = |c: &Cluster, entries: Vec<filer_sync::pb::filer::Entry>| {
        let per = entries.len() / 4 + 1;
        std::thread::scope(|s| {
            for part in entries.chunks(per) {
                let client = c.client();
                s.spawn(move || {
                    for e in part {
                        let mut req = CreateEntryRequest::new();
                        req.directory = "/huge".into();
                        req.entry = Some(e.clone()).into();
                        client.create(&req).unwrap();
                    }
                });
            }
        });
    };
    // The folder itself alike on both (made at different times, it would
    // differ in its attributes).
    for c in [&a, &b] {
        let mut d = inline_entry("huge", b"", 1_700_000_000);
        (
            d.is_directory,
            d.attributes.mut_or_insert_default().file_mode,
        ) = (true, 0o755 | 1 << 31);
        let mut req = CreateEntryRequest::new();
        req.directory = "/".into();
        req.entry = Some(d).into();
        c.client().create(&req).unwrap();
    }
    let entry = |i: usize| {
        inline_entry(
            &format!("n{i:05}"),
            format!("{i}").as_bytes(),
            1_700_000_000,
        )
    };
    on(&a, (0..N).map(entry).collect());
    // B: every 100th missing, 40 of its own, and among the rest 30 with
    // another mtime, 20 with an extra attribute, 10 with other bytes of
    // the same size and time.
    let on_b = (0..N)
        .filter(|i| i % 100 != 0)
        .map(|i| {
            let mut e = entry(i);
            match i % 100 {
                1 if i < 3000 => e.attributes.mut_or_insert_default().mtime += 5,
                2 if i < 2000 => {
                    e.extended.insert("user.k".into(), b"v".to_vec());
                }
                3 if i < 1000 => e.content = format!("{:>1$}", "x", e.content.len()).into_bytes(),
                _ => {}
            }
            e
        })
        .chain((0..40).map(|i| inline_entry(&format!("n{:05}b", i * 250), b"b", 1_700_000_000)))
        .collect();
    on(&b, on_b);
    let (code, out) = verify(&a, &b, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let count = |class: &str| out.matches(&format!("\"class\":\"{class}\"")).count();
    assert_eq!(count("missing on B"), 103, "every 100th of 10,300");
    assert_eq!(count("only on B"), 40);
    assert_eq!(count("mtime"), 30);
    assert_eq!(count("attributes"), 20);
    assert_eq!(count("etag"), 10);
    let (code, out) = verify(&a, &b, &["--repair"]);
    assert_eq!((code, out.trim()), (0, "equal"), "{out}");
    let (code, out) = verify(&a, &b, &[]);
    assert_eq!((code, out.trim()), (0, "equal"), "{out}");
}
