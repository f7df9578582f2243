#!/usr/bin/env bash
# Benchmark (`make bench`): cachedapp vs the reference style vs static nginx, with wrk,
# through nginx on 127.0.0.1:28080; then 50 concurrent cold requests (1 DB execution,
# slowest <= 6 s with the real 5 s sleep). Prints a table with medians and ratios.
#   bench.sh                 start servers + gunicorn + nginx here, measure, stop all
#   bench.sh URL             only measure an existing stack's page (e.g. the local demo,
#                            http://127.0.0.1:8080/)
# Env: BENCH_DURATION (s per wrk run, 5), BENCH_REPS (3), BENCH_GUNICORN_ARGS (extra
# gunicorn args for both apps, e.g. "--workers 4 --worker-class gthread --threads 4").
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$APP_DIR/.." && pwd)
VENV=${VENV:-$REPO_DIR/.venv}
SERVERS=$APP_DIR/scripts/servers.sh
CGC_APP_RUN=${CGC_APP_RUN:-$(bash "$SERVERS" run-dir)}
export CGC_APP_RUN

[[ -x $VENV/bin/python ]] || { echo "no venv at $VENV (run: make venv)" >&2; exit 1; }
"$VENV/bin/python" -c 'import cachedapp' 2>/dev/null || "$VENV/bin/pip" install -q -e "$APP_DIR[test]"
bash "$SERVERS" install --bench

if [[ $# -ge 1 ]]; then
  exec "$VENV/bin/python" "$APP_DIR/bench/run_bench.py" --url "$1"
fi

cleanup() { bash "$SERVERS" stop || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
bash "$SERVERS" start
set -a
# shellcheck disable=SC1091
source "$CGC_APP_RUN/env"
set +a
"$VENV/bin/python" "$APP_DIR/bench/run_bench.py"
