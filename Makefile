# af-builder. `make test` and `make demo` install or start what they need
# (scripts/deps.sh) on Debian/Ubuntu as root, and say what is missing elsewhere.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...

.PHONY: all build test unit e2e sample demo lint deps deps-race kube bench bench-build bench-dispatch clean lambda image

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

# Every test: unit, the real Kubernetes API tests, and the end-to-end suite
# against a real dockerd, registry and git server.
test: deps-race
	KUBEBUILDER_ASSETS=$$(bash tools/kube/build.sh) $(GO) test -race -count=1 -timeout 45m $(PKGS)

unit:
	$(GO) test -short -count=1 $(PKGS)

e2e: deps
	$(GO) test -count=1 -v -timeout 45m ./runner/e2e/

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./runner/detect/ ./shared/redact/

# Each real app (Express, Go, Flask, the default create-next-app project)
# built by its template through the runner: cold on a fresh dockerd, then warm
# with one source file changed; prints cold, warm, ratio and image size. Needs
# root and the network to the npm registry and Go module proxy. APPS=nextjs
# picks some; the Markdown table is left in bin/bench-build.md.
bench-build: deps
	@mkdir -p $(BIN)
	$(GO) run ./internal/bench/benchbuild $(if $(APPS),-apps $(APPS)) -markdown $(BIN)/bench-build.md

# One dispatch with its default settings on a real kube-apiserver: 400
# webhooks and API calls, 50 at a time, redeliveries and duplicates
# included; prints throughput, p50/p99 and apiserver requests per build.
bench-dispatch:
	KUBEBUILDER_ASSETS=$$(bash tools/kube/build.sh) $(GO) test -run '^$$' -bench BenchmarkDispatchLoad -benchtime 1x -timeout 20m ./functions/dispatch/

# dispatch as a Lambda `bootstrap` zip for provided.al2023, arm64 and amd64.
lambda:
	bash infra/lambda/build.sh

# The runner image (needs a Docker engine with registry access; see Dockerfile
# for the Nixpacks checksum argument).
image:
	docker build --build-arg NIXPACKS_SHA256_AMD64=$(NIXPACKS_SHA256_AMD64) -t $(or $(IMAGE),af-builder-runner:dev) .

clean:
	rm -rf $(BIN)
