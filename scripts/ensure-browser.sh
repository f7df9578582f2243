#!/usr/bin/env bash
# Debian's Chromium and its WebDriver, for the tests that look at pages the way
# a person does (the day2 scenario's ARA history test). Installs them if missing.
set -euo pipefail
want=()
[[ -x /usr/bin/chromium ]] || want+=(chromium)
[[ -x /usr/bin/chromedriver ]] || want+=(chromium-driver)
((${#want[@]})) || exit 0
if ((EUID != 0)); then
  echo "missing packages (${want[*]}); install them as root" >&2
  exit 1
fi
echo "apt-get install ${want[*]}"
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
