#!/usr/bin/env python3
"""make bench: filer-sync against `weed filer.sync` (4.48), side by side.

For each workload the source cluster A is filled once; then, round after
round, each tool catches a fresh target cluster up from the beginning of A's
log (alternating the order), the target is verified with `filer-sync verify`
(a run that misses files is not a result), and the sync process's wall time,
CPU seconds and peak RSS are taken from wait4(). Medians and the ratio
filer-sync/weed go to BENCHMARKS.md.

Workloads (sizes can be scaled down with BENCH_SCALE=0.1 for a quick look):
  1. small: 10,000 x 4 KiB files in 100 directories -> files/s, CPU s, peak RSS
  2. large: 20 x 50 MiB files (filer -maxMB=4)       -> MB/s, peak RSS
  3. mixed: creates, overwrites, directory renames, deletes (>= 20,000 events) -> events/s
  4. lag:   4 KiB files written to A at a steady rate while the sync runs -> p50/p95/p99
            (until B's filer logs each file's creation), medians of BENCH_ROUNDS rounds
  4b. lag_load: the lag workload's probes while A takes a steady background
            load (two rates) -> p50/p95/p99 for both tools
  6. rescan: a rescan inside a following sync over two equal trees of 10,000
            files, against `weed filer.sync.verify` on the same trees -> files/s,
            CPU per file of the walker and of the servers (it must change nothing)
  5. limit: the rate at which a fresh target ingests the same data, written
            straight into it on a quiet machine: through its filer (HTTP PUTs
            from 16 kept-alive Python writers), with weed's own client from
            local disk (`weed filer.copy -c 16`: assign, volume POST and
            CreateEntry per file, what a sync does on the target side), and
            into its volume servers alone (`weed benchmark -c 16`: assign and
            POST, no metadata). Each client runs on the same 2 cores.
  5b. ceiling: what a fresh target filer absorbs of CreateEntry gRPC calls
            alone (entries naming 4 KiB chunks already on its volume server,
            32 calls in flight from Python grpcio, 20,000 entries a round)
            -> entries/s, and each tool's small-file rate (workload 1 of the
            same run, else BENCHMARKS.md's newest row 1) as a share of it
  5c. the same entries on one StreamMutateEntry stream, 32 unanswered at
            most (filer-sync creates entries this way; weed by unary calls)
Not in the default run (name them: `make bench BENCH_WORKLOADS="scale follow"`):
  7. scale: catch-up of 10k, 100k and 1M x 1 KiB files (1 KiB, not 4, to
            save disk) in folders of 1,000, and of one folder of 1M entries;
            BENCH_SCALE scales the curve (0.1: 1k, 10k, 100k and a folder of
            100k). A is filled once and grows from size to size; the folder is
            a second A. filer-sync by log replay (as weed) and by a walk
            (its default first run); weed up to 100k (scaled) only; ROUNDS
            rounds at 10k, one above -> files/s, peak RSS, CPU ms per file,
            state-file MB per size, where the cost stops being flat (ratios
            to 10k, target within 20 %), charts/<run>-scale-*.svg. About
            50 minutes at full size. `wide`: its folder of 1M alone.
  8. follow: filer-sync follows A for BENCH_FOLLOW_MINUTES (default 30;
            BENCH_LONG=1: 120) while ~200 operations/s (creates, moves,
            deletes) go to A; every BENCH_FOLLOW_SAMPLE_SECS (60) its RSS,
            open fds, threads, CPU, state-file size and a probe file's lag
            -> per-sample rows, growth first to last, what grows steadily
            (last third's median > middle third's + 20 %), B verified equal
            to A at the end, charts/<run>-follow-*.svg.
  9. shards: one link (/sh, 64 top-level folders of 4 KiB files, 100,000
            files, so that the shares settle early in the catch-up) caught up from the start of A's log by 1, 2 and 4
            `sync --ha --shards 8` instances, each on a state file of its
            own -> files/s, total sync CPU ms per file (all instances
            together), each instance's share of the applied events. Fair on
            2 cores: a speed-up cannot be measured (instances and servers
            would share the same two cores), so every instance is pinned with
            `taskset` to core 0 and both clusters' servers to core 1: the
            instances of a run share one core whatever their number, and
            what the rows show is what sharding costs (CPU per file) and how
            evenly it splits the work; what K machines add follows from the
            CPU per file (BENCHMARKS.md's notes). `python3 scripts/bench.py
            shards`.
`python3 scripts/bench.py headline` rewrites BENCHMARKS.md's headline table
from the runs it lists (every run does so too), running nothing.
Every server binds 127.0.0.1. The charts need matplotlib and 5b grpcio and
protobuf (scripts/bench-requirements.txt, which `make bench` installs).
"""
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "filer-sync")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WEED = subprocess.check_output([os.path.join(ROOT, "scripts", "install-weed.sh")], text=True).strip()
CLUSTER = os.path.join(ROOT, "scripts", "local-cluster.sh")
WORK = tempfile.mkdtemp(prefix="filer-sync-bench.")
# The filer protobuf schema as a descriptor set (shared/ beside the repository), for workload 5b.
DESC = os.environ.get("BENCH_FILER_DESC", os.path.join(os.path.dirname(ROOT), "shared", "seaweedfs", "filer-4.48.desc"))
STARTED = time.gmtime()
STAMP = time.strftime("%Y%m%d-%H%M", STARTED)  # names this run's charts
NOTES = []  # sections below the table (workloads 7 and 8: tables of their own, charts)
SMALL_RATES = {}  # workload 1's files/s by tool, for 5b's share


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Cluster:
    n = 0

    def __init__(self, *filer_flags):
        Cluster.n += 1
        self.dir = os.path.join(WORK, f"c{Cluster.n}")
        self.addr = subprocess.check_output([CLUSTER, "start", self.dir, *filer_flags], text=True).strip()
        self.host, self.port = self.addr.split(":")
        self.probe = None

    def stop(self):
        subprocess.run([CLUSTER, "stop", self.dir], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self):
        return http.client.HTTPConnection(self.host, int(self.port), timeout=60)

    def exists(self, path):
        """HEAD over one kept-alive connection (cheap enough to poll often)."""
        for attempt in range(2):
            try:
                if self.probe is None:
                    self.probe = self.conn()
                self.probe.request("HEAD", path)
                r = self.probe.getresponse(); r.read()
                return r.status == 200
            except (http.client.HTTPException, OSError):
                self.probe.close()
                self.probe = None
        return False

    def cpu(self):
        """CPU seconds used so far by this cluster's weed processes (master, volume, filer)."""
        total = 0.0
        for pid in weed_pids(self):
            try:
                total += process_cpu(pid)
            except (OSError, IndexError, ValueError):
                continue
        return total


class Writer:
    """Keep-alive HTTP client for workloads."""

    def __init__(self, cluster):
        self.c = cluster
        self.h = cluster.conn()

    def req(self, method, path, body=None):
        for attempt in range(5):
            try:
                self.h.request(method, path, body=body)
                r = self.h.getresponse()
                r.read()
                if r.status >= 300 and not (method == "DELETE" and r.status == 404):
                    raise RuntimeError(f"{method} {path}: {r.status}")
                return
            except (http.client.HTTPException, ConnectionError, OSError):
                self.h.close()
                self.h = self.c.conn()
                time.sleep(0.1 * (attempt + 1))
        raise RuntimeError(f"{method} {path} failed")

    def put(self, path, body):
        self.req("PUT", path, body)


def payload(body):
    """A workload body: bytes, or a function that makes them (large files)."""
    return body() if callable(body) else body


