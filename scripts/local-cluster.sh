#!/usr/bin/env bash
# Start or stop a throwaway single-machine SeaweedFS cluster on 127.0.0.1.
#   scripts/local-cluster.sh start DIR [extra filer flags...]  → prints the filer address
#   scripts/local-cluster.sh stop DIR
# Master, volume server and filer each get a free port P (< 22768, so gRPC on
# P+10000 stays below the ephemeral range) and run in DIR; PIDs go to DIR/pids.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?DIR}; shift 2
here=$(cd "$(dirname "$0")" && pwd)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  while :; do
    p=$((11000 + RANDOM % 11000))
    if port_free "$p" && port_free $((p + 10000)) && ! grep -qx "$p" "$dir/ports" 2>/dev/null; then
      echo "$p" >>"$dir/ports"; echo "$p"; return
    fi
  done
}
wait_for() { # URL PATTERN
  for _ in $(seq 1 600); do
    if curl -fsS "$1" 2>/dev/null | grep -q "$2"; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1 (logs in $dir)" >&2; return 1
}

case "$cmd" in
start)
  weed=$("$here/install-weed.sh")
  mkdir -p "$dir"/{m,v,f}; : >"$dir/ports"; : >"$dir/pids"
  m=$(pick_port); v=$(pick_port); f=$(pick_port)
  # Each server runs in DIR (no stray filer.toml from the caller's folder),
  # detached from our stdout so that $(...) around this script returns.
  spawn() {
    local name=$1; shift
    (cd "$dir" && exec "$weed" "$name" -ip=127.0.0.1 -ip.bind=127.0.0.1 "$@") \
      </dev/null >"$dir/$name.log" 2>&1 &
    echo $! >>"$dir/pids"
  }
  spawn master -port="$m" -port.grpc=$((m + 10000)) -mdir="$dir/m" \
     -telemetry=false -volumeSizeLimitMB=256 -defaultReplication=000
  wait_for "http://127.0.0.1:$m/cluster/status" .
  spawn volume -port="$v" -port.grpc=$((v + 10000)) -master="127.0.0.1:$m" \
     -dir="$dir/v" -max=60 -preStopSeconds=0 -index=memory
  wait_for "http://127.0.0.1:$m/dir/status" "127.0.0.1:$v"
  curl -fsS "http://127.0.0.1:$m/vol/grow?count=2&replication=000" >/dev/null 2>&1 || true
  spawn filer -port="$f" -port.grpc=$((f + 10000)) -master="127.0.0.1:$m" \
     -defaultStoreDir="$dir/f" -localSocket="$dir/filer.sock" "$@"
  wait_for "http://127.0.0.1:$f/" .
  wait_for "http://127.0.0.1:$m/dir/assign" fid
  echo "127.0.0.1:$f"
  ;;
stop)
  [ -f "$dir/pids" ] || exit 0
  tac "$dir/pids" | while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
