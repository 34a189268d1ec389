//! Clusters that sign volume access with JWTs (security.toml): uploads carry
//! the token AssignVolume hands out; a source that also signs reads is read
//! through its filer proxy, which mints read tokens.

use crate::harness::*;

const WRITE_JWT: &str =
    "[jwt.signing]\nkey = \"filer-sync-test-write-key\"\nexpires_after_seconds = 60\n";
const READ_WRITE_JWT: &str =
    "[jwt.signing]\nkey = \"filer-sync-test-write-key\"\nexpires_after_seconds = 60\n\
[jwt.signing.read]\nkey = \"filer-sync-test-read-key\"\nexpires_after_seconds = 60\n";

fn secured(toml: &str) -> Cluster {
    Cluster::with(Opts {
        security_toml: Some(toml.into()),
        ..Opts::default()
    })
}

#[test]
fn uploads_into_a_jwt_cluster_carry_the_assigned_token() {
    let a = Cluster::start();
    let b = secured(WRITE_JWT);
    // The target really refuses unsigned writes.
    let assign: String = http()
        .get(&format!("http://127.0.0.1:{}/dir/assign", b.master))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let fid = assign
        .split("\"fid\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let unsigned = http()
        .post(&format!("http://127.0.0.1:{}/{fid}", b.volume))
        .header("Content-Type", "application/octet-stream")
        .send(&b"x"[..])
        .unwrap();
    assert_eq!(
        unsigned.status().as_u16(),
        401,
        "the target accepts unsigned writes"
    );

    a.put("/jwt/small.txt", b"signed write");
    a.put("/jwt/big.bin", &bytes(4, 3_000_000));
    let state = temp_state("jwt");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/jwt"), &b.tree("/jwt"));
}

#[test]
fn a_source_that_signs_reads_is_read_through_its_filer() {
    let a = secured(READ_WRITE_JWT);
    let b = Cluster::start();
    a.put("/jr/x.bin", &bytes(5, 200_000));
    let state = temp_state("jwtread");
    let (code, err) = once(&a, &b, &state, &["--a-filer-proxy"]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/jr"), &b.tree("/jr"));
}

#[test]
fn tokens_never_reach_the_logs() {
    let a = Cluster::start();
    let b = secured(WRITE_JWT);
    a.put("/sec/x.bin", &bytes(6, 50_000));
    let state = temp_state("secrets");
    let out = one_way_sync(&a.addr(), &b.addr(), &state)
        .args(["--once", "--a-debug", "--b-debug"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("applied /sec/x.bin"),
        "debug logging was on: {log}"
    );
    // JWTs are base64url JSON: they start with "eyJ".
    assert!(
        !log.contains("eyJ") && !log.contains("Bearer"),
        "a token was logged:\n{log}"
    );
}
