"""Owns the seeded two-way race ("No silent loss", part 5): one writer per
cluster works at once on the same small namespace — two buckets (one
versioned) of 8 keys, and 5 folder names below /shared — with S3 puts, tag
changes, copies and deletes through each cluster's gateway and file puts,
folder moves and recursive folder deletes through its filer, while one
long-running active-active `filer-sync sync` is killed with SIGKILL at random
moments and restarted on the same state file. Once the writers stop and
sentinels written on each side after them have crossed (twice), both filer
trees (/ without /topics and /etc: type, size, mtime ns, mode, mime,
symlink, extended attributes, content hash) and both S3 views must be equal.

Seeds: S3_RANDOM_SEEDS=1,2,3 replays those seeds, otherwise S3_RANDOM_RUNS
(default 3) random ones. A seed fixes each writer's sequence of operations
and the kill schedule (the interleaving with the sync remains the machine's).
S3_RANDOM_OPS sets the operations per writer (90); S3_RANDOM_RESCAN_SECS the
sync's rescan period (3; 0 for none, to find what the log alone misses).
S3_RANDOM_REPORT=FILE
appends a markdown row per seed and a total (scripts/chaos.sh).

test_random_two_way_sharded runs the same race with the sync as
`--ha --shards 4` instances, two per link, on two links (/buckets and
/shared: with one link on /, both would fall in one shard, the first path
component being the shard's key); each SIGKILL takes one instance down in
turn, its link's other instance taking its shards over. Its seeds:
S3_RANDOM_SHARDED_SEEDS, otherwise S3_RANDOM_SHARDED_RUNS (default 0; `make test` names two seeds, `make chaos` runs 5)
random ones."""

import collections
import json
import os
import random
import threading
import time

import pytest

import harness

OPS_PER_WRITER = int(os.environ.get("S3_RANDOM_OPS", "90"))
RESCAN_SECS = os.environ.get("S3_RANDOM_RESCAN_SECS", "3")
KEYS = ["k0", "k1.txt", "dir/k2.txt", "dir/k3", "dir/sub/k4.bin", "é k5.txt", "dir/sub/k6",
        "k7 +%.txt"]
FOLDERS = ["f0", "f1", "f2", "f3", "f4"]  # f0..f2 exist at the start
FILES = ["x0", "x1", "sub/x2"]
SIZES = [0, 1, 17, 100, 700, 3000, 12000]
CONTENT_TYPES = ["text/plain", "application/json", "application/octet-stream", "image/png",
                 "text/csv; charset=utf-8"]
EXCLUDE = ("/topics", "/etc")
# What an operation is picked by: (kind, upper bound of its share of [0, 1)).
MIX = [("s3 put", 0.26), ("s3 tag", 0.38), ("s3 copy", 0.48), ("s3 delete", 0.60),
       ("filer put", 0.80), ("folder move", 0.92), ("folder delete", 1.0)]


def _seeds(seeds="S3_RANDOM_SEEDS", runs="S3_RANDOM_RUNS", default_runs="3"):
    given = os.environ.get(seeds, "").strip()
    if given:
        return [int(s) for s in given.split(",") if s.strip()]
    runs = int(os.environ.get(runs, default_runs))
    return [random.SystemRandom().randrange(1, 10**9) for _ in range(runs)]


SEEDS = _seeds()
SHARDED_SEEDS = _seeds("S3_RANDOM_SHARDED_SEEDS", "S3_RANDOM_SHARDED_RUNS", "0")
_results = []  # one dict per finished seed, for the report's total


class Namespace:
    """A seed's own buckets and folder (seeds share the module's clusters)."""

    def __init__(self, seed):
        self.plain, self.versioned = f"rt{seed}-p", f"rt{seed}-v"
        self.buckets = [self.plain, self.versioned]
        self.shared = f"/shared/r{seed}"
        self.roots = [f"/buckets/{b}" for b in self.buckets] + [self.shared]


