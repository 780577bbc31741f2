#!/usr/bin/env bash
# Runs every fuzz target in the module for a short while (FUZZTIME each, 3s
# by default). A crasher Go finds is written to the package's
# testdata/fuzz/<Target>/ directory: commit it, and it is a seed from then on
# (plain `go test` runs it every time).
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime ends under CPU contention (golang/go#75804, fixed
# in Go 1.27), with no crasher. That alone is reported, not failed; a failure
# that wrote a reproducer, or any other failure, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
# Only the packages that have fuzz targets: listing every package's tests
# would build them all.
for dir in $(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u); do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		corpus="$dir/testdata/fuzz/$target"
		before=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		echo "fuzz ./$dir $target ($FUZZTIME)"
		if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "./$dir" >"$log" 2>&1; then
			continue
		fi
		after=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		if [ "$after" = "$before" ] && grep -q '^    context deadline exceeded$' "$log"; then
			echo "  (ended by Go's fuzztime race, golang/go#75804; no crasher)"
			continue
		fi
		cat "$log"
		echo "  new inputs in $corpus: keep them as seeds once fixed"
		failed=1
	done
done
exit $failed
