#!/usr/bin/env bash
# Builds a current Docker Engine daemon (dockerd 28, API 1.51) from the Go
# module proxy into ~/.cache/af-builder/engine/<version>/ and prints its
# path. Debian's docker.io is 20.10 (API 1.41), older than the docker:dind a
# cluster runs; `make test-engine-28` runs the docker backend's suite on
# this one, where `COPY --link` and the other features of Engine 23+ are
# taken. It runs on Debian's containerd and runc like the 20.10 daemon.
#
# github.com/docker/docker has no go.mod, only vendor.mod (its build turns
# that into go.mod), and module zips carry no vendor/ tree: so this copies
# the module's source, makes vendor.mod its go.mod and builds cmd/dockerd
# with the dependencies from the module proxy. 13 minutes cold on two cores
# beside a CI run; when the binary exists it does nothing (--force rebuilds).
#
#   tools/dockerd/build.sh          # build if missing, print the binary's path
set -euo pipefail

version="v28.5.2+incompatible"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
out="$cache/af-builder/engine/${version%+incompatible}"
bin="$out/dockerd"

if [[ "${1:-}" != "--force" && -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "building dockerd $version into $out" >&2
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/docker/docker@$version" |
	awk -F'"' '$2 == "Dir" { print $4 }')"
if [[ -z "$dir" || ! -f "$dir/vendor.mod" ]]; then
	echo "github.com/docker/docker@$version: no module source with a vendor.mod" >&2
	exit 1
fi
cp -r "$dir" "$tmp/src"
chmod -R u+w "$tmp/src"
cd "$tmp/src"
cp vendor.mod go.mod
cp vendor.sum go.sum
rm -rf vendor
v="${version#v}"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
	-ldflags "-s -w -X github.com/docker/docker/dockerversion.Version=${v%+incompatible}" \
	-o "$tmp/dockerd" ./cmd/dockerd
mv "$tmp/dockerd" "$bin"
echo "built in $(( $(date +%s) - start ))s" >&2

"$bin" --version >&2
echo "$bin"
