//! Clusters secured end to end: gRPC mutual TLS plus volume servers (and
//! filers) that speak only HTTPS and demand client certificates, each
//! cluster with its own CA, as `[https.volume]`, `[https.filer]` and
//! `[https.client]` of its security.toml set them. Each test first shows
//! that the servers refuse plain HTTP; then chunks move over HTTPS straight
//! to the volume servers and through the filers, one way and both ways (and
//! for verify --checksum and migrate), and
//! between an HTTPS cluster and a plain one; a wrong CA, a missing client
//! certificate and a scheme that differs from the server's stop the run at
//! start-up with exit 2, a message naming the cluster and server, and
//! nothing written.

use crate::harness::*;
use crate::security::{make_certs, tls_toml};
use std::path::Path;
use std::time::Duration;

/// What a Go HTTPS server answers a plain HTTP request with.
const PLAIN_REFUSED: &str = "Client sent an HTTP request to an HTTPS server";

/// `[https.client]` with the CA and, if given, a client certificate.
fn https_client(ca: &Path, pair: Option<(&Path, &Path)>) -> String {
    let mut t = format!(
        "[https.client]\nenabled = true\nca = \"{}\"\n",
        ca.display()
    );
    if let Some((cert, key)) = pair {
        t += &format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        );
    }
    t
}

/// gRPC mTLS, HTTPS-only volume servers (and filers with `filers`) that
/// demand client certificates from `ca`, and the client settings for all.
fn secured_toml(ca: &Path, cert: &Path, key: &Path, filers: bool) -> String {
    let server = format!(
        "cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        cert.display(),
        key.display(),
        ca.display()
    );
    let mut t = tls_toml(ca, cert, key);
    t += &format!("[https.volume]\n{server}");
    if filers {
        t += &format!("[https.filer]\n{server}");
    }
    t + &https_client(ca, Some((cert, key)))
}

fn cluster(toml: String) -> Cluster {
    Cluster::with(Opts {
        security_toml: Some(toml),
        // 1 MiB chunks: a 2.5 MB file is several chunks.
        filer_args: vec!["-maxMB=1".into()],
        ..Opts::default()
    })
}

/// Writes `text` to `dir/name` and returns its path.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// A plain HTTP GET to `port` on 127.0.0.1 is refused as an HTTPS
/// server refuses it.
fn refuses_plain_http(port: u16) {
    let mut r = http()
        .get(&format!("http://127.0.0.1:{port}/status"))
        .call()
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(r.status().as_u16(), 400, "{body}");
    assert!(body.contains(PLAIN_REFUSED), "{body}");
}

