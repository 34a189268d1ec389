//! The wire client against real filers: configuration, KV, the metadata
//! stream's event kinds, and chunk bytes between clusters (direct and proxy).

use crate::harness::*;
use filer_sync::filer::{Event, StreamItem};
use filer_sync::pb::filer::*;
use filer_sync::volume::{fid, ChunkSink, ChunkSource, Placement, Size};
use std::time::Duration;

#[test]
fn signatures_and_kv_round_trip() {
    let a = Cluster::start();
    let b = Cluster::start();
    let (ca, cb) = (a.client(), b.client());
    let sa = ca.configuration().unwrap().signature;
    let sb = cb.configuration().unwrap().signature;
    assert_ne!(sa, 0);
    assert_ne!(sb, 0);
    assert_ne!(sa, sb, "two clusters share a signature");
    assert_eq!(
        ca.configuration().unwrap().signature,
        sa,
        "signature is stable"
    );

    let key = b"filer-sync.test\x00key";
    assert_eq!(ca.kv_get(key).unwrap(), b"");
    ca.kv_put(key, &[1, 2, 3, 0, 255]).unwrap();
    assert_eq!(ca.kv_get(key).unwrap(), [1, 2, 3, 0, 255]);
    assert_eq!(cb.kv_get(key).unwrap(), b"", "KV is per cluster");
}

/// Reads the stream until `n` events under /t arrived (or 20 s passed).
fn events(sub: filer_sync::filer::Subscription, n: usize) -> Vec<Event> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for item in sub {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(StreamItem::Event(e))) => out.push(e),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("stream: {e}"),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn subscription_sees_create_delete_rename() {
    let a = Cluster::start();
    a.put("/t/one.txt", b"hello");
    a.put("/t/two.txt", b"world");
    a.delete("/t/one.txt");
    a.mv("/t/two.txt", "/t/sub/three.txt");
    let mut req = SubscribeMetadataRequest::new();
    req.client_name = "filer-sync-test".into();
    req.path_prefix = "/t/".into();
    req.client_id = 7;
    req.client_epoch = 1;
    req.client_supports_batching = true;
    req.client_supports_idle_heartbeat = true;
    let sub = a.client().subscribe(&req).unwrap();
    let evs = events(sub, 6);
    let kinds: Vec<String> = evs
        .iter()
        .map(|e| {
            let n = &e.notification;
            let name =
                |x: &MessageFieldEntry| x.as_ref().map(|e| e.name.clone()).unwrap_or_default();
            match (n.old_entry.is_some(), n.new_entry.is_some()) {
                (false, true) => format!("create {}/{}", e.directory, name(&n.new_entry)),
                (true, false) => format!("delete {}/{}", e.directory, name(&n.old_entry)),
                (true, true) => format!(
                    "rename {}/{} -> {}/{}",
                    e.directory,
                    name(&n.old_entry),
                    if n.new_parent_path.is_empty() {
                        &e.directory
                    } else {
                        &n.new_parent_path
                    },
                    name(&n.new_entry)
                ),
                _ => "empty".into(),
            }
        })
        .collect();
    for want in [
        "create /t/one.txt",
        "create /t/two.txt",
        "delete /t/one.txt",
        "rename /t/two.txt -> /t/sub/three.txt",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "missing {want:?} in {kinds:?}"
        );
    }
    let ts: Vec<i64> = evs.iter().map(|e| e.ts_ns).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "events in log order: {ts:?}"
    );
}

type MessageFieldEntry = protobuf::MessageField<Entry>;

