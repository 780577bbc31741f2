#!/usr/bin/env bash
# Installs the TypeScript compiler the client in clients/typescript is
# checked with, from the npm registry, once, under
# ~/.cache/af-builder/typescript/VERSION (never committed). Prints tsc's path.
set -euo pipefail
version=5.9.3
dir="${AF_CACHE:-$HOME/.cache/af-builder}/typescript/$version"
tsc="$dir/node_modules/.bin/tsc"
if [ ! -x "$tsc" ]; then
  command -v npm >/dev/null 2>&1 || { echo "typescript: npm is missing (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
  mkdir -p "$dir"
  # Behind a TLS-intercepting proxy npm needs the system's CA bundle.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt; fi
  npm install --no-save --no-audit --no-fund --prefix "$dir" "typescript@$version" >&2
fi
echo "$tsc"
