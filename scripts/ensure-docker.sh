#!/usr/bin/env bash
# Make sure a Docker engine answers. Installs Debian's docker.io when no
# engine is present and starts dockerd by hand when PID 1 is not systemd
# (CI machines, containers). Idempotent: does nothing when `docker info` works.
set -euo pipefail

docker info >/dev/null 2>&1 && exit 0

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
fi

# The VM's MTU is 1400; containers with Docker's default 1500 stall on
# large downloads.
mkdir -p /etc/docker
[[ -s /etc/docker/daemon.json ]] || echo '{"mtu": 1400}' >/etc/docker/daemon.json

if [[ "$(ps -o comm= -p 1)" == "systemd" ]]; then
  systemctl enable --now docker
else
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "docker engine did not come up; see /var/log/dockerd.log" >&2
exit 1
