#!/usr/bin/env bash
# The app suite (`make test-app`): installs what is missing (apt), starts real
# PostgreSQL, Redis (plain, ACL, TLS) and a 3-master Redis Cluster on loopback,
# runs pytest from the controller venv, and stops every server on exit.
# Extra arguments go to pytest (e.g. -k cluster -x).
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$APP_DIR/.." && pwd)
VENV=${VENV:-$REPO_DIR/.venv}
SERVERS=$APP_DIR/scripts/servers.sh
CGC_APP_RUN=${CGC_APP_RUN:-$(bash "$SERVERS" run-dir)}
export CGC_APP_RUN

[[ -x $VENV/bin/python ]] || { echo "no venv at $VENV (run: make venv)" >&2; exit 1; }
if ! "$VENV/bin/python" -c 'import cachedapp, selenium, pytest, requests' 2>/dev/null; then
  echo "[test] installing the app and its test extras into $VENV" >&2
  "$VENV/bin/pip" install -q -e "$APP_DIR[test]"
fi

bash "$SERVERS" install
cleanup() { bash "$SERVERS" stop || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
bash "$SERVERS" start

set -a
# shellcheck disable=SC1091
source "$CGC_APP_RUN/env"
set +a
cd "$APP_DIR"
"$VENV/bin/python" -m pytest -p no:cacheprovider tests "$@"
