#!/usr/bin/env bash
# Installs what the tests and the demo run for real: a Docker engine, a
# registry, a static busybox and debootstrap for base images, git, and Node.js
# with npm (the TypeScript client's test). With --race also a C
# toolchain: `go test -race` needs cgo, and without gcc Go turns cgo off.
# With --node also what the single-node Kubernetes of `make e2e-node` runs
# on: containerd, runc and the CNI plugins (loopback).
# On Debian/Ubuntu as root it installs what is missing; elsewhere it says what is.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have dockerd          || need+=(docker.io)
have docker-registry  || need+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have git              || need+=(git)
# Node runs the TypeScript client's test (clients/typescript); npm fetches tsc.
have node || have nodejs || need+=(nodejs)
have npm              || need+=(npm)
# The stand-in base images of the real-app tests: a Debian root filesystem
# (debootstrap, its keyring) with packages installed in a chroot.
have debootstrap      || need+=(debootstrap)
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
# Rootless buildkitd (the buildkit backend's sidecar, run as in its image).
have rootlesskit      || need+=(rootlesskit)
have newuidmap        || need+=(uidmap)
have runc             || need+=(runc)
# dockerd and buildkitd unpack layers with unpigz when it is on PATH, as in
# the production sidecars' images (docker:dind and moby/buildkit ship it):
# without it the new-builder figures would be slower than production's.
have unpigz           || need+=(pigz)
for arg in "$@"; do
  case "$arg" in
  --race)
    have gcc                          || need+=(gcc)
    dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
    ;;
  --node)
    have containerd                   || need+=(containerd)
    [ -x /usr/lib/cni/loopback ]      || need+=(containernetworking-plugins)
    ;;
  esac
done

# The unprivileged user the rootless buildkitd test runs the daemon as,
# with subordinate IDs for its user namespace (the image's uid 1000 "user").
rootless_user() {
  [ "$(id -u)" = 0 ] || return 0
  id afrootless >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin afrootless
  grep -q '^afrootless:' /etc/subuid 2>/dev/null || usermod --add-subuids 300000-365535 afrootless
  grep -q '^afrootless:' /etc/subgid 2>/dev/null || usermod --add-subgids 300000-365535 afrootless
}

if [ ${#need[@]} -eq 0 ]; then
  rootless_user
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rootless_user
else
  echo "deps: missing Debian packages: ${need[*]}" >&2
  echo "deps: install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
