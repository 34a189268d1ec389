#!/usr/bin/env bash
# Proves the files in deploy/ against real tools and a real run:
#   1. promtool check rules + promtool test rules (synthetic series);
#   2. systemd-analyze verify on the units (and their offline security score);
#   3. the Grafana dashboard's structure (JSON, variables, datasources);
#   4. a live run: two throwaway SeaweedFS clusters on 127.0.0.1, filer-sync
#      started the way filer-sync@.service starts it (its ExecStart expanded
#      with a test env file), files written to A, a real Prometheus (bound to
#      127.0.0.1, scrape and rule evaluation every 1 s) scraping it with the
#      rules loaded; then
#      (a) every PromQL expression of every dashboard panel evaluates to a
#          non-empty result, and every variable query finds values;
#      (b) every metric name in the dashboard and the rules is in the binary's
#          own /metrics output (up, made by Prometheus' scrape, excepted);
#      (c) B's filer is killed while files keep being written to A, and the
#          lag alert (SeaweedFS_filerSync_lag_seconds alone) fires, in a
#          shortened copy of the rules (see below), having been inactive
#          before the kill;
#      (d) with the window still stuck on the dead filer, SIGTERM (what
#          `systemctl stop` sends) makes filer-sync exit 0 within 30 s, so
#          the unit ends inactive, not failed.
# Prints PASS/FAIL per check; exits 1 if any failed. Every process it starts
# is stopped by PID on exit. Nothing leaves 127.0.0.0/8.
#
# Env: FILER_SYNC_BIN (default target/debug/filer-sync; waited for, up to
# 40 min, while another build may still be producing it, then copied so a
# rebuild cannot disturb the run); KEEP_TMP=1 keeps the temp folder.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BIN=${FILER_SYNC_BIN:-$root/target/debug/filer-sync}
RULES=deploy/prometheus/filer-sync-rules.yml
RULES_TEST=deploy/prometheus/filer-sync-rules.test.yml
DASH=deploy/grafana/filer-sync.json
UNITS=(filer-sync@.service filer-sync-catchup@.service filer-sync-catchup@.timer)
started=$SECONDS

tmp=$(mktemp -d /tmp/check-deploy.XXXXXX)
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
note() { echo "      $*"; }

# --- cleanup: every process we started, by PID ------------------------------
SYNC_PID="" PROM_PID="" WRITER_PID=""
CLUSTERS=()
stop_pid() { # PID [grace seconds]: TERM, wait, KILL
  local pid=$1 grace=${2:-10} i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$WRITER_PID" 2
  stop_pid "$SYNC_PID" 15
  stop_pid "$PROM_PID" 10
  for c in "${CLUSTERS[@]}"; do scripts/local-cluster.sh stop "$c" >/dev/null 2>&1; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "temp folder kept: $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------
need=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt): promtool/prometheus check and run the rules, systemd-analyze verifies the units, jq/python3 read the dashboard"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || { echo "FAIL: could not install ${need[*]}"; exit 1; }
fi

# --- 1. rules: syntax and unit tests -------------------------------------------
if out=$(promtool check rules "$RULES" 2>&1); then
  pass "promtool check rules $RULES ($(grep -o '[0-9]* rules found' <<<"$out"))"
else
  fail "promtool check rules $RULES"; echo "$out"
fi
if out=$(promtool test rules "$RULES_TEST" 2>&1); then
  pass "promtool test rules $RULES_TEST (alerts fire and stay quiet on synthetic series as designed)"
else
  fail "promtool test rules $RULES_TEST"; echo "$out"
fi

# --- the binary (another build may still be writing it) -------------------------
waited=0
until [ -x "$BIN" ]; do
  if [ $waited -ge 2400 ]; then fail "no filer-sync binary at $BIN after 40 min"; exit 1; fi
  [ $waited -eq 0 ] && echo "waiting for $BIN (polling every 30 s, up to 40 min)"
  sleep 30; waited=$((waited + 30))
done
mkdir -p "$tmp/bin"
for try in 1 2 3; do
  # A copy, so that a rebuild while we run changes nothing under us; a copy
  # taken while the linker writes fails --help: wait and take it again.
  cp "$BIN" "$tmp/bin/filer-sync" && "$tmp/bin/filer-sync" --help >/dev/null 2>&1 && break
  [ $try = 3 ] && { fail "the copy of $BIN does not run"; exit 1; }
  sleep 30
