#!/usr/bin/env bash
# Builds dispatch for Lambda's provided.al2023 runtime as a `bootstrap` zip
# per architecture: infra/lambda/.build/<arch>/bootstrap and
# infra/lambda/.build/dispatch-<arch>.zip. template.yaml deploys arm64.
#
# lambda.norpc leaves out aws-lambda-go's RPC entry point (only the old go1.x
# runtime used it), which keeps the binary and its cold start smaller.
#
#   ARCHS="arm64 amd64" infra/lambda/build.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/.build"
command -v zip >/dev/null || { echo "build.sh: zip is missing (apt-get install -y zip)" >&2; exit 1; }
cd "$here/../.."
for arch in ${ARCHS:-arm64 amd64}; do
	mkdir -p "$out/$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build \
		-tags lambda.norpc -trimpath -ldflags "-s -w" \
		-o "$out/$arch/bootstrap" ./functions/dispatch
	rm -f "$out/dispatch-$arch.zip"
	(cd "$out/$arch" && zip -q -X "../dispatch-$arch.zip" bootstrap)
	awk -v a="$arch" -v b="$(stat -c %s "$out/$arch/bootstrap")" -v z="$(stat -c %s "$out/dispatch-$arch.zip")" -v p="$out/dispatch-$arch.zip" \
		'BEGIN { printf "%-6s bootstrap %5.1f MB, zip %5.1f MB  %s\n", a, b/1048576, z/1048576, p }'
done