fn copy_first_chunk(proxy: bool) {
    let a = Cluster::start();
    let b = Cluster::start();
    let data = bytes(42, 300_000);
    a.put("/c/blob.bin", &data);
    let (ca, cb) = (a.client(), b.client());
    let entry = ca.lookup("/c", "blob.bin").unwrap().expect("entry on A");
    assert_eq!(entry.chunks.len(), 1, "one chunk for 300 kB");
    let chunk = &entry.chunks[0];
    let id = fid::of_chunk(chunk);
    let agent = filer_sync::volume::Http::new(Duration::from_secs(30));
    let src = ChunkSource::new(ca.clone(), proxy, agent.clone());
    let got = src.download(&id, Size::Exact(chunk.size), false).unwrap();
    assert_eq!(got, data);
    let sink = ChunkSink::new(cb.clone(), proxy, agent, Placement::default());
    let new_id = sink.upload("/c/blob.bin", "blob.bin", "", &got).unwrap();
    assert_ne!(new_id, id);
    // Point an entry on B at the uploaded chunk and read it back through B's filer.
    let mut e = entry.clone();
    let mut c = chunk.clone();
    c.file_id = new_id;
    c.fid = Default::default();
    c.source_file_id = id;
    e.chunks = vec![c];
    let mut req = CreateEntryRequest::new();
    req.directory = "/c".into();
    req.entry = Some(e).into();
    cb.create(&req).unwrap();
    assert_eq!(b.get("/c/blob.bin").unwrap(), data);
    // A copy that ends up unused is freed on the volume server: directly,
    // or behind the filer proxy by the filer (a throwaway entry naming it,
    // deleted with its data; the filer deletes chunks in the background).
    let spare = sink
        .upload("/c/spare.bin", "spare.bin", "", b"unused")
        .unwrap();
    let url = format!("http://127.0.0.1:{}/{spare}", b.volume);
    let status = || http().get(&url).call().unwrap().status().as_u16();
    assert_eq!(status(), 200);
    sink.discard(std::slice::from_ref(&spare));
    eventually(30, "the unused copy to be freed", || status() == 404);
    let root = b.tree("/");
    assert!(
        root.keys().all(|p| !p.contains(".filer-sync-unused")),
        "the throwaway entry is gone: {:?}",
        root.keys().collect::<Vec<_>>()
    );
    assert_eq!(b.get("/c/blob.bin").unwrap(), data, "the used copy stays");
}

#[test]
fn chunk_copies_between_volume_servers() {
    copy_first_chunk(false);
}

#[test]
fn chunk_copies_through_filer_proxies() {
    copy_first_chunk(true);
}

/// A chunk no volume holds is `NotFound`; so is one its volume server has
/// marked deleted (what a filer does to a replaced version's chunks), unless
/// deleted chunks are asked for: the volume keeps their bytes until vacuumed.
#[test]
fn missing_and_deleted_chunks_are_not_found_unless_asked_for() {
    let a = Cluster::start();
    let data = bytes(1, 10_000);
    a.put("/c/x", &data);
    let ca = a.client();
    let entry = ca.lookup("/c", "x").unwrap().unwrap();
    let mut gone = entry.chunks[0].fid.clone().unwrap();
    gone.file_key += 1000;
    let src = ChunkSource::new(
        ca,
        false,
        filer_sync::volume::Http::new(Duration::from_secs(10)),
    );
    for deleted_too in [false, true] {
        let e = src
            .download(&fid::format(&gone), Size::Exact(10), deleted_too)
            .unwrap_err();
        assert_eq!(e.kind(), filer_sync::error::ErrorKind::NotFound, "{e}");
    }
    let id = fid::of_chunk(&entry.chunks[0]);
    let url = format!("http://127.0.0.1:{}/{id}", a.volume);
    let status = http().delete(&url).call().unwrap().status().as_u16();
    assert!((200..300).contains(&status), "DELETE {url}: {status}");
    let e = src.download(&id, Size::Exact(10_000), false).unwrap_err();
    assert_eq!(e.kind(), filer_sync::error::ErrorKind::NotFound, "{e}");
    assert_eq!(src.download(&id, Size::Exact(10_000), true).unwrap(), data);
}

/// File ids come 16 to an AssignVolume; topping them up after an entry is
/// written keeps the next upload off the master's way, and every id is good.
#[test]
fn file_ids_are_topped_up_before_they_run_out() {
    let b = Cluster::start();
    let sink = ChunkSink::new(
        b.client(),
        false,
        filer_sync::volume::Http::new(Duration::from_secs(10)),
        Placement::default(),
    );
    let mut written = Vec::new();
    for i in 0..13 {
        let data = bytes(i, 100 + i as usize);
        written.push((
            sink.upload(&format!("/t/f{i}"), "f", "", &data).unwrap(),
            data,
        ));
    }
    assert_eq!(sink.spare_ids("/t"), 3);
    sink.top_up("/t");
    // A batch is kept behind the 3 left, less those beyond a batch, plus
    // the one the refill asked for itself.
    assert_eq!(sink.spare_ids("/t"), 17);
    sink.top_up("/t");
    assert_eq!(sink.spare_ids("/t"), 17, "only when low");
    for i in 13..40 {
        let data = bytes(i, 100 + i as usize);
        written.push((
            sink.upload(&format!("/t/f{i}"), "f", "", &data).unwrap(),
            data,
        ));
    }
    for (id, data) in &written {
        let url = format!("http://127.0.0.1:{}/{id}", b.volume);
        let mut r = http().get(&url).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
        assert_eq!(&r.body_mut().read_to_vec().unwrap(), data, "{url}");
    }
    let ids: std::collections::HashSet<_> = written.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 40, "no id handed out twice");
}
