#!/usr/bin/env bash
# Builds dispatch for Lambda's provided.al2023 runtime on arm64 into
# infra/lambda/.build/bootstrap, the CodeUri of template.yaml.
#
# lambda.norpc leaves out aws-lambda-go's RPC entry point (only the old go1.x
# runtime used it), which keeps the binary and its cold start smaller.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/.build"
mkdir -p "$out"
cd "$here/../.."
CGO_ENABLED=0 GOOS=linux GOARCH="${GOARCH:-arm64}" go build \
	-tags lambda.norpc -trimpath -ldflags "-s -w" \
	-o "$out/bootstrap" ./functions/dispatch
ls -l "$out/bootstrap" >&2
