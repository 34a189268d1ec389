"""Owns the machinery of the S3 suite: throwaway SeaweedFS clusters with an
S3 gateway on 127.0.0.1 (start, readiness, stop by PID), boto3 clients,
running `filer-sync sync --once` or a long-running sync that can be killed
and restarted, the filers' HTTP API and their trees (with a comparison),
and the user's view of a bucket through a gateway with its comparison (a
readable diff)."""

import atexit
import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILER_SYNC_BIN = os.environ.get("FILER_SYNC_BIN", os.path.join(REPO, "target/debug/filer-sync"))
IDENTITY = "admin"  # the same on both clusters: buckets record their owner
ACCESS_KEY, SECRET_KEY = "filersynctest", "filersynctestsecret"
# Loopback only, never through a proxy.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# botocore sends `Expect: 100-continue` with every PUT body; weed s3 4.48
# answers an empty one so that the connection's next request waits for the
# read timeout (60 s, seen as a MissingHeaderBodySeparatorDefect warning).
# botocore's own switch leaves the header off empty bodies.
os.environ.setdefault("BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE", "true")
_TAKEN = set()  # ports handed out by this process


def weed_bin():
    out = subprocess.run([os.path.join(REPO, "scripts/install-weed.sh")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def http_get(url, timeout=5):
    with _HTTP.open(url, timeout=timeout) as r:
        return r.read()


def _free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port():
    """An HTTP port in 11000..22000 whose gRPC twin (+10000) is free too,
    so that both stay below the ephemeral range (32768+)."""
    while True:
        p = random.randint(11000, 22000)
        if p not in _TAKEN and _free(p) and _free(p + 10000):
            _TAKEN.add(p)
            return p


def wait_until(what, check, timeout=60, proc=None, log=None):
    """Polls check() until it returns a truthy value; fails early when proc dies."""
    deadline = time.time() + timeout
    while True:
        try:
            got = check()
            if got:
                return got
        except Exception:  # not answering yet
            pass
        if proc is not None and proc.poll() is not None:
            raise ServiceDied(f"{what}: process exited with {proc.returncode}", log)
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what} (log: {log})")
        time.sleep(0.1)


class ServiceDied(RuntimeError):
    def __init__(self, msg, log):
        text = open(log, errors="replace").read() if log else ""
        super().__init__(f"{msg} (log {log}):\n{text[-2000:]}")
        self.bind_failure = "address already in use" in text or "bind:" in text


def stop_pids(procs, bound=5.0):
    """TERM every process, KILL what is still running after `bound` seconds."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.time() + bound
    for p in live:
        try:
            p.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.wait()


class Cluster:
    """master + volume server + filer + S3 gateway, each in its own process
    group, all bound to 127.0.0.1, all files under `root`."""

    def __init__(self, root, weed, name):
        self.root, self.weed, self.name = root, weed, name
        self.procs = {}  # service name -> Popen
        for sub in ("m", "v", "f"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)

    def _spawn(self, service, *args):
        log = os.path.join(self.root, f"{service}.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [self.weed, service, *args], cwd=self.root, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[service] = proc
        return proc, log

    def _start(self, service, args_for, ready, tries=5):
        """Starts `service` on fresh ports, retrying when a port was taken."""
        for attempt in range(tries):
            port = pick_port()
            proc, log = self._spawn(service, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                    f"-port={port}", f"-port.grpc={port + 10000}",
                                    *args_for(port))
            try:
                wait_until(f"{self.name} {service}", lambda: ready(port), 90, proc, log)
                return port
            except ServiceDied as e:
                stop_pids([proc])
                if not e.bind_failure or attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def start(self):
        d = self.root
        # Every bucket is a collection; 2 volumes each (not 7) keep many
        # buckets within the volume server's -max. Read from the master's cwd.
        with open(os.path.join(d, "master.toml"), "w") as f:
            f.write("[master.volume_growth]\ncopy_1 = 2\n")
        self.master = self._start(
            "master",
            lambda p: [f"-mdir={d}/m", "-telemetry=false", "-volumeSizeLimitMB=256",
                       "-defaultReplication=000"],
            lambda p: http_get(f"http://127.0.0.1:{p}/cluster/status"))
        m = f"127.0.0.1:{self.master}"
        self.volume = self._start(
            "volume",
            lambda p: [f"-master={m}", f"-dir={d}/v", "-max=60", "-preStopSeconds=0",
                       "-index=memory"],
            lambda p: f"127.0.0.1:{p}".encode() in http_get(f"http://{m}/dir/status"))
        self.filer = self._start(
            "filer",
            lambda p: [f"-master={m}", f"-defaultStoreDir={d}/f", f"-localSocket={d}/filer.sock"],
            lambda p: http_get(f"http://127.0.0.1:{p}/") is not None)
        wait_until("a file id", lambda: b'"fid"' in http_get(f"http://{m}/dir/assign"), 60)
        config = os.path.join(d, "s3.json")
        with open(config, "w") as f:
            json.dump({"identities": [{
                "name": IDENTITY,
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        self.s3_port = self._start(
            "s3",
            lambda p: [f"-filer=127.0.0.1:{self.filer}", f"-config={config}",
                       "-port.iceberg=0", "-port.lance=0", f"-localSocket={d}/s3.sock"],
            lambda p: "Buckets" in s3_client(p).list_buckets())
        self.s3 = s3_client(self.s3_port)
        return self

    @property
    def filer_addr(self):
        return f"127.0.0.1:{self.filer}"

    def entry(self, path):
        """The filer's entry for `path` (`?metadata=true`), for diagnosis."""
        url = f"http://{self.filer_addr}{urllib.parse.quote(path)}?metadata=true"
        return json.loads(http_get(url))

    # The filer's HTTP API (LOCAL-CLUSTERS.md). Each call returns (HTTP
    # status, body): a refused request is an answer, not an exception.

    def filer_call(self, method, path, body=None, headers=None, query=None, timeout=30):
        """One request to this cluster's filer: (status, response body)."""
        url = f"http://{self.filer_addr}{urllib.parse.quote(path)}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        if body is None and method in ("PUT", "POST"):
            body = b""
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with _HTTP.open(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def mkdir(self, path):
        """Makes a folder and its parents: a POST to PATH/ without a body
        (the filer takes one with a Content-Type for an upload); its status."""
        url = f"http://{self.filer_addr}{urllib.parse.quote(path.rstrip('/'))}/"
        try:
            with _HTTP.open(urllib.request.Request(url, method="POST"), timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code  # 409: there already

    def put_file(self, path, body, content_type="application/octet-stream", headers=None):
        """Writes a file (`Seaweed-*` headers become extended attributes)."""
        return self.filer_call("PUT", path, body, {"Content-Type": content_type, **(headers or {})})

    def move(self, src, dst):
        """`POST dst?mv.from=src`: renames a file or a folder with all below it."""
        return self.filer_call("POST", dst, query={"mv.from": src})

    def delete_tree(self, path):
        """`DELETE path?recursive=true`: a file, or a folder with all below it."""
        return self.filer_call("DELETE", path, query={"recursive": "true"})

    def read(self, path):
        """A file's content, or None when there is no such file."""
        status, body = self.filer_call("GET", path)
        return body if status == 200 else None

    def listing(self, folder):
        """The entries of `folder` as the filer lists them (JSON, paged)."""
        last = ""
        while True:
            query = {"limit": "1000", **({"lastFileName": last} if last else {})}
            status, body = self.filer_call("GET", folder.rstrip("/") + "/", query=query,
                                           headers={"Accept": "application/json"})
            if status == 404:
                return
            assert status == 200, f"{self.name}: listing {folder}: {status} {body[:300]!r}"
            page = json.loads(body)
            yield from page.get("Entries") or []
            if not page.get("ShouldDisplayLoadMore"):
                return
            last = page["LastFileName"]

    def tree(self, root="/", exclude=()):
        """Every entry below `root` (not `root` itself) except the paths in
        `exclude` and all below them: {path: node}, a node holding what the
        sync must carry — type, size, mtime (ns), mode, mime, symlink,
        extended attributes, and a file's content hash."""
        out, folders = {}, [root]
        skip = tuple(e.rstrip("/") for e in exclude)
        while folders:
            for e in self.listing(folders.pop()):
                path = e["FullPath"]
                if path in skip or path.startswith(tuple(x + "/" for x in skip)):
                    continue
                is_dir = bool(e["Mode"] & (1 << 31))
                if is_dir:
                    folders.append(path)
                    content = None
                else:
                    body = self.read(path)
                    content = hashlib.sha256(body).hexdigest() if body is not None else "gone"
                out[path] = {
                    "type": "dir" if is_dir else "file", "size": e["FileSize"],
                    "mtime": e["Mtime"], "mode": oct(e["Mode"]), "mime": e["Mime"],
                    "symlink": e["SymlinkTarget"],
                    "xattrs": {k: readable(v)
                               for k, v in sorted((e.get("Extended") or {}).items())},
                    "content": content}
        return out


def clock(t):
    """A time.time() value as local HH:MM:SS.mmm (journals and logs)."""
    return f"{time.strftime('%H:%M:%S', time.localtime(t))}.{int(t * 1000) % 1000:03d}"


def readable(b64):
    """An extended attribute's value (base64 in the filer's JSON) as text when
    it is text, else as `b64:…` (distinct values stay distinct)."""
    raw = base64.b64decode(b64 or "")
    try:
        text = raw.decode()
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return f"b64:{b64}"


def stop_clusters(clusters):
    """Stops clusters by PID layer by layer, gateways and filers first, masters
    last; the processes of a layer are stopped together."""
    for service in ["s3", "filer", "volume", "master"]:
        stop_pids([c.procs[service] for c in clusters if service in c.procs])


def tree_diff(a, b):
    """The paths whose entries differ between two trees (Cluster.tree):
    {path: one readable line}."""
    out = {}
    for path in sorted(set(a) | set(b)):
        if path not in b:
            out[path] = f"only on A: {path} {a[path]}"
        elif path not in a:
            out[path] = f"only on B: {path} {b[path]}"
        elif a[path] != b[path]:
            fields = [f"{k} A={a[path][k]!r} B={b[path][k]!r}"
                      for k in a[path] if a[path][k] != b[path][k]]
            out[path] = f"differs: {path}: " + "; ".join(fields)
    return out


_FROZEN = {}
_FROZEN_LOCK = threading.Lock()


def frozen_sync_bin():
    """A private copy of FILER_SYNC_BIN, made once per test session (the
    binary may be rebuilt while tests run: every sync of the session runs
    the same build). Waits for a build in progress to finish."""
    with _FROZEN_LOCK:
        if "bin" not in _FROZEN:
            def settled():
                st = os.stat(FILER_SYNC_BIN)
                return os.access(FILER_SYNC_BIN, os.X_OK) and time.time() - st.st_mtime > 3
            wait_until(f"the filer-sync binary {FILER_SYNC_BIN}", settled, timeout=600)
            folder = tempfile.mkdtemp(prefix="filer-sync-bin-")
            copy = os.path.join(folder, "filer-sync")
            shutil.copy2(FILER_SYNC_BIN, copy)
            _FROZEN["bin"] = copy
            atexit.register(shutil.rmtree, folder, True)
        return _FROZEN["bin"]


class LongSync:
    """A long-running `filer-sync sync` (no --once) between two clusters'
    filers on one state file: (re)started by start(), killed by kill()
    (SIGKILL, as a crash), stopped by stop(); restarted when it exited on its
    own, as a supervisor would. Its stdout and stderr (RUST_LOG=info) of every
    run are appended to `log`, each run's start and end marked."""

    def __init__(self, binary, a, b, state, log, extra=()):
        self.cmd = [binary, "sync", "-a", a.filer_addr, "-b", b.filer_addr,
                    "--state", state, *extra]
        self.state, self.log, self.binary = state, log, binary
        self.proc = None
        # exits: the codes of runs that ended on their own
        self.runs, self.kills, self.exits = 0, 0, []

    def _mark(self, text):
        with open(self.log, "a") as f:
            f.write(f"==== {clock(time.time())} {text}\n")

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        self._mark(f"run {self.runs}: {' '.join(self.cmd)}")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
                start_new_session=True)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self):
        """Restarts a sync that exited on its own (recording its exit code)."""
        if self.proc is not None and not self.alive():
            self.exits.append(self.proc.returncode)
            self._mark(f"run {self.runs} exited with {self.proc.returncode}; restarted")
            self.proc = None
            self.start()

    def kill(self):
        """SIGKILL (by PID) and reap; a run that had exited on its own
        meanwhile is recorded as such instead."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1
            self._mark(f"run {self.runs} killed (SIGKILL)")
        elif self.proc is not None:
            self.exits.append(self.proc.returncode)
            self._mark(f"run {self.runs} had exited with {self.proc.returncode}")

    def stop(self, bound=30.0):
        """SIGTERM (the window in flight is committed), SIGKILL after `bound` s."""
        if self.proc is not None:
            stop_pids([self.proc], bound)
            self._mark(f"run {self.runs} stopped, exit {self.proc.returncode}")

    def status(self):
        """`filer-sync status --json` of the state file (a list of directions)."""
        r = subprocess.run([self.binary, "status", "--state", self.state, "--json"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return [d for doc in json.loads(r.stdout or "[]") for d in doc.get("directions", [])]


class ShardedSync:
    """LongSync's interface over instances of `sync --ha --shards N`: for
    each folder of `links` (one link each, mapped to itself), `per_link`
    instances on state files of their own (`state` + ".LINK-I"), all
    logging into `log`. start() starts every instance not running; kill()
    SIGKILLs one, in turn (its link's other instance takes its shards after
    the TTL); status() gathers the directions of every state file."""

    def __init__(self, binary, a, b, state, log, extra=(), links=("/buckets", "/shared"),
                 per_link=2, shards=4, ttl=3):
        self.log, self.binary = log, binary
        self.instances = [
            LongSync(binary, a, b, f"{state}.{link.strip('/')}-{i}", log,
                     ["--a-path", link, "--b-path", link, "--ha", "--ha-ttl-secs", str(ttl),
                      "--shards", str(shards), *extra])
            for link in links for i in range(per_link)]
        self.turn = 0

    runs = property(lambda self: sum(i.runs for i in self.instances))
    kills = property(lambda self: sum(i.kills for i in self.instances))
    exits = property(lambda self: [c for i in self.instances for c in i.exits])

    def start(self):
        for i in self.instances:
            if not i.alive():
                i.start()
        return self

    def alive(self):
        return all(i.alive() for i in self.instances)

    def ensure_running(self):
        for i in self.instances:
            i.ensure_running()

    def kill(self):
        self.instances[self.turn % len(self.instances)].kill()
        self.turn += 1

    def stop(self, bound=30.0):
        for i in self.instances:
            i.stop(bound)

    def status(self):
        return [d for i in self.instances for d in i.status()]


def s3_client(port):
    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, proxies={},
                      retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=5, read_timeout=60))


def run_sync(a, b, state, active_passive, timeout=180):
    """One `filer-sync sync --once` between the clusters' filers; exit 0 expected."""
    wait_until(f"the filer-sync binary {FILER_SYNC_BIN}",
               lambda: os.access(FILER_SYNC_BIN, os.X_OK), timeout=120)
    cmd = [FILER_SYNC_BIN, "sync", "-a", a.filer_addr, "-b", b.filer_addr,
           "--once", "--state", state] + (["--active-passive"] if active_passive else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (f"{' '.join(cmd)} exited {r.returncode}\n"
                               f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}")
    return r


# ---- what a user sees through a gateway ----

def _pages(s3, op, key, **kw):
    for page in s3.get_paginator(op).paginate(**kw):
        yield from page.get(key, [])


def _object(s3, bucket, key, version=None):
    """Everything a GET/HEAD and the tagging API say about one object (version)."""
    extra = {"VersionId": version} if version else {}
    got = s3.get_object(Bucket=bucket, Key=key, **extra)
    body = got["Body"].read()
    tags = s3.get_object_tagging(Bucket=bucket, Key=key, **extra)["TagSet"]
    return {
        "ETag": got["ETag"], "ContentLength": got["ContentLength"],
        "ContentType": got.get("ContentType"), "Metadata": got.get("Metadata", {}),
        "CacheControl": got.get("CacheControl"),
        "ContentDisposition": got.get("ContentDisposition"),
        "ContentEncoding": got.get("ContentEncoding"),
        "LastModified": got["LastModified"].isoformat(),
        "Tags": sorted((t["Key"], t["Value"]) for t in tags),
        "BodySha256": hashlib.sha256(body).hexdigest(), "BodyLen": len(body),
    }


def bucket_view(s3, bucket):
    """A bucket as a user sees it: its versioning, the current listing with
    every object's fields and body hash, and for versioned buckets every
    version (with its body), which is latest, and every delete marker."""
    view = {"Versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status")}
    for o in _pages(s3, "list_objects_v2", "Contents", Bucket=bucket):
        listed = {"ETag": o["ETag"], "Size": o["Size"],
                  "LastModified": o["LastModified"].isoformat()}
        view[f"key {o['Key']!r}"] = {"listed": listed, **_object(s3, bucket, o["Key"])}
    if view["Versioning"]:
        for v in _pages(s3, "list_object_versions", "Versions", Bucket=bucket):
            view[f"version {v['Key']!r} {v['VersionId']}"] = {"VersionId": v["VersionId"],
                "IsLatest": v["IsLatest"], "ETag": v["ETag"], "Size": v["Size"],
                **_object(s3, bucket, v["Key"], v["VersionId"])}
        for m in _pages(s3, "list_object_versions", "DeleteMarkers", Bucket=bucket):
            view[f"delete marker {m['Key']!r} {m['VersionId']}"] = {
                "IsLatest": m["IsLatest"], "LastModified": m["LastModified"].isoformat()}
    return view


def view(s3, buckets):
    """All bucket names, and the full view of `buckets`."""
    names = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    return {"buckets": names, **{b: bucket_view(s3, b) if b in names else None for b in buckets}}


def diff(a, b, path=""):
    """Readable differences between two nested views, one line each."""
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for k in sorted(set(a) | set(b), key=str):
            where = f"{path} / {k}" if path else str(k)
            if k not in b:
                lines.append(f"{where}: only on A: {a[k]!r}")
            elif k not in a:
                lines.append(f"{where}: only on B: {b[k]!r}")
            else:
                lines += diff(a[k], b[k], where)
        return lines
    return [] if a == b else [f"{path}: A={a!r} B={b!r}"]


def view_diff(a, b, buckets, settle=10.0):
    """(A's view, the lines where B's view differs) for `buckets` (and the
    bucket lists). B's gateway learns replicated bucket settings from its
    filer asynchronously, so a difference is looked at again for `settle`
    seconds before it counts."""
    deadline = time.time() + settle
    while True:
        va, vb = view(a.s3, buckets), view(b.s3, buckets)
        lines = diff(va, vb)
        if not lines or time.time() > deadline:
            return va, lines
        time.sleep(1)


def assert_same(a, b, buckets, settle=10.0):
    """A's view == B's view for `buckets` (and the bucket lists); see view_diff."""
    va, lines = view_diff(a, b, buckets, settle)
    if lines:
        raise AssertionError(f"A and B differ ({len(lines)}):\n" + "\n".join(lines))
    return va