def write_all(cluster, items, writers):
    """PUTs every (path, body) of `items` into the cluster's filer from
    `writers` kept-alive connections at once (a body may be a function that
    makes it); returns the seconds it took."""
    import threading
    todo = iter(items)
    lock = threading.Lock()
    failed = []

    def work():
        try:
            w = Writer(cluster)
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                path, body = item
                w.put(path, payload(body))
        except Exception as e:  # reported below, on the caller's thread
            failed.append(e)

    threads = [threading.Thread(target=work) for _ in range(writers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return time.monotonic() - t0


def limits(items, n, size, filer_flags=()):
    """Workload 5 for `items` (stored as n chunks of `size` bytes): seconds
    to write them into a fresh cluster through its filer's HTTP (16 Python
    writers), with `weed filer.copy -c 16` from local disk (assign, volume
    POST, CreateEntry per file), and to POST n blobs of `size` straight to
    its volume servers with `weed benchmark -c 16` (no filer: the data path
    alone). Each runs on a cluster of its own."""
    c = Cluster(*filer_flags)
    try:
        via_filer = write_all(c, items, 16)
    finally:
        c.stop()
    # The same files from local disk with weed's own Go client.
    local = os.path.join(WORK, "copy")
    for path, body in items:
        os.makedirs(os.path.dirname(local + path), exist_ok=True)
        with open(local + path, "wb") as f:
            f.write(payload(body))
    top = items[0][0].split("/")[1]
    c = Cluster(*filer_flags)
    try:
        t0 = time.monotonic()
        subprocess.run([WEED, "filer.copy", "-c=16", f"-maxMB={size >> 20 or 4}", os.path.join(local, top), f"http://{c.addr}/"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=c.dir, timeout=1800)
        via_copy = time.monotonic() - t0
        dirs = sorted({os.path.dirname(path) for path, _ in items})
        if count_files(c, dirs) != len(items):
            raise RuntimeError(f"weed filer.copy did not write all {len(items)} files")
    finally:
        c.stop()
        shutil.rmtree(local, ignore_errors=True)
    c = Cluster(*filer_flags)
    try:
        with open(os.path.join(c.dir, "ports")) as f:
            master = f"127.0.0.1:{f.readline().strip()}"
        # Volumes for its collection made beforehand, as a target's would be.
        h = http.client.HTTPConnection(*master.split(":"), timeout=60)
        h.request("GET", "/vol/grow?collection=benchmark&count=4&replication=000")
        h.getresponse().read()
        out = subprocess.run([WEED, "benchmark", f"-master={master}", "-c=16", f"-n={n}", f"-size={size}",
                              "-writeOnly", f"-list={os.path.join(c.dir, 'fids.txt')}"],
                             check=True, capture_output=True, text=True, cwd=c.dir, timeout=1800).stdout
        stat = lambda key: next(l.split(":", 1)[1].split()[0] for l in out.splitlines() if l.startswith(key))
        if int(stat("Failed requests")) or int(stat("Completed requests")) != n:
            raise RuntimeError(f"weed benchmark did not write all {n} blobs:\n{out[-2000:]}")
        via_volumes = float(stat("Time taken for tests"))
    finally:
        c.stop()
    log(f"  limit: {len(items)} files through the filer's HTTP {via_filer:.2f} s, with weed filer.copy {via_copy:.2f} s; "
        f"{n} x {size} B straight to the volume servers {via_volumes:.2f} s")
    return via_filer, via_copy, via_volumes


def limit_rows(rows, unit, amount, tools, via_filer, via_copy, via_volumes):
    """The limits in `unit`/s (`amount` units written), and each tool's
    rate as a share of the filer.copy one: how close a sync comes to what
    weed's own client writes into the target (assign, volume POST,
    CreateEntry per file, as a sync's target side does)."""
    f, c, v = amount / via_filer, amount / via_copy, amount / via_volumes
    rows.append((f"5. limit: target ingest via filer HTTP PUTs (16 Python writers), {unit}/s", f, f, "(same)"))
    rows.append((f"5. limit: target ingest with weed filer.copy -c 16 from local disk, {unit}/s", c, c, "(same)"))
    rows.append((f"5. limit: direct volume POSTs, no metadata (weed benchmark -c 16), {unit}/s", v, v, "(same)"))
    rows.append(("   each tool's rate / the filer.copy limit", tools["weed"] / c, tools["filer-sync"] / c, ""))


def run_tool(tool, a, b, seen, complete, state):
    """Runs one sync until the target is complete; returns (wall s, sync CPU s,
    peak RSS MB, CPU s of both clusters' servers meanwhile, state file MB:
    the SQLite file and its -wal, 0 for weed, whose checkpoint is in B's KV).

    `seen()` is a cheap probe (the file written last is readable on B),
    polled every 10 ms; once it holds, `complete()` checks the whole target.
    All four figures are taken when the check that passed began: the
    checks' own work (listings, a verify walking both trees) and the poll's
    sleep are not the tool's, and counting them (as runs before 2026-11-28
    02:40 did, polling every 0.2 s and stopping the clock after the checks)
    adds the same seconds to both tools, which pulls every ratio toward 1."""
    if tool == "weed":
        cmd = [WEED, "filer.sync", "-a", a.addr, "-b", b.addr, "-isActivePassive"]
    else:
        cmd = [BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--state", state]
        # Like for like with weed, which replays the log; "filer-sync walk"
        # is filer-sync's default first run (a walk of the trees, then the
        # log from the walk's start).
        if tool == "filer-sync":
            cmd += ["--bootstrap", "log"]
    env = dict(os.environ, RUST_LOG="warn")
    servers0 = a.cpu() + b.cpu()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, f"{tool}.log"), "a"), env=env)
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"{tool} exited early with {p.returncode}")
            if time.monotonic() - t0 > 1800:
                raise RuntimeError(f"{tool} did not finish in 30 min")
            if not seen():
                time.sleep(0.01)
                continue
            mark = (time.monotonic() - t0, process_cpu(p.pid), peak_rss_mb(p.pid), a.cpu() + b.cpu() - servers0,
                    state_mb(state))
            if complete():
                return mark
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()


