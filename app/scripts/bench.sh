#!/usr/bin/env bash
# Benchmark (`make bench`): with wrk through one nginx on 127.0.0.1:28080, cachedapp
# (edge microcache on/off, Redis plaintext/TLS, local tier on/off), peer style (new
# Redis client per request, PostgreSQL only on a miss), original style (new PostgreSQL
# connection + Redis client per request) and static nginx with the same bytes, at 1, 4,
# 16, 64 and 256 connections, interleaved; then 50 concurrent cold requests with the
# edge off and on (1 DB execution, slowest <= 6 s with the real 5 s sleep). Prints the
# table (medians, ratios vs peer style and vs static), the Redis TLS cost, and writes
# bench.json + bench.png (app/.cache/bench, or --out DIR). About 10 minutes.
#   bench.sh [run_bench.py options]   e.g. --quick (16 and 64 connections, 1 round, ~1 min)
#   bench.sh URL [options]            measure a running stack's page the same way
#                                     (e.g. https://127.0.0.1:8443/)
# Env: BENCH_DURATION (s per wrk run, 3), BENCH_ROUNDS (3), BENCH_CONNS (1,4,16,64,256),
# BENCH_GUNICORN_ARGS (extra gunicorn args for every instance).
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$APP_DIR/.." && pwd)
VENV=${VENV:-$REPO_DIR/.venv}
SERVERS=$APP_DIR/scripts/servers.sh
CGC_APP_RUN=${CGC_APP_RUN:-$(bash "$SERVERS" run-dir)}
export CGC_APP_RUN

[[ -x $VENV/bin/python ]] || { echo "no venv at $VENV (run: make venv)" >&2; exit 1; }
if ! "$VENV/bin/python" -c 'import cachedapp, matplotlib' 2>/dev/null; then
  echo "[bench] installing the app and its bench extra into $VENV" >&2
  "$VENV/bin/pip" install -q -e "$APP_DIR[test,bench]"
fi
bash "$SERVERS" install --bench

if [[ $# -ge 1 && $1 != -* ]]; then
  url=$1; shift
  exec "$VENV/bin/python" "$APP_DIR/bench/run_bench.py" --url "$url" "$@"
fi

cleanup() { bash "$SERVERS" stop || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
bash "$SERVERS" start
set -a
# shellcheck disable=SC1091
source "$CGC_APP_RUN/env"
set +a
"$VENV/bin/python" "$APP_DIR/bench/run_bench.py" "$@"
