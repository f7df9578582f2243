#!/usr/bin/env bash
# ARA's web UI over the embedded run history (.ansible/ara/ansible.sqlite, or
# ARA_BASE_DIR / ARA_DATABASE_NAME), served on loopback only:
#   http://127.0.0.1:${ARA_UI_PORT:-8855}/
# Every recorded ansible-playbook run is listed there; drift checks carry the
# labels drift, check:True, target:<name> and verdict:<in-sync|drifted|failed>
# (/?label=verdict:drifted lists the checks that found drift). With
# ARA_API_SERVER set the runs went to that server: use its UI instead.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${ARA_UI_PORT:-8855}"
command -v ara-manage >/dev/null || PATH="$PWD/.venv/bin:$PATH" # run outside make
if [[ -n ${ARA_API_SERVER:-} ]]; then
  echo "ARA_API_SERVER is set: runs are recorded at $ARA_API_SERVER; open its UI there."
  exit 0
fi
if [[ -z ${ARA_DATABASE_NAME:-} ]]; then
  export ARA_BASE_DIR="${ARA_BASE_DIR:-$PWD/.ansible/ara}"
fi
mkdir -p "${ARA_BASE_DIR:-.ansible/ara}"
# An empty history is still a valid one: create the schema if no run made it yet.
ara-manage migrate >/dev/null
echo "ARA: http://127.0.0.1:$port/  (drifted checks: http://127.0.0.1:$port/?label=verdict:drifted; Ctrl-C stops)"
exec ara-manage runserver --noreload "127.0.0.1:$port"