def process_cpu(pid):
    """CPU seconds (user + system, all threads) a running process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def state_mb(state):
    """MB of a state file and its write-ahead log (0 if there is none)."""
    return sum(os.path.getsize(f) for f in (state, state + "-wal") if os.path.exists(f)) / 2**20


def peak_rss_mb(pid):
    """VmHWM of the running process. (wait4's ru_maxrss would also count the
    forked Python parent's memory before exec.)"""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def count_files(cluster, dirs):
    """Number of files in the given directories of a cluster (listings of
    100,000 entries, paged for a larger folder)."""
    n = 0
    h = cluster.conn()
    for d in dirs:
        after = ""
        while True:
            h.request("GET", f"{d}/?limit=100000&lastFileName={urllib.parse.quote(after)}",
                      headers={"Accept": "application/json"})
            r = h.getresponse()
            body = r.read()
            if r.status != 200:
                break
            page = json.loads(body)
            entries = page.get("Entries") or []
            n += sum(1 for e in entries if not (e.get("Mode", 0) & (1 << 31)))
            if not (entries and page.get("ShouldDisplayLoadMore")):
                break
            after = entries[-1]["FullPath"].rsplit("/", 1)[1]
    h.close()
    return n


def verify(a, b, path):
    r = subprocess.run([BIN, "verify", "-a", a.addr, "-b", b.addr, "--a-path", path, "--b-path", path],
                       capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"))
    if r.returncode != 0:
        raise RuntimeError(f"target differs after the run:\n{r.stdout[-2000:]}")


def verified(a, b, path):
    try:
        verify(a, b, path)
        return True
    except RuntimeError:
        return False


def catch_up(name, a, path, dirs, expect, last, filer_flags=(), exact=False, walk=False, rounds=ROUNDS, weed=True,
             diverged=None):
    """Rounds of both tools catching a fresh target up (`weed=False`: filer-sync
    alone); returns {tool: [(wall, cpu, rss, servers, state MB)]}.
    The target is listed only once `last`, the file written last, is
    readable there (see `run_tool`). With `exact`, a run is complete only
    once the target also verifies equal (for workloads whose file count
    passes through the final value). A target that holds every file but
    differs from A after the run (attributes) fails the workload, unless
    `diverged` is a list: then the run counts and (tool, what differed) is
    noted there."""
    tools = (["weed"] if weed else []) + ["filer-sync"] + (["filer-sync walk"] if walk else [])
    res = {t: [] for t in tools}
    for rnd in range(rounds):
        order = tools if rnd % 2 == 0 else tools[::-1]
        for tool in order:
            b = Cluster(*filer_flags)
            try:
                state = os.path.join(WORK, f"{name}-{rnd}-{tool.replace(' ', '-')}.db")
                seen = lambda: b.exists(last)
                complete = lambda: count_files(b, dirs) >= expect and (not exact or verified(a, b, path))
                m = run_tool(tool, a, b, seen, complete, state)
                try:
                    verify(a, b, path)
                except RuntimeError as e:
                    if diverged is None:
                        raise
                    what = e.args[0].strip().splitlines()[-1]
                    log(f"  {name} round {rnd + 1} {tool}: {e}")
                    diverged.append((tool, what))
                log(f"  {name} round {rnd + 1} {tool}: {m[0]:.2f} s, {m[1]:.2f} CPU s, {m[2]:.0f} MB RSS, servers {m[3]:.2f} CPU s")
                res[tool].append(m)
            finally:
                b.stop()
    return res


def num(x):
    """A figure for the tables: three decimals below 1 (a CPU ms per file
    of 0.057 against 0.060 is a difference a target weighs), two above."""
    return f"{x:.3f}" if abs(x) < 1 else f"{x:,.2f}"


def med(xs):
    return statistics.median(xs)


def small(rows):
    n_dirs, per = 100, max(1, int(100 * SCALE))
    n = n_dirs * per
    a = Cluster()
    try:
        w = Writer(a)
        items = [(f"/small/d{i % n_dirs}/f{i}.bin", os.urandom(4096)) for i in range(n)]
        for path, body in items:
            w.put(path, body)
        dirs = [f"/small/d{d}" for d in range(n_dirs)]
        res = catch_up("small", a, "/small", dirs, n, f"/small/d{(n - 1) % n_dirs}/f{n - 1}.bin", walk=True)
    finally:
        a.stop()
    ingest = limits(items, n, 4096)
    fs = {t: med([n / m[0] for m in v]) for t, v in res.items()}
    cpu = {t: med([m[1] / n * 1000 for m in v]) for t, v in res.items()}
    rss = {t: med([m[2] for m in v]) for t, v in res.items()}
    rows.append((f"1. catch-up {n:,} x 4 KiB: files/s", fs["weed"], fs["filer-sync"], ">= 2.0"))
    servers = {t: med([m[3] / n * 1000 for m in v]) for t, v in res.items()}
    rows.append(("   CPU ms per file (sync process)", cpu["weed"], cpu["filer-sync"], "<= 0.09 ms"))
    rows.append(("   CPU ms per file (both clusters' servers)", servers["weed"], servers["filer-sync"], ""))
    rows.append(("   peak RSS MB", rss["weed"], rss["filer-sync"], ""))
    rows.append((f"1b. first run by a walk (filer-sync's default) of the same {n:,} files: files/s",
                 fs["weed"], fs["filer-sync walk"], ">= 2.0"))
    rows.append(("   CPU ms per file (sync process)", cpu["weed"], cpu["filer-sync walk"], "<= row 1's"))
    del fs["filer-sync walk"]
    SMALL_RATES.update(fs)
    limit_rows(rows, "files", n, fs, *ingest)


def large(rows):
    n, size = max(2, int(20 * SCALE)), 50 << 20
    a = Cluster("-maxMB=4")
    try:
        w = Writer(a)
        blob = os.urandom(size)
        items = [(f"/large/f{i}.bin", lambda i=i: blob[i:] + blob[:i]) for i in range(n)]
        for path, body in items:
            w.put(path, body())
        res = catch_up("large", a, "/large", ["/large"], n, f"/large/f{n - 1}.bin", ("-maxMB=4",))
    finally:
        a.stop()
    # The volume servers take the large files as the filer stores them: 4 MiB chunks.
    chunk = 4 << 20
    ingest = limits(items, n * size // chunk, chunk, ("-maxMB=4",))
    mbs = {t: med([n * size / m[0] / 1e6 for m in v]) for t, v in res.items()}
    rss = {t: med([m[2] for m in v]) for t, v in res.items()}
    rows.append((f"2. catch-up {n} x 50 MiB: MB/s", mbs["weed"], mbs["filer-sync"], ">= 1.3"))
    rows.append(("   peak RSS MB", rss["weed"], rss["filer-sync"], "<= 0.125"))
    limit_rows(rows, "MB", n * size / 1e6, mbs, *ingest)


def mixed(rows):
    """Creates, overwrites, directory renames and deletes; counts A's log events."""
    n_dirs, per = 50, max(5, int(200 * SCALE))
    a = Cluster()
    events = 0
    try:
        w = Writer(a)
        rnd = random.Random(7)
        for d in range(n_dirs):
            for i in range(per):
                w.put(f"/mixed/d{d}/f{i}.txt", os.urandom(1024)); events += 1
        for d in range(n_dirs):
            for i in range(0, per, 3):
                w.put(f"/mixed/d{d}/f{i}.txt", os.urandom(2048)); events += 1
            for i in range(1, per, 5):
                w.req("DELETE", f"/mixed/d{d}/f{i}.txt"); events += 1
        for d in range(0, n_dirs, 2):
            w.req("POST", f"/mixed/r{d}?mv.from=/mixed/d{d}"); events += 1 + per
        for d in range(n_dirs):
            base = f"/mixed/r{d}" if d % 2 == 0 else f"/mixed/d{d}"
            last = f"{base}/late{rnd.randint(0, 9)}.txt"
            w.put(last, os.urandom(512)); events += 1
        dirs = [f"/mixed/r{d}" if d % 2 == 0 else f"/mixed/d{d}" for d in range(n_dirs)]
        expect = count_files(a, dirs)
        res = catch_up("mixed", a, "/mixed", dirs, expect, last, exact=True)
    finally:
        a.stop()
    eps = {t: med([events / m[0] for m in v]) for t, v in res.items()}
    cpu = {t: med([m[1] / events * 1000 for m in v]) for t, v in res.items()}
    servers = {t: med([m[3] / events * 1000 for m in v]) for t, v in res.items()}
    rows.append((f"3. mixed workload, ~{events:,} events: events/s", eps["weed"], eps["filer-sync"], ">= 2.0"))
    rows.append(("   CPU ms per event (sync process)", cpu["weed"], cpu["filer-sync"], ""))
    rows.append(("   CPU ms per event (both clusters' servers)", servers["weed"], servers["filer-sync"], ""))


def lag(rows):
    """p50/p95/p99 from the end of a write on A until the file is on B.

    The time a file reached B is the time B's filer logged its creation,
    read from B's metadata log after the run (`weed filer.meta.tail`): the
    entry is readable from then on, and nothing loads B while the syncs
    work. BENCH_ROUNDS rounds of 1,000 probes per tool, interleaved; each
    quantile is the median of the rounds' (runs before 2026-12-07 15:30
    had one round). (Runs before 2026-11-28 03:30 polled B with a HEAD per file every
    millisecond, about a thousand requests a second on the filer both tools
    write to, which stretched the tail it measured.)"""
    rate = 50
    # ROUNDS rounds, the tools in alternating order; each quantile is the
    # median of the rounds' (a p99 of 1,000 probes is its 10th worst: a few
    # slow server calls in one round move it by the round's p50).
    got = {"weed": [], "filer-sync": []}
    for r in range(ROUNDS):
        for tool in (["weed", "filer-sync"] if r % 2 == 0 else ["filer-sync", "weed"]):
            got[tool].append(probe_lags(tool, rate, 0)[0])
    out = {tool: [med([q[i] for q in qs]) for i in range(3)] for tool, qs in got.items()}
    for i, name in enumerate(["p50", "p95", "p99"]):
        rows.append((f"4. live lag at {rate} files/s: {name} ms (median of {ROUNDS} rounds)", out["weed"][i],
                     out["filer-sync"][i], "p50 <= 1.0" if i == 0 else ""))


def lag_load(rows):
    """Live lag of the probes (as `lag`) while A takes a steady background
    load of 4 KiB files into /load, for both tools, at two loads. The loads
    are what this machine's load generator sustains beside two clusters and
    the sync on 2 cores (a Python client cannot write the 50 % and 80 % of
    filer-sync's catch-up rate the issue names: that is above the filer's
    own HTTP ingest limit here); each row says the rate reached."""
    rate = 50
    for load in (300, 900):
        out, reached = {}, []
        for tool in ["weed", "filer-sync"]:
            out[tool], got = probe_lags(tool, rate, load)
            reached.append(got)
        for i, name in enumerate(["p50", "p95", "p99"]):
            rows.append((f"4b. live lag at {rate} files/s under a load of {load} files/s "
                         f"(>= {min(reached):.0f} reached): {name} ms", out["weed"][i], out["filer-sync"][i],
                         "p99 < 100 and < weed" if i == 2 else ""))


def probe_lags(tool, rate, load):
    """Runs `tool` following fresh clusters A -> B while probes are written
    to A at `rate` files/s (and, with `load`, background files at about that
    rate by 4 writers); returns ((p50, p95, p99) ms, background files/s
    reached)."""
    import threading
    n = rate * max(5, int(20 * SCALE))
    a, b = Cluster(), Cluster()
    try:
        state = os.path.join(WORK, f"lag-{load}-{tool}.db")
        if tool == "weed":
            cmd = [WEED, "filer.sync", "-a", a.addr, "-b", b.addr, "-isActivePassive"]
        else:
            cmd = [BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--state", state]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        stop, counts = threading.Event(), []

        def background(k, threads=4):
            w, i, per = Writer(a), 0, load / threads
            t0 = time.monotonic()
            while not stop.is_set():
                time.sleep(max(0, t0 + i / per - time.monotonic()))
                w.put(f"/load/t{k}/f{i}.bin", os.urandom(4096))
                i += 1
            counts.append(i)
        bg = [threading.Thread(target=background, args=(k,)) for k in range(4 if load else 0)]
        for t in bg:
            t.start()
        w, written = Writer(a), {}
        t0 = time.monotonic()
        for i in range(n):
            time.sleep(max(0, t0 + i / rate - time.monotonic()))
            w.put(f"/lag/f{i}.bin", os.urandom(4096))
            written[f"f{i}.bin"] = time.time_ns()
        elapsed = time.monotonic() - t0
        stop.set()
        for t in bg:
            t.join()
        deadline = time.monotonic() + 120
        while not (b.exists(f"/lag/f{n - 1}.bin") and count_files(b, ["/lag"]) >= n):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tool}: not all {n} probes reached B within 120 s")
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM); p.wait()
        arrived = created_on(b, "/lag")
        missing = [name for name in written if name not in arrived]
        if missing:
            raise RuntimeError(f"{tool}: B's log has no creation of {len(missing)} probes, e.g. {missing[0]}")
        lags = sorted((arrived[name] - t) / 1e6 for name, t in written.items())
        q = statistics.quantiles(lags, n=100)
        reached = sum(counts) / elapsed
        under = f" under {load} files/s ({reached:.0f} reached)" if load else ""
        log(f"  lag{under} {tool}: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms, max {lags[-1]:.1f} ms")
        return (q[49], q[94], q[98]), reached
    finally:
        a.stop(); b.stop()


def rescan(rows):
    """The cost of a rescan over two equal trees, against `weed
    filer.sync.verify` walking the same trees: files/s, and CPU ms per file
    of the walking process and of both clusters' servers. filer-sync's is a
    real rescan inside a following `sync` (`--rescan-secs 1`, unpaced), timed
    by the walk record `status --json` shows; it must change nothing."""
    n_dirs, per = 100, max(1, int(100 * SCALE))
    n = n_dirs * per
    a, b = Cluster(), Cluster()
    try:
        w = Writer(a)
        for i in range(n):
            w.put(f"/rescan/d{i % n_dirs}/f{i}.bin", os.urandom(4096))
        subprocess.run([BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--once",
                        "--state", os.path.join(WORK, "rescan-copy.db")],
                       check=True, capture_output=True, env=dict(os.environ, RUST_LOG="warn"))
        verify(a, b, "/rescan")
        res = {"weed": [], "filer-sync": []}
        for rnd in range(ROUNDS):
            for tool in (["weed", "filer-sync"] if rnd % 2 == 0 else ["filer-sync", "weed"]):
                m = rescan_once(tool, a, b, rnd)
                log(f"  rescan round {rnd + 1} {tool}: {m[0]:.2f} s, {m[1]:.2f} CPU s, servers {m[2]:.2f} CPU s")
                res[tool].append(m)
    finally:
        a.stop()
        b.stop()
    fs = {t: med([n / m[0] for m in v]) for t, v in res.items()}
    cpu = {t: med([m[1] / n * 1000 for m in v]) for t, v in res.items()}
    servers = {t: med([m[2] / n * 1000 for m in v]) for t, v in res.items()}
    rows.append((f"6. rescan of two equal trees of {n:,} files (weed: filer.sync.verify): files/s",
                 fs["weed"], fs["filer-sync"], ""))
    rows.append(("   CPU ms per file (walking process)", cpu["weed"], cpu["filer-sync"], ""))
    rows.append(("   CPU ms per file (both clusters' servers)", servers["weed"], servers["filer-sync"], ""))


def rescan_once(tool, a, b, rnd):
    """One walk of the equal trees; returns (wall s, process CPU s, servers CPU s)."""
    if tool == "weed":
        out = os.path.join(WORK, "verify.out")
        servers0, t0 = a.cpu() + b.cpu(), time.monotonic()
        p = subprocess.Popen([WEED, "filer.sync.verify", "-a", a.addr, "-b", b.addr, "-a.path", "/rescan",
                              "-b.path", "/rescan", "-isActivePassive"], stdout=open(out, "w"),
                             stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        servers = a.cpu() + b.cpu() - servers0
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"weed filer.sync.verify: {status}\n{open(out).read()[-2000:]}")
        return wall, ru.ru_utime + ru.ru_stime, servers
    state = os.path.join(WORK, f"rescan-{rnd}.db")
    logf = os.path.join(WORK, f"rescan-{rnd}.log")
    p = subprocess.Popen([BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--state", state,
                          "--a-path", "/rescan", "--b-path", "/rescan", "--rescan-secs", "1",
                          "--rescan-rate", "1000000000"], stdout=subprocess.DEVNULL, stderr=open(logf, "w"),
                         env=dict(os.environ, RUST_LOG="info"))
    try:
        def text():
            return open(logf).read()
        wait_for(lambda: "following" in text(), p, "the first-run walk")
        servers0, cpu0 = a.cpu() + b.cpu(), process_cpu(p.pid)
        wait_for(lambda: "rescan: " in text(), p, "a rescan")
        servers, cpu = a.cpu() + b.cpu() - servers0, process_cpu(p.pid) - cpu0
        line = next(l for l in text().splitlines() if "rescan: " in l)
        if " 0 differences, 0 entries copied" not in line:
            raise RuntimeError(f"a rescan over equal trees changed something: {line}")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
    st = json.loads(subprocess.check_output([BIN, "status", "--state", state, "--json"], text=True))
    walk = st[0]["directions"][0]["last_walk"]
    if walk["why"] != "rescan":
        raise RuntimeError(f"the last walk is not the rescan: {walk}")
    return (walk["ended_ns"] - walk["started_ns"]) / 1e9, cpu, servers


def ceiling(rows):
    """Workload 5b: what a fresh target filer absorbs of CreateEntry gRPC
    calls alone, for entries whose chunks are already on its volume server
    (100 chunks of 4 KiB uploaded once: master /dir/assign, then a POST to
    the volume server), 32 calls in flight from this Python process
    (grpcio, message classes from the filer's descriptor set). The calls are
    serialized before the clock starts. Rounds of 20,000 entries (scaled)
    in folders of 1,000, each round in a folder of its own; median."""
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    n, in_flight = max(1000, int(20_000 * SCALE)), 32
    pool = descriptor_pool.DescriptorPool()
    with open(DESC, "rb") as f:
        for proto in descriptor_pb2.FileDescriptorSet.FromString(f.read()).file:
            pool.Add(proto)
    message = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"filer_pb.{name}"))
    Request, Response = message("CreateEntryRequest"), message("CreateEntryResponse")
    SRequest, SResponse = message("StreamMutateEntryRequest"), message("StreamMutateEntryResponse")
    c = Cluster()
    try:
        chunks = upload_chunks(c, 100, 4096)
        channel = grpc.insecure_channel(f"{c.host}:{int(c.port) + 10000}")
        create = channel.unary_unary("/filer_pb.SeaweedFiler/CreateEntry", response_deserializer=Response.FromString)
        stream = channel.stream_stream("/filer_pb.SeaweedFiler/StreamMutateEntry",
                                       response_deserializer=SResponse.FromString)
        rates, cpu = {"unary": [], "stream": []}, {"unary": [], "stream": []}
        for rnd in range(ROUNDS):
            for way in ("unary", "stream"):
                now = time.time_ns()
                calls = []
                for i in range(n):
                    fid, etag, _ = chunks[i % len(chunks)]
                    req = Request(directory=f"/ceiling/{way}{rnd}/d{i // 1000}")
                    e = req.entry
                    e.name = f"f{i}.bin"
                    e.attributes.file_size, e.attributes.file_mode = 4096, 0o644
                    e.attributes.mtime = e.attributes.crtime = now // 10**9
                    e.chunks.add(file_id=fid, size=4096, modified_ts_ns=now, e_tag=etag)
                    if way == "stream":
                        req = SRequest(request_id=i + 1, create_request=req)
                    calls.append(req.SerializeToString())
                servers0, client0 = c.cpu(), time.process_time()
                secs = create_all(create, calls, in_flight) if way == "unary" else stream_all(stream, calls, in_flight)
                servers, client = c.cpu() - servers0, time.process_time() - client0
                rates[way].append(n / secs)
                cpu[way].append((servers / n * 1000, client / n * 1000))
                log(f"  ceiling round {rnd + 1} ({way}): {n:,} entries in {secs:.2f} s ({n / secs:,.0f}/s), "
                    f"cluster {servers / n * 1000:.3f} CPU ms per entry, this client {client / n * 1000:.3f}")
        channel.close()
        # The entries are real files: one reads back as its chunk's bytes.
        fid, _, body = chunks[(n - 1) % len(chunks)]
        h = c.conn()
        h.request("GET", f"/ceiling/unary0/d{(n - 1) // 1000}/f{n - 1}.bin")
        r = h.getresponse()
        folders = [f"/ceiling/{way}0/d{d}" for way in ("unary", "stream") for d in range((n + 999) // 1000)]
        if r.read() != body or count_files(c, folders) != 2 * n:
            raise RuntimeError("ceiling: the created entries do not read back")
    finally:
        c.stop()
    tools, source = SMALL_RATES, ""
    if not tools:
        tools, source = newest_small_rates()
    new = []
    for way, label in (("unary", "5b. limit: target CreateEntry gRPC alone"),
                       ("stream", "5c. limit: target StreamMutateEntry gRPC alone (one stream)")):
        ceil = med(rates[way])
        new.append((f"{label}, chunks already stored ({in_flight} in flight, "
                    f"{n:,} entries; CPU ms per entry: servers {med([x[0] for x in cpu[way]]):.3f}, this client "
                    f"{med([x[1] for x in cpu[way]]):.3f}), entries/s", ceil, ceil, "(same)"))
        if tools:
            new.append((f"   each tool's small-file rate{source} / the {way} ceiling",
                        tools["weed"] / ceil, tools["filer-sync"] / ceil, ""))
    # Beside the small-file limit rows when workload 1 ran in this run.
    at = next((i + 1 for i, r in enumerate(rows) if r[0].startswith("   each tool's rate / the filer.copy limit")
               and rows[i - 1][0].endswith("files/s")), len(rows))
    rows[at:at] = new


def upload_chunks(cluster, k, size):
    """Stores k chunks of `size` random bytes on the cluster's volume server
    (assign at the master, POST to the volume server); returns [(fid, etag, bytes)]."""
    with open(os.path.join(cluster.dir, "ports")) as f:
        master = http.client.HTTPConnection("127.0.0.1", int(f.readline()), timeout=60)
    out = []
    for _ in range(k):
        master.request("GET", "/dir/assign")
        a = json.loads(master.getresponse().read())
        body = os.urandom(size)
        host, port = a["url"].split(":")
        v = http.client.HTTPConnection(host, int(port), timeout=60)
        v.request("POST", f"/{a['fid']}", body=body, headers={"Content-Type": "application/octet-stream"})
        r = v.getresponse()
        out.append((a["fid"], json.loads(r.read())["eTag"], body))
        v.close()
        if r.status != 201:
            raise RuntimeError(f"volume POST {a['fid']}: {r.status}")
    master.close()
    return out


def create_all(create, calls, in_flight):
    """Sends the serialized CreateEntry requests with `in_flight` calls
    outstanding; returns the seconds from the first call to the last answer.
    A call that fails or answers an error fails the workload."""
    import threading
    import grpc
    slots, errors = threading.Semaphore(in_flight), []

    def done(fut):
        try:
            r = fut.result()
            if r.error or r.error_code:
                errors.append(f"{r.error} ({r.error_code})")
        except grpc.RpcError as e:
            errors.append(str(e))
        slots.release()

    t0 = time.monotonic()
    for req in calls:
        slots.acquire()
        create.future(req, timeout=60).add_done_callback(done)
    for _ in range(in_flight):
        slots.acquire()
    secs = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"CreateEntry: {len(errors)} failed, e.g. {errors[0]}")
    return secs


def stream_all(stream, calls, in_flight):
    """Sends the serialized StreamMutateEntry requests (ids 1..n) on one
    stream with at most `in_flight` unanswered; returns the seconds from the
    first request to the last answer. An answer with an error fails the
    workload."""
    import threading
    slots, errors = threading.Semaphore(in_flight), []

    def requests():
        for req in calls:
            slots.acquire()
            yield req

    t0, answered = time.monotonic(), 0
    for r in stream(requests(), timeout=600):
        answered += 1
        slots.release()
        if r.error or r.create_response.error or r.create_response.error_code:
            errors.append(f"{r.error or r.create_response.error} ({r.create_response.error_code})")
        if answered == len(calls):
            break
    secs = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"StreamMutateEntry: {len(errors)} failed, e.g. {errors[0]}")
    return secs


