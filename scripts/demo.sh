#!/usr/bin/env bash
# make demo: two throwaway clusters, a one-way catch-up, a mapped folder,
# then both ways at once, with the result shown from each filer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug/filer-sync"
work=$(mktemp -d /tmp/filer-sync-demo.XXXXXX)
cleanup() { "$root/scripts/local-cluster.sh" stop "$work/a"; "$root/scripts/local-cluster.sh" stop "$work/b"; }
trap cleanup EXIT

echo "== starting two local clusters (logs in $work)"
A=$("$root/scripts/local-cluster.sh" start "$work/a" -maxMB=1)
B=$("$root/scripts/local-cluster.sh" start "$work/b")
echo "   cluster A filer: $A    cluster B filer: $B"

echo "== writing files to A under /home/chris"
head -c 3000000 /dev/urandom >"$work/big.bin"
curl -fsS -X PUT --data-binary @"$work/big.bin" "http://$A/home/chris/photos/big.bin" >/dev/null
for i in 1 2 3; do
  echo "note $i, written on A at $(date +%T)" | curl -fsS -X PUT --data-binary @- "http://$A/home/chris/notes/note$i.txt" >/dev/null
done
curl -fsS -X POST "http://$A/home/chris/empty-folder/" >/dev/null

echo "== filer-sync sync --active-passive --once: A:/home/chris -> B:/Users/chris"
"$bin" sync -a "$A" -b "$B" --active-passive --once \
  --a-path /home/chris --b-path /Users/chris --state "$work/state.db"

show() { curl -fsS -H 'Accept: application/json' "http://$1$2/?limit=100" \
  | python3 -c 'import json,sys; [print("   ", e["FullPath"], e.get("FileSize", 0)) for e in (json.load(sys.stdin).get("Entries") or [])]'; }
echo "== on B /Users/chris:"; show "$B" /Users/chris
echo "== on B /Users/chris/notes:"; show "$B" /Users/chris/notes
cmp <(curl -fsS "http://$B/Users/chris/photos/big.bin") "$work/big.bin" && echo "   big.bin (3 MB, 3 chunks): identical on B"

echo "== now both ways (active-active) on /shared"
echo "from A" | curl -fsS -X PUT --data-binary @- "http://$A/shared/a.txt" >/dev/null
echo "from B" | curl -fsS -X PUT --data-binary @- "http://$B/shared/b.txt" >/dev/null
"$bin" sync -a "$A" -b "$B" --once --a-path /shared --b-path /shared --state "$work/state2.db"
echo "== on A /shared:"; show "$A" /shared
echo "== on B /shared:"; show "$B" /shared
echo "== done: the state file $work/state.db holds the checkpoints; run again to resume"
