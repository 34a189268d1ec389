//! Clusters that sign volume access with JWTs (security.toml): uploads carry
//! the token AssignVolume hands out; a source that also signs reads is read
//! with tokens minted from its read key, or through its filer proxy. Clusters
//! whose gRPC needs mutual TLS, each with its own CA, with certificates made
//! here by the openssl command.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
fn a_source_that_signs_reads_is_read_with_minted_tokens() {
    let a = secured(READ_WRITE_JWT);
    let b = Cluster::start();
    a.put("/jd/x.bin", &bytes(7, 300_000));
    a.put("/jd/small.txt", b"inline or not");
    // Without the key the volume server refuses the reads: the run fails,
    // says what to give, and leaves the checkpoint where it was.
    let state = temp_state("jwtdirect");
    let (code, err) = once(&a, &b, &state, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401") && err.contains("--a-security"), "{err}");
    // With A's security.toml, direct reads carry tokens.
    let state = temp_state("jwtdirect2");
    let toml = a.security_toml().unwrap();
    let (code, err) = once(&a, &b, &state, &["--a-security", &toml]);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/jd"), &b.tree("/jd"));
}

#[test]
fn tokens_never_reach_the_logs() {
    let a = secured(READ_WRITE_JWT);
    let b = secured(WRITE_JWT);
    a.put("/sec/x.bin", &bytes(6, 50_000));
    let state = temp_state("secrets");
    let toml = a.security_toml().unwrap();
    let out = one_way_sync(&a.addr(), &b.addr(), &state)
        .args(["--once", "--a-debug", "--b-debug", "--a-security", &toml])
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

/// A CA and one certificate it signed for 127.0.0.1/localhost, usable by
/// servers and clients alike: (ca.crt, node.crt, node.key) in `dir`.
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (make deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=filer-sync test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
    ];
    csr.extend(ec);
    run(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext.cnf",
        "-out",
        "node.crt",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("node.crt"),
        dir.join("node.key"),
    )
}

/// security.toml turning on mutual TLS for every gRPC server and client.
pub fn tls_toml(ca: &Path, cert: &Path, key: &Path) -> String {
    let pair = format!(
        "cert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let mut t = format!("[grpc]\nca = \"{}\"\n", ca.display());
    for part in ["master", "volume", "filer", "client"] {
        t += &format!("[grpc.{part}]\n{pair}");
    }
    t
}

#[test]
fn mutual_tls_clusters_each_with_its_own_ca() {
    let dir = std::env::temp_dir().join(format!("filer-sync-it-tls-{}", std::process::id()));
    let (ca_a, cert_a, key_a) = make_certs(&dir.join("a"));
    let (ca_b, cert_b, key_b) = make_certs(&dir.join("b"));
    let tls = |toml: String| {
        Cluster::with(Opts {
            security_toml: Some(toml),
            ..Opts::default()
        })
    };
    let a = tls(tls_toml(&ca_a, &cert_a, &key_a));
    let b = tls(tls_toml(&ca_b, &cert_b, &key_b));
    // The filers really refuse plaintext gRPC.
    let plain = filer_sync::filer::FilerClient::connect(&b.filer_addr(), Duration::from_secs(3));
    assert!(plain.configuration().is_err(), "B answers plaintext gRPC");

    a.put("/tls/small.txt", b"over mutual TLS");
    a.put("/tls/big.bin", &bytes(8, 3_000_000));
    a.mkdir("/tls/empty");

    // Without credentials for B: a clear error naming B, nothing written.
    let state = temp_state("tls-none");
    let toml_a = a.security_toml().unwrap();
    let (code, err) = once(&a, &b, &state, &["--a-security", &toml_a]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&b.addr()), "{err}");
    // B's client certificate comes from A's CA: B refuses it.
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let b_files = |cert: &Path, key: &Path| {
        let mut v = vec![
            "--a-security".to_string(),
            toml_a.clone(),
            "--b-grpc-ca".into(),
        ];
        v.extend([
            path(&ca_b),
            "--b-grpc-cert".into(),
            path(cert),
            "--b-grpc-key".into(),
            path(key),
        ]);
        v
    };
    let wrong = b_files(&cert_a, &key_a);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (code, err) = once(&a, &b, &state, &wrong);
    assert_eq!(code, 1, "{err}");
    assert!(b.tree("/").is_empty(), "B was written: {:?}", b.tree("/"));

    // A from its security.toml, B from explicit files: both ways.
    let state = temp_state("tls");
    let right = b_files(&cert_b, &key_b);
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    let (code, err) = both_ways(&a, &b, &state, &right);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/tls"), &b.tree("/tls"));
    // verify and checkpoint speak TLS too.
    let toml_b = b.security_toml().unwrap();
    let both = ["--a-security", &toml_a, "--b-security", &toml_b];
    let (code, out) = verify(
        &a,
        &b,
        &[&["--a-path", "/tls", "--b-path", "/tls"][..], &both].concat(),
    );
    assert_eq!(code, 0, "{out}");
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let export = [
        "checkpoint",
        "export",
        "-a",
        &a_addr,
        "-b",
        &b_addr,
        "--state",
        &state,
    ];
    let (code, out) = run_sync(&[&export[..], &both].concat(), Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