def newest_small_rates():
    """Both tools' small-file catch-up rates from BENCHMARKS.md's newest row
    1, and a note of the run they come from."""
    run = ""
    with open(os.path.join(ROOT, "BENCHMARKS.md")) as f:
        for line in f:
            if line.startswith("## Run of "):
                run = line[len("## Run of "):].strip()
            if line.startswith("| 1. catch-up"):
                cells = [c.strip().replace(",", "") for c in line.split("|")]
                return {"weed": float(cells[2]), "filer-sync": float(cells[3])}, f" (row 1 of the run of {run})"
    return {}, ""


def fill(cluster, path, lo, hi):
    """Writes files lo..hi-1 of 1 KiB (file i at `path(i)`) into the cluster
    from 16 writers, the last one alone after the others, so that it is the
    last file in the cluster's log (the probe `run_tool` polls)."""
    if hi <= lo:
        return
    secs = write_all(cluster, ((path(i), os.urandom(1024)) for i in range(lo, hi - 1)), 16)
    Writer(cluster).put(path(hi - 1), os.urandom(1024))
    log(f"  filled {path(lo)} .. {path(hi - 1)}: {hi - lo:,} files in {secs:.0f} s")


def scale(rows, only_wide=False):
    """Workload 7: the catch-up of 10k, 100k and 1M files in folders of
    1,000, and of one folder of 1M (all scaled by BENCH_SCALE). A is filled
    once, incrementally: each size adds files to it, and both tools replay
    its whole log, which then holds exactly that many creations. The folder
    of 1M is a second A of its own. weed runs up to the middle size only,
    filer-sync both ways (log replay, as weed; walk, its default first run).
    `only_wide`: the folder of 1M alone (workload `wide`)."""
    per = 1000
    sizes = [max(1, int(n * SCALE)) for n in (10_000, 100_000, 1_000_000)]
    out = []

    def measure(label, n, a, path, dirs, last, wide=False):
        rounds = ROUNDS if n <= sizes[0] else 1
        diverged = []
        try:
            res = catch_up(f"scale-{n}", a, path, dirs, n, last, walk=True, rounds=rounds, weed=n <= sizes[1],
                           diverged=diverged)
        except RuntimeError as e:  # one size failing leaves the others' figures
            log(f"  scale {label}: {e}")
            out.append(dict(label=label, n=n, tool="(failed)", rounds=rounds, wide=wide, error=str(e).splitlines()[0]))
            return
        for tool, v in res.items():
            differed = "; ".join(sorted({w for t, w in diverged if t == tool}))
            out.append(dict(label=label, n=n, tool=tool, rounds=rounds, wide=wide, fps=med([n / m[0] for m in v]),
                            rss=med([m[2] for m in v]), cpu=med([m[1] / n * 1000 for m in v]),
                            state=med([m[4] for m in v]), differed=differed))

    a = None if only_wide else Cluster()
    try:
        have = 0
        for n in ([] if only_wide else sizes):
            fill(a, lambda i: f"/scale/d{i // per}/f{i}.bin", have, n)
            have = n
            dirs = [f"/scale/d{d}" for d in range((n + per - 1) // per)]
            measure(f"{n:,} in {len(dirs):,} folder{'s' if len(dirs) > 1 else ''}", n, a, "/scale", dirs,
                    f"/scale/d{(n - 1) // per}/f{n - 1}.bin")
    finally:
        if a:
            a.stop()
    n = sizes[2]
    a = Cluster()
    try:
        fill(a, lambda i: f"/wide/f{i}.bin", 0, n)
        measure(f"{n:,} in one folder", n, a, "/wide", ["/wide"], f"/wide/f{n - 1}.bin", wide=True)
    finally:
        a.stop()
    scale_notes(out, sizes, only_wide)


def wide(rows):
    """Workload 7's one folder of 1M entries (scaled) alone."""
    scale(rows, only_wide=True)


TOOL_NAMES = {"weed": "weed filer.sync", "filer-sync": "filer-sync (log replay)",
              "filer-sync walk": "filer-sync (walk, its default first run)"}


def scale_notes(out, sizes, only_wide=False):
    """Workload 7's table, where its cost stops being flat, and two charts."""
    lines = [f"### 7. Cost as the work grows (scale{': its one folder alone, workload `wide`' if only_wide else ''})", "",
             f"Catch-up of 1 KiB files (not 4 KiB as in row 1, to save disk) in folders of 1,000, then of one folder "
             f"holding {sizes[2]:,}: sizes are 10k, 100k and 1M times BENCH_SCALE={SCALE}. A is filled once and grows: "
             f"each size adds files to it and every run replays its whole log from the start (which then holds exactly "
             f"that many creations) into a fresh target; the one-folder case is a second A. {ROUNDS} rounds (medians) "
             f"at {sizes[0]:,}, one round above; `weed filer.sync` up to {sizes[1]:,} only. State file: filer-sync's "
             "SQLite file and its -wal when the target was complete (weed keeps its checkpoint in B's KV store).", "",
             "| size | tool | rounds | files/s | peak RSS MB | CPU ms/file | state-file MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in out:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error']} | {r['rounds']} | | | | |")
            continue
        state = f"{r['state']:.3f}" if r["tool"] != "weed" else "–"
        differed = f" (target differed after a run: {r['differed']})" if r.get("differed") else ""
        lines.append(f"| {r['label']} | {TOOL_NAMES[r['tool']]}{differed} | {r['rounds']} | {r['fps']:,.0f} "
                     f"| {r['rss']:.1f} | {r['cpu']:.3f} | {state} |")
    lines.append("")
    done = [r for r in out if "error" not in r]
    lines += growth_rows(done, sizes)
    for tool in TOOL_NAMES:
        mine = [r for r in done if r["tool"] == tool]
        if len(mine) > 1:
            lines.append("- " + flat_sentence(TOOL_NAMES[tool], mine))
    spread = lambda tool: [r for r in done if r["tool"] == tool and not r["wide"]]
    for name, key, unit in (("rate", "fps", "files/s"), ("rss", "rss", "peak RSS MB")):
        series = [(TOOL_NAMES[t], [r["n"] for r in spread(t)], [r[key] for r in spread(t)]) for t in TOOL_NAMES if spread(t)]
        series += [(f"{TOOL_NAMES[r['tool']]}, one folder", [r["n"]], [r[key]], "s")
                   for r in done if r["wide"]]
        rel = chart(f"scale-{name}", f"Catch-up: {unit} against the number of files (1 KiB)", "files on A", unit,
                    series, logx=True)
        lines.append(f"- Chart: [{unit} against size]({rel})")
    NOTES.append("\n".join(lines) + "\n")


def growth_rows(done, sizes):
    """The headline's row of workload 7: peak RSS at the largest size each
    tool ran (weed's log replay at the middle one, filer-sync's walk at the
    largest, in folders of 1,000) over its own at the smallest; a table of
    its own (the scale table has other columns). Empty when a size failed."""
    def rss(tool, n):
        return next((r["rss"] for r in done if r["tool"] == tool and r["n"] == n and not r["wide"]), None)
    w = (rss("weed", sizes[1]), rss("weed", sizes[0]))
    f = (rss("filer-sync walk", sizes[2]), rss("filer-sync walk", sizes[0]))
    if None in w + f:
        return []
    gw, gf = w[0] / w[1], f[0] / f[1]
    return ["| measure | weed filer.sync | filer-sync | filer-sync / weed | target |", "|---|---:|---:|---:|---|",
            f"| 7. peak RSS growth, largest size over {sizes[0]:,} files (weed: its log replay at {sizes[1]:,}; "
            f"filer-sync: its walk at {sizes[2]:,}) | {gw:.2f} | {gf:.2f} | {gf / gw:.2f} | filer-sync <= 1.2 |",
            f"|    peak RSS MB at the largest size | {w[0]:.2f} | {f[0]:.2f} | {f[0] / w[0]:.2f} |  |", ""]


def flat_sentence(name, mine):
    """How a tool's figures at each larger size compare with its smallest
    one (files/s, CPU per file, peak RSS as ratios), and the first size at
    which one of them costs more than 20 % more (fewer files/s, more CPU per
    file, more memory): where the cost stops being flat."""
    base = mine[0]
    keys = (("files/s", "fps", -1), ("CPU ms per file", "cpu", 1), ("peak RSS", "rss", 1))
    ratio = lambda r, k: r[k] / base[k] if base[k] else float("nan")
    cost = lambda r, k, sign: ratio(r, k) ** sign  # > 1: costs more than at the smallest size
    parts = [f"at {r['label']}: " + ", ".join(f"{q} ×{ratio(r, k):.2f}" for q, k, _ in keys) for r in mine[1:]]
    worse = [(r, q, ratio(r, k)) for r in mine[1:] for q, k, sign in keys if cost(r, k, sign) > 1.2]
    better = sorted({q for r in mine[1:] for q, k, sign in keys if cost(r, k, sign) < 1 / 1.2})
    if worse:
        r, q, x = worse[0]
        where = f"the cost stops being flat first in {q}, at {r['label']} (×{x:.2f})"
        more = sorted({w[1] for w in worse} - {q})
        if more:
            where += f"; {', '.join(more)} also {'costs' if len(more) == 1 else 'cost'} more than 20 % more somewhere"
    else:
        where = "no figure costs more than 20 % more than at the smallest size: flat"
    if better:
        where += f" ({', '.join(better)} {'gets' if len(better) == 1 else 'get'} more than 20 % cheaper: fixed costs spread over more files)"
    return f"**{name}**, against {base['label']}: {'; '.join(parts)}. So {where}."


def chart(name, title, xlabel, ylabel, series, logx=False):
    """Writes charts/<run stamp>-<name>.svg from (label, xs, ys[, marker])
    series; returns its path relative to the repository (for a link in
    BENCHMARKS.md)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": name})
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {}  # a marker series takes the colour of the line its label extends
    for label, xs, ys, *marker in series:
        color = next((c for other, c in colors.items() if label.startswith(other)), None)
        line, = ax.plot(xs, ys, (marker[0] if marker else "o-"), label=label, markersize=6 if marker else 4, color=color)
        colors[label] = line.get_color()
    if logx:
        ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    rel = f"charts/{STAMP}-{name}.svg"
    os.makedirs(os.path.join(ROOT, "charts"), exist_ok=True)
    fig.savefig(os.path.join(ROOT, rel), metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return rel


def follow(rows):
    """Workload 8: filer-sync follows A for BENCH_FOLLOW_MINUTES (default 30,
    120 with BENCH_LONG=1) while one writer puts about 200 operations a
    second on A (8 in 10 create a 1 KiB file, 1 moves a live file into
    another folder, 1 deletes one). Every BENCH_FOLLOW_SAMPLE_SECS (default
    60) the sync process's RSS, open fds, threads, CPU and state file are
    sampled, and 3 probe files are written to A and timed until B has them.
    At the end B must verify equal to A."""
    import threading
    minutes = float(os.environ.get("BENCH_FOLLOW_MINUTES", "120" if os.environ.get("BENCH_LONG") else "30"))
    every = float(os.environ.get("BENCH_FOLLOW_SAMPLE_SECS", "60"))
    rate = 200
    a, b = Cluster(), Cluster()
    state = os.path.join(WORK, "follow.db")
    p = subprocess.Popen([BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--state", state],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "follow.log"), "w"),
                         env=dict(os.environ, RUST_LOG="warn"))
    stop, ops, failed = threading.Event(), [0], []
    writer = threading.Thread(target=steady_writer, args=(a, rate, stop, ops, failed))
    samples = []
    try:
        probe = Writer(a)
        probe_lag(probe, b, "/follow/probe/start.bin")  # following before the load starts
        t0 = time.monotonic()
        writer.start()
        cpu0 = process_cpu(p.pid)
        for k in range(1, max(1, round(minutes * 60 / every)) + 1):
            time.sleep(max(0, t0 + k * every - time.monotonic()))
            if p.poll() is not None or failed:
                raise RuntimeError(f"follow: sync exited with {p.returncode}" if not failed else f"writer: {failed[0]}")
            with open(f"/proc/{p.pid}/status") as f:
                status = dict(line.split(":", 1) for line in f)
            cpu = process_cpu(p.pid)
            lags = [probe_lag(probe, b, f"/follow/probe/p{k}-{j}.bin") for j in range(3)]
            s = dict(t=time.monotonic() - t0, ops=ops[0], rss=int(status["VmRSS"].split()[0]) / 1024,
                     fds=len(os.listdir(f"/proc/{p.pid}/fd")), threads=int(status["Threads"]),
                     state=state_mb(state) * 1024, lag=med(lags), cpu=(cpu - cpu0) / every * 100)
            cpu0 = cpu
            samples.append(s)
            log(f"  follow {s['t'] / 60:.1f} min: {s['ops']:,} ops, RSS {s['rss']:.1f} MB, {s['fds']} fds, "
                f"{s['threads']} threads, state {s['state']:.0f} KB, probe lag {s['lag']:.1f} ms, CPU {s['cpu']:.0f} %")
        stop.set()
        writer.join()
        reached = ops[0] / (time.monotonic() - t0)
        probe_lag(probe, b, "/follow/probe/end.bin")
        deadline = time.monotonic() + 600
        while not verified(a, b, "/follow"):
            if time.monotonic() > deadline:
                verify(a, b, "/follow")  # raises with the differences
            time.sleep(1)
        log(f"  follow: B verifies equal to A after {ops[0]:,} operations ({reached:.0f}/s)")
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        p.send_signal(signal.SIGTERM)
        p.wait()
        a.stop()
        b.stop()
    follow_notes(samples, minutes, every, rate, reached)


def steady_writer(a, rate, stop, ops, failed):
    """About `rate` operations a second on A under /follow until `stop`: in
    every 10, 8 creates of a 1 KiB file (1,000 per folder), 1 move of a live
    file into another folder, 1 delete; the count goes to ops[0]."""
    w, rnd, live, i = Writer(a), random.Random(11), [], 0
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            time.sleep(max(0, t0 + i / rate - time.monotonic()))
            if i % 10 == 4 and live:
                j = rnd.randrange(len(live))
                new = f"/follow/m{i // 10000}/f{i}.bin"
                w.req("POST", f"{new}?mv.from={live[j]}")
                live[j] = new
            elif i % 10 == 9 and live:
                j = rnd.randrange(len(live))
                live[j], live[-1] = live[-1], live[j]
                w.req("DELETE", live.pop())
            else:
                live.append(f"/follow/d{i // 1000}/f{i}.bin")
                w.put(live[-1], os.urandom(1024))
            i += 1
            ops[0] = i
    except Exception as e:  # reported by the sampling loop
        failed.append(e)


def probe_lag(w, b, path, limit=120):
    """Writes a probe file to A and returns the ms from the end of that write
    until B serves it (polled every millisecond)."""
    w.put(path, os.urandom(1024))
    t0 = time.monotonic()
    while not b.exists(path):
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"probe {path} did not reach B in {limit} s")
        time.sleep(0.001)
    return (time.monotonic() - t0) * 1000


FOLLOW_COLUMNS = (("rss", "RSS MB", "{:.1f}"), ("fds", "open fds", "{:.0f}"), ("threads", "threads", "{:.0f}"),
                  ("state", "state file KB", "{:.0f}"), ("lag", "probe lag ms", "{:.1f}"), ("cpu", "sync CPU %", "{:.1f}"))


def follow_notes(samples, minutes, every, rate, reached):
    """Workload 8's table of samples, first-to-last growth, what grows
    steadily (the last third's median above the middle third's by more than
    20 %), and two charts."""
    lines = ["### 8. A long follow", "",
             f"filer-sync follows A for {minutes:g} minute{'s' if minutes != 1 else ''} while one writer puts ~{rate} operations/s on A "
             f"({reached:.0f}/s reached; 8 in 10 create a 1 KiB file, 1 moves a live file to another folder, 1 deletes "
             f"one). A sample every {every:g} s: the sync process's RSS (VmRSS), open fds, threads, state file (SQLite "
             "and -wal), CPU over the interval, and the median lag of 3 probe files (end of the write on A until B "
             "serves the file, polled every ms). At the end B verified equal to A (`filer-sync verify`).", "",
             "| minute | operations so far | " + " | ".join(c[1] for c in FOLLOW_COLUMNS) + " |",
             "|---:|---:|" + "---:|" * len(FOLLOW_COLUMNS)]
    for s in samples:
        lines.append(f"| {s['t'] / 60:.1f} | {s['ops']:,} | " +
                     " | ".join(fmt.format(s[k]) for k, _, fmt in FOLLOW_COLUMNS) + " |")
    lines.append("")
    first, last, third = samples[0], samples[-1], len(samples) // 3
    growth = ", ".join(f"{name} ×{last[k] / first[k]:.2f}" if first[k] else f"{name} {first[k]:g} → {last[k]:g}"
                       for k, name, _ in FOLLOW_COLUMNS)
    lines.append(f"- First sample to last: {growth}.")
    if third:
        grows = []
        for k, name, _ in FOLLOW_COLUMNS:
            mid, end = med([s[k] for s in samples[third:2 * third]]), med([s[k] for s in samples[2 * third:]])
            if mid and end / mid > 1.2:
                grows.append(f"{name} (last third's median {end:.1f} against the middle third's {mid:.1f}, "
                             f"+{(end / mid - 1) * 100:.0f} %)")
        lines.append("- Grows steadily: " + "; ".join(grows) + "." if grows else
                     "- Nothing grows steadily: no last third's median is above the middle third's by more than 20 %.")
    mins = [s["t"] / 60 for s in samples]
    for name, key, unit in (("lag", "lag", "probe lag ms (median of 3)"), ("rss", "rss", "RSS MB")):
        rel = chart(f"follow-{name}", f"Following A at ~{rate} operations/s: {unit}", "minutes", unit,
                    [("filer-sync", mins, [s[key] for s in samples])])
        lines.append(f"- Chart: [{unit} over time]({rel})")
    NOTES.append("\n".join(lines) + "\n")


def wait_for(cond, p, what, limit=600):
    t0 = time.monotonic()
    while not cond():
        if p.poll() is not None:
            raise RuntimeError(f"exited with {p.returncode} before {what}")
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"no {what} in {limit} s")
        time.sleep(0.02)


def created_on(cluster, folder):
    """{name: ns} of the first event in the cluster's metadata log that shows
    each entry of `folder` (its creation), by the filer's clock."""
    text = subprocess.run(
        [WEED, "filer.meta.tail", f"-filer={cluster.addr}", f"-pathPrefix={folder}/", "-timeAgo=1h", "-untilTimeAgo=1ms"],
        capture_output=True, text=True, timeout=120).stdout
    decoder, i, first = json.JSONDecoder(), 0, {}
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return first
        event, i = decoder.raw_decode(text, i)
        entry = (event.get("eventNotification") or {}).get("newEntry") or {}
        if event.get("directory") == folder and entry.get("name"):
            first.setdefault(entry["name"], int(event["tsNs"]))


def shards(rows):
    """Workload 9 (see the module's note)."""
    # A catch-up of about 25 s on one core: the shares settle in 3-5 s
    # (TTL 3 s), which a catch-up of 10,000 files (2.5 s) ended before.
    n_dirs, n = 64, max(64, int(100_000 * SCALE))
    a = Cluster()
    try:
        w = Writer(a)
        for i in range(n):
            w.put(f"/sh/t{i % n_dirs}/f{i}.bin", os.urandom(4096))
        last = f"/sh/t{(n - 1) % n_dirs}/f{n - 1}.bin"
        dirs = [f"/sh/t{d}" for d in range(n_dirs)]
        notes = []
        for k in (1, 2, 4):
            runs = []
            for rnd in range(ROUNDS):
                b = Cluster()
                try:
                    runs.append(shards_once(a, b, k, rnd, dirs, n, last))
                finally:
                    b.stop()
                wall, cpu, split = runs[-1]
                log(f"  shards {k} instance(s) round {rnd + 1}: {wall:.2f} s, {cpu:.2f} CPU s, split {split}")
            fs, ms = med([n / r[0] for r in runs]), med([r[1] / n * 1000 for r in runs])
            rows.append((f"9. one link, {n:,} x 4 KiB, --ha --shards 8 on {k} instance(s): files/s", fs, fs, ""))
            rows.append(("   total sync CPU ms per file", ms, ms, ""))
            shares = [sorted(r[2], reverse=True) for r in runs]
            notes.append(f"- {k} instance(s): shares of the applied events per round (largest first): "
                         + "; ".join(" / ".join(f"{x:.0%}" for x in sh) for sh in shares) + ".")
    finally:
        a.stop()
    NOTES.append("### 9. One link on 1, 2 and 4 instances (`--ha --shards 8`)\n\n"
                 "Every instance pinned to core 0 and both clusters' servers to core 1 (`taskset`): the "
                 "instances of a run share one core whatever their number, so files/s shows the cost of "
                 "coordination, not a speed-up (weed has no such mode: both columns are filer-sync's). Each "
                 "instance's share is its part of the events applied (its log's windows).\n\n"
                 + "\n".join(notes) + "\n")


def shards_once(a, b, k, rnd, dirs, expect, last):
    """k instances catch b up from the start of A's log; (wall s from the
    first start until B is complete, CPU s of all instances, each one's share
    of the applied events)."""
    for c in (a, b):
        for pid in weed_pids(c):
            subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True)
    procs, logs = [], []
    t0 = time.monotonic()
    try:
        for i in range(k):
            state = os.path.join(WORK, f"shards-{k}-{rnd}-{i}.db")
            logs.append(state + ".log")
            cmd = ["taskset", "-c", "0", BIN, "sync", "-a", a.addr, "-b", b.addr, "--active-passive",
                   "--bootstrap", "log", "--a-path", "/sh", "--b-path", "/sh", "--ha", "--ha-ttl-secs", "3",
                   "--shards", "8", "--state", state]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(logs[-1], "w"),
                                          env=dict(os.environ, RUST_LOG="info")))
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a shards instance exited early with {p.returncode}")
            if time.monotonic() - t0 > 1800:
                raise RuntimeError("the shards instances did not finish in 30 min")
            if b.exists(last):
                mark = (time.monotonic() - t0, sum(process_cpu(p.pid) for p in procs))
                if count_files(b, dirs) >= expect:
                    break
            time.sleep(0.05)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
    verify(a, b, "/sh")
    applied = [sum(int(l.split("ns, ")[1].split(" events")[0]) for l in open(f, errors="replace")
                   if "ha window applied" in l) for f in logs]
    total = sum(applied) or 1
    return mark[0], mark[1], [x / total for x in applied]


