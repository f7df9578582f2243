#!/usr/bin/env bash
# Build the Debian 12 systemd base image the local target and molecule run on.
#
# No container registry is reachable on the CI machines, so the image is
# bootstrapped with mmdebstrap from the host's own apt sources (the mirror is
# whatever the host's apt configuration names; no host name is written here).
# Where a registry is reachable (a laptop), IMAGE_SOURCE=dockerfile builds the
# same image from the official debian:12 image instead.
#
# Usage: scripts/build-image.sh [--force]
#   IMAGE       image tag to produce (default: cgc/debian12-systemd:latest)
#   IMAGE_SOURCE  auto | mmdebstrap | dockerfile (default: auto)
set -euo pipefail

IMAGE="${IMAGE:-cgc/debian12-systemd:latest}"
IMAGE_SOURCE="${IMAGE_SOURCE:-auto}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# Packages every managed host has before Ansible touches it: what an EC2 AMI
# ships (systemd, python3, sudo) plus the tools fact gathering needs.
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps"

if [[ ${1:-} != --force ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE present (use --force to rebuild)"
  exit 0
fi

find_sources() {
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s "$f" ]] && grep -qE 'bookworm' "$f"; then echo "$f"; return 0; fi
  done
  return 1
}

build_mmdebstrap() {
  local sources tmp
  sources="$(find_sources)" || { echo "no bookworm apt sources on this host" >&2; return 1; }
  command -v mmdebstrap >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  # The host's extra CA certificates (a TLS-intercepting proxy's) and apt
  # settings go into the image so apt and pip inside behave as on the host.
  # shellcheck disable=SC2016 # the hooks' "$1" is mmdebstrap's, expanded when they run
  mmdebstrap --variant=minbase --include="$PACKAGES" \
    --customize-hook='cp -a /etc/apt/apt.conf.d/. "$1/etc/apt/apt.conf.d/"' \
    --customize-hook='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"; chroot "$1" update-ca-certificates >/dev/null; fi' \
    --customize-hook='rm -f "$1/etc/machine-id"; : > "$1/etc/machine-id"' \
    --customize-hook='chroot "$1" systemctl mask systemd-resolved.service getty.target console-getty.service systemd-logind.service >/dev/null 2>&1 || true' \
    bookworm "$tmp/rootfs.tar" "$sources"
  docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    "$tmp/rootfs.tar" "$IMAGE"
}

build_dockerfile() {
  docker build -t "$IMAGE" -f "$HERE/Dockerfile.debian12" "$HERE"
}

case "$IMAGE_SOURCE" in
  mmdebstrap) build_mmdebstrap ;;
  dockerfile) build_dockerfile ;;
  auto)
    if find_sources >/dev/null; then build_mmdebstrap; else build_dockerfile; fi ;;
  *) echo "IMAGE_SOURCE must be auto, mmdebstrap or dockerfile" >&2; exit 2 ;;
esac
echo "built $IMAGE"
