#!/usr/bin/env bash
# Every molecule scenario, in two lanes side by side (what `make test-molecule` runs):
#   lane 1: day2                      (the longest: deploys, drills and drift under load)
#   lane 2: aws, default, monitoring  (one after the other)
# Each scenario owns its stack, ports and subnet, and its drift reports
# (.ansible/drift/<stack>/); the only shared state is the local CA, created here
# first so two converges never race to make it. Each scenario's output is
# streamed with a "[name]" prefix and kept whole in .ansible/molecule/<name>.log.
# Exit 1 if any scenario failed; the summary lists each one's result and time,
# after the failing lines of each failed scenario.
# MOLECULE_LANES overrides the lanes: lanes separated by ';', scenarios by ','
# (e.g. MOLECULE_LANES="default" or "day2;aws,default,monitoring").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

lanes="${MOLECULE_LANES:-day2;aws,default,monitoring}"
log_dir=.ansible/molecule
mkdir -p "$log_dir"

# The local CA only (no host certificates): every local scenario's pki play
# then finds it and signs with it.
ansible-playbook playbooks/pki.yml -e '{"pki_hosts": []}' >"$log_dir/pki.log" 2>&1 || {
  cat "$log_dir/pki.log"
  exit 1
}

run_lane() {
  local scenario start rc
  for scenario in ${1//,/ }; do
    start=$(date +%s)
    molecule test -s "$scenario" 2>&1 | tee "$log_dir/$scenario.log" | sed -u "s/^/[$scenario] /"
    rc=${PIPESTATUS[0]}
    echo "$scenario rc=$rc $(($(date +%s) - start))s" >>"$log_dir/summary"
    # A failed scenario stops its lane: the next ones would only hide it.
    ((rc == 0)) || return "$rc"
  done
}

: >"$log_dir/summary"
pids=()
IFS=';' read -ra lane_list <<<"$lanes"
for lane in "${lane_list[@]}"; do
  run_lane "$lane" &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done

# A CI log keeps only its tail, where a failure streamed minutes earlier by the
# other lane is lost: repeat each failed scenario's failing lines here, last.
grep -E '^[^ ]+ rc=[1-9]' "$log_dir/summary" | while read -r scenario _; do
  echo "== $scenario failed: its failing lines (whole log: $log_dir/$scenario.log) =="
  sed 's/\x1b\[[0-9;]*m//g' "$log_dir/$scenario.log" |
    grep -n -E -B3 -A12 'fatal: |FAILED|failed=[1-9]|ERROR|Traceback|Error:' | tail -n 150
done

echo "== molecule scenarios (logs in $log_dir/) =="
cat "$log_dir/summary"
exit "$failed"