def weed_pids(cluster):
    """The pids of a cluster's weed processes (master, volume, filer)."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            if cmd[0].endswith(b"weed") and any(cluster.dir.encode() + b"/" in c for c in cmd):
                out.append(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    return out


def main():
    if sys.argv[1:] == ["headline"]:
        # Rewrites BENCHMARKS.md's headline from the runs it lists, running nothing.
        path = os.path.join(ROOT, "BENCHMARKS.md")
        text = page(history(open(path).read()))
        open(path, "w").write(text)
        return
    which = sys.argv[1:] or ["small", "large", "mixed", "lag", "lag_load", "rescan", "ceiling"]
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", STARTED)
    for w in which:
        log(f"== workload {w}")
        globals()[w](rows)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"## Run of {started}",
        "",
        f"`make bench` (= `python3 scripts/bench.py {' '.join(which)}`), BENCH_SCALE={SCALE}, {ROUNDS} rounds, "
        f"medians; machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB; "
        f"weed {subprocess.check_output([WEED, 'version'], text=True).split()[2]}, filer-sync release build. "
        "Both tools catch a fresh target up from the start of A's log; the target is verified after every run.",
        "",
    ]
    if rows:
        lines += ["| measure | weed filer.sync | filer-sync | filer-sync / weed | target |", "|---|---:|---:|---:|---|"]
    for name, w, f, target in rows:
        ratio = f / w if w else float("nan")
        lines.append(f"| {name} | {num(w)} | {num(f)} | {ratio:.2f} | {target} |")
    text = "\n".join(lines).rstrip() + "\n" + "".join("\n" + note for note in NOTES)
    print(text)
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else ""
    runs = text + "\n" + history(old)
    open(path, "w").write(page(runs))
    shutil.rmtree(WORK, ignore_errors=True)


# The headline of BENCHMARKS.md: (label, row, sub-row, target). `row` matches
# a measure's name in a run's table, `sub-row` (or None) one of the indented
# rows below it. A target is "ratio OP X" (filer-sync / weed), "filer-sync OP
# X", or "" (reported, no target); `p99 <= 2 x p50` compares with the lag's
# p50 of the same run.
HEADLINE = [
    ("Small files, log replay: files/s", r"^1\. catch-up [\d,]+ x 4 KiB: files/s", None, "ratio >= 2.0"),
    ("↳ sync CPU ms per file", r"^1\. catch-up", r"CPU ms per file \(sync process\)", "filer-sync <= 0.09"),
    ("↳ servers' CPU ms per file", r"^1\. catch-up", r"CPU ms per file \(both clusters", ""),
    ("↳ peak RSS MB", r"^1\. catch-up", r"peak RSS MB", ""),
    ("Small files, first run by a walk (the default): files/s", r"^1b\. first run by a walk", None, "ratio >= 2.0"),
    ("↳ sync CPU ms per file", r"^1b\. first run by a walk", r"CPU ms per file \(sync process\)",
     "filer-sync <= the log replay's"),
    ("Share of the target's CreateEntry ceiling (small files)", r"^5b\. limit", r"small-file rate",
     "filer-sync >= 0.8"),
    ("Share of the target's StreamMutateEntry ceiling (small files)", r"^5c\. limit", r"small-file rate", ""),
    ("Large files (20 x 50 MiB): MB/s", r"^2\. catch-up", None, "ratio >= 1.3"),
    ("↳ peak RSS MB", r"^2\. catch-up", r"peak RSS MB", "ratio <= 0.125"),
    ("Mixed workload: events/s", r"^3\. mixed workload", None, "ratio >= 2.0"),
    ("Live lag at 50 files/s, p50 ms", r"^4\. live lag at 50 files/s: p50", None, "ratio <= 0.5"),
    ("Live lag at 50 files/s, p99 ms", r"^4\. live lag at 50 files/s: p99", None, "p99 <= 2 x p50"),
    ("Rescan of two equal trees: files/s", r"^6\. rescan", None, ""),
    ("Walk memory, 10k to 1M files: peak RSS growth (weed: log replay to 100k)", r"^7\. peak RSS growth", None,
     "filer-sync <= 1.2"),
    ("↳ peak RSS MB at the largest size", r"^7\. peak RSS growth", r"peak RSS MB", ""),
]

REPRODUCE = """## How to reproduce

