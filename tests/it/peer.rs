//! Input from a peer that would write outside the synced folder: a hostile
//! source filer (a gRPC server on 127.0.0.1 serving the very methods the
//! sync calls on a source, `filer_sync::filer::rpc`) that gives crafted
//! names (`..`, `.`, "", `a/b`, `x\0y`) in its events and listings, in
//! front of a real target cluster B. Each test puts sentinels on B outside
//! `--b-path` first and proves B's tree there unchanged afterwards, the run
//! ended normally, and every refusal in the state file's failure ledger.

use crate::harness::*;
use filer_sync::apply::{Applier, Mode, Transfer};
use filer_sync::error::ErrorKind;
use filer_sync::filer::rpc;
use filer_sync::paths::is_under;
use filer_sync::pb::filer::*;
use filer_sync::replicate::{Action, Change};
use filer_sync::retry::Cancel;
use filer_sync::state::{Direction, State};
use filer_sync::volume::{ChunkSink, ChunkSource, Http, Placement};
use futures::SinkExt;
use grpcio::{
    EnvBuilder, RpcContext, RpcStatus, RpcStatusCode, ServerBuilder, ServerCredentials,
    ServiceBuilder, UnarySink, WriteFlags,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The hostile filer's store signature.
const SIGNATURE: i32 = 0x0bad_f11e;

/// What the hostile filer serves.
#[derive(Default)]
struct Script {
    /// SubscribeMetadata: (directory, notification), the first at ts 1,
    /// the next at 2, …; those after the subscription's `since_ns` are
    /// served, then idle heartbeats.
    events: Vec<(String, EventNotification)>,
    /// ListEntries and LookupDirectoryEntry: folder → its entries.
    tree: BTreeMap<String, Vec<Entry>>,
}

/// A source filer that answers with `Script`, and otherwise as a filer.
struct HostileFiler {
    server: grpcio::Server,
    port: u16,
}

impl HostileFiler {
    fn start(script: Script) -> HostileFiler {
        let env = Arc::new(EnvBuilder::new().cq_count(1).name_prefix("hostile").build());
        let script = Arc::new(script);
        let (listed, looked_up, events) = (script.clone(), script.clone(), script);
        let service = ServiceBuilder::new()
            .add_unary_handler(&rpc::GET_FILER_CONFIGURATION, |ctx, _, sink| {
                let mut r = GetFilerConfigurationResponse::new();
                r.signature = SIGNATURE;
                r.version = "4.48".into();
                reply(&ctx, sink, r);
            })
            .add_unary_handler(&rpc::PING, |ctx, _, sink| {
                let mut r = PingResponse::new();
                r.start_time_ns = filer_sync::util::now_ns();
                r.stop_time_ns = r.start_time_ns;
                reply(&ctx, sink, r);
            })
            .add_unary_handler(
                &rpc::LOOKUP_DIRECTORY_ENTRY,
                move |ctx, req: LookupDirectoryEntryRequest, sink| {
                    let found = looked_up
                        .tree
                        .get(&req.directory)
                        .and_then(|es| es.iter().find(|e| e.name == req.name));
                    match found {
                        Some(e) => {
                            let mut r = LookupDirectoryEntryResponse::new();
                            r.entry = Some(e.clone()).into();
                            reply(&ctx, sink, r);
                        }
                        None => {
                            let msg = format!(
                                "{}/{}: filer: no entry is found in filer store",
                                req.directory, req.name
                            );
                            let status = RpcStatus::with_message(RpcStatusCode::UNKNOWN, msg);
                            ctx.spawn(async move {
                                let _ = sink.fail(status).await;
                            });
                        }
                    }
                },
            )
            .add_server_streaming_handler(
                &rpc::LIST_ENTRIES,
                move |ctx, req: ListEntriesRequest, mut sink| {
                    let page: Vec<_> = listed
                        .tree
                        .get(&req.directory)
                        .into_iter()
                        .flatten()
                        .skip_while(|e| {
                            !req.startFromFileName.is_empty() && e.name != req.startFromFileName
                        })
                        .skip(usize::from(!req.startFromFileName.is_empty()))
                        .take(if req.limit == 0 {
                            usize::MAX
                        } else {
                            req.limit as usize
                        })
                        .map(|e| {
                            let mut r = ListEntriesResponse::new();
                            r.entry = Some(e.clone()).into();
                            Ok((r, WriteFlags::default()))
                        })
                        .collect();
                    ctx.spawn(async move {
                        let mut page = futures::stream::iter(page);
                        let _ = sink.send_all(&mut page).await;
                        let _ = sink.close().await;
                    });
                },
            )
            .add_server_streaming_handler(
                &rpc::SUBSCRIBE_METADATA,
                move |_, req: SubscribeMetadataRequest, mut sink| {
                    let script = events.clone();
                    // A thread of its own streams the events, then a
                    // heartbeat every 200 ms (as a filer does every few
                    // seconds) until the subscriber hangs up.
                    std::thread::spawn(move || {
                        let send = |sink: &mut grpcio::ServerStreamingSink<_>, r| {
                            futures::executor::block_on(sink.send((r, WriteFlags::default())))
                                .is_ok()
                        };
                        for (i, (dir, n)) in script.events.iter().enumerate() {
                            let mut r = SubscribeMetadataResponse::new();
                            r.directory = dir.clone();
                            r.event_notification = Some(n.clone()).into();
                            r.ts_ns = 1 + i as i64;
                            if r.ts_ns > req.since_ns && !send(&mut sink, r) {
                                return;
                            }
                        }
                        loop {
                            let mut r = SubscribeMetadataResponse::new();
                            r.ts_ns = filer_sync::util::now_ns();
                            if !send(&mut sink, r) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    });
                },
            )
            .build();
        let mut server = ServerBuilder::new(env)
            .register_service(service)
            .build()
            .expect("build the hostile filer");
        let port = server
            .add_listening_port("127.0.0.1:0", ServerCredentials::insecure())
            .expect("bind the hostile filer");
        server.start();
        HostileFiler { server, port }
    }

    /// Its address for `-a`: the HTTP port is never used (inline content
    /// only), the gRPC port is the server's.
    fn addr(&self) -> String {
        format!("127.0.0.1:{0}.{0}", self.port)
    }
}

impl Drop for HostileFiler {
    fn drop(&mut self) {
        let _ = futures::executor::block_on(self.server.shutdown());
    }
}

fn reply<T: Send + 'static>(ctx: &RpcContext, sink: UnarySink<T>, r: T) {
    ctx.spawn(async move {
        let _ = sink.success(r).await;
    });
}

fn file(name: &str, content: &[u8]) -> Entry {
    inline_entry(name, content, filer_sync::util::now_ns() / 1_000_000_000)
}

fn folder(name: &str) -> Entry {
    let mut e = file(name, b"");
    e.is_directory = true;
    e.content.clear();
    e.attributes.mut_or_insert_default().file_mode = (1 << 31) | 0o755;
    e
}

/// An event of `dir`: `old` and `new` entries, the new one in `new_parent`
/// when that is not empty.
fn event(
    dir: &str,
    old: Option<Entry>,
    new: Option<Entry>,
    new_parent: &str,
) -> (String, EventNotification) {
    let mut n = EventNotification::new();
    n.old_entry = old.into();
    n.new_entry = new.into();
    n.new_parent_path = new_parent.into();
    (dir.to_string(), n)
}

/// The target cluster B with its sentinels, and its tree outside `/dst`
/// as it is before a sync.
fn target() -> (Cluster, Tree) {
    let b = Cluster::start();
    sentinels(&b);
    let before = outside(&b);
    (b, before)
}

/// Sentinels on B outside `/dst`, and a few entries inside it.
fn sentinels(b: &Cluster) {
    b.put("/sentinel.txt", b"root sentinel");
    b.put("/private/secret.txt", b"secret");
    b.put(
        "/dstx/sibling.txt",
        b"a sibling folder that shares a prefix",
    );
    b.put("/dst/keep.txt", b"kept");
    b.put("/dst/m.txt", b"moves out of the folder");
    b.put("/dst/sub/inner.txt", b"inner");
}

/// B's tree outside `/dst` (and `/dst`'s own entry), leaving out B's own
/// metadata log, which grows with every write.
fn outside(b: &Cluster) -> Tree {
    b.tree("/")
        .into_iter()
        .filter(|(p, _)| p == "/dst" || !is_under(p, "/dst"))
        .filter(|(p, _)| !is_under(p, "/topics/.system/log"))
        .collect()
}

/// The ledger of the direction from the hostile filer's /src to B's /dst.
fn ledger(b: &Cluster, state: &str) -> Vec<filer_sync::state::Failure> {
    let key = Direction {
        source_sig: SIGNATURE,
        source_path: "/src".into(),
        target_sig: b.client().configuration().unwrap().signature,
        target_path: "/dst".into(),
        shard: None,
    };
    let s = State::open(std::path::Path::new(state)).unwrap();
    s.failures(&key).unwrap()
}

/// `filer-sync COMMAND` on the hostile filer's /src and B's /dst, with
/// `extra` flags: (exit code, its output).
fn on_pair(command: &str, hostile: &HostileFiler, b: &Cluster, extra: &[&str]) -> (i32, String) {
    let (a, b) = (hostile.addr(), b.addr());
    let mut args = vec![
        command, "-a", &a, "-b", &b, "--a-path", "/src", "--b-path", "/dst",
    ];
    args.extend_from_slice(extra);
    run_sync(&args, Duration::from_secs(120))
}

/// A one-way `--once` run from the hostile filer's /src into B's /dst.
fn sync_from(hostile: &HostileFiler, b: &Cluster, state: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["--active-passive", "--once", "--state", state];
    args.extend_from_slice(extra);
    on_pair("sync", hostile, b, &args)
}

/// The run ended as a run with failures ends: no panic, its summary given.
fn ended_normally(code: i32, out: &str) {
    assert_eq!(code, 1, "done with failures (the refusals): {out}");
    assert!(out.contains("A→B done:"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn hostile_event_names_are_refused_ledgered_and_change_nothing_outside_the_folder() {
    let (b, before) = target();
    let evil = |name: &str| Some(file(name, b"evil"));
    let script = Script {
        events: vec![
            // Creates whose names are no single component.
            event("/src", None, evil(".."), ""),
            event("/src", None, evil("."), ""),
            event("/src", None, evil(""), ""),
            event("/src", None, evil("a/b"), ""),
            event("/src", None, evil("../private/evil"), ""),
            event("/src", None, evil("x\0y"), ""),
            // An update whose directory steps out of the folder.
            event(
                "/src/../private",
                evil("secret.txt"),
                evil("secret.txt"),
                "",
            ),
            // Deletes of the folder itself and of the root, by "..".
            event("/src/sub", Some(folder("..")), None, ""),
            event("/src", Some(folder("..")), None, ""),
            // A path that its letters keep out of an exclude of
            // /src/private (--a-exclude below) while it names it.
            event("/src/x/..", None, evil("private"), ""),
            // Renames: a new parent that steps out, and a new name "..".
            event(
                "/src",
                Some(file("keep.txt", b"kept")),
                Some(file("keep.txt", b"kept")),
                "/src/../private",
            ),
            event(
                "/src",
                Some(file("keep.txt", b"kept")),
                Some(folder("..")),
                "",
            ),
            // Sound events: a move to a folder outside the mapped one
            // (out of scope: the old copy goes), an event of a folder
            // outside it (not served by a real filer; not applied), and a
            // create, applied after all the refusals.
            event(
                "/src",
                Some(file("m.txt", b"m")),
                Some(file("m.txt", b"m")),
                "/private",
            ),
            event("/private", None, evil("evil.txt"), ""),
            event("/src", None, Some(file("good.txt", b"good")), ""),
        ],
        tree: BTreeMap::new(),
    };
    let refusals = 12;
    let hostile = HostileFiler::start(script);
    let state = temp_state("peer-events");
    let flags = ["--bootstrap", "log", "--a-exclude", "/src/private"];
    let (code, out) = sync_from(&hostile, &b, &state, &flags);
    ended_normally(code, &out);
    assert_same(&before, &outside(&b));
    // Inside the folder: the sound events applied, nothing else touched.
    assert_eq!(b.get("/dst/good.txt").unwrap(), b"good");
    assert!(b.get("/dst/m.txt").is_none(), "moved out of the folder");
    assert_eq!(b.get("/dst/keep.txt").unwrap(), b"kept");
    assert_eq!(b.get("/dst/sub/inner.txt").unwrap(), b"inner");
    let failures = ledger(&b, &state);
    assert_eq!(failures.len(), refusals, "{failures:#?}");
    for f in &failures {
        assert!(f.error.contains("refused from the source"), "{f:?}");
        assert!(f.event_ts_ns > 0, "{f:?}");
        assert!(!f.path.contains('\0'), "shown escaped: {f:?}");
        assert!(
            out.contains(&format!("{} failed: ", f.path)),
            "logged: {f:?}"
        );
    }
    assert!(
        failures.iter().any(|f| f.path == "/src/x\\0y"),
        "{failures:#?}"
    );
    // The next run starts past them: the refusals were not a retry loop.
    let (code, out) = sync_from(&hostile, &b, &state, &flags);
    assert_eq!(code, 0, "{out}");
    assert_same(&before, &outside(&b));
}

#[test]
fn hostile_listing_names_are_refused_by_the_walk_and_ledgered() {
    let (b, before) = target();
    let evil = |name: &str| file(name, b"evil");
    let mut tree = BTreeMap::new();
    tree.insert("/".to_string(), vec![folder("src")]);
    tree.insert(
        "/src".to_string(),
        vec![
            file("ok.txt", b"ok"),
            folder(".."),
            folder("."),
            evil(""),
            evil("a/b"),
            evil("x\0y"),
            folder("sub"),
        ],
    );
    tree.insert(
        "/src/sub".to_string(),
        vec![file("deep.txt", b"deep"), folder(".."), evil(".")],
    );
    // What a walk that followed ".." would find, and copy over B's.
    tree.insert("/src/..".to_string(), vec![folder("private")]);
    tree.insert("/src/../private".to_string(), vec![evil("secret.txt")]);
    let refusals = 7;
    let hostile = HostileFiler::start(Script {
        events: Vec::new(),
        tree,
    });
    // A first run: the trees are copied by a walk (B becomes A's copy).
    let state = temp_state("peer-listing");
    let (code, out) = sync_from(&hostile, &b, &state, &[]);
    ended_normally(code, &out);
    assert_same(&before, &outside(&b));
    assert_eq!(b.get("/dst/ok.txt").unwrap(), b"ok");
    assert_eq!(b.get("/dst/sub/deep.txt").unwrap(), b"deep");
    let failures = ledger(&b, &state);
    assert_eq!(failures.len(), refusals, "{failures:#?}");
    for f in &failures {
        assert!(
            f.error
                .starts_with("first run walk: refused from A's listing"),
            "{f:?}"
        );
        assert!(out.contains(&f.path), "logged: {f:?}");
    }
    assert!(
        failures.iter().any(|f| f.path == "/src/sub/.."),
        "{failures:#?}"
    );
    // verify lists through the same walk: equal otherwise, the refusals
    // named, and not called equal.
    let (code, out) = on_pair("verify", &hostile, &b, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused from A's listing"), "{out}");
    assert!(out.contains("equal"), "{out}");
    assert_same(&before, &outside(&b));
    // migrate copies through the same walk, and ledgers its refusals.
    let migrated = temp_state("peer-migrate");
    let (code, out) = on_pair("migrate", &hostile, &b, &["--state", &migrated]);
    assert_eq!(code, 1, "{out}");
    let failures = ledger(&b, &migrated);
    assert_eq!(failures.len(), refusals, "{failures:#?}");
    for f in &failures {
        assert!(
            f.error
                .starts_with("migrate walk: refused from A's listing"),
            "{f:?}"
        );
    }
    assert_same(&before, &outside(&b));
    // Following, rescans list through it again: their refusals are
    // ledgered once, however many rescans meet them.
    let mut cmd = one_way_sync(&hostile.addr(), &b.addr(), &state);
    cmd.args(["--a-path", "/src", "--b-path", "/dst", "--rescan-secs", "1"]);
    let (_sync, log) = spawn_logged(cmd, "peer-rescan");
    eventually(60, "two rescans", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let done = |l: &&str| l.contains("rescan: ") && l.contains(" entries listed");
        text.lines().filter(done).count() >= 2
    });
    let failures = ledger(&b, &state);
    let rescans: Vec<_> = failures
        .iter()
        .filter(|f| f.error.starts_with("rescan walk: refused from A's listing"))
        .collect();
    assert_eq!(rescans.len(), refusals, "{failures:#?}");
    assert_same(&before, &outside(&b));
}

#[test]
fn writes_outside_the_target_folder_are_refused_at_the_point_of_writing() {
    let (b, before) = target();
    // An applier onto B's /dst (reading from B too: nothing is copied).
    let c = b.client();
    let http = Http::new(Duration::from_secs(30));
    let applier = Applier::new(
        (c.clone(), ChunkSource::new(c.clone(), false, http.clone())),
        (
            c.clone(),
            ChunkSink::new(c, false, http, Placement::default()),
        ),
        "/dst",
        Mode::Follow,
        Cancel::new(),
    )
    .giving_up();
    let pool = filer_sync::pipeline::pool("peer", "chunk", 1).unwrap();
    let via = Transfer {
        pool: &pool,
        deleted_too: false,
        park: false,
    };
    let upsert = |dir: &str, name: &str| Action::Upsert {
        dir: dir.into(),
        entry: file(name, b"evil"),
        signatures: vec![],
        source: format!("/src/{name}"),
        change: Change::Changed,
        base: None,
    };
    let delete = |dir: &str, name: &str| Action::Delete {
        dir: dir.into(),
        name: name.into(),
        signatures: vec![],
        base: None,
    };
    let rename =
        |(old_dir, old_name): (&str, &str), (new_dir, name): (&str, &str)| Action::Rename {
            old_dir: old_dir.into(),
            old_name: old_name.into(),
            old_mtime_ns: 0,
            new_dir: new_dir.into(),
            entry: file(name, b"kept"),
            signatures: vec![],
            source: format!("/src/{name}"),
            old_source: format!("/src/{old_name}"),
        };
    // Actions no event or listing can plan any more (their names are
    // refused where they enter), made by hand: the write itself refuses.
    let refused = [
        upsert("/dst/..", "private"),
        upsert("/", "sentinel.txt"),
        upsert("/dstx", "sibling.txt"),
        upsert("/dst", ".."),
        upsert("/dst", ""),
        upsert("/dst", "a/b"),
        delete("/", "private"),
        delete("/", "dst"),
        delete("/dst", ".."),
        delete("/dst/sub/..", "keep.txt"),
        rename(("/dst", "keep.txt"), ("/private", "keep.txt")),
        rename(("/", "sentinel.txt"), ("/dst", "stolen.txt")),
        rename(("/dst", "keep.txt"), ("/dst", "..")),
    ];
    for a in &refused {
        match applier.apply(a, 0, via) {
            Err(e) if e.kind() == ErrorKind::Refused => {
                assert!(e.to_string().contains("refused to write"), "{a:?}: {e}")
            }
            other => panic!("{a:?}: {other:?}"),
        }
    }
    assert_same(&before, &outside(&b));
    assert_eq!(b.get("/dst/keep.txt").unwrap(), b"kept");
    // Inside the folder, writes go through as ever.
    applier.apply(&upsert("/dst", "fine.txt"), 0, via).unwrap();
    applier
        .apply(
            &rename(("/dst", "keep.txt"), ("/dst/sub", "keep.txt")),
            0,
            via,
        )
        .unwrap();
    assert_eq!(b.get("/dst/fine.txt").unwrap(), b"evil");
    assert_eq!(b.get("/dst/sub/keep.txt").unwrap(), b"kept");
    assert_same(&before, &outside(&b));
}
