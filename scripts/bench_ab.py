#!/usr/bin/env python3
"""Same-run A/B of two filer-sync binaries on row 1's catch-up.

    python3 scripts/bench_ab.py ROUNDS BIN_A BIN_B [log|walk]

One source cluster gets 10,000 files of 4 KiB in 100 folders; each round
starts a fresh target per binary, in alternating order, and times
`sync --active-passive --once` (`--bootstrap log` for "log", the default walk
for "walk") under `perf stat -e task-clock`. Prints each round and the
medians: the sync's CPU ms per file, both clusters' servers' CPU ms per
file (from /proc, as `make bench` reports them) and files/s. On a noisy machine, a
change is judged by such interleaved rounds, never by two `make bench` runs
at different times. Needs `perf` (apt linux-perf) and what `make bench`
installs.
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import Cluster, Writer, count_files  # noqa: E402

N = 10000
FOLDERS = 100


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, bins = int(sys.argv[1]), sys.argv[2:4]
    mode = sys.argv[4] if len(sys.argv) > 4 else "log"
    if mode not in ("log", "walk"):
        sys.exit(f"mode must be log or walk, not {mode!r}")
    a = Cluster()
    w = Writer(a)
    for i in range(N):
        w.put(f"/small/d{i % FOLDERS}/f{i}.bin", os.urandom(4096))
    cpu = {b: [] for b in bins}
    rate = {b: [] for b in bins}
    serv = {b: [] for b in bins}
    try:
        for r in range(rounds):
            for i, binary in enumerate(bins if r % 2 == 0 else bins[::-1]):
                b = Cluster()
                try:
                    state = os.path.join(bench.WORK, f"ab-{r}-{i}.db")
                    cmd = [binary, "sync", "-a", a.addr, "-b", b.addr, "--active-passive",
                           "--state", state, "--once"]
                    if mode == "log":
                        cmd += ["--bootstrap", "log"]
                    servers0 = a.cpu() + b.cpu()
                    t0 = time.monotonic()
                    p = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "--"] + cmd,
                                       capture_output=True, text=True,
                                       env=dict(os.environ, RUST_LOG="warn"))
                    wall = time.monotonic() - t0
                    servers = (a.cpu() + b.cpu() - servers0) * 1000 / N
                    if p.returncode != 0:
                        sys.exit(f"{binary} exited {p.returncode}:\n{p.stderr}")
                    ms = float([ln for ln in p.stderr.splitlines() if "task-clock" in ln][0].split(",")[0])
                    got = count_files(b, [f"/small/d{d}" for d in range(FOLDERS)])
                    if got != N:
                        sys.exit(f"{binary}: the target holds {got} of {N} files")
                    cpu[binary].append(ms / N)
                    rate[binary].append(N / wall)
                    serv[binary].append(servers)
                    print(f"  round {r} {binary}: {ms / N:.4f} ms/file, servers {servers:.4f} ms/file, "
                          f"{N / wall:,.0f} files/s", flush=True)
                finally:
                    b.stop()
    finally:
        a.stop()
    for b in bins:
        print(f"{mode} {b}: median {statistics.median(cpu[b]):.4f} ms/file, servers "
              f"{statistics.median(serv[b]):.4f} ms/file, {statistics.median(rate[b]):,.0f} files/s "
              f"over {rounds} rounds")


if __name__ == "__main__":
    main()
