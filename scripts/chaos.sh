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
CHAOS=long CHAOS_REPORT="$report" cargo test --test it -- --test-threads=2 --nocapture chaos:: \
  shards::four_instances 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# Both clusters written at once over a shared namespace, the sync killed
# with SIGKILL at random (tests/s3/test_random_two_way.py), many seeds.
s3report=$(mktemp)
S3_RANDOM_RUNS=${S3_RANDOM_RUNS:-20} S3_RANDOM_SHARDED_RUNS=${S3_RANDOM_SHARDED_RUNS:-5} \
  S3_RANDOM_REPORT="$s3report" \
  FILER_SYNC_BIN="$PWD/target/debug/filer-sync" \
  python3 -m pytest tests/s3/test_random_two_way.py -q 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
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
  echo "| scenario | faults injected | servers crashed and restarted | workload operations | events applied | entries compared | lost | divergent | orphan chunks (see below) | seconds |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  cat "$report"
  echo
  echo "Seeds (CHAOS_SEED=N replays a scenario's random choices; the disk-full scenario uses a fixed one):"
  echo
  grep -h "CHAOS .*seed" "$log" | sed 's/^/    /' || true
  echo
  echo "## Both clusters written at once: tests/s3/test_random_two_way.py"
  echo
  echo "One writer per cluster races over the same small namespace (two buckets, one versioned, of 8 keys;"
  echo "5 folders below /shared): S3 puts, tag changes, copies and deletes through each gateway, file puts,"
  echo "folder moves and recursive folder deletes through each filer, 180 operations per seed, while an"
  echo "active-active \`filer-sync sync\` is killed with SIGKILL 2-3 times and restarted on its state file."
  echo "Once sentinels written after the writes have crossed both ways twice, the trees of / (without"
  echo "/topics and /etc: type, size, mtime ns, mode, mime, xattrs, content) and the S3 views of every"
  echo "bucket are compared. S3_RANDOM_SEEDS=N replays a seed's operations and kills."
  echo
  cat "$s3report"
  echo
  echo "What the suite and its hostile-input companions found and what was fixed (details in the commits):"
  echo
  echo "- Event times on the filer's stream are taken before events enter its log, so they are not"
  echo "  monotonic; dropping events at or below the last window's time lost 1 of 100,000 concurrent"
  echo "  creates. Now only the exact event the checkpoint stands on is dropped when served again."
  echo '- Batch-assigned chunk ids in weed'"'"'s `vid,hex_N` form cannot be parsed by the target filer'"'"'s'
  echo "  deletion, so replaced chunks were never freed on the target. They are now written in plain form."
  echo "- Folders a source filer makes by itself (a move into a missing folder) log no event; the target"
  echo "  stamped them with its own clock. They are now created from the source folder's attributes."
  echo "- SeaweedFS 4.48's filer can panic (nil IntervalList in CompactFileChunks) while serving a"
  echo "  CreateEntry whose client gave up under a stalled network; the network scenario restarts a"
  echo "  crashed filer, as a supervisor would, and counts it in the table."
  echo "- A process killed between applying a window and committing it leaves the target ahead of the"
  echo "  checkpoint; replayed, a create whose file had since moved with its folder brought the old"
  echo "  folder back, and the replayed move then failed on a non-empty destination. The first window"
  echo "  of upserts after a checkpoint is now checked against the source."
  echo "- That check skips a replayed folder the source has moved on since, but a file moved into it"
  echo "  still needs it: the target filer made it with its own mode and clock, and active-active that"
  echo "  newer version won over the source's once the folder's move carried it along. Such a folder"
  echo "  now gets a stand-in dated at the epoch, which the source's version outranks."
  echo "- Replayed renames were not checked: the move of a file inside a folder that had moved on"
  echo "  since made that folder again on the target (as stand-ins), and the replayed move of the"
  echo "  folder then found its destination taken, leaving the old folder behind on the target (CI,"
  echo "  active-active). A replayed rename is now skipped when the source has moved on from its new"
  echo "  version and the target lacks its old entry, and it moves the target's old entry only while"
  echo "  that is the version the source moved (a log rotated and written anew stays where it is)."
  echo "- The clock-skew test (libfaketime moving this host's clock 2 h) hung once in CI and once in"
  echo "  194 runs here, before the sync's first line: under the preloaded clock gRPC's timers wait in"
  echo "  the kernel for deadlines reckoned by the faked clock, and its first call never completed."
  echo "  Such a silent run is now retried with its stacks printed; the sync's own logic was not at fault."
  echo "- A SIGKILLed source filer loses the events still in its in-memory metadata log (probed: events"
  echo "  written 3 s before a kill are gone from the log though in its store; a SIGTERM stop flushes"
  echo "  them). In the filer-restart scenario a mkdir the sync had not yet received so never reached"
  echo "  it (CI: a folder left on B as a stand-in). No log follower can recover such an event; the"
  echo "  scenario now stops the source with SIGTERM, as an operator would, and docs/first-runs-and-rescans.md says so."
  echo "- Chunks leaked by retries (weed shell volume.fsck -v after each scenario): an upload whose answer"
  echo "  was lost (a cut connection, a volume server going down) left its needle behind when the retry"
  echo "  took a new file id (TCP faults: 1 orphan, volume servers down: 3). The same file id is now"
  echo "  written again, an upload given up is freed, and a copy whose volume is away is freed once it"
  echo "  answers. Copies made through the filer proxy (volume servers out of reach) and left unused are"
  echo "  freed by the target's filer: a throwaway entry names them and is deleted with its data."
  echo "  The orphan column looks each orphan up in the target's metadata log: \"never used\" were never"
  echo "  named by an entry there (copies the sync made and did not free: its own leak; a sync killed"
  echo "  with SIGKILL leaves those of its unfinished window); \"replaced\" were named by a version that"
  echo "  was later replaced or deleted, and the target's filer did not free them (its volume server was"
  echo "  away, or it was killed with deletions queued): the filer's loss, met by any client of it."
  echo "- The randomized two-way test found: the equal-mtime tie-break dropped changes that keep the mtime"
  echo "  (S3 tags, a versioned key's latest-version pointer) about half the time, and kept a target that"
  echo "  was only behind; a write on the target between the sync's lookup and its write was overwritten"
  echo "  and lost on both clusters; the first-run walk left folder attributes and xattrs unlevelled. Fixed"
  echo "  (three-way decisions, exclusive creates, an 'attributes' class). Then: folder moves replayed"
  echo "  on the target carried its newer writes along, and two moves onto one destination failed (moves"
  echo "  now carry only what the source moved, merging child by child); a key deleted on one side and"
  echo "  written anew on the other in the same second kept a tombstone on one cluster (a write made after"
  echo "  the sync carried the delete is now known from that cluster's own log, not weighed by mtime)."
  echo "  A filer makes the missing folders of a move without logging them, so no event carried their"
  echo "  attributes: after a move into a folder, that folder is now levelled with the source's once a"
  echo "  window. Without rescans (S3_RANDOM_RESCAN_SECS=0) 11 of 12 seeds then converge; seed 42873808"
  echo "  leaves a folder on one cluster only after racing folder moves and deletes, not yet explained."
  echo "  The rescans repair it (on by default every six hours; every 3 s here), and with them every"
  echo "  seed converges."
} > RELIABILITY.md
rm -f "$report" "$s3report"
echo "wrote RELIABILITY.md (exit $rc)"
exit "$rc"