class Writer(threading.Thread):
    """One cluster's writer: OPS_PER_WRITER operations drawn from its own
    seeded generator, whatever their outcome (a move of a folder already
    gone is refused, and counted as such); every one is journaled."""

    def __init__(self, side, cluster, ns, seed, stop):
        super().__init__(name=f"writer-{side}", daemon=True)
        self.side, self.c, self.ns, self.stop = side, cluster, ns, stop
        self.rng = random.Random(f"{seed}/{side}")
        self.ops, self.refused = collections.Counter(), collections.Counter()
        self.done, self.journal = 0, []

    def plan(self, i):
        """The i-th operation: (kind, the filer paths it touches, the call:
        an S3 request raises when refused, a filer request returns (status,
        body)). Drawn before it runs, from the generator only, so that a
        seed replays the same requests."""
        r, s3, c, ns = self.rng, self.c.s3, self.c, self.ns
        roll = r.random()
        kind = next(k for k, upper in MIX if roll < upper)
        mark = f"{self.side}{i}"
        if kind.startswith("s3"):
            bucket, key = r.choice(ns.buckets), r.choice(KEYS)
            path = f"/buckets/{bucket}/{key}"
        if kind == "s3 put":
            body, ctype = r.randbytes(r.choice(SIZES)), r.choice(CONTENT_TYPES)
            extra = {"Metadata": {"writer": mark}} if r.random() < 0.7 else {}
            if r.random() < 0.3:
                extra["Tagging"] = f"from={mark}"
            return kind, [path], lambda: s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=ctype, **extra)
        if kind == "s3 tag":
            tags = [{"Key": "side", "Value": self.side}, {"Key": "n", "Value": str(i)}]
            tags = tags[:r.randint(1, 2)]
            return kind, [path], lambda: s3.put_object_tagging(
                Bucket=bucket, Key=key, Tagging={"TagSet": tags})
        if kind == "s3 copy":
            src_bucket, src_key = r.choice(ns.buckets), r.choice(KEYS)
            extra = {}
            if r.random() < 0.5:
                extra = {"MetadataDirective": "REPLACE", "ContentType": r.choice(CONTENT_TYPES),
                         "Metadata": {"copied-by": mark}}
            return kind, [f"/buckets/{src_bucket}/{src_key}", path], lambda: s3.copy_object(
                Bucket=bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": src_key}, **extra)
        if kind == "s3 delete":
            return kind, [path], lambda: s3.delete_object(Bucket=bucket, Key=key)
        folder = f"{ns.shared}/{r.choice(FOLDERS)}"
        if kind == "filer put":
            path = f"{folder}/{r.choice(FILES)}"
            body, ctype = r.randbytes(r.choice(SIZES)), r.choice(CONTENT_TYPES)
            return kind, [path], lambda: c.put_file(path, body, ctype, {"Seaweed-Writer": mark})
        if kind == "folder move":
            dst = f"{ns.shared}/{r.choice([f for f in FOLDERS if f != folder.rsplit('/', 1)[1]])}"
            if r.random() < 0.5:
                dst += "/g"  # into another folder (made when missing)
            return kind, [folder, dst], lambda: c.move(folder, dst)
        if r.random() < 0.25:
            folder += "/sub"
        return kind, [folder], lambda: c.delete_tree(folder)

    def run(self):
        for i in range(OPS_PER_WRITER):
            if self.stop.is_set():
                return
            kind, paths, call = self.plan(i)
            pause = self.rng.uniform(0, 0.1)
            started = time.time()
            try:
                answer = call()
                outcome = "done"
                if isinstance(answer, tuple) and answer[0] >= 300:
                    outcome = f"refused: {answer[0]} {answer[1][:200].decode(errors='replace')}"
            except Exception as e:  # a refused S3 request: counted, never fatal
                outcome = f"refused: {type(e).__name__}: {str(e)[:160]}"
            self.ops[kind] += 1
            if outcome != "done":
                self.refused[kind] += 1
            self.journal.append((started, time.time(), self.side, i, kind, paths, outcome))
            self.done += 1
            time.sleep(pause)


def _setup(a, ns):
    """The seed's starting point, written on A: both buckets (one versioned)
    with half of the keys, folders f0..f2 with two files each."""
    a.s3.create_bucket(Bucket=ns.plain)
    a.s3.create_bucket(Bucket=ns.versioned)
    a.s3.put_bucket_versioning(Bucket=ns.versioned,
                               VersioningConfiguration={"Status": "Enabled"})
    for bucket in ns.buckets:
        for key in KEYS[::2]:
            a.s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), ContentType="text/plain")
    for folder in FOLDERS[:3]:
        for name in ("x0", "sub/x2"):
            assert a.put_file(f"{ns.shared}/{folder}/{name}", name.encode(), "text/plain")[0] == 201


