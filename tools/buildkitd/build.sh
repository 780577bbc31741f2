#!/usr/bin/env bash
# Builds the test buildkitd (and buildctl, which the rootless BuildKit image
# stand-in of `make e2e-node` needs for its probes) from the Go module proxy
# into ~/.cache/af-builder/buildkitd/<version>/ and prints buildkitd's path.
#
# The version is the github.com/moby/buildkit version of the project's
# go.mod (the client the runner links), so daemon and client always match.
# `go install github.com/moby/buildkit/cmd/buildkitd@<version>` is refused
# (buildkit's go.mod has exclude directives), hence this tools module. A cold
# build takes about 8 minutes on two loaded cores; when the binary exists it
# does nothing. Delete the directory (or pass --force) to rebuild.
#
#   tools/buildkitd/build.sh                     # build if missing, print the binary's path
#   export AF_BUILDKITD="$(tools/buildkitd/build.sh)"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version_of() { awk '$1 == "github.com/moby/buildkit" { print $2; exit }' "$1"; }

version="$(version_of "$root/go.mod")"
tool_version="$(version_of "$here/go.mod")"
if [[ -z "$version" ]]; then
	echo "github.com/moby/buildkit is not required by $root/go.mod" >&2
	exit 1
fi
if [[ "$version" != "$tool_version" ]]; then
	echo "tools/buildkitd/go.mod has buildkit $tool_version but the project uses $version;" >&2
	echo "run: (cd tools/buildkitd && go get github.com/moby/buildkit@$version && go mod tidy)" >&2
	exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}"
out="$cache/af-builder/buildkitd/$version"
bin="$out/buildkitd"
ctl="$out/buildctl"

force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force -eq 0 && -x "$bin" && -x "$ctl" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$out"
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
start=$(date +%s)
echo "building buildkitd $version into $out" >&2
# The version stamp is what `buildkitd --version` and the client's
# ListWorkers/Info report; without it they say v0.0.0+unknown.
ldflags="-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
for cmd in buildkitd buildctl; do
	if [[ $force -eq 1 || ! -x "$out/$cmd" ]]; then
		CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "github.com/moby/buildkit/cmd/$cmd"
		mv "$tmp/$cmd" "$out/$cmd"
	fi
done
echo "built in $(( $(date +%s) - start ))s" >&2

"$bin" --version >&2
echo "$bin"
