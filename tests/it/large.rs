//! Large chunks (a filer that writes 64 MiB chunks, as large-file clusters
//! do): each chunk streams from its download into its upload, so the sync's
//! memory does not grow with the chunk size, and a connection cut mid-chunk
//! starts that chunk again.

use crate::faults::FaultProxy;
use crate::harness::*;
use std::time::{Duration, Instant};

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn large_chunks_stream_in_flat_memory_and_survive_cuts() {
    let a = Cluster::with(Opts {
        filer_args: vec!["-maxMB=64".into()],
        ..Opts::default()
    });
    let b = Cluster::start();
    // 200 MiB: three chunks of 64 MiB and the rest.
    let big = bytes(11, 200 << 20);
    a.put("/big/blob.bin", &big);
    assert!(a.entry("/big/blob.bin").chunks.len() >= 4, "64 MiB chunks");
    // A's filer HTTP, which serves the chunk reads (--a-filer-proxy), sits
    // behind a fault proxy; gRPC goes straight to it.
    let proxy = FaultProxy::start(a.filer);
    let a_addr = format!("127.0.0.1:{}.{}", proxy.port, a.filer + 10000);
    let state = temp_state("large");
    let sync = Running(
        one_way_sync(&a_addr, &b.addr(), &state)
            .args(["--a-filer-proxy", "--bootstrap", "log"])
            .spawn()
            .unwrap(),
    );
    // Cut every connection three times while the chunks flow (between
    // chunk boundaries at 64, 128 and 192 MiB).
    let start = Instant::now();
    for mib in [30u64, 90, 150] {
        while proxy.bytes() < mib << 20 && start.elapsed() < Duration::from_secs(240) {
            std::thread::sleep(Duration::from_millis(2));
        }
        proxy.cut();
    }
    eventually(300, "the blob on B", || {
        b.client()
            .lookup("/big", "blob.bin")
            .ok()
            .flatten()
            .is_some_and(|e| {
                e.attributes
                    .as_ref()
                    .is_some_and(|x| x.file_size == big.len() as u64)
            })
    });
    assert_eq!(fnv(&b.get("/big/blob.bin").unwrap()), fnv(&big));
    assert!(
        proxy.bytes() > big.len() as u64,
        "a cut chunk was read again: {} bytes through the proxy",
        proxy.bytes()
    );
    let peak = peak_rss(sync.id());
    println!("peak RSS of the sync: {} MiB", peak >> 20);
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB with 64 MiB chunks and 8 chunk workers",
        peak >> 20
    );
}

/// Issue #25: a chunk whose transfer takes longer than the HTTP timeout
/// (48 MiB in one chunk at 1 MiB/s: ~47 s against 30 s) finishes, where a
/// deadline on the whole body failed it at the same point on every retry.
#[test]
fn a_single_chunk_slower_than_the_timeout_finishes_under_bwlimit() {
    let a = Cluster::with(Opts {
        filer_args: vec!["-maxMB=64".into()],
        ..Opts::default()
    });
    let b = Cluster::start();
    let big = bytes(25, 48 << 20);
    a.put("/slow/one.bin", &big);
    assert_eq!(a.entry("/slow/one.bin").chunks.len(), 1, "one 48 MiB chunk");
    let state = temp_state("slow-chunk");
    let t = Instant::now();
    let (code, err) = once(&a, &b, &state, &["--bwlimit", "1M"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("retry"), "the chunk was tried again:\n{err}");
    // The throttle held: it did take longer than the old deadline.
    assert!(took > Duration::from_secs(40), "took {took:?}");
    assert_eq!(fnv(&b.get("/slow/one.bin").unwrap()), fnv(&big));
    assert_same(&a.tree("/slow"), &b.tree("/slow"));
}
