#!/usr/bin/env bash
# Debian packages some tests need on the controller; installs the missing ones.
#   browser   chromium + chromium-driver (day2's ARA history test looks at ARA's UI
#             the way a person does)
#   systemd   systemd-analyze (tests/test_drift_timer.py verifies the drift timer's
#             units; PID 1 need not be systemd)
#   promtool  Prometheus's rule checker (tests/test_monitoring_rules.py), taken out of
#             Debian's prometheus package into /usr/local/bin without installing the
#             server (which would start one on this machine)
#   postgres  PostgreSQL's server binaries + runuser: tests/test_inputs_pg_hba.py runs
#             the role's pg_hba.conf validator against PostgreSQL itself
#   selinux   checkmodule (checkpolicy) + semodule_package (semodule-utils): the app
#             role's SELinux policy module is compiled in tests/test_selinux_policy.py
#             (no SELinux on this machine: the tools work on files only)
# Usage: scripts/ensure-test-tools.sh browser|systemd|promtool|postgres|selinux ...
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
want=()
for tool in "$@"; do
  case $tool in
    browser)
      [[ -x /usr/bin/chromium ]] || want+=(chromium)
      [[ -x /usr/bin/chromedriver ]] || want+=(chromium-driver)
      ;;
    systemd) command -v systemd-analyze >/dev/null || want+=(systemd) ;;
    promtool)
      if ! command -v promtool >/dev/null; then
        tmp=$(mktemp -d)
        chmod 0755 "$tmp" # apt downloads as _apt
        apt-get update -q >/dev/null
        (cd "$tmp" && apt-get download -q prometheus >/dev/null)
        dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >/usr/local/bin/promtool
        chmod 0755 /usr/local/bin/promtool
        rm -rf "$tmp"
        echo "promtool: $(promtool --version 2>&1 | head -n 1)"
      fi
      ;;
    postgres)
      ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
      command -v runuser >/dev/null || want+=(util-linux)
      ;;
    selinux)
      command -v checkmodule >/dev/null || want+=(checkpolicy)
      command -v semodule_package >/dev/null || want+=(semodule-utils)
      ;;
    *) echo "unknown tool set: $tool (browser|systemd|promtool|postgres|selinux)" >&2; exit 1 ;;
  esac
done
((${#want[@]})) || exit 0
if ((EUID != 0)); then
  echo "missing packages (${want[*]}); install them as root" >&2
  exit 1
fi
echo "apt-get install ${want[*]}"
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