#[test]
fn https_clusters_sync_one_way_and_both_ways_direct_and_through_filers() {
    let dir = std::env::temp_dir().join(format!("filer-sync-it-https-{}", std::process::id()));
    let (ca_a, cert_a, key_a) = make_certs(&dir.join("a"));
    let (ca_b, cert_b, key_b) = make_certs(&dir.join("b"));
    let a = cluster(secured_toml(&ca_a, &cert_a, &key_a, true));
    let b = cluster(secured_toml(&ca_b, &cert_b, &key_b, true));
    // The volume servers and filers speak only HTTPS: a transfer over
    // plain HTTP could not have succeeded.
    for port in [a.volume, a.filer, b.volume, b.filer] {
        refuses_plain_http(port);
    }
    for i in 0..5 {
        a.put(
            &format!("/s/small-{i}.txt"),
            format!("small {i}").as_bytes(),
        );
    }
    a.put("/s/big.bin", &bytes(27, 2_500_000));
    assert!(a.entry("/s/big.bin").chunks.len() > 1, "not multi-chunk");
    a.mkdir("/s/empty");
    let (ta, tb) = (a.security_toml().unwrap(), b.security_toml().unwrap());

    // B's gRPC settings right, its HTTPS ones wrong: exit 2 at start-up,
    // naming B and the server, and nothing written on B.
    let grpc_b = tls_toml(&ca_b, &cert_b, &key_b);
    let wrong_ca = file(
        &dir,
        "b-wrong-ca.toml",
        &(grpc_b.clone() + &https_client(&ca_a, Some((&cert_b, &key_b)))),
    );
    let no_cert = file(
        &dir,
        "b-no-cert.toml",
        &(grpc_b + &https_client(&ca_b, None)),
    );
    let vol_b = format!("B's volume server 127.0.0.1:{}", b.volume);
    let filer_b = format!("B's filer 127.0.0.1:{}", b.filer);
    for (toml, proxy, want) in [
        (&wrong_ca, false, (&vol_b, "not signed by the CA")),
        (&wrong_ca, true, (&filer_b, "not signed by the CA")),
        (&no_cert, false, (&vol_b, "demands a client certificate")),
    ] {
        let state = temp_state("https-bad");
        let mut extra = vec!["--a-security", &ta, "--b-security", toml];
        if proxy {
            extra.push("--b-filer-proxy");
        }
        let (code, err) = once(&a, &b, &state, &extra);
        assert_eq!(code, 2, "{toml}: {err}");
        assert!(
            err.contains(want.0) && err.contains(want.1),
            "{want:?}: {err}"
        );
        assert!(b.tree("/").is_empty(), "B was written: {:?}", b.tree("/"));
    }

    // One way, straight to the volume servers.
    let both = ["--a-security", &ta, "--b-security", &tb];
    let state = temp_state("https");
    let (code, err) = once(&a, &b, &state, &both);
    assert_eq!(code, 0, "{err}");
    assert_same(&a.tree("/s"), &b.tree("/s"));

    // Both ways through the filers: new files on B, then a rename on A
    // (once both directions follow, so that the walk of B→A's first run
    // does not bring the old name back).
    b.put("/s/from-b.txt", b"written on B");
    b.put("/s/big-b.bin", &bytes(28, 1_500_000));
    let proxies = [&both[..], &["--a-filer-proxy", "--b-filer-proxy"]].concat();
    let (code, err) = both_ways(&a, &b, &state, &proxies);
    assert_eq!(code, 0, "{err}");
    assert!(a.get("/s/big-b.bin").is_some());
    assert_same(&a.tree("/s"), &b.tree("/s"));
    a.mv("/s/small-0.txt", "/s/renamed.txt");
    let (code, err) = both_ways(&a, &b, &state, &proxies);
    assert_eq!(code, 0, "{err}");
    assert!(b.get("/s/renamed.txt").is_some() && b.get("/s/small-0.txt").is_none());
    assert_same(&a.tree("/s"), &b.tree("/s"));

    // verify --checksum hashes the bytes through both HTTPS filers.
    let (code, out) = verify(
        &a,
        &b,
        &[
            &["--a-path", "/s", "--b-path", "/s", "--checksum"][..],
            &both,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}");

    // migrate copies over HTTPS too, into a folder of its own on B.
    let (aa, ba, state) = (a.addr(), b.addr(), temp_state("https-migrate"));
    let migrate = [
        "migrate", "-a", &aa, "-b", &ba, "--a-path", "/s", "--b-path", "/copy", "--state", &state,
    ];
    let (code, out) = run_sync(&[&migrate[..], &both].concat(), Duration::from_secs(120));
    assert_eq!(code, 0, "{out}");
    assert_same(&a.tree("/s"), &b.tree("/copy"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_mixed_pair_https_and_plain_syncs_both_ways_and_a_scheme_mismatch_is_named() {
    let dir = std::env::temp_dir().join(format!("filer-sync-it-mixed-{}", std::process::id()));
    let (ca, cert, key) = make_certs(&dir.join("a"));
    // A: HTTPS volume servers (its filer's HTTP API stays plain); B: plain.
    let a = cluster(secured_toml(&ca, &cert, &key, false));
    let b = Cluster::start();
    refuses_plain_http(a.volume);
    let ta = a.security_toml().unwrap();

    // A asked over plain HTTP (its gRPC settings only), B over HTTPS: each
    // is named with the fix, exit 2, nothing written.
    let grpc_only = file(&dir, "a-grpc-only.toml", &tls_toml(&ca, &cert, &key));
    let b_https = file(
        &dir,
        "b-https.toml",
        &https_client(&ca, Some((&cert, &key))),
    );
    a.put("/m/a-small.txt", b"from the HTTPS side");
    a.put("/m/a-big.bin", &bytes(29, 2_500_000));
    for (extra, want) in [
        (
            vec!["--a-security", &grpc_only],
            format!("A's volume server 127.0.0.1:{} speaks only HTTPS", a.volume),
        ),
        (
            vec!["--a-security", &ta, "--b-security", &b_https],
            format!(
                "B's volume server 127.0.0.1:{}: it does not speak HTTPS",
                b.volume
            ),
        ),
    ] {
        let state = temp_state("mixed-bad");
        let (code, err) = once(&a, &b, &state, &extra);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&want), "{want}: {err}");
        assert!(b.tree("/").is_empty(), "B was written: {:?}", b.tree("/"));
    }

    // Both ways: A→B reads over HTTPS and writes plain, B→A the reverse.
    b.put("/m/b-small.txt", b"from the plain side");
    b.put("/m/b-big.bin", &bytes(30, 1_200_000));
    let state = temp_state("mixed");
    let (code, err) = both_ways(&a, &b, &state, &["--a-security", &ta]);
    assert_eq!(code, 0, "{err}");
    assert!(a.get("/m/b-big.bin").is_some() && b.get("/m/a-big.bin").is_some());
    assert_same(&a.tree("/m"), &b.tree("/m"));
    let _ = std::fs::remove_dir_all(&dir);
}