done
FS="$tmp/bin/filer-sync"

# --- 2. systemd units -------------------------------------------------------------
# Adaptation: systemd-analyze verify insists that ExecStart's binary exists,
# so the units are copied to a temp folder with /usr/local/bin/filer-sync
# replaced by the copied binary. verify exits 0 even on unknown keys (it only
# warns), so any output at all counts as a failure.
mkdir -p "$tmp/units"
for u in "${UNITS[@]}"; do
  sed "s#/usr/local/bin/filer-sync#$FS#g" "deploy/systemd/$u" >"$tmp/units/$u"
done
if out=$(cd "$tmp/units" && systemd-analyze verify filer-sync@check.service \
  filer-sync-catchup@check.service filer-sync-catchup@check.timer 2>&1) && [ -z "$out" ]; then
  pass "systemd-analyze verify ${UNITS[*]}"
else
  fail "systemd-analyze verify"; echo "$out"
fi
for u in filer-sync@.service filer-sync-catchup@.service; do
  score=$(cd "$tmp/units" && systemd-analyze security --offline=true "./$u" 2>/dev/null | grep -o 'Overall exposure level.*')
  note "$u: ${score:-systemd-analyze security unavailable}"
done

# --- 3. dashboard structure ---------------------------------------------------------
if out=$(python3 - "$DASH" 2>&1 <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
errs = []
if d.get("schemaVersion", 0) < 36: errs.append(f"schemaVersion {d.get('schemaVersion')} < 36 (Grafana 9+/10+)")
vars_ = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
if "instance" not in vars_: errs.append("no instance variable")
if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in vars_.values()):
    errs.append("no Prometheus datasource variable")
builtin = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
ids, exprs = set(), 0
def check_ds(ds, where):
    if not (isinstance(ds, dict) and ds.get("type") == "prometheus" and ds.get("uid") in ("${datasource}", "$datasource")):
        errs.append(f"{where}: datasource {ds!r} is not the datasource variable")
for p in d["panels"]:
    if p["id"] in ids: errs.append(f"duplicate panel id {p['id']}")
    ids.add(p["id"])
    g = p.get("gridPos", {})
    if not all(k in g for k in "xywh") or g["x"] + g["w"] > 24: errs.append(f"panel {p['id']}: bad gridPos {g}")
    if p["type"] == "row": continue
    check_ds(p.get("datasource"), f"panel {p['title']!r}")
    if not p.get("targets"): errs.append(f"panel {p['title']!r}: no targets")
    for t in p.get("targets", []):
        exprs += 1
        check_ds(t.get("datasource"), f"panel {p['title']!r} target {t.get('refId')}")
        for v in re.findall(r"\$\{?(\w+)", t["expr"]):
            if v not in vars_ and v not in builtin: errs.append(f"panel {p['title']!r}: unknown variable ${v}")
for v in vars_.values():
    if v["type"] == "query": check_ds(v.get("datasource"), f"variable {v['name']}")
print(f"{len(ids)} panels, {exprs} queries, variables {', '.join(vars_)}")
if errs:
    print("\n".join(errs)); sys.exit(1)
EOF
); then
  pass "dashboard $DASH structure: $out"
else
  fail "dashboard $DASH structure"; echo "$out"
fi

# --- 4. live run ----------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { local p; while :; do p=$((11000 + RANDOM % 11000)); port_free "$p" && { echo "$p"; return; }; done; }
prom() { curl -fsS --max-time 5 -G "http://127.0.0.1:$PROM_PORT$1" "${@:2}"; }
# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s.
wait_until() {
  local limit=$1 what=$2 t0=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then echo "timed out after ${limit}s waiting for $what" >&2; return 1; fi
    sleep 0.5
  done
}