def _crossed(a, b, sync, ns, seed, timeout=300):
    """Waits for facts, not time: a sentinel written on each side after
    everything else has arrived on the other, twice (the first may share a
    window with changes still being applied). Restarts a sync that exited."""
    for round_ in (1, 2):
        token = f"round {round_} {time.time_ns()}".encode()
        for side, c in (("a", a), ("b", b)):
            assert c.put_file(f"{ns.shared}/.sentinel-{side}", token, "text/plain")[0] == 201
        deadline = time.time() + timeout
        while not (b.read(f"{ns.shared}/.sentinel-a") == token
                   and a.read(f"{ns.shared}/.sentinel-b") == token):
            sync.ensure_running()
            assert time.time() < deadline, (
                f"seed {seed}: sentinel round {round_} did not cross within {timeout} s "
                f"(sync log {sync.log}); replay with S3_RANDOM_SEEDS={seed}")
            time.sleep(0.2)


def _tree_diff(a, b, unsynced=(), settle=10.0):
    """(A's tree, the differing paths but `unsynced`); a difference is
    looked at again for `settle` seconds (both sides' sentinels have crossed
    by now, so a difference that stays is a divergence)."""
    deadline = time.time() + settle
    while True:
        ta, tb = a.tree("/", EXCLUDE), b.tree("/", EXCLUDE)
        diffs = {p: d for p, d in harness.tree_diff(ta, tb).items() if p not in unsynced}
        if not diffs or time.time() > deadline:
            return ta, diffs
        time.sleep(2)


def _touches(op_paths, path):
    """An operation on `path` (or on the S3 key whose versions folder it is
    or is in), on a folder above it, or on what is directly inside it."""
    return any(q == path or path.startswith(q + "/") or q.rsplit("/", 1)[0] == path
               for p in op_paths for q in (p, p + ".versions"))


def _diagnosis(a, b, diffs, journal, sync_log, old=(), limit=8):
    """For each differing path (those in `old`, different before the race
    already, last): both filers' entries (?metadata=true), the operations
    that touched it, a folder above it or an entry right inside it, and the
    sync log's lines naming it."""
    def entry(c, path):
        try:
            e = c.entry(path)
        except Exception as err:
            return f"({err})"
        short = {k: e.get(k) for k in ("Mtime", "Crtime", "Mode", "FileSize", "Mime", "Md5")}
        short["Extended"] = {k: harness.readable(v) for k, v in (e.get("Extended") or {}).items()}
        short["chunks"] = [c.get("file_id") for c in e.get("chunks") or []]
        return json.dumps(short, sort_keys=True, ensure_ascii=False)
    log = open(sync_log, errors="replace").read().splitlines()
    out = []
    for path in sorted(diffs, key=lambda p: p in old)[:limit]:
        out.append(f"--- {diffs[path]}")
        out.append(f"  A ?metadata=true: {entry(a, path)}")
        out.append(f"  B ?metadata=true: {entry(b, path)}")
        touching = [j for j in journal if _touches(j[5], path)]
        for t0, t1, side, i, kind, paths, outcome in touching[-25:]:
            out.append(f"  op {harness.clock(t0)}+{(t1 - t0) * 1000:.0f}ms {side}{i} {kind} "
                       f"{paths}: {outcome}")
        named = [line for line in log if path in line][-15:]
        out += [f"  log: {line[:400]}" for line in named]
    return "\n".join(out)


def _cleanup(a, b, sync, ns, seed, timeout=120):
    """Deletes the seed's buckets (their collections with them) and folder on
    A and waits until both clusters lack them: later seeds then start from
    clusters that hold only what is already compared equal."""
    for root in ns.roots:
        assert a.delete_tree(root)[0] < 300, f"seed {seed}: deleting {root} on A"

    def left(c):
        return [r for r in ns.roots if c.filer_call("GET", r, query={"metadata": "true"})[0] != 404]
    deadline = time.time() + timeout
    while left(a) or left(b):
        sync.ensure_running()
        assert time.time() < deadline, (
            f"seed {seed}: the namespace's delete did not reach B within {timeout} s: {left(b)}")
        time.sleep(0.2)


def _journal(writers, path):
    """Both writers' operations in the order they started, also into `path`."""
    journal = sorted(j for w in writers for j in w.journal)
    with open(path, "w") as f:
        for t0, t1, side, i, kind, paths, outcome in journal:
            f.write(f"{t0:.3f} {t1:.3f} {side}{i} {kind} {paths}: {outcome}\n")
    return journal


