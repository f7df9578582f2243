#!/usr/bin/env bash
# After `ansible-playbook site.yml` (make demo): print the URL and one MISS
# and one HIT through nginx, timed by curl on the docker host.
# The app's cache keys are deleted first (with the app's own Redis
# credentials, inside the web container), so the MISS really runs the slow
# query. Those two requests carry a Cookie header, which takes them past
# nginx's edge microcache to the app; then one URL the edge has never seen,
# twice: X-Edge-Cache MISS, then HIT (answered by nginx alone).
# Stack and ports as inventory/local reads them:
#   CGC_LOCAL_STACK (default cgc), CGC_LOCAL_HTTPS_PORT (default 8443),
#   CGC_LOCAL_HTTP_PORT (default 8080, redirects to HTTPS).
# curl verifies the stack's certificate against the local CA (role pki).
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${CGC_LOCAL_STACK:-cgc}"
PORT="${CGC_LOCAL_HTTPS_PORT:-8443}"
HTTP_PORT="${CGC_LOCAL_HTTP_PORT:-8080}"
URL="https://127.0.0.1:${PORT}/"
CA="$PWD/.ansible/pki/ca.crt"
export CURL_CA_BUNDLE="$CA"
WEB="${STACK}-web-1"

running() { docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null | grep -qx true; }

if ! running "$WEB"; then
  echo "container $WEB is not running: run 'ansible-playbook site.yml' (make demo) first" >&2
  exit 1
fi

# One request: "<X-Edge-Cache> <ms> <X-Cache> <Server-Timing>" ("-": no such header);
# app as $2 takes it past the edge.
fetch() {
  local bypass=()
  [[ ${2:-} == app ]] && bypass=(-H 'Cookie: demo-report=edge-bypass')
  curl -sS -o /dev/null -D - -w 'time_total=%{time_total}\n' --max-time 60 "${bypass[@]}" "$1" |
    awk -F': ' '
      { sub(/\r$/, "") }
      tolower($1) == "x-cache"       { cache = $2 }
      tolower($1) == "x-edge-cache"  { edge = $2 }
      tolower($1) == "server-timing" { timing = $2 }
      /^time_total=/                 { split($0, t, "="); ms = t[2] * 1000 }
      END {
        printf "%s %.1f %s %s\n", (edge == "" ? "-" : edge), ms, (cache == "" ? "-" : cache), timing
      }'
}

# Open every gunicorn worker's Redis and database connections first (the
# cache stays as it is): concurrent /readyz requests reach all the workers,
# so the HIT below measures the cache, not a worker's first connect.
for _ in $(seq 1 12); do curl -s -o /dev/null --max-time 30 "${URL}readyz" & done
wait

deleted=$(docker exec -i "$WEB" /opt/cachedapp/current/venv/bin/python - <<'PY'
import tomllib

import redis

c = tomllib.load(open("/etc/cachedapp/config.toml", "rb"))
r = redis.Redis.from_url(c["redis"]["url"], username=c["redis"]["username"] or None,
                         password=c["redis"]["password"] or None)
keys = list(r.scan_iter(match=c["cache"]["namespace"] + ":*", count=1000))
print(r.delete(*keys) if keys else 0)
PY
)

# Each worker's in-process tier may keep its copy for cache.local_ttl (1 s).
sleep 1.2
read -r _ miss_ms miss_cache miss_timing < <(fetch "$URL" app)
read -r _ hit_ms hit_cache hit_timing < <(fetch "$URL" app)
# The edge microcache (1 s): a URL it has never seen, then the same at once.
edge_url="${URL}?demo=$(date +%s%N)"
read -r edge1_cache edge1_ms edge1_app _ < <(fetch "$edge_url")
read -r edge2_cache edge2_ms edge2_app _ < <(fetch "$edge_url")

echo "URL:  ${URL}  (also ${URL}app; http://127.0.0.1:${HTTP_PORT}/ redirects here)"
echo "CA:   ${CA}  (trust it in a browser, see README)"
echo "try:  curl --cacert .ansible/pki/ca.crt ${URL}"
if running "${STACK}-monitor"; then
  echo "Prometheus: http://127.0.0.1:${CGC_LOCAL_PROMETHEUS_PORT:-9090}/alerts  (loopback only)"
fi
echo "cache keys flushed first: ${deleted}"
printf '%-5s %9.1f ms   Server-Timing: %s\n' "$miss_cache" "$miss_ms" "$miss_timing"
printf '%-5s %9.1f ms   Server-Timing: %s\n' "$hit_cache" "$hit_ms" "$hit_timing"
awk -v m="$miss_ms" -v h="$hit_ms" 'BEGIN { if (h > 0) printf "HIT is %.0fx faster than MISS\n", m / h }'
printf 'edge %-5s %4.1f ms   X-Cache: %s %s\n' "$edge1_cache" "$edge1_ms" "$edge1_app" "(nginx asked the app)"
printf 'edge %-5s %4.1f ms   X-Cache: %s %s\n' "$edge2_cache" "$edge2_ms" "$edge2_app" "(nginx alone, the app's answer repeated)"
if [[ "$miss_cache" != "MISS" || "$hit_cache" != "HIT" ]]; then
  echo "expected MISS then HIT, got $miss_cache then $hit_cache" >&2
  exit 1
fi
# No X-Edge-Cache: the edge cache is off (nginx_edge_cache); nothing to check.
if [[ "$edge1_cache" != "-" && ("$edge1_cache" != "MISS" || "$edge2_cache" != "HIT") ]]; then
  echo "expected edge MISS then HIT, got $edge1_cache then $edge2_cache" >&2
  exit 1
fi
