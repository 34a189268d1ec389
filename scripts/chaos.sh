#!/usr/bin/env bash
# `make chaos`: the long fault-injection suite (tests/it/chaos.rs with
# CHAOS=long) against real clusters; its per-scenario figures replace the
# table in RELIABILITY.md. CHAOS_SEED=N replays a run's random choices.
set -uo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
log=target/chaos.log
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s)
CHAOS=long CHAOS_REPORT="$report" cargo test --test it -- --test-threads=2 --nocapture chaos:: 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
mins=$(( ($(date +%s) - t0) / 60 ))
{
  echo "# Reliability: the fault-injection suite"
  echo
  echo "Made by \`make chaos\` (scripts/chaos.sh: \`CHAOS=long cargo test --test it -- --test-threads=2 chaos::\`)"
  echo "on $started, $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, weed 4.48;"
  echo "$mins min, exit code $rc. \`make test\` runs the same scenarios shorter (fewer cycles, shorter fault periods)."
  echo
  echo "Each scenario runs a mixed workload (creates, overwrites, appends, renames of files and"
  echo "directories, deletes, 5 MB two-chunk files) while the faults are injected, lets the sync"
  echo "settle, and compares the trees entry by entry (type, size, mtime, mode, mime, xattrs,"
  echo "content hash). \"Refused by the servers\" counts workload writes that failed because the"
  echo "source's own servers were down or restarting (they never happened, so there is nothing to lose)."
  echo
  echo "| scenario | faults injected | servers crashed and restarted | workload operations | events applied | entries compared | lost | divergent | seconds |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cat "$report"
  echo
  grep -h "CHAOS .*seed" "$log" | sed 's/^/    /' || true
} > RELIABILITY.md
rm -f "$report"
echo "wrote RELIABILITY.md (exit $rc)"
exit "$rc"
