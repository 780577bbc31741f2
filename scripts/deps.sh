#!/usr/bin/env bash
# Installs what the tests and the demo run for real: a Docker engine, a
# registry, a static busybox and debootstrap for base images, and git. With --race also a C
# toolchain: `go test -race` needs cgo, and without gcc Go turns cgo off.
# On Debian/Ubuntu as root it installs what is missing; elsewhere it says what is.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have dockerd          || need+=(docker.io)
have docker-registry  || need+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have git              || need+=(git)
# The stand-in base images of the real-app tests: a Debian root filesystem
# (debootstrap, its keyring) with packages installed in a chroot.
have debootstrap      || need+=(debootstrap)
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
if [ "${1:-}" = --race ]; then
  have gcc                          || need+=(gcc)
  dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "deps: missing Debian packages: ${need[*]}" >&2
  echo "deps: install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
