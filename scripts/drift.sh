#!/usr/bin/env bash
# Configuration drift check: `ansible-playbook site.yml --check --diff` over any
# inventory, then a verdict.
#   exit 0  the hosts match the code (changed=0 everywhere)
#   exit 2  drift: something would change; the diff above and the summary say what
#   exit 1  the check itself failed (a task failed or a host was unreachable)
# Usage: scripts/drift.sh [ansible-playbook args...]   e.g. -i inventory/aws
# A plain `ansible-playbook site.yml` (same args) heals what this reports.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}" \
  ansible-playbook site.yml --check --diff "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Sum the recap counters over all hosts.
read -r changed failed unreachable < <(awk '
  /^PLAY RECAP/ { recap = 1; next }
  recap && /ok=/ {
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "changed") c += kv[2]
      if (kv[1] == "failed") f += kv[2]
      if (kv[1] == "unreachable") u += kv[2]
    }
  }
  END { print c + 0, f + 0, u + 0 }' "$log")

echo
echo "== drift summary =="
if (( failed > 0 || unreachable > 0 )) || { (( rc != 0 )) && (( rc != 2 )); }; then
  echo "check FAILED: failed=$failed unreachable=$unreachable (ansible-playbook exit $rc)"
  exit 1
fi
if (( changed == 0 )); then
  echo "in sync: the hosts match the code (changed=0)"
  exit 0
fi
echo "DRIFT: $changed task result(s) would change:"
awk '
  /^(TASK|RUNNING HANDLER) \[/ {
    handler = ($1 == "RUNNING")
    task = $0; sub(/^(TASK|RUNNING HANDLER) \[/, "", task); sub(/\] \**$/, "", task); next
  }
  /^changed: \[/ {
    host = $2; gsub(/[\[\]:]/, "", host)
    item = ""
    if (match($0, /=> \(item=.*\)/)) item = " [" substr($0, RSTART + 9, RLENGTH - 10) "]"
    if (!((host, task, item) in seen)) {
      seen[host, task, item] = 1
      printf "  %-24s %s%s%s\n", host, task, item, (handler ? "  (handler)" : "")
    }
  }' "$log"
echo "heal with: ansible-playbook site.yml $*"
exit 2