live() {
  echo "starting two SeaweedFS clusters on 127.0.0.1"
  CLUSTERS+=("$tmp/a"); A=$(scripts/local-cluster.sh start "$tmp/a" 2>"$tmp/a.err") || { cat "$tmp/a.err"; return 1; }
  CLUSTERS+=("$tmp/b"); B=$(scripts/local-cluster.sh start "$tmp/b" 2>"$tmp/b.err") || { cat "$tmp/b.err"; return 1; }
  case "$A$B" in *[!0-9.:]* | "") echo "unexpected filer addresses '$A' '$B'"; return 1 ;; esac
  [[ $A == 127.0.0.1:* && $B == 127.0.0.1:* ]] || { echo "filers not on 127.0.0.1: $A $B"; return 1; }
  note "A=$A B=$B"

  # filer-sync as filer-sync@check.service would run it: the unit's ExecStart
  # with systemd's expansion (%i, %S, ${X} one word, $X split at whitespace)
  # and an env file in the documented format. The result is
  #   filer-sync sync -a A -b B --state TMP/state/filer-sync/check.db --active-passive --ha --metrics-port P (one --ha instance: the HA role panel has data)
  METRICS_PORT=$(pick_port)
  mkdir -p "$tmp/state/filer-sync"
  cat >"$tmp/check.env" <<EOF
# test env file, format of deploy/systemd/filer-sync.env.example
FILER_SYNC_A=$A
FILER_SYNC_B=$B
FILER_SYNC_OPTS=--active-passive --ha --metrics-port $METRICS_PORT
EOF
  mapfile -d '' argv < <(python3 - "$tmp/units/filer-sync@.service" "$tmp/check.env" check "$tmp/state" <<'EOF'
import re, sys
unit, envf, inst, sdir = sys.argv[1:]
env = {}
for line in open(envf):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1); env[k] = v
cmd = next(l.split("=", 1)[1] for l in open(unit) if l.startswith("ExecStart="))
cmd = cmd.replace("%i", inst).replace("%S", sdir)
out = []
for word in cmd.split():
    if m := re.fullmatch(r"\$(\w+)", word):        # $X: split at whitespace
        out += env.get(m[1], "").split()
    else:                                          # ${X}: one word
        out.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), word))
sys.stdout.write("\0".join(out) + "\0")
EOF
)
  note "ExecStart expands to: ${argv[*]}"
  [ "${argv[0]}" = "$FS" ] || { echo "ExecStart does not start the binary: ${argv[0]}"; return 1; }
  "${argv[@]}" >"$tmp/sync.log" 2>&1 &
  SYNC_PID=$!
  wait_until 60 "filer-sync /metrics" curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" || { tail -20 "$tmp/sync.log"; return 1; }

  echo "writing 20 files to A"
  for i in $(seq 1 20); do
    echo "file $i $(date +%s%N)" | curl -fsS -X PUT --data-binary @- "http://$A/check/f$i.txt" >/dev/null || { echo "PUT to A failed"; return 1; }
  done

  # Prometheus: loopback only, its own TSDB, the original rules plus a copy
  # of them with the lag alert shortened (for this test only: threshold
  # 300 s -> 3 s, for: 10m -> 5s, an extra label to tell it apart, its group
  # renamed) so that an outage of seconds makes it fire.
  PROM_PORT=$(pick_port)
  mkdir -p "$tmp/prom/data"
  cp "$RULES" "$tmp/prom/rules.yml"
  python3 - "$RULES" "$tmp/prom/rules-shortened.yml" <<'EOF' || return 1
import sys
src, dst = sys.argv[1:]
s = open(src).read()
start = s.index("- alert: FilerSyncLagHigh")
end = s.index("- alert:", start + 1)
block = s[start:end]
assert block.count("> 300") == 1 and block.count("for: 10m") == 1 and block.count("severity: warning") == 1, "the lag rule changed shape: update check-deploy.sh"
assert "expr: SeaweedFS_filerSync_lag_seconds > 300\n" in block, "the lag rule is no longer lag_seconds alone: update check-deploy.sh"
block = (block.replace("> 300", "> 3").replace("for: 10m", "for: 5s")
         .replace("severity: warning", "severity: warning\n          variant: check-deploy-shortened"))
