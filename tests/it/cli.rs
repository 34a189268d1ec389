//! The binary's behaviour on bad input: a clear one-line error naming what
//! was wrong, the documented exit code, no panic, no hang.

use crate::harness::*;
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