def _report(row):
    """Appends the seed's figures to S3_RANDOM_REPORT (markdown rows)."""
    path = os.environ.get("S3_RANDOM_REPORT")
    if not path:
        return
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write("| seed | operations (refused by the servers) | by kind (refused) "
                    "| SIGKILLs of the sync | sync exits on its own | events applied "
                    "| conflicts ledgered | events failed for good | entries compared "
                    "| S3 objects and versions compared | divergences | seconds |\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        f.write(row + "\n")


@pytest.fixture(scope="session")
def sync_bin():
    """The sync binary of this session: a copy, immune to rebuilds meanwhile."""
    return harness.frozen_sync_bin()


@pytest.fixture(scope="module", autouse=True)
def total():
    yield
    if _results and os.environ.get("S3_RANDOM_REPORT"):
        s = {k: sum(r[k] for r in _results) for k in
             ("ops", "refused", "kills", "exits", "events", "conflicts", "failures", "entries",
              "objects", "divergences", "seconds")}
        _report(f"| all {len(_results)} seeds | {s['ops']} ({s['refused']}) | | {s['kills']} "
                f"| {s['exits']} | {s['events']} | {s['conflicts']} | {s['failures']} "
                f"| {s['entries']} | {s['objects']} | {s['divergences']} | {s['seconds']:.0f} |")


def _figures(writers, sync, directions, views, differences):
    """A seed's figures: operations (refused) in all and by kind, kills,
    exits, what the state file counted, what was compared, divergences."""
    (ta, va), (diffs, view_lines) = views, differences
    by_kind, refused = collections.Counter(), collections.Counter()
    for w in writers:
        by_kind.update(w.ops)
        refused.update(w.refused)
    total = lambda key: sum(d[key] for d in directions)  # noqa: E731
    return {
        "ops": sum(by_kind.values()), "refused": sum(refused.values()),
        "kinds": ", ".join(f"{k} {by_kind[k]} ({refused[k]})" for k, _ in MIX),
        "kills": sync.kills, "exits": len(sync.exits), "events": total("events_applied"),
        "conflicts": total("conflicts"), "failures": total("failures"), "entries": len(ta),
        "objects": sum(1 for v in va.values() if isinstance(v, dict) for k in v
                       if k.startswith(("key ", "version ", "delete marker "))),
        "divergences": len(diffs) + len(view_lines)}


def _kill_schedule(seed):
    """2 or 3 SIGKILLs: when the writers are that far through their
    operations (8-92 %), the pause before the restart, and how long the
    restarted sync runs at least before the next kill."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(0.08, 0.92) for _ in range(rng.choice([2, 3])))
    return [(p, rng.uniform(0.0, 1.0), rng.uniform(0.3, 1.0)) for p in points]


def _race(writers, sync, schedule):
    """Runs the writers to their end while the sync is killed on schedule
    (and restarted when it exits on its own)."""
    total = OPS_PER_WRITER * len(writers)
    alive = lambda: any(w.is_alive() for w in writers)  # noqa: E731
    for w in writers:
        w.start()
    run_started, min_life = time.time(), 0.0
    for point, gap, life in schedule:
        while alive() and (sum(w.done for w in writers) < point * total
                           or time.time() - run_started < min_life):
            sync.ensure_running()
            time.sleep(0.02)
        if not alive():
            break
        sync.kill()
        time.sleep(gap)
        sync.start()
        run_started, min_life = time.time(), life
    while alive():
        sync.ensure_running()
        time.sleep(0.05)


@pytest.mark.parametrize("pair", ["active-active"], indirect=True)
@pytest.mark.parametrize("seed", SEEDS, ids=str)
def test_random_two_way(pair, seed, sync_bin, tmp_path, capsys):
    _race_and_compare(pair, seed, sync_bin, tmp_path, capsys, harness.LongSync, "S3_RANDOM_SEEDS")


@pytest.mark.parametrize("pair", ["active-active"], indirect=True)
@pytest.mark.parametrize("seed", SHARDED_SEEDS, ids=str)
def test_random_two_way_sharded(pair, seed, sync_bin, tmp_path, capsys):
    for c in (pair.a, pair.b):
        for folder in ("/buckets", "/shared"):
            c.mkdir(folder)
            assert c.filer_call("GET", folder, query={"metadata": "true"})[0] == 200, folder
    # A link never writes its folder's own entry (the target's root): the
    # two links' folders keep each cluster's own mtime.
    _race_and_compare(pair, seed, sync_bin, tmp_path, capsys, harness.ShardedSync,
                      "S3_RANDOM_SHARDED_SEEDS", unsynced=("/buckets", "/shared"))


def _race_and_compare(pair, seed, sync_bin, tmp_path, capsys, kind, replay, unsynced=()):
    """One seed's race with the sync run as `kind` (harness.LongSync, or
    ShardedSync's instances), then the comparison (but for the entries of
    `unsynced`, which no link writes)."""
    def say(line):
        with capsys.disabled():
            print(f"\nS3 RANDOM{' sharded' if replay != 'S3_RANDOM_SEEDS' else ''} seed {seed}: "
                  f"{line}", flush=True)

    say(f"start (replay: {replay}={seed})")
    started = time.time()
    a, b, ns = pair.a, pair.b, Namespace(seed)
    sync = kind(sync_bin, a, b, str(tmp_path / "state.db"),
                str(tmp_path / f"sync-{seed}.log"),
                # A rescan every few seconds runs among the writes:
                # it must never put back a version a writer replaced.
                ["--a-debug", "--b-debug", "--rescan-secs", RESCAN_SECS])
    stop = threading.Event()
    writers = [Writer("A", a, ns, seed, stop), Writer("B", b, ns, seed, stop)]
    journal_file = tmp_path / f"ops-{seed}.log"
    where = (f"seed {seed} (replay: {replay}={seed}); sync log {sync.log}; "
             f"operations {journal_file}")
    passed = False
    try:
        sync.start()
        _setup(a, ns)
        _crossed(a, b, sync, ns, seed)
        harness.wait_until(f"B's gateway knowing the buckets of seed {seed}", lambda: (
            b.s3.get_bucket_versioning(Bucket=ns.versioned).get("Status") == "Enabled"
            and b.s3.head_bucket(Bucket=ns.plain)), timeout=60)
        # Differences before any race (the first run's walk decides them).
        before = harness.tree_diff(a.tree("/", EXCLUDE), b.tree("/", EXCLUDE))

        _race(writers, sync, _kill_schedule(seed))
        writes_done = time.time()
        sync.ensure_running()
        _crossed(a, b, sync, ns, seed)
        settled = time.time()
        ta, diffs = _tree_diff(a, b, unsynced)
        buckets = sorted({x["Name"] for c in (a, b) for x in c.s3.list_buckets()["Buckets"]})
        va, view_lines = harness.view_diff(a, b, buckets)

        journal = _journal(writers, journal_file)
        directions = sync.status()
        old = [p for p in diffs if before.get(p) == diffs[p]]
        fig = _figures(writers, sync, directions, (ta, va), (diffs, view_lines))
        fig["seconds"] = time.time() - started
        _results.append(fig)
        say(f"{fig['ops']} operations ({fig['refused']} refused): {fig['kinds']}; "
            f"{sync.kills} SIGKILLs, {fig['exits']} exits on its own {sync.exits}; "
            f"{fig['events']} events applied, {fig['conflicts']} conflicts, "
            f"{fig['failures']} failed for good; writes {writes_done - started:.0f} s, "
            f"settled in {settled - writes_done:.1f} s; {fig['entries']} entries and "
            f"{fig['objects']} S3 objects/versions compared: {fig['divergences']} divergences "
            f"({len(diffs)} in the trees, {len(old)} of them there before the writers "
            f"started; {len(view_lines)} in the S3 views)")
        _report(f"| {seed} | {fig['ops']} ({fig['refused']}) | {fig['kinds']} | {fig['kills']} "
                f"| {fig['exits']} | {fig['events']} | {fig['conflicts']} | {fig['failures']} "
                f"| {fig['entries']} | {fig['objects']} | {fig['divergences']} "
                f"| {fig['seconds']:.0f} |")

        ledger = "".join(f"\n  failed for good: {f['path']}: {f['error'][:300]}"
                         for d in directions for f in d["recent_failures"])
        assert not diffs, (
            f"{where}: the filer trees differ at {len(diffs)} paths"
            + (f" ({len(old)} of them different already before the writers started)"
               if old else "") + ":\n"
            + "\n".join(diffs[p] + (" [before the writers]" if p in old else "")
                        for p in list(diffs)[:30])
            + "\n" + ledger + "\n\n" + _diagnosis(a, b, diffs, journal, sync.log, old))
        assert not view_lines, (f"{where}: the S3 views differ ({len(view_lines)}):\n"
                                + "\n".join(view_lines[:40]))
        assert fig["failures"] == 0, f"{where}: {fig['failures']} events failed for good:{ledger}"
        _cleanup(a, b, sync, ns, seed)
        passed = True
    finally:
        stop.set()
        for w in writers:
            if w.is_alive():
                w.join(60)
        sync.stop()
        _journal(writers, journal_file)
        if not passed:
            # What differs is in the failure message; the next seed starts
            # clean (and the buckets' volumes are freed).
            for c in (a, b):
                for root in ns.roots:
                    c.delete_tree(root)
            say(f"FAILED: {where}")
