#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd) from the Go module
# proxy into ~/.cache/af-builder/kube/<version>/, the directory the
# executor tests expect in KUBEBUILDER_ASSETS.
#
# No release tarballs are reachable from the build machines, so both binaries
# are compiled from this tools module. A cold build takes 3-10 minutes on
# two cores (depending on what the Go build cache already holds) and peaks
# near 1.8 GB of memory; when both binaries already exist it does
# nothing. Delete the directory (or pass --force) to rebuild.
#
#   tools/kube/build.sh            # build if missing, print the assets dir
#   export KUBEBUILDER_ASSETS="$(tools/kube/build.sh)"
set -euo pipefail

KUBE_VERSION=v1.35.4
ETCD_VERSION=v3.6.5
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
out="${AF_KUBE_ASSETS:-$cache/af-builder/kube/$KUBE_VERSION}"

force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force -eq 0 && -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The version stamp matters: without it the server reports v0.0.0-master and
# clients that parse the server version (kubectl, some envtest helpers) fail.
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=35"

cd "$here"
start=$(date +%s)
echo "building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION into $out" >&2
# One go invocation for both so the shared dependencies compile once.
CGO_ENABLED=0 go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	go.etcd.io/etcd/server/v3
# The etcd main package is the module root; go names the binary after the
# path element before the major-version suffix: "server".
mv "$tmp/kube-apiserver" "$out/kube-apiserver"
mv "$tmp/server" "$out/etcd"
echo "built in $(( $(date +%s) - start ))s" >&2

"$out/kube-apiserver" --version >&2
"$out/etcd" --version | head -1 >&2
echo "$out"