- `make bench` builds the release binary, installs weed 4.48 and the Python parts, and runs workloads 1-6
  (about 40 minutes on 2 cores); `make bench BENCH_WORKLOADS="small ceiling"` runs the named ones,
  `BENCH_SCALE=0.1` a tenth of the data (such runs are listed below but never make the headline),
  `BENCH_ROUNDS=N` more rounds. Every run starts its own clusters on 127.0.0.1 and verifies each target.
- What each workload does: the docstring of `scripts/bench.py`.
- A change is judged by `python3 scripts/bench_ab.py ROUNDS BEFORE AFTER [log|walk]`: interleaved rounds of
  row 1's catch-up by two binaries in one run, the sync's and the servers' CPU per file and files/s (this
  machine's speed drifts by 1.5 x between runs).
- The flame graphs in `charts/` are `perf record -F 999 --call-graph dwarf -- target/release/filer-sync sync
  --once ...` on row 1's catch-up, folded and drawn by inferno (`cargo install inferno`):
  `perf script | inferno-collapse-perf | inferno-flamegraph > charts/NAME.svg`.
"""


def history(old):
    """The runs of an existing BENCHMARKS.md, newest first (what follows its
    headline and reproduction sections)."""
    at = old.find("## Run of ")
    return old[at:] if at >= 0 else ""


def runs_of(text):
    """(date, full_size, [(name, parent, weed, filer-sync)]) per run in `text`,
    newest first. Indented rows get the row above them as `parent`."""
    import re
    out = []
    for part in re.split(r"(?m)^## Run of ", text)[1:]:
        date = part.split("\n", 1)[0].strip()
        full = "BENCH_SCALE=1.0" in part.split("\n|", 1)[0] or "BENCH_SCALE" not in part.split("\n|", 1)[0]
        rows, parent = [], None
        for line in part.splitlines():
            cells = [c for c in line.split("|")[1:-1]]
            if len(cells) != 5 or not cells[0].strip() or cells[0].strip() in ("measure", "---"):
                continue
            try:
                w, f, ratio = (float(c.strip().replace(",", "")) for c in cells[1:4])
            except ValueError:
                continue
            name = cells[0].rstrip()
            if name.startswith("  "):
                rows.append((name.strip(), parent, w, f, ratio))
            else:
                parent = name.strip()
                rows.append((parent, None, w, f, ratio))
        out.append((date, full, rows))
    return out


def met(target, f, ratio, run_rows, found):
    """Whether filer-sync's figure `f` (and `ratio`, the run's filer-sync /
    weed) meets `target` ("" when there is none)."""
    if not target:
        return ""
    if target == "p99 <= 2 x p50":
        p50 = next((r[3] for r in run_rows if r[0].startswith("4. live lag at 50 files/s: p50")), None)
        ok = p50 is not None and f <= 2 * p50
    elif target == "filer-sync <= the log replay's":
        replay = found.get((r"^1\. catch-up", r"CPU ms per file \(sync process\)"))
        ok = replay is not None and f <= replay
    else:
        who, op, x = target.split()
        v = ratio if who == "ratio" else f
        ok = v >= float(x) if op == ">=" else v <= float(x)
    return "yes" if ok else "**no**"


def headline(runs_text):
    """The headline table: each HEADLINE measure's newest full-size figure."""
    import re
    runs = [r for r in runs_of(runs_text) if r[1]]
    lines = ["| measure | weed filer.sync | filer-sync | filer-sync / weed | target | met | run |",
             "|---|---:|---:|---:|---|---|---|"]
    found = {}
    for label, row, sub, target in HEADLINE:
        hit = None
        for date, _, rows in runs:
            for name, parent, w, f, ratio in rows:
                if sub is None and parent is None and re.search(row, name):
                    hit = (date, rows, w, f, ratio)
                elif sub is not None and parent is not None and re.search(row, parent) and re.search(sub, name):
                    hit = (date, rows, w, f, ratio)
                if hit:
                    break
            if hit:
                break
        if not hit:
            lines.append(f"| {label} | – | – | – | {target} | not measured yet | |")
            continue
        date, rows, w, f, ratio = hit
        found[(row, sub)] = f
        anchor = "run-of-" + re.sub(r"[^a-z0-9 -]", "", date.lower()).replace(" ", "-")
        lines.append(f"| {label} | {num(w)} | {num(f)} | {ratio:.2f} | {target} | {met(target, f, ratio, rows, found)} "
                     f"| [{date}](#{anchor}) |")
    return "\n".join(lines) + "\n"


def page(runs_text):
    """BENCHMARKS.md: the headline, how to reproduce, then every run."""
    return ("# Benchmarks\n\n"
            "filer-sync against `weed filer.sync` (SeaweedFS 4.48), both catching up the same data in the same "
            "run on the same machine; ratios are filer-sync / weed. The table is made by `make bench` from the "
            "newest full-size run of each measure (the run it came from is linked); the runs follow, newest "
            "first.\n\n## Headline\n\n" + headline(runs_text) + "\n" + REPRODUCE + "\n## Runs, newest first\n\n"
            + runs_text)


if __name__ == "__main__":
    main()