s = s[:start] + block + s[end:]
assert s.count("  - name: filer-sync\n") == 1
s = s.replace("  - name: filer-sync\n", "  - name: filer-sync-check-deploy-shortened\n")
open(dst, "w").write(s)
EOF
  promtool check rules "$tmp/prom/rules-shortened.yml" >/dev/null || { echo "shortened rules copy invalid"; return 1; }
  cat >"$tmp/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $tmp/prom/rules.yml
  - $tmp/prom/rules-shortened.yml
scrape_configs:
  - job_name: filer-sync
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
  promtool check config "$tmp/prom/prometheus.yml" >/dev/null 2>&1 || { promtool check config "$tmp/prom/prometheus.yml"; return 1; }
  (cd "$tmp/prom" && exec prometheus --config.file="$tmp/prom/prometheus.yml" \
     --storage.tsdb.path="$tmp/prom/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
     --web.console.templates="$tmp/prom" --web.console.libraries="$tmp/prom") \
     >"$tmp/prom/prometheus.log" 2>&1 </dev/null &
  PROM_PID=$!
  wait_until 60 "Prometheus ready" curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" || { tail -20 "$tmp/prom/prometheus.log"; return 1; }

  # Facts, not sleeps: the target is up, the sync committed the 20 files, and
  # there are enough samples for rate()/increase() over 15 s.
  target_up() { prom /api/v1/targets | jq -e '.data.activeTargets[] | select(.labels.job=="filer-sync" and .health=="up")'; }
  wait_until 60 "the filer-sync target up in Prometheus" target_up || return 1
  synced() { prom /api/v1/query --data-urlencode 'query=SeaweedFS_filerSync_events_processed_total >= 20' | jq -e '.data.result | length > 0'; }
  wait_until 120 "20 events processed (seen by Prometheus)" synced || { tail -20 "$tmp/sync.log"; return 1; }
  samples() { prom /api/v1/query --data-urlencode 'query=count_over_time(SeaweedFS_filerSync_up[15s]) >= 5' | jq -e '.data.result | length > 0'; }
  wait_until 60 "5 samples within 15 s" samples || return 1
  if curl -fsS "http://$B/check/f20.txt" | grep -q '^file 20 '; then pass "live: filer-sync (started as the unit starts it) copied A's files to B"; else fail "live: f20.txt not on B"; fi

  # (a) every panel expression, variables substituted, evaluated now.
  jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | [$t, .refId, .expr] | @tsv' "$DASH" >"$tmp/exprs.tsv"
  local n=0 bad=0 title ref expr q res
  while IFS=$'\t' read -r title ref expr; do
    n=$((n + 1))
    q=$(sed -e 's/\$__rate_interval/15s/g; s/\$__interval/5s/g; s/\$__range/5m/g' \
            -e 's/\$instance/.+/g; s/\$source/.+/g; s/\$target/.+/g' <<<"$expr")
    res=$(prom /api/v1/query --data-urlencode "query=$q")
    if jq -e '.status == "success" and (.data.result | length > 0)' <<<"$res" >/dev/null 2>&1; then
      note "ok  $title/$ref = $(jq -c '[.data.result[] | .value[1]]' <<<"$res")"
    else
      bad=$((bad + 1)); note "BAD $title/$ref: $q -> $res"
    fi
  done <"$tmp/exprs.tsv"
  # The variables' label_values(SELECTOR, LABEL) through the same API Grafana uses.
  while IFS=$'\t' read -r name query; do
    n=$((n + 1))
    local sel=${query#label_values(} ; sel=${sel%)}
    local label=${sel##*, } ; sel=${sel%, *}
    sel=$(sed 's/\$instance/.+/g; s/\$source/.+/g' <<<"$sel")
    res=$(prom "/api/v1/label/$label/values" --data-urlencode "match[]=$sel")
    if jq -e '.status == "success" and (.data | length > 0)' <<<"$res" >/dev/null 2>&1; then
      note "ok  variable $name = $(jq -c .data <<<"$res")"
    else
      bad=$((bad + 1)); note "BAD variable $name: $query -> $res"
    fi
  done < <(jq -r '.templating.list[] | select(.type == "query") | [.name, .definition] | @tsv' "$DASH")
  if [ $bad -eq 0 ]; then pass "(a) all $n dashboard queries (panels and variables) succeed with non-empty results"; else fail "(a) $bad of $n dashboard queries failed or came back empty"; fi

  # The rules as loaded: every rule (original and shortened) evaluates without error.
  res=$(prom /api/v1/rules)
  if jq -e '[.data.groups[].rules[]] | length >= 10 and all(.health == "ok")' <<<"$res" >/dev/null; then
    pass "Prometheus loaded and evaluates all $(jq '[.data.groups[].rules[]] | length' <<<"$res") rules (both files) without error"
  else
    fail "rules unhealthy in Prometheus"; jq -c '.data.groups[].rules[] | {name, health, lastError}' <<<"$res"
  fi

  # (b) every metric name used is served by the binary.
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$tmp/metrics.txt"
  { jq -r '.. | objects | select(has("expr")) | .expr' "$DASH"; jq -r '.templating.list[] | select(.type == "query") | .definition' "$DASH"; } >"$tmp/dash-exprs.txt"
  prom /api/v1/rules | jq -r '.data.groups[] | select(.file | endswith("/rules.yml")) | .rules[] | .query' >"$tmp/rule-exprs.txt"
  if out=$(python3 - "$tmp/metrics.txt" "$tmp/dash-exprs.txt" "$tmp/rule-exprs.txt" "$RULES" <<'EOF'
import re, sys
metrics_txt, dash, rules, rules_file = sys.argv[1:]
served = {re.split(r"[{ ]", l, 1)[0] for l in open(metrics_txt) if l.strip() and not l.startswith("#")}
# Series Prometheus itself makes for every scrape target (not the binary's).
SCRAPE_MADE = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan", "atan2", "label_values"}
def names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers
    e = re.sub(r",\s*\w+\s*\)\s*$", ")", e) if e.lstrip().startswith("label_values") else e
    out = set()
    for m in re.finditer(r"[A-Za-z_:][\w:]*", e):
        if e[m.end():].lstrip().startswith("("): continue   # a function
        if m[0].lower() in KEYWORDS: continue
        out.add(m[0])
    return out
errs, used = [], {}
for f, src in ((dash, "dashboard"), (rules, "rules")):
    n = 0
    for line in open(f):
        if not line.strip(): continue
        n += 1
        for name in names(line):
            used.setdefault(name, set()).add(src)
    if n == 0: errs.append(f"no expressions read from the {src}")
# The rules file's own text (comments removed), in case a rule never
# reached Prometheus.
rules_text = "\n".join(l for l in open(rules_file).read().splitlines() if not l.lstrip().startswith("#"))
for name in set(re.findall(r"\bSeaweedFS_\w+", rules_text)):
    used.setdefault(name, set()).add("rules")
for name, srcs in sorted(used.items()):
    if name in served: continue
    if name in SCRAPE_MADE and srcs == {"rules"}: continue
    errs.append(f"{name} (used by {', '.join(sorted(srcs))}) is not served by the binary")
print(f"{len(used)} names used: {', '.join(sorted(used))}; served: {len(served)}")
if errs:
    print("\n".join(errs)); sys.exit(1)
EOF
  ); then
    pass "(b) every metric the dashboard and rules use is in the binary's /metrics ($out)"
  else
    fail "(b) metric names"; echo "$out"
  fi

  # (c) B's filer goes away (SIGKILL; it is the third PID of the cluster)
  # while files keep arriving on A: the (shortened) lag alert must fire. The
  # writer starts first and the kill waits until its first files are
  # committed, so the stuck window is a fresh one, as in production under a
  # steady stream of writes.
  local bfiler
  bfiler=$(sed -n 3p "$tmp/b/pids")
  [ -n "$bfiler" ] && kill -0 "$bfiler" 2>/dev/null || { echo "no filer PID in $tmp/b/pids"; return 1; }
  (for i in $(seq 1 300); do   # bounded: at most 300 files, ~2.5 min
     echo "late $i" | curl -fsS --max-time 5 -X PUT --data-binary @- "http://$A/check/late$i.txt" >/dev/null 2>&1
     sleep 0.5
   done) &
  WRITER_PID=$!
  late_synced() { curl -fsS "http://$B/check/late3.txt" | grep -q '^late 3'; }
  wait_until 60 "the writer's first files on B" late_synced || return 1
  # Before the kill the shortened alert must be quiet (else its firing
  # below would prove nothing about the outage).
  local before
  before=$(prom /api/v1/alerts | jq -r '[.data.alerts[] | select(.labels.alertname == "FilerSyncLagHigh" and .labels.variant == "check-deploy-shortened") | .state] | join(",")')
  [ -z "$before" ] || fail "(c) precondition: FilerSyncLagHigh (shortened) already '$before' before B's filer was killed"
  kill -KILL "$bfiler"
  local t0=$SECONDS
  note "killed B's filer (PID $bfiler) at +$((SECONDS - started))s, files still being written to A"
  firing() { prom /api/v1/alerts | jq -e '.data.alerts[] | select(.labels.alertname == "FilerSyncLagHigh" and .labels.variant == "check-deploy-shortened" and .state == "firing")'; }
  if wait_until 90 "FilerSyncLagHigh firing" firing; then
    pass "(c) FilerSyncLagHigh fired $((SECONDS - t0))s after B's filer was killed (shortened copy: > 3 s for 5 s)"
    note "alert: $(prom /api/v1/alerts | jq -c '.data.alerts[] | select(.labels.alertname == "FilerSyncLagHigh" and .labels.variant == "check-deploy-shortened") | {state, value, labels: {sourceFiler: .labels.sourceFiler, targetFiler: .labels.targetFiler}}' | head -1)"
  else
    fail "(c) FilerSyncLagHigh did not fire within 90 s of B's filer going away"
    prom /api/v1/alerts | jq -c '.data.alerts[]'
    tail -20 "$tmp/sync.log"
  fi
  # What the outage looked like (informational): lag_seconds against the
  # checkpoint's age, the measure the rules used before lag_seconds kept
  # growing during a stuck window.
  local span=$((SECONDS - t0))
  for q in "min_over_time(SeaweedFS_filerSync_lag_seconds[${span}s])" "max_over_time(SeaweedFS_filerSync_lag_seconds[${span}s])" \
           SeaweedFS_filerSync_lag_seconds SeaweedFS_filerSync_in_flight_jobs 'time() - SeaweedFS_filerSync_sync_offset / 1e9' \
           SeaweedFS_filerSync_paused; do
    note "during the outage: $q = $(prom /api/v1/query --data-urlencode "query=$q" | jq -r '[.data.result[].value[1]] | join(",")')"
  done
  stop_pid "$WRITER_PID" 2; WRITER_PID=""

  # (d) the stop a unit gets (SIGTERM) while the window is stuck: exit 0.
  local in_flight rc t1 i
  in_flight=$(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^SeaweedFS_filerSync_in_flight_jobs\{/ {print $2}')
  # Only a stop during a stuck window proves the point.
  [ "${in_flight:-0}" -gt 0 ] 2>/dev/null || fail "(d) precondition: no window in flight before SIGTERM (in_flight_jobs '${in_flight}')"
  t1=$SECONDS
  kill -TERM "$SYNC_PID"
  for ((i = 0; i < 300; i++)); do kill -0 "$SYNC_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SYNC_PID" 2>/dev/null; then
    fail "(d) filer-sync still running 30 s after SIGTERM (window stuck on the dead filer, in flight: $in_flight)"
    tail -5 "$tmp/sync.log"
    return 0   # SYNC_PID left set: cleanup stops it (TERM, then KILL)
  else
    wait "$SYNC_PID"; rc=$?
    if [ "$rc" -eq 0 ]; then
      pass "(d) SIGTERM with the window stuck on the dead filer (in flight: $in_flight): exit 0 after $((SECONDS - t1))s"
    else
      fail "(d) SIGTERM with the window stuck on the dead filer (in flight: $in_flight): exit $rc, expected 0"
    fi
    note "log: $(grep -o 'stopped as asked.*' "$tmp/sync.log" | tail -1)"
  fi
  SYNC_PID=""
  return 0
}

if ! live; then
  fail "live run could not complete (see above; logs in $tmp, KEEP_TMP=1 keeps them)"
fi

elapsed=$((SECONDS - started))
echo "check-deploy: $failures failed, ${elapsed}s"
[ $failures -eq 0 ]
