#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd) from the Go module
# proxy into ~/.cache/af-builder/kube/<version>/, the directory the
# executor tests expect in KUBEBUILDER_ASSETS. With --node it also builds
# what a full single node needs (kubelet, kube-controller-manager,
# kube-scheduler; see internal/testinfra/kubenode) into the same directory.
#
# No release tarballs are reachable from the build machines, so both binaries
# are compiled from this tools module. A cold build takes 3-10 minutes on
# two cores (depending on what the Go build cache already holds) and peaks
# near 1.8 GB of memory; when both binaries already exist it does
# nothing. Delete the directory (or pass --force) to rebuild.
#
# The node binaries add about 2 minutes with a warm Go build cache and up to
# 20 minutes cold on a loaded two-core machine (kubelet pulls in cadvisor and
# the CRI client), at a similar memory peak.
#
#   tools/kube/build.sh            # build if missing, print the assets dir
#   tools/kube/build.sh --node     # the same, plus the node binaries
#   export KUBEBUILDER_ASSETS="$(tools/kube/build.sh)"
set -euo pipefail

KUBE_VERSION=v1.35.4
ETCD_VERSION=v3.6.5
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
out="${AF_KUBE_ASSETS:-$cache/af-builder/kube/$KUBE_VERSION}"

force=0
node=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	--node) node=1 ;;
	*) echo "usage: $0 [--force] [--node]" >&2; exit 2 ;;
	esac
done

# binary name -> main package
declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[etcd]=go.etcd.io/etcd/server/v3
)
if [[ $node -eq 1 ]]; then
	pkgs[kubelet]=k8s.io/kubernetes/cmd/kubelet
	pkgs[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	pkgs[kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
fi
want=()
for bin in "${!pkgs[@]}"; do
	if [[ $force -eq 1 || ! -x "$out/$bin" ]]; then
		want+=("$bin")
	fi
done
if [[ ${#want[@]} -eq 0 ]]; then
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
echo "building ${want[*]} (kubernetes $KUBE_VERSION, etcd $ETCD_VERSION) into $out" >&2
targets=()
for bin in "${want[@]}"; do targets+=("${pkgs[$bin]}"); done
# One go invocation for all so the shared dependencies compile once.
CGO_ENABLED=0 go build -trimpath -ldflags "$kube_ldflags" -o "$tmp/" "${targets[@]}"
for bin in "${want[@]}"; do
	src="$tmp/$bin"
	# The etcd main package is the module root; go names the binary after
	# the path element before the major-version suffix: "server".
	[[ $bin == etcd ]] && src="$tmp/server"
	mv "$src" "$out/$bin"
done
echo "built in $(( $(date +%s) - start ))s" >&2

for bin in "${want[@]}"; do
	case "$bin" in
	# sed reads it all: with head, etcd could die of SIGPIPE, and pipefail
	# then ended the script before it printed the directory.
	etcd) "$out/etcd" --version | sed -n 1p >&2 ;;
	*) "$out/$bin" --version >&2 ;;
	esac
done
echo "$out"
