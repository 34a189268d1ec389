//! The binary as a user meets it: bad input gets a clear one-line error
//! naming what was wrong, the documented exit code, no panic, no hang; the
//! flags are the ones docs/ describes, and README.md's commands work.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (i32, String) {
    run_sync(args, Duration::from_secs(60))
}

#[test]
fn malformed_address_is_a_usage_error() {
    let (code, err) = run(&["sync", "-a", "nonsense", "-b", "127.0.0.1:1", "--once"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"nonsense\"") && err.contains("HOST:PORT"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let (code, err) = run(&[
        "sync",
        "-a",
        "127.0.0.1:8888",
        "-b",
        "127.0.0.1:99999",
        "--once",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("99999"), "{err}");
}

#[test]
fn unreachable_filer_fails_fast_naming_it() {
    let state = temp_state("unreachable");
    let start = Instant::now();
    let (code, err) = run(&[
        "sync",
        "-a",
        "127.0.0.1:1",
        "-b",
        "127.0.0.1:2",
        "--once",
        "--timeout-secs",
        "3",
        "--state",
        &state,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(
        err.lines().filter(|l| l.starts_with("filer-sync:")).count() == 1,
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        !std::path::Path::new(&state).exists(),
        "state file created before both filers answered"
    );
}

#[test]
fn http_port_given_as_grpc_port_is_reported() {
    let a = Cluster::start();
    let wrong = format!("127.0.0.1:{}.{}", a.filer, a.filer);
    let state = temp_state("wrongport");
    let (code, err) = run(&[
        "sync",
        "-a",
        &wrong,
        "-b",
        &a.addr(),
        "--b-path",
        "/x",
        "--once",
        "--timeout-secs",
        "3",
        "--state",
        &state,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&wrong) && err.contains("gRPC port"), "{err}");
}

#[test]
fn help_and_unknown_subcommands() {
    for cmd in ["sync", "verify", "migrate", "status", "checkpoint"] {
        let (code, err) = run(&[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd}: {err}");
    }
    let (code, err) = run(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["checkpoint", "frob", "-a", "h:1", "-b", "h:2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("show, set, reset, import or export"), "{err}");
}

#[test]
fn a_state_file_that_is_not_one_is_a_usage_error() {
    let a = Cluster::start();
    let b = Cluster::start();
    let state = temp_state("garbage");
    std::fs::write(&state, vec![0x5a; 4096]).unwrap();
    let (code, err) = both_ways(&a, &b, &state, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&state) && err.contains("filer-sync state file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        vec![0x5a; 4096],
        "the file was left as it was"
    );
}

#[test]
fn flags_that_would_do_nothing_are_refused_before_anything_happens() {
    let state = temp_state("pointless");
    for (extra, named) in [
        // Active-passive never reads B: excluding on B does nothing.
        (
            &["--active-passive", "--b-exclude", "/keep"][..],
            "--b-exclude",
        ),
        // A certificate that is not there is named before any connection.
        (
            &["--a-grpc-ca", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem",
        ),
    ] {
        let (code, err) = sync_once("127.0.0.1:1", "127.0.0.1:2", &state, extra);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(named) && err.contains(extra[extra.len() - 2]),
            "{err}"
        );
        assert!(
            !std::path::Path::new(&state).exists(),
            "a state file was created"
        );
    }
}

/// `filer-sync … | head` with the reader gone before anything is written:
/// the output ends quietly, as a Unix tool's does, never in a panic.
#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    let state = temp_state("pipe");
    for args in [
        &["sync", "--help"][..],
        &["status", "--state", &state],
        &["verify", "--help"],
    ] {
        if args[0] == "status" {
            // A state file with a direction, for status to print.
            let mut st = filer_sync::state::State::open(std::path::Path::new(&state)).unwrap();
            let key = filer_sync::state::Direction {
                source_sig: 1,
                source_path: "/".into(),
                target_sig: 2,
                target_path: "/".into(),
                shard: None,
            };
            st.set_checkpoint(&key, 5).unwrap();
        }
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(bin())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
    }
}

/// The process starts itself again with glibc's per-thread caches off
/// (they held a long walk's freed memory: src/main.rs), once, keeping its
/// arguments and exit code; an operator's own GLIBC_TUNABLES is kept.
#[test]
fn glibcs_thread_caches_are_off_unless_the_operator_tuned_glibc() {
    // No such state file: a usage error, after the logger is up.
    let state = temp_state("tunables");
    let run = |tunables: Option<&str>| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["status", "--state", &state, "--json"])
            .env("RUST_LOG", "debug")
            .env_remove("GLIBC_TUNABLES");
        if let Some(t) = tunables {
            cmd.env("GLIBC_TUNABLES", t);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    let off = "glibc's per-thread caches are off";
    let (code, err) = run(None);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches(off).count(), 1, "{err}");
    assert!(
        err.contains(&format!("state file {state} does not exist")),
        "{err}"
    );
    let (code, err) = run(Some("glibc.malloc.arena_max=1"));
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains(off), "{err}");
}

/// `--log-format json`: every log line is one JSON object.
#[test]
fn json_logs_are_one_object_per_line() {
    let a = Cluster::start();
    let b = Cluster::start();
    a.put("/j/f.txt", b"json");
    let state = temp_state("json-logs");
    // After the command, as people type it (before it works as well).
    let (code, err) = run(&[
        "sync",
        "-a",
        &a.addr(),
        "-b",
        &b.addr(),
        "--active-passive",
        "--once",
        "--state",
        &state,
        "--log-format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(b.get("/j/f.txt").unwrap(), b"json");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    for l in &lines {
        assert!(
            l.starts_with(r#"{"time":""#) && l.ends_with("\"}") && l.contains(r#","level":"#),
            "not a JSON log line: {l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(r#""direction":"A→B""#)),
        "{err}"
    );
    let (code, err) = run(&["--log-format", "yaml", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--log-format \"yaml\": give text or json"),
        "{err}"
    );
}

/// Docs cannot drift from the flags: every flag in every command's `--help`
/// (and the top level's) has exactly one row in docs/ — a table headed
/// `| flag | commands |` — naming exactly the commands whose `--help` lists
/// it, and every `--flag` that docs/ or README.md mention is a flag some
/// command has.
#[test]
fn every_flag_is_documented_once_in_docs() {
    use std::collections::{BTreeMap, BTreeSet};
    let help = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // The flags of one `--help`: option lines start with two spaces and a
    // dash ("  -a, --a", "  --a-path"); wrapped text is indented further.
    let flags_of = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  -"))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
            .map(|w| w.trim_end_matches(',').to_string())
            .filter(|f| f != "--help")
            .collect()
    };
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(commands.len() >= 5, "{top}");
    let mut has: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in flags_of(&top) {
        has.entry(f).or_default();
    }
    for c in &commands {
        for f in flags_of(&help(&[c, "--help"])) {
            has.entry(f).or_default().insert(c.clone());
        }
    }
    assert!(has.contains_key("--log-format") && has.contains_key("--a-path"));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    let mut problems = Vec::new();
    // flag → where a row documents it, and the commands that row names.
    let mut rows: BTreeMap<String, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
    let mut mentioned: BTreeMap<String, String> = BTreeMap::new();
    for page in pages.iter().chain([&root.join("README.md")]) {
        let name = page.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(page).unwrap();
        let in_docs = page.parent() == Some(&root.join("docs"));
        let mut flag_table = false;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            for f in mentions(line) {
                mentioned.entry(f).or_insert_with(|| at.clone());
            }
            if !line.starts_with('|') {
                flag_table = false;
                continue;
            }
            if line.starts_with("| flag | commands |") {
                assert!(in_docs, "{at}: flags are documented in docs/");
                flag_table = true;
                continue;
            }
            if !flag_table || line.starts_with("|---") {
                continue;
            }
            let line = line.replace("\\|", "/");
            let cells: Vec<&str> = line.split('|').collect();
            let names: BTreeSet<String> = if cells[2].contains("all") {
                commands.iter().cloned().collect()
            } else {
                cells[2]
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .filter(|w| commands.iter().any(|c| c == w))
                    .map(String::from)
                    .collect()
            };
            // Each `code span` of the first cell names a flag by its first
            // word: `--a-path /p`, or `-a HOST:PORT` for --a.
            let spans = cells[1].split('`').skip(1).step_by(2);
            for word in spans.filter_map(|s| s.split_whitespace().next()) {
                let flag = match word.strip_prefix('-') {
                    Some(short) if short.len() == 1 => format!("--{short}"),
                    _ => word.to_string(),
                };
                rows.entry(flag)
                    .or_default()
                    .push((at.clone(), names.clone()));
            }
        }
    }
    for (flag, cmds) in &has {
        match rows.get(flag).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("{flag} ({cmds:?}) has no row in docs/")),
            Some([(at, named)]) if named != cmds => problems.push(format!(
                "{at}: {flag} is a flag of {cmds:?}, the row names {named:?}"
            )),
            Some([_]) => {}
            Some(many) => problems.push(format!(
                "{flag} is documented {} times: {:?}",
                many.len(),
                many.iter().map(|(at, _)| at).collect::<Vec<_>>()
            )),
        }
    }
    for (flag, places) in &rows {
        if !has.contains_key(flag) {
            problems.push(format!("{}: {flag} is no command's flag", places[0].0));
        }
    }
    for (flag, at) in &mentioned {
        if !has.contains_key(flag) && flag != "--help" {
            problems.push(format!("{at}: mentions {flag}, no command's flag"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The `--long-flag` words of a line of prose (a table's `|---|` is none).
fn mentions(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("--") {
        let after = &rest[i + 2..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        let word = after[..len].trim_end_matches('-');
        let before = rest[..i].chars().last();
        if after.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            found.push(format!("--{word}"));
        }
        rest = &after[len.max(1).min(after.len())..];
    }
    found
}

/// The commands README.md's "Replicate two clusters" shows, taken from its
/// text, run as a newcomer would against two local clusters (with `--once`
/// and a state file of the test's own): one way B becomes A's copy, both
/// ways each side's writes reach the other.
#[test]
fn the_readmes_commands_replicate_two_clusters() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("## Replicate two clusters")
        .expect("the section");
    let commands: Vec<&str> = readme[at..]
        .lines()
        .filter(|l| l.starts_with("filer-sync sync "))
        .take(2)
        .collect();
    assert_eq!(commands.len(), 2, "a one-way and a both-ways command");
    let (one_way, both) = (commands[0], commands[1]);
    assert!(one_way.contains("--active-passive") && !both.contains("--active-passive"));
    let a = Cluster::start();
    let b = Cluster::start();
    let run = |line: &str, state: &str| {
        let line = line
            .replace("a-filer:8888", &a.addr())
            .replace("b-filer:8888", &b.addr());
        let mut args: Vec<&str> = line.split_whitespace().skip(1).collect();
        args.extend(["--once", "--state", state]);
        let (code, out) = run_sync(&args, Duration::from_secs(120));
        assert_eq!(code, 0, "{line}: {out}");
    };
    a.put("/data/from-a.txt", b"written on A");
    b.put("/data/stale-on-b.txt", b"only on B");
    run(one_way, &temp_state("readme-one-way"));
    assert_same(&a.tree("/data"), &b.tree("/data"));
    assert!(
        b.get("/data/stale-on-b.txt").is_none(),
        "one way, B is A's copy"
    );
    b.put("/data/from-b.txt", b"written on B");
    a.put("/data/more-from-a.txt", b"written on A later");
    run(both, &temp_state("readme-both-ways"));
    assert_same(&a.tree("/data"), &b.tree("/data"));
    assert_eq!(
        a.get("/data/from-b.txt").as_deref(),
        Some(&b"written on B"[..])
    );
    assert!(b.get("/data/more-from-a.txt").is_some());
}
