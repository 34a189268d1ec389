#!/usr/bin/env python3
"""Same-run A/B of two filer-sync binaries' peak RSS in a first-run walk.

    python3 scripts/walk_rss_ab.py BIN_A BIN_B [BIN_C ...] [BIG]

One source cluster gets 10,000 files of 1 KiB in folders of 1,000 (as the
`scale` workload); each binary walks it into a fresh target
(`sync --active-passive --once`, the default first run) twice, in
alternating order; then the source grows to BIG files (default 1,000,000)
and each binary walks it once. Prints every run's peak RSS (VmHWM) and
files/s, and per binary the peak RSS at BIG over its median at 10,000 (the
`scale` workload calls a cost flat within 20 %). Needs what `make bench`
installs.
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import Cluster, count_files, fill, peak_rss_mb  # noqa: E402

PER = 1000


def walk(binary, a, n):
    b = Cluster()
    try:
        state = os.path.join(bench.WORK, f"walk-rss-{time.time_ns()}.db")
        cmd = [binary, "sync", "-a", a.addr, "-b", b.addr, "--active-passive", "--state", state, "--once"]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=dict(os.environ, RUST_LOG="warn"))
        peak = 0.0
        while p.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(p.pid))
            except OSError:
                pass
            time.sleep(0.05)
        wall = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(f"{binary} exited {p.returncode}")
        got = count_files(b, [f"/scale/d{d}" for d in range((n + PER - 1) // PER)])
        if got != n:
            sys.exit(f"{binary}: the target holds {got} of {n} files")
        return peak, n / wall
    finally:
        b.stop()


def main():
    args = sys.argv[1:]
    big = int(args.pop()) if args and args[-1].isdigit() else 1_000_000
    bins = args
    if len(bins) < 2:
        sys.exit(__doc__)
    a = Cluster()
    peaks = {}
    try:
        have = 0
        for n, rounds in ((10_000, 2), (big, 1)):
            fill(a, lambda i: f"/scale/d{i // PER}/f{i}.bin", have, n)
            have = n
            for r in range(rounds):
                for binary in bins if r % 2 == 0 else bins[::-1]:
                    peak, rate = walk(binary, a, n)
                    peaks.setdefault((binary, n), []).append(peak)
                    print(f"  {binary} {n:,} files, round {r + 1}: peak RSS {peak:.1f} MB, {rate:,.0f} files/s",
                          flush=True)
    finally:
        a.stop()
    for binary in bins:
        small, large = statistics.median(peaks[(binary, 10_000)]), statistics.median(peaks[(binary, big)])
        print(f"{binary}: peak RSS {small:.1f} MB at 10,000, {large:.1f} MB at {big:,}: x{large / small:.2f}")


if __name__ == "__main__":
    main()
