#!/usr/bin/env bash
# Configuration drift check: `ansible-playbook site.yml --check --diff` over any
# inventory, recorded by ARA, then a verdict and a JSON report.
#   exit 0  the hosts match the code (changed=0 everywhere)
#   exit 2  drift: something would change; the diff above and the summary say what
#   exit 1  the check itself failed (a task failed, a host was unreachable, or the
#           run could not be recorded)
# Usage: scripts/drift.sh [ansible-playbook args...]   e.g. -i inventory/aws
# A plain `ansible-playbook site.yml` (same args) heals what this reports.
#
# ARA labels: drift, check:True, target:<inventory name> (stack:<name> locally),
# then verdict:in-sync|drifted|failed. scripts/drift_report.py writes the JSON
# report from ARA's record: $DRIFT_REPORT_DIR/<UTC time>.json and latest.json.
# Settings (environment):
#   DRIFT_PLAYBOOK    playbook to check (default site.yml)
#   DRIFT_REPORT_DIR  where the JSON reports go (default .ansible/drift/<stack|target>)
#   DRIFT_TARGET      target label (default: the inventory's directory name)
#   ARA_API_SERVER    record into this ARA API server instead of .ansible/ara/
#   CGC_DRIFT_NO_PUBLISH  set: do not publish the verdict to the monitor host
#                     (playbooks/monitoring.yml --tags drift_report, after the check)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

playbook="${DRIFT_PLAYBOOK:-site.yml}"

# The target label: the last -i/--inventory given, else ansible.cfg's default.
inventory="${ANSIBLE_INVENTORY:-inventory/local}"
prev=""
for arg in "$@"; do
  case $prev in -i | --inventory | --inventory-file) inventory=$arg ;; esac
  case $arg in --inventory=* | --inventory-file=*) inventory=${arg#*=} ;; -i?*) inventory=${arg#-i} ;; esac
  prev=$arg
done
target="$(basename "${inventory%/}")"
target="${DRIFT_TARGET:-${target%.*}}"
labels="drift,target:$target"
report_name=$target
if [[ $target == local ]]; then
  labels+=",stack:${CGC_LOCAL_STACK:-cgc}"
  report_name="${CGC_LOCAL_STACK:-cgc}"
fi
report_dir="${DRIFT_REPORT_DIR:-.ansible/drift/$report_name}"

# The verdict is read back from ARA: its callback is on for the check
# whatever the environment says (molecule turns it off).
without_ara="ansible.posix.profile_tasks,ansible.posix.timer"

id_file="$(mktemp)"
trap 'rm -f "$id_file"' EXIT
started="$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"

CGC_ARA_PLAYBOOK_ID_FILE="$id_file" ANSIBLE_CALLBACKS_ENABLED="$without_ara,ara_default" \
  ARA_DEFAULT_LABELS="${ARA_DEFAULT_LABELS:+$ARA_DEFAULT_LABELS,}$labels" \
  ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}" \
  ansible-playbook "$playbook" --check --diff "$@" 2>&1
rc=$?

# The report is read back from ARA with the Python that runs Ansible (it has ara).
python="$(dirname "$(command -v ansible-playbook)")/python3"
[[ -x $python ]] || python=python3
verdict_rc=0
"$python" scripts/drift_report.py --ansible-rc "$rc" --id-file "$id_file" \
  --playbook "$playbook" --target "$target" --started "$started" \
  --report-dir "$report_dir" -- "$@" || verdict_rc=$?

# The verdict as metrics on the monitor host, if any (Prometheus alerts on
# drift). Quiet unless it fails; the check's exit code stands. Not recorded
# by ARA: the check is the run of record, this is plumbing.
if [[ -z ${CGC_DRIFT_NO_PUBLISH:-} ]]; then
  if ! publish_log=$(ANSIBLE_NOCOLOR=1 ANSIBLE_CALLBACKS_ENABLED="$without_ara" \
    ansible-playbook playbooks/monitoring.yml --tags drift_report "$@" \
    -e "monitoring_drift_report_file=$(realpath -m "$report_dir")/latest.json" 2>&1); then
    echo "warning: the verdict was not published to the monitor host:" >&2
    tail -n 20 <<<"$publish_log" >&2
  fi
fi
exit "$verdict_rc"
