# af-builder. `make test` and `make demo` install or start what they need
# (scripts/deps.sh) on Debian/Ubuntu as root, and say what is missing elsewhere.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...

.PHONY: all build test unit e2e e2e-node sample demo lint deps deps-race kube buildkitd bench bench-build bench-dispatch bench-overhead clean lambda image fuzz test-engine-28

all: build

build:
	$(GO) build -o $(BIN)/runner ./runner
	$(GO) build -o $(BIN)/dispatch ./functions/dispatch

deps:
	bash scripts/deps.sh

# deps plus gcc/libc6-dev: -race needs cgo.
deps-race:
	bash scripts/deps.sh --race

# kube-apiserver and etcd for the dispatch tests; built once per machine and
# cached under ~/.cache/af-builder/kube.
kube:
	bash tools/kube/build.sh

# buildkitd for the BuildKit backend's tests, built from the module proxy at
# go.mod's buildkit version; cached under ~/.cache/af-builder/buildkitd.
buildkitd:
	bash tools/buildkitd/build.sh

# Every test: unit, the real Kubernetes API tests, the builder suite on both
# backends (dockerd and buildkitd), and the end-to-end suite against a real
# dockerd, buildkitd, registry and git server.
# The assets are built first, each on its own line: a failing build script
# inside `VAR=$$(...) go test` would go unnoticed and leave VAR empty.
test: deps-race kube buildkitd
	KUBEBUILDER_ASSETS=$$(bash tools/kube/build.sh) AF_TEST_BUILDKITD=$$(bash tools/buildkitd/build.sh) \
		$(GO) test -race -count=1 -timeout 45m $(PKGS)

unit:
	$(GO) test -short -count=1 $(PKGS)

e2e: deps buildkitd
	AF_TEST_BUILDKITD=$$(bash tools/buildkitd/build.sh) $(GO) test -count=1 -v -timeout 45m ./runner/e2e/

# The production path on a real single-node Kubernetes (internal/e2enode):
# dispatch serve with EXECUTOR=kubernetes, Jobs run by a kubelet on
# containerd. Builds kubelet, controller-manager and scheduler once (cached
# beside kube-apiserver) and buildkitd/buildctl for the rootless BuildKit
# image stand-in (cached by tools/buildkitd). Fails, never skips, when a prerequisite is missing.
e2e-node:
	bash scripts/deps.sh --node
	bash tools/kube/build.sh --node >/dev/null
	bash tools/buildkitd/build.sh >/dev/null
	$(GO) vet -tags e2enode ./internal/e2enode/ ./internal/testinfra/kubenode/
	# -parallel above the number of tests: the tests that build wait for the
	# node among themselves (exclusive), not for a slot the timer-bound ones hold.
	$(GO) test -tags e2enode -p 1 -parallel 16 -count=1 -v -timeout 30m ./internal/testinfra/kubenode/ ./internal/e2enode/

# The docker backend's shared suite on a current Docker Engine (dockerd
# 28.5.2, API 1.51, built once from the Go module proxy by tools/dockerd),
# where `make test` has Debian's 20.10, which takes no COPY --link. Not in
# .ci/run: a cold build of dockerd took 13 minutes beside a CI run.
test-engine-28: deps
	PATH="$$(dirname "$$(bash tools/dockerd/build.sh)"):$$PATH" AF_TEST_DOCKERD_VERSION=28.5.2 \
		$(GO) test -count=1 -v -run 'TestBuilderSuite|TestCarriedMounts' ./runner/engine/

# The whole system on this machine: a signed push webhook into dispatch (local
# executor), a build pushed to a local registry, the image run and asked for its
# page, then a second push with one file changed: cold and warm timings.
demo: deps build
	$(GO) build -o $(BIN)/demo ./internal/demo
	$(BIN)/demo -bin $(BIN)

# The runner on an embedded sample: a monorepo with a multi-stage Dockerfile,
# and an app without one (Nixpacks stand-in), built and pushed for real.
sample: deps
	$(GO) test -count=1 -v -run 'TestPinnedCommitInRootDirectory|TestNixpacksPlan' ./runner/e2e/

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every fuzz target for a few seconds (FUZZTIME=3s each); crashers land in
# testdata/fuzz and are kept as seeds.
fuzz:
	bash scripts/fuzz.sh

# The runner against the raw pipeline (git fetch --depth 1 + checkout,
# docker build, docker push) on a generated 24 MB, 1,900-file repository,
# same dockerd, registry and git server; prints the ratio (goal: <= 1.05).
# BENCH_RUNS=N runs of each (default 5). RUNNER=a,b compares several runner
# binaries in the same runs.
bench-overhead: deps build
	$(GO) run ./internal/bench/overhead -runner $(or $(RUNNER),$(BIN)/runner) -n $(or $(BENCH_RUNS),5)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./runner/detect/ ./shared/redact/

# One dispatch with its default settings on a real kube-apiserver: 400
# webhooks and API calls, 50 at a time, redeliveries and duplicates
# included; prints throughput, p50/p99 and apiserver requests per build.
bench-dispatch: kube
	KUBEBUILDER_ASSETS=$$(bash tools/kube/build.sh) $(GO) test -run '^$$' -bench BenchmarkDispatchLoad -benchtime 1x -timeout 20m ./functions/dispatch/

# Each real app (Express, Go, Flask, the default create-next-app project)
# built by its template through the runner: cold on a fresh dockerd, then warm
# with one source file changed; prints cold, warm, ratio and image size, and
# each backend on a new builder with the registry cache. Then the runner
# against the raw git + docker pipeline (bench-overhead). Needs root and the
# network to the npm registry and Go module proxy. APPS=nextjs picks some;
# the Markdown table is left in bin/bench-build.md.
bench-build: deps build buildkitd
	@mkdir -p $(BIN)
	AF_TEST_BUILDKITD=$$(bash tools/buildkitd/build.sh) \
		$(GO) run ./internal/bench/benchbuild $(if $(APPS),-apps $(APPS)) -markdown $(BIN)/bench-build.md
	$(GO) run ./internal/bench/overhead -runner $(BIN)/runner -n $(or $(BENCH_RUNS),5)

# dispatch as a Lambda `bootstrap` zip for provided.al2023, arm64 and amd64.
lambda:
	bash infra/lambda/build.sh

# The runner image (needs a Docker engine with registry access; see Dockerfile
# for the Nixpacks checksum argument).
image:
	docker build --build-arg NIXPACKS_SHA256_AMD64=$(NIXPACKS_SHA256_AMD64) -t $(or $(IMAGE),af-builder-runner:dev) .

clean:
	rm -rf $(BIN)
