#!/usr/bin/env bash
# Fault drills against a running local stack, under load. Each drill runs
# load loops on the stack's published port through phases and prints, per
# phase, the responses counted: total, 2xx, non-2xx, errors (connection
# errors and timeouts) and the X-Cache values. Two loops run side by side:
# "app" requests carry a Cookie header, which takes them past nginx's edge
# microcache to the app (its X-Cache is what the checks below name), and
# "edge" requests go through the edge cache as shipped (X-Edge-Cache counted;
# every one of them must succeed too). Single probes bypass the edge. The
# stack ends as `ansible-playbook site.yml` leaves it (every service running).
#
#   scripts/drill.sh redis    [options]  redis-server killed (SIGKILL) under load and
#                                        kept down: every answer 2xx (BYPASS, from the
#                                        database); started again: caching resumes (HIT)
#   scripts/drill.sh postgres [options]  PostgreSQL stopped: the cached answer is served
#                                        STALE (stale-if-error) with no failed response;
#                                        a cold key answers 503 with a clear message
#                                        (the edge keeps serving its stale copy: 200);
#                                        started again: MISS, then HIT
#   scripts/drill.sh webhost  [options]  one web container stopped under load (needs the
#                                        lb, CGC_LOCAL_WEB_COUNT >= 2): every answer 2xx
#                                        from the others; started again: it serves again
# Options:
#   --hold S       seconds each fault phase runs under load (default 12: with the
#                  local stack's 5 s slow_version() a BYPASS answer takes ~5 s)
#   --workers N    concurrent clients of each load loop, app and edge (default 4)
#   --path P       URL path under load (default /api/version)
#   --member M     webhost: the web container to stop (default: the last one)
#   --timeout S    per-request timeout of the load loop (default 20)
# The stack comes from the same environment as the playbooks: CGC_LOCAL_STACK
# (default cgc), CGC_LOCAL_HTTPS_PORT (8443), CGC_LOCAL_WEB_COUNT (1).
# Output ends with one line `drill-result: {json}` (every phase's counts and
# each check); exit 0 when every check passed, 1 when one failed, 2 on usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
STACK=${CGC_LOCAL_STACK:-cgc}
PORT=${CGC_LOCAL_HTTPS_PORT:-8443}
WEB_COUNT=${CGC_LOCAL_WEB_COUNT:-1}
URL="https://127.0.0.1:$PORT"
# curl verifies the front against the local CA (role pki).
export CURL_CA_BUNDLE=$ROOT/.ansible/pki/ca.crt
# A Cookie header: past nginx's edge microcache, to the app (X-Edge-Cache: BYPASS).
BYPASS='Cookie: cgc-drill=edge-bypass'
# Units on the Debian 12 containers (the only image this machine builds).
REDIS_UNIT=${CGC_DRILL_REDIS_UNIT:-redis-server}
PG_UNITS=${CGC_DRILL_PG_UNITS:-postgresql postgresql@15-main}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
(($# >= 1)) || usage
mode=$1
shift
hold=12 workers=4 path=/api/version member="web-$WEB_COUNT" timeout=20
while (($#)); do
  case $1 in
    --hold) hold=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --path) path=$2; shift 2 ;;
    --member) member=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    *) usage ;;
  esac
done
case $mode in redis | postgres | webhost) ;; *) usage ;; esac

