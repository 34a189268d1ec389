//! Real SeaweedFS clusters for tests: master + volume server + filer on
//! 127.0.0.1 with free ports and a temp dir of their own, started from the
//! `weed` 4.48 binary (scripts/install-weed.sh), waited on until a file id
//! can be assigned, and killed by PID when dropped (also on panic; and with
//! PR_SET_PDEATHSIG when the test thread dies). Several run side by side.
//! Also: filer HTTP helpers for workloads, and a tree snapshot for comparing
//! clusters (names, types, sizes, mtimes, modes, content hashes).

use filer_sync::filer::{FilerAddr, FilerClient};
use filer_sync::paths::join_path;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn weed() -> PathBuf {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    WEED.get_or_init(|| {
        if let Some(w) = std::env::var_os("WEED") {
            return PathBuf::from(w);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/install-weed.sh"))
            .output()
            .expect("run scripts/install-weed.sh");
        assert!(
            out.status.success(),
            "install-weed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A port P with P and P+10000 free, below 22768 so gRPC stays under 32768.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if NEXT.load(Ordering::SeqCst) == 0 {
        let seed = (std::process::id() as u64 ^ filer_sync::util::now_ns() as u64) % 9000;
        let _ = NEXT.compare_exchange(0, 11000 + seed as u16, Ordering::SeqCst, Ordering::SeqCst);
    }
    loop {
        let mut p = NEXT.fetch_add(1, Ordering::SeqCst);
        if p >= 22700 {
            NEXT.store(11000, Ordering::SeqCst);
            p = 11000;
        }
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(p) && free(p + 10000) {
            return p;
        }
    }
}

#[derive(Clone, Default)]
pub struct Opts {
    /// Extra filer flags, e.g. "-maxMB=1", "-saveToFilerLimit=64", "-encryptVolumeData".
    pub filer_args: Vec<String>,
    /// A security.toml for every server of the cluster (JWT signing keys, …).
    pub security_toml: Option<String>,
    /// The filer store is a Redis server of the cluster's own (started and
    /// stopped with it), so that more filers can share it (`add_filer`).
    pub shared_store: bool,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub master: u16,
    pub volume: u16,
    pub filer: u16,
    procs: Vec<(String, Child)>,
    opts: Opts,
    /// A filer of this cluster was killed (SIGKILL, or it died): the last
    /// events of its metadata log, still in memory, are lost.
    pub filer_killed: bool,
    /// What a client needs for this cluster (its own security.toml's [grpc]).
    security: filer_sync::security::Security,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::with(Opts::default())
    }

    pub fn with(opts: Opts) -> Cluster {
        let mut last = String::new();
        for _ in 0..3 {
            match Cluster::try_start(opts.clone()) {
                Ok(c) => return c,
                Err(e) => last = e,
            }
        }
        panic!("could not start a cluster: {last}");
    }

    fn try_start(opts: Opts) -> Result<Cluster, String> {
        let dir = std::env::temp_dir().join(format!(
            "filer-sync-it-{}-{}",
            std::process::id(),
            filer_sync::util::now_ns()
        ));
        for d in ["m", "v", "f"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // weed reads ./security.toml: each server runs in the cluster's folder.
        let mut security = Default::default();
        if let Some(toml) = &opts.security_toml {
            std::fs::write(dir.join("security.toml"), toml).unwrap();
            security = filer_sync::security::Security::load(&filer_sync::security::Given {
                flag: "a",
                file: Some(&dir.join("security.toml")),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        }
        let mut c = Cluster {
            dir,
            master: free_port(),
            volume: free_port(),
            filer: free_port(),
            procs: Vec::new(),
            opts,
            security,
            filer_killed: false,
        };
        c.spawn_master();
        c.wait(
            &format!("http://127.0.0.1:{}/cluster/status", c.master),
            |_| true,
        )?;
        c.spawn_volume();
        let vol = format!("127.0.0.1:{}", c.volume);
        c.wait(&format!("http://127.0.0.1:{}/dir/status", c.master), |b| {
            b.contains(&vol)
        })?;
        let _ = http()
            .get(&format!(
                "http://127.0.0.1:{}/vol/grow?count=2&replication=000",
                c.master
            ))
            .call();
        if c.opts.shared_store {
            c.spawn_redis()?;
        }
        c.spawn_filer();
        c.wait_filer()?;
        Ok(c)
    }

    /// Starts the Redis server that holds the filer store, and names it in
    /// ./filer.toml (which every filer of the cluster reads).
    fn spawn_redis(&mut self) -> Result<(), String> {
        let port = free_port();
        let args = [
            "--port".to_string(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        self.spawn_program("redis", Path::new("redis-server"), args.to_vec());
        let toml = format!(
            "[redis2]\nenabled = true\naddress = \"127.0.0.1:{port}\"\npassword = \"\"\ndatabase = 0\n"
        );
        std::fs::write(self.dir.join("filer.toml"), toml).unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("redis on {port} did not answer"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn spawn(&mut self, name: &str, args: Vec<String>) {
        self.spawn_program(name, &weed(), args)
    }

    fn spawn_program(&mut self, name: &str, program: &Path, args: Vec<String>) {
        // Appended to: a restarted server's log keeps why it died before.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(program);
        cmd.args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn weed {name}: {e}"));
        self.procs.push((name.to_string(), child));
    }

    fn spawn_master(&mut self) {
        let a = vec![
            "master".into(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-port={}", self.master),
            format!("-port.grpc={}", self.master + 10000),
            format!("-mdir={}", self.dir.join("m").display()),
            "-telemetry=false".into(),
            "-volumeSizeLimitMB=256".into(),
            "-defaultReplication=000".into(),
        ];
        self.spawn("master", a);
    }

    fn spawn_volume(&mut self) {
        let a = vec![
            "volume".into(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-port={}", self.volume),
            format!("-port.grpc={}", self.volume + 10000),
            format!("-master=127.0.0.1:{}", self.master),
            format!("-dir={}", self.dir.join("v").display()),
            "-max=60".into(),
            "-preStopSeconds=0".into(),
            "-index=memory".into(),
        ];
        self.spawn("volume", a);
    }

    fn spawn_filer(&mut self) {
        self.spawn_filer_as("filer", self.filer);
    }

    fn spawn_filer_as(&mut self, name: &str, port: u16) {
        let store = self.dir.join(name);
        std::fs::create_dir_all(&store).unwrap();
        let mut a = vec![
            "filer".into(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-port={port}"),
            format!("-port.grpc={}", port + 10000),
            format!("-master=127.0.0.1:{}", self.master),
            format!("-defaultStoreDir={}", store.display()),
            format!(
                "-localSocket={}",
                self.dir.join(format!("{name}.sock")).display()
            ),
        ];
        a.extend(self.opts.filer_args.iter().cloned());
        self.spawn(name, a);
    }

    /// Starts another filer of the cluster on the shared store (the process
    /// `name`, e.g. "filer2") and waits until it answers; its HTTP port.
    pub fn add_filer(&mut self, name: &str) -> u16 {
        assert!(
            self.opts.shared_store,
            "a second filer needs a shared store"
        );
        let port = free_port();
        self.spawn_filer_as(name, port);
        self.wait(
            &format!("{}://127.0.0.1:{port}/", self.filer_scheme()),
            |_| true,
        )
        .unwrap();
        port
    }

    fn wait_filer(&self) -> Result<(), String> {
        self.wait(&self.url("/"), |_| true)?;
        self.wait(
            &format!("http://127.0.0.1:{}/dir/assign", self.master),
            |b| b.contains("\"fid\""),
        )
    }

    fn wait(&self, url: &str, ok: impl Fn(&str) -> bool) -> Result<(), String> {
        let start = Instant::now();
        let agent = match url.starts_with("https:") {
            true => self.filer_http(),
            false => http(),
        };
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(mut r) = agent.get(url).call() {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                if r.status().as_u16() < 500 && ok(&body) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{url} did not become ready; logs in {}",
            self.dir.display()
        ))
    }

    /// Kills one process ("filer", "volume", "master") by PID.
    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.procs.remove(i);
            let _ = child.kill();
            let _ = child.wait();
            self.filer_killed |= name.starts_with("filer");
        }
    }

    /// Stops one process as an operator or a supervisor would: SIGTERM, then
    /// SIGKILL if it is still running after 20 s (a 4.48 filer takes 15 s).
    /// A filer stopped so flushes its metadata log; a SIGKILLed one loses the
    /// part still in memory (probed: events written 3 s before a kill were
    /// gone from the log, though in the store), which no log follower can
    /// recover.
    pub fn stop_gracefully(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.procs.remove(i);
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the volume server again (after `stop("volume")`) on the same
    /// port and folder, and waits until the master lists it.
    pub fn start_volume(&mut self) {
        self.spawn_volume();
        let vol = format!("127.0.0.1:{}", self.volume);
        self.wait(
            &format!("http://127.0.0.1:{}/dir/status", self.master),
            |b| b.contains(&vol),
        )
        .unwrap();
    }

    /// Chunks stored on this cluster's volume servers that no filer entry
    /// names (`weed shell` `volume.fsck -v`, over every needle however
    /// new), each as (volume id, needle key).
    pub fn orphan_needles(&self) -> Vec<(u32, u64)> {
        let mut shell = Command::new(weed())
            .args([
                "shell",
                &format!("-master=127.0.0.1:{}", self.master),
                &format!("-filer={}", self.addr()),
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("weed shell");
        std::io::Write::write_all(
            shell.stdin.as_mut().unwrap(),
            b"lock\nvolume.fsck -v -cutoffTimeAgo=1s\nunlock\n",
        )
        .unwrap();
        drop(shell.stdin.take());
        let out = shell.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // Verbose lines name each orphan as `collection:vid,hexkey00000000`
        // (a file id with a zero cookie).
        let needles: Vec<(u32, u64)> = text
            .lines()
            .filter_map(|l| {
                let f = filer_sync::volume::fid::parse(l.rsplit_once(':')?.1).ok()?;
                Some((f.volume_id, f.file_key))
            })
            .collect();
        let total = text
            .lines()
            .find(|l| l.starts_with("Total"))
            .and_then(|l| l.split("orphan:").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<usize>().ok());
        match total {
            Some(n) if n == needles.len() => needles,
            None if text.contains("no orphan data") => Vec::new(),
            _ => panic!("volume.fsck said: {text}"),
        }
    }

    /// Every chunk an entry in this cluster's metadata log has named (as
    /// its new or its old version), each as (volume id, needle key).
    pub fn logged_needles(&self) -> std::collections::HashSet<(u32, u64)> {
        let mut seen = std::collections::HashSet::new();
        self.read_log(0, |e| {
            let n = &e.notification;
            for entry in [&n.old_entry, &n.new_entry].into_iter().flatten() {
                for c in &entry.chunks {
                    let id = filer_sync::volume::fid::of_chunk(c);
                    if let Ok(f) = filer_sync::volume::fid::parse(&id) {
                        seen.insert((f.volume_id, f.file_key));
                    }
                }
            }
        });
        seen
    }

    /// Hands every event of this cluster's metadata log since `since_ns`
    /// to `f`, reading until the filer says it is idle.
    pub fn read_log(&self, since_ns: i64, mut f: impl FnMut(&filer_sync::filer::Event)) {
        use filer_sync::filer::StreamItem;
        use filer_sync::pb::filer::SubscribeMetadataRequest;
        let mut req = SubscribeMetadataRequest::new();
        req.client_name = "filer-sync-test-log".into();
        req.path_prefix = "/".into();
        req.since_ns = since_ns;
        static NEXT: AtomicU16 = AtomicU16::new(1000);
        // A filer refuses a second subscription with the same id and epoch.
        req.client_id = NEXT.fetch_add(1, Ordering::SeqCst) as i32;
        req.client_epoch = 1;
        req.client_supports_idle_heartbeat = true;
        for item in self.client().subscribe(&req).unwrap() {
            match item.unwrap() {
                StreamItem::Event(e) => f(&e),
                StreamItem::Idle(_) => break,
                StreamItem::Skipped(_) => {}
            }
        }
    }

    /// True when the process `name` was started and has died on its own.
    pub fn exited(&mut self, name: &str) -> bool {
        self.procs
            .iter_mut()
            .any(|(n, c)| n == name && c.try_wait().ok().flatten().is_some())
    }

    /// Why the process `name` died, from the end of its log: a Go panic
    /// from its first line, else the last lines.
    pub fn death(&self, name: &str) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let from = log
            .rfind("\npanic: ")
            .map_or_else(|| log.len().saturating_sub(3000), |i| i + 1);
        let from = (from..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[from..].chars().take(4000).collect()
    }

    /// Restarts the filer on the same ports and store.
    pub fn restart_filer(&mut self) {
        self.stop("filer");
        self.spawn_filer();
        self.wait_filer().unwrap();
    }

    /// Restarts the filer on the same ports with a new, empty store (a lost
    /// disk, a pod without its volume): it comes back with another
    /// signature and none of its entries.
    pub fn restart_filer_on_empty_store(&mut self) {
        self.stop("filer");
        std::fs::remove_dir_all(self.dir.join("filer")).unwrap();
        self.spawn_filer();
        self.wait_filer().unwrap();
    }

    /// Restarts the filer after stopping it as an operator would (see
    /// `stop_gracefully`).
    pub fn restart_filer_gracefully(&mut self) {
        self.stop_gracefully("filer");
        self.spawn_filer();
        self.wait_filer().unwrap();
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.filer)
    }

    pub fn filer_addr(&self) -> FilerAddr {
        FilerAddr::parse(&self.addr()).unwrap()
    }

    pub fn client(&self) -> FilerClient {
        FilerClient::connect_with(&self.filer_addr(), &self.security, Duration::from_secs(10))
    }

    /// The security.toml every server of this cluster reads, if it has one.
    pub fn security_toml(&self) -> Option<String> {
        self.opts.security_toml.as_ref().map(|_| {
            self.dir
                .join("security.toml")
                .to_string_lossy()
                .into_owned()
        })
    }

    /// The entry at `path`, through gRPC (panics if it is missing).
    pub fn entry(&self, path: &str) -> filer_sync::pb::filer::Entry {
        let (dir, name) = filer_sync::paths::split_path(path);
        self.client().lookup(dir, name).unwrap().unwrap()
    }

    /// Changes the entry at `path` in place with UpdateEntry (attributes,
    /// chunks, xattrs: whatever `f` touches).
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut filer_sync::pb::filer::Entry)) {
        let mut e = self.entry(path);
        f(&mut e);
        let mut req = filer_sync::pb::filer::UpdateEntryRequest::new();
        req.directory = filer_sync::paths::split_path(path).0.into();
        req.entry = Some(e).into();
        self.client().update(&req).unwrap();
    }

    /// The scheme of the filer's HTTP API: https when the cluster's
    /// security.toml has [https.filer].
    pub fn filer_scheme(&self) -> &'static str {
        let toml = self.opts.security_toml.as_deref().unwrap_or("");
        if toml.contains("[https.filer]") {
            "https"
        } else {
            "http"
        }
    }

    /// An agent for the filer's HTTP API: with the cluster's
    /// [https.client] settings when the filer speaks HTTPS.
    pub fn filer_http(&self) -> ureq::Agent {
        match (&self.security.https, self.filer_scheme()) {
            (Some(h), "https") => ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .tls_config(h.tls())
                .build()
                .into(),
            _ => http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://127.0.0.1:{}{}",
            self.filer_scheme(),
            self.filer,
            filer_sync::volume::url_path(path)
        )
    }

    /// Writes a file through the filer HTTP API; `headers` like ("Seaweed-Foo", "bar").
    pub fn put_with(&self, path: &str, data: &[u8], headers: &[(&str, &str)]) {
        let mut req = self.filer_http().put(&self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.send(data).unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        assert!(status < 300, "PUT {path}: {status} {body}");
    }

    pub fn put(&self, path: &str, data: &[u8]) {
        self.put_with(path, data, &[]);
    }

    pub fn mkdir(&self, path: &str) {
        let r = self
            .filer_http()
            .post(&format!("{}/", self.url(path)))
            .send_empty()
            .unwrap();
        assert!(r.status().as_u16() < 300, "mkdir {path}: {}", r.status());
    }

    pub fn delete(&self, path: &str) {
        let r = self
            .filer_http()
            .delete(&format!("{}?recursive=true", self.url(path)))
            .call()
            .unwrap();
        assert!(r.status().as_u16() < 300, "delete {path}: {}", r.status());
    }

    pub fn mv(&self, from: &str, to: &str) {
        let url = format!(
            "{}?mv.from={}",
            self.url(to),
            filer_sync::volume::url_path(from)
        );
        let mut r = self.filer_http().post(&url).send_empty().unwrap();
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        assert!(status < 300, "mv {from} {to}: {status} {body}");
    }

    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        let mut r = self.filer_http().get(&self.url(path)).call().unwrap();
        if r.status().as_u16() == 404 {
            return None;
        }
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        Some(
            r.body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
                .unwrap(),
        )
    }

    /// Every entry below `root` (not `root` itself), keyed by path relative to it.
    pub fn tree(&self, root: &str) -> Tree {
        let client = self.client();
        let mut out = BTreeMap::new();
        let mut dirs = vec![root.to_string()];
        while let Some(d) = dirs.pop() {
            let mut entries = Vec::new();
            client
                .list(&d, |e| {
                    entries.push(e);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("list {d}: {e}"));
            for e in entries {
                let full = join_path(&d, &e.name);
                let rel = full[root.trim_end_matches('/').len()..].to_string();
                if e.is_directory {
                    dirs.push(full.clone());
                }
                let a = e.attributes.clone().unwrap_or_default();
                let content = if e.is_directory {
                    0
                } else {
                    // Gone since the listing (a sync is moving it): a value no content has.
                    self.get(&full).map_or(u64::MAX, |b| fnv(&b))
                };
                let mut ext: Vec<(String, Vec<u8>)> = e.extended.clone().into_iter().collect();
                ext.sort();
                out.insert(
                    rel,
                    Node {
                        dir: e.is_directory,
                        size: a.file_size,
                        mtime: (a.mtime, a.mtime_ns),
                        mode: a.file_mode,
                        mime: a.mime,
                        symlink: a.symlink_target,
                        extended: ext,
                        content,
                    },
                );
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test shows why a server of its died (CI keeps no files).
        if std::thread::panicking() {
            let dead: Vec<String> = self
                .procs
                .iter_mut()
                .filter_map(|(n, c)| c.try_wait().ok().flatten().map(|_| n.clone()))
                .collect();
            for name in dead {
                eprintln!(
                    "{name} of the cluster in {} had died:\n{}",
                    self.dir.display(),
                    self.death(&name)
                );
            }
        }
        // The last started first: filers before their store and master.
        while let Some((name, _)) = self.procs.last() {
            let name = name.clone();
            self.stop(&name);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub dir: bool,
    pub size: u64,
    pub mtime: (i64, i32),
    pub mode: u32,
    pub mime: String,
    pub symlink: String,
    pub extended: Vec<(String, Vec<u8>)>,
    pub content: u64,
}

pub type Tree = BTreeMap<String, Node>;

/// Asserts two trees are equal, showing the first differences.
pub fn assert_same(a: &Tree, b: &Tree) {
    if a == b {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only on A: {k}")),
            Some(w) if w != v => diffs.push(format!("differs: {k}\n  A {v:?}\n  B {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("only on B: {k}"));
    }
    diffs.truncate(20);
    panic!(
        "trees differ ({} vs {} entries):\n{}",
        a.len(),
        b.len(),
        diffs.join("\n")
    );
}

/// Waits until `f` holds, or panics after `secs`.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The filer-sync binary built for these tests.
pub fn bin() -> String {
    // FILER_SYNC_BIN: a copy of the binary, so that a test looped for a
    // while does not run whatever a rebuild puts in target/ meanwhile.
    std::env::var("FILER_SYNC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_filer-sync").into())
}

/// `filer-sync checkpoint ACTION -a A -b B --state STATE EXTRA…`
pub fn checkpoint(
    a: &Cluster,
    b: &Cluster,
    state: &str,
    action: &str,
    extra: &[&str],
) -> (i32, String) {
    let (aa, ba) = (a.addr(), b.addr());
    let mut args = vec!["checkpoint", action, "-a", &aa, "-b", &ba, "--state", state];
    args.extend_from_slice(extra);
    run_sync(&args, Duration::from_secs(30))
}

/// Runs filer-sync to completion with a time limit; returns (exit code,
/// stderr followed by stdout).
pub fn run_sync(args: &[&str], limit: Duration) -> (i32, String) {
    run_sync_env(args, &[], limit)
}

/// As `run_sync`, with extra environment variables.
pub fn run_sync_env(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (i32, String) {
    run_sync_watched(args, env, limit, None).expect("no silence limit")
}

/// As `run_sync_env`; with `silent` set, a run that has printed nothing
/// after that long has its threads' stacks printed (gdb, if installed), is
/// killed, and gives `None`.
pub fn run_sync_watched(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
    silent: Option<Duration>,
) -> Option<(i32, String)> {
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn filer-sync");
    // Each pipe is read as it fills, so that silence can be told.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let reader = std::thread::spawn(move || {
            let Some(mut r) = r else { return };
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = r.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        (buf, reader)
    };
    let (err, err_reader) = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let (out, out_reader) = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        let quiet = silent.filter(|s| start.elapsed() > *s && err.lock().unwrap().is_empty());
        if let Some(s) = quiet {
            eprintln!(
                "filer-sync {args:?} printed nothing in {s:?}; its threads:\n{}",
                stacks(child.id())
            );
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let _ = err_reader.join();
            panic!("filer-sync {args:?} ran past {limit:?}:\n{}", text(&err));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = (err_reader.join(), out_reader.join());
    Some((code, text(&err) + &text(&out)))
}

/// Every thread's backtrace in process `pid`, from gdb when it is installed.
fn stacks(pid: u32) -> String {
    Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(no gdb: {e})"))
}

/// Events applied over all directions of a state file (`status --json`).
pub fn events_applied(state: &str) -> u64 {
    let (_, out) = run_sync(
        &["status", "--state", state, "--json"],
        Duration::from_secs(30),
    );
    out.split("\"events_applied\":")
        .skip(1)
        .filter_map(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

pub fn temp_state(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("filer-sync-it-state-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(format!("{name}-{}.db", filer_sync::util::now_ns()));
    p.to_string_lossy().into_owned()
}

/// `filer-sync sync --once` between the filers at `a` and `b` (both ways
/// unless `extra` has --active-passive), with `extra` flags.
pub fn sync_once(a: &str, b: &str, state: &str, extra: &[&str]) -> (i32, String) {
    sync_once_env(a, b, state, extra, &[])
}

/// `sync_once` with more environment variables (RUST_LOG, LD_PRELOAD…).
pub fn sync_once_env(
    a: &str,
    b: &str,
    state: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    sync_once_watched(a, b, state, extra, env, None).expect("no silence limit")
}

/// `sync_once_env`, with `silent` as in `run_sync_watched`.
pub fn sync_once_watched(
    a: &str,
    b: &str,
    state: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    silent: Option<Duration>,
) -> Option<(i32, String)> {
    let mut args = vec!["sync", "-a", a, "-b", b, "--once", "--state", state];
    args.extend_from_slice(extra);
    run_sync_watched(&args, env, Duration::from_secs(300), silent)
}

/// `filer-sync sync --active-passive --once` from A to B with `extra` flags.
pub fn once(a: &Cluster, b: &Cluster, state: &str, extra: &[&str]) -> (i32, String) {
    once_env(a, b, state, extra, &[])
}

/// `once` with more environment variables.
pub fn once_env(
    a: &Cluster,
    b: &Cluster,
    state: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut e = vec!["--active-passive"];
    e.extend_from_slice(extra);
    sync_once_env(&a.addr(), &b.addr(), state, &e, env)
}

/// `filer-sync sync --once` both ways between A and B with `extra` flags.
pub fn both_ways(a: &Cluster, b: &Cluster, state: &str, extra: &[&str]) -> (i32, String) {
    sync_once(&a.addr(), &b.addr(), state, extra)
}

/// `filer-sync verify -a A -b B` with `extra` flags: (exit code, stdout).
/// Fails the test when it runs past five minutes.
pub fn verify(a: &Cluster, b: &Cluster, extra: &[&str]) -> (i32, String) {
    let mut child = Running(
        Command::new(bin())
            .args(["verify", "-a", &a.addr(), "-b", &b.addr()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "verify {extra:?} ran past 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, reader.join().unwrap())
}

/// A child process killed (and reaped) when dropped, also when a test panics.
pub struct Running(pub Child);

/// Starts `cmd` (a sync) with RUST_LOG=info (IT_RUST_LOG overrides it),
/// its stderr into a log file named after `name`; returns the process and
/// the file to read.
pub fn spawn_logged(cmd: Command, name: &str) -> (Running, std::path::PathBuf) {
    let level = std::env::var("IT_RUST_LOG").unwrap_or_else(|_| "info".into());
    spawn_logged_at(cmd, name, &level)
}

/// `spawn_logged` with RUST_LOG=`level`.
pub fn spawn_logged_at(mut cmd: Command, name: &str, level: &str) -> (Running, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!(
        "filer-sync-it-{name}-{}-{}.log",
        std::process::id(),
        filer_sync::util::now_ns()
    ));
    let child = cmd
        .env("RUST_LOG", level)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Running(child), log)
}

impl Running {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `filer-sync sync -a A -b B --active-passive --state STATE`, logging warnings,
/// ready for more flags and to spawn.
pub fn one_way_sync(a: &str, b: &str, state: &str) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "sync",
        "-a",
        a,
        "-b",
        b,
        "--active-passive",
        "--state",
        state,
    ])
    // CHAOS_RUST_LOG: more of the sync's log, to trace a replayed seed.
    .env(
        "RUST_LOG",
        std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    c
}

/// An inline file entry (content in the metadata, no chunks).
pub fn inline_entry(name: &str, content: &[u8], mtime: i64) -> filer_sync::pb::filer::Entry {
    use filer_sync::pb::filer::{Entry, FuseAttributes};
    let mut e = Entry::new();
    e.name = name.into();
    e.content = content.to_vec();
    let mut a = FuseAttributes::new();
    a.file_size = content.len() as u64;
    a.mtime = mtime;
    a.crtime = mtime;
    a.file_mode = 0o644;
    e.attributes = Some(a).into();
    e
}