work=$(mktemp -d)
load_pid="" load_phase=""
cleanup() {
  [[ -n $load_pid ]] && { touch "$work/stop"; wait "$load_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '%s  %s\n' "$(date +%T)" "$*"; }
dexec() { docker exec "$STACK-$1" "${@:2}"; }

# redis-cli in the cache container as the role's admin user, over TLS; the
# password goes in on stdin (--askpass), never on a command line (ps shows
# those, docker exec -e included) or in the output.
redis_admin() {
  docker exec -i "$STACK-cache" redis-cli --no-auth-warning --askpass --user admin \
    --tls --cacert /etc/redis/tls/ca.crt -h 127.0.0.1 "$@" <"$ROOT/.ansible/secrets/redis_admin_password"
}

# Cache settings and the cached item's key, from web-1's live config (only
# the [cache] table is read).
cache_setting() {
  dexec web-1 cat /etc/cachedapp/config.toml | "$PY" -c '
import sys, tomllib
cache = tomllib.loads(sys.stdin.read()).get("cache", {})
defaults = {"namespace": "cachedapp", "key_version": 1, "ttl": 60.0, "stale_while_revalidate": 30.0}
print(cache.get(sys.argv[1], defaults[sys.argv[1]]))' "$1"
}
cache_key() { echo "$(cache_setting namespace):v$(cache_setting key_version):{slow_version}"; }

# X-Cache and status of one GET to the app (past the edge; the load loops are separate).
probe() {
  curl -s -o /dev/null -m "$timeout" -H "$BYPASS" -D - -w 'status:%{http_code}\n' "$URL$path" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { x = $2 } /^status:/ { s = substr($0, 8) } END { print s, x }'
}
probe_status() { curl -s -o /dev/null -m "$timeout" -H "$BYPASS" -w '%{http_code}' "$URL$path"; }

# Wait until a GET to the app answers with X-Cache: HIT (up to $1 s).
wait_for_hit() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    [[ $(curl -s -o /dev/null -m "$timeout" -H "$BYPASS" -D - "$URL$path" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}') == HIT ]] && return 0
    sleep 0.5
  done
  return 1
}

# The load loops of one phase: a background process (cgc_load.LoadLoop, the
# test suite's loop) that runs until load_stop, then prints its counts: the
# app loop's (past the edge) at the top, the edge loop's under "edge". The
# edge loop is paced a little (its answers take nginx alone: unpaced it
# would take the CPU the app needs).
load_start() {
  rm -f "$work/stop"
  PYTHONPATH="$ROOT/scripts" "$PY" - "$URL$path" "$work/stop" "$workers" "$timeout" "$1" \
    >"$work/$1.json" <<'PY' &
import json, pathlib, sys, time
from cgc_load import EDGE_BYPASS, LoadLoop
url, stop, workers, timeout, phase = sys.argv[1:]
with LoadLoop(url, workers=int(workers), timeout=float(timeout), headers=EDGE_BYPASS) as load, \
        LoadLoop(url, workers=int(workers), timeout=float(timeout), pause=0.01) as edge:
    while not pathlib.Path(stop).exists():
        time.sleep(0.05)
def counts(loop):
    return {"total": loop.total, "2xx": loop.ok, "non_2xx": loop.non_2xx, "errors": loop.errors,
            "status": {str(k): v for k, v in sorted(loop.statuses.items())},
            "x_cache": dict(sorted(loop.cache.items())), "x_edge_cache": dict(sorted(loop.edge.items())),
            "error_kinds": dict(loop.error_kinds), "seconds": round(loop.seconds, 1)}
print(json.dumps(counts(load) | {"edge": counts(edge)}))
def line(loop, values):
    shown = " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
    return f"total={loop.total} 2xx={loop.ok} non-2xx={loop.non_2xx} errors={loop.errors} {shown}"
print(f"{phase:<9} app: {line(load, load.cache)} (X-Cache) | edge: "
      f"{line(edge, edge.edge)} (X-Edge-Cache)  ({load.seconds:.1f} s)")
PY
  load_pid=$!
  load_phase=$1
}
load_stop() {
  touch "$work/stop"
  wait "$load_pid"
  load_pid=""
  say "    $(tail -n 1 "$work/$load_phase.json")"
}

checks=()
check() { # check NAME CONDITION-RESULT(0/1)
  checks+=("$1=$2")
  if [[ $2 == 1 ]]; then say "  ok    $1"; else say "  FAIL  $1"; fi
}
# The edge loop of each phase named: every answer 2xx (a stale copy when the
# app fails), and, over those phases, answers from the edge cache itself (HIT)
# - unless the stack runs without it (no X-Edge-Cache at all).
edge_checks() {
  local phase edge_hits=0 edge_seen=0
  for phase in "$@"; do
    check "$phase: edge: no failed response" "$(phase_value "$phase" 'int(edge["total"] > 0 and edge["non_2xx"] == 0 and edge["errors"] == 0)')"
    edge_hits=$((edge_hits + $(phase_value "$phase" 'edge["x_edge_cache"].get("HIT", 0)')))
    edge_seen=$((edge_seen + $(phase_value "$phase" 'edge["total"] - edge["x_edge_cache"].get("-", 0)')))
  done
  if ((edge_seen > 0)); then
    check "edge: answered from the edge cache (HIT)" "$((edge_hits > 0 ? 1 : 0))"
  else
    say "  (no X-Edge-Cache: the edge cache is off)"
  fi
}
phase_value() { "$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); print(eval(sys.argv[2], {}, d))' "$work/$1.json" "$2"; }

say "drill $mode on stack $STACK ($URL$path), hold ${hold}s, $workers clients"
status=$(probe_status)
[[ $status == 200 ]] || { say "the stack does not answer 200 on $URL$path (got $status): bring it up with site.yml first"; exit 1; }
wait_for_hit 30 || { say "no HIT on $URL$path within 30 s: is the cache working?"; exit 1; }

case $mode in
  redis)
    load_start before; sleep 2; load_stop
    say "kill -9 redis-server under load, then keep it down (its unit has Restart=always)"
    load_start kill; sleep 1
    dexec cache systemctl kill --signal=SIGKILL "$REDIS_UNIT"
    dexec cache systemctl stop "$REDIS_UNIT"
    sleep 2; load_stop
    load_start down; sleep "$hold"; load_stop
    say "start redis-server again; wait for HIT under load"
    load_start recovery
    dexec cache systemctl start "$REDIS_UNIT"
    if wait_for_hit 60; then hit=1; else hit=0; fi
    sleep 2; load_stop
    check "kill: no failed response" "$(phase_value kill 'int(non_2xx == 0 and errors == 0)')"
    check "down: no failed response" "$(phase_value down 'int(non_2xx == 0 and errors == 0)')"
    check "down: answered BYPASS" "$(phase_value down 'int(total > 0 and x_cache.get("BYPASS", 0) == total)')"
    check "recovery: no failed response" "$(phase_value recovery 'int(non_2xx == 0 and errors == 0)')"
    edge_checks kill down recovery
    check "recovery: caching resumed (HIT)" "$hit"
    check "redis-server active" "$([[ $(dexec cache systemctl is-active "$REDIS_UNIT") == active ]] && echo 1 || echo 0)"
    ;;
  postgres)
    key=$(cache_key)
    aged=$(($(date +%s) - $(cache_setting ttl | cut -d. -f1) - $(cache_setting stale_while_revalidate | cut -d. -f1) - 5))
    load_start before; sleep 2; load_stop
    say "stop PostgreSQL ($PG_UNITS); age the cached answer past ttl + stale-while-revalidate"
    # shellcheck disable=SC2086 # two unit names
    dexec db systemctl stop $PG_UNITS
    # The value is {"c": created, "v": ...}: an older "c" makes it stale, so
    # every request tries the (stopped) database and must fall back to it.
    redis_admin EVAL "local v = redis.call('GET', KEYS[1]); if not v then return 0 end;
      local d = cjson.decode(v); d['c'] = tonumber(ARGV[1]);
      redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL'); return 1" 1 "$key" "$aged" >/dev/null
    # Each worker's in-process tier may hold the fresh copy for cache.local_ttl (1 s).
    sleep 1.5
    load_start stale; sleep "$hold"; load_stop
    say "drop the cached answer (a cold key) while PostgreSQL is down"
    redis_admin DEL "$key" >/dev/null
    sleep 1.5
    load_start cold; sleep 3; load_stop
    body_json=$(curl -s -m "$timeout" -H "$BYPASS" "$URL/api/version")
    body_html=$(curl -s -m "$timeout" -H "$BYPASS" -H 'Accept: text/html' "$URL/")
    say "    cold /api/version body: $body_json"
    say "start PostgreSQL again; the first request refills the key (MISS)"
    # shellcheck disable=SC2086
    dexec db systemctl start $PG_UNITS
    first=$(probe)
    say "    first answer after the restart: $first"
    wait_for_hit 60 && hit=1 || hit=0
    load_start after; sleep 2; load_stop
    check "stale: no failed response" "$(phase_value stale 'int(non_2xx == 0 and errors == 0)')"
    check "stale: answered STALE" "$(phase_value stale 'int(x_cache.get("STALE", 0) > 0 and x_cache.get("STALE", 0) == total)')"
    check "cold: 503 only" "$(phase_value cold 'int(total > 0 and status.get("503", 0) == total)')"
    check "cold: clear JSON body" "$([[ $body_json == *'"error"'*'database is unavailable'* ]] && echo 1 || echo 0)"
    check "cold: clear HTML body" "$([[ $body_html == *'database is unavailable'* ]] && echo 1 || echo 0)"
    check "after: caching resumed (HIT)" "$hit"
    check "after: no failed response" "$(phase_value after 'int(non_2xx == 0 and errors == 0)')"
    edge_checks stale cold after
    ;;
  webhost)
    ((WEB_COUNT >= 2)) || { say "webhost needs 2+ web hosts behind the lb (CGC_LOCAL_WEB_COUNT)"; exit 2; }
    load_start before; sleep 2; load_stop
    say "stop the container $STACK-$member under load for ${hold}s"
    load_start outage; sleep 1
    docker stop -t 10 "$STACK-$member" >/dev/null
    sleep "$hold"; load_stop
    say "start $STACK-$member again; wait until it serves"
    docker start "$STACK-$member" >/dev/null
    # systemd's bus comes up a moment after the container starts.
    for _ in $(seq 30); do
      state=$(dexec "$member" timeout 90 systemctl is-system-running --wait 2>/dev/null || true)
      [[ $state == running || $state == degraded ]] && break
      sleep 1
    done
    served=0
    for _ in $(seq 60); do
      if [[ $(curl -s -m "$timeout" "$URL/api/version") == *"\"served_by\":\"$member\""* ]]; then served=1; break; fi
      sleep 0.5
    done
    load_start after; sleep 2; load_stop
    check "outage: no failed response" "$(phase_value outage 'int(non_2xx == 0 and errors == 0)')"
    check "after: $member serves again" "$served"
    check "after: no failed response" "$(phase_value after 'int(non_2xx == 0 and errors == 0)')"
    edge_checks outage after
    ;;
esac

ok=1
for c in "${checks[@]}"; do [[ ${c##*=} == 1 ]] || ok=0; done
"$PY" - "$mode" "$ok" "$work" "${checks[@]}" <<'PY'
import json, pathlib, sys
mode, ok, work, *checks = sys.argv[1:]
phases = {p.stem: json.loads(p.read_text().splitlines()[0]) for p in sorted(pathlib.Path(work).glob("*.json"))}
result = {"drill": mode, "ok": ok == "1",
          "checks": {c.rsplit("=", 1)[0]: c.endswith("=1") for c in checks}, "phases": phases}
print("drill-result: " + json.dumps(result))
PY
((ok)) || exit 1
